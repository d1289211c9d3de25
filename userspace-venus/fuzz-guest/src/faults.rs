// SPDX-License-Identifier: GPL-2.0

//! Fault injection: the kernel's failslab and fail_page_alloc (debugfs) make allocations
//! whose call stack passes through the module fail, while a Venus and callers run. Three
//! phases: failures anywhere in the module by probability, then only in the callers' tasks
//! (`make-it-fail`), then only in Venus's. Each failure must reach the party whose call
//! allocated, as ENOMEM, and afterwards nothing may be outstanding, leaked or stuck.

use crate::sys;
use crate::sys::Report;
use crate::work;
use nix::errno::Errno;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct FaultArgs {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Failure probability in percent.
    #[arg(long, default_value_t = 10)]
    pub probability: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

const DEBUGFS: &str = "/sys/kernel/debug";
/// Injected failures allowed per phase and attribute; what is left tells how many fired.
const TIMES: i64 = 1_000_000;

/// Marks the calling thread for `task-filter` fault injection.
pub fn make_it_fail(on: bool) {
    let _ = std::fs::write("/proc/thread-self/make-it-fail", if on { "1" } else { "0" });
}

/// failslab and fail_page_alloc, limited to call stacks through the module's code.
struct Injector {
    dirs: Vec<PathBuf>,
}

impl Injector {
    fn new() -> Result<Self, String> {
        if !std::path::Path::new(&format!("{DEBUGFS}/failslab")).exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "debugfs", "none", DEBUGFS])
                .status();
        }
        let dirs: Vec<PathBuf> = ["failslab", "fail_page_alloc"]
            .iter()
            .map(|d| PathBuf::from(format!("{DEBUGFS}/{d}")))
            .collect();
        for d in &dirs {
            if !d.join("probability").exists() {
                return Err(format!(
                    "{} missing: no fault injection in this kernel",
                    d.display()
                ));
            }
        }
        Ok(Self { dirs })
    }

    fn set(&self, attr: &str, v: &str) -> Result<(), String> {
        for d in &self.dirs {
            let p = d.join(attr);
            if p.exists() {
                std::fs::write(&p, v).map_err(|e| format!("write {v} to {}: {e}", p.display()))?;
            }
        }
        Ok(())
    }

    fn arm(
        &self,
        probability: u32,
        task_filter: bool,
        (start, end): (u64, u64),
    ) -> Result<(), String> {
        self.set("probability", "0")?;
        self.set("verbose", "0")?;
        self.set("interval", "1")?;
        self.set("times", &TIMES.to_string())?;
        self.set("space", "0")?;
        // GFP_KERNEL allocations may sleep: they are the ones the module makes.
        self.set("ignore-gfp-wait", "N")?;
        self.set("ignore-gfp-highmem", "N")?;
        self.set("min-order", "0")?;
        self.set("task-filter", if task_filter { "Y" } else { "N" })?;
        self.set("stacktrace-depth", "32")?;
        self.set("require-start", &start.to_string())?;
        self.set("require-end", &end.to_string())?;
        self.set("probability", &probability.to_string())
    }

    fn disarm(&self) {
        let _ = self.set("probability", "0");
        let _ = self.set("task-filter", "N");
        let _ = self.set("require-start", "0");
        // failslab's default, no stack filter: fail-nth obeys the filter too.
        let _ = self.set("require-end", &u64::MAX.to_string());
        let _ = self.set("times", "1");
    }

    /// Failures injected since `arm`.
    fn fired(&self) -> i64 {
        self.dirs
            .iter()
            .map(|d| {
                let left: i64 = std::fs::read_to_string(d.join("times"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(TIMES);
                TIMES - left
            })
            .sum()
    }
}

/// The module's code: from its `.text` section to past its last text symbol.
pub fn module_text() -> Result<(u64, u64), String> {
    let s = std::fs::read_to_string("/sys/module/coda_psdev/sections/.text")
        .map_err(|e| format!("module .text section: {e}"))?;
    let start =
        u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).map_err(|e| e.to_string())?;
    let syms = std::fs::read_to_string("/proc/kallsyms").map_err(|e| e.to_string())?;
    let last = syms
        .lines()
        .filter(|l| l.ends_with("[coda_psdev]"))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let a = u64::from_str_radix(it.next()?, 16).ok()?;
            let t = it.next()?;
            matches!(t, "t" | "T").then_some(a)
        })
        .max()
        .ok_or("no text symbols of coda_psdev in /proc/kallsyms")?;
    if start == 0 || last < start {
        return Err(format!(
            "module text {start:#x}..{last:#x} (addresses hidden?)"
        ));
    }
    // The last function's size is unknown: allow a page past its start.
    Ok((start, last + 4096))
}

