#!/usr/bin/env bash
# Runs inside the guest (scripts/bench.sh through scripts/vm-run.sh): every measurement of
# issue 6 in one boot, appended to OUT/raw.jsonl for `bench report`.
#
# usage: tests/guest-bench.sh OUT CODA_PSDEV_KO CODA_KO
# Order: row 1 (no module); ours (coda_psdev.ko) rows 2, 4, 5, 6; then the C coda.ko rows
# 3, 4, 5, 6. Only one of the two modules is loaded at a time (both name /dev/cfs0), and
# coda.ko is reloaded before every mount: Venus must close its device before the unmount,
# and the device must not be opened again after it (see docs/TOOLCHAIN.md).
# Environment: BENCH_QUICK=1 makes every measurement short (for trying the script out).
set -u
out=${1:?usage: $0 OUT CODA_PSDEV_KO CODA_KO}
ko=${2:?}
coda_ko=${3:?}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/userspace-venus/target/release
raw=$out/raw.jsonl
rm -f "$raw" "$out/venus.log"

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	rtt=(--iters 300 --runs 2 --warmup 50)
	tput=(--secs 0.3 --runs 1 --callers 1,8)
	counts=0,10,1000
	park=(--iters 300 --runs 2 --warmup 50)
	sig=(--iters 30 --runs 2 --warmup 3)
else
	rtt=(--iters 2000 --runs 5 --warmup 200)
	tput=(--secs 1 --runs 3 --callers 1,2,8,64)
	counts=0,10,100,1000,10000
	park=(--iters 1000 --runs 5 --warmup 100)
	sig=(--iters 200 --runs 5 --warmup 10)
fi

failed=0
# run NAME CMD...: one measurement; a failure is reported and the rest still run.
run() {
	local name=$1 t0=$SECONDS
	shift
	echo "bench: -- $name" >&2
	if ! "$@"; then
		echo "bench: FAILED: $name" >&2
		failed=$((failed + 1))
	fi
	echo "bench: -- $name took $((SECONDS - t0)) s" >&2
}
B() { "$bin/bench" --raw "$raw" "$@"; }

# 10,000 parked callers are 10,000 threads.
echo 100000 >/proc/sys/kernel/threads-max
# Containers and the mount point on a tmpfs of our own (the guest's /tmp may be the host's).
work=$(mktemp -d /tmp/bench.XXXXXX)
mount -t tmpfs -o size=256m bench "$work" || { echo "bench: no tmpfs" >&2; exit 1; }
mnt=$work/mnt
mkdir -p "$mnt" "$work/cache"

venus=
venus_start() { # THREADS [ARGS...]
	local t=$1
	shift
	"$bin/venus" --device /dev/cfs0 -t "$t" --cache-dir "$work/cache" "$@" 2>>"$out/venus.log" &
	venus=$!
}
venus_stop() {
	[ -n "$venus" ] || return 0
	kill -TERM "$venus" 2>/dev/null
	wait "$venus" 2>/dev/null
	venus=
}
wait_mount() {
	for _ in $(seq 600); do
		grep -q " $mnt coda " /proc/mounts && return 0
		kill -0 "$venus" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
cleanup() {
	venus_stop
	mountpoint -q "$mnt" && umount "$mnt"
	lsmod | grep -q '^coda_psdev ' && rmmod coda_psdev
	lsmod | grep -q '^coda ' && rmmod coda
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

# Row 1: the floor.
run "pipe ping-pong" B pingpong --kind pipe "${rtt[@]}"
run "eventfd ping-pong" B pingpong --kind eventfd "${rtt[@]}"

# Ours. The timeout stays a real one (a timed wait per call, as by default) but long
# enough for 10,000 parked calls.
insmod "$ko" devices=1 max_outstanding=16384 timeout=300 || { echo "bench: insmod $ko failed" >&2; exit 1; }
opens=0
for readers in 1 2; do
	venus_start "$readers"
	opens=$((opens + 1))
	run "stub ready" B wait-open --opens $opens
	if [ "$readers" = 1 ]; then
		run "ours round trip 20 B" B ctl-rtt --size 20 "${rtt[@]}"
		run "ours round trip 4 KiB" B ctl-rtt --size 4096 "${rtt[@]}"
	fi
	run "ours throughput, $readers reader(s)" B throughput --system ours --readers "$readers" "${tput[@]}"
	venus_stop
done
run "ours outstanding" B outstanding --system ours --counts "$counts" "${park[@]}"
run "ours interrupted call" B signal --system ours "${sig[@]}"
run "ours counters" B counters --id ours_counters
rmmod coda_psdev

# C coda: reloaded before every mount.
coda_up() { # THREADS: coda.ko with the stub serving a mount
	insmod "$coda_ko" && venus_start "$1" --mount "$mnt" && wait_mount
}
coda_down() {
	venus_stop
	mountpoint -q "$mnt" && umount "$mnt"
	rmmod coda
}
for readers in 1 2; do
	if coda_up "$readers"; then
		[ "$readers" = 1 ] && run "C coda statfs round trip" B statfs-rtt --mnt "$mnt" "${rtt[@]}"
		run "C coda throughput, $readers reader(s)" B throughput --system coda --readers "$readers" --mnt "$mnt" "${tput[@]}"
	else
		echo "bench: FAILED: the stub did not mount coda" >&2
		failed=$((failed + 1))
	fi
	coda_down
done
# 10,000 callers released at once each print coda.ko's "Unexpected interruption.": keep
# them off the (slow, emulated) serial console.
dmesg -n 1
insmod "$coda_ko" && run "C coda outstanding" B outstanding --system coda --mnt "$mnt" --counts "$counts" "${park[@]}"
rmmod coda
dmesg -n 5
insmod "$coda_ko" && run "C coda interrupted call" B signal --system coda --mnt "$mnt" "${sig[@]}"
rmmod coda

echo "bench: $failed measurement(s) failed" >&2
[ "$failed" = 0 ]
