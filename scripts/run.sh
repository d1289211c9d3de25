#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The README's main command: set up what is missing, build the module against the release
# kernel, boot it, load the module and serve a workload of upcalls with the Venus stub: first
# through the control device, then from a real `mount -t coda` of the kernel's own Coda file
# system built against the module (coda_rs_fs.ko).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"
scripts/setup.sh release
kdir=$(kbuild_dir release)
mkdir -p results/run
step "build the module (release kernel) and userspace"
# Build in a copy so that the tests' debug build of ./coda_psdev.ko is left alone.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp Kbuild Makefile ./*.rs "$tmp/"
make -s -C "$tmp" KDIR="$kdir" >/dev/null
cp "$tmp/coda_psdev.ko" results/run/
CODA_PSDEV_SYMVERS=$tmp/Module.symvers scripts/coda-fs.sh "$kdir" "$tmp/coda-fs" >/dev/null
cp "$tmp/coda-fs/coda_rs_fs.ko" results/run/
(cd userspace-venus && cargo build --release -q)
step "boot the release kernel and serve a workload"
scripts/vm-run.sh --variant release --out results/run/vm -- bash tests/guest-demo.sh
