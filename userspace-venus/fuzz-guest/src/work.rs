// SPDX-License-Identifier: GPL-2.0

//! A load to run against the module: a multi-threaded Venus that answers every request with
//! bytes the caller asked for, callers that check they got their own reply, and a signaller
//! that interrupts callers at random.
//!
//! Requests carry `[InHdr][reply_len: u32][tag: u32]`: Venus answers with `reply_len` bytes
//! echoing `tag`, so a caller can tell its reply from another's, and can ask for a reply
//! longer than its room to provoke EIO. A tag with [`TAG_NO_REPLY`] set is never answered
//! (asynchronous upcalls, and calls meant to time out).

use crate::sys;
use crate::sys::Rng;
use coda_msg::InHdr;
use coda_msg::OutHdr;
use coda_msg::CODA_CTL_ASYNC;
use coda_msg::CODA_SIGNAL;
use coda_msg::IN_HDR_SIZE;
use coda_msg::OUT_HDR_SIZE;
use coda_msg::VC_MAXMSGSIZE;
use nix::errno::Errno;
use nix::poll::poll;
use nix::poll::PollFd;
use nix::poll::PollFlags;
use nix::poll::PollTimeout;
use nix::sys::pthread::pthread_kill;
use nix::sys::pthread::pthread_self;
use nix::sys::pthread::Pthread;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;
use zerocopy::IntoBytes;

/// Set in a request's tag: Venus must not answer it.
pub const TAG_NO_REPLY: u32 = 0x8000_0000;
/// The room every caller gives for its reply.
pub const OUT_CAP: usize = 64;
const BODY: usize = 8;

/// Builds a request for `opcode` asking for `reply_len` bytes back.
pub fn request(rng: &mut Rng, opcode: u32, reply_len: u32, tag: u32) -> Vec<u8> {
    let extra = rng.index(64);
    let mut m = vec![0u8; IN_HDR_SIZE + BODY + extra];
    let h = InHdr {
        opcode,
        unique: 0,
        pid: 4242,
        pgid: 4200,
        uid: 0,
    };
    m[..IN_HDR_SIZE].copy_from_slice(h.as_bytes());
    m[IN_HDR_SIZE..IN_HDR_SIZE + 4].copy_from_slice(&reply_len.to_ne_bytes());
    m[IN_HDR_SIZE + 4..IN_HDR_SIZE + 8].copy_from_slice(&tag.to_ne_bytes());
    rng.fill(&mut m[IN_HDR_SIZE + BODY..]);
    m
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// How the Venus threads behave.
#[derive(Clone, Copy)]
pub struct VenusOpts {
    pub minor: u32,
    pub threads: usize,
    /// Per mille of requests answered after a short sleep.
    pub delay_permille: u64,
    /// Per mille of replies followed by a downcall (CODA_ZAPFILE).
    pub downcall_permille: u64,
    /// Tasks of the Venus threads get `make-it-fail` (fault injection on Venus only).
    pub make_it_fail: bool,
    pub seed: u64,
}

/// What the Venus threads saw; `violations` are breaches of the uapi.
#[derive(Default, Debug)]
pub struct VenusCounts {
    pub requests: u64,
    pub signals: u64,
    pub replies: u64,
    pub esrch: u64,
    pub einval: u64,
    pub enomem: u64,
    pub downcalls: u64,
    pub violations: Vec<String>,
}

impl VenusCounts {
    pub fn add(&mut self, o: VenusCounts) {
        self.requests += o.requests;
        self.signals += o.signals;
        self.replies += o.replies;
        self.esrch += o.esrch;
        self.einval += o.einval;
        self.enomem += o.enomem;
        self.downcalls += o.downcalls;
        self.violations.extend(o.violations);
    }
}

/// A running Venus: one open of `/dev/cfs<minor>` shared by its threads.
pub struct Venus {
    fd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<VenusCounts>>,
}

impl Venus {
    pub fn start(o: VenusOpts) -> Result<Self, String> {
        let path = sys::cfs_path(o.minor);
        let fd = Arc::new(sys::open_dev(&path, true).map_err(|e| format!("open {path}: {e}"))?);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..o.threads)
            .map(|i| {
                let (fd, stop) = (fd.clone(), stop.clone());
                let rng = Rng::new(o.seed ^ (i as u64).wrapping_mul(0x1234_5678_9abc));
                std::thread::spawn(move || venus_thread(&fd, &stop, o, rng))
            })
            .collect();
        Ok(Self { fd, stop, threads })
    }

    /// Stops the threads and closes the device: the module aborts what is outstanding.
    pub fn stop(self) -> VenusCounts {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = VenusCounts::default();
        for t in self.threads {
            all.add(t.join().unwrap_or_default());
        }
        drop(self.fd);
        all
    }
}

