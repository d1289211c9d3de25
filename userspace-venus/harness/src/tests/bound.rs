// SPDX-License-Identifier: GPL-2.0

//! max_outstanding=4: callers beyond the bound wait for room.

use coda_msg::CODA_CLOSE;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::answer;
use super::expect_answer;
use super::start_call;
use super::CAP;
use super::STAYS;
use crate::caller::CallResult;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::wait_until;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats::check_balance;
use crate::stats::sum;
use crate::sys;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

const BOUND: u64 = 4;

fn calls(ctl: &Ctl) -> Result<u64, String> {
    Ok(sum(&ctl.stats(0).ctx("statistics")?, |o| o.calls))
}

/// Fills the device with `BOUND` queued calls carrying tokens 0..BOUND.
fn fill(ctl: &Ctl) -> Result<Vec<Worker<CallResult>>, String> {
    (0..BOUND)
        .map(|t| {
            start_call(
                ctl,
                0,
                &format!("caller {t}"),
                msg::request_token(CODA_STATFS, t),
                CAP,
            )
        })
        .collect()
}

/// Starts the caller beyond the bound and checks it waits without queueing anything.
fn fifth(ctl: &Ctl, op: u32) -> Result<Worker<CallResult>, String> {
    let before = calls(ctl)?;
    let w = ctl.spawn_call("caller 4", 0, msg::request_token(op, BOUND), CAP)?;
    w.wait_sleeping_in(&[sys::SYS_IOCTL])?;
    w.still_blocked_after(STAYS)?;
    ensure_eq!(calls(ctl)?, before, "calls queued while the device is full");
    Ok(w)
}

pub fn fifth_waits(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut callers = fill(&ctl)?;
    let before = calls(&ctl)?;
    callers.push(fifth(&ctl, CODA_STATFS)?);
    // Answer one: the fifth gets in.
    let (_, m) = v.next_request()?;
    answer(&v, &m)?;
    wait_until("the fifth call is queued", EXPECT, || {
        Ok(calls(&ctl)? == before + 1)
    })?;
    for _ in 0..BOUND {
        let (_, m) = v.next_request()?;
        answer(&v, &m)?;
    }
    for (t, w) in callers.into_iter().enumerate() {
        expect_answer(w.join_within(EXPECT)?, t as u64, &format!("caller {t}"))?;
    }
    let st = v.stats()?;
    ensure!(
        st.peak_outstanding <= BOUND,
        "peak_outstanding {} exceeds the bound",
        st.peak_outstanding
    );
    check_balance(&st)
}

pub fn fifth_interruptible(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let callers = fill(&ctl)?;
    let s0 = v.stats()?;
    let w = fifth(&ctl, CODA_STATFS)?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EINTR,
        "the caller waiting for room",
    )?;
    let s1 = v.stats()?;
    ensure!(
        s1 == s0,
        "the statistics changed for a call that never got in"
    );
    for t in 0..BOUND {
        let (_, m) = v.next_request()?;
        ensure_eq!(msg::token_of(&m), Some(t), "token of message {t}");
    }
    v.expect_empty("after the four queued calls")?;
    drop(v);
    for w in callers {
        expect_errno(
            w.join_within(EXPECT)?,
            Errno::ENODEV,
            "a queued caller after the close",
        )?;
    }
    Ok(())
}

pub fn fifth_enodev_on_close(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut callers = fill(&ctl)?;
    callers.push(fifth(&ctl, CODA_STATFS)?);
    drop(v);
    for (t, w) in callers.into_iter().enumerate() {
        expect_errno(
            w.join_within(EXPECT)?,
            Errno::ENODEV,
            &format!("caller {t} after the close"),
        )?;
    }
    let st = ctl.stats(0).ctx("statistics")?;
    check_balance(&st)
}

pub fn async_counts(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    for t in 0..BOUND {
        ctl.call_async(0, &msg::request_token(CODA_STATFS, t))
            .ctx("async upcall")?;
    }
    let c = ctl.clone();
    let w = Worker::spawn("async 4", move || {
        c.call_async(0, &msg::request_token(CODA_STATFS, BOUND))
    })?;
    w.wait_sleeping_in(&[sys::SYS_IOCTL])?;
    w.still_blocked_after(STAYS)?;
    v.next()?;
    w.join_within(EXPECT)?.ctx("the fifth async upcall")?;
    for t in 1..=BOUND {
        ensure_eq!(
            msg::token_of(&v.next()?),
            Some(t),
            "token of async upcall {t}"
        );
    }
    v.expect_empty("after the async upcalls")
}

pub fn close_waits_through_signal(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut callers = fill(&ctl)?;
    let w = fifth(&ctl, CODA_CLOSE)?;
    w.kill(Signal::SIGUSR1)?;
    w.still_blocked_after(STAYS)?;
    callers.push(w);
    for _ in 0..=BOUND {
        let (_, m) = v.next_request()?;
        answer(&v, &m)?;
    }
    for (t, w) in callers.into_iter().enumerate() {
        expect_answer(w.join_within(EXPECT)?, t as u64, &format!("caller {t}"))?;
    }
    Ok(())
}
