// SPDX-License-Identifier: GPL-2.0

//! Crashes and the module's lifecycle: Venus killed with SIGKILL under a thousand
//! outstanding calls, Venus restarted, rmmod while a device is open, and many loads and
//! unloads.

use crate::sys;
use crate::sys::Report;
use crate::sys::Rng;
use crate::work;
use coda_msg::*;
use nix::errno::Errno;
use std::io::BufRead;
use std::io::BufReader;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;
use zerocopy::IntoBytes;

#[derive(clap::Args, Debug, Clone)]
pub struct LifecycleArgs {
    /// The module to load and unload (the test leaves it unloaded).
    #[arg(long)]
    pub ko: PathBuf,
    /// Calls outstanding when Venus is killed.
    #[arg(long, default_value_t = 1000)]
    pub outstanding: usize,
    /// Load/unload cycles.
    #[arg(long, default_value_t = 100)]
    pub loads: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct VenusChildArgs {
    #[arg(long, default_value_t = 0)]
    pub minor: u32,
    /// Messages to read (and never answer) before waiting to be killed.
    #[arg(long, default_value_t = 0)]
    pub read: usize,
}

/// A Venus in its own process: opens the device, reads `read` messages, prints their
/// uniques, and waits to be killed.
pub fn venus_child(a: &VenusChildArgs) -> i32 {
    let fd = match sys::open_dev(&sys::cfs_path(a.minor), false) {
        Ok(f) => f,
        Err(e) => {
            println!("error {e}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let mut buf = vec![0u8; VC_MAXMSGSIZE];
    for _ in 0..a.read {
        match sys::raw_read(fd.as_raw_fd(), buf.as_mut_ptr() as usize, buf.len()) {
            Ok(_) => {
                let h = sys::read_struct::<InHdr>(&buf).unwrap();
                let _ = writeln!(out, "u {}", h.unique);
            }
            Err(e) => {
                let _ = writeln!(out, "error {e}");
                return 1;
            }
        }
    }
    let _ = writeln!(out, "done");
    let _ = out.flush();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

pub fn run(a: &LifecycleArgs, rep: &mut Report) {
    sys::install_signal_handlers();
    if sys::loaded() {
        if let Err(e) = sys::rmmod() {
            rep.check(
                "lifecycle: unload the module left loaded",
                Err(e.to_string()),
            );
            return;
        }
    }
    // A long timeout: the outstanding calls must end by the kill, not by timing out.
    if let Err(e) = sys::insmod(&a.ko, "devices=2 timeout=120") {
        rep.check("lifecycle: load the module", Err(e));
        return;
    }
    let old = kill_venus(a, rep);
    restart(&old, rep);
    rep.check(
        "lifecycle: rmmod refused while a device is open, clean after",
        rmmod_busy(&a.ko),
    );
    rep.check(
        &format!("lifecycle: load/unload {} times", a.loads),
        load_unload(a),
    );
}

/// SIGKILL a Venus process with `outstanding` calls waiting (half read by it, half still
/// queued): every caller returns ENODEV promptly. Returns the uniques the dead Venus read.
fn kill_venus(a: &LifecycleArgs, rep: &mut Report) -> Vec<u32> {
    let name = format!(
        "lifecycle: Venus SIGKILLed with {} calls outstanding, every caller gets ENODEV",
        a.outstanding
    );
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = match Command::new(exe)
        .args([
            "venus-child",
            "--minor",
            "0",
            "--read",
            &(a.outstanding / 2).to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            rep.check(&name, Err(format!("spawn venus-child: {e}")));
            return Vec::new();
        }
    };
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    if lines.next().and_then(|l| l.ok()).as_deref() != Some("ready") {
        let _ = child.kill();
        let _ = child.wait();
        rep.check(&name, Err("venus-child did not start".into()));
        return Vec::new();
    }
    let before = sys::stats(0).unwrap_or_else(|_| zero_stats());
    let (tx, rx) = mpsc::channel::<(Result<(), Errno>, Instant)>();
    let mut rng = Rng::new(a.seed);
    let mut spawned = 0;
    for _ in 0..a.outstanding {
        let tx = tx.clone();
        let msg = work::request(&mut rng, CODA_GETATTR, 16, 0);
        let h = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let ctl = match sys::open_dev(sys::CTL_PATH, false) {
                    Ok(f) => f,
                    Err(_) => {
                        let _ = tx.send((Err(Errno::EBADF), Instant::now()));
                        return;
                    }
                };
                let mut out = [0u8; 64];
                let r = coda_dev::ctl_call_with(ctl.as_fd(), 0, 0, &msg, &mut out).map(|_| ());
                let _ = tx.send((r, Instant::now()));
            });
        if h.is_ok() {
            spawned += 1;
        }
    }
    drop(tx);
    let all_in = sys::wait_for(Duration::from_secs(120), || {
        sys::stats(0).is_ok_and(|s| s.outstanding >= spawned as u64)
    });
    // The child prints a unique per message read, then "done".
    let mut uniques = Vec::new();
    for l in lines.by_ref() {
        match l {
            Ok(l) if l.starts_with("u ") => uniques.push(l[2..].parse().unwrap_or(0)),
            _ => break,
        }
    }
    let st = sys::stats(0).ok();
    let killed_at = Instant::now();
    let _ = child.kill();
    let _ = child.wait();
    let mut results = Vec::new();
    while let Ok(r) = rx.recv_timeout(Duration::from_secs(30)) {
        results.push(r);
        if results.len() == spawned {
            break;
        }
    }
    let after = sys::stats(0);
    let mut bad = Vec::new();
    if spawned != a.outstanding {
        bad.push(format!("only {spawned} caller threads started"));
    }
    if !all_in {
        bad.push(format!(
            "outstanding never reached {spawned}: {:?}",
            st.map(|s| s.outstanding)
        ));
    }
    if let Some(st) = st {
        println!(
            "# before the kill: outstanding {} pending {} processing {}",
            st.outstanding, st.pending, st.processing
        );
    }
    if results.len() != spawned {
        bad.push(format!(
            "{} of {spawned} callers did not return within 30 s of the kill",
            spawned - results.len()
        ));
    }
    let not_enodev: Vec<_> = results
        .iter()
        .filter(|(r, _)| *r != Err(Errno::ENODEV))
        .map(|(r, _)| *r)
        .collect();
    if !not_enodev.is_empty() {
        bad.push(format!(
            "{} callers did not get ENODEV: {:?}",
            not_enodev.len(),
            &not_enodev[..not_enodev.len().min(5)]
        ));
    }
    let slowest = results
        .iter()
        .map(|(_, t)| t.saturating_duration_since(killed_at))
        .max()
        .unwrap_or_default();
    println!(
        "# all {} callers returned within {slowest:?} of the SIGKILL",
        results.len()
    );
    if slowest > Duration::from_secs(10) {
        bad.push(format!(
            "the last caller returned {slowest:?} after the kill"
        ));
    }
    match after {
        Ok(st) => {
            let d = work::delta(&before, &st);
            let aborted = sys::sum(&d, |o| o.aborted);
            if aborted != spawned as u64 {
                bad.push(format!("aborted {aborted}, expected {spawned}"));
            }
            if let Err(e) = sys::check_quiet(&st) {
                bad.push(e);
            }
        }
        Err(e) => bad.push(e),
    }
    rep.check(
        &name,
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("\n"))
        },
    );
    uniques
}

fn zero_stats() -> PsdevStats {
    use zerocopy::FromZeros;
    PsdevStats::new_zeroed()
}

/// A new Venus after the crash: the open works (and a second is EBUSY), replies to the dead
/// Venus's uniques or to uniques never issued are ESRCH, and a fresh call goes through.
fn restart(old: &[u32], rep: &mut Report) {
    let r = (|| -> Result<(), String> {
        let fd = sys::open_dev(&sys::cfs_path(0), true).map_err(|e| format!("reopen cfs0: {e}"))?;
        match sys::open_dev(&sys::cfs_path(0), true) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            r => {
                return Err(format!(
                    "second open of cfs0: {:?}, want EBUSY",
                    r.map(|_| ())
                ))
            }
        }
        let raw = fd.as_raw_fd();
        let reply = |unique: u32| {
            let oh = OutHdr {
                opcode: CODA_GETATTR,
                unique,
                result: 0,
            };
            sys::raw_write(raw, oh.as_bytes().as_ptr() as usize, OUT_HDR_SIZE)
        };
        let mut bad = Vec::new();
        if old.is_empty() {
            bad.push("the killed Venus read no uniques".into());
        }
        for &u in old.iter().take(50) {
            if reply(u) != Err(Errno::ESRCH) {
                bad.push(format!("reply to old unique {u}: {:?}", reply(u)));
                break;
            }
        }
        let hi = old.iter().copied().max().unwrap_or(0);
        for u in [hi + 5000, u32::MAX, 0] {
            if reply(u) != Err(Errno::ESRCH) {
                bad.push(format!("reply to never-issued unique {u}: {:?}", reply(u)));
            }
        }
        // A fresh call is served by the new Venus.
        let caller = std::thread::spawn(|| {
            let ctl = sys::open_dev(sys::CTL_PATH, false).map_err(|e| e.to_string())?;
            let msg = work::request(&mut Rng::new(7), CODA_GETATTR, 16, 0);
            let mut out = [0u8; 64];
            coda_dev::ctl_call_with(ctl.as_fd(), 0, 0, &msg, &mut out).map_err(|e| e.to_string())
        });
        let mut buf = vec![0u8; VC_MAXMSGSIZE];
        let mut got = None;
        sys::wait_for(Duration::from_secs(20), || {
            if let Ok(n) = sys::raw_read(raw, buf.as_mut_ptr() as usize, buf.len()) {
                got = Some(n);
            }
            got.is_some()
        });
        let h = sys::read_struct::<InHdr>(&buf).unwrap();
        if got.is_none() {
            bad.push("the new Venus read nothing".into());
        } else if old.contains(&h.unique) {
            bad.push(format!("unique {} reused after the restart", h.unique));
        }
        if got.is_some() {
            let mut r = [0u8; 16];
            let oh = OutHdr {
                opcode: h.opcode,
                unique: h.unique,
                result: 0,
            };
            r[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
            if let Err(e) = sys::raw_write(raw, r.as_ptr() as usize, r.len()) {
                bad.push(format!("reply to the fresh call: {e}"));
            }
        }
        match caller.join() {
            Ok(Ok(c)) if c.out_len == 16 && c.unique == h.unique => {}
            Ok(r) => bad.push(format!("fresh call: {r:?}")),
            Err(_) => bad.push("caller panicked".into()),
        }
        sys::all_good(bad)
    })();
    rep.check(
        "lifecycle: Venus restarts; old and never-issued uniques are ESRCH",
        r,
    );
}

fn rmmod_busy(ko: &std::path::Path) -> Result<(), String> {
    let mut bad = Vec::new();
    for path in [sys::cfs_path(0), sys::CTL_PATH.to_string()] {
        let fd = sys::open_dev(&path, true).map_err(|e| format!("open {path}: {e}"))?;
        match sys::rmmod() {
            Err(Errno::EAGAIN) => {}
            r => bad.push(format!(
                "rmmod with {path} open: {r:?}, want EAGAIN (EWOULDBLOCK)"
            )),
        }
        if !sys::loaded() {
            bad.push(format!("module unloaded with {path} open"));
            return Err(bad.join("\n"));
        }
        drop(fd);
    }
    if let Err(e) = sys::rmmod() {
        bad.push(format!("rmmod after close: {e}"));
    }
    if sys::loaded() || std::path::Path::new("/dev/cfs0").exists() {
        bad.push("module or /dev/cfs0 still there after rmmod".into());
    }
    let _ = ko;
    sys::all_good(bad)
}

/// Loads with varied parameters, uses the devices a little, unloads.
fn load_unload(a: &LifecycleArgs) -> Result<(), String> {
    let mut rng = Rng::new(a.seed ^ 0x10ad);
    let t0 = Instant::now();
    for i in 0..a.loads {
        // Mostly a few devices (each load costs most of a second under emulation), now and
        // then the most.
        let devices = if rng.chance(1, 10) {
            16
        } else {
            1 + rng.below(4)
        };
        let max = 1 + rng.below(2048);
        sys::insmod(
            &a.ko,
            &format!("devices={devices} max_outstanding={max} timeout=5"),
        )
        .map_err(|e| format!("load {i}: {e}"))?;
        let minor = rng.below(devices) as u32;
        {
            let venus = sys::open_dev(&sys::cfs_path(minor), true)
                .map_err(|e| format!("load {i}: open cfs{minor}: {e}"))?;
            let ctl = sys::open_dev(sys::CTL_PATH, true)
                .map_err(|e| format!("load {i}: open ctl: {e}"))?;
            // An asynchronous upcall left unread: the close must free it.
            let msg = work::request(&mut rng, CODA_GETATTR, 16, work::TAG_NO_REPLY);
            coda_dev::ctl_call_with(ctl.as_fd(), minor, CODA_CTL_ASYNC, &msg, &mut [])
                .map_err(|e| format!("load {i}: async call: {e}"))?;
            drop(venus);
            let st = coda_dev::ctl_stats(ctl.as_fd(), minor)
                .map_err(|e| format!("load {i}: stats: {e}"))?;
            sys::check_quiet(&st).map_err(|e| format!("load {i}: {e}"))?;
        }
        // The devices' release may still be running in another CPU's task work.
        let mut last = Ok(());
        if !sys::wait_for(Duration::from_secs(5), || {
            last = sys::rmmod();
            last.is_ok()
        }) {
            return Err(format!("unload {i}: {last:?}"));
        }
    }
    println!("# {} load/unload cycles in {:?}", a.loads, t0.elapsed());
    Ok(())
}