fn venus_thread(fd: &OwnedFd, stop: &AtomicBool, o: VenusOpts, mut rng: Rng) -> VenusCounts {
    if o.make_it_fail {
        crate::faults::make_it_fail(true);
    }
    let mut c = VenusCounts::default();
    let mut buf = vec![0u8; VC_MAXMSGSIZE];
    let raw = fd.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut pfd, PollTimeout::from(20u16)), Ok(n) if n > 0) {
            continue;
        }
        let n = match sys::raw_read(raw, buf.as_mut_ptr() as usize, buf.len()) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR | Errno::ENOMEM) => continue,
            Err(e) => {
                c.violations.push(format!("read: {e}"));
                continue;
            }
        };
        let msg = &buf[..n];
        let Some(h) = sys::read_struct::<InHdr>(msg) else {
            c.violations
                .push(format!("read {n} bytes, shorter than a header"));
            continue;
        };
        if h.opcode == CODA_SIGNAL {
            c.signals += 1;
            if n != IN_HDR_SIZE || h.pid != 0 || h.pgid != 0 || h.uid != 0 {
                c.violations
                    .push(format!("CODA_SIGNAL of {n} bytes: {h:?}"));
            }
            continue;
        }
        c.requests += 1;
        if n < IN_HDR_SIZE + BODY {
            c.violations
                .push(format!("request of {n} bytes: not one we sent"));
            continue;
        }
        let (reply_len, tag) = (u32_at(msg, IN_HDR_SIZE), u32_at(msg, IN_HDR_SIZE + 4));
        if tag & TAG_NO_REPLY != 0 {
            continue;
        }
        if rng.chance(o.delay_permille, 1000) {
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
        }
        let mut reply = vec![0u8; (reply_len as usize).clamp(OUT_HDR_SIZE, VC_MAXMSGSIZE)];
        let oh = OutHdr {
            opcode: h.opcode,
            unique: h.unique,
            result: 0,
        };
        reply[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
        if reply.len() >= OUT_HDR_SIZE + 4 {
            reply[OUT_HDR_SIZE..OUT_HDR_SIZE + 4].copy_from_slice(&tag.to_ne_bytes());
        }
        // A reply that fails for want of memory is retried: the caller is still waiting.
        let mut tries = 0;
        loop {
            match sys::raw_write(raw, reply.as_ptr() as usize, reply.len()) {
                Ok(w) if w == reply.len() => c.replies += 1,
                Ok(w) => c
                    .violations
                    .push(format!("short write {w} of {}", reply.len())),
                Err(Errno::ESRCH) => c.esrch += 1,
                Err(Errno::EINVAL) if reply.len() > OUT_CAP => c.einval += 1,
                Err(Errno::ENOMEM | Errno::EINTR)
                    if tries < 1000 && !stop.load(Ordering::Relaxed) =>
                {
                    c.enomem += 1;
                    tries += 1;
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                Err(Errno::ENOMEM) => c.enomem += 1,
                Err(e) => c
                    .violations
                    .push(format!("reply of {} bytes: {e}", reply.len())),
            }
            break;
        }
        if rng.chance(o.downcall_permille, 1000) {
            let mut d = [0u8; OUT_HDR_SIZE + 16];
            let oh = OutHdr {
                opcode: coda_msg::CODA_ZAPFILE,
                unique: 0,
                result: 0,
            };
            d[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
            match sys::raw_write(raw, d.as_ptr() as usize, d.len()) {
                Ok(_) => c.downcalls += 1,
                Err(Errno::ENOMEM) => c.enomem += 1,
                Err(e) => c.violations.push(format!("downcall: {e}")),
            }
        }
    }
    c
}

/// Outcomes of the callers of one opcode, as userspace saw them.
#[derive(Default, Debug, Clone)]
pub struct OpOutcomes {
    pub ok: u64,
    pub async_ok: u64,
    pub eintr: u64,
    pub etimedout: u64,
    pub enodev: u64,
    pub eio: u64,
    pub enomem: u64,
    /// Calls that could not be made for want of memory before the upcall existed (the
    /// control device's own copy of the message).
    pub other: BTreeMap<String, u64>,
}

#[derive(Clone, Copy)]
pub struct CallerOpts {
    pub minor: u32,
    pub threads: usize,
    /// Opcodes the callers use, one per thread in turn.
    pub ops: &'static [u32],
    /// Per mille of calls made asynchronous (only with opcode `async_op`).
    pub async_permille: u64,
    pub async_op: u32,
    /// Per mille of calls that ask for a reply longer than their room (EIO).
    pub eio_permille: u64,
    /// Per mille of calls Venus is asked not to answer (they time out or are interrupted).
    pub silent_permille: u64,
    pub make_it_fail: bool,
    pub seed: u64,
}

/// A thread the signaller may interrupt while it is registered.
pub struct Targets {
    threads: Mutex<Vec<(Pthread, bool)>>,
}

impl Targets {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Registers the calling thread; returns its token for [`Self::leave`].
    pub fn enter(&self) -> usize {
        let me = pthread_self();
        let mut t = self.threads.lock().unwrap();
        t.push((me, true));
        t.len() - 1
    }

    /// The thread is about to exit: from now on it is never signalled.
    pub fn leave(&self, i: usize) {
        self.threads.lock().unwrap()[i].1 = false;
    }

    /// Sends `sig` to one live registered thread chosen with `rng`; false if none is live.
    pub fn signal_one(&self, rng: &mut Rng, sig: Signal) -> bool {
        let t = self.threads.lock().unwrap();
        let live: Vec<_> = t.iter().filter(|(_, a)| *a).map(|(p, _)| *p).collect();
        if live.is_empty() {
            return false;
        }
        let p = live[rng.index(live.len())];
        // The thread is live: it marks itself dead under this lock before exiting, so `p`
        // cannot name a thread that is gone.
        let _ = pthread_kill(p, sig);
        true
    }
}

/// Running callers and their results.
pub struct Callers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<CallerResult>>,
    pub targets: Arc<Targets>,
}

