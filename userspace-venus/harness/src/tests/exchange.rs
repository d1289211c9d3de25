// SPDX-License-Identifier: GPL-2.0

//! CODA_PSDEV_IOC_EXCHANGE: many replies and messages in one system call, each as one
//! write(2) or read(2) would be.

use std::os::fd::AsFd;
use std::time::Duration;
use std::time::Instant;

use coda_msg::PsdevOpStats;
use coda_msg::CODA_FLUSH;
use coda_msg::CODA_GETATTR;
use coda_msg::CODA_PSDEV_EXCHANGE_MAX;
use coda_msg::CODA_STATFS;
use coda_msg::RECORD_HDR_SIZE;
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::expect_answer;
use super::expect_signal;
use super::reply_to;
use super::start_call;
use super::CAP;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats;
use crate::stats::expect_settled;
use crate::sys;
use crate::sys::BadBuf;
use crate::sys::GuardedPage;
use crate::venus;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

/// How soon a caller whose upcall woke no Venus thread gets one woken for it.
const NUDGED_WITHIN: Duration = Duration::from_secs(1);

/// Room for any number of the tests' small messages.
const ROOM: usize = 4096;

/// Queues two asynchronous STATFS upcalls; their uniques and their (equal) length.
fn two_queued(ctl: &Ctl) -> Result<(u32, u32, usize), String> {
    let a = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 1))
        .ctx("async 1")?;
    let b = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 2))
        .ctx("async 2")?;
    Ok((a, b, msg::request_token(CODA_STATFS, 1).len()))
}

fn errno(e: Errno) -> i32 {
    -(e as i32)
}

pub fn batch_round_trip(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let mut callers = Vec::new();
    for token in 1..=3u64 {
        let name = format!("caller {token}");
        callers.push(start_call(
            &ctl,
            0,
            &name,
            msg::request_token(CODA_GETATTR, token),
            CAP,
        )?);
    }
    let got = v.exchange(&[], ROOM).ok("read")?;
    ensure_eq!(
        got.x.write_consumed,
        0,
        "write_consumed with nothing to write"
    );
    let msgs = got.msgs()?;
    let tokens: Vec<_> = msgs.iter().map(|m| msg::token_of(m)).collect();
    ensure_eq!(
        tokens,
        vec![Some(1), Some(2), Some(3)],
        "tokens read, in queue order"
    );
    let replies = msgs
        .iter()
        .map(|m| reply_to(m))
        .collect::<Result<Vec<_>, _>>()?;
    let write = msg::records(&replies);
    // Nothing is queued now: read_size 0 returns as soon as the replies are written.
    let done = v.exchange(&write, 0).ok("write")?;
    ensure_eq!(
        done.x.write_consumed as usize,
        write.len(),
        "write_consumed"
    );
    ensure_eq!(done.results()?, vec![0, 0, 0], "results");
    for (i, w) in callers.into_iter().enumerate() {
        expect_answer(w.join_within(EXPECT)?, i as u64 + 1, "caller")?;
    }
    let req = msg::request_token(CODA_GETATTR, 1).len();
    let want = PsdevOpStats {
        calls: 3,
        replies: 3,
        bytes_in: 3 * req as u64,
        bytes_out: replies.iter().map(|r| r.len() as u64).sum(),
        ..Default::default()
    };
    expect_settled(&v, &s0, CODA_GETATTR, want, true)
}

pub fn record_results(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 7), CAP)?;
    let m = v.exchange(&[], ROOM).ok("read")?.msgs()?;
    ensure_eq!(m.len(), 1, "messages read");
    let good = reply_to(&m[0])?;
    let h = msg::in_hdr(&m[0])?;
    let write = msg::records(&[
        msg::reply(CODA_GETATTR, h.unique.wrapping_add(1000), 0, &[]),
        vec![0u8; 4],
        good,
        msg::reply(CODA_FLUSH, 0, 0, &[]),
        msg::reply(CODA_GETATTR, h.unique, 0, &7u64.to_le_bytes()),
    ]);
    let done = v.exchange(&write, 0).ok("write")?;
    ensure_eq!(
        done.results()?,
        vec![
            errno(Errno::ESRCH),
            errno(Errno::EINVAL),
            0,
            0,
            errno(Errno::ESRCH)
        ],
        "results: unknown unique, short record, the reply, a downcall, the reply again"
    );
    expect_answer(w.join_within(EXPECT)?, 7, "caller")?;
    let after = v.stats()?;
    ensure_eq!(
        after.bad_writes - s0.bad_writes,
        3,
        "refused records counted"
    );
    ensure_eq!(
        after.downcall_by_op[CODA_FLUSH as usize] - s0.downcall_by_op[CODA_FLUSH as usize],
        1,
        "CODA_FLUSH downcalls"
    );
    stats::check_quiet(&after)
}

