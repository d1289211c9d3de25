// SPDX-License-Identifier: GPL-2.0

//! Signals sent to callers blocked in an upcall.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use coda_msg::CtlCall;
use coda_msg::PsdevOpStats;
use coda_msg::CODA_ACCESS_INTENT;
use coda_msg::CODA_CLOSE;
use coda_msg::CODA_GETATTR;
use coda_msg::CODA_RELEASE;
use coda_msg::CODA_STATFS;
use coda_msg::CODA_STORE;
use nix::errno::Errno;
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
use crate::stats::check_balance;
use crate::stats::check_quiet;
use crate::stats::expect_op;
use crate::stats::expect_settled;
use crate::sys;
use crate::sys::Child;
use crate::sys::ChildEnd;
use crate::venus;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

pub fn before_read(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_STATFS, 1), CAP)?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EINTR,
        "the interrupted caller",
    )?;
    v.expect_empty("after the caller gave up before the read")?;
    expect_settled(
        &v,
        &s0,
        CODA_STATFS,
        PsdevOpStats {
            calls: 1,
            intr_before_read: 1,
            ..Default::default()
        },
        true,
    )
}

pub fn after_read(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let req = msg::request_token(CODA_GETATTR, 1);
    let w = start_call(&ctl, 0, "caller", req.clone(), CAP)?;
    let (h, _) = v.next_request()?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EINTR,
        "the interrupted caller",
    )?;
    expect_signal(&v.next()?, h.unique)?;
    let late = msg::reply(CODA_GETATTR, h.unique, 0, &1u64.to_le_bytes());
    expect_errno(
        v.write(&late),
        Errno::ESRCH,
        "a late reply to the interrupted call",
    )?;
    v.expect_empty("after the CODA_SIGNAL")?;
    let want = PsdevOpStats {
        calls: 1,
        intr_after_read: 1,
        signals_sent: 1,
        bytes_in: (req.len() + coda_msg::IN_HDR_SIZE) as u64,
        ..Default::default()
    };
    expect_settled(&v, &s0, CODA_GETATTR, want, true)
}

pub fn reply_wins(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let rounds = 10;
    for i in 0..rounds {
        let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, i), CAP)?;
        let (_, m) = v.next_request()?;
        answer(&v, &m)?;
        // Right behind the reply, before the caller can have run.
        w.kill(Signal::SIGUSR1)?;
        expect_answer(
            w.join_within(EXPECT)?,
            i,
            &format!("caller {i}, signalled after the reply"),
        )?;
    }
    v.expect_empty("after the replied calls")?;
    let s1 = v.stats()?;
    expect_op(
        &s0,
        &s1,
        CODA_GETATTR,
        PsdevOpStats {
            calls: rounds,
            replies: rounds,
            ..Default::default()
        },
        false,
    )?;
    check_balance(&s1)
}

pub fn uninterruptible_ops(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    for op in [CODA_CLOSE, CODA_STORE, CODA_RELEASE, CODA_ACCESS_INTENT] {
        let name = coda_msg::opcode_name(op);
        let s0 = v.stats()?;
        let handled = sys::signals_handled();
        let w = start_call(&ctl, 0, name, msg::request_token(op, u64::from(op)), CAP)?;
        w.kill(Signal::SIGUSR1)?;
        w.still_blocked_after(STAYS)
            .map_err(|e| format!("SIGUSR1 before the read: {e}"))?;
        let (h, m) = v
            .next_request()
            .map_err(|e| format!("{name}: the request is gone after SIGUSR1: {e}"))?;
        ensure_eq!(h.opcode, op, "opcode read");
        w.kill(Signal::SIGUSR1)?;
        w.still_blocked_after(STAYS)
            .map_err(|e| format!("SIGUSR1 after the read: {e}"))?;
        v.expect_empty(&format!("{name} after SIGUSR1 (no CODA_SIGNAL)"))?;
        answer(&v, &m)?;
        expect_answer(w.join_within(EXPECT)?, u64::from(op), name)?;
        // The signal was held back, not lost.
        wait_until(
            "the held-back SIGUSR1 is handled",
            Duration::from_secs(2),
            || Ok(sys::signals_handled() > handled),
        )?;
        let s1 = v.stats()?;
        expect_op(
            &s0,
            &s1,
            op,
            PsdevOpStats {
                calls: 1,
                replies: 1,
                ..Default::default()
            },
            false,
        )?;
    }
    Ok(())
}

