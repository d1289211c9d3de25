#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Replay: the upcalls the kernel's C Coda client sent in the peer test (tests/peer-coda.sh)
# are made again through our control device /dev/coda_ctl into our /dev/cfs0, served by the
# same Venus stub seeded and started the same way.  The stub must receive the same messages
# (uniques aside) and answer them as it answered the C client: same bytes but for the
# uniques, the timestamps of coda_vattr and the container fd numbers.
#
# What no upcall carries is brought along from the recorded run: the data the C client
# wrote into containers (the stub refills each container before copying it back), and the
# stub's downcalls (made again through its control FIFO after the same replies, so that a
# CODA_REPLACE changes the same fid at the same point).
#
# usage (inside the guest, as root, coda.ko unloaded, coda_psdev.ko not loaded):
#   tests/replay.sh REPO OUTDIR PEER_OUT
# PEER_OUT holds the peer test's upcalls.rec, replies.rec and containers.rec; OUTDIR gets
# the replay's recordings and the stub's log.  Prints one line per check, 'ok - name' or
# 'not ok - name', and exits non-zero when any check fails.
# Environment: VENUS_ARGS, extra arguments for venus, as in the peer test.
set -u
export LC_ALL=C

repo=${1:?usage: $0 REPO OUTDIR PEER_OUT}
out=${2:?usage: $0 REPO OUTDIR PEER_OUT}
peer=${3:?usage: $0 REPO OUTDIR PEER_OUT}
. "$repo/tests/peer-seed.sh"
bin=$repo/userspace-venus/target/release
mkdir -p "$out"
rm -f "$out"/{upcalls,replies,containers,ctl-replies,ctl-downcalls}.rec "$out/venus.log"

fails=0
checks=0
pass() { checks=$((checks + 1)); echo "ok - $1"; }
fail() {
	checks=$((checks + 1)) fails=$((fails + 1))
	echo "not ok - $1"
	shift
	[ $# -gt 0 ] && printf '#   %s\n' "$@"
}
# tap CMD...: runs a command that prints TAP lines itself, and counts them.
tap() {
	local lines
	lines=$("$@")
	local rc=$?
	[ -n "$lines" ] && printf '%s\n' "$lines"
	checks=$((checks + $(grep -c '^\(not \)\?ok - ' <<<"$lines")))
	fails=$((fails + $(grep -c '^not ok - ' <<<"$lines")))
	if [ $rc != 0 ] && ! grep -q '^not ok - ' <<<"$lines"; then
		fail "$(basename "$1") $2 ran" "exit $rc"
	fi
}
finish() {
	echo "# $((checks - fails)) of $checks checks passed; recordings and the stub's log in $out"
	[ "$fails" = 0 ]
	exit
}

for f in upcalls.rec replies.rec containers.rec; do
	[ -f "$peer/$f" ] || { echo "Bail out! no $peer/$f: run tests/peer-coda.sh with PEER_OUT=$peer first"; exit 1; }
done

# The FIFO and the containers need a file system with FIFOs and O_TMPFILE (the guest's
# /tmp may be the host's over 9p), as in the peer test.
work=$(mktemp -d)
mount -t tmpfs -o size=256m replay "$work" || { echo "Bail out! tmpfs"; exit 1; }
seed=$work/seed cache=$work/cache fifo=$work/control
mkdir "$seed" "$cache"
peer_seed "$seed"

venus_pid= loaded=
cleanup() {
	[ -n "$venus_pid" ] && kill -TERM "$venus_pid" 2>/dev/null && wait "$venus_pid" 2>/dev/null
	[ -n "$loaded" ] && rmmod coda_psdev
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

if insmod "$repo/coda_psdev.ko"; then
	loaded=1
	pass "insmod coda_psdev.ko"
else
	fail "insmod coda_psdev.ko"
	finish
fi

# The peer test's options, without the mount (no file system sits on our device here).
# shellcheck disable=SC2086 # VENUS_ARGS is a list of words
"$bin/venus" ${VENUS_ARGS:-} "${PEER_VENUS_OPTS[@]}" --cache-dir "$cache" --record "$out/upcalls.rec" \
	--record-replies "$out/replies.rec" --record-containers "$out/containers.rec" \
	--replay-containers "$peer/containers.rec" --control "$fifo" "$seed" 2>"$out/venus.log" &
venus_pid=$!
for _ in $(seq 300); do
	grep -qs '^venus: serving' "$out/venus.log" && break
	kill -0 "$venus_pid" 2>/dev/null || break
	sleep 0.1
done
if grep -q '^venus: serving' "$out/venus.log"; then
	pass "venus serves our /dev/cfs0"
else
	fail "venus serves our /dev/cfs0" "$(cat "$out/venus.log")"
	finish
fi

tap "$bin/coda-ctl" replay --writes "$peer/replies.rec" --control "$fifo" \
	--replies-out "$out/ctl-replies.rec" --downcalls-out "$out/ctl-downcalls.rec" "$peer/upcalls.rec"

stats=$("$bin/coda-ctl" stats 2>&1)
echo "# $stats"
if grep -q 'outstanding 0 ' <<<"$stats"; then
	pass "no upcall left outstanding"
else
	fail "no upcall left outstanding"
fi

kill -TERM "$venus_pid"
wait "$venus_pid"
rc=$?
venus_pid=
if [ $rc = 0 ]; then pass "venus exits 0 on SIGTERM"; else fail "venus exits 0 on SIGTERM" "exit $rc"; fi
if grep -E 'fatal|container replay' "$out/venus.log" >"$work/errors"; then
	fail "no fatal error or container mismatch in the venus log" "$(head -5 "$work/errors")"
else
	pass "no fatal error or container mismatch in the venus log"
fi
if cmp -s "$peer/containers.rec" "$out/containers.rec"; then
	pass "containers copied back as in the peer test"
else
	fail "containers copied back as in the peer test" \
		"$(stat -c '%n %s bytes' "$peer/containers.rec" "$out/containers.rec")"
fi

if rmmod coda_psdev; then
	loaded=
	pass "rmmod coda_psdev"
else
	fail "rmmod coda_psdev"
fi

tap "$bin/coda-ctl" compare "$peer" "$out"
finish