pub fn framing(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 9), CAP)?;
    let m = v.next()?;
    let first = msg::records(&[reply_to(&m)?]);
    // A record claiming more bytes than are left.
    let mut write = first.clone();
    write.extend_from_slice(&msg::records(&[vec![0u8; 16]]));
    let at = first.len();
    write[at..at + 4].copy_from_slice(&64u32.to_ne_bytes());
    let r = v.exchange(&write, ROOM);
    expect_errno(r.result, Errno::EINVAL, "a record running past write_size")?;
    ensure_eq!(
        r.x.write_consumed as usize,
        at,
        "write_consumed stops at the bad record"
    );
    ensure_eq!(r.results()?, vec![0], "the record before it was written");
    ensure_eq!(r.x.read_consumed, 0, "nothing read after the bad record");
    expect_answer(w.join_within(EXPECT)?, 9, "caller")?;
    // A fragment shorter than a record header.
    let r = v.exchange(&[0u8; RECORD_HDR_SIZE - 1], ROOM);
    expect_errno(r.result, Errno::EINVAL, "a 7-byte fragment")?;
    ensure_eq!(r.x.write_consumed, 0, "write_consumed after a fragment");
    // Sizes and counts out of range.
    let big = vec![0u8; CODA_PSDEV_EXCHANGE_MAX + RECORD_HDR_SIZE];
    let r = v.exchange(&big, ROOM);
    expect_errno(
        r.result,
        Errno::EINVAL,
        "write_size over CODA_PSDEV_EXCHANGE_MAX",
    )?;
    ensure_eq!(
        r.x.write_consumed,
        0,
        "write_consumed after an oversized buffer"
    );
    let r = venus::exchange(v.fd(), Vec::new(), 8, ROOM);
    expect_errno(r.result, Errno::EINVAL, "write_consumed past write_size")?;
    // A bad read count is refused before the records are written.
    let flushes =
        |v: &Venus| -> Result<u64, String> { Ok(v.stats()?.downcall_by_op[CODA_FLUSH as usize]) };
    let before = flushes(&v)?;
    let mut write = msg::records(&[msg::reply(CODA_FLUSH, 0, 0, &[])]);
    let mut x = coda_msg::PsdevExchange {
        write_buf: write.as_mut_ptr() as u64,
        write_size: write.len() as u32,
        read_consumed: 8,
        ..Default::default()
    };
    // SAFETY: the write buffer is ours and sized as said; there is no read buffer.
    let r = unsafe { sys::exchange(v.fd(), &mut x) };
    expect_errno(r, Errno::EINVAL, "read_consumed past read_size")?;
    ensure_eq!(x.write_consumed, 0, "write_consumed after a bad read count");
    ensure_eq!(flushes(&v)?, before, "downcalls written before the refusal");
    // The argument itself at a bad address.
    expect_errno(
        sys::exchange_bad_arg(v.fd(), BadBuf::Low),
        Errno::EFAULT,
        "the argument at address 1",
    )?;
    let mut g = GuardedPage::new().ctx("guard page")?;
    expect_errno(
        sys::exchange_bad_arg(v.fd(), BadBuf::Straddle(&mut g, 8)),
        Errno::EFAULT,
        "the argument running into a PROT_NONE page",
    )?;
    v.expect_empty("after the refused exchanges")?;
    let st = v.stats()?;
    stats::check_quiet(&st)
}

