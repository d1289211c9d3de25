#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Inside the guest: the kernel's own Coda file system built against our driver
# (coda_rs_fs.ko, scripts/coda-fs.sh) mounted through /dev/cfs0 and served by the Venus
# stub, with the same workload as the peer test against the C coda.ko, then under a storm
# of downcalls and signals (tests/coda-fs-stress.sh), both again with Venus using
# CODA_PSDEV_IOC_EXCHANGE; allocation failures on its path (tests/coda-fs-faults.sh); then
# its lifecycle in every order (tests/coda-fs-lifecycle.sh).
# usage: tests/guest-coda-fs.sh OUTDIR
out=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
venus=$repo/userspace-venus/target/release/venus
# A short control-device timeout: the file system's calls must not heed it (they use
# /proc/sys/coda/timeout, and never fail by themselves).
insmod "$repo/coda_psdev.ko" timeout=3 || exit 1
insmod "$out/coda_rs_fs.ko" || { rmmod coda_psdev; exit 1; }
PEER_OUT=$out/peer-rs bash "$repo/tests/peer-coda.sh" "$venus"
rc=$?
bash "$repo/tests/coda-fs-stress.sh" "$venus" 6 || rc=1
# Again with Venus trading replies for messages through CODA_PSDEV_IOC_EXCHANGE.
VENUS_ARGS=--exchange PEER_OUT=$out/peer-rs-exchange bash "$repo/tests/peer-coda.sh" "$venus" || rc=1
VENUS_ARGS=--exchange bash "$repo/tests/coda-fs-stress.sh" "$venus" 6 || rc=1
bash "$repo/tests/coda-fs-faults.sh" "$venus" || rc=1
rmmod coda_rs_fs || rc=1
rmmod coda_psdev || rc=1
bash "$repo/tests/coda-fs-lifecycle.sh" "$repo/coda_psdev.ko" "$out/coda_rs_fs.ko" "$venus" || rc=1
exit $rc