#[derive(Default)]
pub struct CallerResult {
    pub by_op: BTreeMap<u32, OpOutcomes>,
    pub violations: Vec<String>,
    /// Longest time one call took.
    pub longest: Duration,
}

impl CallerResult {
    pub fn add(&mut self, o: CallerResult) {
        for (op, x) in o.by_op {
            let e = self.by_op.entry(op).or_default();
            e.ok += x.ok;
            e.async_ok += x.async_ok;
            e.eintr += x.eintr;
            e.etimedout += x.etimedout;
            e.enodev += x.enodev;
            e.eio += x.eio;
            e.enomem += x.enomem;
            for (k, v) in x.other {
                *e.other.entry(k).or_default() += v;
            }
        }
        self.violations.extend(o.violations);
        self.longest = self.longest.max(o.longest);
    }

    pub fn total(&self, f: fn(&OpOutcomes) -> u64) -> u64 {
        self.by_op.values().map(f).sum()
    }
}

impl Callers {
    pub fn start(o: CallerOpts) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Targets::new();
        let mut threads = Vec::new();
        for i in 0..o.threads {
            let ctl = sys::open_dev(sys::CTL_PATH, false)
                .map_err(|e| format!("open {}: {e}", sys::CTL_PATH))?;
            let (stop, targets) = (stop.clone(), targets.clone());
            let op = o.ops[i % o.ops.len()];
            let rng = Rng::new(o.seed ^ 0xca11 ^ ((i as u64) << 20));
            threads.push(
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || caller_thread(&ctl, &stop, &targets, o, op, rng))
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(Self {
            stop,
            threads,
            targets,
        })
    }

