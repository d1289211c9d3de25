#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the debug guest (scripts/test.sh): the KUnit suites (they run when the module
# loads), the harness, and the peer test against the kernel's own C coda.ko.
# Each part writes its own log in OUT; the host counts the results.
# usage: tests/guest-tests.sh OUT KDIR [CODA_FS_OUT [DKMS_ROOT]] (the last two: the install test)
out=$1 kdir=$2 coda_fs_out=${3:-} dkms_root=${4:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/userspace-venus/target/release
rc=0

echo "== KUnit (coda_psdev_upcall)"
insmod "$repo/coda_psdev.ko" || rc=1
dmesg | sed -n '/# Subtest: coda_psdev_upcall/,/ok [0-9]* coda_psdev_upcall/p' >"$out/kunit.tap"
rmmod coda_psdev || rc=1

echo "== harness"
"$bin/harness" --ko "$repo/coda_psdev.ko" 2>&1 | tee "$out/harness.log"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1

echo "== reliability: syscall fuzzer, lifecycle, hostile callers, fault injection, soak"
LOADS=100 bash "$repo/tests/guest-reliability.sh" "$repo" 2>&1 | tee "$out/reliability.log"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1

if [ -x "$repo/tests/peer-coda.sh" ] && [ -x "$bin/venus" ]; then
	echo "== peer test against the C coda.ko"
	insmod "$kdir/fs/coda/coda.ko" || rc=1
	PEER_OUT=$out/peer bash "$repo/tests/peer-coda.sh" "$bin/venus" 2>&1 | tee "$out/peer.log"
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1
	rmmod coda || rc=1
	if [ -x "$repo/tests/replay.sh" ]; then
		echo "== replay of the C client's upcalls through our control device"
		bash "$repo/tests/replay.sh" "$repo" "$out/replay" "$out/peer" 2>&1 | tee "$out/replay.log"
		[ "${PIPESTATUS[0]}" = 0 ] || rc=1
	fi
fi
if [ -f "$out/coda_rs_fs.ko" ]; then
	echo "== the kernel's Coda file system on our driver (coda_rs_fs.ko)"
	bash "$repo/tests/guest-coda-fs.sh" "$out" 2>&1 | tee "$out/coda-fs.log"
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1
fi
if [ -n "$coda_fs_out" ]; then
	echo "== installed as the README says: make install, modprobe, modules-load.d, udev, DKMS's build"
	bash "$repo/tests/guest-install.sh" "$kdir" "$coda_fs_out" "$dkms_root" 2>&1 | tee "$out/install.log"
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1
fi
exit $rc
