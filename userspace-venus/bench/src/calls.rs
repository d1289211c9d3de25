// SPDX-License-Identifier: GPL-2.0

//! Rows 2-4: upcall round trips and throughput, through /dev/coda_ctl (ours) or statfs() on
//! a coda.ko mount (C coda), with whatever Venus serves the device.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Barrier;
use std::time::Duration;
use std::time::Instant;

use crate::ctl::request;
use crate::ctl::Ctl;
use crate::stats::RunStat;

/// Room for a reply: any reply to a STATFS fits.
const OUT_CAP: usize = 256;

/// What a caller does once per upcall.
#[derive(Clone)]
pub enum Target {
    /// CODA_STATFS of `size` bytes through /dev/coda_ctl on /dev/cfs<minor>.
    Ctl {
        ctl: Arc<Ctl>,
        minor: u32,
        size: usize,
    },
    /// statfs(2) on a coda.ko mount: coda_statfs() upcalls every time.
    Statfs { path: PathBuf },
}

/// One caller's state: its own buffers.
pub struct Caller {
    target: Target,
    msg: Vec<u8>,
    out: Vec<u8>,
}

impl Target {
    pub fn caller(&self) -> Caller {
        let msg = match self {
            Target::Ctl { size, .. } => request(coda_msg::CODA_STATFS, *size),
            Target::Statfs { .. } => Vec::new(),
        };
        Caller {
            target: self.clone(),
            msg,
            out: vec![0u8; OUT_CAP],
        }
    }
}

impl Caller {
    /// One upcall, answered.
    pub fn once(&mut self) -> io::Result<()> {
        match &self.target {
            Target::Ctl { ctl, minor, .. } => {
                ctl.call(*minor, &self.msg, &mut self.out)?;
            }
            Target::Statfs { path } => {
                rustix::fs::statfs(path)?;
            }
        }
        Ok(())
    }
}

/// Round trips of one caller: `runs` runs of `warmup` untimed then `iters` timed calls.
pub fn round_trips(
    target: &Target,
    iters: usize,
    runs: usize,
    warmup: usize,
) -> io::Result<Vec<RunStat>> {
    let mut c = target.caller();
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        for _ in 0..warmup {
            c.once()?;
        }
        let mut lat = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t = Instant::now();
            c.once()?;
            lat.push(t.elapsed());
        }
        out.push(RunStat::from_latencies(&mut lat));
    }
    Ok(out)
}

/// One throughput run: `callers` threads call as fast as they can for `secs`; the rate
/// counts the calls that finished inside the window.
pub fn throughput_run(target: &Target, callers: usize, secs: f64) -> io::Result<RunStat> {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(callers + 1);
    let window = Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..callers)
            .map(|_| {
                let (stop, barrier) = (&stop, &barrier);
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        let mut c = target.caller();
                        // (start, duration) of every call; errors end the caller.
                        let mut calls = Vec::with_capacity(1 << 14);
                        barrier.wait();
                        while !stop.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            c.once()?;
                            calls.push((t, t.elapsed()));
                        }
                        Ok::<_, io::Error>(calls)
                    })
            })
            .collect::<io::Result<_>>()?;
        barrier.wait();
        let t0 = Instant::now();
        let cpu0 = CpuTimes::now();
        std::thread::sleep(window);
        let cpu1 = CpuTimes::now();
        let t1 = Instant::now();
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        let mut done = 0u64;
        for w in workers {
            let calls = w
                .join()
                .map_err(|_| io::Error::other("a caller panicked"))??;
            for (start, d) in calls {
                let end = start + d;
                if end >= t0 && end <= t1 {
                    done += 1;
                    lat.push(d);
                }
            }
        }
        let mut st = RunStat::from_latencies(&mut lat);
        st.rate = Some(done as f64 / (t1 - t0).as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            if done > 0 {
                st.cpu_us_per_call = Some((b.busy_us - a.busy_us) / done as f64);
                st.switches_per_call = Some((b.switches - a.switches) as f64 / done as f64);
            }
        }
        Ok(st)
    })
}

/// What /proc/stat says of the whole guest: busy CPU time over all CPUs, and context
/// switches since boot.
struct CpuTimes {
    busy_us: f64,
    switches: u64,
}

impl CpuTimes {
    fn now() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let mut busy_us = None;
        let mut switches = None;
        // Ticks of USER_HZ, 100 on every Linux architecture's ABI.
        const TICK_US: f64 = 10_000.0;
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("cpu") => {
                    let t: Vec<u64> = w.filter_map(|x| x.parse().ok()).collect();
                    // user nice system idle iowait irq softirq steal
                    let busy: u64 = t
                        .iter()
                        .take(8)
                        .enumerate()
                        .filter(|(i, _)| *i != 3 && *i != 4)
                        .map(|(_, v)| v)
                        .sum();
                    busy_us = Some(busy as f64 * TICK_US);
                }
                Some("ctxt") => switches = w.next().and_then(|x| x.parse().ok()),
                _ => {}
            }
        }
        Some(Self {
            busy_us: busy_us?,
            switches: switches?,
        })
    }
}
