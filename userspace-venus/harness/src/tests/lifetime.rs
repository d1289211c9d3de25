// SPDX-License-Identifier: GPL-2.0

//! Venus going away, asynchronous upcalls, and the control call's own rules.

use std::time::Duration;
use std::time::Instant;

use coda_msg::CtlCall;
use coda_msg::InHdr;
use coda_msg::CODA_CLOSE;
use coda_msg::CODA_GETATTR;
use coda_msg::CODA_LOOKUP;
use coda_msg::CODA_STATFS;
use coda_msg::VC_MAXMSGSIZE;
use nix::errno::Errno;
use zerocopy::IntoBytes;

use super::answer;
use super::expect_answer;
use super::start_call;
use super::CAP;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::wait_until;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats::check_quiet;
use crate::stats::sum;
use crate::sys;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

/// How soon callers must notice Venus is gone.
const PROMPT: Duration = Duration::from_secs(3);

pub fn close_wakes_callers(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = ctl.stats(0).ctx("statistics")?;
    let mut callers = Vec::new();
    // Two read by Venus, three still queued, one of them uninterruptible.
    for (i, op) in [CODA_STATFS, CODA_GETATTR].into_iter().enumerate() {
        callers.push(start_call(
            &ctl,
            0,
            &format!("read {i}"),
            msg::request_token(op, i as u64),
            CAP,
        )?);
        v.next()?;
    }
    for (i, op) in [CODA_LOOKUP, CODA_GETATTR, CODA_CLOSE]
        .into_iter()
        .enumerate()
    {
        callers.push(start_call(
            &ctl,
            0,
            &format!("queued {i}"),
            msg::request_token(op, 10 + i as u64),
            CAP,
        )?);
    }
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 20))
        .ctx("async upcall")?;
    let st = ctl.stats(0).ctx("statistics")?;
    ensure_eq!(
        (st.outstanding, st.pending, st.processing),
        (6, 4, 2),
        "gauges before the close"
    );
    let t0 = Instant::now();
    drop(v);
    for (i, w) in callers.into_iter().enumerate() {
        let left = PROMPT.saturating_sub(t0.elapsed());
        expect_errno(
            w.join_within(left)?,
            Errno::ENODEV,
            &format!("caller {i} after Venus closed"),
        )?;
    }
    let s1 = ctl.stats(0).ctx("statistics")?;
    ensure_eq!(
        sum(&s1, |o| o.aborted) - sum(&s0, |o| o.aborted),
        6,
        "calls counted aborted"
    );
    check_quiet(&s1)
}

pub fn no_venus(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let m = msg::request_token(CODA_GETATTR, 1);
    // Nobody has /dev/cfs2 open.
    let t0 = Instant::now();
    expect_errno(
        ctl.call(2, &m, CAP),
        Errno::ENODEV,
        "a call before Venus ever opened the device",
    )?;
    expect_errno(
        ctl.call_async(2, &m),
        Errno::ENODEV,
        "an async call before Venus opened",
    )?;
    ensure!(t0.elapsed() < PROMPT, "ENODEV took {:?}", t0.elapsed());
    for round in 0..2 {
        let v = Venus::open(2)?;
        let w = start_call(&ctl, 2, "caller", m.clone(), CAP)?;
        let (_, req) = v.next_request()?;
        answer(&v, &req)?;
        expect_answer(
            w.join_within(EXPECT)?,
            1,
            &format!("a call with Venus there (round {round})"),
        )?;
        drop(v);
        let t0 = Instant::now();
        expect_errno(
            ctl.call(2, &m, CAP),
            Errno::ENODEV,
            "a call after Venus closed",
        )?;
        expect_errno(
            ctl.call_async(2, &m),
            Errno::ENODEV,
            "an async call after Venus closed",
        )?;
        ensure!(t0.elapsed() < PROMPT, "ENODEV took {:?}", t0.elapsed());
    }
    Ok(())
}

