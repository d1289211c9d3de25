#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Reliability checks of coda_psdev, run as root inside the debug guest:
#   scripts/vm-run.sh --variant debug --out results/rel -- bash tests/guest-reliability.sh [REPO]
# Bounded versions of: the syscall fuzzer, crashes and lifecycle, hostile callers and
# privilege, fault injection (failslab, fail_page_alloc) and the soak. Prints 'ok - name' /
# 'not ok - name' per check and a final 'N passed, M failed'. The kernel's own detectors
# (KASAN, lockdep, kmemleak, hung tasks) are judged by vm-run.sh from the kernel log.
#
# Durations (seconds) can be raised for a long run: FUZZ_SECS (15), FAULT_SECS (3 per
# phase), SOAK_SECS (15), BOUND_SECS (6), LOADS (40 load/unload cycles; the full check is
# 100), OUTSTANDING (1000); FUZZ_SEED picks the fuzzer's seed (default: from the clock,
# printed). Inside vm-run.sh pass them with env, e.g.
#   scripts/vm-run.sh ... -- env FUZZ_SECS=600 SOAK_SECS=600 LOADS=100 bash tests/guest-reliability.sh
set -uo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
bin=$repo/userspace-venus/target/release/psdev-fuzz
ko=$repo/coda_psdev.ko
FUZZ_SECS=${FUZZ_SECS:-15} FAULT_SECS=${FAULT_SECS:-3} SOAK_SECS=${SOAK_SECS:-15}
LOADS=${LOADS:-40} OUTSTANDING=${OUTSTANDING:-1000}
passed=0 failed=0

result() { # name status
	if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi
}

# Runs one psdev-fuzz command, echoes its output and counts its ok/not ok lines; a run that
# dies before its summary line counts as a failure.
part() { # name cmd...
	local name=$1 out rc t0=$(date +%s)
	shift
	echo "# == $name: $*"
	out=$("$@" 2>&1)
	rc=$?
	echo "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
	echo "# $name took $(( $(date +%s) - t0 )) s"
	passed=$((passed + $(echo "$out" | grep -c '^ok - ')))
	failed=$((failed + $(echo "$out" | grep -c '^not ok - ')))
	if ! echo "$out" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then
		result "$name ran to completion (exit $rc)" 1
	fi
}

# Loads the module; its parameters are not in sysfs, so psdev-fuzz is told them through
# CODA_PSDEV_<NAME> variables.
load() { # params...
	local p
	rmmod coda_psdev 2>/dev/null
	unset CODA_PSDEV_TIMEOUT CODA_PSDEV_MAX_OUTSTANDING
	for p in "$@"; do export "CODA_PSDEV_$(echo "${p%%=*}" | tr a-z A-Z)=${p#*=}"; done
	insmod "$ko" "$@"
}

unload() { # name
	local i
	for i in 1 2 3 4 5; do rmmod coda_psdev 2>/dev/null && break; sleep 1; done
	[ ! -d /sys/module/coda_psdev ]
	result "module unloads cleanly after $1" $?
}

[ -x "$bin" ] || { echo "no $bin: cd userspace-venus && cargo build --release"; echo "0 passed, 1 failed"; exit 1; }
[ -f "$ko" ] || { echo "no $ko: make"; echo "0 passed, 1 failed"; exit 1; }
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
# The module's KUnit suites run at every load under kunit.autorun; they are tested by
# guest-tests.sh, and here they would make each of the many loads take seconds.
[ -w /sys/module/kunit/parameters/filter_glob ] && echo "coda_psdev_skip_on_load" >/sys/module/kunit/parameters/filter_glob
start=$(date +%s)

# 2. The syscall fuzzer: a short call timeout so that no blocked call outlives the run.
if load devices=4 timeout=5 max_outstanding=256; then
	part fuzz "$bin" fuzz --secs "$FUZZ_SECS" --threads 4 ${FUZZ_SEED:+--seed "$FUZZ_SEED"}
	unload fuzz
else
	result "load the module for the fuzzer" 1
fi

# 3. Crashes and lifecycle (loads and unloads the module itself).
rmmod coda_psdev 2>/dev/null
part lifecycle "$bin" lifecycle --ko "$ko" --outstanding "$OUTSTANDING" --loads "$LOADS"
# The module's initialisation with each allocation failed in turn: it unwinds, leaks
# nothing (the kmemleak check below), and loads afterwards.
# The module is read from a tmpfs: a 9p read whose allocation fails can break the root.
if initko=$(mktemp -d) && mount -t tmpfs coda-initfaults "$initko" && cp "$ko" "$initko/"; then
	part init-faults "$bin" init-faults --ko "$initko/$(basename "$ko")"
	umount "$initko"
else
	result "a tmpfs for the init-faults module" 1
fi

# 4 and 5. Hostile callers, then fault injection.
if load devices=2 timeout=3; then
	part hostile "$bin" hostile
	part faults "$bin" faults --secs "$FAULT_SECS"
	unload "hostile callers and fault injection"
else
	result "load the module for hostile callers and faults" 1
fi

# Callers over a tiny bound under a storm of signals, with no timeout to end a lost wait.
if load devices=1 timeout=0 max_outstanding=1; then
	part bound "$bin" bound --secs "${BOUND_SECS:-6}"
	unload bound
else
	result "load the module for the bound test" 1
fi

# A caller waiting for room (max_outstanding reached, Venus reading nothing) must still end
# within the module timeout. ROOM_TIMEOUT=0 skips it.
if [ "${ROOM_TIMEOUT:-1}" = 1 ]; then
	if load devices=1 timeout=2 max_outstanding=1; then
		part room-timeout "$bin" room-timeout
		unload room-timeout
	else
		result "load the module for the room-timeout test" 1
	fi
fi

# 6. The soak: short timeout so that unanswered calls end within the run.
if load devices=1 timeout=2; then
	part soak "$bin" soak --secs "$SOAK_SECS"
	unload soak
else
	result "load the module for the soak" 1
fi

# Leaks: kmemleak reports objects older than 5 s seen in two scans.
kml=/sys/kernel/debug/kmemleak
if [ -w $kml ]; then
	sleep 6
	echo scan >$kml
	echo scan >$kml
	leaks=$(grep -c 'unreferenced object' $kml)
	[ "$leaks" = 0 ] || head -40 $kml
	result "kmemleak: no leak after all of the above" "$leaks"
fi
dmesg | grep -q 'blocked for more than' && hung=1 || hung=0
result "no hung task reported" $hung

echo "# reliability run took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
