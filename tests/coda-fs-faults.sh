#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Allocation failures on the file system's path through our driver (coda_rs_fs.ko over
# coda_psdev.ko, both loaded; debug kernel with failslab): what a failed allocation must
# not leak.
#
# - An OPEN_BY_FD reply whose allocation fails (the driver turns Venus's container fd into
#   a file reference, then grows the reply to carry it): the reply fails with ENOMEM,
#   Venus writes it again, and the reference taken for the failed one is put. The
#   container is a FIFO, so a leaked reference shows: its reader never sees EOF.
#
# usage (inside the guest, as root): tests/coda-fs-faults.sh VENUS_BINARY
set -u
export LC_ALL=C
venus=${1:?usage: $0 VENUS_BINARY}
. "$(dirname "$0")/peer-seed.sh"
. "$(dirname "$0")/tap.sh"

fs=/sys/kernel/debug/failslab
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
[ -d "$fs" ] || { echo "Bail out! no $fs (failslab)"; exit 1; }

work=$(mktemp -d)
mount -t tmpfs -o size=64m coda-faults "$work" || { echo "Bail out! tmpfs"; exit 1; }
mnt=$work/mnt seed=$work/seed cache=$work/cache fifo=$work/control
mkdir "$mnt" "$seed" "$cache"
peer_seed "$seed"
vlog=$work/venus.log

venus_pid=
# Back to failslab's defaults: no stack filter (0 to ULONG_MAX), which fail-nth also obeys.
disarm() {
	echo 0 >"$fs/probability"
	echo N >"$fs/task-filter"
	echo 0 >"$fs/require-start"
	echo 0xffffffffffffffff >"$fs/require-end"
	echo 2 >"$fs/verbose"
	echo 1 >"$fs/times"
}
cleanup() {
	disarm
	[ -n "$venus_pid" ] && kill -TERM "$venus_pid" 2>/dev/null && wait "$venus_pid" 2>/dev/null
	umount -l "$mnt" 2>/dev/null
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

"$venus" -t 1 --cache-dir "$cache" --control "$fifo" --mount "$mnt" "$seed" 2>"$vlog" &
venus_pid=$!
check "faults: mount -t coda served by venus" wait_log "serving"
for _ in $(seq 600); do grep -q " $mnt coda " /proc/mounts && break; sleep 0.1; done

# The function that attaches the file reference, from the module's symbols: failslab fails
# only allocations made with it on the stack.
range=$(awk '$4 == "[coda_psdev]" && ($2 == "t" || $2 == "T") { print $1, $3 }' /proc/kallsyms |
	sort | awk 'found { print "0x" $1; exit } /attach_file_handle/ { printf "0x%s ", $1; found = 1 }')
read -r start end <<<"$range"
check "faults: attach_file_handle is in kallsyms" test -n "${end:-}"

mkfifo "$work/pipe"
{ timeout 30 cat "$work/pipe" >"$work/pipe.out"; echo $? >"$work/pipe.rc"; } &
check "control: container /sub/nested.txt pipe" control "container /sub/nested.txt $work/pipe"

# Venus's writes fail once in that function.
echo 0 >"$fs/probability"
echo 1 >"$fs/interval"
echo 1 >"$fs/times"
echo 0 >"$fs/space"
echo N >"$fs/ignore-gfp-wait"
echo Y >"$fs/task-filter"
echo 32 >"$fs/stacktrace-depth"
echo 1 >"$fs/verbose"
check "faults: failslab limited to attach_file_handle ($start..$end)" \
	sh -c "echo '$start' >'$fs/require-start' && echo '$end' >'$fs/require-end'"
for t in /proc/"$venus_pid"/task/*; do echo 1 >"$t/make-it-fail"; done
echo 100 >"$fs/probability"

check "faults: the open through the FIFO container" sh -c "echo through the pipe >'$mnt/sub/nested.txt'"
expect "faults: the reply's allocation failed once" "0" cat "$fs/times"
disarm
check "faults: Venus wrote the reply again after ENOMEM" wait_log "ENOMEM, written again"
for _ in $(seq 300); do [ -s "$work/pipe.rc" ] && break; sleep 0.1; done
expect "faults: the FIFO's reader sees EOF after the close (no reference leaked)" "0" cat "$work/pipe.rc"
expect "faults: and got the data" "through the pipe" cat "$work/pipe.out"

venus_exits "venus" "$vlog"
check "faults: umount" umount "$mnt"
tap_summary "venus log in $vlog"