/// A thread that opens and closes the control device and a second /dev/cfsN, reads
/// statistics and drains downcalls: the module's other allocations.
fn churn(stop: Arc<AtomicBool>, minor: u32) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut bad = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match sys::open_dev(sys::CTL_PATH, true) {
                Ok(ctl) => {
                    match coda_dev::ctl_stats(ctl.as_fd(), 0) {
                        Ok(st) => {
                            if let Err(e) = sys::check_balance(&st) {
                                bad.push(format!("stats under injection: {e}"));
                            }
                        }
                        Err(Errno::ENOMEM) => {}
                        Err(e) => bad.push(format!("stats: {e}")),
                    }
                    use std::os::fd::AsRawFd;
                    match sys::raw_read(ctl.as_raw_fd(), buf.as_mut_ptr() as usize, buf.len()) {
                        Ok(_) | Err(Errno::EAGAIN) => {}
                        Err(e) => bad.push(format!("read ctl: {e}")),
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {}
                Err(e) => bad.push(format!("open ctl: {e}")),
            }
            match sys::open_dev(&sys::cfs_path(minor), true) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {}
                Err(e) => bad.push(format!("open cfs{minor}: {e}")),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        bad.truncate(20);
        bad
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Anywhere,
    CallersOnly,
    VenusOnly,
}

pub fn run(a: &FaultArgs, rep: &mut Report) {
    sys::install_signal_handlers();
    let inj = match Injector::new() {
        Ok(i) => i,
        Err(e) => {
            rep.check("faults: fault injection available", Err(e));
            return;
        }
    };
    let text = match module_text() {
        Ok(t) => t,
        Err(e) => {
            rep.check("faults: module text range", Err(e));
            return;
        }
    };
    println!("# module text {:#x}..{:#x}", text.0, text.1);
    let devices = sys::devices();
    for phase in [Phase::Anywhere, Phase::CallersOnly, Phase::VenusOnly] {
        let name = format!("faults ({phase:?}, {}%)", a.probability);
        let r = one_phase(a, &inj, text, phase, devices);
        inj.disarm();
        rep.check(&name, r);
    }
}

fn one_phase(
    a: &FaultArgs,
    inj: &Injector,
    text: (u64, u64),
    phase: Phase,
    devices: u32,
) -> Result<(), String> {
    let before = sys::stats(0)?;
    let seed = a.seed ^ phase as u64;
    let venus = work::Venus::start(work::VenusOpts {
        minor: 0,
        threads: 2,
        delay_permille: 50,
        downcall_permille: 100,
        make_it_fail: phase == Phase::VenusOnly,
        seed,
    })?;
    let callers = work::Callers::start(work::CallerOpts {
        minor: 0,
        threads: 6,
        ops: &[
            coda_msg::CODA_GETATTR,
            coda_msg::CODA_LOOKUP,
            coda_msg::CODA_CLOSE,
        ],
        async_permille: 50,
        async_op: coda_msg::CODA_FSYNC,
        eio_permille: 20,
        silent_permille: 5,
        make_it_fail: phase == Phase::CallersOnly,
        seed,
    })?;
    let sig = work::Signaller::start(callers.targets.clone(), 5000, seed);
    let stop = Arc::new(AtomicBool::new(false));
    let churner = (phase == Phase::Anywhere && devices > 1).then(|| churn(stop.clone(), 1));
    inj.arm(a.probability, phase != Phase::Anywhere, text)?;
    std::thread::sleep(Duration::from_secs(a.secs));
    let fired = inj.fired();
    inj.disarm();
    // A moment without failures: retried replies get through.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let churn_bad = churner
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let res = crate::join_within(Duration::from_secs(sys::timeout_secs() + 30), move || {
        callers.stop()
    })
    .ok_or("callers stuck: a call did not return within the module timeout")?;
    sig.stop();
    let vc = venus.stop();
    let after = sys::stats(0)?;
    let d = work::delta(&before, &after);
    println!(
        "# {phase:?}: {fired} allocations failed; callers ok {} ENOMEM {} EINTR {} ETIMEDOUT {} ENODEV {} EIO {}; \
         Venus replies {} ENOMEM {} ESRCH {}",
        res.total(|o| o.ok),
        res.total(|o| o.enomem),
        res.total(|o| o.eintr),
        res.total(|o| o.etimedout),
        res.total(|o| o.enodev),
        res.total(|o| o.eio),
        vc.replies,
        vc.enomem,
        vc.esrch
    );
    println!("# cfs0: {}", sys::describe(&after));
    let mut bad = Vec::new();
    if fired == 0 {
        bad.push("no failure was injected".to_string());
    }
    bad.extend(res.violations.iter().take(10).cloned());
    bad.extend(vc.violations.iter().take(10).cloned());
    bad.extend(churn_bad);
    match phase {
        Phase::CallersOnly if vc.enomem > 0 => bad.push(format!(
            "Venus got ENOMEM {} times though only callers were failed",
            vc.enomem
        )),
        Phase::VenusOnly if res.total(|o| o.enomem) > 0 => bad.push(format!(
            "callers got ENOMEM {} times though only Venus was failed",
            res.total(|o| o.enomem)
        )),
        _ => {}
    }
    if let Err(e) = sys::check_quiet(&after) {
        bad.push(e);
    }
    if let Err(e) = work::check_outcomes(&d, &res) {
        bad.push(e);
    }
    sys::all_good(bad)
}
