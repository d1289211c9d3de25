# SPDX-License-Identifier: GPL-2.0
# Out-of-tree build of coda_psdev.ko, in the kernel's conventions:
#   make KDIR=<kernel build dir>            build the module
#   make KDIR=... rust-analyzer             write rust-project.json
#   make KDIR=... CLIPPY=1                  build with clippy
#   make coda-fs                            the kernel's Coda file system on this driver
#   make rustfmtcheck / rustfmt / clean
# KDIR defaults to the cached debug build made by scripts/setup.sh.
KDIR ?= $(shell bash -c '. scripts/env.sh && kbuild_dir $${VARIANT:-debug}')
CODA_CACHE ?= $(HOME)/.cache/coda-psdev
# bindgen-cli (for rust-analyzer) comes from the cache scripts/setup.sh fills.
export PATH := $(CODA_CACHE)/bindgen/bin:$(PATH)
export LIBCLANG_PATH ?= /usr/lib/llvm-22/lib
LLVM ?= -22
RUSTC ?= /usr/bin/rustc
RUSTDOC ?= /usr/bin/rustdoc
# The same toolchain as the kernel: Debian's, not rustup's first-on-PATH one.
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) RUSTC=$(RUSTC) RUSTDOC=$(RUSTDOC) \
	CLIPPY_DRIVER=$(CLIPPY_DRIVER)
RUST_SOURCES = $(wildcard *.rs)

.PHONY: all modules rust-analyzer rustfmt rustfmtcheck clean setup test run bench coda-fs

all modules:
	$(KMAKE) modules

# The kernel's own Coda file system, built against this driver: results/coda-fs/coda_rs_fs.ko
coda-fs: modules
	scripts/coda-fs.sh $(KDIR) $(CURDIR)/results/coda-fs

rust-analyzer:
	$(KMAKE) rust-analyzer

rustfmt:
	rustfmt --edition 2021 $(RUST_SOURCES)

rustfmtcheck:
	rustfmt --edition 2021 --check $(RUST_SOURCES)

clean:
	$(KMAKE) clean
	rm -f rust-project.json

setup:
	scripts/setup.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh
