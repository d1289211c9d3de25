# SPDX-License-Identifier: GPL-2.0
# Out-of-tree build of coda_psdev.ko, in the kernel's conventions:
#   make KDIR=<kernel build dir>            build the module
#   make KDIR=... rust-analyzer             write rust-project.json
#   make KDIR=... CLIPPY=1                  build with clippy
#   make coda-fs                            the kernel's Coda file system on this driver
#   make install [INSTALL_MOD_PATH=DIR]     both modules (modules_install), depmod, and the
#                                           modprobe.d, modules-load.d and udev files
#   make uninstall [INSTALL_MOD_PATH=DIR]   the same, removed
#   make dkms-src [DESTDIR=DIR]             the DKMS source tree, /usr/src/coda-psdev-VERSION
#   make rustfmtcheck / rustfmt / clean
# `make -C <kernel build dir> M=$PWD LLVM=-22 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc`
# builds coda_psdev.ko too (Kbuild). KDIR defaults to the cached debug build made by
# scripts/setup.sh, or, without one, the running kernel's /lib/modules/$(uname -r)/build.
KDIR ?= $(shell bash -c '. scripts/env.sh && d=$$(kbuild_dir $${VARIANT:-debug}) && \
	if [ -f $$d/.built ] || [ -n "$$VARIANT" ]; then echo $$d; else echo /lib/modules/$$(uname -r)/build; fi')
CODA_CACHE ?= $(HOME)/.cache/coda-psdev
# bindgen-cli (for rust-analyzer) comes from the cache scripts/setup.sh fills.
export PATH := $(CODA_CACHE)/bindgen/bin:$(PATH)
export LIBCLANG_PATH ?= /usr/lib/llvm-22/lib
LLVM ?= -22
RUSTC ?= /usr/bin/rustc
RUSTDOC ?= /usr/bin/rustdoc
# The same toolchain as the kernel: Debian's, not rustup's first-on-PATH one.
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
# CC and LD as the kernel derives them from LLVM, explicitly: DKMS 3.0 appends CC=clang
# LD=ld.lld to its make command for a clang-built kernel, which would win over LLVM=-22.
LLVM_PREFIX = $(if $(filter %/,$(LLVM)),$(LLVM))
LLVM_SUFFIX = $(if $(filter -%,$(LLVM)),$(LLVM))
LLVM_TOOLS = $(if $(LLVM),CC=$(LLVM_PREFIX)clang$(LLVM_SUFFIX) LD=$(LLVM_PREFIX)ld.lld$(LLVM_SUFFIX))
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) $(LLVM_TOOLS) RUSTC=$(RUSTC) \
	RUSTDOC=$(RUSTDOC) CLIPPY_DRIVER=$(CLIPPY_DRIVER)
RUST_SOURCES = $(wildcard *.rs)
# Where `make coda-fs` builds coda_rs_fs.ko, and `make install` takes it from.
CODA_FS_OUT ?= $(CURDIR)/results/coda-fs
INSTALL_MOD_PATH ?=
# The kernel's default for external modules; depmod prefers it to the kernel's own tree.
INSTALL_MOD_DIR ?= updates
# The modprobe.d, modules-load.d and udev files go under DESTDIR (default: INSTALL_MOD_PATH).
DESTDIR ?= $(INSTALL_MOD_PATH)
KRELEASE = $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
DKMS_VERSION = $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
# What DKMS needs to build both modules, relative to the repository.
DKMS_FILES = Makefile Kbuild dkms.conf $(RUST_SOURCES) uapi/coda_psdev.h scripts/env.sh \
	scripts/coda-fs.sh fs/coda-rs/Kbuild fs/coda-rs/coda_rs.h fs/coda-rs/shim.c \
	fs/coda-rs/fs-coda.patch install/coda-psdev.modprobe.conf \
	install/coda-psdev.modules-load.conf install/60-coda-psdev.rules
