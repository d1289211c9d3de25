#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Peer test: the Venus stub serves a real `mount -t coda` of the kernel's own C client
# (coda.ko), and ordinary tools must see the expected file tree.
#
# usage (inside the guest, as root): tests/peer-coda.sh VENUS_BINARY
# Prints one line per check, 'ok - name' or 'not ok - name', and exits non-zero when any
# check fails.
# Environment:
#   CODA_KO    coda.ko to insmod when no Coda device exists yet (default: none; the caller
#              loads it)
#   PEER_OUT   directory for venus.log and the recordings (default: a new temp dir):
#              upcalls.rec, replies.rec (replies and downcalls), containers.rec (the data
#              written through containers), which tests/replay.sh replays
#   VENUS_ARGS extra arguments for venus (e.g. "-vv")
# coda.ko's device must not be opened again after the unmount (see docs/TOOLCHAIN.md):
# the caller reloads the module before another mount.
set -u
export LC_ALL=C

venus=$(realpath "${1:?usage: $0 VENUS_BINARY}")
. "$(dirname "$0")/peer-seed.sh"
. "$(dirname "$0")/tap.sh"
out=${PEER_OUT:-$(mktemp -d)}
mkdir -p "$out"
# Containers, the FIFO and the mount point live on a tmpfs of our own: the guest's /tmp
# may be the host's, shared over 9p, which has no FIFOs or O_TMPFILE.
work=$(mktemp -d)
mount -t tmpfs -o size=256m peer-coda "$work" || { echo "Bail out! tmpfs"; exit 1; }
mnt=$work/mnt seed=$work/seed cache=$work/cache fifo=$work/control
mkdir "$mnt" "$seed" "$cache"
rec=$out/upcalls.rec
replies=$out/replies.rec
containers=$out/containers.rec
log=$out/venus.log
rm -f "$rec" "$replies" "$containers"

venus_pid=
cleanup() {
	[ -n "$venus_pid" ] && kill -TERM "$venus_pid" 2>/dev/null && wait "$venus_pid" 2>/dev/null
	mountpoint -q "$mnt" && umount "$mnt"
	umount "$work" && rmdir "$work"
}
trap cleanup EXIT

peer_seed "$seed"

if [ ! -e /dev/cfs0 ]; then
	[ -n "${CODA_KO:-}" ] || { echo "Bail out! no /dev/cfs0 and no CODA_KO"; exit 1; }
	insmod "$CODA_KO" || { echo "Bail out! insmod $CODA_KO failed"; exit 1; }
fi

vlog=$log
# shellcheck disable=SC2086 # VENUS_ARGS is a list of words
"$venus" ${VENUS_ARGS:-} "${PEER_VENUS_OPTS[@]}" --cache-dir "$cache" --record "$rec" \
	--record-replies "$replies" --record-containers "$containers" --control "$fifo" \
	--mount "$mnt" "$seed" 2>"$log" &
venus_pid=$!

# The mount is slow under plain emulation.
for _ in $(seq 600); do
	grep -q " $mnt coda " /proc/mounts && break
	kill -0 "$venus_pid" 2>/dev/null || break
	sleep 0.1
done
if grep -q " $mnt coda " /proc/mounts; then
	pass "mount -t coda served by venus"
else
	fail "mount -t coda served by venus" "$(cat "$log")"
	echo "Bail out! no mount"
	exit 1
fi

cd "$mnt" || exit 1

# Reading the seeded tree.
expect "ls root" "$(printf 'hello.txt\nlink\nsub')" ls
expect "ls -a root" "$(printf '.\n..\nhello.txt\nlink\nsub')" ls -a
expect "cat file" "hello world" cat hello.txt
expect "stat size" "12" stat -c %s hello.txt
expect "stat type and mode" "regular file 644" stat -c '%F %a' hello.txt
expect "stat dir" "directory" stat -c %F sub
expect "root link count" "3" stat -c %h .
expect "inode numbers agree with readdir" "$(stat -c %i hello.txt)" sh -c "ls -i | awk '\$2 == \"hello.txt\" { print \$1 }'"
expect "readlink" "hello.txt" readlink link
expect "cat through symlink" "hello world" cat link
expect "cat nested" "nested" cat sub/nested.txt
fails "cat missing file fails" cat nosuchfile
expect "missing file is ENOENT" "No such file or directory" sh -c 'cat nosuchfile 2>&1 | sed "s/.*: //"'
check "statfs (df)" df "$mnt"
check "access (test -r/-w)" test -r hello.txt -a -w hello.txt

