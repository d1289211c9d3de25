// SPDX-License-Identifier: GPL-2.0

//! The module's initialisation under allocation failures: the Nth allocation of the
//! loading task fails (`/proc/thread-self/fail-nth`), for N = 1, 2, ... until a load
//! needs no more than N - 1 allocations. Every failed load must fail cleanly (an errno,
//! no module left behind) and leak nothing: the runner's kmemleak scan sees what an
//! unwound initialisation kept (the published devices once did).

use crate::sys;
use crate::sys::Report;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct InitFaultsArgs {
    /// The module to load (the test leaves it unloaded). Keep it on a tmpfs: the loads
    /// read it, and a 9p read whose allocation fails can break the guest's root mount.
    #[arg(long)]
    pub ko: PathBuf,
    /// Parameters of each load: fewer devices, fewer allocations to walk through.
    #[arg(long, default_value = "devices=1 max_outstanding=4")]
    pub params: String,
    /// The most allocations to fail in turn.
    #[arg(long, default_value_t = 3000)]
    pub max: u32,
}

const FAILSLAB: &str = "/sys/kernel/debug/failslab";

pub fn run(a: &InitFaultsArgs, rep: &mut Report) {
    if sys::loaded() {
        if let Err(e) = sys::rmmod() {
            rep.check(
                "init-faults: unload the module left loaded",
                Err(e.to_string()),
            );
            return;
        }
    }
    // The driver's allocations are GFP_KERNEL, which failslab ignores by default; fail-nth
    // also obeys the stack filter, which must be off (0 to ULONG_MAX).
    let set = |k: &str, v: &str| {
        std::fs::write(format!("{FAILSLAB}/{k}"), v).map_err(|e| format!("{FAILSLAB}/{k}: {e}"))
    };
    let armed = set("ignore-gfp-wait", "N")
        .and_then(|()| set("require-start", "0"))
        .and_then(|()| set("require-end", &u64::MAX.to_string()));
    if !rep.check("init-faults: failslab counts every allocation", armed) {
        return;
    }
    let r = walk(a);
    let _ = set("ignore-gfp-wait", "Y");
    let done = r.and_then(|(failed, errnos)| {
        println!("# init-faults: {failed} loads failed at their Nth allocation, errnos {errnos:?}");
        if failed == 0 {
            return Err("no load failed: fail-nth did not reach the loads".into());
        }
        Ok(())
    });
    rep.check(
        "init-faults: every load failed by an allocation fails cleanly, then one succeeds",
        done,
    );
    rep.check(
        "init-faults: the module loads and unloads afterwards",
        sys::insmod(&a.ko, &a.params).and_then(|()| sys::rmmod().map_err(|e| e.to_string())),
    );
}

/// Fails the loads' allocations in turn; returns how many loads failed and their errnos.
fn walk(a: &InitFaultsArgs) -> Result<(u32, Vec<i32>), String> {
    // Opened once: each load then allocates only for itself.
    let ko = File::open(&a.ko).map_err(|e| format!("open {}: {e}", a.ko.display()))?;
    let params = CString::new(a.params.as_str()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut failed = 0;
    let mut errnos = Vec::new();
    for n in 1..=a.max {
        let mut nth = File::options()
            .write(true)
            .read(true)
            .open("/proc/thread-self/fail-nth")
            .map_err(|e| format!("fail-nth: {e}"))?;
        write!(nth, "{n}").map_err(|e| format!("fail-nth: {e}"))?;
        let r = sys::insmod_file(&ko, &params);
        // 0 once the Nth allocation failed; what is left if the load made fewer. Read and
        // reset through the open file: opening it again would allocate, and count.
        let mut left = String::new();
        let _ = nth.seek(SeekFrom::Start(0));
        let _ = nth.read_to_string(&mut left);
        let _ = nth.write_all(b"0");
        let fired = left.trim() == "0";
        match r {
            Ok(()) => {
                sys::rmmod().map_err(|e| format!("rmmod after load {n}: {e}"))?;
                if !fired {
                    println!(
                        "# init-faults: a load needs {} allocations, walked in {:?}",
                        n - 1,
                        t0.elapsed()
                    );
                    return Ok((failed, errnos));
                }
            }
            Err(e) => {
                if sys::loaded() {
                    return Err(format!("load {n} failed ({e}) but left the module loaded"));
                }
                if !fired {
                    return Err(format!("load {n} failed ({e}) with no allocation failed"));
                }
                failed += 1;
                if !errnos.contains(&(e as i32)) {
                    errnos.push(e as i32);
                }
            }
        }
    }
    Err(format!(
        "loads still fail after {} failed allocations",
        a.max
    ))
}
