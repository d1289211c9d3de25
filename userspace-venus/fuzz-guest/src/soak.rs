// SPDX-License-Identifier: GPL-2.0

//! The soak: many callers, a multi-threaded Venus that is restarted periodically, random
//! signals, for a bounded time; at the end every call had exactly one outcome (the counters
//! match what the callers saw) and nothing is outstanding.

use crate::sys;
use crate::sys::Report;
use crate::sys::Rng;
use crate::work;
use coda_msg::*;
use std::os::fd::AsFd;
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
    rep.check(
        &format!(
            "soak ({} s, {} callers, {} Venus threads, restarts)",
            a.secs, a.callers, a.venus_threads
        ),
        r,
    );
}

/// Takes statistics snapshots as fast as it can: the uapi's balance holds in every one.
struct Monitor {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl Monitor {
    fn start(minor: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut bad = Vec::new();
            let mut n = 0;
            let Ok(ctl) = sys::open_dev(sys::CTL_PATH, true) else {
                return (0, vec!["monitor: cannot open the control device".into()]);
            };
            while !s.load(Ordering::Relaxed) {
                if let Ok(st) = coda_dev::ctl_stats(ctl.as_fd(), minor) {
                    n += 1;
                    if let Err(e) = sys::check_balance(&st) {
                        if bad.len() < 5 {
                            bad.push(format!("mid-run snapshot {n}: {e}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            (n, bad)
        });
        Self { stop, handle }
    }

    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
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
        ops: &[
            CODA_GETATTR,
            CODA_LOOKUP,
            CODA_ACCESS,
            CODA_CLOSE,
            CODA_STATFS,
        ],
        async_permille: 30,
        async_op: CODA_FSYNC,
        eio_permille: 10,
        silent_permille: 3,
        make_it_fail: false,
        seed: a.seed,
    })?;
    let sig = work::Signaller::start(callers.targets.clone(), 3000, a.seed);
    let monitor = Monitor::start(a.minor);
    let end = Instant::now() + Duration::from_secs(a.secs);
    let mut restarts = 0;
    let mut vc = work::VenusCounts::default();
    let mut peak = 0;
    let mut mid_run = Vec::new();
    while Instant::now() < end {
        let gap = rng.below(2 * a.restart_ms + 1);
        std::thread::sleep(
            Duration::from_millis(gap).min(end.saturating_duration_since(Instant::now())),
        );
        if let Ok(st) = sys::stats(a.minor) {
            peak = peak.max(st.outstanding);
            // The uapi's balance holds in every snapshot, not just at the end.
            if let Err(e) = sys::check_balance(&st) {
                if mid_run.len() < 5 {
                    mid_run.push(format!("mid-run snapshot: {e}"));
                }
            }
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
    let res = crate::join_within(Duration::from_secs(sys::timeout_secs() + 30), move || {
        callers.stop()
    })
    .ok_or("callers stuck: a call did not return within the module timeout")?;
    let signals = sig.stop();
    vc.add(venus.take().unwrap().stop());
    let (snapshots, imbalances) = monitor.stop();
    mid_run.extend(imbalances);
    let after = sys::stats(a.minor)?;
    let d = work::delta(&before, &after);
    println!(
        "# soak: {restarts} Venus restarts, {signals} signals, {snapshots} statistics snapshots; callers: ok {} async {} EINTR {} ETIMEDOUT {} \
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
    bad.extend(mid_run);
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
        bad.push(format!(
            "a call took {:?}, module timeout {t} s",
            res.longest
        ));
    }
    sys::all_good(bad)
}

#[derive(clap::Args, Debug, Clone)]
pub struct BoundArgs {
    #[arg(long, default_value_t = 6)]
    pub secs: u64,
    #[arg(long, default_value_t = 8)]
    pub callers: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Callers beyond the module's bound (`max_outstanding`, load it small) wait for room; under
/// a storm of signals every room freed must still reach a waiter. Once the signals stop,
/// the callers must all finish while Venus serves: a caller left asleep with nothing
/// outstanding is a lost wake-up (with `timeout=0` nothing else would end its wait).
pub fn bound(a: &BoundArgs, rep: &mut Report) {
    sys::install_signal_handlers();
    let r = (|| -> Result<(), String> {
        let max = sys::module_param("max_outstanding").unwrap_or(0);
        let venus = work::Venus::start(work::VenusOpts {
            minor: 0,
            threads: 2,
            delay_permille: 300,
            downcall_permille: 0,
            make_it_fail: false,
            seed: a.seed,
        })?;
        let callers = work::Callers::start(work::CallerOpts {
            minor: 0,
            threads: a.callers,
            ops: &[CODA_GETATTR],
            async_permille: 0,
            async_op: CODA_FSYNC,
            eio_permille: 0,
            silent_permille: 0,
            make_it_fail: false,
            seed: a.seed,
        })?;
        let sig = work::Signaller::start(callers.targets.clone(), 300, a.seed);
        std::thread::sleep(Duration::from_secs(a.secs));
        let signals = sig.stop();
        let targets = callers.targets.clone();
        let stopped = crate::join_within(Duration::from_secs(15), move || callers.stop());
        let st = sys::stats(0)?;
        let mut bad = Vec::new();
        let res = match stopped {
            Some(r) => r,
            None => {
                bad.push(format!(
                    "callers still waiting 15 s after the signals stopped, with max_outstanding {max} and \
                     outstanding {} pending {} processing {}: a wake-up for room was lost",
                    st.outstanding, st.pending, st.processing
                ));
                // Free them so the test can end: Venus's close wakes every waiter.
                let mut rng = Rng::new(1);
                for _ in 0..1000 {
                    targets.signal_one(&mut rng, nix::sys::signal::Signal::SIGUSR1);
                }
                let vc = venus.stop();
                let _ = vc;
                return Err(bad.join("\n"));
            }
        };
        let vc = venus.stop();
        println!(
            "# bound {max}: {signals} signals; callers ok {} EINTR {}; Venus replies {}",
            res.total(|o| o.ok),
            res.total(|o| o.eintr),
            vc.replies
        );
        bad.extend(res.violations.iter().take(5).cloned());
        bad.extend(vc.violations.iter().take(5).cloned());
        if let Err(e) = sys::check_quiet(&sys::stats(0)?) {
            bad.push(e);
        }
        sys::all_good(bad)
    })();
    rep.check(
        "bound: no lost wake-up for callers waiting for room under signals",
        r,
    );
}

/// How long callers beyond the bound wait when Venus reads nothing: each call should end
/// within the module's timeout (as the parameter says: the time an upcall waits for its
/// reply). Load the module with `max_outstanding=1` and a short `timeout`.
pub fn room_timeout(rep: &mut Report) {
    sys::install_signal_handlers();
    let r = (|| -> Result<(), String> {
        let t = sys::timeout_secs();
        if t == 0 {
            return Err("needs a module timeout".into());
        }
        let _venus = sys::open_dev(&sys::cfs_path(0), true).map_err(|e| e.to_string())?;
        let handles: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100 * i));
                    let ctl = sys::open_dev(sys::CTL_PATH, false).map_err(|e| e.to_string())?;
                    let msg = work::request(&mut Rng::new(i), CODA_GETATTR, 16, 0);
                    let mut out = [0u8; 64];
                    let t0 = Instant::now();
                    let r = coda_dev::ctl_call_with(ctl.as_fd(), 0, 0, &msg, &mut out);
                    Ok::<_, String>((r.map(|_| ()), t0.elapsed()))
                })
            })
            .collect();
        let mut bad = Vec::new();
        for h in handles {
            let (r, took) = h.join().map_err(|_| "caller panicked")??;
            println!("# call: {r:?} after {took:?}");
            if took > Duration::from_secs(t) + Duration::from_secs(2) {
                bad.push(format!("a call took {took:?} ({r:?}) with timeout {t} s"));
            }
        }
        sys::all_good(bad)
    })();
    rep.check(
        "bound: a caller waiting for room still ends within the module timeout",
        r,
    );
}
