// SPDX-License-Identifier: GPL-2.0

//! The tests, grouped by the module parameters they need, and the helpers they share.

mod bound;
mod exchange;
mod foundation;
mod hard;
mod lifetime;
mod load;
mod poll;
mod read;
mod signals;
mod stats;
mod stress;
mod timeout;
mod write;

use std::time::Duration;

use crate::caller::CallResult;
use crate::caller::Ctl;
use crate::caller::Reply;
use crate::check::wait_until;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::module::ModParams;
use crate::msg;
use crate::runner::test;
use crate::runner::Group;
use crate::runner::Test;
use crate::sys;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

/// Room for the replies the tests write: a header and a token, with some slack.
pub const CAP: usize = 64;
/// How long a test checks that a blocked thread stays blocked.
pub const STAYS: Duration = Duration::from_millis(200);

pub fn groups() -> Vec<Group> {
    vec![
        Group {
            name: "load",
            params: None,
            tests: vec![
                test("insmod refuses devices=0", load::devices_zero),
                test("insmod refuses devices=1000", load::devices_thousand),
                test(
                    "insmod refuses devices=17, one past the maximum",
                    load::devices_seventeen,
                ),
                test(
                    "insmod refuses max_outstanding=0",
                    load::max_outstanding_zero,
                ),
            ],
        },
        Group {
            name: "default",
            params: Some(ModParams::default()),
            tests: default_tests(),
        },
        Group {
            name: "devices2",
            params: Some(ModParams {
                devices: Some(2),
                ..ModParams::default()
            }),
            tests: vec![
                test(
                    "/dev/cfsN are root-only char devices, as many as devices=",
                    foundation::cfs_nodes,
                ),
                test(
                    "a minor past the device count is refused EINVAL",
                    foundation::minor_range,
                ),
                test("the module unloads cleanly", foundation::unloads_cleanly),
            ],
        },
        Group {
            name: "hard",
            params: Some(ModParams {
                hard: Some(true),
                ..ModParams::default()
            }),
            tests: vec![
                test(
                    "with hard=1 SIGUSR1 does not interrupt a STATFS call",
                    hard::statfs_ignores_signal,
                ),
                test(
                    "with hard=1 SIGKILL still ends a call",
                    hard::sigkill_ends_call,
                ),
                test(
                    "with hard=1 Venus closing still ends a call with ENODEV",
                    hard::close_ends_call,
                ),
                test("the module unloads cleanly", foundation::unloads_cleanly),
            ],
        },
        Group {
            name: "timeout",
            params: Some(ModParams {
                timeout: Some(1),
                ..ModParams::default()
            }),
            tests: vec![
                test(
                    "an unread call fails ETIMEDOUT after about 1 s and is dropped",
                    timeout::unread_times_out,
                ),
                test(
                    "a read but unanswered call times out and Venus gets CODA_SIGNAL",
                    timeout::read_times_out,
                ),
                test(
                    "a reply within the timeout completes the call",
                    timeout::reply_in_time,
                ),
                test(
                    "an unread CODA_CLOSE times out, and still reaches Venus",
                    timeout::unread_close_still_reaches_venus,
                ),
                test(
                    "a reply racing the timeout: the reply or ETIMEDOUT, never both",
                    timeout::reply_races_timeout,
                ),
                test("the module unloads cleanly", foundation::unloads_cleanly),
            ],
        },
        Group {
            name: "bound",
            params: Some(ModParams {
                max_outstanding: Some(4),
                ..ModParams::default()
            }),
            tests: vec![
                test(
                    "a 5th caller waits for room and proceeds once one is answered",
                    bound::fifth_waits,
                ),
                test(
                    "a caller waiting for room is interrupted by a signal",
                    bound::fifth_interruptible,
                ),
                test(
                    "a caller waiting for room gets ENODEV when Venus closes",
                    bound::fifth_enodev_on_close,
                ),
                test(
                    "asynchronous upcalls count against the bound",
                    bound::async_counts,
                ),
                test(
                    "a CODA_CLOSE waiting for room ignores SIGUSR1",
                    bound::close_waits_through_signal,
                ),
                test("the module unloads cleanly", foundation::unloads_cleanly),
            ],
        },
    ]
}