# Directories and files.
check "mkdir" mkdir newdir
expect "new dir type" "directory" stat -c %F newdir
expect "root link count after mkdir" "4" stat -c %h .
fails "mkdir existing fails" mkdir newdir
check "touch" touch newdir/empty
expect "touched file is empty" "0" stat -c %s newdir/empty
check "echo > file" sh -c 'echo "data 1" > newdir/f'
expect "read back" "data 1" cat newdir/f
todo "echo >> file appends" "coda.ko loses O_APPEND: it sets the container's f_flags after open, not f_iocb_flags" \
	"$(printf 'data 1\nmore')" sh -c 'echo more >> newdir/f && cat newdir/f'
check "rewrite with printf >" sh -c 'printf "data 1\nmore\n" > newdir/f'
expect "read back two lines" "$(printf 'data 1\nmore')" cat newdir/f
expect "size of two lines" "12" stat -c %s newdir/f
check "drop caches" sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'
expect "data survives close and reopen" "$(printf 'data 1\nmore')" cat newdir/f
expect "ls new dir" "$(printf 'empty\nf')" ls newdir

# Renames.
check "mv within a directory" mv newdir/f newdir/g
fails "old name gone" test -e newdir/f
expect "new name has the data" "$(printf 'data 1\nmore')" cat newdir/g
check "mv across directories" mv newdir/g sub/g
expect "moved file" "$(printf 'data 1\nmore')" cat sub/g
check "write two files" sh -c 'echo a > newdir/x && echo b > newdir/y'
check "mv over an existing file" mv newdir/x newdir/y
expect "replaced content" "a" cat newdir/y
fails "replaced source gone" test -e newdir/x
check "mkdir for a directory move" mkdir newdir/d1
check "mv a directory" mv newdir/d1 sub/d2
# coda.ko adjusts cached link counts on rename only when it replaces a directory: make it
# fetch Venus's counts.
check "control: zapfile /newdir" control "zapfile /newdir"
check "control: zapfile /sub" control "zapfile /sub"
expect "dir link counts after the move" "$(printf '2\n2\n3')" stat -c %h sub/d2 newdir sub

# Links.
check "ln -s" ln -s ../hello.txt newdir/sl
expect "readlink new symlink" "../hello.txt" readlink newdir/sl
expect "cat through new symlink" "hello world" cat newdir/sl
check "ln (hard link)" ln sub/g sub/g2
expect "link count 2" "2" stat -c %h sub/g
expect "hard link shares data" "$(printf 'data 1\nmore')" cat sub/g2
check "rm hard link" rm sub/g2
expect "link count 1" "1" stat -c %h sub/g

# Attributes.
check "chmod" chmod 600 hello.txt
expect "mode after chmod" "600" stat -c %a hello.txt
check "truncate" truncate -s 5 hello.txt
expect "content after truncate" "hello" cat hello.txt
check "touch -d" touch -d '2001-02-03 04:05:06 UTC' hello.txt
expect "mtime after touch -d" "981173106" stat -c %Y hello.txt

# A larger file, through the container.
head -c 1048576 /dev/urandom >"$work/big"
check "cp 1 MiB in" cp "$work/big" big
check "drop caches again" sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'
check "1 MiB reads back equal" cmp "$work/big" big
expect "1 MiB size" "1048576" stat -c %s big

# Removal.
check "rm" rm sub/g
fails "removed file gone" test -e sub/g
fails "rmdir non-empty fails" rmdir newdir
check "rm files" rm newdir/empty newdir/sl newdir/y big
check "rmdir" rmdir newdir sub/d2
fails "removed dir gone" test -e newdir
expect "ls root at the end" "$(printf 'hello.txt\nlink\nsub')" ls

