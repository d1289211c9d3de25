// SPDX-License-Identifier: GPL-2.0

//! The statistics ioctls and fdinfo.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use coda_msg::PsdevOpStats;
use coda_msg::PsdevStats;
use coda_msg::CODA_ACCESS;
use coda_msg::CODA_GETATTR;
use coda_msg::CODA_LOOKUP;
use coda_msg::CODA_MKDIR;
use coda_msg::CODA_SETATTR;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::answer;
use super::expect_answer;
use super::expect_signal;
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
use crate::stats::check_idle;
use crate::stats::check_quiet;
use crate::stats::expect_op;
use crate::stats::op_delta;
use crate::stats::sum;
use crate::venus::Venus;
use crate::venus::EXPECT;

fn gauges(st: &PsdevStats) -> (u64, u64, u64) {
    (st.outstanding, st.pending, st.processing)
}

pub fn per_opcode(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let s0 = ctl.stats(1).ctx("statistics")?;
    let v = Venus::open(1)?;
    let st = || ctl.stats(1).ctx("statistics");
    ensure_eq!(s0.version, coda_msg::CODA_PSDEV_STATS_VERSION, "version");
    ensure_eq!(s0.minor, 1, "minor");

    // Three asynchronous upcalls at once: outstanding and its peak.
    let statfs = msg::request_token(CODA_STATFS, 0);
    for _ in 0..3 {
        ctl.call_async(1, &statfs).ctx("async upcall")?;
    }
    let s = st()?;
    ensure_eq!(
        gauges(&s),
        (3, 3, 0),
        "(outstanding, pending, processing) with 3 async upcalls queued"
    );
    ensure!(
        s.peak_outstanding >= 3,
        "peak_outstanding {} with 3 outstanding",
        s.peak_outstanding
    );
    ensure!(s.mem_bytes > 0, "mem_bytes is 0 with 3 upcalls queued");
    for _ in 0..3 {
        v.next()?;
    }
    check_idle(&st()?)?;

    // GETATTR, replied.
    let getattr = msg::request_token(CODA_GETATTR, 1);
    let w = start_call(&ctl, 1, "getattr", getattr.clone(), CAP)?;
    ensure_eq!(gauges(&st()?), (1, 1, 0), "gauges with one request queued");
    let (_, m) = v.next_request()?;
    ensure_eq!(gauges(&st()?), (1, 0, 1), "gauges with one request read");
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 1, "getattr")?;

    // LOOKUP, interrupted before Venus read it.
    let w = start_call(&ctl, 1, "lookup", msg::request_token(CODA_LOOKUP, 2), CAP)?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(w.join_within(EXPECT)?, Errno::EINTR, "lookup")?;

    // ACCESS, interrupted after: Venus then reads a CODA_SIGNAL.
    let access = msg::request_token(CODA_ACCESS, 3);
    let w = start_call(&ctl, 1, "access", access.clone(), CAP)?;
    let (h, _) = v.next_request()?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(w.join_within(EXPECT)?, Errno::EINTR, "access")?;
    expect_signal(&v.next()?, h.unique)?;

    // SETATTR, answered with a reply too long for it.
    let setattr = msg::request_token(CODA_SETATTR, 4);
    let w = start_call(&ctl, 1, "setattr", setattr.clone(), CAP)?;
    let (h, _) = v.next_request()?;
    expect_errno(
        v.write(&msg::reply_pattern(CODA_SETATTR, h.unique, CAP + 1, 0)),
        Errno::EINVAL,
        "oversized reply",
    )?;
    expect_errno(w.join_within(EXPECT)?, Errno::EIO, "setattr")?;

    // MKDIR, aborted by Venus closing the device.
    let w = start_call(&ctl, 1, "mkdir", msg::request_token(CODA_MKDIR, 5), CAP)?;
    drop(v);
    expect_errno(w.join_within(EXPECT)?, Errno::ENODEV, "mkdir")?;

    let s1 = st()?;
    let reply_len = (coda_msg::OUT_HDR_SIZE + 8) as u64;
    let sig = coda_msg::IN_HDR_SIZE as u64;
    let want = [
        (
            CODA_STATFS,
            PsdevOpStats {
                calls: 3,
                async_read: 3,
                bytes_in: 3 * statfs.len() as u64,
                ..Default::default()
            },
        ),
        (
            CODA_GETATTR,
            PsdevOpStats {
                calls: 1,
                replies: 1,
                bytes_in: getattr.len() as u64,
                bytes_out: reply_len,
                ..Default::default()
            },
        ),
        (
            CODA_LOOKUP,
            PsdevOpStats {
                calls: 1,
                intr_before_read: 1,
                ..Default::default()
            },
        ),
        (
            CODA_ACCESS,
            PsdevOpStats {
                calls: 1,
                intr_after_read: 1,
                signals_sent: 1,
                bytes_in: access.len() as u64 + sig,
                ..Default::default()
            },
        ),
        (
            CODA_SETATTR,
            PsdevOpStats {
                calls: 1,
                bad_replies: 1,
                bytes_in: setattr.len() as u64,
                ..Default::default()
            },
        ),
        (
            CODA_MKDIR,
            PsdevOpStats {
                calls: 1,
                aborted: 1,
                ..Default::default()
            },
        ),
    ];
    for (op, w) in want {
        expect_op(&s0, &s1, op, w, true)?;
    }
    for op in 0..coda_msg::CODA_PSDEV_NOPS as u32 {
        if !want.iter().any(|(o, _)| *o == op) {
            ensure_eq!(
                op_delta(&s0, &s1, op),
                PsdevOpStats::default(),
                "counters of untouched opcode {op}"
            );
        }
    }
    ensure_eq!(s1.opens - s0.opens, 1, "opens");
    ensure!(
        s1.peak_outstanding >= 3,
        "peak_outstanding fell to {}",
        s1.peak_outstanding
    );
    check_quiet(&s1)
}