fn default_tests() -> Vec<Test> {
    vec![
        // Foundation.
        test(
            "/dev/cfsN are root-only char devices, as many as devices=",
            foundation::cfs_nodes,
        ),
        test(
            "/dev/coda_ctl is a root-only char device",
            foundation::ctl_node,
        ),
        test("uid 65534 cannot open /dev/cfs0", foundation::nobody_cfs),
        test(
            "uid 65534 cannot open /dev/coda_ctl",
            foundation::nobody_ctl,
        ),
        test(
            "opening needs CAP_SYS_ADMIN even when the mode allows it",
            foundation::needs_cap,
        ),
        test(
            "root in a new user namespace cannot open the devices",
            foundation::user_ns,
        ),
        test(
            "root in a new pid namespace cannot open the devices",
            foundation::pid_ns,
        ),
        test("CIOC_KERNEL_VERSION answers 5", foundation::kernel_version),
        test("unknown ioctls fail ENOTTY", foundation::unknown_ioctls),
        test(
            "CODA_FLUSH is accepted first thing after open, in both forms",
            write::flush_first,
        ),
        // Opening and reading.
        test(
            "a second open fails EBUSY and a reopen after close works at once",
            read::exclusive_open,
        ),
        test(
            "a new open starts from empty queues",
            read::reopen_starts_empty,
        ),
        test(
            "read with O_NONBLOCK on an empty queue fails EAGAIN",
            read::nonblock_eagain,
        ),
        test("read blocks until an upcall is queued", read::read_blocks),
        test(
            "read returns one whole message per call, oldest first",
            read::whole_messages_in_order,
        ),
        test(
            "CODA_SIGNAL is read before queued requests",
            read::signal_first,
        ),
        test(
            "a short buffer fails EMSGSIZE and the message stays queued",
            read::short_buffer,
        ),
        test(
            "a bad buffer address fails EFAULT and the message stays queued",
            read::bad_buffer,
        ),
        test("a signal ends a blocking read with EINTR", read::read_eintr),
        test(
            "under SA_RESTART a signalled read restarts",
            read::read_restarts,
        ),
        // Writing.
        test(
            "a write shorter than 12 bytes fails EINVAL",
            write::short_write,
        ),
        test(
            "a reply to an unknown unique fails ESRCH",
            write::unknown_unique,
        ),
        test(
            "a reply to a unique Venus has not read fails ESRCH",
            write::unread_unique,
        ),
        test(
            "a reply longer than out_cap fails EINVAL and the caller gets EIO",
            write::too_long_reply,
        ),
        test(
            "a reply of exactly out_cap bytes is accepted",
            write::exact_cap_reply,
        ),
        test(
            "a shorter reply is accepted and the caller sees exactly its bytes",
            write::short_reply,
        ),
        test(
            "a bad reply buffer fails EFAULT and the caller keeps waiting",
            write::bad_reply_buffer,
        ),
        test("an unknown opcode fails EINVAL", write::unknown_opcode),
        test(
            "replies in any order reach their own callers",
            write::replies_any_order,
        ),
        test(
            "each downcall is accepted at its exact size with the full count",
            write::downcall_exact_sizes,
        ),
        test(
            "each downcall is refused EINVAL at every other size",
            write::downcall_other_sizes,
        ),
        test(
            "downcalls reach every control listener opened before them",
            write::downcalls_delivered,
        ),
        test(
            "control reads: EMSGSIZE, EAGAIN and poll",
            write::ctl_read_rules,
        ),
        test(
            "a blocking control read waits for a downcall",
            write::ctl_read_blocks,
        ),
        test(
            "a control reader stalled in a page fault holds up no downcall",
            write::ctl_slow_reader_blocks_no_downcall,
        ),
        test(
            "a control listener holds at most CODA_CTL_DOWNCALL_QUEUE records",
            write::ctl_queue_limit,
        ),
        test(
            "downcalls are counted in the statistics",
            write::downcall_stats,
        ),
        test(
            "each refused write counts once in bad_writes",
            write::bad_writes_once,
        ),
        // Poll and epoll.
        test(
            "poll: POLLOUT always, POLLIN only while a message is queued",
            poll::poll_mask,
        ),
        test(
            "level-triggered epoll reports a queued upcall until it is read",
            poll::epoll_level,
        ),
        test(
            "edge-triggered epoll reports each new upcall once",
            poll::epoll_edge,
        ),
        test(
            "a thread blocked in epoll_wait or poll is woken by a new upcall",
            poll::blocked_poller_woken,
        ),
        // CODA_PSDEV_IOC_EXCHANGE.
        test(
            "exchange: an exchange reads queued upcalls in order and writes their replies at once",
            exchange::batch_round_trip,
        ),
        test(
            "exchange: each record written gets the result its write(2) would have",
            exchange::record_results,
        ),
        test(
            "exchange: a record past the buffer, a fragment or bad sizes fail EINVAL, bad pointers EFAULT",
            exchange::framing,
        ),
        test(
            "exchange: an exchange reads what fits; a first message too long fails EMSGSIZE and stays",
            exchange::read_room,
        ),
        test(
            "exchange: with O_NONBLOCK an empty queue fails EAGAIN after the replies are written",
            exchange::nonblocking,
        ),
        test(
            "exchange: an exchange waits for an upcall as a blocking read does",
            exchange::blocks_until_queued,
        ),
        test(
            "exchange: the thread that slept last is woken; one that took messages and stays away delays the next upcall by a tick at most",
            exchange::busy_thread_stays_away,
        ),
        test(
            "exchange: a signal during the wait keeps the counts: nothing is written twice",
            exchange::signal_keeps_counts,
        ),
        test(
            "exchange: a record faulting loses nothing: the message stays queued or the record fails",
            exchange::bad_buffers,
        ),
        test(
            "exchange: CODA_SIGNAL comes in an exchange and a late reply record gets ESRCH",
            exchange::signal_record,
        ),
        // Statistics.
        test(
            "the statistics count calls, replies, interruptions and bytes per opcode",
            stats::per_opcode,
        ),
        test(
            "CODA_CTL_IOC_STATS gives the figures of CODA_PSDEV_IOC_STATS",
            stats::ctl_matches_psdev,
        ),
        test(
            "fdinfo shows the figures of the statistics ioctl",
            stats::fdinfo,
        ),
        // Signals.
        test(
            "a caller interrupted before Venus read gets EINTR and the request is dropped",
            signals::before_read,
        ),
        test(
            "a caller interrupted after Venus read gets EINTR and Venus gets CODA_SIGNAL",
            signals::after_read,
        ),
        test(
            "a reply written before the signal wins",
            signals::reply_wins,
        ),
        test(
            "a call is not restarted under SA_RESTART",
            signals::restart_flag_ignored,
        ),
        test(
            "signals racing reads and replies: exactly one outcome each",
            signals::signal_races,
        ),
        test(
            "CLOSE, STORE, RELEASE and ACCESS_INTENT ignore SIGUSR1",
            signals::uninterruptible_ops,
        ),
        test(
            "SIGKILL ends a CODA_CLOSE that Venus has not read, and Venus still reads it",
            signals::sigkill_before_read,
        ),
        test(
            "SIGKILL ends a CODA_STORE that Venus read, and Venus gets CODA_SIGNAL",
            signals::sigkill_after_read,
        ),
        // Lifetime and the control call.
        test(
            "Venus closing makes every caller return ENODEV promptly",
            lifetime::close_wakes_callers,
        ),
        test(
            "calls fail ENODEV while no Venus has the device open",
            lifetime::no_venus,
        ),
        test(
            "a Venus process killed with calls outstanding fails them ENODEV",
            lifetime::venus_process_dies,
        ),
        test(
            "asynchronous upcalls return at once, are read, and take no reply",
            lifetime::async_upcalls,
        ),
        test(
            "the control call refuses bad arguments",
            lifetime::call_validation,
        ),
        test(
            "a bad reply address fails the call EFAULT",
            lifetime::bad_out_pointer,
        ),
        test(
            "the driver sets the unique and passes every other byte through",
            lifetime::passthrough,
        ),
        test(
            "messages of VC_MAXMSGSIZE bytes pass both ways",
            lifetime::max_size,
        ),
        Test {
            name: "1000 concurrent callers are each answered once with their own reply",
            run: stress::thousand_callers,
            deadline: Duration::from_secs(150),
        },
        // Unloading.
        test(
            "rmmod is refused while a device is open",
            foundation::rmmod_refused_while_open,
        ),
        test("the module unloads cleanly", foundation::unloads_cleanly),
    ]
}

