#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the guest (scripts/vm-run.sh): runs the command, then leaves the exit code,
# kmemleak's report and the kernel log in OUT for the host's splat scan.
out=$1
shift
# Tells the host the kernel booted far enough to run us (see the retry in vm-run.sh).
: >"$out/started"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
kml=/sys/kernel/debug/kmemleak
# Objects allocated before the test are not ours to judge.
[ -w $kml ] && echo clear >$kml
ht=/proc/sys/kernel/hung_task_timeout_secs
[ -w $ht ] && echo 30 >$ht
"$@"
rc=$?
if [ -w $kml ]; then
	# kmemleak reports an object only once it is older than 5 s and seen in two scans.
	sleep 6
	echo scan >$kml
	echo scan >$kml
	cat $kml >"$out/kmemleak.txt"
fi
dmesg >"$out/dmesg.txt"
echo $rc >"$out/rc"
exit $rc
