#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Boots a cached kernel variant under QEMU with virtme-ng, runs one command in the guest as
# root, and fails when the command fails or the kernel log holds any splat.
#
# usage: scripts/vm-run.sh [--variant debug|release] [--out DIR] [--mem SIZE] -- CMD [ARGS...]
#   --out DIR   where the guest writes console.log, dmesg.txt, kmemleak.txt (default: a new
#               results/vm-<variant>.<pid>, so runs in parallel do not mix); the guest sees
#               it read-write at the same path.
# Environment: CODA_KVM=1 uses KVM (this kind of machine's /dev/kvm cannot run a vanilla
# kernel, so the default is plain emulation); VERBOSE=1 echoes the full console.
set -euo pipefail
. "$(dirname "$0")/env.sh"

variant=debug out= mem=2G
while [ $# -gt 0 ]; do
	case $1 in
	--variant) variant=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || die "usage: $0 [--variant V] [--out DIR] -- CMD..."
kdir=$(kbuild_dir "$variant")
[ -f "$kdir/.built" ] || die "no $variant kernel in $kdir: run scripts/setup.sh $variant"
out=${out:-$REPO_ROOT/results/vm-$variant.$$}
mkdir -p "$out"
out=$(cd "$out" && pwd)

kvm=(--disable-kvm)
[ "${CODA_KVM:-0}" = 1 ] && kvm=()
# loglevel=5 puts warnings and worse on the console; the full log is dumped by the guest.
append="panic_on_warn=1 loglevel=5"
[ "$variant" = debug ] && append+=" kmemleak=on kunit.enable=1 kunit.autorun=1"

cmd=$(printf '%q ' "$@")
boot() {
	rm -f "$out"/{console.log,dmesg.txt,kmemleak.txt,rc,started}
	timeout --foreground "${VM_TIMEOUT:-3000}" vng "${kvm[@]}" -v -r "$kdir/arch/x86/boot/bzImage" \
		--force-9p --cpus 2 --memory "$mem" --rwdir "$out" --cwd "$REPO_ROOT" --append "$append" \
		--exec "bash $REPO_ROOT/tests/guest-wrap.sh $out $cmd" </dev/null 2>&1 |
		if [ "${VERBOSE:-0}" = 1 ]; then tee "$out/console.log"; else
			tee "$out/console.log" | grep --line-buffered -v -E '^\[ *[0-9]+\.[0-9]+\]'; fi
	return "${PIPESTATUS[0]}"
}
set +e
boot
vng_rc=$?
# Under a loaded host, QEMU's emulation has crashed the debug kernel in early boot (in
# identify_cpu, before init): that says nothing about our code, so boot once more. A
# failure after the guest started our command is never retried.
if [ "$vng_rc" != 0 ] && [ ! -f "$out/started" ]; then
	mv "$out/console.log" "$out/console-failed-boot.log" 2>/dev/null
	echo "vm-run: the kernel died before running the command; booting again" >&2
	boot
	vng_rc=$?
fi
set -e

rc=$(cat "$out/rc" 2>/dev/null || echo "$vng_rc")
[ "$vng_rc" = 0 ] || [ "$vng_rc" = "$rc" ] || {
	echo "vm-run: the guest did not finish cleanly (vng exit $vng_rc: 255 is a kernel panic, 124 a timeout)" >&2
	rc=$vng_rc
}

# The splat scan covers the console (which survives a panic), dmesg and kmemleak's report.
pattern='BUG:|WARNING:|KASAN|KFENCE|UBSAN|possible (circular|recursive) locking|deadlock|inconsistent lock state|suspicious RCU|unreferenced object|panicked at|rust_panic|general protection fault|Kernel panic|Oops|blocked for more than|list_(add|del) corruption|refcount_t:|Unable to handle'
if cat "$out"/console.log "$out"/dmesg.txt "$out"/kmemleak.txt 2>/dev/null | grep -E "$pattern" >"$out/splats.txt"; then
	echo "vm-run: SPLAT in the kernel log ($out):" >&2
	head -40 "$out/splats.txt" >&2
	[ "$rc" != 0 ] || rc=1
	echo splat >"$out/splat"
else
	rm -f "$out/splat"
fi
echo "vm-run: exit $rc, logs in $out" >&2
exit "$rc"