pub fn ctl_matches_psdev(env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(2)?;
    ctl.call_async(2, &msg::request_token(CODA_STATFS, 1))
        .ctx("async upcall")?;
    // Leave one queued so the gauges are not all zero.
    ctl.call_async(2, &msg::request_token(CODA_STATFS, 2))
        .ctx("async upcall")?;
    v.next()?;
    let a = v.stats()?;
    let b = ctl.stats(2).ctx("CODA_CTL_IOC_STATS")?;
    ensure!(
        a == b,
        "CODA_CTL_IOC_STATS differs from CODA_PSDEV_IOC_STATS:\n{a:?}\n{b:?}"
    );
    ensure_eq!(
        (b.version, b.minor),
        (coda_msg::CODA_PSDEV_STATS_VERSION, 2),
        "(version, minor)"
    );
    ensure_eq!(b.pending, 1, "pending");
    for minor in 0..env.params.devices() {
        ensure_eq!(
            ctl.stats(minor).ctx("CODA_CTL_IOC_STATS")?.minor,
            minor,
            "minor field for minor {minor}"
        );
    }
    for bad in [env.params.devices(), 16, u32::MAX] {
        expect_errno(
            ctl.stats(bad).map(drop),
            Errno::EINVAL,
            &format!("CODA_CTL_IOC_STATS for minor {bad}"),
        )?;
    }
    Ok(())
}

fn read_fdinfo(fd: i32) -> Result<HashMap<String, String>, String> {
    let path = format!("/proc/self/fdinfo/{fd}");
    let text = std::fs::read_to_string(&path).ctx(&path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

fn check_fdinfo(v: &Venus, st: &PsdevStats) -> TestResult {
    let info = read_fdinfo(v.fd().as_raw_fd())?;
    let want: [(&str, u64); 22] = [
        ("coda_minor", st.minor as u64),
        ("coda_outstanding", st.outstanding),
        ("coda_peak_outstanding", st.peak_outstanding),
        ("coda_pending", st.pending),
        ("coda_processing", st.processing),
        ("coda_mem_bytes", st.mem_bytes),
        ("coda_calls", sum(st, |o| o.calls)),
        ("coda_replies", sum(st, |o| o.replies)),
        ("coda_intr_before_read", sum(st, |o| o.intr_before_read)),
        ("coda_intr_after_read", sum(st, |o| o.intr_after_read)),
        ("coda_signals_sent", sum(st, |o| o.signals_sent)),
        ("coda_timeouts", sum(st, |o| o.timeouts)),
        ("coda_aborted", sum(st, |o| o.aborted)),
        ("coda_bad_replies", sum(st, |o| o.bad_replies)),
        ("coda_async_read", sum(st, |o| o.async_read)),
        ("coda_bytes_in", sum(st, |o| o.bytes_in)),
        ("coda_bytes_out", sum(st, |o| o.bytes_out)),
        ("coda_downcalls", st.downcalls),
        ("coda_downcalls_dropped", st.downcalls_dropped),
        ("coda_bad_writes", st.bad_writes),
        ("coda_wakes_skipped", st.wakes_skipped),
        ("coda_nudges", st.nudges),
    ];
    for (key, value) in want {
        let got = info.get(key).ok_or(format!("fdinfo has no {key} line"))?;
        let value = value.to_string();
        ensure_eq!(got.as_str(), value.as_str(), "fdinfo {key}");
    }
    for (op, o) in st.op.iter().enumerate().filter(|(_, o)| o.calls > 0) {
        let key = format!("coda_op{op}");
        let got = info.get(&key).ok_or(format!("fdinfo has no {key} line"))?;
        let line = format!(
            "calls {} replies {} intr {}/{} timeouts {} aborted {}",
            o.calls, o.replies, o.intr_before_read, o.intr_after_read, o.timeouts, o.aborted
        );
        ensure_eq!(got.as_str(), line.as_str(), "fdinfo {key}");
    }
    Ok(())
}

pub fn fdinfo(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 1), CAP)?;
    let (_, m) = v.next_request()?;
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 2))
        .ctx("async upcall")?;
    // Mid-flight: one request processing, one queued.
    let st = v.stats()?;
    ensure_eq!(gauges(&st), (2, 1, 1), "gauges mid-flight");
    check_fdinfo(&v, &st)?;
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 1, "caller")?;
    v.next()?;
    let st = v.stats()?;
    check_fdinfo(&v, &st)
}