# Downcalls: the kernel must accept them and keep serving.
check "SIGUSR1 (ZAPDIR root)" kill -USR1 "$venus_pid"
expect "ls after ZAPDIR" "$(printf 'hello.txt\nlink\nsub')" ls
for cmd in "zapfile /hello.txt" "zapdir /sub" "purgefid /sub/nested.txt" "purgeuser 0" \
	"replace /hello.txt" "flush"; do
	check "control: $cmd" control "$cmd"
	expect "cat after $cmd" "hello" cat hello.txt
done
expect "cat nested after the downcalls" "nested" cat sub/nested.txt
check "stat after replace" stat hello.txt


# Venus goes away while mounted: calls that need it fail cleanly. The recording ends here
# (tests/replay.sh replays it); a second Venus serves the rest.
venus_exits "venus" "$log"
expect "downcalls written" "yes" sh -c "grep -q 'exiting after [0-9]* messages, 9 downcalls' '$log' && echo yes || tail -3 '$log'"
# Coda's open turns every failed CODA_OPEN_BY_FD into EIO; a lookup shows Venus's absence.
expect "open without Venus fails: EIO" "Input/output error" sh -c 'cat hello.txt 2>&1 | sed "s/.*: //"'
expect "lookup without Venus fails: ENXIO" "No such device or address" sh -c 'stat new-name 2>&1 | sed "s/.*: //"'
fails "ls without Venus fails" ls sub

# Venus comes back on the same device without mounting again: the mount works again, with
# the tree it serves (the seed: the changes above were in the first Venus's memory).
vlog=$out/venus2.log
# -v: the checks below look for the CLOSE of a given process in its log.
"$venus" ${VENUS_ARGS:-} "${PEER_VENUS_OPTS[@]}" -v --cache-dir "$cache" --control "$fifo" \
	"$seed" 2>"$vlog" &
venus_pid=$!
check "a new Venus opens the device" wait_log "serving"
expect "cat after Venus came back" "hello world" cat hello.txt
expect "ls after Venus came back" "$(printf 'hello.txt\nlink\nsub')" ls

# A file changed on the server: the kernel keeps its cached attributes until Venus sends
# a downcall, then fetches them again and reads the new data.
# coda.ko forgets the mount when Venus opens the device again (its psdev open sets
# vc_sb = NULL), so it drops every downcall of the new Venus, the initial CODA_FLUSH
# included: a known bug of the C client, a TODO there. Our driver keeps the mount.
restart_bug="coda.ko drops downcalls after Venus reopens the device (psdev open sets vc_sb = NULL)"
# after_restart NAME WANT CMD...: expect, or a TODO on coda.ko.
after_restart() {
	if [ -d /sys/module/coda ]; then todo "$1" "$restart_bug" "${@:2}"; else expect "$@"; fi
}
expect "size cached" "7" stat -c %s sub/nested.txt
check "control: write /sub/nested.txt (no downcall)" control "write /sub/nested.txt changed at the server"
expect "size still cached without a downcall" "7" stat -c %s sub/nested.txt
check "control: zapfile /sub/nested.txt" control "zapfile /sub/nested.txt"
after_restart "size refetched after ZAPFILE" "22" stat -c %s sub/nested.txt
expect "changed file is re-read after ZAPFILE" "changed at the server" cat sub/nested.txt
after_restart "size after the new Venus's CODA_FLUSH" "12" stat -c %s hello.txt
check "control: write /hello.txt (no downcall)" control "write /hello.txt purged"
after_restart "size still cached without a downcall (2)" "12" stat -c %s hello.txt
check "control: purgefid /hello.txt" control "purgefid /hello.txt"
after_restart "size refetched after PURGEFID" "7" stat -c %s hello.txt
expect "changed file is re-read after PURGEFID" "purged" cat hello.txt