SYSTEM_FILES = usr/lib/modprobe.d/coda-psdev.conf usr/lib/modules-load.d/coda-psdev.conf \
	usr/lib/udev/rules.d/60-coda-psdev.rules

.PHONY: all modules rust-analyzer rustfmt rustfmtcheck clean setup test run bench coda-fs \
	install uninstall dkms-src

all modules:
	$(KMAKE) modules

# The kernel's own Coda file system, built against this driver: results/coda-fs/coda_rs_fs.ko
coda-fs: modules
	KMAKE_TOOLS="$(LLVM_TOOLS)" scripts/coda-fs.sh $(KDIR) $(CODA_FS_OUT)

# Installs what `make` and `make coda-fs` built (it builds nothing: `make && make coda-fs`
# first, then `sudo make install`), as the kernel's modules_install does for external
# modules: $(INSTALL_MOD_PATH)/lib/modules/<release>/$(INSTALL_MOD_DIR)/, then depmod.
install:
	@[ -n "$(KRELEASE)" ] || { echo "make install: $(KDIR) is not a kernel build tree (KDIR=...)" >&2; exit 1; }
	@[ -f coda_psdev.ko ] || { echo "make install: build first: make KDIR=$(KDIR)" >&2; exit 1; }
	$(KMAKE) INSTALL_MOD_PATH=$(INSTALL_MOD_PATH) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) modules_install
	@if [ -f $(CODA_FS_OUT)/coda_rs_fs.ko ]; then \
		echo $(MAKE) -C $(KDIR) M=$(CODA_FS_OUT) modules_install; \
		$(MAKE) -C $(KDIR) M=$(CODA_FS_OUT) LLVM=$(LLVM) $(LLVM_TOOLS) RUSTC=$(RUSTC) RUSTDOC=$(RUSTDOC) \
			INSTALL_MOD_PATH=$(INSTALL_MOD_PATH) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) modules_install; \
	else \
		echo "make install: no $(CODA_FS_OUT)/coda_rs_fs.ko (make coda-fs): coda_psdev.ko only" >&2; \
	fi
	install -D -m 644 install/coda-psdev.modprobe.conf $(DESTDIR)/usr/lib/modprobe.d/coda-psdev.conf
	install -D -m 644 install/coda-psdev.modules-load.conf $(DESTDIR)/usr/lib/modules-load.d/coda-psdev.conf
	install -D -m 644 install/60-coda-psdev.rules $(DESTDIR)/usr/lib/udev/rules.d/60-coda-psdev.rules
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KRELEASE)

uninstall:
	@[ -n "$(KRELEASE)" ] || { echo "make uninstall: $(KDIR) is not a kernel build tree (KDIR=...)" >&2; exit 1; }
	rm -f $(INSTALL_MOD_PATH)/lib/modules/$(KRELEASE)/$(INSTALL_MOD_DIR)/coda_psdev.ko \
		$(INSTALL_MOD_PATH)/lib/modules/$(KRELEASE)/$(INSTALL_MOD_DIR)/coda_rs_fs.ko
	rm -f $(addprefix $(DESTDIR)/,$(SYSTEM_FILES))
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KRELEASE)

# The tree `dkms add/build/install coda-psdev/<version>` wants in /usr/src (dkms.conf).
dkms-src:
	rm -rf $(DESTDIR)/usr/src/coda-psdev-$(DKMS_VERSION)
	for f in $(DKMS_FILES); do \
		install -D -m $$([ -x $$f ] && echo 755 || echo 644) $$f \
			$(DESTDIR)/usr/src/coda-psdev-$(DKMS_VERSION)/$$f || exit 1; \
	done

rust-analyzer:
	$(KMAKE) rust-analyzer

rustfmt:
	rustfmt --edition 2021 $(RUST_SOURCES)

rustfmtcheck:
	rustfmt --edition 2021 --check $(RUST_SOURCES)

clean:
	$(KMAKE) clean
	rm -rf rust-project.json $(CODA_FS_OUT)

setup:
	scripts/setup.sh

run:
	scripts/run.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh
