// SPDX-License-Identifier: GPL-2.0

//! Rows 5 and 6, with the in-benchmark Venus (see `venus.rs`):
//! - latency of new calls while N upcalls are outstanding: N threads each make a
//!   CODA_LOOKUP that Venus reads and never answers, so every one of them sits where a
//!   reply must find it (ours: the reply table; coda.ko: the `vc_processing` list that
//!   each reply scans), and memory per outstanding upcall;
//! - the cost of a call interrupted after Venus read it: signal to the caller, until the
//!   caller has EINTR and Venus has the CODA_SIGNAL.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Barrier;
use std::time::Duration;
use std::time::Instant;

use clap::ValueEnum;
use nix::sys::signal::Signal;
use rustix::io::Errno;

use crate::calls::round_trips;
use crate::calls::Target;
use crate::ctl::lookup_request;
use crate::ctl::Ctl;
use crate::stats::Record;
use crate::stats::RunStat;
use crate::venus::interrupt_with;
use crate::venus::now_ns;
use crate::venus::unmount;
use crate::venus::Event;
use crate::venus::MiniVenus;

/// Whose driver serves the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum System {
    /// coda_psdev.ko: calls through /dev/coda_ctl.
    Ours,
    /// The kernel's C coda.ko: calls are system calls on a coda mount.
    Coda,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::Coda => "coda",
        }
    }
}

pub struct Setup {
    pub system: System,
    pub device: PathBuf,
    pub ctl: PathBuf,
    pub minor: u32,
    /// Mount point for coda.ko (an empty directory).
    pub mnt: PathBuf,
}

/// How long to wait for Venus to read parked calls: thread creation under emulation is slow.
const PARK_TIMEOUT: Duration = Duration::from_secs(300);

/// A caller that makes the upcalls Venus parks, each for a name of its own.
#[derive(Clone)]
enum Parker {
    Ctl { ctl: Arc<Ctl>, minor: u32 },
    Stat { mnt: PathBuf },
}

impl Parker {
    /// One parked call: returns once Venus is gone (ENODEV and the like) or a signal
    /// ended the wait (EINTR).
    fn call(&self, name: &str) -> Errno {
        match self {
            Parker::Ctl { ctl, minor } => {
                let msg = lookup_request(name);
                let mut out = vec![0u8; 256];
                match ctl.call(*minor, &msg, &mut out) {
                    Ok(_) => Errno::from_raw_os_error(0),
                    Err(e) => Errno::from_raw_os_error(e as i32),
                }
            }
            Parker::Stat { mnt } => match rustix::fs::stat(mnt.join(name)) {
                Ok(_) => Errno::from_raw_os_error(0),
                Err(e) => e,
            },
        }
    }
}

/// Venus plus the mount (coda.ko) and the callers' targets; `stop` undoes it all.
struct Bench {
    setup_system: System,
    venus: MiniVenus,
    measured: Target,
    parker: Parker,
    ctl: Option<Arc<Ctl>>,
    minor: u32,
}

impl Bench {
    fn start(s: &Setup) -> io::Result<Self> {
        match s.system {
            System::Ours => {
                let ctl = Arc::new(Ctl::open(&s.ctl)?);
                Ok(Bench {
                    setup_system: s.system,
                    venus: MiniVenus::start(&s.device, 1, None)?,
                    measured: Target::Ctl {
                        ctl: ctl.clone(),
                        minor: s.minor,
                        size: coda_msg::IN_HDR_SIZE,
                    },
                    parker: Parker::Ctl {
                        ctl: ctl.clone(),
                        minor: s.minor,
                    },
                    ctl: Some(ctl),
                    minor: s.minor,
                })
            }
            System::Coda => Ok(Bench {
                setup_system: s.system,
                venus: MiniVenus::start(&s.device, 1, Some(&s.mnt))?,
                measured: Target::Statfs {
                    path: s.mnt.clone(),
                },
                parker: Parker::Stat { mnt: s.mnt.clone() },
                ctl: None,
                minor: s.minor,
            }),
        }
    }
}

/// Kernel slab memory in bytes (/proc/meminfo's Slab, kB granularity).
fn slab_bytes() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no Slab: line in /proc/meminfo"))
}