pub fn read_room(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let (a, b, len) = two_queued(&ctl)?;
    let one = coda_msg::record_size(len);
    // Too small for the first: EMSGSIZE, and it stays queued.
    let r = v.exchange(&[], RECORD_HDR_SIZE + len - 1);
    expect_errno(r.result, Errno::EMSGSIZE, "room one byte short")?;
    ensure_eq!(r.x.read_consumed, 0, "read_consumed after EMSGSIZE");
    // Room for one and a half: one is read, the other waits.
    let r = v.exchange(&[], one + one / 2).ok("room for one")?;
    let msgs = r.msgs()?;
    ensure_eq!(msgs.len(), 1, "messages read with room for one");
    ensure_eq!(msg::in_hdr(&msgs[0])?.unique, a, "the first message");
    ensure_eq!(
        r.x.read_consumed as usize,
        one,
        "read_consumed, padding included"
    );
    // The last record needs no padding after it.
    let r = v
        .exchange(&[], RECORD_HDR_SIZE + len)
        .ok("room without padding")?;
    let msgs = r.msgs()?;
    ensure_eq!(msgs.len(), 1, "messages read with exact room");
    ensure_eq!(msg::in_hdr(&msgs[0])?.unique, b, "the second message");
    ensure_eq!(
        msgs[0],
        {
            let mut m = msg::request_token(CODA_STATFS, 2);
            m[4..8].copy_from_slice(&b.to_ne_bytes());
            m
        },
        "the second message's bytes"
    );
    v.expect_empty("after both")?;
    // Room for no message at all fails at once, without waiting for one.
    let r = v.exchange(&[], RECORD_HDR_SIZE + coda_msg::IN_HDR_SIZE - 1);
    expect_errno(r.result, Errno::EMSGSIZE, "room for no message")?;
    let st = v.stats()?;
    stats::check_quiet(&st)
}

pub fn nonblocking(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    // No read half: returns at once even though nothing is queued.
    let r = v.exchange(&[], 0).ok("an empty exchange")?;
    ensure_eq!(
        (r.x.write_consumed, r.x.read_consumed),
        (0, 0),
        "counts of an empty exchange"
    );
    v.set_nonblock(true).ctx("O_NONBLOCK")?;
    expect_errno(
        v.exchange(&[], ROOM).result,
        Errno::EAGAIN,
        "empty queue with O_NONBLOCK",
    )?;
    // A reply goes even when the read half then finds nothing.
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 4), CAP)?;
    let m = v.exchange(&[], ROOM).ok("read with O_NONBLOCK")?.msgs()?;
    ensure_eq!(m.len(), 1, "messages read");
    let write = msg::records(&[reply_to(&m[0])?]);
    let r = v.exchange(&write, ROOM);
    expect_errno(r.result, Errno::EAGAIN, "reply, then an empty queue")?;
    ensure_eq!(
        r.x.write_consumed as usize,
        write.len(),
        "write_consumed with EAGAIN"
    );
    ensure_eq!(r.results()?, vec![0], "the reply's result");
    expect_answer(w.join_within(EXPECT)?, 4, "caller")?;
    v.set_nonblock(false).ctx("clear O_NONBLOCK")?;
    let st = v.stats()?;
    stats::check_quiet(&st)
}

pub fn blocks_until_queued(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let fd = v.shared();
    let reader = Worker::spawn("exchanger", move || {
        venus::exchange(fd.as_fd(), Vec::new(), 0, ROOM)
    })?;
    reader.wait_sleeping_in(&[sys::SYS_IOCTL])?;
    let u = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 3))
        .ctx("async upcall")?;
    let r = reader.join_within(EXPECT)?.ok("woken exchange")?;
    let msgs = r.msgs()?;
    ensure_eq!(msgs.len(), 1, "messages read");
    ensure_eq!(msg::in_hdr(&msgs[0])?.unique, u, "unique read");
    Ok(())
}

