#!/usr/bin/env bash
# Builds coda_rs_fs.ko: the kernel's own Coda file system (fs/coda from the fetched Linux
# source) with psdev.c replaced by fs/coda-rs/shim.c, so that a real `mount -t coda` sends
# its upcalls through coda_psdev.ko. Needs coda_psdev.ko built first (its Module.symvers).
# usage: scripts/coda-fs.sh KDIR OUTDIR
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=$1 out=$2
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$KSRC/fs/coda
[ -f "$REPO_ROOT/Module.symvers" ] || die "coda-fs: build coda_psdev.ko first"
rm -rf "$out"
mkdir -p "$out"
for f in cache.c cnode.c inode.c dir.c file.c upcall.c coda_linux.c symlink.c pioctl.c \
	sysctl.c coda_cache.h coda_fs_i.h coda_int.h coda_linux.h coda_psdev.h; do
	cp "$src/$f" "$out/"
done
cp "$REPO_ROOT"/fs/coda-rs/{shim.c,coda_rs.h,Kbuild} "$out/"

# mount: the device is one of our misc devices, and "Venus is there" is the engine's to say.
sed -i -e 's|#include "coda_int.h"|#include "coda_int.h"\n#include "coda_rs.h"|' \
	-e 's|if (!S_ISCHR(inode->i_mode) \|\| imajor(inode) != CODA_PSDEV_MAJOR) {|idx = coda_psdev_index(inode->i_rdev);\n\tif (!S_ISCHR(inode->i_mode) \|\| idx < 0) {|' \
	-e '/^\tidx = iminor(inode);$/d' \
	-e 's|if (!vc->vc_inuse) {|if (!coda_psdev_venus_present(ctx->idx)) {|' \
	-e 's|^\tmutex_destroy(&vcp->vc_mutex);$|\t/* Linux destroys the mutex here, and a later mount or downcall on the same device trips lockdep: the mutex lives as long as the module. */|' \
	"$out/inode.c"
# upcall.c: keep the message builders and coda_downcall, drop the queueing (from
# coda_block_signals up to the comment before the downcalls) and append our coda_upcall.
sed -i -e 's|#include "coda_int.h"|#include "coda_int.h"\n#include "coda_rs.h"|' \
	-e '/^static void coda_block_signals/,/The statements below are part of the Coda opportunistic/{/The statements below/!d}' \
	-e 's|^    The statements below|/*\n    The statements below|' \
	"$out/upcall.c"
grep -q '^int coda_downcall' "$out/upcall.c" || die "coda-fs: patching upcall.c lost coda_downcall"
cat "$REPO_ROOT/fs/coda-rs/upcall_rs.c" >>"$out/upcall.c"
# file.c: the container inherits O_APPEND after it was opened, but its f_iocb_flags were
# computed at open, so Linux's C client loses O_APPEND (echo >> file overwrites).
sed -i 's|^\thost_file->f_flags \|= coda_file->f_flags & (O_APPEND \| O_SYNC);$|&\n\thost_file->f_iocb_flags = iocb_flags(host_file);|' "$out/file.c"
grep -q 'f_iocb_flags = iocb_flags(host_file)' "$out/file.c" ||
	die "coda-fs: patching file.c failed: the kernel's fs/coda changed"
for check in 'coda_psdev_index(inode->i_rdev)' 'coda_psdev_venus_present(ctx->idx)' \
	'the mutex lives as long as the module'; do
	grep -qF "$check" "$out/inode.c" || die "coda-fs: patching inode.c failed ($check): the kernel's fs/coda changed"
done
grep -q 'coda_psdev_upcall' "$out/upcall.c" && ! grep -q 'coda_waitfor_upcall' "$out/upcall.c" ||
	die "coda-fs: patching upcall.c failed: the kernel's fs/coda changed"
make -s -C "$kdir" M="$out" "${KMAKE_VARS[@]}" KBUILD_EXTRA_SYMBOLS="$REPO_ROOT/Module.symvers" modules