    pub fn stop(self) -> CallerResult {
        self.stop.store(true, Ordering::SeqCst);
        let mut r = CallerResult::default();
        for t in self.threads {
            match t.join() {
                Ok(x) => r.add(x),
                Err(_) => r.violations.push("a caller thread panicked".into()),
            }
        }
        r
    }
}

fn caller_thread(
    ctl: &OwnedFd,
    stop: &AtomicBool,
    targets: &Targets,
    o: CallerOpts,
    op: u32,
    mut rng: Rng,
) -> CallerResult {
    if o.make_it_fail {
        crate::faults::make_it_fail(true);
    }
    let me = targets.enter();
    let mut r = CallerResult::default();
    let mut out = vec![0xa5u8; OUT_CAP];
    let mut serial = rng.next() as u32 & 0x00ff_ffff;
    while !stop.load(Ordering::Relaxed) {
        serial = serial.wrapping_add(1) & 0x00ff_ffff;
        let is_async = rng.chance(o.async_permille, 1000);
        let opcode = if is_async { o.async_op } else { op };
        let silent = is_async || rng.chance(o.silent_permille, 1000);
        let tag = serial | if silent { TAG_NO_REPLY } else { 0 };
        let want = if rng.chance(o.eio_permille, 1000) {
            (OUT_CAP + 1 + rng.index(100)) as u32
        } else {
            (OUT_HDR_SIZE + 4 + rng.index(OUT_CAP - OUT_HDR_SIZE - 3)) as u32
        };
        let msg = request(&mut rng, opcode, want, tag);
        out.fill(0xa5);
        let flags = if is_async { CODA_CTL_ASYNC } else { 0 };
        let t0 = Instant::now();
        let res = coda_dev::ctl_call_with(ctl.as_fd(), o.minor, flags, &msg, &mut out);
        r.longest = r.longest.max(t0.elapsed());
        let e = r.by_op.entry(opcode).or_default();
        match res {
            Ok(c) if is_async => {
                e.async_ok += 1;
                if c.unique == 0 {
                    r.violations.push("async call returned unique 0".into());
                }
            }
            Ok(c) => {
                e.ok += 1;
                let n = c.out_len as usize;
                let good = n == want as usize
                    && sys::read_struct::<OutHdr>(&out)
                        .is_some_and(|h| h.unique == c.unique && h.opcode == opcode)
                    && u32_at(&out, OUT_HDR_SIZE) == tag
                    && out[n..].iter().all(|&b| b == 0xa5);
                if !good {
                    r.violations.push(format!(
                        "op {opcode}: reply of {n} bytes (asked {want}) is not ours: {:02x?}",
                        &out[..n.min(24)]
                    ));
                }
            }
            Err(Errno::EINTR) => e.eintr += 1,
            Err(Errno::ETIMEDOUT) => e.etimedout += 1,
            Err(Errno::ENODEV) => {
                e.enodev += 1;
                // Venus is away (restarting): do not spin.
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Errno::EIO) => e.eio += 1,
            Err(Errno::ENOMEM) => e.enomem += 1,
            Err(x) => *e.other.entry(x.to_string()).or_default() += 1,
        }
    }
    targets.leave(me);
    r
}

