#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the guest (scripts/bench.sh through scripts/vm-run.sh): every measurement of
# issue 6 in one boot, appended to OUT/raw.jsonl for `bench report`.
#
# usage: tests/guest-bench.sh OUT CODA_PSDEV_KO CODA_KO CODA_RS_FS_KO [quick]
# Order: rounds of rows 1-4 (ours, then C coda, in each), then rows 5 and 6 for ours and
# for C coda. Only one of the two modules is loaded at a time (both name /dev/cfs0), and
# coda.ko is reloaded before every mount: Venus must close its device before the unmount,
# and the device must not be opened again after it (coda_put_super() destroys its mutex).
# "quick" makes every measurement short, for trying the script out (the guest does not
# inherit the host's environment, so it is an argument).
set -u
out=${1:?usage: $0 OUT CODA_PSDEV_KO CODA_KO}
ko=${2:?}
coda_ko=${3:?}
rs_ko=${4:?}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/userspace-venus/target/release
raw=$out/raw.jsonl
rm -f "$raw" "$out/venus.log"

if [ "${5:-}" = quick ]; then
	rounds=1
	rtt=(--iters 300 --runs 2 --warmup 50)
	tput=(--secs 0.3 --runs 1 --callers 1,8)
	tput8=(--secs 0.3 --runs 1 --callers 8)
	counts=0,10,1000
	park=(--iters 300 --runs 2 --warmup 50)
	sig=(--iters 30 --runs 2 --warmup 3)
else
	# Per round; the table's medians are over all rounds' runs.
	rounds=3
	rtt=(--iters 1500 --runs 2 --warmup 200)
	tput=(--secs 1 --runs 2 --callers 1,2,8,64)
	tput8=(--secs 1 --runs 2 --callers 8)
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
# Latency measurements run with both ends on CPU 0: under emulation a wake-up across vCPUs
# is an emulated IPI, and its cost (the host scheduling the other vCPU thread) made
# unpinned round trips flip between two modes at random. Throughput uses both CPUs.
P() { B --cpu 0 "$@"; }

# 10,000 parked callers are 10,000 threads.
echo 100000 >/proc/sys/kernel/threads-max
# Containers and the mount point on a tmpfs of our own (the guest's /tmp may be the host's).
work=$(mktemp -d)
mount -t tmpfs -o size=256m bench "$work" || { echo "bench: no tmpfs" >&2; exit 1; }
mnt=$work/mnt
mkdir -p "$mnt" "$work/cache"