/// Forks a process that calls `opcode` on /dev/cfs<minor> and waits until it sleeps in the
/// ioctl with the upcall queued. `buf` holds the request and room for the reply.
pub(super) fn fork_caller(
    ctl: &Ctl,
    minor: u32,
    opcode: u32,
    buf: &mut Vec<u8>,
) -> Result<(Child, u64), String> {
    let req = msg::request_token(opcode, 0xC0DE);
    let before = ctl.stats(minor).ctx("statistics")?.op[opcode as usize].calls;
    let in_len = req.len();
    buf.clear();
    buf.extend_from_slice(&req);
    buf.resize(in_len + CAP, 0);
    let c = CtlCall {
        minor,
        flags: 0,
        in_: buf.as_ptr() as u64,
        in_len: in_len as u32,
        out_cap: CAP as u32,
        out: buf[in_len..].as_ptr() as u64,
        out_len: 0,
        unique: 0,
    };
    let child = Child::new(sys::fork_ctl_call(ctl.fd(), &c).ctx("fork")?);
    wait_until("the child's upcall is queued", EXPECT, || {
        Ok(ctl.stats(minor).ctx("statistics")?.op[opcode as usize].calls > before)
    })?;
    sys::wait_sleeping_in(&format!("/proc/{}", child.pid()), &[sys::SYS_IOCTL], EXPECT)?;
    Ok((child, before))
}

/// SIGUSR1 leaves the forked caller blocked; SIGKILL ends it.
pub(super) fn usr1_then_kill(child: &mut Child) -> TestResult {
    nix::sys::signal::kill(child.pid(), Signal::SIGUSR1).ctx("kill SIGUSR1")?;
    std::thread::sleep(STAYS);
    ensure!(
        sys::sleeping_in(&format!("/proc/{}", child.pid()), &[sys::SYS_IOCTL]),
        "the caller left its call after SIGUSR1"
    );
    nix::sys::signal::kill(child.pid(), Signal::SIGKILL).ctx("kill SIGKILL")?;
    let end = child.ended(EXPECT)?;
    ensure_eq!(
        end,
        ChildEnd::Signaled(Signal::SIGKILL),
        "how the killed caller ended"
    );
    Ok(())
}

pub fn sigkill_before_read(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let mut buf = Vec::new();
    let (mut child, _) = fork_caller(&ctl, 0, CODA_CLOSE, &mut buf)?;
    usr1_then_kill(&mut child)?;
    // The call ended, but Venus must still learn of the close (Linux's coda drops it).
    let (h, m) = v
        .next_request()
        .map_err(|e| format!("the CLOSE of the killed caller never reached Venus: {e}"))?;
    ensure_eq!(h.opcode, CODA_CLOSE, "opcode read");
    ensure_eq!(msg::token_of(&m), Some(0xC0DE), "token read");
    v.expect_empty("after the CLOSE (no CODA_SIGNAL)")?;
    expect_errno(
        v.write(&msg::reply(CODA_CLOSE, h.unique, 0, &[])),
        Errno::ESRCH,
        "a reply to the killed caller",
    )?;
    expect_settled(
        &v,
        &s0,
        CODA_CLOSE,
        PsdevOpStats {
            calls: 1,
            intr_before_read: 1,
            ..Default::default()
        },
        false,
    )
}

pub fn sigkill_after_read(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let mut buf = Vec::new();
    let (mut child, _) = fork_caller(&ctl, 0, CODA_STORE, &mut buf)?;
    let (h, _) = v.next_request()?;
    ensure_eq!(h.opcode, CODA_STORE, "opcode read");
    usr1_then_kill(&mut child)?;
    expect_signal(&v.next()?, h.unique)?;
    expect_errno(
        v.write(&msg::reply(CODA_STORE, h.unique, 0, &[])),
        Errno::ESRCH,
        "a reply to the killed caller",
    )?;
    let want = PsdevOpStats {
        calls: 1,
        intr_after_read: 1,
        signals_sent: 1,
        ..Default::default()
    };
    expect_settled(&v, &s0, CODA_STORE, want, false)
}

pub fn restart_flag_ignored(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    // SIGUSR2's handler has SA_RESTART; an upcall is never restarted all the same.
    let w = start_call(
        &ctl,
        0,
        "before read",
        msg::request_token(CODA_GETATTR, 1),
        CAP,
    )?;
    w.kill(Signal::SIGUSR2)?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EINTR,
        "a call interrupted by SIGUSR2 before the read",
    )?;
    v.expect_empty("after the interrupted call")?;
    let w = start_call(
        &ctl,
        0,
        "after read",
        msg::request_token(CODA_GETATTR, 2),
        CAP,
    )?;
    let (h, _) = v.next_request()?;
    w.kill(Signal::SIGUSR2)?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EINTR,
        "a call interrupted by SIGUSR2 after the read",
    )?;
    expect_signal(&v.next()?, h.unique)
}

/// What the Venus thread of [`signal_races`] saw.
#[derive(Default)]
struct RaceLog {
    /// token -> (unique, result of the reply write)
    replies: HashMap<u64, (u32, Result<usize, Errno>)>,
    signals: Vec<u32>,
    errors: Vec<String>,
}