pub fn async_upcalls(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let t0 = Instant::now();
    let mut uniques = Vec::new();
    for token in 0..4 {
        uniques.push(
            ctl.call_async(0, &msg::request_token(CODA_STATFS, token))
                .ctx("async upcall")?,
        );
    }
    ensure!(
        t0.elapsed() < PROMPT,
        "four async upcalls with nobody reading took {:?}",
        t0.elapsed()
    );
    ensure!(
        !uniques.contains(&0),
        "an async upcall got unique 0: {uniques:?}"
    );
    let mut sorted = uniques.clone();
    sorted.sort_unstable();
    sorted.dedup();
    ensure_eq!(
        sorted.len(),
        uniques.len(),
        "distinct uniques among {uniques:?}"
    );
    for (token, &u) in uniques.iter().enumerate() {
        let (h, m) = v.next_request()?;
        ensure_eq!(
            (h.unique, msg::token_of(&m)),
            (u, Some(token as u64)),
            "(unique, token) read"
        );
        expect_errno(
            v.write(&msg::reply(CODA_STATFS, u, 0, &[])),
            Errno::ESRCH,
            "a reply to an async upcall",
        )?;
    }
    v.expect_empty("after the async upcalls")?;
    let s1 = v.stats()?;
    let (a, b) = (&s1.op[CODA_STATFS as usize], &s0.op[CODA_STATFS as usize]);
    ensure_eq!(
        (
            a.calls - b.calls,
            a.async_read - b.async_read,
            a.replies - b.replies
        ),
        (4, 4, 0),
        "STATFS (calls, async_read, replies)"
    );
    check_quiet(&s1)
}

pub fn call_validation(env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let good = msg::request_token(CODA_GETATTR, 1);
    let bad = |r: Result<crate::caller::Reply, Errno>, what: &str| {
        expect_errno(r.map(drop), Errno::EINVAL, what)
    };
    bad(ctl.call_flags(0, 2, &good, CAP), "flags 2")?;
    bad(
        ctl.call_flags(0, 0x8000_0000, &good, CAP),
        "flags 0x80000000",
    )?;
    let n = env.params.devices();
    bad(ctl.call(n, &good, CAP), &format!("minor {n}"))?;
    bad(ctl.call(u32::MAX, &good, CAP), "minor 0xffffffff")?;
    bad(
        ctl.call(0, &good[..coda_msg::IN_HDR_SIZE - 1], CAP),
        "in_len 19",
    )?;
    bad(ctl.call(0, &[], CAP), "in_len 0")?;
    let mut huge = good.clone();
    huge.resize(VC_MAXMSGSIZE + 1, 0);
    bad(ctl.call(0, &huge, CAP), "in_len VC_MAXMSGSIZE + 1")?;
    bad(ctl.call(0, &good, coda_msg::OUT_HDR_SIZE - 1), "out_cap 11")?;
    bad(ctl.call(0, &good, 0), "out_cap 0")?;
    bad(
        ctl.call(0, &good, VC_MAXMSGSIZE + 1),
        "out_cap VC_MAXMSGSIZE + 1",
    )?;
    for op in [
        0u32,
        1,
        17,
        21,
        coda_msg::CODA_SIGNAL,
        coda_msg::CODA_FLUSH,
        coda_msg::CODA_ZAPFILE,
        38,
        1000,
    ] {
        let m = msg::request_token(op, 1);
        bad(ctl.call(0, &m, CAP), &format!("opcode {op}"))?;
        expect_errno(
            ctl.call_async(0, &m),
            Errno::EINVAL,
            &format!("async opcode {op}"),
        )?;
    }
    let mut out = vec![0u8; CAP];
    let mut c = CtlCall {
        minor: 0,
        flags: 0,
        in_: 1,
        in_len: good.len() as u32,
        out_cap: CAP as u32,
        out: out.as_mut_ptr() as u64,
        out_len: 0,
        unique: 0,
    };
    // SAFETY: `in_` is address 1, which is never mapped; `out` is our CAP-byte buffer.
    expect_errno(
        unsafe { sys::ctl_call(ctl.fd(), &mut c) },
        Errno::EFAULT,
        "a request at address 1",
    )?;
    // None of these reached Venus.
    v.expect_empty("after the refused calls")?;
    let s1 = v.stats()?;
    ensure_eq!(
        sum(&s1, |o| o.calls),
        sum(&s0, |o| o.calls),
        "calls counted for refused calls"
    );
    // ASYNC ignores out_cap.
    let u = ctl
        .call_flags(0, coda_msg::CODA_CTL_ASYNC, &good, 0)
        .ctx("async call with out_cap 0")?
        .unique;
    ensure_eq!(v.next_request()?.0.unique, u, "unique of the async upcall");
    Ok(())
}

