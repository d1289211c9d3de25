#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The README's test command: sets up what is missing, runs the host tests, then the module's
# KUnit suites, the in-guest harness and the peer test under the debug kernel, and fails on
# any splat in the kernel log. Ends with 'N passed, N failed'.
set -uo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"
start=$(date +%s)
res=$REPO_ROOT/results/test
rm -rf "$res"
mkdir -p "$res"
passed=0 failed=0
# Every step's time, for the table at the end: step (env.sh's, redefined) closes the last.
phase_name="setup (scripts/setup.sh)" phase_t=$SECONDS phase_times=()
step() {
	phase_times+=("$(printf '%6d s  %s' $((SECONDS - phase_t)) "$phase_name")")
	phase_name=$* phase_t=$SECONDS
	printf '\n==> %s\n' "$*" >&2
}
count() { # name status
	if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi
}

scripts/setup.sh debug release || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
kdir=$(kbuild_dir debug)

step "host: cargo test"
(cd userspace-venus && cargo test --workspace --release 2>&1) | tee "$res/cargo-test.log"
cargo_rc=${PIPESTATUS[0]}
p=$(grep -Eo '[0-9]+ passed' "$res/cargo-test.log" | awk '{s+=$1} END {print s+0}')
f=$(grep -Eo '[0-9]+ failed' "$res/cargo-test.log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + p)) failed=$((failed + f))
[ "$cargo_rc" = 0 ] || [ "$f" -gt 0 ] || count "cargo test ran" 1

step "host: fuzzing coda_msg.rs (cargo fuzz, ${FUZZ_SECS:-20} s per target)"
scripts/fuzz.sh "${FUZZ_SECS:-20}" 2>&1 | tee "$res/fuzz.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$res/fuzz.log" | tail -1)
if [ -n "$line" ]; then
	passed=$((passed + $(echo "$line" | awk '{print $1}')))
	failed=$((failed + $(echo "$line" | awk '{print $3}')))
else
	count "host fuzzing ran" 1
fi

step "build: module (debug kernel) and userspace"
make -s KDIR="$kdir" >"$res/module-build.log" 2>&1
count "module builds against the debug kernel" $?
(cd userspace-venus && cargo build --release --workspace 2>&1 | tail -3)
count "userspace builds" "${PIPESTATUS[0]}"
make -s rustfmtcheck >/dev/null 2>&1
count "module sources are rustfmt-clean" $?
touch coda_psdev.rs
make KDIR="$kdir" CLIPPY=1 2>&1 | grep -E '^(warning|error)' >"$res/clippy.log"
[ ! -s "$res/clippy.log" ]
count "module is clippy-clean" $?
mkdir -p "$res/vm"
scripts/coda-fs.sh "$kdir" "$res/coda-fs" >"$res/coda-fs-build.log" 2>&1 &&
	cp "$res/coda-fs/coda_rs_fs.ko" "$res/vm/"
count "the kernel's Coda file system builds against our driver" $?
modinfo coda_psdev.ko | grep -q '^parm: *devices:' 
count "modinfo shows the devices parameter" $?

step "conventions: make -C KDIR M=, DKMS, rust-analyzer, checkpatch.pl, SPDX, MAINTAINERS"
scripts/conventions.sh "$kdir" "$res/conventions" 2>&1 | tee "$res/conventions.log"
[ -s "$res/conventions.log" ] || count "conventions checks ran" 1
passed=$((passed + $(grep -cE '^ok - ' "$res/conventions.log")))
failed=$((failed + $(grep -cE '^not ok - ' "$res/conventions.log")))

step "guest: KUnit, harness, peer test (debug kernel)"
scripts/vm-run.sh --variant debug --out "$res/vm" -- bash tests/guest-tests.sh "$res/vm" "$kdir" \
	"$res/coda-fs" "$res/conventions/dkms/modules"
vm_rc=$?
count "guest run completes" "$vm_rc"
if [ -f "$res/vm/splat" ]; then count "kernel log free of splats" 1; else count "kernel log free of splats" 0; fi
# KUnit: one line per case inside our suite.
kp=$(grep -cE '\]\s{4,}ok [0-9]+ ' "$res/vm/kunit.tap" 2>/dev/null)
kf=$(grep -cE '\]\s{4,}not ok [0-9]+ ' "$res/vm/kunit.tap" 2>/dev/null)
echo "KUnit: ${kp:-0} passed, ${kf:-0} failed"
[ "${kp:-0}" -gt 0 ] || kf=$((${kf:-0} + 1))
passed=$((passed + ${kp:-0})) failed=$((failed + ${kf:-0}))
# The harness ends with 'N passed, M failed'; the peer scripts print TAP-like lines, where a
# known bug of the kernel's C client is a TODO that does not count.
for log in harness reliability; do
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$res/vm/$log.log" 2>/dev/null | tail -1)
	if [ -n "$line" ]; then
		passed=$((passed + $(echo "$line" | awk '{print $1}')))
		failed=$((failed + $(echo "$line" | awk '{print $3}')))
	else
		count "$log reported its results" 1
	fi
done
for log in peer replay coda-fs install; do
	if [ -s "$res/vm/$log.log" ]; then
		passed=$((passed + $(grep -cE '^ok - ' "$res/vm/$log.log")))
		failed=$((failed + $(grep -E '^not ok - ' "$res/vm/$log.log" | grep -cv '# TODO')))
	else
		count "$log test ran" 1
	fi
done

phase_times+=("$(printf '%6d s  %s' $((SECONDS - phase_t)) "$phase_name")")
echo "test phases:"
printf '%s\n' "${phase_times[@]}"
echo "test time: $(( $(date +%s) - start )) s; logs in $res"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
