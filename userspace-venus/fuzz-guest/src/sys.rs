// SPDX-License-Identifier: GPL-2.0

//! The devices, their ioctls and the raw system calls the tests make.
//!
//! The fuzzer must hand the kernel addresses that are not valid buffers (NULL, kernel
//! addresses, PROT_NONE and read-only pages), which no safe wrapper allows, so the few raw
//! calls live here, each taking an address and a length and never touching the memory itself.

use coda_msg::PsdevStats;
use nix::errno::Errno;
use nix::sys::signal::SaFlags;
use nix::sys::signal::SigAction;
use nix::sys::signal::SigHandler;
use nix::sys::signal::SigSet;
use nix::sys::signal::Signal;
use std::ffi::CStr;
use std::ffi::CString;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;
use zerocopy::FromBytes;

pub const CTL_PATH: &str = "/dev/coda_ctl";

pub fn cfs_path(minor: u32) -> String {
    format!("/dev/cfs{minor}")
}

/// Opens a device read-write, optionally non-blocking.
pub fn open_dev(path: &str, nonblock: bool) -> io::Result<OwnedFd> {
    let flags = if nonblock { libc::O_NONBLOCK } else { 0 };
    let f: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags | libc::O_CLOEXEC)
        .open(path)?;
    Ok(f.into())
}

/// An errno-style result of a raw call: the byte count, or the errno.
pub type Ret = Result<usize, Errno>;

fn ret(r: isize) -> Ret {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// `read(2)` into an arbitrary address.
pub fn raw_read(fd: i32, addr: usize, len: usize) -> Ret {
    // SAFETY: the kernel checks the address range; callers pass buffers they own, or
    // addresses that are not writable by this process at all (NULL, kernel, PROT_NONE,
    // read-only), where the call fails with EFAULT and writes nothing.
    ret(unsafe { libc::read(fd, addr as *mut libc::c_void, len) })
}

/// `write(2)` from an arbitrary address.
pub fn raw_write(fd: i32, addr: usize, len: usize) -> Ret {
    // SAFETY: write(2) only reads the range; a bad address fails with EFAULT.
    ret(unsafe { libc::write(fd, addr as *const libc::c_void, len) })
}

/// `ioctl(2)` with an arbitrary argument.
pub fn raw_ioctl(fd: i32, cmd: u32, arg: usize) -> Ret {
    // SAFETY: as for `raw_read`: the argument is a buffer of ours large enough for the
    // command's size field, or an address this process cannot write.
    ret(unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) as isize })
}

/// Statistics of `/dev/cfs<minor>`, opening the control device for it.
pub fn stats(minor: u32) -> Result<PsdevStats, String> {
    let ctl = open_dev(CTL_PATH, true).map_err(|e| format!("open {CTL_PATH}: {e}"))?;
    coda_dev::ctl_stats(ctl.as_fd(), minor).map_err(|e| format!("CODA_CTL_IOC_STATS: {e}"))
}

/// Sum over opcodes of one per-opcode counter.
pub fn sum(st: &PsdevStats, f: fn(&coda_msg::PsdevOpStats) -> u64) -> u64 {
    st.op.iter().map(f).sum()
}

/// The counters' balance: every call queued has exactly one outcome or is still outstanding.
/// Returns a description of the imbalance, per opcode, if any.
pub fn check_balance(st: &PsdevStats) -> Result<(), String> {
    let mut bad = Vec::new();
    for (op, o) in st.op.iter().enumerate() {
        let ended = o.replies
            + o.intr_before_read
            + o.intr_after_read
            + o.timeouts
            + o.aborted
            + o.bad_replies
            + o.async_read;
        if o.calls < ended {
            bad.push(format!("op {op}: calls {} < outcomes {ended}", o.calls));
        }
    }
    let calls = sum(st, |o| o.calls);
    let ended = sum(st, |o| {
        o.replies
            + o.intr_before_read
            + o.intr_after_read
            + o.timeouts
            + o.aborted
            + o.bad_replies
            + o.async_read
    });
    if calls != ended + st.outstanding {
        bad.push(format!(
            "calls {calls} != outcomes {ended} + outstanding {}",
            st.outstanding
        ));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; "))
    }
}

/// The checks made once Venus has closed: nothing outstanding, nothing held, and balance.
pub fn check_quiet(st: &PsdevStats) -> Result<(), String> {
    if st.outstanding != 0 || st.pending != 0 || st.processing != 0 || st.mem_bytes != 0 {
        return Err(format!(
            "not quiet: outstanding {} pending {} processing {} mem_bytes {}",
            st.outstanding, st.pending, st.processing, st.mem_bytes
        ));
    }
    check_balance(st)
}