venus=
venus_start() { # THREADS [ARGS...]; with pin=1 in the environment, on CPU 0
	local t=$1 pre=()
	shift
	[ "${pin:-0}" = 1 ] && pre=(taskset -c 0)
	"${pre[@]}" "$bin/venus" --device /dev/cfs0 -t "$t" --cache-dir "$work/cache" "$@" 2>>"$out/venus.log" &
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
	lsmod | grep -q '^coda_rs_fs ' && rmmod coda_rs_fs
	lsmod | grep -q '^coda_psdev ' && rmmod coda_psdev
	lsmod | grep -q '^coda ' && rmmod coda
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

coda_up() { # THREADS [ARGS...]: coda.ko with the stub serving a mount
	insmod "$coda_ko" && venus_start "$@" --mount "$mnt" && wait_mount
}
coda_down() {
	venus_stop
	mountpoint -q "$mnt" && umount "$mnt"
	rmmod coda
}
ours_up() {
	insmod "$ko" devices=1 max_outstanding=16384 timeout=300
}

# Rows 1-4 in rounds, each round one run of every measurement: load on the host drifts,
# and a ratio is only fair between runs made close together. coda.ko is reloaded before
# every mount.
for round in $(seq "$rounds"); do
	echo "bench: round $round of $rounds" >&2
	if ours_up; then
		opens=0
		# readers "1p": one reader on CPU 0, for the pinned round trips; "1x" the same
		# using CODA_PSDEV_IOC_EXCHANGE.
		# "2b": two readers blocking in read(2) instead of poll(2) + read.
		# "2x": two readers each trading replies for messages in one exchange call; "2xp"
		# the same with both on CPU 0, so that the callers run on the other CPU.
		for readers in 1p 1x 1 2 2b 2x 2xp; do
			case $readers in
			1p) pin=1 venus_start 1 ;;
			1x) pin=1 venus_start 1 --exchange ;;
			2b) venus_start 2 --blocking-read ;;
			2x) venus_start 2 --exchange ;;
			2xp) pin=1 venus_start 2 --exchange ;;
			*) venus_start "$readers" ;;
			esac
			opens=$((opens + 1))
			run "stub ready" B wait-open --opens $opens
			if [ "$readers" = 1p ]; then
				run "pipe ping-pong" P pingpong --kind pipe "${rtt[@]}"
				run "ours round trip 20 B" P ctl-rtt --size 20 "${rtt[@]}"
				run "eventfd ping-pong" P pingpong --kind eventfd "${rtt[@]}"
				run "ours round trip 4 KiB" P ctl-rtt --size 4096 "${rtt[@]}"
			elif [ "$readers" = 1x ]; then
				run "ours round trip 20 B, exchange" P ctl-rtt --size 20 --venus exchange "${rtt[@]}"
			elif [ "$readers" = 2x ]; then
				run "ours throughput, 2 readers, exchange" B throughput --system ours --readers 2 --venus exchange "${tput[@]}"
			elif [ "$readers" = 2xp ]; then
				run "ours throughput, 2 readers on CPU 0, exchange" B throughput --system ours --readers 2 --venus exchange --venus-cpu0 "${tput8[@]}"
			elif [ "$readers" = 2b ]; then
				run "ours throughput, 2 blocking readers" B throughput --system ours --readers 2 --venus blocking "${tput8[@]}"
			else
				run "ours throughput, $readers reader(s)" B throughput --system ours --readers "$readers" "${tput[@]}"
			fi
			venus_stop
		done
		rmmod coda_psdev
	else
		echo "bench: FAILED: insmod $ko" >&2
		failed=$((failed + 1))
	fi
	for readers in 1p 1 2 2b 2bp; do
		case $readers in
		1p) pin=1 coda_up 1 ;;
		2b) coda_up 2 --blocking-read ;;
		2bp) pin=1 coda_up 2 --blocking-read ;;
		*) coda_up "$readers" ;;
		esac
		if [ $? = 0 ]; then
			if [ "$readers" = 1p ]; then
				run "pipe ping-pong" P pingpong --kind pipe "${rtt[@]}"
				run "C coda statfs round trip" P statfs-rtt --mnt "$mnt" "${rtt[@]}"
			elif [ "$readers" = 2b ]; then
				run "C coda throughput, 2 blocking readers" B throughput --system coda --readers 2 --venus blocking --mnt "$mnt" "${tput8[@]}"
			elif [ "$readers" = 2bp ]; then
				run "C coda throughput, 2 blocking readers on CPU 0" B throughput --system coda --readers 2 --venus blocking --venus-cpu0 --mnt "$mnt" "${tput8[@]}"
			else
				run "C coda throughput, $readers reader(s)" B throughput --system coda --readers "$readers" --mnt "$mnt" "${tput[@]}"
			fi
		else
			echo "bench: FAILED: the stub did not mount coda" >&2
			failed=$((failed + 1))
		fi
		coda_down
	done
	# The same file system (the kernel's fs/coda) built against our driver.
	if ours_up && insmod "$rs_ko" && pin=1 venus_start 1 --mount "$mnt" && wait_mount; then
		run "Coda fs on ours statfs round trip" P statfs-rtt --fs rs --mnt "$mnt" "${rtt[@]}"
	else
		echo "bench: FAILED: the stub did not mount coda_rs_fs" >&2
		failed=$((failed + 1))
	fi
	venus_stop
	mountpoint -q "$mnt" && umount "$mnt"
	rmmod coda_rs_fs
	rmmod coda_psdev
done

# Rows 5 and 6 once each: parking 10,000 callers is the slow part. The control: the floor
# with as many threads blocked (in a futex) in the measuring process as row 5 parks.
top=${counts##*,}
run "pipe ping-pong, $top idle threads" P pingpong --kind pipe --idle-threads "$top" "${park[@]}"
if ours_up; then
	run "ours outstanding" P outstanding --system ours --counts "$counts" "${park[@]}"
	run "ours interrupted call" P signal --system ours "${sig[@]}"
	run "ours counters" B counters --id ours_counters
	rmmod coda_psdev
fi
# 10,000 callers released at once each print coda.ko's "Unexpected interruption.": keep
# them off the (slow, emulated) serial console.
dmesg -n 1
insmod "$coda_ko" && run "C coda outstanding" P outstanding --system coda --mnt "$mnt" --counts "$counts" "${park[@]}"
rmmod coda
dmesg -n 5
insmod "$coda_ko" && run "C coda interrupted call" P signal --system coda --mnt "$mnt" "${sig[@]}"
rmmod coda

echo "bench: $failed measurement(s) failed" >&2
[ "$failed" = 0 ]