/// Venus for [`signal_races`]: answers every request at once, notes CODA_SIGNALs, stops at
/// a STATFS.
fn racing_venus(fd: Arc<OwnedFd>, log: Arc<Mutex<RaceLog>>) {
    let note = |f: &mut dyn FnMut(&mut RaceLog)| {
        if let Ok(mut l) = log.lock() {
            f(&mut l);
        }
    };
    loop {
        let m = match venus::read_msg(fd.as_fd()) {
            Ok(m) => m,
            Err(e) => return note(&mut |l| l.errors.push(format!("read: {e}"))),
        };
        let Ok(h) = msg::in_hdr(&m) else {
            return note(&mut |l| l.errors.push("unparsable message".to_owned()));
        };
        match h.opcode {
            CODA_STATFS => return,
            coda_msg::CODA_SIGNAL => note(&mut |l| l.signals.push(h.unique)),
            _ => {
                let token = msg::token_of(&m).unwrap_or(u64::MAX);
                let r = nix::unistd::write(
                    fd.as_fd(),
                    &msg::reply(h.opcode, h.unique, 0, &token.to_le_bytes()),
                );
                note(&mut |l| {
                    l.replies.insert(token, (h.unique, r));
                });
            }
        }
    }
}

pub fn signal_races(_env: &Env) -> TestResult {
    const ROUNDS: u64 = 200;
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let log = Arc::new(Mutex::new(RaceLog::default()));
    let (fd, l) = (v.shared(), log.clone());
    let venus = Worker::spawn("venus", move || racing_venus(fd, l))?;
    // The signal lands before, during or after Venus's read and reply. The delay before it
    // walks towards the point where calls start to get their reply first, so that most
    // rounds hit the window where the outcomes race; jitter spreads them around it.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() as u64 | 1);
    let mut delay_us = 1000.0f64;
    let mut outcomes = Vec::new();
    for token in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let jitter = 0.5 + (seed % 1000) as f64 / 1000.0;
        let w = ctl.spawn_call("racer", 0, msg::request_token(CODA_GETATTR, token), CAP)?;
        let delay = Duration::from_secs_f64(delay_us * jitter / 1e6);
        // Below the timer's slack, spin: a sleep would always land after the reply.
        if delay < Duration::from_micros(100) {
            let until = std::time::Instant::now() + delay;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(delay);
        }
        w.kill(Signal::SIGUSR1)?;
        let r = w.join_within(EXPECT)?;
        delay_us = match &r {
            Ok(_) => (delay_us * 0.8).max(1.0),
            Err(_) => (delay_us * 1.25).min(20_000.0),
        };
        outcomes.push((token, r));
    }
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 0))
        .ctx("stop message")?;
    venus.join_within(EXPECT)?;
    let log = log.lock().map_err(|_| "the Venus thread panicked")?;
    ensure!(log.errors.is_empty(), "Venus: {}", log.errors.join("; "));
    let (mut replied, mut before, mut after) = (0u64, 0u64, 0u64);
    for (token, r) in outcomes {
        let seen = log.replies.get(&token);
        match (r, seen) {
            (Ok(r), Some((u, Ok(_)))) => {
                ensure_eq!(r.unique, *u, "token {token}: unique");
                expect_answer(Ok(r), token, &format!("token {token}"))?;
                replied += 1;
            }
            (Ok(_), seen) => {
                return Err(format!(
                    "token {token}: the call succeeded, but Venus's reply was {seen:?}"
                ))
            }
            (Err(Errno::EINTR), None) => before += 1,
            (Err(Errno::EINTR), Some((u, w))) => {
                ensure!(
                    matches!(w, Err(Errno::ESRCH)),
                    "token {token}: the caller got EINTR, but Venus's reply returned {w:?}"
                );
                ensure!(
                    log.signals.contains(u),
                    "token {token}: interrupted after the read, but no CODA_SIGNAL for {u}"
                );
                after += 1;
            }
            (Err(e), _) => return Err(format!("token {token}: the call failed with {e}")),
        }
    }
    ensure_eq!(log.signals.len() as u64, after, "CODA_SIGNALs Venus read");
    eprintln!(
        "# signal races: {replied} replied, {before} interrupted before the read, {after} after"
    );
    let s1 = v.stats()?;
    let d = crate::stats::op_delta(&s0, &s1, CODA_GETATTR);
    ensure_eq!(
        (d.calls, d.replies),
        (ROUNDS, replied),
        "GETATTR (calls, replies)"
    );
    ensure_eq!(
        d.intr_before_read + d.intr_after_read,
        before + after,
        "GETATTR interruptions"
    );
    ensure_eq!(d.signals_sent, after, "GETATTR signals_sent");
    check_quiet(&s1)
}