pub fn bad_out_pointer(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let req = msg::request_token(CODA_GETATTR, 1);
    let fd = ctl.clone();
    let w = Worker::spawn("caller", move || {
        let mut c = CtlCall {
            minor: 0,
            flags: 0,
            in_: req.as_ptr() as u64,
            in_len: req.len() as u32,
            out_cap: CAP as u32,
            out: 1,
            out_len: 0,
            unique: 0,
        };
        // SAFETY: `in_` is `req`, alive for the call; `out` is address 1, never mapped.
        unsafe { sys::ctl_call(fd.fd(), &mut c) }
    })?;
    // The driver may refuse the pointer at once or fail the copy of the reply.
    wait_until("the call is queued or refused", EXPECT, || {
        Ok(w.is_finished() || ctl.stats(0).ctx("statistics")?.pending > 0)
    })?;
    if !w.is_finished() {
        let (_, m) = v.next_request()?;
        answer(&v, &m)?;
    }
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EFAULT,
        "a call whose reply buffer is at address 1",
    )?;
    let st = v.stats()?;
    check_quiet(&st)
}

pub fn passthrough(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let hdr = InHdr {
        opcode: CODA_GETATTR,
        unique: 0x7777_7777,
        pid: 1234,
        pgid: 5678,
        uid: 4321,
    };
    let mut sent = hdr.as_bytes().to_vec();
    sent.extend((0u8..16).map(|i| i.wrapping_mul(37)));
    sent.extend_from_slice(&9u64.to_le_bytes());
    let w = ctl.spawn_call("caller", 0, sent.clone(), CAP)?;
    let (h, m) = v.next_request()?;
    ensure_eq!(m.len(), sent.len(), "length read");
    ensure!(
        m[..4] == sent[..4] && m[8..] == sent[8..],
        "bytes other than the unique changed"
    );
    ensure!(
        h.unique != 0x7777_7777,
        "the driver kept the caller's unique"
    );
    v.reply(&msg::reply(CODA_GETATTR, h.unique, 0, &[0xEE; 4]))?;
    let r = w.join_within(EXPECT)?.ctx("caller")?;
    ensure_eq!(r.unique, h.unique, "unique returned to the caller");
    Ok(())
}

pub fn max_size(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let body: Vec<u8> = (0..VC_MAXMSGSIZE - coda_msg::IN_HDR_SIZE)
        .map(|i| (i % 251) as u8)
        .collect();
    let req = msg::request(CODA_GETATTR, &body);
    let w = ctl.spawn_call("caller", 0, req.clone(), VC_MAXMSGSIZE)?;
    let (h, m) = v.next_request()?;
    ensure_eq!(m.len(), VC_MAXMSGSIZE, "length read");
    ensure!(
        m[coda_msg::IN_HDR_SIZE..] == body[..],
        "the request body changed"
    );
    let reply = msg::reply_pattern(CODA_GETATTR, h.unique, VC_MAXMSGSIZE, 7);
    v.reply(&reply)?;
    let r = w.join_within(EXPECT)?.ctx("caller")?;
    ensure_eq!(r.out_len, VC_MAXMSGSIZE, "out_len");
    ensure!(r.bytes() == reply.as_slice(), "the reply bytes changed");
    Ok(())
}

pub fn venus_process_dies(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let s0 = ctl.stats(0).ctx("statistics")?;
    let mut venus = sys::Child::new(sys::fork_silent_venus(c"/dev/cfs0").ctx("fork")?);
    wait_until("the Venus process opens /dev/cfs0", EXPECT, || {
        Ok(ctl.stats(0).ctx("statistics")?.opens > s0.opens)
    })?;
    let mut callers = Vec::new();
    for t in 0..3u64 {
        callers.push(start_call(
            &ctl,
            0,
            &format!("caller {t}"),
            msg::request_token(CODA_GETATTR, t),
            CAP,
        )?);
    }
    wait_until("the Venus process reads the three requests", EXPECT, || {
        Ok(ctl.stats(0).ctx("statistics")?.processing == 3)
    })?;
    nix::sys::signal::kill(venus.pid(), nix::sys::signal::Signal::SIGKILL).ctx("kill Venus")?;
    ensure_eq!(
        venus.ended(EXPECT)?,
        sys::ChildEnd::Signaled(nix::sys::signal::Signal::SIGKILL),
        "how Venus ended"
    );
    let t0 = Instant::now();
    for (t, w) in callers.into_iter().enumerate() {
        let left = PROMPT.saturating_sub(t0.elapsed());
        expect_errno(
            w.join_within(left)?,
            Errno::ENODEV,
            &format!("caller {t} after Venus died"),
        )?;
    }
    let s1 = ctl.stats(0).ctx("statistics")?;
    ensure_eq!(
        sum(&s1, |o| o.aborted) - sum(&s0, |o| o.aborted),
        3,
        "calls counted aborted"
    );
    check_quiet(&s1)?;
    // The dead Venus's file is gone: a new Venus opens at once.
    let v = Venus::open(0).ctx("a new Venus after the old one died")?;
    v.expect_empty("the new Venus's first read")
}
