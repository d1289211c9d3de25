#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The main job, inside the guest: load the module, show the devices, serve a workload of
# upcalls with the Venus stub, show the statistics; then mount the kernel's Coda file system
# on the module (coda_rs_fs.ko), served by the stub, and run a shell workload on it; unload.
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

echo "== mount -t coda over the Rust driver (coda_rs_fs.ko), served by the Venus stub"
insmod "$repo/results/run/coda_rs_fs.ko"
work=$(mktemp -d)
mount -t tmpfs demo "$work"
mkdir "$work/coda" "$work/cache"
"$bin/venus" --device /dev/cfs0 --gen 16 -t 2 --cache-dir "$work/cache" --mount "$work/coda" &
venus=$!
for _ in $(seq 300); do
	grep -q " $work/coda coda " /proc/mounts && break
	sleep 0.1
done
cd "$work/coda"
ls
mkdir notes
for i in 1 2 3; do echo "note $i" >"notes/n$i"; done
echo appended >>notes/n1
cat notes/n1
mv notes/n2 notes/renamed
ln -s notes/renamed link
ls -l notes link
for _ in $(seq 200); do stat -f -c %b . >/dev/null; done
df -h .
rm -r notes link
cd /
"$bin/coda-ctl" stats --minor 0
umount "$work/coda"
kill -TERM $venus
wait $venus
umount "$work"
rmmod coda_rs_fs
rmmod coda_psdev
echo "== done"