/// Row 5: latency of new calls with each of `counts` parked calls outstanding.
pub fn outstanding(
    s: &Setup,
    counts: &[usize],
    iters: usize,
    runs: usize,
    warmup: usize,
) -> io::Result<Vec<Record>> {
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let b = Bench::start(s)?;
    let Bench {
        setup_system,
        venus,
        measured,
        parker,
        ctl,
        minor,
    } = b;
    let sys = setup_system.name();
    let mut records = Vec::new();
    let result = std::thread::scope(|scope| {
        // The body runs in a closure so that Venus is stopped (and the parked threads
        // released) on every path out of it.
        let mut body = || -> io::Result<()> {
            let mut parked = 0usize;
            for &n in &counts {
                let batch = n - parked;
                let mut rec = Record::new(
                    format!("{sys}_out_{n}"),
                    5,
                    sys,
                    format!("round trip with {n} outstanding"),
                );
                rec.outstanding = Some(n as u64);
                if batch > 0 {
                    let gate = Arc::new(Barrier::new(batch + 1));
                    for i in parked..n {
                        let (gate, parker) = (gate.clone(), parker.clone());
                        std::thread::Builder::new()
                            .stack_size(64 * 1024)
                            .spawn_scoped(scope, move || {
                                gate.wait();
                                parker.call(&format!("p{i}"))
                            })?;
                    }
                    let t = Instant::now();
                    // The threads exist and wait: what follows is the calls' own memory.
                    let slab0 = slab_bytes()?;
                    gate.wait();
                    venus.wait_parked(batch, PARK_TIMEOUT)?;
                    let slab1 = slab_bytes()?;
                    rec.extra
                        .insert("park_secs".into(), t.elapsed().as_secs_f64());
                    // Creating and releasing thousands of threads leaves work behind (freed
                    // stacks, RCU callbacks): let it settle before timing.
                    if batch >= 100 {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    rec.extra.insert(
                        "slab_delta_per_call".into(),
                        (slab1 as f64 - slab0 as f64) / batch as f64,
                    );
                    parked = n;
                }
                if let Some(ctl) = &ctl {
                    let st = ctl.stats(minor)?;
                    rec.extra
                        .insert("driver_outstanding".into(), st.outstanding as f64);
                    rec.extra
                        .insert("driver_mem_bytes".into(), st.mem_bytes as f64);
                    if st.outstanding > 0 {
                        rec.extra.insert(
                            "mem_bytes_per_outstanding".into(),
                            st.mem_bytes as f64 / st.outstanding as f64,
                        );
                    }
                    rec.extra.insert(
                        "parked_msg_bytes".into(),
                        lookup_request(&format!("p{}", n.saturating_sub(1))).len() as f64,
                    );
                }
                rec.runs = round_trips(&measured, iters, runs, warmup)?;
                let rec = rec.finish();
                records.push(rec);
            }
            Ok(())
        };
        let r = body();
        // Wakes every parked caller with ENODEV; the scope then joins them.
        let mnt = venus.mount();
        r.and(venus.stop()).map(|()| mnt)
    });
    let mnt = result?;
    unmount(mnt)?;
    Ok(records)
}

/// Row 6: `iters` calls, each interrupted by SIGINT right after Venus read it (SIGINT:
/// coda.ko blocks every other signal during its first 30 s of waiting).
pub fn interrupted(s: &Setup, iters: usize, runs: usize, warmup: usize) -> io::Result<Record> {
    interrupt_with(Signal::SIGINT)?;
    let Bench {
        setup_system,
        venus,
        parker,
        ..
    } = Bench::start(s)?;
    let sys = setup_system.name();
    let (go_tx, go_rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<(u64, Errno)>();
    let (tid_tx, tid_rx) = mpsc::channel();
    let caller = std::thread::spawn(move || {
        let _ = tid_tx.send(nix::sys::pthread::pthread_self());
        while let Ok(i) = go_rx.recv() {
            let e = parker.call(&format!("s{i}"));
            if done_tx.send((now_ns(), e)).is_err() {
                break;
            }
        }
    });
    let body = || -> io::Result<(Vec<Duration>, Vec<Duration>)> {
        let tid = tid_rx
            .recv()
            .map_err(|_| io::Error::other("caller thread died"))?;
        let wait = Duration::from_secs(30);
        let (mut e2e, mut to_caller) = (Vec::new(), Vec::new());
        for i in 0..warmup + iters {
            go_tx
                .send(i)
                .map_err(|_| io::Error::other("caller thread died"))?;
            let unique = match venus.next_event(wait)? {
                Event::Parked { unique, .. } => unique,
                ev => return Err(io::Error::other(format!("unexpected {ev:?}"))),
            };
            let t0 = now_ns();
            nix::sys::pthread::pthread_kill(tid, Signal::SIGINT)?;
            let (t1, e) = done_rx
                .recv_timeout(wait)
                .map_err(|_| io::Error::other("interrupted caller did not return"))?;
            if e != Errno::INTR {
                return Err(io::Error::other(format!("interrupted call returned {e:?}")));
            }
            let t2 = match venus.next_event(wait)? {
                Event::Signal { unique: u, at_ns } if u == unique => at_ns,
                ev => return Err(io::Error::other(format!("want CODA_SIGNAL, got {ev:?}"))),
            };
            if i >= warmup {
                e2e.push(Duration::from_nanos(t1.max(t2) - t0));
                to_caller.push(Duration::from_nanos(t1 - t0));
            }
        }
        Ok((e2e, to_caller))
    };
    let r = body();
    drop(go_tx);
    let mnt = venus.mount();
    venus.stop()?;
    let _ = caller.join();
    unmount(mnt)?;
    let (e2e, to_caller) = r?;
    let mut rec = Record::new(
        format!("{sys}_signal"),
        6,
        sys,
        "interrupted call, signal after Venus read it",
    );
    let per = (iters / runs.max(1)).max(1);
    for chunk in e2e.chunks(per) {
        rec.runs.push(RunStat::from_latencies(&mut chunk.to_vec()));
    }
    let mut caller_lat = to_caller;
    rec.extra.insert(
        "caller_eintr_p50_us".into(),
        RunStat::from_latencies(&mut caller_lat).p50_us,
    );
    Ok(rec.finish())
}
