# SPDX-License-Identifier: GPL-2.0
# Sourced by every script: where the cache lives and how the kernel toolchain is invoked.
# shellcheck shell=bash
CODA_CACHE=${CODA_CACHE:-$HOME/.cache/coda-psdev}
KVER_SERIES=7.3
KSRC=${KSRC:-$CODA_CACHE/src/linux-source-$KVER_SERIES}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-22/lib}
export PATH="$CODA_CACHE/bindgen/bin:$CODA_CACHE/venv/bin:$PATH"
# rustup's rustc comes first on PATH and has no rust-src: the kernel needs Debian's.
KMAKE_VARS=(LLVM=-22 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc)
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Prints the kernel build directory of a variant; the name carries a hash of everything
# the build depends on, so a changed fragment or source gives a new directory.
kbuild_dir() {
	local variant=$1 key
	key=$( {
		cat "$CODA_CACHE/src/version" 2>/dev/null
		cat "$REPO_ROOT/config/base.config" "$REPO_ROOT/config/$variant.config"
		/usr/bin/rustc --version 2>/dev/null
		clang-22 --version 2>/dev/null | head -1
	} | sha256sum | cut -c1-16)
	echo "$CODA_CACHE/kbuild/$variant-$key"
}
