// SPDX-License-Identifier: GPL-2.0

//! Opening /dev/cfsN and reading upcalls from it, as Venus does.

use std::os::fd::AsFd;

use coda_msg::CODA_GETATTR;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;

use super::answer;
use super::expect_answer;
use super::expect_signal;
use super::start_call;
use super::CAP;
use super::STAYS;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::wait_until;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats;
use crate::sys;
use crate::sys::BadBuf;
use crate::sys::GuardedPage;
use crate::venus;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

pub fn exclusive_open(_env: &Env) -> TestResult {
    let v = Venus::open(0)?;
    expect_errno(
        Venus::try_open(0, OFlag::empty()).map(drop),
        Errno::EBUSY,
        "a second open of /dev/cfs0",
    )?;
    // Another device is another Venus's.
    let other = Venus::open(1).ctx("open /dev/cfs1 while /dev/cfs0 is open")?;
    drop(other);
    drop(v);
    let again = Venus::open(0).ctx("reopen right after close")?;
    expect_errno(
        Venus::try_open(0, OFlag::empty()).map(drop),
        Errno::EBUSY,
        "a second open after the reopen",
    )?;
    drop(again);
    Ok(())
}

pub fn reopen_starts_empty(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let before = ctl.stats(0).ctx("statistics")?;
    // Leave a CODA_SIGNAL queued: a call that Venus read, interrupted.
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 1), CAP)?;
    v.next()?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(w.join_within(EXPECT)?, Errno::EINTR, "interrupted caller")?;
    // And an asynchronous upcall that nobody read.
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 2))
        .ctx("async upcall")?;
    let st = ctl.stats(0).ctx("statistics")?;
    ensure_eq!(st.pending, 2, "messages queued before the close");
    drop(v);
    let v = Venus::open(0)?;
    v.expect_empty("first read after the reopen")?;
    let after = v.stats()?;
    stats::check_quiet(&after)?;
    // An asynchronous upcall freed by a close counts as aborted.
    ensure_eq!(
        after.op[CODA_STATFS as usize].aborted - before.op[CODA_STATFS as usize].aborted,
        1,
        "STATFS aborted by the close"
    );
    Ok(())
}

pub fn nonblock_eagain(_env: &Env) -> TestResult {
    let v = Venus::try_open(0, OFlag::O_NONBLOCK).ctx("open /dev/cfs0 O_NONBLOCK")?;
    expect_errno(v.read_msg(), Errno::EAGAIN, "read, opened O_NONBLOCK")?;
    drop(v);
    let v = Venus::open(0)?;
    v.set_nonblock(true).ctx("fcntl O_NONBLOCK")?;
    expect_errno(v.read_msg(), Errno::EAGAIN, "read, O_NONBLOCK set by fcntl")
}

pub fn read_blocks(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let fd = v.shared();
    let reader = Worker::spawn("reader", move || venus::read_msg(fd.as_fd()))?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    reader.still_blocked_after(STAYS)?;
    let u = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 7))
        .ctx("async upcall")?;
    let m = reader.join_within(EXPECT)?.ctx("the blocked read")?;
    ensure_eq!(msg::in_hdr(&m)?.unique, u, "unique of the message read");
    ensure_eq!(msg::token_of(&m), Some(7), "token of the message read");
    Ok(())
}

pub fn whole_messages_in_order(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let bodies: Vec<Vec<u8>> = [8usize, 300, 4000]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
        .collect();
    let mut uniques = Vec::new();
    for b in &bodies {
        uniques.push(
            ctl.call_async(0, &msg::request(CODA_STATFS, b))
                .ctx("async upcall")?,
        );
    }
    for w in uniques.windows(2) {
        ensure!(w[1] > w[0], "uniques not assigned in order: {uniques:?}");
    }
    for (b, &u) in bodies.iter().zip(&uniques) {
        let m = v.read_nonblock().ctx("read")?;
        ensure_eq!(
            m.len(),
            coda_msg::IN_HDR_SIZE + b.len(),
            "length of the message read"
        );
        ensure_eq!(msg::in_hdr(&m)?.unique, u, "unique of the message read");
        ensure!(
            &m[coda_msg::IN_HDR_SIZE..] == b.as_slice(),
            "body of message {u} differs"
        );
    }
    v.expect_empty("after reading the three messages")
}

pub fn signal_first(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let a = start_call(
        &ctl,
        0,
        "caller A",
        msg::request_token(CODA_GETATTR, 1),
        CAP,
    )?;
    let (ha, _) = v.next_request()?;
    let ub = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 2))
        .ctx("async B")?;
    let uc = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 3))
        .ctx("async C")?;
    a.kill(Signal::SIGUSR1)?;
    expect_errno(a.join_within(EXPECT)?, Errno::EINTR, "caller A")?;
    expect_signal(&v.next()?, ha.unique)?;
    ensure_eq!(msg::in_hdr(&v.next()?)?.unique, ub, "second message");
    ensure_eq!(msg::in_hdr(&v.next()?)?.unique, uc, "third message");
    v.expect_empty("after the three messages")
}

