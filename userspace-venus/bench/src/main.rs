// SPDX-License-Identifier: GPL-2.0

//! bench: the upcall benchmarks of issue 6.
//!
//! Each measuring subcommand runs inside the guest and appends a JSON line to `--raw`;
//! `bench report` (on the host) turns the lines into the table, bench.json, bench.csv and
//! the plot. tests/guest-bench.sh runs the measurements in order; scripts/bench.sh boots
//! the release kernel around it.

mod calls;
mod ctl;
mod parked;
mod pingpong;
mod report;
mod stats;
mod venus;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use clap::Parser;
use clap::Subcommand;

use crate::calls::Target;
use crate::ctl::Ctl;
use crate::parked::Setup;
use crate::parked::System;
use crate::pingpong::Channel;
use crate::stats::Record;

#[derive(Parser)]
#[command(about = "Upcall benchmarks: coda_psdev.ko, the pipe floor and the C coda.ko")]
struct Cli {
    /// File the measurements are appended to, one JSON record a line.
    #[arg(long, default_value = "bench-raw.jsonl", global = true)]
    raw: PathBuf,
    /// Pin this process, and every thread and process it starts, to this CPU. Under
    /// emulation a wake-up across vCPUs is an emulated IPI whose cost is the host's
    /// scheduling of the other vCPU thread: latency measurements pin both ends to one CPU.
    #[arg(long, global = true)]
    cpu: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How many runs and calls a latency measurement makes.
#[derive(clap::Args, Clone, Copy)]
struct Reps {
    /// Timed calls per run.
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    /// Runs; the table shows the median of each figure over them.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed calls before each run.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
}

#[derive(clap::Args, Clone)]
struct Device {
    /// The control device (ours).
    #[arg(long, default_value = "/dev/coda_ctl")]
    ctl: PathBuf,
    /// The pseudo-device Venus serves.
    #[arg(long, default_value = "/dev/cfs0")]
    device: PathBuf,
    #[arg(long, default_value_t = 0)]
    minor: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Row 1: ping-pong between two processes over pipes or eventfds.
    Pingpong {
        #[arg(long, value_enum)]
        kind: Channel,
        /// Threads to keep blocked in this process meanwhile (a control for row 5).
        #[arg(long, default_value_t = 0)]
        idle_threads: usize,
        #[command(flatten)]
        reps: Reps,
    },
    /// The child of `pingpong`: echoes `iters` messages from stdin to stdout.
    #[command(hide = true)]
    Echo {
        #[arg(long)]
        size: usize,
        #[arg(long)]
        iters: u64,
    },
    /// Row 2: round trips of STATFS upcalls through /dev/coda_ctl (a Venus must serve the
    /// device).
    CtlRtt {
        /// Request size in bytes.
        #[arg(long, default_value_t = coda_msg::IN_HDR_SIZE)]
        size: usize,
        /// How the stub serving the device runs.
        #[arg(long, value_enum, default_value = "poll")]
        venus: VenusMode,
        #[command(flatten)]
        dev: Device,
        #[command(flatten)]
        reps: Reps,
    },
    /// Row 3: round trips of statfs() on a Coda mount.
    StatfsRtt {
        #[arg(long)]
        mnt: PathBuf,
        /// Whose Coda file system serves the mount.
        #[arg(long, value_enum, default_value = "coda")]
        fs: CodaFs,
        #[command(flatten)]
        reps: Reps,
    },
    /// Row 4: upcalls per second with concurrent callers (the readers are Venus's own:
    /// `--readers` only labels the record).
    Throughput {
        #[arg(long, value_enum)]
        system: System,
        /// Caller counts, one record each.
        #[arg(long, value_delimiter = ',', default_value = "1,2,8,64")]
        callers: Vec<usize>,
        #[arg(long)]
        readers: u32,
        /// How the stub serving the device runs.
        #[arg(long, value_enum, default_value = "poll")]
        venus: VenusMode,
        /// The stub's threads were started on CPU 0 (labels the record, as `--readers`).
        #[arg(long)]
        venus_cpu0: bool,
        /// Length of each run.
        #[arg(long, default_value_t = 1.0)]
        secs: f64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Mount point (C coda).
        #[arg(long)]
        mnt: Option<PathBuf>,
        #[command(flatten)]
        dev: Device,
    },
    /// Row 5: round trips with N upcalls outstanding, and memory per outstanding upcall.
    /// Runs its own Venus on the device (and mounts it for C coda).
    Outstanding {
        #[arg(long, value_enum)]
        system: System,
        #[arg(long, value_delimiter = ',', default_value = "0,10,100,1000,10000")]
        counts: Vec<usize>,
        /// Mount point (C coda).
        #[arg(long, default_value = "/mnt/coda")]
        mnt: PathBuf,
        #[command(flatten)]
        dev: Device,
        #[command(flatten)]
        reps: Reps,
    },
    /// Row 6: calls interrupted by a signal after Venus read them. Runs its own Venus.
    Signal {
        #[arg(long, value_enum)]
        system: System,
        #[arg(long, default_value = "/mnt/coda")]
        mnt: PathBuf,
        #[command(flatten)]
        dev: Device,
        #[command(flatten)]
        reps: Reps,
    },
    /// The benchmark's own Venus process (see venus.rs), started by `outstanding` and
    /// `signal`.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        device: PathBuf,
        #[arg(long, default_value_t = 1)]
        readers: usize,
        #[arg(long)]
        mount: Option<PathBuf>,
    },
    /// Waits until Venus has opened /dev/cfs<minor> `opens` times in all (ours).
    WaitOpen {
        #[arg(long)]
        opens: u64,
        #[command(flatten)]
        dev: Device,
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Records the driver's counters of /dev/cfs<minor> under `id` (ours).
    Counters {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        dev: Device,
    },
    /// Prints the table from the raw file, and writes bench.json, bench.csv and
    /// latency_vs_outstanding.png to `out`.
    Report {
        #[arg(long)]
        out: PathBuf,
        /// KEY=VALUE facts about the run (date, machine) for the table's head.
        #[arg(long = "meta", value_parser = parse_kv)]
        meta: Vec<(String, String)>,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn setup(system: System, dev: &Device, mnt: PathBuf) -> Setup {
    Setup {
        system,
        device: dev.device.clone(),
        ctl: dev.ctl.clone(),
        minor: dev.minor,
        mnt,
    }
}

fn run(cli: Cli) -> io::Result<()> {
    let raw = cli.raw;
    if let Some(cpu) = cli.cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        // Threads and children inherit the calling thread's affinity.
        rustix::thread::sched_setaffinity(None, &set)
            .map_err(|e| io::Error::other(format!("pinning to CPU {cpu}: {e}")))?;
    }
    match cli.cmd {
        Cmd::Echo { size, iters } => pingpong::echo(size, iters),
        Cmd::Serve {
            device,
            readers,
            mount,
        } => venus::serve(&device, readers, mount.as_deref()),
        Cmd::Pingpong {
            kind,
            idle_threads,
            reps,
        } => pingpong::measure(kind, reps.iters, reps.runs, reps.warmup, idle_threads)?.save(&raw),
        Cmd::CtlRtt {
            size,
            venus,
            dev,
            reps,
        } => {
            let target = Target::Ctl {
                ctl: Arc::new(Ctl::open(&dev.ctl)?),
                minor: dev.minor,
                size,
            };
            let (suffix, how) = venus.label();
            let mut rec = Record::new(
                format!("ours_rtt_{size}{suffix}"),
                2,
                "ours",
                format!("round trip, {size}-byte STATFS{how}"),
            );
            rec.size = Some(size as u32);
            rec.runs = calls::round_trips(&target, reps.iters, reps.runs, reps.warmup)?;
            rec.finish().save(&raw)
        }
        Cmd::StatfsRtt { mnt, fs, reps } => {
            let target = Target::Statfs { path: mnt };
            let (id, system) = match fs {
                CodaFs::Coda => ("coda_statfs", "coda"),
                CodaFs::Rs => ("rsfs_statfs", "rsfs"),
            };
            let mut rec = Record::new(id, 3, system, "statfs() round trip");
            rec.runs = calls::round_trips(&target, reps.iters, reps.runs, reps.warmup)?;
            rec.finish().save(&raw)
        }
        Cmd::Throughput {
            system,
            callers,
            readers,
            venus,
            venus_cpu0,
            secs,
            runs,
            mnt,
            dev,
        } => {
            let target = match system {
                System::Ours => Target::Ctl {
                    ctl: Arc::new(Ctl::open(&dev.ctl)?),
                    minor: dev.minor,
                    size: coda_msg::IN_HDR_SIZE,
                },
                System::Coda => Target::Statfs {
                    path: mnt.ok_or_else(|| io::Error::other("--mnt is needed for coda"))?,
                },
            };
            let sys = if system == System::Ours {
                "ours"
            } else {
                "coda"
            };
            for c in callers {
                let (suffix, how) = venus.label();
                let (cpu0, on_cpu0) = match venus_cpu0 {
                    true => (CPU0_SUFFIX, ", Venus on CPU 0"),
                    false => ("", ""),
                };
                let mut rec = Record::new(
                    format!("{sys}_tput_c{c}_r{readers}{suffix}{cpu0}"),
                    4,
                    sys,
                    format!("throughput, {c} callers x {readers} readers{how}{on_cpu0}"),
                );
                rec.callers = Some(c as u32);
                rec.readers = Some(readers);
                for _ in 0..runs {
                    rec.runs.push(calls::throughput_run(&target, c, secs)?);
                }
                rec.finish().save(&raw)?;
            }
            Ok(())
        }
        Cmd::Outstanding {
            system,
            counts,
            mnt,
            dev,
            reps,
        } => {
            let s = setup(system, &dev, mnt);
            for r in parked::outstanding(&s, &counts, reps.iters, reps.runs, reps.warmup)? {
                r.save(&raw)?;
            }
            Ok(())
        }
        Cmd::Signal {
            system,
            mnt,
            dev,
            reps,
        } => {
            let s = setup(system, &dev, mnt);
            parked::interrupted(&s, reps.iters, reps.runs, reps.warmup)?.save(&raw)
        }
        Cmd::WaitOpen {
            opens,
            dev,
            timeout,
        } => {
            let ctl = Ctl::open(&dev.ctl)?;
            let deadline = Instant::now() + Duration::from_secs_f64(timeout);
            loop {
                if ctl.stats(dev.minor)?.opens >= opens {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "Venus did not open cfs{} within {timeout} s",
                        dev.minor
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Cmd::Counters { id, dev } => {
            let st = Ctl::open(&dev.ctl)?.stats(dev.minor)?;
            let sum = |f: fn(&coda_msg::PsdevOpStats) -> u64| st.op.iter().map(f).sum::<u64>();
            let mut rec = Record::new(id, 0, "ours", "driver counters");
            for (k, v) in [
                ("calls", sum(|o| o.calls)),
                ("replies", sum(|o| o.replies)),
                ("intr_before_read", sum(|o| o.intr_before_read)),
                ("intr_after_read", sum(|o| o.intr_after_read)),
                ("signals_sent", sum(|o| o.signals_sent)),
                ("timeouts", sum(|o| o.timeouts)),
                ("aborted", sum(|o| o.aborted)),
                ("bad_replies", sum(|o| o.bad_replies)),
                ("outstanding", st.outstanding),
                ("peak_outstanding", st.peak_outstanding),
                ("mem_bytes", st.mem_bytes),
                ("bad_writes", st.bad_writes),
                ("opens", st.opens),
            ] {
                rec.extra.insert(k.into(), v as f64);
            }
            rec.save(&raw)
        }
        Cmd::Report { out, meta } => {
            let measured = stats::load(&raw)?;
            let records = stats::merge(measured.clone());
            let meta: BTreeMap<String, String> = meta.into_iter().collect();
            let (lines, verdicts) = report::build(&records, &measured);
            std::fs::create_dir_all(&out)?;
            report::write_json(&meta, &lines, &verdicts, &records, &out.join("bench.json"))?;
            report::write_csv(&lines, &out.join("bench.csv"))?;
            let text = report::render(&lines, &verdicts, &meta);
            std::fs::write(out.join("table.txt"), &text)?;
            print!("{text}");
            if let Err(e) = report::plot(&records, &out.join("latency_vs_outstanding.png")) {
                eprintln!("bench: no plot: {e}");
            }
            Ok(())
        }
    }
}

/// Which Coda file system a statfs() round trip goes through.
/// How the Venus stub's readers wait and answer; only labels the record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
enum VenusMode {
    /// poll(2), then a non-blocking read(2); one write(2) per reply (the default stub).
    #[default]
    Poll,
    /// Blocked in read(2) (`venus --blocking-read`).
    Blocking,
    /// One CODA_PSDEV_IOC_EXCHANGE per batch of replies and messages (`venus --exchange`).
    Exchange,
}

impl VenusMode {
    /// The record id's suffix, and the words the table adds.
    fn label(self) -> (&'static str, &'static str) {
        match self {
            VenusMode::Poll => ("", ""),
            VenusMode::Blocking => ("_blocking", " blocking in read(2)"),
            VenusMode::Exchange => ("_exchange", " using CODA_PSDEV_IOC_EXCHANGE"),
        }
    }
}

/// The suffix of a throughput record whose Venus ran on CPU 0.
pub const CPU0_SUFFIX: &str = "_cpu0";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CodaFs {
    /// The kernel's C coda.ko, with its C pseudo-device.
    Coda,
    /// The same file system built against our driver (coda_rs_fs.ko over coda_psdev.ko).
    Rs,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
