#!/usr/bin/env bash
# The main job, inside the guest: load the module, show the devices, serve a workload of
# upcalls with the Venus stub, show the statistics, unload.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/userspace-venus/target/release
insmod "$repo/results/run/coda_psdev.ko"
echo "== devices"
ls -l /dev/cfs* /dev/coda_ctl
echo "== Venus stub on /dev/cfs0"
"$bin/venus" --device /dev/cfs0 --gen 16 -t 2 &
venus=$!
for _ in $(seq 50); do
	"$bin/coda-ctl" stats --minor 0 2>/dev/null | grep -q 'opens 1' && break
	sleep 0.1
done
echo "== workload: 4 callers x 2000 STATFS upcalls, then 8 x 500 4 KiB upcalls"
"$bin/coda-ctl" call --minor 0 --threads 4 --count 2000
"$bin/coda-ctl" call --minor 0 --threads 8 --count 500 --size 4096
"$bin/coda-ctl" stats --minor 0
kill -TERM $venus
wait $venus
rmmod coda_psdev
echo "== done"
