# SPDX-License-Identifier: GPL-2.0
# TAP helpers of the guest's shell tests (tests/peer-coda.sh, tests/coda-fs-lifecycle.sh):
# one line per check, 'ok - name' or 'not ok - name' with the details as '#' lines.
# Sourced; the caller sets `vlog` (the running Venus stub's log), `fifo` (its control FIFO)
# and `venus_pid` before using wait_log, control and stop_venus, and ends with tap_summary.

fails=0
checks=0
todos=0
pass() { checks=$((checks + 1)); echo "ok - $1"; }
fail() {
	checks=$((checks + 1)); fails=$((fails + 1))
	echo "not ok - $1"
	shift
	[ $# -gt 0 ] && printf '#   %s\n' "$@"
}
# check NAME CMD...: the command succeeds.
check() {
	local name=$1 err
	shift
	if err=$("$@" 2>&1); then pass "$name"; else fail "$name" "command: $*" "$err"; fi
}
# fails NAME CMD...: the command fails.
fails() {
	local name=$1
	shift
	if "$@" >/dev/null 2>&1; then fail "$name" "unexpectedly succeeded: $*"; else pass "$name"; fi
}
# todo NAME REASON WANT CMD...: like expect, for a known bug of the kernel's C client: a TAP
# TODO line that does not count as a failure.
todo() {
	local name=$1 reason=$2 want=$3 got
	shift 3
	checks=$((checks + 1)) todos=$((todos + 1))
	got=$("$@" 2>&1)
	if [ "$got" = "$want" ]; then
		echo "ok - $name # TODO $reason (fixed?)"
	else
		echo "not ok - $name # TODO $reason"
		printf '#   want: %q\n#   got:  %q\n' "$want" "$got"
	fi
}
# expect NAME WANT CMD...: the command succeeds and prints exactly WANT.
expect() {
	local name=$1 want=$2 got
	shift 2
	got=$("$@" 2>&1)
	local rc=$?
	if [ $rc = 0 ] && [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "command: $*" "want: $(printf %q "$want")" "got:  $(printf %q "$got") (exit $rc)"
	fi
}

# wait_log PATTERN: waits up to 60 s for a line of the current venus log matching PATTERN.
# wait_log PATTERN [N]: waits up to 60 s for N (default 1) lines of the venus log matching
# PATTERN.
wait_log() {
	local _
	for _ in $(seq 600); do
		[ "$(grep -c -- "$1" "$vlog")" -ge "${2:-1}" ] && return 0
		sleep 0.1
	done
	return 1
}
# control LINE: sends a command to the stub's control FIFO and waits for its answer.
control() {
	local n
	n=$(grep -c '^venus: control: ' "$vlog")
	timeout 60 sh -c 'echo "$1" >"$2"' _ "$1" "$fifo" || return 1
	for _ in $(seq 600); do
		[ "$(grep -c '^venus: control: ' "$vlog")" -gt "$n" ] && break
		sleep 0.1
	done
	grep '^venus: control: ' "$vlog" | sed -n "$((n + 1))p" | grep -q '^venus: control: done: '
}

# stop_venus SIGNAL: ends the stub started as venus_pid; its exit status goes to vrc.
stop_venus() {
	kill "-$1" "$venus_pid"
	wait "$venus_pid"
	vrc=$?
	venus_pid=
}
# venus_exits NAME LOG: SIGTERM to the stub, which must exit 0 with no fatal error in LOG.
venus_exits() {
	stop_venus TERM
	expect "$1 exits 0 on SIGTERM" "0" echo "$vrc"
	fails "no fatal error in the $1 log" grep -q fatal "$2"
}
# tap_summary WHAT: the count line; fails unless every check passed.
tap_summary() {
	echo "# $((checks - fails - todos)) of $checks checks passed, $todos TODO; $1"
	[ "$fails" = 0 ]
}