/// Interrupts registered threads with SIGUSR1 at random until stopped.
pub struct Signaller {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Signaller {
    pub fn start(targets: Arc<Targets>, mean_gap_us: u64, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0x5157);
            let mut sent = 0;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(rng.below(2 * mean_gap_us + 1)));
                if targets.signal_one(&mut rng, Signal::SIGUSR1) {
                    sent += 1;
                }
            }
            sent
        });
        Self { stop, handle }
    }

    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or(0)
    }
}

/// Per-opcode difference of two statistics snapshots (counters only; gauges from `after`).
pub fn delta(before: &coda_msg::PsdevStats, after: &coda_msg::PsdevStats) -> coda_msg::PsdevStats {
    let mut d = *after;
    for (a, b) in d.op.iter_mut().zip(before.op.iter()) {
        a.calls -= b.calls;
        a.replies -= b.replies;
        a.intr_before_read -= b.intr_before_read;
        a.intr_after_read -= b.intr_after_read;
        a.signals_sent -= b.signals_sent;
        a.timeouts -= b.timeouts;
        a.aborted -= b.aborted;
        a.bad_replies -= b.bad_replies;
        a.async_read -= b.async_read;
        a.bytes_in -= b.bytes_in;
        a.bytes_out -= b.bytes_out;
    }
    d.opens -= before.opens;
    d.downcalls -= before.downcalls;
    d.downcalls_dropped -= before.downcalls_dropped;
    d.bad_writes -= before.bad_writes;
    d
}

/// The exact relations between what callers saw and what the module counted, for a run in
/// which only these callers used the device (`d` is the statistics' delta over the run).
pub fn check_outcomes(d: &coda_msg::PsdevStats, r: &CallerResult) -> Result<(), String> {
    let mut bad = Vec::new();
    for (&op, x) in &r.by_op {
        let o = &d.op[op as usize];
        let intr = o.intr_before_read + o.intr_after_read;
        let mut rel = |name: &str, ok: bool, detail: String| {
            if !ok {
                bad.push(format!("op {op}: {name}: {detail}"));
            }
        };
        rel(
            "replies == calls that returned a reply",
            o.replies == x.ok,
            format!("{} vs {}", o.replies, x.ok),
        );
        rel(
            "bad_replies == EIO",
            o.bad_replies == x.eio,
            format!("{} vs {}", o.bad_replies, x.eio),
        );
        rel(
            "timeouts == ETIMEDOUT",
            o.timeouts == x.etimedout,
            format!("{} vs {}", o.timeouts, x.etimedout),
        );
        rel(
            "interrupts <= EINTR",
            intr <= x.eintr,
            format!("{intr} vs {}", x.eintr),
        );
        rel(
            "aborted <= ENODEV + async",
            o.aborted <= x.enodev + x.async_ok,
            format!("{} vs {} + {}", o.aborted, x.enodev, x.async_ok),
        );
        rel(
            "async_read <= async calls",
            o.async_read <= x.async_ok,
            format!("{} vs {}", o.async_read, x.async_ok),
        );
        let lower = x.ok + x.eio + x.etimedout + x.async_ok;
        rel(
            "calls >= replied + EIO + timed out + async",
            o.calls >= lower,
            format!("{} vs {lower}", o.calls),
        );
        if !x.other.is_empty() {
            bad.push(format!("op {op}: errno outside the uapi: {:?}", x.other));
        }
        if coda_msg::is_uninterruptible(op) && (x.eintr > 0 || intr > 0) {
            bad.push(format!(
                "op {op} must ignore ordinary signals, got EINTR {} (module: {intr})",
                x.eintr
            ));
        }
    }
    sys::all_good(bad)
}