/// Venus threads sleeping in the exchange are woken last-in first-out, and a thread that
/// took messages is counted on to come back for the next: a new upcall wakes no other. If
/// it stays away, the caller wakes another after a tick, so no upcall is stranded.
pub fn busy_thread_stays_away(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let sleeper = |name: &str| {
        let fd = v.shared();
        let w = Worker::spawn(name, move || {
            venus::exchange(fd.as_fd(), Vec::new(), 0, ROOM)
        })?;
        w.wait_sleeping_in(&[sys::SYS_IOCTL])?;
        Ok::<_, String>(w)
    };
    let first = sleeper("first to sleep")?;
    let last = sleeper("last to sleep")?;
    let u = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 21))
        .ctx("async upcall")?;
    // The last to sleep takes it and does not come back.
    let got = last.join_within(EXPECT)?.ok("the last sleeper")?.msgs()?;
    ensure_eq!(got.len(), 1, "messages the last sleeper read");
    ensure_eq!(msg::in_hdr(&got[0])?.unique, u, "unique it read");
    let before = v.stats()?;
    let t0 = Instant::now();
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 22), CAP)?;
    let got = first.join_within(EXPECT)?.ok("the first sleeper")?.msgs()?;
    // A tick is 4 ms; the bound leaves room for the emulated, debug guest.
    ensure!(
        t0.elapsed() < NUDGED_WITHIN,
        "the first sleeper got the upcall after {:?}",
        t0.elapsed()
    );
    let after = v.stats()?;
    ensure_eq!(
        (
            after.wakes_skipped - before.wakes_skipped,
            after.nudges - before.nudges
        ),
        (1, 1),
        "(wakes_skipped, nudges) for the upcall"
    );
    ensure_eq!(got.len(), 1, "messages the first sleeper read");
    ensure_eq!(msg::token_of(&got[0]), Some(22), "token it read");
    let r = v.exchange(&msg::records(&[reply_to(&got[0])?]), 0);
    ensure_eq!(r.ok("the reply")?.results()?, vec![0], "the reply's result");
    expect_answer(w.join_within(EXPECT)?, 22, "caller")?;
    let want = PsdevOpStats {
        calls: 1,
        replies: 1,
        ..Default::default()
    };
    expect_settled(&v, &s0, CODA_GETATTR, want, false)
}

/// A signal while the read half waits: the replies already written are counted, so the
/// repeated call (by hand after EINTR, by the kernel under SA_RESTART) writes none twice.
pub fn signal_keeps_counts(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    for (sig, token) in [(Signal::SIGUSR1, 11u64), (Signal::SIGUSR2, 12)] {
        let w = start_call(
            &ctl,
            0,
            "caller",
            msg::request_token(CODA_GETATTR, token),
            CAP,
        )?;
        let m = v.next()?;
        let write = msg::records(&[reply_to(&m)?]);
        let fd = v.shared();
        let ex = Worker::spawn("exchanger", move || {
            venus::exchange(fd.as_fd(), write, 0, ROOM)
        })?;
        expect_answer(w.join_within(EXPECT)?, token, "caller")?;
        ex.wait_sleeping_in(&[sys::SYS_IOCTL])?;
        let handled = sys::signals_handled();
        ex.kill(sig)?;
        crate::check::wait_until("the handler ran", EXPECT, || {
            Ok(sys::signals_handled() > handled)
        })?;
        let u = if sig == Signal::SIGUSR1 {
            let r = ex.join_within(EXPECT)?;
            expect_errno(r.result, Errno::EINTR, "the interrupted exchange")?;
            ensure_eq!(
                r.x.write_consumed,
                r.x.write_size,
                "write_consumed after EINTR"
            );
            ensure_eq!(r.results()?, vec![0], "result of the reply");
            // Made again as it is: the reply is not written again.
            let fd = v.shared();
            let again = Worker::spawn("exchanger", move || {
                venus::exchange(fd.as_fd(), r.written, r.x.write_consumed, ROOM)
            })?;
            again.wait_sleeping_in(&[sys::SYS_IOCTL])?;
            let u = ctl
                .call_async(0, &msg::request_token(CODA_STATFS, 1))
                .ctx("async")?;
            let r = again.join_within(EXPECT)?.ok("the repeated exchange")?;
            ensure_eq!(
                msg::in_hdr(&r.msgs()?[0])?.unique,
                u,
                "message read after EINTR"
            );
            u
        } else {
            // SA_RESTART: the kernel makes the call again, and it waits on.
            ex.still_blocked_after(super::STAYS)?;
            let u = ctl
                .call_async(0, &msg::request_token(CODA_STATFS, 1))
                .ctx("async")?;
            let r = ex.join_within(EXPECT)?.ok("the restarted exchange")?;
            ensure_eq!(r.results()?, vec![0], "result of the reply");
            ensure_eq!(
                msg::in_hdr(&r.msgs()?[0])?.unique,
                u,
                "message read after restart"
            );
            u
        };
        ensure!(u != 0, "unique of the async upcall");
    }
    let after = v.stats()?;
    ensure_eq!(after.bad_writes, s0.bad_writes, "no reply written twice");
    let d = stats::op_delta(&s0, &after, CODA_GETATTR);
    ensure_eq!((d.calls, d.replies), (2, 2), "GETATTR calls and replies");
    stats::check_quiet(&after)
}

