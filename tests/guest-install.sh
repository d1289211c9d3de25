#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Inside a guest, as root, neither module loaded: installs the driver the way the README's
# Install section says and checks that it then behaves like an installed kernel module:
# `make install` (both modules, depmod), modprobe and modprobe -r, options from
# /etc/modprobe.d/, the boot-time load through modules-load.d (systemd-modules-load, the
# program systemd runs at boot), the udev rule's /dev/coda/N as Venus's device,
# `mount -t coda` loading coda_rs_fs through its fs-coda alias while the stock coda.ko is
# installed too, and the modules DKMS built and installed on the host.
#
# usage: tests/guest-install.sh KDIR CODA_FS_OUT [DKMS_ROOT]
#   KDIR         the running kernel's build tree (the modules were built against it)
#   CODA_FS_OUT  where coda_rs_fs.ko was built (make coda-fs's CODA_FS_OUT)
#   DKMS_ROOT    the INSTALL_MOD_PATH-like root `dkms install --installtree` filled
# Prints TAP lines (tests/tap.sh); exits non-zero when a check fails.
set -u
export LC_ALL=C
kdir=${1:?usage: $0 KDIR CODA_FS_OUT [DKMS_ROOT]}
cfo=${2:?usage: $0 KDIR CODA_FS_OUT [DKMS_ROOT]}
dkms_root=${3:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
venus=$repo/userspace-venus/target/release/venus
. "$repo/tests/peer-seed.sh"
. "$repo/tests/tap.sh"
rel=$(uname -r)
mods=/lib/modules/$rel
t0=$SECONDS

[ "$(cat "$kdir/include/config/kernel.release")" = "$rel" ] ||
	{ echo "Bail out! $kdir is not the running kernel's ($rel)"; exit 1; }
if lsmod | grep -qE '^(coda_psdev|coda_rs_fs|coda) '; then
	echo "Bail out! a Coda module is loaded already"
	exit 1
fi

# The guest's root is the host's, read-only with tmpfs overlays: give the running kernel
# an installed module tree as a distribution's kernel package would (its modules,
# modules.builtin, the build link; the stock coda.ko among the modules), on a tmpfs.
work=$(mktemp -d)
mkdir -p "$mods"
mount -t tmpfs coda-install "$mods" || { echo "Bail out! tmpfs on $mods"; exit 1; }
mount -t tmpfs -o size=64m coda-install-work "$work" || { echo "Bail out! tmpfs"; exit 1; }
venus_pid=
cleanup() {
	[ -n "$venus_pid" ] && kill -KILL "$venus_pid" 2>/dev/null && wait "$venus_pid" 2>/dev/null
	umount -l "$work/mnt" 2>/dev/null
	modprobe -r coda_rs_fs coda_psdev 2>/dev/null
	make -s -C "$repo" KDIR="$kdir" uninstall >/dev/null 2>&1
	rm -f /etc/modprobe.d/coda-psdev-test.conf
	umount "$work" && rmdir "$work"
	# udevd's kmod context keeps the index files open.
	umount -l "$mods"
}
trap cleanup EXIT
sed 's/\.o$/.ko/' "$kdir/modules.order" | while read -r m; do
	install -D -m 644 "$kdir/$m" "$mods/kernel/$m"
done
cp "$kdir"/modules.builtin "$kdir"/modules.builtin.modinfo "$kdir"/modules.order "$mods/"
sed -i 's:^:kernel/:; s:\.o$:.ko:' "$mods/modules.order"
ln -s "$kdir" "$mods/build"
depmod -a "$rel"
check "the kernel's own coda.ko is installed (the stock module ours coexists with)" \
	modinfo -n coda
loaded() { lsmod | awk '{print $1}' | grep -qx "$1"; }
not_loaded() { ! loaded "$1"; }

# --- make install, as the README says (the modules were built on the host, against the
# same tree: $mods/build is the link to it)
check "make KDIR=/lib/modules/\$(uname -r)/build install" \
	make -s -C "$repo" KDIR="$mods/build" CODA_FS_OUT="$cfo" install
expect "coda_psdev.ko installed under updates/" "$mods/updates/coda_psdev.ko" modinfo -n coda_psdev
expect "coda_rs_fs.ko installed under updates/" "$mods/updates/coda_rs_fs.ko" modinfo -n coda_rs_fs
expect "depmod: coda_rs_fs depends on coda_psdev" "updates/coda_rs_fs.ko: updates/coda_psdev.ko" \
	grep '^updates/coda_rs_fs.ko:' "$mods/modules.dep"
expect "coda_rs_fs carries the alias fs-coda" "fs-coda" sh -c 'modinfo -F alias coda_rs_fs'
check "the modprobe.d, modules-load.d and udev files are installed" test -f \
	/usr/lib/modprobe.d/coda-psdev.conf -a -f /usr/lib/modules-load.d/coda-psdev.conf -a \
	-f /usr/lib/udev/rules.d/60-coda-psdev.rules
# udevd (run by virtme-ng's init) reads the new rule.
udevadm control --reload

# The blacklist in the installed modprobe.d file is what keeps coda.ko out: without the
# configuration files, the alias fs-coda names both modules.
expect "without modprobe.d, fs-coda would load the stock coda.ko too" "coda.ko coda_rs_fs.ko" \
	sh -c 'modprobe -C /dev/null -n -v fs-coda | grep -oE "(coda|coda_rs_fs)\.ko" | sort -u | xargs'
expect "with the installed modprobe.d, fs-coda names coda_rs_fs (and coda_psdev) only" \
	"coda_psdev.ko coda_rs_fs.ko" sh -c 'modprobe -n -v fs-coda | grep -oE "[a-z_]+\.ko" | sort -u | xargs'

# --- modprobe by name
check "modprobe coda_psdev" modprobe coda_psdev
check "modprobe coda_psdev: /dev/cfs0../dev/cfs3 and /dev/coda_ctl" \
	test -c /dev/cfs0 -a -c /dev/cfs3 -a -c /dev/coda_ctl -a ! -e /dev/cfs4
check "modprobe -r coda_psdev" modprobe -r coda_psdev
check "modprobe -r coda_psdev: unloaded, its devices gone" sh -c '! lsmod | grep -q "^coda_psdev " && ! test -e /dev/cfs0'
check "modprobe coda_rs_fs, nothing loaded: pulls in coda_psdev" \
	sh -c 'modprobe coda_rs_fs && lsmod | grep -q "^coda_psdev .*coda_rs_fs"'
check "modprobe -r coda_psdev while coda_rs_fs uses it: refused" \
	sh -c '! modprobe -r coda_psdev 2>/dev/null && lsmod | grep -q "^coda_psdev "'
check "modprobe -r coda_rs_fs: both unloaded" \
	sh -c 'modprobe -r coda_rs_fs && ! lsmod | grep -qE "^coda_(rs_fs|psdev) "'

# --- parameters from /etc/modprobe.d/
echo 'options coda_psdev devices=2 timeout=7 max_outstanding=64' >/etc/modprobe.d/coda-psdev-test.conf
check "modprobe coda_psdev with options in /etc/modprobe.d/" modprobe coda_psdev
check "/etc/modprobe.d/: devices=2 gives /dev/cfs0 and /dev/cfs1 only" test -c /dev/cfs1 -a ! -e /dev/cfs2
expect "/etc/modprobe.d/: the driver took timeout=7 and max_outstanding=64" \
	"coda_psdev: 2 devices, timeout 7 s, hard false, max_outstanding 64" \
	sh -c "dmesg | grep -o 'coda_psdev: [0-9]* devices.*' | tail -1"
# The Rust module! parameters of Linux 7.3 are registered with perm 0: no sysfs files
# (see the README). When that changes, this fails and the README must say so.
check "module! parameters: none under /sys/module/coda_psdev/parameters (Linux 7.3)" \
	test -d /sys/module/coda_psdev -a ! -e /sys/module/coda_psdev/parameters/devices
modprobe -r coda_psdev
rm -f /etc/modprobe.d/coda-psdev-test.conf

# --- loaded at boot: systemd-modules-load reads the installed modules-load.d file
check "systemd-modules-load (the boot-time loader) loads coda_psdev" \
	sh -c '/usr/lib/systemd/systemd-modules-load && lsmod | grep -q "^coda_psdev "'
udevadm settle
check "after the boot-time load, /dev/cfs0 opens with nothing loaded by hand" \
	sh -c 'exec 3<>/dev/cfs0'
expect "udev rule: /dev/coda/0 is /dev/cfs0" "/dev/cfs0" readlink -f /dev/coda/0
expect "udev rule: /dev/coda/3 is /dev/cfs3" "/dev/cfs3" readlink -f /dev/coda/3
expect "udev rule: /dev/cfs0 is root's, mode 600" "root root 600" stat -c '%U %G %a' /dev/cfs0
check "coda_rs_fs is not loaded yet" not_loaded coda_rs_fs

# --- mount -t coda: the kernel asks modprobe for fs-coda; the blacklist keeps coda.ko out
mkdir "$work/mnt" "$work/seed" "$work/cache"
peer_seed "$work/seed"
vlog=$work/venus.log
"$venus" -d /dev/coda/0 --cache-dir "$work/cache" --mount "$work/mnt" "$work/seed" 2>"$vlog" &
venus_pid=$!
for _ in $(seq 300); do grep -q " $work/mnt coda " /proc/mounts && break; sleep 0.1; done
check "Venus on /dev/coda/0: mount -t coda loads coda_rs_fs through fs-coda" loaded coda_rs_fs
check "mount -t coda: the stock coda.ko, installed too, stays unloaded" not_loaded coda
expect "mount -t coda: the mount serves Venus's files" "hello world" cat "$work/mnt/hello.txt"
check "umount" umount "$work/mnt"
stop_venus TERM
check "modprobe -r coda_rs_fs after the mount: both unloaded" \
	sh -c 'modprobe -r coda_rs_fs && ! lsmod | grep -qE "^coda_(rs_fs|psdev) "'

check "make uninstall" make -s -C "$repo" KDIR="$mods/build" uninstall
check "make uninstall: modprobe finds neither module" \
	sh -c '! modinfo coda_psdev >/dev/null 2>&1 && ! modinfo coda_rs_fs >/dev/null 2>&1 && ! test -e /usr/lib/modprobe.d/coda-psdev.conf'

# --- the modules DKMS built and installed (on the host, with --installtree)
if [ -n "$dkms_root" ]; then
	d=$dkms_root/$rel/updates/dkms
	check "dkms installed both modules for $rel" test -f "$d/coda_psdev.ko" -a -f "$d/coda_rs_fs.ko"
	mkdir -p "$mods/updates/dkms"
	cp "$d"/coda_psdev.ko "$d"/coda_rs_fs.ko "$mods/updates/dkms/"
	depmod -a "$rel"
	expect "the DKMS modules are the ones modprobe finds" "$mods/updates/dkms/coda_rs_fs.ko" \
		modinfo -n coda_rs_fs
	check "modprobe coda_rs_fs (DKMS build): pulls in coda_psdev, /dev/cfs0 exists" \
		sh -c 'modprobe coda_rs_fs && lsmod | grep -q "^coda_psdev .*coda_rs_fs" && test -c /dev/cfs0'
	check "modprobe -r coda_rs_fs (DKMS build)" \
		sh -c 'modprobe -r coda_rs_fs && ! lsmod | grep -qE "^coda_(rs_fs|psdev) "'
	rm -rf "$mods/updates/dkms"
fi
tap_summary "installation, $((SECONDS - t0)) s"