# Ctrl-C on a cat whose upcall Venus holds: a real ^C on a terminal (script(1)'s pty).
# The cat ends at once with SIGINT; Venus gets CODA_SIGNAL, and its late reply finds no
# caller.
ctrl_c_cat() {
	{
		wait_log "holding OPEN_BY_FD" && touch "$work/held"
		printf '\003'
		sleep 2
	} | timeout 120 script -qec "cat $mnt/sub/nested.txt" /dev/null >/dev/null
	echo $?
}
check "control: hold OPEN_BY_FD" control "hold OPEN_BY_FD"
expect "Ctrl-C on a cat whose upcall Venus holds: SIGINT" "130" ctrl_c_cat
check "the cat's upcall was held" test -e "$work/held"
check "Venus gets CODA_SIGNAL for it" wait_log "the caller of held unique=[0-9]* gave up (CODA_SIGNAL)"
check "control: release" control "release"
check "the late reply finds no caller (ESRCH)" wait_log "held reply unique=[0-9]*: dropped (ESRCH"
expect "cat after the interrupted one" "changed at the server" cat sub/nested.txt

# A signal with a handler (bash's trap) does not end a file system call, only SIGINT and
# SIGKILL do, as Linux's coda_block_signals has it: a shell's SIGCHLD must not fail its
# open. The shell opens the file itself (exec 3<), in the upcall Venus holds.
check "control: hold OPEN_BY_FD (2)" control "hold OPEN_BY_FD"
bash -c 'trap "echo handled >>\"\$1.trap\"" USR1
	exec 3<"$2" || exit 1
	echo opened >"$1.rc"
	cat <&3 >"$1.out"' _ "$work/usr1" "$mnt/sub/nested.txt" &
usr1_pid=$!
check "the shell's upcall is held" wait_log "holding OPEN_BY_FD" 2
kill -USR1 "$usr1_pid"
sleep 1
check "SIGUSR1 with a handler does not end the held open" kill -0 "$usr1_pid"
check "control: release (2)" control "release"
wait "$usr1_pid"
expect "the open completed" "opened" cat "$work/usr1.rc"
expect "and read the file" "changed at the server" cat "$work/usr1.out"
expect "the handler ran once the call returned" "handled" cat "$work/usr1.trap"

# /proc/sys/coda/timeout, as Linux's coda_waitfor_upcall has it: a call never fails by
# itself; after the timeout an interruptible one lets every signal end it, and CODA_CLOSE
# (and STORE, RELEASE) waits until Venus answers. Both drivers the same.
old_timeout=$(cat /proc/sys/coda/timeout)
# 4 s: long enough that the checks made within it are not racing it on a slow guest.
check "timeout: set /proc/sys/coda/timeout to 4" sh -c 'echo 4 >/proc/sys/coda/timeout'
check "control: hold OPEN_BY_FD (3)" control "hold OPEN_BY_FD"
cat sub/nested.txt >"$work/slow.out" 2>"$work/slow.err" &
slow_pid=$!
check "timeout: the open is held" wait_log "holding OPEN_BY_FD" 3
sleep 6
check "timeout: an open held past the timeout still waits" kill -0 "$slow_pid"
check "control: release (3)" control "release"
wait "$slow_pid"
expect "timeout: the open served after the timeout succeeds" "changed at the server" cat "$work/slow.out"

# After the timeout, a signal with a handler ends the call (it was held back before).
check "control: hold OPEN_BY_FD (4)" control "hold OPEN_BY_FD"
bash -c 'trap "echo handled >>\"\$1.trap\"" USR1
	exec 3<"$2" || exit 3
	echo opened >"$1.rc"' _ "$work/late" "$mnt/sub/nested.txt" 2>"$work/late.err" &
late_pid=$!
check "timeout: the shell's open is held" wait_log "holding OPEN_BY_FD" 4
kill -USR1 "$late_pid"
sleep 1
check "timeout: SIGUSR1 within the timeout does not end the call" kill -0 "$late_pid"
check "timeout: past it, the pending SIGUSR1 ends the open" timeout 30 tail --pid="$late_pid" -f /dev/null
wait "$late_pid"
fails "timeout: ... which failed" test -e "$work/late.rc"
# (coda_open turns every failed OPEN_BY_FD into EIO.)
expect "timeout: ... the open's error" "Input/output error" sh -c "sed 's/.*: //' '$work/late.err'"
check "timeout: Venus gets CODA_SIGNAL for it" wait_log "the caller of held unique=[0-9]* gave up (CODA_SIGNAL)" 2
check "control: release (4)" control "release"

