// SPDX-License-Identifier: GPL-2.0

//! coda-ctl: makes upcalls through /dev/coda_ctl as a file system would, prints a device's
//! statistics, shows the downcalls Venus writes, and replays a recorded stream of upcalls.

mod compare;
mod records;
mod replay;

use std::fs::File;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use std::time::Instant;

use clap::Parser;
use clap::Subcommand;
use coda_msg::CtlCall;
use coda_msg::CtlDowncall;
use coda_msg::InHdr;
use zerocopy::FromBytes;
use zerocopy::IntoBytes;

#[derive(Parser)]
#[command(about = "Make upcalls through /dev/coda_ctl, read a device's statistics, replay upcalls")]
struct Cli {
    #[arg(long, default_value = "/dev/coda_ctl")]
    ctl: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make synchronous upcalls and report their latency.
    Call {
        #[arg(long, default_value_t = 0)]
        minor: u32,
        /// Opcode number (34 is CODA_STATFS).
        #[arg(long, default_value_t = coda_msg::CODA_STATFS)]
        opcode: u32,
        /// Calls per thread.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Request size in bytes (at least the 20-byte header).
        #[arg(long, default_value_t = coda_msg::IN_HDR_SIZE)]
        size: usize,
        /// Room for each reply.
        #[arg(long, default_value_t = 4096)]
        out_cap: u32,
    },
    /// Print the statistics of /dev/cfs<minor>.
    Stats {
        #[arg(long, default_value_t = 0)]
        minor: u32,
    },
    /// Print the downcalls Venus writes, until `count` arrived.
    Downcalls {
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Make a recorded stream of upcalls (`venus --record`) again, in the order the client
    /// queued them: synchronously with room for VC_MAXMSGSIZE, the access-intent finalisers
    /// asynchronously. Prints TAP lines; fails when the control device refused or failed an
    /// upcall, or a downcall could not be made again.
    Replay(replay::Args),
    /// Compare a replay with the run it replays (see `replay`); prints TAP lines. Needs no
    /// device.
    Compare(compare::Args),
}

fn call_once(ctl: &File, minor: u32, msg: &[u8], out: &mut [u8]) -> nix::Result<CtlCall> {
    coda_dev::ctl_call_with(ctl.as_fd(), minor, 0, msg, out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    let open_ctl = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&cli.ctl)
            .map_err(|e| format!("open {}: {e}", cli.ctl))
    };
    match cli.cmd {
        Cmd::Call {
            minor,
            opcode,
            count,
            threads,
            size,
            out_cap,
        } => {
            let ctl = Arc::new(open_ctl()?);
            let start = Instant::now();
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let ctl = ctl.clone();
                    thread::spawn(move || {
                        let mut msg = vec![0u8; size.max(coda_msg::IN_HDR_SIZE)];
                        let hdr = InHdr {
                            opcode,
                            unique: 0,
                            pid: std::process::id() as i32,
                            pgid: 0,
                            uid: 0,
                        };
                        msg[..coda_msg::IN_HDR_SIZE].copy_from_slice(hdr.as_bytes());
                        let mut out = vec![0u8; out_cap as usize];
                        let mut lat = Vec::with_capacity(count);
                        let mut errors = 0;
                        for _ in 0..count {
                            let t = Instant::now();
                            match call_once(&ctl, minor, &msg, &mut out) {
                                Ok(_) => lat.push(t.elapsed()),
                                Err(_) => errors += 1,
                            }
                        }
                        (lat, errors)
                    })
                })
                .collect();
            let mut lat = Vec::new();
            let mut errors = 0;
            for w in workers {
                let (l, e) = w.join().map_err(|_| "a caller thread panicked")?;
                lat.extend(l);
                errors += e;
            }
            let wall = start.elapsed();
            lat.sort();
            println!(
                "{} calls ({} failed) in {:.3} s: {:.0} calls/s, p50 {} us, p99 {} us",
                lat.len() + errors,
                errors,
                wall.as_secs_f64(),
                lat.len() as f64 / wall.as_secs_f64(),
                percentile(&lat, 0.5).as_micros(),
                percentile(&lat, 0.99).as_micros()
            );
            if errors > 0 {
                return Err(format!("{errors} calls failed"));
            }
        }
        Cmd::Stats { minor } => {
            let ctl = open_ctl()?;
            let st = coda_dev::ctl_stats(ctl.as_fd(), minor).map_err(|e| format!("stats: {e}"))?;
            let sum = |f: fn(&coda_msg::PsdevOpStats) -> u64| st.op.iter().map(f).sum::<u64>();
            println!(
                "cfs{minor}: calls {} replies {} intr {}/{} signals {} timeouts {} aborted {} \
                 bad_replies {} async_read {} | outstanding {} peak {} mem_bytes {} | downcalls {} \
                 dropped {} bad_writes {} opens {}",
                sum(|o| o.calls),
                sum(|o| o.replies),
                sum(|o| o.intr_before_read),
                sum(|o| o.intr_after_read),
                sum(|o| o.signals_sent),
                sum(|o| o.timeouts),
                sum(|o| o.aborted),
                sum(|o| o.bad_replies),
                sum(|o| o.async_read),
                st.outstanding,
                st.peak_outstanding,
                st.mem_bytes,
                st.downcalls,
                st.downcalls_dropped,
                st.bad_writes,
                st.opens
            );
        }
        Cmd::Downcalls { count } => {
            let mut ctl = open_ctl()?;
            let mut buf = vec![0u8; coda_msg::VC_MAXMSGSIZE];
            for _ in 0..count {
                let n = ctl.read(&mut buf).map_err(|e| format!("read: {e}"))?;
                let (hdr, rest) = CtlDowncall::read_from_prefix(&buf[..n])
                    .map_err(|_| "short downcall record".to_string())?;
                let oh = coda_msg::out_hdr(rest).map_err(|e| format!("{e:?}"))?;
                println!(
                    "cfs{}: {} ({} bytes)",
                    hdr.minor,
                    coda_msg::opcode_name(oh.opcode),
                    hdr.len
                );
            }
        }
        Cmd::Replay(args) => {
            if !replay::run(open_ctl()?, &args)? {
                return Err("the replay failed".to_string());
            }
        }
        Cmd::Compare(args) => {
            if !compare::run(&args)? {
                return Err("the replay differs from the recorded run".to_string());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coda-ctl: {e}");
            ExitCode::FAILURE
        }
    }
}
