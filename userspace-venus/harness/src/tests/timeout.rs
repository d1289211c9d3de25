// SPDX-License-Identifier: GPL-2.0

//! timeout=1: calls that Venus does not answer in time.

use std::time::Duration;
use std::time::Instant;

use coda_msg::PsdevOpStats;
use coda_msg::CODA_CLOSE;
use coda_msg::CODA_GETATTR;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;

use super::answer;
use super::expect_answer;
use super::expect_signal;
use super::start_call;
use super::CAP;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats::check_quiet;
use crate::stats::expect_settled;
use crate::venus::Venus;

/// The module's timeout, and how late a timed-out call may return on a slow emulated VM.
const TIMEOUT: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(5);

fn check_elapsed(t0: Instant, what: &str) -> TestResult {
    let e = t0.elapsed();
    // Jiffies round the timeout; 0.9 s allows for that.
    ensure!(
        e >= TIMEOUT.mul_f32(0.9) && e <= TIMEOUT + SLACK,
        "{what} returned after {e:?}, want about {TIMEOUT:?}"
    );
    Ok(())
}

pub fn unread_times_out(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let t0 = Instant::now();
    expect_errno(
        ctl.call(0, &msg::request_token(CODA_STATFS, 1), CAP),
        Errno::ETIMEDOUT,
        "an unanswered call",
    )?;
    check_elapsed(t0, "the unanswered call")?;
    v.expect_empty("after the unread call timed out")?;
    expect_settled(
        &v,
        &s0,
        CODA_STATFS,
        PsdevOpStats {
            calls: 1,
            timeouts: 1,
            ..Default::default()
        },
        true,
    )
}

pub fn read_times_out(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let t0 = Instant::now();
    let req = msg::request_token(CODA_GETATTR, 1);
    let w = ctl.spawn_call("caller", 0, req.clone(), CAP)?;
    let (h, _) = v.next_request()?;
    expect_errno(
        w.join_within(TIMEOUT + SLACK)?,
        Errno::ETIMEDOUT,
        "a read but unanswered call",
    )?;
    check_elapsed(t0, "the read but unanswered call")?;
    expect_signal(&v.next()?, h.unique)?;
    expect_errno(
        v.write(&msg::reply(CODA_GETATTR, h.unique, 0, &[])),
        Errno::ESRCH,
        "a reply after the timeout",
    )?;
    let want = PsdevOpStats {
        calls: 1,
        timeouts: 1,
        signals_sent: 1,
        bytes_in: (req.len() + coda_msg::IN_HDR_SIZE) as u64,
        ..Default::default()
    };
    expect_settled(&v, &s0, CODA_GETATTR, want, true)
}

pub fn reply_in_time(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 1), CAP)?;
    let (_, m) = v.next_request()?;
    std::thread::sleep(TIMEOUT / 4);
    answer(&v, &m)?;
    expect_answer(
        w.join_within(SLACK)?,
        1,
        "a call answered within the timeout",
    )
    .map(drop)
}

pub fn unread_close_still_reaches_venus(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let t0 = Instant::now();
    expect_errno(
        ctl.call(0, &msg::request_token(CODA_CLOSE, 1), CAP),
        Errno::ETIMEDOUT,
        "an unread CODA_CLOSE",
    )?;
    check_elapsed(t0, "the unread CODA_CLOSE")?;
    // Its caller is gone, but a close Venus never sees loses the file's data.
    let (h, m) = v
        .next_request()
        .map_err(|e| format!("the timed-out CODA_CLOSE never reached Venus: {e}"))?;
    ensure_eq!(h.opcode, CODA_CLOSE, "opcode read");
    ensure_eq!(msg::token_of(&m), Some(1), "token read");
    v.expect_empty("after the CLOSE (no CODA_SIGNAL)")?;
    expect_errno(
        v.write(&msg::reply(CODA_CLOSE, h.unique, 0, &[])),
        Errno::ESRCH,
        "a reply to the timed-out caller",
    )?;
    expect_settled(
        &v,
        &s0,
        CODA_CLOSE,
        PsdevOpStats {
            calls: 1,
            timeouts: 1,
            ..Default::default()
        },
        false,
    )
}

pub fn reply_races_timeout(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let (mut replied, mut timed_out) = (0, 0);
    // Replies written from 60 ms before to 60 ms after the timeout runs out.
    for (round, offset_ms) in [-60i64, -30, -10, 0, 10, 30, 60].into_iter().enumerate() {
        let token = round as u64;
        let w = ctl.spawn_call("caller", 0, msg::request_token(CODA_GETATTR, token), CAP)?;
        let (h, _) = v.next_request()?;
        // The timeout started when the call was queued, a little before Venus read it.
        let at = TIMEOUT.as_millis() as i64 + offset_ms;
        std::thread::sleep(Duration::from_millis(at.max(0) as u64));
        let write = v.write(&msg::reply(h.opcode, h.unique, 0, &token.to_le_bytes()));
        let r = w.join_within(TIMEOUT + SLACK)?;
        match (write, r) {
            (Ok(_), r) => {
                expect_answer(
                    r,
                    token,
                    &format!("a call answered {offset_ms} ms from the timeout"),
                )?;
                replied += 1;
            }
            (Err(Errno::ESRCH), Err(Errno::ETIMEDOUT)) => {
                expect_signal(&v.next()?, h.unique)?;
                timed_out += 1;
            }
            (w, r) => {
                return Err(format!(
                    "reply {offset_ms} ms from the timeout: the write gave {w:?} and the call {:?}",
                    r.map(|r| r.out_len)
                ))
            }
        }
    }
    v.expect_empty("after the races")?;
    eprintln!("# reply vs timeout: {replied} replied, {timed_out} timed out");
    let st = v.stats()?;
    check_quiet(&st)
}
