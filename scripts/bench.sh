#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The README's benchmark command (make bench): builds coda_psdev.ko for the release kernel
# and the userspace, boots the release kernel once, runs every measurement of issue 6 in it
# (tests/guest-bench.sh) and prints one table. Writes results/bench/{table.txt,bench.json,
# bench.csv,latency_vs_outstanding.png}; the guest's logs are in results/bench/vm.
# Environment: BENCH_QUICK=1 for a short trial run (figures not comparable).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"
start=$(date +%s)
scripts/setup.sh release
kdir=$(kbuild_dir release)
res=$REPO_ROOT/results/bench
mkdir -p "$res"
rm -f "$res"/{table.txt,bench.json,bench.csv,latency_vs_outstanding.png}

step "build the module (release kernel) and userspace"
# Build in a copy: the test suite rebuilds ./coda_psdev.ko for the debug kernel.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp Kbuild Makefile ./*.rs "$tmp/"
make -s -C "$tmp" KDIR="$kdir" >"$res/module-build.log" 2>&1 ||
	{ cat "$res/module-build.log" >&2; die "module build failed"; }
cp "$tmp/coda_psdev.ko" "$res/coda_psdev.ko"
CODA_PSDEV_SYMVERS=$tmp/Module.symvers scripts/coda-fs.sh "$kdir" "$tmp/coda-fs" >>"$res/module-build.log" 2>&1 ||
	{ cat "$res/module-build.log" >&2; die "coda_rs_fs.ko build failed"; }
cp "$tmp/coda-fs/coda_rs_fs.ko" "$res/coda_rs_fs.ko"
(cd userspace-venus && cargo build --release -q -p bench -p venus)
coda_ko=$kdir/fs/coda/coda.ko
[ -f "$coda_ko" ] || die "no $coda_ko: the release kernel is built without CODA_FS=m"

# Other guests on the host steal the emulated CPUs: say so next to the figures.
others=$(pgrep -c -f '^qemu-system|/qemu-system' || true)
load0=$(cut -d' ' -f1 /proc/loadavg)
[ "${others:-0}" = 0 ] || echo "bench: warning: $others other QEMU guest(s) running: the figures will be noisy" >&2

step "boot the release kernel and measure (QEMU emulation: several minutes)"
set +e
quick=
[ "${BENCH_QUICK:-0}" = 1 ] && quick=quick
VM_TIMEOUT=${VM_TIMEOUT:-1500} scripts/vm-run.sh --variant release --out "$res/vm" --mem 3G -- \
	bash tests/guest-bench.sh "$res/vm" "$res/coda_psdev.ko" "$coda_ko" "$res/coda_rs_fs.ko" $quick >"$res/vm-run.log" 2>&1
vm_rc=$?
set -e
grep -E '^bench: (--|FAILED)' "$res/vm-run.log" | grep -v ' took ' >&2 || true
[ "$vm_rc" = 0 ] || { echo "bench: the guest run failed (exit $vm_rc); the end of its log:" >&2; tail -25 "$res/vm-run.log" >&2; }
[ -s "$res/vm/raw.jsonl" ] || die "no measurements in $res/vm/raw.jsonl"

step "report"
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
userspace-venus/target/release/bench --raw "$res/vm/raw.jsonl" report --out "$res" \
	--meta "date=$(date -u +%Y-%m-%d)" \
	--meta "host=$cpu, $(nproc) cores" \
	--meta "guest=Linux $(cat "$kdir/include/config/kernel.release") release, QEMU TCG (no KVM), 2 vCPUs" \
	--meta "host load=$load0 -> $(cut -d' ' -f1 /proc/loadavg), other guests ${others:-0}" \
	--meta "quick=${BENCH_QUICK:-0}"
echo "bench: $(($(date +%s) - start)) s in all; table, bench.json, bench.csv and the plot in $res" >&2
exit "$vm_rc"
