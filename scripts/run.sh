#!/usr/bin/env bash
# The README's main command: set up what is missing, build the module against the release
# kernel, boot it, load the module and serve a workload of upcalls with the Venus stub.
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
(cd userspace-venus && cargo build --release -q)
step "boot the release kernel and serve a workload"
scripts/vm-run.sh --variant release --out results/run/vm -- bash tests/guest-demo.sh