/// Starts a synchronous call in a new thread and waits until its upcall is queued and the
/// thread sleeps in the ioctl.
pub fn start_call(
    ctl: &Ctl,
    minor: u32,
    name: &str,
    msg: Vec<u8>,
    out_cap: usize,
) -> Result<Worker<CallResult>, String> {
    let op = msg::in_hdr(&msg)?.opcode as usize;
    let calls = |ctl: &Ctl| -> Result<u64, String> {
        Ok(ctl.stats(minor).ctx("CODA_CTL_IOC_STATS")?.op[op].calls)
    };
    let before = calls(ctl)?;
    let w = ctl.spawn_call(name, minor, msg, out_cap)?;
    wait_until(&format!("{name}'s upcall is queued"), EXPECT, || {
        if w.is_finished() {
            return Err(format!("{name} returned before its upcall was queued"));
        }
        Ok(calls(ctl)? > before)
    })?;
    w.wait_sleeping_in(&[sys::SYS_IOCTL])?;
    Ok(w)
}

/// Venus answers request `m` with a reply carrying its token.
pub fn answer(v: &Venus, m: &[u8]) -> TestResult {
    v.reply(&reply_to(m)?)
}

/// The reply [`answer`] writes for request `m`: its opcode and unique, and its token.
pub fn reply_to(m: &[u8]) -> Result<Vec<u8>, String> {
    let h = msg::in_hdr(m)?;
    let token = msg::token_of(m).ok_or("request without a token")?;
    Ok(msg::reply(h.opcode, h.unique, 0, &token.to_le_bytes()))
}