pub fn short_buffer(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    v.set_nonblock(true).ctx("O_NONBLOCK")?;
    let body = [0x11u8; 44];
    let u = ctl
        .call_async(0, &msg::request(CODA_STATFS, &body))
        .ctx("async upcall")?;
    for room in [1usize, coda_msg::IN_HDR_SIZE, 63] {
        let mut buf = vec![0u8; room];
        expect_errno(
            v.read_into(&mut buf),
            Errno::EMSGSIZE,
            &format!("read of a 64-byte message into {room} bytes"),
        )?;
    }
    let mut buf = vec![0u8; 64];
    let n = v.read_into(&mut buf).ctx("read into exactly 64 bytes")?;
    ensure_eq!(n, 64, "bytes read");
    ensure_eq!(msg::in_hdr(&buf)?.unique, u, "unique of the message");
    ensure!(buf[20..] == body, "the body changed");
    v.set_nonblock(false).ctx("O_NONBLOCK off")?;
    // A CODA_SIGNAL needs room for its 20 bytes too.
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 1), CAP)?;
    let (h, _) = v.next_request()?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(w.join_within(EXPECT)?, Errno::EINTR, "interrupted caller")?;
    let mut buf = vec![0u8; coda_msg::IN_HDR_SIZE - 1];
    expect_errno(
        v.read_into(&mut buf),
        Errno::EMSGSIZE,
        "read of a CODA_SIGNAL into 19 bytes",
    )?;
    let mut buf = vec![0u8; coda_msg::IN_HDR_SIZE];
    let n = v
        .read_into(&mut buf)
        .ctx("read of the CODA_SIGNAL into 20 bytes")?;
    expect_signal(&buf[..n], h.unique)?;
    v.expect_empty("after the CODA_SIGNAL")
}

pub fn bad_buffer(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut g = GuardedPage::new().ctx("mmap")?;
    let room = 4096;
    // A request that awaits a reply: it must stay queued and still be answerable.
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 5), CAP)?;
    expect_errno(
        sys::read_into_bad(v.fd(), BadBuf::Low, room),
        Errno::EFAULT,
        "read into address 1",
    )?;
    expect_errno(
        sys::read_into_bad(v.fd(), BadBuf::Guard(&mut g), room),
        Errno::EFAULT,
        "read into a PROT_NONE page",
    )?;
    expect_errno(
        sys::read_into_bad(v.fd(), BadBuf::Straddle(&mut g, 10), room),
        Errno::EFAULT,
        "read into a buffer whose 11th byte faults",
    )?;
    let (h, m) = v.next_request()?;
    ensure_eq!(
        msg::token_of(&m),
        Some(5),
        "token of the request read after the faults"
    );
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 5, "caller")?;
    // An asynchronous upcall and a CODA_SIGNAL stay queued too.
    let u = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 6))
        .ctx("async upcall")?;
    expect_errno(
        sys::read_into_bad(v.fd(), BadBuf::Straddle(&mut g, 20), room),
        Errno::EFAULT,
        "read of the async upcall",
    )?;
    ensure_eq!(
        msg::in_hdr(&v.next()?)?.unique,
        u,
        "async upcall after the fault"
    );
    let w = start_call(
        &ctl,
        0,
        "caller 2",
        msg::request_token(CODA_GETATTR, 7),
        CAP,
    )?;
    let (h2, _) = v.next_request()?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(w.join_within(EXPECT)?, Errno::EINTR, "interrupted caller")?;
    expect_errno(
        sys::read_into_bad(v.fd(), BadBuf::Straddle(&mut g, 8), room),
        Errno::EFAULT,
        "read of the CODA_SIGNAL",
    )?;
    expect_signal(&v.next()?, h2.unique)?;
    ensure!(h.unique != h2.unique, "two calls share unique {}", h.unique);
    v.expect_empty("after all messages")
}

pub fn read_eintr(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let fd = v.shared();
    let reader = Worker::spawn("reader", move || venus::read_msg(fd.as_fd()))?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    reader.kill(Signal::SIGUSR1)?;
    expect_errno(
        reader.join_within(EXPECT)?,
        Errno::EINTR,
        "the interrupted read",
    )?;
    // The device is unharmed.
    let u = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 1))
        .ctx("async upcall")?;
    ensure_eq!(
        msg::in_hdr(&v.next()?)?.unique,
        u,
        "message after the interrupted read"
    );
    Ok(())
}

pub fn read_restarts(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let fd = v.shared();
    let reader = Worker::spawn("reader", move || venus::read_msg(fd.as_fd()))?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    let handled = sys::signals_handled();
    // SIGUSR2's handler has SA_RESTART: the read must resume, not fail.
    reader.kill(Signal::SIGUSR2)?;
    wait_until("the reader handles SIGUSR2", EXPECT, || {
        Ok(sys::signals_handled() > handled)
    })?;
    reader.still_blocked_after(STAYS)?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    let u = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 1))
        .ctx("async upcall")?;
    let m = reader.join_within(EXPECT)?.ctx("the restarted read")?;
    ensure_eq!(msg::in_hdr(&m)?.unique, u, "unique of the message read");
    // The control device's read restarts the same way.
    let l = Ctl::open()?;
    let lc = l.clone();
    let reader = Worker::spawn("ctl reader", move || lc.read_record())?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    let handled = sys::signals_handled();
    reader.kill(Signal::SIGUSR2)?;
    wait_until("the control reader handles SIGUSR2", EXPECT, || {
        Ok(sys::signals_handled() > handled)
    })?;
    reader.still_blocked_after(STAYS)?;
    let d = msg::reply(coda_msg::CODA_PURGEUSER, 0, 0, &7u32.to_le_bytes());
    v.reply(&d)?;
    let (_, b) = reader
        .join_within(EXPECT)?
        .ctx("the restarted control read")?;
    ensure!(b == d, "the restarted control read got other bytes");
    Ok(())
}
