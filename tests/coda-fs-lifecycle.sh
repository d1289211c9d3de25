#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Lifecycle of the kernel's Coda file system on our driver (coda_rs_fs.ko over
# coda_psdev.ko), in every order: load, mount, unmount, Venus closing, dying and coming
# back, calls in flight during an unmount, module unload. Includes the order that breaks
# the stock coda.ko (an unmount while Venus still reads the device, then a new mount on
# it: coda.ko destroys the device mutex at unmount and lockdep WARNs).
#
# usage (inside the guest, as root, neither module loaded): tests/coda-fs-lifecycle.sh
#        PSDEV_KO FS_KO VENUS_BINARY
# Prints TAP-like lines (tests/tap.sh); exits non-zero when a check fails.
set -u
export LC_ALL=C
psdev_ko=${1:?usage: $0 PSDEV_KO FS_KO VENUS_BINARY}
fs_ko=${2:?usage: $0 PSDEV_KO FS_KO VENUS_BINARY}
venus=${3:?usage: $0 PSDEV_KO FS_KO VENUS_BINARY}
. "$(dirname "$0")/peer-seed.sh"
. "$(dirname "$0")/tap.sh"

work=$(mktemp -d)
mount -t tmpfs -o size=64m coda-life "$work" || { echo "Bail out! tmpfs"; exit 1; }
mnt=$work/mnt mnt2=$work/mnt2 seed=$work/seed cache=$work/cache fifo=$work/control
mkdir "$mnt" "$mnt2" "$seed" "$cache"
peer_seed "$seed"
vlog=/dev/null