/// Fails unless the call got the reply [`answer`] writes for `token`.
pub fn expect_answer(r: CallResult, token: u64, who: &str) -> Result<Reply, String> {
    let r = r.ctx(who)?;
    ensure_eq!(r.out_len, coda_msg::OUT_HDR_SIZE + 8, "{who}: reply length");
    let oh = coda_msg::out_hdr(r.bytes()).map_err(|e| format!("{who}: {e:?}"))?;
    ensure_eq!(oh.unique, r.unique, "{who}: unique in the reply");
    let got = u64::from_le_bytes(r.bytes()[12..20].try_into().map_err(|_| "short reply")?);
    ensure!(
        got == token,
        "{who}: got the reply for token {got:#x}, want {token:#x}"
    );
    Ok(r)
}

/// Fails unless `m` is a CODA_SIGNAL for `unique`: exactly a 20-byte coda_in_hdr.
pub fn expect_signal(m: &[u8], unique: u32) -> TestResult {
    let h = msg::in_hdr(m)?;
    ensure_eq!(
        h.opcode,
        coda_msg::CODA_SIGNAL,
        "opcode of the message after the interruption"
    );
    ensure_eq!(m.len(), coda_msg::IN_HDR_SIZE, "CODA_SIGNAL length");
    ensure_eq!(h.unique, unique, "unique of the CODA_SIGNAL");
    Ok(())
}
