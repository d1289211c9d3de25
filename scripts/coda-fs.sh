#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds coda_rs_fs.ko: the kernel's own Coda file system (fs/coda from the fetched Linux
# source) with psdev.c replaced by fs/coda-rs/shim.c and fs/coda-rs/fs-coda.patch applied,
# so that a real `mount -t coda` sends its upcalls through coda_psdev.ko. Needs
# coda_psdev.ko built first (its Module.symvers).
# usage: scripts/coda-fs.sh KDIR OUTDIR
# Environment: CODA_PSDEV_SYMVERS, the Module.symvers of the coda_psdev.ko built for KDIR
# (default: the repository's); CODA_FS_SRC, the kernel's fs/coda (default: below).
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=$1 out=$2
mkdir -p "$out"
out=$(cd "$out" && pwd)
# The kernel's fs/coda: CODA_FS_SRC if given, else the sources KDIR was built from (an O=
# build tree links them as `source`, as DKMS's kernel trees do), else the fetched KSRC's.
if [ -n "${CODA_FS_SRC:-}" ]; then
	src=$CODA_FS_SRC
elif [ -f "$kdir/source/fs/coda/inode.c" ]; then
	src=$kdir/source/fs/coda
elif [ -f "$kdir/fs/coda/inode.c" ]; then
	src=$kdir/fs/coda
else
	src=$KSRC/fs/coda
fi
[ -f "$src/inode.c" ] || die "coda-fs: no fs/coda sources in $src (give CODA_FS_SRC=<linux>/fs/coda)"
patchfile=$REPO_ROOT/fs/coda-rs/fs-coda.patch
symvers=${CODA_PSDEV_SYMVERS:-$REPO_ROOT/Module.symvers}
[ -f "$symvers" ] || die "coda-fs: build coda_psdev.ko first (no $symvers)"
rm -rf "$out"
mkdir -p "$out"
for f in cache.c cnode.c inode.c dir.c file.c upcall.c coda_linux.c symlink.c pioctl.c \
	sysctl.c coda_cache.h coda_fs_i.h coda_int.h coda_linux.h coda_psdev.h; do
	cp "$src/$f" "$out/"
done
cp "$REPO_ROOT"/fs/coda-rs/{shim.c,coda_rs.h,Kbuild} "$out/"
# Exactly, or not at all: no fuzz, no partial application.
patch -s -p1 --dry-run --fuzz=0 -d "$out" <"$patchfile" ||
	die "coda-fs: fs/coda-rs/fs-coda.patch does not apply cleanly to $src: the kernel's fs/coda changed"
patch -s -p1 --fuzz=0 --no-backup-if-mismatch -d "$out" <"$patchfile"
# KMAKE_TOOLS (the Makefile's CC=... LD=...) override what a caller's make passes on.
# shellcheck disable=SC2086
make -s -C "$kdir" M="$out" "${KMAKE_VARS[@]}" ${KMAKE_TOOLS:-} KBUILD_EXTRA_SYMBOLS="$symvers" modules
