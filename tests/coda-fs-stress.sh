#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Concurrency on the kernel's Coda file system over our driver (coda_rs_fs.ko): shell
# workers create, write, read back, rename and remove files in their own directories while
# Venus (the stub, two readers) sends a stream of downcalls (ZAPDIR, ZAPFILE, PURGEFID,
# PURGEUSER, FLUSH) through its control FIFO and signals hit the workers' upcalls. Every
# worker must read back exactly what it wrote; the debug kernel must stay quiet.
#
# VENUS_ARGS: extra arguments for venus (e.g. --exchange).
# usage (inside the guest, as root, coda_psdev.ko and coda_rs_fs.ko loaded, /dev/cfs0
# free): tests/coda-fs-stress.sh VENUS_BINARY [ROUNDS]
set -u
export LC_ALL=C
venus=${1:?usage: $0 VENUS_BINARY [ROUNDS]}
rounds=${2:-20}
. "$(dirname "$0")/peer-seed.sh"
. "$(dirname "$0")/tap.sh"

work=$(mktemp -d)
mount -t tmpfs -o size=128m coda-stress "$work" || { echo "Bail out! tmpfs"; exit 1; }
mnt=$work/mnt seed=$work/seed cache=$work/cache fifo=$work/control
mkdir "$mnt" "$seed" "$cache"
peer_seed "$seed"
vlog=$work/venus.log
venus_pid=
cleanup() {
	[ -n "$venus_pid" ] && kill -KILL "$venus_pid" 2>/dev/null && wait "$venus_pid" 2>/dev/null
	umount -l "$mnt" 2>/dev/null
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

"$venus" ${VENUS_ARGS:-} -t 2 --cache-dir "$cache" --control "$fifo" --mount "$mnt" "$seed" 2>"$vlog" &
venus_pid=$!
check "venus mounts" wait_log "mounted on"

# worker N: ROUNDS rounds of write, append, read back, rename, ls, stat, rm in its own
# directory; prints the first mismatch, if any. The storm lasts while a worker runs.
worker() {
	local d=$mnt/w$1 r got
	mkdir "$d" || { echo "mkdir $d failed"; return 1; }
	for r in $(seq "$rounds"); do
		printf 'worker %s round %s\n' "$1" "$r" >"$d/f" || { echo "write failed in round $r"; return 1; }
		echo more >>"$d/f" || { echo "append failed in round $r"; return 1; }
		got=$(cat "$d/f") || { echo "read failed in round $r"; return 1; }
		[ "$got" = "$(printf 'worker %s round %s\nmore' "$1" "$r")" ] ||
			{ echo "round $r read back: $got"; return 1; }
		mv "$d/f" "$d/g" || { echo "mv failed in round $r"; return 1; }
		[ "$(ls "$d")" = g ] || { echo "round $r: ls shows $(ls "$d")"; return 1; }
		[ "$(stat -c %s "$d/g")" = "$(wc -c <"$d/g")" ] || { echo "round $r: stale size"; return 1; }
		rm "$d/g" || { echo "rm failed in round $r"; return 1; }
	done
	rmdir "$d" || { echo "rmdir $d failed"; return 1; }
	echo "$rounds rounds"
}
running() { [ "$(ls "$work"/*.done 2>/dev/null | wc -l)" -lt 4 ]; }
# Downcalls as fast as the stub takes them, about the workers' directories and the root.
downcalls() {
	local i=0
	while running; do
		i=$((i + 1))
		{
			echo "zapdir /"
			echo "zapfile /hello.txt"
			echo "purgefid /sub/nested.txt"
			echo "purgeuser 0"
			[ $((i % 5)) = 0 ] && echo "flush"
		} >"$fifo"
		sleep 0.1
	done
}
# Signals landing on the upcalls the workers' shells make themselves (a redirection opens
# the file): bash has a SIGCHLD handler, which would end an interruptible wait and fail the
# open with EINTR, but Linux's coda lets only SIGINT and SIGKILL through, and so does our
# driver for the file system (tests/peer-coda.sh checks that deterministically, on a held
# upcall). SIGURG and SIGWINCH are ignored by default.
signals() {
	while running; do
		for p in "$@"; do
			kill -CHLD "$p" 2>/dev/null
			kill -URG "$p" 2>/dev/null
			kill -WINCH "$p" 2>/dev/null
		done
		sleep 0.05
	done
}

pids=()
for n in 0 1 2 3; do
	{ worker "$n" >"$work/worker$n.out" 2>&1; echo $? >"$work/$n.done"; } &
	pids+=($!)
done
downcalls &
dc_pid=$!
signals "${pids[@]}" &
sig_pid=$!
for n in 0 1 2 3; do
	wait "${pids[$n]}"
	if [ "$(cat "$work/$n.done")" = 0 ]; then
		pass "worker $n: $(cat "$work/worker$n.out")"
	else
		fail "worker $n" "$(cat "$work/worker$n.out")"
	fi
done
wait "$dc_pid" "$sig_pid"
check "downcalls were sent during the run" sh -c "[ \$(grep -c '^venus: control: done: ' '$vlog') -gt 20 ]"
fails "no downcall refused" grep -q '^venus: control: failed' "$vlog"
expect "the tree after the storm" "$(printf 'hello.txt\nlink\nsub')" ls "$mnt"
expect "cat after the storm" "hello world" cat "$mnt/hello.txt"
check "umount" umount "$mnt"
venus_exits "venus" "$vlog"
tap_summary "coda_rs_fs under downcalls and signals, $rounds rounds per worker"
