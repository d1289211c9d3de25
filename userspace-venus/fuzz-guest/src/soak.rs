// SPDX-License-Identifier: GPL-2.0

//! The soak: many callers, a multi-threaded Venus that is restarted periodically, random
//! signals, for a bounded time; at the end every call had exactly one outcome (the counters
//! match what the callers saw) and nothing is outstanding.

use crate::sys;
use crate::sys::Report;
use crate::sys::Rng;
use crate::work;
use coda_msg::*;
use std::time::Duration;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    #[arg(long, default_value_t = 16)]
    pub callers: usize,
    #[arg(long, default_value_t = 4)]
    pub venus_threads: usize,
    /// Mean time between Venus restarts.
    #[arg(long, default_value_t = 1500)]
    pub restart_ms: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 0)]
    pub minor: u32,
}

pub fn run(a: &SoakArgs, rep: &mut Report) {
    let r = soak(a);
    rep.check(&format!("soak ({} s, {} callers, {} Venus threads, restarts)", a.secs, a.callers, a.venus_threads), r);
}

fn soak(a: &SoakArgs) -> Result<(), String> {
    sys::install_signal_handlers();
    let before = sys::stats(a.minor)?;
    let mut rng = Rng::new(a.seed);
    let vopts = |seed| work::VenusOpts {
        minor: a.minor,
        threads: a.venus_threads,
        delay_permille: 20,
        downcall_permille: 10,
        make_it_fail: false,
        seed,
    };
    let mut venus = Some(work::Venus::start(vopts(rng.next()))?);
    let callers = work::Callers::start(work::CallerOpts {
        minor: a.minor,
        threads: a.callers,
        ops: &[CODA_GETATTR, CODA_LOOKUP, CODA_ACCESS, CODA_CLOSE, CODA_STATFS],
        async_permille: 30,
        async_op: CODA_FSYNC,
        eio_permille: 10,
        silent_permille: 3,
        make_it_fail: false,
        seed: a.seed,
    })?;
    let sig = work::Signaller::start(callers.targets.clone(), 3000, a.seed);
    let end = Instant::now() + Duration::from_secs(a.secs);
    let mut restarts = 0;
    let mut vc = work::VenusCounts::default();
    let mut peak = 0;
    while Instant::now() < end {
        let gap = rng.below(2 * a.restart_ms + 1);
        std::thread::sleep(Duration::from_millis(gap).min(end.saturating_duration_since(Instant::now())));
        if let Ok(st) = sys::stats(a.minor) {
            peak = peak.max(st.outstanding);
            // Balance holds at every instant, not just at the end.
            sys::check_balance(&st).map_err(|e| format!("mid-run: {e}"))?;
        }
        if Instant::now() >= end {
            break;
        }
        let c = venus.take().unwrap().stop();
        vc.add(c);
        std::thread::sleep(Duration::from_millis(rng.below(50)));
        venus = Some(work::Venus::start(vopts(rng.next()))?);
        restarts += 1;
    }
    let res = crate::join_within(Duration::from_secs(sys::timeout_secs() + 30), move || callers.stop())
        .ok_or("callers stuck: a call did not return within the module timeout")?;
    let signals = sig.stop();
    vc.add(venus.take().unwrap().stop());
    let after = sys::stats(a.minor)?;
    let d = work::delta(&before, &after);
    println!(
        "# soak: {restarts} Venus restarts, {signals} signals; callers: ok {} async {} EINTR {} ETIMEDOUT {} \
         ENODEV {} EIO {}; longest call {:?}; peak outstanding seen {peak}",
        res.total(|o| o.ok),
        res.total(|o| o.async_ok),
        res.total(|o| o.eintr),
        res.total(|o| o.etimedout),
        res.total(|o| o.enodev),
        res.total(|o| o.eio),
        res.longest,
    );
    println!(
        "# Venus: {} requests, {} CODA_SIGNALs, {} replies, {} ESRCH, {} downcalls",
        vc.requests, vc.signals, vc.replies, vc.esrch, vc.downcalls
    );
    println!("# cfs{}: {}", a.minor, sys::describe(&after));
    let mut bad: Vec<String> = res.violations.iter().take(10).cloned().collect();
    bad.extend(vc.violations.iter().take(10).cloned());
    if let Err(e) = sys::check_quiet(&after) {
        bad.push(e);
    }
    if let Err(e) = work::check_outcomes(&d, &res) {
        bad.push(e);
    }
    if res.total(|o| o.ok) == 0 {
        bad.push("no call got a reply".into());
    }
    // The longest wait is bounded by the module's timeout (plus scheduling under emulation).
    let t = sys::timeout_secs();
    if t > 0 && res.longest > Duration::from_secs(t + 10) {
        bad.push(format!("a call took {:?}, module timeout {t} s", res.longest));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}