/// One line of counters for the log.
pub fn describe(st: &PsdevStats) -> String {
    format!(
        "calls {} replies {} intr {}/{} signals {} timeouts {} aborted {} bad_replies {} \
         async_read {} outstanding {} peak {} opens {} downcalls {} dropped {} bad_writes {}",
        sum(st, |o| o.calls),
        sum(st, |o| o.replies),
        sum(st, |o| o.intr_before_read),
        sum(st, |o| o.intr_after_read),
        sum(st, |o| o.signals_sent),
        sum(st, |o| o.timeouts),
        sum(st, |o| o.aborted),
        sum(st, |o| o.bad_replies),
        sum(st, |o| o.async_read),
        st.outstanding,
        st.peak_outstanding,
        st.opens,
        st.downcalls,
        st.downcalls_dropped,
        st.bad_writes,
    )
}

/// A parameter the module was loaded with. The module's parameters are not in sysfs, so
/// whoever loads it says them in the environment (`CODA_PSDEV_<NAME>`, as the guest script
/// does); sysfs is read should they ever appear there.
pub fn module_param(name: &str) -> Option<u64> {
    let env = format!("CODA_PSDEV_{}", name.to_uppercase());
    std::env::var(env)
        .ok()
        .or_else(|| {
            std::fs::read_to_string(format!("/sys/module/coda_psdev/parameters/{name}")).ok()
        })?
        .trim()
        .parse()
        .ok()
}

/// Number of /dev/cfsN of the loaded module: the first minor the statistics ioctl refuses.
pub fn devices() -> u32 {
    let Ok(ctl) = open_dev(CTL_PATH, true) else {
        return 0;
    };
    (0..64)
        .find(|&m| coda_dev::ctl_stats(ctl.as_fd(), m).is_err())
        .unwrap_or(64)
}

/// The call timeout of the loaded module, in seconds (0: none); 30, the module's default,
/// when unknown.
pub fn timeout_secs() -> u64 {
    module_param("timeout").unwrap_or(30)
}

/// Loads the module from `ko` with `params`.
pub fn insmod(ko: &Path, params: &str) -> Result<(), String> {
    let f = File::open(ko).map_err(|e| format!("open {}: {e}", ko.display()))?;
    let p = CString::new(params).map_err(|e| e.to_string())?;
    nix::kmod::finit_module(&f, &p, nix::kmod::ModuleInitFlags::empty())
        .map_err(|e| format!("finit_module({params}): {e}"))
}

/// Loads the module from the open file `ko` with `params`, returning the errno.
pub fn insmod_file(ko: &File, params: &CStr) -> Result<(), Errno> {
    nix::kmod::finit_module(ko, params, nix::kmod::ModuleInitFlags::empty())
}

/// Unloads the module without waiting: EAGAIN (EWOULDBLOCK) while a file is open.
pub fn rmmod() -> Result<(), Errno> {
    nix::kmod::delete_module(c"coda_psdev", nix::kmod::DeleteModuleFlags::O_NONBLOCK)
}

/// Whether the module is loaded.
pub fn loaded() -> bool {
    Path::new("/sys/module/coda_psdev").exists()
}

/// Waits for `f` to hold, polling every 5 ms, up to `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

extern "C" fn on_signal(_: libc::c_int) {}

/// SIGUSR1 and SIGUSR2 interrupt blocking calls (no SA_RESTART) and do nothing else, so a
/// signalled caller sees EINTR as a file-system caller would.
pub fn install_signal_handlers() {
    let sa = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGUSR1, Signal::SIGUSR2] {
        // SAFETY: the handler is async-signal-safe (it does nothing).
        unsafe { nix::sys::signal::sigaction(s, &sa) }.expect("sigaction");
    }
}

/// A small deterministic generator (SplitMix64): the fuzzer's runs are reproduced from
/// their seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Reads a `T` from the front of a message (for checking what the devices return).
pub fn read_struct<T: FromBytes>(b: &[u8]) -> Option<T> {
    T::read_from_prefix(b).ok().map(|(v, _)| v)
}

/// The verdict of a check that gathered its failures in `bad`: one line each.
pub fn all_good(bad: Vec<String>) -> Result<(), String> {
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// The test results: `ok - name` / `not ok - name` lines and the final count.
#[derive(Default)]
pub struct Report {
    pub passed: u32,
    pub failed: u32,
}

impl Report {
    pub fn check(&mut self, name: &str, r: Result<(), String>) -> bool {
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("ok - {name}");
                true
            }
            Err(e) => {
                self.failed += 1;
                println!("not ok - {name}");
                for l in e.lines() {
                    println!("#   {l}");
                }
                false
            }
        }
    }

    pub fn finish(&self) -> i32 {
        println!("{} passed, {} failed", self.passed, self.failed);
        i32::from(self.failed > 0)
    }
}
