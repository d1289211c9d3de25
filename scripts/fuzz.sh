#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Host fuzzing of coda_msg.rs (the wire format shared by the module and userspace) with
# cargo fuzz / libFuzzer.
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default 20); each target first replays its regression inputs
#            (fuzz/regressions/<target>/), then fuzzes from its corpus (fuzz/corpus/<target>,
#            kept between runs, not in git). A crasher found is copied to
#            fuzz/regressions/<target>/ so every later run replays it.
# Prints 'ok - <target>' / 'not ok - <target>' per target and a final 'N passed, M failed'.
# Environment: FUZZ_JOBS (parallel workers per target, default 1), FUZZ_SEED.
set -uo pipefail
. "$(dirname "$0")/env.sh"

secs=${1:-20}
shift || true
fuzz_dir=$REPO_ROOT/fuzz
cf_root=$CODA_CACHE/cargo-fuzz
export PATH="$cf_root/bin:$HOME/.cargo/bin:$PATH"

# cargo-fuzz lives in the cache so that a fresh machine (or CI) installs it once.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
	step "installing cargo-fuzz into $cf_root"
	cargo install cargo-fuzz --locked --root "$cf_root" >&2 || die "cargo install cargo-fuzz failed"
fi
cargo +nightly --version >/dev/null 2>&1 || die "no nightly toolchain (rustup toolchain install nightly)"

[ -d "$fuzz_dir" ] || die "no $fuzz_dir"
# cargo fuzz looks for a project above its fuzz folder; the repository root has none, so
# the folder is named explicitly.
cf() { cargo +nightly fuzz "$1" --fuzz-dir "$fuzz_dir" "${@:2}"; }
mapfile -t all < <(cf list 2>/dev/null)
[ ${#all[@]} -gt 0 ] || die "cargo fuzz list found no targets"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

step "building ${#targets[@]} fuzz targets (nightly, ASan, debug assertions)"
cf build --debug-assertions >&2 || die "cargo fuzz build failed"

passed=0 failed=0
log_dir=$REPO_ROOT/results/fuzz
mkdir -p "$log_dir"
# libFuzzer writes fuzz-N.log into the working directory when it runs jobs: keep it there.
cd "$log_dir" || die "no $log_dir"
jobs=()
[ "${FUZZ_JOBS:-1}" -gt 1 ] && jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
for t in "${targets[@]}"; do
	reg=$fuzz_dir/regressions/$t
	corpus=$fuzz_dir/corpus/$t
	art=$fuzz_dir/artifacts/$t
	mkdir -p "$reg" "$corpus" "$art"
	ok=1
	# Replay: every regression input once, through the same instrumented binary.
	if compgen -G "$reg/*" >/dev/null; then
		if ! cf run --debug-assertions "$t" "$reg"/* -- -runs=1 \
			>"$log_dir/$t.replay.log" 2>&1; then
			echo "# $t: a regression input fails again (see $log_dir/$t.replay.log)"
			ok=0
		fi
	fi
	before=$(ls "$art" | wc -l)
	# -max_len covers the largest message (VC_MAXMSGSIZE 8552) plus the targets' selectors.
	cf run --debug-assertions "$t" "$corpus" -- \
		-max_total_time="$secs" -max_len=9000 -timeout=10 -rss_limit_mb=2048 \
		-seed="${FUZZ_SEED:-0}" "${jobs[@]}" -print_final_stats=1 >"$log_dir/$t.log" 2>&1
	rc=$?
	after=$(ls "$art" | wc -l)
	if [ "$rc" != 0 ] || [ "$after" -gt "$before" ]; then
		ok=0
		for f in "$art"/*; do
			[ -f "$f" ] || continue
			cp -n "$f" "$reg/"
			echo "# $t: crasher kept as regressions/$t/$(basename "$f")"
		done
		grep -m3 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log_dir/$t.log" | sed 's/^/#   /'
	fi
	execs=$(grep -m1 -Eo 'stat::number_of_executed_units: *[0-9]+' "$log_dir/$t.log" | grep -Eo '[0-9]+$')
	if [ "$ok" = 1 ]; then
		passed=$((passed + 1))
		echo "ok - fuzz $t (${secs} s, ${execs:-?} execs)"
	else
		failed=$((failed + 1))
		echo "not ok - fuzz $t"
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