# Ctrl-C past the timeout ends a held call as before it.
ctrl_c_late() {
	{
		wait_log "holding OPEN_BY_FD" 5 && sleep 5
		printf '\003'
		sleep 2
	} | timeout 120 script -qec "cat $mnt/sub/nested.txt" /dev/null >/dev/null
	echo $?
}
check "control: hold OPEN_BY_FD (5)" control "hold OPEN_BY_FD"
expect "timeout: Ctrl-C past the timeout ends the held cat" "130" ctrl_c_late
check "control: release (5)" control "release"

# The close of a written file while Venus is stopped past the timeout waits for Venus, and
# Venus gets the CLOSE (the stub stores the data it names).
bash -c 'exec 4>"$1"; echo "stored after the stall" >&4
	touch "$2.written"; while [ ! -e "$2.go" ]; do sleep 0.1; done
	exec 4>&-; echo closed >"$2.closed"' _ "$mnt/stalled.txt" "$work/stall" &
writer_pid=$!
check "stall: the writer has written" sh -c "for i in \$(seq 300); do [ -e '$work/stall.written' ] && exit 0; sleep 0.1; done; exit 1"
check "stall: Venus stopped" kill -STOP "$venus_pid"
touch "$work/stall.go"
sleep 6
fails "stall: the close still waits past the timeout" test -e "$work/stall.closed"
check "stall: Venus continued" kill -CONT "$venus_pid"
wait "$writer_pid"
expect "stall: the close returned once Venus answered" "closed" cat "$work/stall.closed"
check "stall: Venus got the CLOSE" wait_log "CLOSE unique=[0-9]* pid=$writer_pid "
expect "stall: the data is Venus's" "stored after the stall" cat stalled.txt

# SIGSTOP during a call: ours blocks the stop signals, so the process stops once the call
# is done and the call succeeds; Linux's coda.ko lets SIGSTOP through and fails the call
# (README: where we differ). The stop lasts past the timeout: that changes nothing here.
check "control: hold OPEN_BY_FD (6)" control "hold OPEN_BY_FD"
cat sub/nested.txt >"$work/stop.out" 2>"$work/stop.err" &
stop_pid=$!
check "sigstop: the open is held" wait_log "holding OPEN_BY_FD" 6
check "sigstop: SIGSTOP to the cat" kill -STOP "$stop_pid"
sleep 5
check "control: release (6)" control "release"
sleep 1
check "sigstop: SIGCONT to the cat" kill -CONT "$stop_pid"
stop_rc=0
wait "$stop_pid" || stop_rc=$?
if [ -d /sys/module/coda ]; then
	expect "sigstop: coda.ko fails the stopped call" "1" echo "$stop_rc"
	expect "sigstop: ... the open's error" "Input/output error" sh -c "sed 's/.*: //' '$work/stop.err'"
else
	expect "sigstop: the stopped call completes" "0" echo "$stop_rc"
	expect "sigstop: and the cat read the file" "changed at the server" cat "$work/stop.out"
fi
echo "$old_timeout" >/proc/sys/coda/timeout

cd / || exit 1

# Shutdown: Venus closes the device first, then the unmount (coda.ko's lifetime bug).
venus_exits "second venus" "$vlog"
check "umount" umount "$mnt"

# The recording: length-prefixed upcalls, the first one CODA_ROOT.
check "recording is not empty" test -s "$rec"
expect "first recorded upcall is CODA_ROOT" "2" sh -c "od -A n -t u4 -j 4 -N 4 '$rec' | tr -d ' '"
expect "first recorded reply is CODA_ROOT's" "2" sh -c "od -A n -t u4 -j 4 -N 4 '$replies' | tr -d ' '"
check "container data recorded" test -s "$containers"

tap_summary "venus logs and recording in $out"