venus_pid=
cleanup() {
	[ -n "$venus_pid" ] && kill -KILL "$venus_pid" 2>/dev/null && wait "$venus_pid" 2>/dev/null
	umount -l "$mnt" 2>/dev/null
	umount -l "$mnt2" 2>/dev/null
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

# start_venus NAME [ARGS...]: a stub serving the seed tree on /dev/cfs0, logging to
# $work/NAME.log. Not in a subshell (not under check): it sets vlog and venus_pid.
start_venus() {
	vlog=$work/$1.log
	shift
	"$venus" -t 2 --cache-dir "$cache" --control "$fifo" "$@" "$seed" 2>"$vlog" &
	venus_pid=$!
}
is_mounted() { grep -q " $1 coda " /proc/mounts; }
wait_mounted() {
	for _ in $(seq 600); do is_mounted "$1" && return 0; sleep 0.1; done
	return 1
}
# errno_of CMD...: the message of the error CMD ends with ("No such device", ...).
errno_of() { "$@" 2>&1 >/dev/null | sed 's/.*: //'; }
# cat_in_background FILE TAG: a cat whose exit status and stderr land in $work/TAG.*
cat_in_background() {
	{ cat "$1" >"$work/$2.out" 2>"$work/$2.err"; echo $? >"$work/$2.rc"; } &
}
wait_file() {
	for _ in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.1; done
	return 1
}

# Loading: the file system needs the driver's exports; the driver cannot go while the
# file system uses them.
fails "coda_rs_fs refuses to load without coda_psdev" insmod "$fs_ko"
check "insmod coda_psdev" insmod "$psdev_ko"
check "insmod coda_rs_fs" insmod "$fs_ko"
fails "rmmod coda_psdev while coda_rs_fs uses it" rmmod coda_psdev

# Unmount while Venus reads on, then mount the same device again: coda.ko's WARN.
start_venus v1 --mount "$mnt"
check "venus starts and mounts" wait_log "serving"
check "mounted" wait_mounted "$mnt"
expect "cat on the mount" "hello world" cat "$mnt/hello.txt"
fails "rmmod coda_rs_fs while mounted" rmmod coda_rs_fs
check "umount while Venus reads on" umount "$mnt"
sleep 1
check "venus still serves after the unmount" kill -0 "$venus_pid"
check "control: mount the same device again" control "mount $mnt"
expect "cat on the second mount" "hello world" cat "$mnt/hello.txt"
fails "a second mount of a mounted device is refused" control "mount $mnt2"
fails "nothing mounted by the refused mount" is_mounted "$mnt2"
check "umount the second mount" umount "$mnt"

# Venus closes the device first, then the unmount.
check "control: mount once more" control "mount $mnt"
expect "cat before Venus closes" "hello world" cat "$mnt/hello.txt"
stop_venus TERM
expect "venus exits 0 on SIGTERM while mounted" "0" echo "$vrc"
# Coda's open turns every failed CODA_OPEN_BY_FD into EIO; a lookup shows Venus's absence.
expect "open without Venus: EIO" "Input/output error" errno_of cat "$mnt/hello.txt"
expect "lookup without Venus: ENXIO" "No such device or address" errno_of stat "$mnt/new-name"
fails "ls without Venus fails" ls "$mnt/sub"
check "umount without Venus" umount "$mnt"

# Venus dies while mounted and comes back: the mount fails calls until then, and works
# after, without mounting again.
start_venus v2 --mount "$mnt"
check "venus starts and mounts (2)" wait_log "serving"
check "mounted (2)" wait_mounted "$mnt"
expect "cat before Venus dies" "nested" cat "$mnt/sub/nested.txt"
stop_venus KILL
expect "venus killed (SIGKILL)" "137" echo "$vrc"
expect "open after Venus died: EIO" "Input/output error" errno_of cat "$mnt/sub/nested.txt"
expect "lookup after Venus died: ENXIO" "No such device or address" errno_of stat "$mnt/new-name"
check "mount stays" is_mounted "$mnt"
start_venus v3
check "venus restarts on the same device" wait_log "serving"
expect "cat after Venus came back" "hello world" cat "$mnt/hello.txt"
expect "ls after Venus came back" "$(printf 'hello.txt\nlink\nsub')" ls "$mnt"

# Venus dies with a call in flight: the caller wakes with ENXIO.
check "control: hold OPEN_BY_FD" control "hold OPEN_BY_FD"
cat_in_background "$mnt/hello.txt" dying
check "the cat's upcall is held" wait_log "holding OPEN_BY_FD"
stop_venus KILL
expect "venus killed with a call in flight" "137" echo "$vrc"
check "the cat ends" wait_file "$work/dying.rc"
expect "the cat's error: EIO" "Input/output error" sed 's/.*: //' "$work/dying.err"
start_venus v4 --blocking-read   # readers blocked in read(2): kicked at shutdown
check "venus restarts (2)" wait_log "serving"

# A hard mount (the file system's sysctl, passed to the driver as CODA_PSDEV_NOINTR): a
# signal does not end the wait; it is delivered once the reply has come.
check "sysctl coda.hard=1" sh -c 'echo 1 >/proc/sys/coda/hard'
check "control: hold OPEN_BY_FD (hard)" control "hold OPEN_BY_FD"
cat "$mnt/hello.txt" >"$work/hard.out" 2>&1 &
hard_pid=$!
check "the cat's upcall is held (hard)" wait_log "holding OPEN_BY_FD" 1
kill -TERM "$hard_pid"
sleep 1
check "SIGTERM does not end a call on a hard mount" kill -0 "$hard_pid"
check "control: release (hard)" control "release"
wait "$hard_pid"
expect "the cat dies of the SIGTERM after the reply" "143" echo $?
check "the held reply was delivered (hard)" wait_log "held reply unique=[0-9]*: delivered" 1
check "sysctl coda.hard=0" sh -c 'echo 0 >/proc/sys/coda/hard'

# umount -f with a call in flight: the call ends with EIO at once (the unmount itself is
# refused while the cat holds the mount), Venus gets CODA_SIGNAL, its late reply ESRCH.
check "control: hold OPEN_BY_FD (2)" control "hold OPEN_BY_FD"
cat_in_background "$mnt/hello.txt" forced
check "the cat's upcall is held (2)" wait_log "holding OPEN_BY_FD" 2
umount -f "$mnt" 2>/dev/null
check "the cat ends after umount -f" wait_file "$work/forced.rc"
expect "the cat's status" "1" cat "$work/forced.rc"
expect "the cat's error: EIO" "Input/output error" sed 's/.*: //' "$work/forced.err"
check "Venus gets CODA_SIGNAL for it" wait_log "the caller of held unique=[0-9]* gave up (CODA_SIGNAL)"
check "control: release" control "release"
check "the late reply finds no caller (ESRCH)" wait_log "held reply unique=[0-9]*: dropped (ESRCH"
if is_mounted "$mnt"; then
	expect "the mount still works after umount -f" "hello world" cat "$mnt/hello.txt"
	check "umount after umount -f" umount "$mnt"
else
	pass "umount -f unmounted"
fi

# Lazy unmount with a call in flight: the call still gets its reply.
check "control: mount again after umount -f" control "mount $mnt"
check "control: hold OPEN_BY_FD (3)" control "hold OPEN_BY_FD"
cat_in_background "$mnt/sub/nested.txt" lazy
check "the cat's upcall is held (3)" wait_log "holding OPEN_BY_FD" 3
check "umount -l with a call in flight" umount -l "$mnt"
fails "detached at once" is_mounted "$mnt"
check "control: release (2)" control "release"
check "the cat ends after the lazy unmount" wait_file "$work/lazy.rc"
expect "the cat read the file" "nested" cat "$work/lazy.out"
expect "the cat's status (2)" "0" cat "$work/lazy.rc"
check "the held reply was delivered" wait_log "held reply unique=[0-9]*: delivered" 2

# Unloading: the file system first; the driver only once Venus has closed the device.
check "rmmod coda_rs_fs (nothing mounted)" rmmod coda_rs_fs
fails "rmmod coda_psdev while Venus has the device open" rmmod coda_psdev
stop_venus TERM
expect "venus exits 0 on SIGTERM" "0" echo "$vrc"
check "rmmod coda_psdev" rmmod coda_psdev

# And back: a reload serves a new mount.
check "insmod coda_psdev again" insmod "$psdev_ko"
check "insmod coda_rs_fs again" insmod "$fs_ko"
start_venus v5 --mount "$mnt" --mount-api fsopen
check "venus starts and mounts (3)" wait_log "serving"
check "mounted with fsopen/fsmount" wait_mounted "$mnt"
expect "cat after the reload" "hello world" cat "$mnt/hello.txt"
check "umount (3)" umount "$mnt"
stop_venus TERM
expect "venus exits 0 on SIGTERM (3)" "0" echo "$vrc"
check "rmmod coda_rs_fs" rmmod coda_rs_fs
check "rmmod coda_psdev (2)" rmmod coda_psdev
fails "no fatal error in the venus logs" grep -l fatal "$work"/v*.log

tap_summary "lifecycle of coda_rs_fs"