pub fn bad_buffers(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let (a, b, len) = two_queued(&ctl)?;
    let mut g = GuardedPage::new().ctx("guard page")?;
    let mut x = coda_msg::PsdevExchange {
        read_buf: g.inaccessible() as u64,
        read_size: ROOM as u32,
        ..Default::default()
    };
    // SAFETY: the read buffer is the PROT_NONE page: the kernel can store nothing there.
    let r = unsafe { sys::exchange(v.fd(), &mut x) };
    expect_errno(r, Errno::EFAULT, "read_buf in a PROT_NONE page")?;
    ensure_eq!(x.read_consumed, 0, "read_consumed after EFAULT");
    // Room for the first record before the guard, not for the second: one is read.
    let one = coda_msg::record_size(len);
    x.read_buf = g.straddle(one) as u64;
    // SAFETY: the first `one` bytes are the guarded page's tail, which `g` owns and nothing
    // else refers to; the rest is PROT_NONE.
    let r = unsafe { sys::exchange(v.fd(), &mut x) };
    ensure!(r.is_ok(), "an exchange whose second record faults: {r:?}");
    ensure_eq!(
        x.read_consumed as usize,
        one,
        "read_consumed before the guard"
    );
    let got = msg::parse_records(&g.tail(one))?;
    ensure_eq!(got.len(), 1, "records before the guard");
    ensure_eq!(msg::in_hdr(&got[0].1)?.unique, a, "the first message");
    let m = v.next()?;
    ensure_eq!(
        msg::in_hdr(&m)?.unique,
        b,
        "the second message, still queued"
    );
    // A record whose message runs into the guard fails alone, with EFAULT.
    let rec = coda_msg::PsdevRecord {
        len: coda_msg::OUT_HDR_SIZE as u32,
        result: 0,
    };
    g.put_tail(zerocopy::IntoBytes::as_bytes(&rec));
    let mut x = coda_msg::PsdevExchange {
        write_buf: g.straddle(RECORD_HDR_SIZE) as u64,
        write_size: coda_msg::record_size(coda_msg::OUT_HDR_SIZE) as u32,
        ..Default::default()
    };
    // SAFETY: the write buffer is the guarded page's tail (its header, which the kernel
    // may store a result into) and then the PROT_NONE page.
    let r = unsafe { sys::exchange(v.fd(), &mut x) };
    ensure!(r.is_ok(), "an exchange whose one record faults: {r:?}");
    ensure_eq!(x.write_consumed, x.write_size, "write_consumed");
    let hdr = g.tail(RECORD_HDR_SIZE);
    let result = i32::from_ne_bytes(hdr[4..8].try_into().map_err(|_| "header")?);
    ensure_eq!(
        result,
        errno(Errno::EFAULT),
        "result of the faulting record"
    );
    // A write buffer that is not mapped at all fails the call.
    let mut x = coda_msg::PsdevExchange {
        write_buf: 1,
        write_size: 64,
        ..Default::default()
    };
    // SAFETY: address 1 is never mapped.
    let r = unsafe { sys::exchange(v.fd(), &mut x) };
    expect_errno(r, Errno::EFAULT, "write_buf at address 1")?;
    ensure_eq!(x.write_consumed, 0, "write_consumed after EFAULT");
    v.expect_empty("at the end")?;
    let after = v.stats()?;
    let d = stats::op_delta(&s0, &after, CODA_STATFS);
    ensure_eq!(d.async_read, 2, "both messages read once");
    stats::check_quiet(&after)
}

/// A call interrupted after its request went out through an exchange: the CODA_SIGNAL
/// comes in the next exchange, and the late reply in a record is refused ESRCH.
pub fn signal_record(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 5), CAP)?;
    let m = v.exchange(&[], ROOM).ok("read")?.msgs()?;
    ensure_eq!(m.len(), 1, "messages read");
    let h = msg::in_hdr(&m[0])?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EINTR,
        "the interrupted caller",
    )?;
    let write = msg::records(&[reply_to(&m[0])?]);
    let r = v.exchange(&write, ROOM).ok("late reply and the signal")?;
    ensure_eq!(
        r.results()?,
        vec![errno(Errno::ESRCH)],
        "result of the late reply"
    );
    let msgs = r.msgs()?;
    ensure_eq!(msgs.len(), 1, "messages read after the interruption");
    expect_signal(&msgs[0], h.unique)?;
    v.expect_empty("after the CODA_SIGNAL")?;
    let st = v.stats()?;
    stats::check_quiet(&st)
}
