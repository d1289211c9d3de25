// SPDX-License-Identifier: GPL-2.0

//! hard=1: every call ignores ordinary signals, like Linux's coda_hard.

use coda_msg::PsdevOpStats;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::answer;
use super::expect_answer;
use super::expect_signal;
use super::signals::fork_caller;
use super::signals::usr1_then_kill;
use super::start_call;
use super::CAP;
use super::STAYS;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::TestResult;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats::check_balance;
use crate::stats::check_quiet;
use crate::stats::expect_op;
use crate::venus::Venus;
use crate::venus::EXPECT;

pub fn statfs_ignores_signal(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let w = start_call(&ctl, 0, "statfs", msg::request_token(CODA_STATFS, 1), CAP)?;
    w.kill(Signal::SIGUSR1)?;
    w.still_blocked_after(STAYS)
        .map_err(|e| format!("SIGUSR1 before the read: {e}"))?;
    let (h, m) = v
        .next_request()
        .map_err(|e| format!("the request is gone after SIGUSR1: {e}"))?;
    ensure_eq!(h.opcode, CODA_STATFS, "opcode read");
    w.kill(Signal::SIGUSR1)?;
    w.still_blocked_after(STAYS)
        .map_err(|e| format!("SIGUSR1 after the read: {e}"))?;
    v.expect_empty("after SIGUSR1 (no CODA_SIGNAL)")?;
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 1, "statfs")?;
    let s1 = v.stats()?;
    expect_op(
        &s0,
        &s1,
        CODA_STATFS,
        PsdevOpStats {
            calls: 1,
            replies: 1,
            ..Default::default()
        },
        false,
    )?;
    check_balance(&s1)
}

pub fn sigkill_ends_call(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut buf = Vec::new();
    let (mut child, _) = fork_caller(&ctl, 0, CODA_STATFS, &mut buf)?;
    let (h, _) = v.next_request()?;
    usr1_then_kill(&mut child)?;
    expect_signal(&v.next()?, h.unique)?;
    let st = v.stats()?;
    check_quiet(&st)
}

pub fn close_ends_call(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let queued = start_call(&ctl, 0, "queued", msg::request_token(CODA_STATFS, 1), CAP)?;
    let read = start_call(&ctl, 0, "read", msg::request_token(CODA_STATFS, 2), CAP)?;
    v.next()?;
    drop(v);
    expect_errno(
        queued.join_within(EXPECT)?,
        Errno::ENODEV,
        "the queued caller",
    )?;
    expect_errno(
        read.join_within(EXPECT)?,
        Errno::ENODEV,
        "the caller whose request was read",
    )
}
