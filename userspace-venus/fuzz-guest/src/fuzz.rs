// SPDX-License-Identifier: GPL-2.0

//! The syscall fuzzer: several threads run random programs of open, close, dup, read, write,
//! ioctl, poll, epoll and fdinfo reads on every `/dev/cfsN` and `/dev/coda_ctl`, with good
//! and bad buffers, while a signaller interrupts them and forked callers are killed in the
//! middle of their upcalls.
//!
//! Besides the kernel's own detectors (KASAN, lockdep, kmemleak, hung tasks), every result is
//! checked against the uapi: an errno the header does not document for that call, a
//! successful read that is not a whole message (a CODA_SIGNAL of other than 20 zeroed bytes),
//! a write accepted that the protocol forbids, an argument check that lets a bad value
//! through, a statistics snapshot whose counters do not balance. At the end every device must
//! be quiet once its Venus is gone, and no thread may be stuck.

use crate::sys;
use crate::sys::Report;
use crate::sys::Rng;
use crate::work;
use coda_msg::*;
use core::mem::size_of;
use nix::errno::Errno;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
use zerocopy::FromBytes;
use zerocopy::IntoBytes;

#[derive(clap::Args, Debug, Clone)]
pub struct FuzzArgs {
    /// Seed of the run (default: from the clock); printed so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long to fuzz.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Fuzzing threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Cfs(u32),
    Ctl,
}

struct PoolFd {
    fd: Arc<OwnedFd>,
    kind: Kind,
}

/// Addresses that are never valid buffers, and one page whose protection a thread flips.
struct Arena {
    /// A PROT_NONE page, a read-only page, the victim page and a PROT_NONE guard page:
    /// reserved for the whole run so no later mapping can land there, and no copy that
    /// runs past the victim page can reach memory of ours.
    base: usize,
    page: usize,
}

impl Arena {
    fn new() -> Self {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as usize;
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap arena");
        let base = base as usize;
        // SAFETY: the range is the mapping made above. The read-only page holds a pattern
        // written before it is protected.
        unsafe {
            libc::memset((base + page) as *mut libc::c_void, 0x5a, page);
            libc::mprotect(base as *mut libc::c_void, page, libc::PROT_NONE);
            libc::mprotect((base + page) as *mut libc::c_void, page, libc::PROT_READ);
            libc::mprotect(
                (base + 3 * page) as *mut libc::c_void,
                page,
                libc::PROT_NONE,
            );
        }
        Self { base, page }
    }

    fn prot_none(&self) -> usize {
        self.base
    }

    fn read_only(&self) -> usize {
        self.base + self.page
    }

    fn victim(&self) -> usize {
        self.base + 2 * self.page
    }

    /// Flips the victim page between writable, unreadable and read-only, so copies to and
    /// from it race with the change.
    fn flip_victim(&self, rng: &mut Rng) {
        let prot = rng.pick(&[
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_NONE,
            libc::PROT_READ,
        ]);
        // SAFETY: the victim page is ours for the whole run and holds no Rust object.
        unsafe { libc::mprotect(self.victim() as *mut libc::c_void, self.page, prot) };
    }

    /// A bad address for a buffer of `len` bytes, and whether it is one the kernel can
    /// partly write (then the result says nothing about the bytes).
    fn bad(&self, rng: &mut Rng, len: usize) -> usize {
        match rng.below(7) {
            0 => 0,
            1 => 0xffff_8880_0000_0000,
            2 => 0x8000_0000_0000_0000 + rng.below(4096) as usize,
            3 => self.prot_none() + rng.index(self.page),
            4 => self.read_only() + rng.index(self.page),
            // Straddles the end of the victim page into the guard page: when the victim is
            // writable the copy faults part-way.
            5 => self.victim() + self.page - len.min(self.page).max(1) / 2,
            _ => usize::MAX - rng.index(64),
        }
    }
}

/// What one thread observed: `(call, result)` counts and violations of the uapi.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, u64>,
    violations: Vec<String>,
}

impl Tally {
    fn note(&mut self, call: &str, r: &sys::Ret) {
        let k = match r {
            Ok(_) => format!("{call} ok"),
            Err(e) => format!("{call} {e:?}"),
        };
        *self.counts.entry(k).or_default() += 1;
    }

    fn bad(&mut self, s: String) {
        if self.violations.len() < 50 {
            self.violations.push(s);
        }
    }

    /// Records `r` and flags an errno outside `allowed`.
    fn expect(&mut self, call: &str, r: &sys::Ret, allowed: &[Errno]) {
        self.note(call, r);
        if let Err(e) = r {
            if !allowed.contains(e) {
                self.bad(format!(
                    "{call}: errno {e:?} is not in the uapi for this call"
                ));
            }
        }
    }
}

struct Shared {
    devices: u32,
    pool: Mutex<Vec<PoolFd>>,
    /// Uniques Venus-side threads have read, newest last.
    uniques: Mutex<VecDeque<(u32, u32)>>,
    highest_unique: AtomicU32,
    arena: Arena,
    stop: AtomicBool,
}

const POOL_MAX: usize = 24;

impl Shared {
    fn pick(&self, rng: &mut Rng, want: Option<bool>) -> Option<(Arc<OwnedFd>, Kind)> {
        let p = self.pool.lock().unwrap();
        let c: Vec<_> = p
            .iter()
            .filter(|f| want.is_none_or(|cfs| matches!(f.kind, Kind::Cfs(_)) == cfs))
            .collect();
        if c.is_empty() {
            return None;
        }
        let f = c[rng.index(c.len())];
        Some((f.fd.clone(), f.kind))
    }

    fn add(&self, fd: OwnedFd, kind: Kind) {
        let mut p = self.pool.lock().unwrap();
        if p.len() < POOL_MAX {
            p.push(PoolFd {
                fd: Arc::new(fd),
                kind,
            });
        }
    }

    fn remember(&self, minor: u32, unique: u32) {
        let mut u = self.uniques.lock().unwrap();
        u.push_back((minor, unique));
        if u.len() > 256 {
            u.pop_front();
        }
        self.highest_unique.fetch_max(unique, Ordering::Relaxed);
    }

    /// A unique to answer: one just read, an old one, a future one, or nonsense.
    fn unique(&self, rng: &mut Rng) -> u32 {
        let u = self.uniques.lock().unwrap();
        let hi = self.highest_unique.load(Ordering::Relaxed);
        match rng.below(6) {
            0 | 1 if !u.is_empty() => u[u.len() - 1 - rng.index(u.len().min(4))].1,
            2 if !u.is_empty() => u[rng.index(u.len())].1,
            3 => hi.wrapping_add(1 + rng.below(2000) as u32),
            4 => 0,
            _ => rng.next() as u32,
        }
    }
}

/// The size `check_downcall` requires for a downcall opcode (FLUSH also takes the union).
fn downcall_size(op: u32) -> usize {
    match op {
        CODA_PURGEUSER => size_of::<PurgeuserOut>(),
        CODA_ZAPFILE => size_of::<ZapfileOut>(),
        CODA_ZAPDIR => size_of::<ZapdirOut>(),
        CODA_PURGEFID => size_of::<PurgefidOut>(),
        CODA_REPLACE => size_of::<ReplaceOut>(),
        _ => OUT_HDR_SIZE,
    }
}

struct Worker {
    id: usize,
    rng: Rng,
    sh: Arc<Shared>,
    t: Tally,
    buf: Vec<u8>,
    big: Vec<u8>,
    /// A control file for forked callers and structured calls.
    ctl: OwnedFd,
}

const READ_ERRNOS: &[Errno] = &[Errno::EAGAIN, Errno::EINTR, Errno::EMSGSIZE, Errno::EFAULT];
const EXCHANGE_ERRNOS: &[Errno] = &[
    Errno::EINVAL,
    Errno::EFAULT,
    Errno::EAGAIN,
    Errno::EINTR,
    Errno::EMSGSIZE,
];
const CTL_IOCTL_ERRNOS: &[Errno] = &[
    Errno::ENOTTY,
    Errno::EFAULT,
    Errno::EINVAL,
    Errno::ENODEV,
    Errno::EINTR,
    Errno::ETIMEDOUT,
    Errno::EIO,
];

impl Worker {
    /// A buffer address for `len` bytes: our own buffer most of the time, else a bad one.
    /// Returns the address and whether it is our buffer.
    fn addr(&mut self, len: usize, for_read: bool) -> (usize, bool) {
        if self.rng.chance(8, 10) {
            let b = if len <= self.buf.len() {
                &mut self.buf
            } else {
                &mut self.big
            };
            if len <= b.len() {
                if for_read {
                    b[..len].fill(0xee);
                }
                return (b.as_mut_ptr() as usize, true);
            }
        }
        (self.sh.arena.bad(&mut self.rng, len), false)
    }

    fn size(&mut self) -> usize {
        let r = &mut self.rng;
        match r.below(10) {
            0 => r.pick(&[0, 1, 7, 8, 11, 12, 13, 19, 20, 21]),
            1 => r.pick(&[
                OUTPUT_ARGS_SIZE,
                INPUT_ARGS_SIZE,
                VC_MAXMSGSIZE,
                VC_MAXMSGSIZE + 1,
            ]),
            2 => 65536,
            3 => r.index(VC_MAXMSGSIZE + 64),
            _ => 20 + r.index(300),
        }
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=5 => self.open(),
            6..=9 => self.close(),
            10..=11 => self.dup(),
            12..=26 => self.read(),
            27..=46 => self.write(),
            47..=58 => self.ioctl(),
            59..=68 => self.call(),
            69..=72 => self.poll(),
            73..=76 => self.epoll(),
            77..=84 => self.serve(),
            85..=88 => self.exchange(),
            89..=90 => self.fork_caller(),
            91..=92 => self.sh.arena.flip_victim(&mut self.rng),
            93..=95 => self.fdinfo(),
            _ => self.stats(),
        }
    }

    fn open(&mut self) {
        let n = self.sh.devices;
        let (path, kind) = if self.rng.chance(1, 3) {
            (sys::CTL_PATH.to_string(), Kind::Ctl)
        } else {
            let m = self.rng.below(u64::from(n)) as u32;
            (sys::cfs_path(m), Kind::Cfs(m))
        };
        let nonblock = self.rng.chance(1, 2);
        match sys::open_dev(&path, nonblock) {
            Ok(fd) => {
                self.t.note("open", &Ok(0));
                self.sh.add(fd, kind);
            }
            Err(e) => {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                let allowed: &[Errno] = match kind {
                    // One Venus at a time.
                    Kind::Cfs(_) => &[Errno::EBUSY],
                    Kind::Ctl => &[],
                };
                self.t.expect("open", &Err(errno), allowed);
            }
        }
    }

    fn close(&mut self) {
        let mut p = self.sh.pool.lock().unwrap();
        if !p.is_empty() {
            let i = self.rng.index(p.len());
            p.swap_remove(i);
        }
    }

    fn dup(&mut self) {
        if let Some((fd, kind)) = self.sh.pick(&mut self.rng, None) {
            if let Ok(d) = fd.try_clone() {
                self.sh.add(d, kind);
            }
        }
    }

    fn read(&mut self) {
        let Some((fd, kind)) = self.sh.pick(&mut self.rng, None) else {
            return;
        };
        let len = self.size();
        let (addr, ours) = self.addr(len, true);
        let r = sys::raw_read(fd.as_raw_fd(), addr, len);
        match kind {
            Kind::Cfs(minor) => {
                self.t.expect("read cfs", &r, READ_ERRNOS);
                if let (Ok(n), true) = (r, ours) {
                    self.check_venus_read(minor, addr, len, n);
                }
            }
            Kind::Ctl => {
                self.t.expect("read ctl", &r, READ_ERRNOS);
                if let (Ok(n), true) = (r, ours) {
                    self.check_ctl_read(addr, n);
                }
            }
        }
    }

    /// A successful read of /dev/cfsN is one whole message: a request or a 20-byte
    /// CODA_SIGNAL with nothing but its opcode and unique set.
    fn check_venus_read(&mut self, minor: u32, addr: usize, len: usize, n: usize) {
        // SAFETY: `addr` is one of this worker's buffers, at least `len` bytes long.
        let b = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
        if !(IN_HDR_SIZE..=VC_MAXMSGSIZE).contains(&n) || n > len {
            self.t.bad(format!("read cfs{minor} returned {n} of {len}"));
            return;
        }
        let h = sys::read_struct::<InHdr>(b).unwrap();
        if h.opcode == CODA_SIGNAL {
            if n != IN_HDR_SIZE || h.pid != 0 || h.pgid != 0 || h.uid != 0 {
                self.t.bad(format!("CODA_SIGNAL of {n} bytes: {h:?}"));
            }
        } else if !is_upcall(h.opcode) {
            self.t
                .bad(format!("read cfs{minor}: opcode {} is no upcall", h.opcode));
        } else {
            self.sh.remember(minor, h.unique);
        }
        if b[n..].iter().any(|&x| x != 0xee) {
            self.t.bad(format!(
                "read cfs{minor} wrote past the {n} bytes it returned"
            ));
        }
    }

    /// A successful read of the control device is one record: header, then a downcall that
    /// `check_downcall` accepts.
    fn check_ctl_read(&mut self, addr: usize, n: usize) {
        // SAFETY: `addr` is one of this worker's buffers, at least `n` bytes long.
        let b = unsafe { core::slice::from_raw_parts(addr as *const u8, n) };
        let Some(h) = sys::read_struct::<CtlDowncall>(b) else {
            self.t.bad(format!("read ctl returned {n} bytes"));
            return;
        };
        let body = &b[size_of::<CtlDowncall>()..];
        if h.len as usize != body.len()
            || h.minor >= self.sh.devices
            || check_downcall(body).is_err()
        {
            self.t
                .bad(format!("read ctl: bad record {h:?} of {n} bytes"));
        }
    }

    /// An opcode for a message to Venus's device (a downcall, an upcall's reply, or with
    /// `any` a random number) and the size its message should have.
    fn out_opcode(&mut self, any: bool) -> (u32, usize) {
        let op = match self.rng.below(if any { 4 } else { 3 }) {
            0 => CODA_REPLACE + self.rng.below(7) as u32,
            1 => self.rng.below(u64::from(CODA_NCALLS) + 2) as u32,
            2 if any => self.rng.next() as u32,
            _ => CODA_GETATTR,
        };
        let exact = if is_downcall(op) {
            downcall_size(op)
        } else {
            OUT_HDR_SIZE + 4
        };
        (op, exact)
    }

    fn write(&mut self) {
        let Some((fd, kind)) = self.sh.pick(&mut self.rng, None) else {
            return;
        };
        // Build a message: random bytes, or a header with a chosen opcode, unique and size.
        let structured = self.rng.chance(3, 4);
        let (len, op) = if structured {
            let (op, exact) = self.out_opcode(true);
            let len = match self.rng.below(6) {
                0 => exact,
                1 => exact + 1,
                2 => exact.saturating_sub(1),
                3 => OUTPUT_ARGS_SIZE,
                4 => self
                    .rng
                    .pick(&[OUT_HDR_SIZE - 1, OUT_HDR_SIZE, VC_MAXMSGSIZE + 1, 65536]),
                _ => self.size(),
            };
            (len, op)
        } else {
            (self.size(), 0)
        };
        let (addr, ours) = self.addr(len, false);
        let mut op_written = None;
        if ours {
            // SAFETY: `addr` is one of this worker's buffers, at least `len` bytes long.
            let b = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) };
            self.rng.fill(b);
            if structured && len >= OUT_HDR_SIZE {
                let oh = OutHdr {
                    opcode: op,
                    unique: self.sh.unique(&mut self.rng),
                    result: self.rng.pick(&[0, 0, 2, -1]),
                };
                b[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
            }
            op_written = Some(b.to_vec());
        }
        let r = sys::raw_write(fd.as_raw_fd(), addr, len);
        match kind {
            Kind::Ctl => {
                // The control device takes no writes (EFAULT is the VFS's access_ok check).
                self.t
                    .expect("write ctl", &r, &[Errno::EINVAL, Errno::EFAULT]);
                if r.is_ok() {
                    self.t.bad("write ctl succeeded".into());
                }
            }
            Kind::Cfs(minor) => {
                self.t.expect(
                    "write cfs",
                    &r,
                    &[Errno::EINVAL, Errno::ESRCH, Errno::EFAULT],
                );
                if let Some(m) = op_written {
                    self.check_write(minor, &m, &r);
                }
            }
        }
    }

    /// What the protocol says of a write whose bytes we know.
    fn check_write(&mut self, minor: u32, m: &[u8], r: &sys::Ret) {
        let op = sys::read_struct::<OutHdr>(m).map(|h| h.opcode);
        let must_einval = match op {
            None => true,
            Some(op) if is_downcall(op) => check_downcall(m).is_err(),
            Some(op) => !is_upcall(op),
        };
        // No reply is longer than the largest room a caller can give.
        let must_fail = must_einval || m.len() > VC_MAXMSGSIZE;
        match r {
            Ok(n) if must_fail => self.t.bad(format!(
                "write cfs{minor} of {} bytes (opcode {op:?}) accepted ({n})",
                m.len()
            )),
            Ok(n) if *n != m.len() => self
                .t
                .bad(format!("write cfs{minor} returned {n} of {}", m.len())),
            Err(Errno::EINVAL) | Ok(_) => {}
            Err(e) if must_einval => self.t.bad(format!(
                "write cfs{minor} of {} bytes (opcode {op:?}) failed with {e}, not EINVAL",
                m.len()
            )),
            Err(_) => {}
        }
    }

    fn ioctl_cmd(&mut self) -> u32 {
        let known = [
            CIOC_KERNEL_VERSION,
            CODA_PSDEV_IOC_STATS,
            CODA_PSDEV_IOC_EXCHANGE,
            CODA_CTL_IOC_CALL,
            CODA_CTL_IOC_STATS,
        ];
        let r = &mut self.rng;
        match r.below(6) {
            0 | 1 => r.pick(&known),
            // The known numbers with one field wrong: direction, size, number or type.
            2 => r.pick(&known) ^ (1 << r.below(32)),
            3 => ioc(
                r.below(4) as u32,
                CODA_PSDEV_IOC_MAGIC,
                r.below(256) as u32,
                r.index(1 << 13),
            ),
            4 => ioc(
                r.below(4) as u32,
                u32::from(b'c'),
                r.below(256) as u32,
                r.index(64),
            ),
            _ => r.next() as u32,
        }
    }

    fn ioctl(&mut self) {
        let Some((fd, kind)) = self.sh.pick(&mut self.rng, None) else {
            return;
        };
        let cmd = self.ioctl_cmd();
        // Stats are 3.7 KB: our buffer always has room for any command's size field.
        let (arg, ours) = match self.rng.below(10) {
            0 => (self.rng.below(4096) as usize, false),
            1 | 2 => (self.sh.arena.bad(&mut self.rng, 4096), false),
            _ => {
                let p = self.buf.as_mut_ptr() as usize;
                if cmd == CODA_CTL_IOC_CALL {
                    // A call structure with good pointers into our big buffer most of the time.
                    let big = self.big.as_mut_ptr() as u64;
                    let mut c = CtlCall::read_from_bytes(&[0u8; 40][..]).unwrap();
                    c.minor = self.rng.below(u64::from(self.sh.devices) + 1) as u32;
                    c.flags = self.rng.pick(&[0, 0, CODA_CTL_ASYNC, 2]);
                    c.in_ = big;
                    c.in_len = self.rng.pick(&[20, 28, 100, 8552, 8553]);
                    c.out_cap = self.rng.pick(&[12, 64, 8552]);
                    c.out = big + 16384;
                    let req = work::request(&mut self.rng, CODA_GETATTR, 12, 0);
                    self.big[..req.len()].copy_from_slice(&req);
                    self.buf[..40].copy_from_slice(c.as_bytes());
                } else {
                    self.rng.fill(&mut self.buf[..64]);
                    // The statistics ioctl of the control device reads the minor first.
                    let m = self.rng.below(u64::from(self.sh.devices) + 1) as u32;
                    self.buf[4..8].copy_from_slice(&m.to_ne_bytes());
                }
                (p, true)
            }
        };
        let r = sys::raw_ioctl(fd.as_raw_fd(), cmd, arg);
        let known = match kind {
            Kind::Cfs(_) => [
                CIOC_KERNEL_VERSION,
                CODA_PSDEV_IOC_STATS,
                CODA_PSDEV_IOC_EXCHANGE,
            ]
            .contains(&cmd),
            Kind::Ctl => [CODA_CTL_IOC_CALL, CODA_CTL_IOC_STATS].contains(&cmd),
        };
        match kind {
            // A random exchange structure may get as far as any of its errors.
            Kind::Cfs(_) if cmd == CODA_PSDEV_IOC_EXCHANGE => {
                self.t.expect("ioctl cfs exchange", &r, EXCHANGE_ERRNOS)
            }
            Kind::Cfs(_) => self
                .t
                .expect("ioctl cfs", &r, &[Errno::ENOTTY, Errno::EFAULT]),
            Kind::Ctl => self.t.expect("ioctl ctl", &r, CTL_IOCTL_ERRNOS),
        }
        if r.is_ok() && !known {
            self.t.bad(format!("ioctl {cmd:#x} on {kind:?} succeeded"));
        }
        if r.is_err() && known && !ours && arg == 0 && r != Err(Errno::EFAULT) {
            self.t
                .bad(format!("ioctl {cmd:#x} with NULL: {r:?}, not EFAULT"));
        }
        if ours && r.is_ok() && (cmd == CODA_PSDEV_IOC_STATS || cmd == CODA_CTL_IOC_STATS) {
            let st = sys::read_struct::<PsdevStats>(&self.buf).unwrap();
            if st.version != CODA_PSDEV_STATS_VERSION {
                self.t.bad(format!("stats version {}", st.version));
            }
            if let Err(e) = sys::check_balance(&st) {
                self.t
                    .bad(format!("stats of cfs{} do not balance: {e}", st.minor));
            }
        }
        if ours && r.is_ok() && cmd == CIOC_KERNEL_VERSION {
            // An int, as Linux and NetBSD store it into the size_t.
            let v = u32::from_ne_bytes(self.buf[..4].try_into().unwrap());
            if v != CODA_KERNEL_VERSION {
                self.t.bad(format!("CIOC_KERNEL_VERSION gave {v}"));
            }
        }
    }

    /// A control call with one argument chosen from the edges; the argument checks of
    /// CODA_CTL_IOC_CALL are verified against the uapi.
    fn call(&mut self) {
        let Some((fd, _)) = self.sh.pick(&mut self.rng, Some(false)) else {
            return;
        };
        let n = self.sh.devices;
        let r = &mut self.rng;
        let minor = if r.chance(9, 10) {
            r.below(u64::from(n)) as u32
        } else {
            r.pick(&[n, n + 1, u32::MAX])
        };
        let flags = if r.chance(9, 10) {
            r.pick(&[0, 0, 0, CODA_CTL_ASYNC])
        } else {
            r.pick(&[2, 3, 0x8000_0000])
        };
        let opcode = if r.chance(9, 10) {
            r.pick(&[
                CODA_GETATTR,
                CODA_LOOKUP,
                CODA_STATFS,
                CODA_ACCESS,
                CODA_CLOSE,
                CODA_OPEN_BY_FD,
            ])
        } else {
            r.pick(&[
                0,
                1,
                17,
                21,
                CODA_SIGNAL,
                CODA_ZAPFILE,
                CODA_NCALLS,
                u32::MAX,
            ])
        };
        let reply_len = r.pick(&[12u32, 16, 64, 200]);
        let tag = r.next() as u32 & 0x7fff_ffff;
        let msg = work::request(r, opcode, reply_len, tag);
        let in_len = if r.chance(9, 10) {
            msg.len()
        } else {
            r.pick(&[0, 19, VC_MAXMSGSIZE + 1, 1 << 20])
        };
        let out_cap = if r.chance(9, 10) {
            r.pick(&[12usize, 64, 256])
        } else {
            r.pick(&[0, 11, VC_MAXMSGSIZE + 1])
        };
        self.big[..msg.len()].copy_from_slice(&msg);
        let in_ptr = if r.chance(19, 20) {
            self.big.as_ptr() as u64
        } else {
            self.sh.arena.bad(&mut self.rng, 64) as u64
        };
        let out_ptr = if self.rng.chance(19, 20) {
            self.big[16384..16384 + 256].fill(0xa5);
            self.big.as_ptr() as u64 + 16384
        } else {
            self.sh.arena.bad(&mut self.rng, 64) as u64
        };
        let mut c = CtlCall {
            minor,
            flags,
            in_: in_ptr,
            in_len: in_len as u32,
            out_cap: out_cap as u32,
            out: out_ptr,
            out_len: 0,
            unique: 0,
        };
        let res = sys::raw_ioctl(
            fd.as_raw_fd(),
            CODA_CTL_IOC_CALL,
            c.as_mut_bytes().as_mut_ptr() as usize,
        );
        self.t.expect("call", &res, CTL_IOCTL_ERRNOS);
        let is_async = flags == CODA_CTL_ASYNC;
        let must_einval = minor >= n
            || (flags & !CODA_CTL_ASYNC) != 0
            || !(IN_HDR_SIZE..=VC_MAXMSGSIZE).contains(&in_len)
            || (in_ptr == self.big.as_ptr() as u64 && !is_upcall(opcode))
            || (!is_async && !(OUT_HDR_SIZE..=VC_MAXMSGSIZE).contains(&out_cap));
        match res {
            Ok(_) if must_einval => self.t.bad(format!(
                "call accepted: minor {minor} flags {flags:#x} opcode {opcode} in_len {in_len} out_cap {out_cap}"
            )),
            Ok(_) => {
                if c.unique == 0 {
                    self.t.bad("call returned unique 0".into());
                }
                if !is_async && c.out_len as usize > out_cap {
                    self.t.bad(format!("reply of {} bytes > out_cap {out_cap}", c.out_len));
                }
            }
            Err(Errno::EINVAL) => {}
            // A bad pointer may fail before the argument checks.
            Err(Errno::EFAULT) => {}
            Err(e) if must_einval => self.t.bad(format!(
                "call with minor {minor} flags {flags:#x} opcode {opcode} in_len {in_len} out_cap {out_cap}: {e}, not EINVAL"
            )),
            Err(_) => {}
        }
    }

    fn poll(&mut self) {
        use nix::poll::PollFd;
        use nix::poll::PollFlags;
        use nix::poll::PollTimeout;
        use std::os::fd::AsFd;
        let mut keep = Vec::new();
        for _ in 0..1 + self.rng.below(4) {
            if let Some((fd, _)) = self.sh.pick(&mut self.rng, None) {
                keep.push(fd);
            }
        }
        let mut fds: Vec<_> = keep
            .iter()
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN | PollFlags::POLLOUT))
            .collect();
        let timeout = PollTimeout::from(self.rng.below(5) as u16);
        let r = nix::poll::poll(&mut fds, timeout).map(|n| n as usize);
        self.t.expect("poll", &r, &[Errno::EINTR]);
        // Both devices can always take a write: every file is ready for POLLOUT at once.
        for p in &fds {
            let ev = p.revents().unwrap_or(PollFlags::empty());
            if r.is_ok() && !ev.contains(PollFlags::POLLOUT) {
                self.t.bad(format!("poll: revents {ev:?} without POLLOUT"));
            }
        }
    }

    fn epoll(&mut self) {
        use nix::sys::epoll::Epoll;
        use nix::sys::epoll::EpollCreateFlags;
        use nix::sys::epoll::EpollEvent;
        use nix::sys::epoll::EpollFlags;
        use nix::sys::epoll::EpollTimeout;
        let Ok(ep) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else {
            return;
        };
        let mut held = Vec::new();
        for i in 0..1 + self.rng.below(3) {
            if let Some((fd, _)) = self.sh.pick(&mut self.rng, None) {
                let mut fl = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT;
                if self.rng.chance(1, 3) {
                    fl |= EpollFlags::EPOLLET;
                }
                if self.rng.chance(1, 4) {
                    fl |= EpollFlags::EPOLLONESHOT;
                }
                // EEXIST for a file picked twice is expected.
                let _ = ep.add(&*fd, EpollEvent::new(fl, i));
                held.push(fd);
            }
        }
        let mut ev = [EpollEvent::empty(); 4];
        let r = ep.wait(&mut ev, EpollTimeout::from(self.rng.below(5) as u16));
        self.t.expect("epoll_wait", &r, &[Errno::EINTR]);
        // Sometimes the files go away while the epoll still watches them.
        if self.rng.chance(1, 2) {
            drop(held);
            let _ = ep.wait(&mut ev, EpollTimeout::ZERO);
        }
    }

    /// Plays Venus for one message on a /dev/cfsN from the pool, answering it well, twice,
    /// too long, or not at all.
    fn serve(&mut self) {
        let Some((fd, kind)) = self.sh.pick(&mut self.rng, Some(true)) else {
            return;
        };
        let Kind::Cfs(minor) = kind else { return };
        let mut p = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&*fd),
            nix::poll::PollFlags::POLLIN,
        )];
        if !matches!(nix::poll::poll(&mut p, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0) {
            return;
        }
        self.buf.fill(0xee);
        let r = sys::raw_read(
            fd.as_raw_fd(),
            self.buf.as_mut_ptr() as usize,
            VC_MAXMSGSIZE,
        );
        self.t.expect("serve read", &r, READ_ERRNOS);
        let Ok(n) = r else { return };
        let addr = self.buf.as_mut_ptr() as usize;
        self.check_venus_read(minor, addr, VC_MAXMSGSIZE, n);
        let Some(h) = sys::read_struct::<InHdr>(&self.buf) else {
            return;
        };
        if h.opcode == CODA_SIGNAL || n < IN_HDR_SIZE + 8 {
            return;
        }
        let want =
            u32::from_ne_bytes(self.buf[IN_HDR_SIZE..IN_HDR_SIZE + 4].try_into().unwrap()) as usize;
        let times = match self.rng.below(10) {
            0 => 0,
            1 => 2,
            _ => 1,
        };
        let len = if self.rng.chance(1, 10) {
            300
        } else {
            want.clamp(OUT_HDR_SIZE, VC_MAXMSGSIZE)
        };
        let mut reply = vec![0u8; len];
        let oh = OutHdr {
            opcode: h.opcode,
            unique: h.unique,
            result: 0,
        };
        reply[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
        for _ in 0..times {
            let r = sys::raw_write(fd.as_raw_fd(), reply.as_ptr() as usize, reply.len());
            self.t
                .expect("serve write", &r, &[Errno::ESRCH, Errno::EINVAL]);
        }
    }

    /// CODA_PSDEV_IOC_EXCHANGE with records like those `write` makes and replies to uniques
    /// read, sometimes a broken frame or buffer: every record's result and every message
    /// read is checked against the protocol.
    fn exchange(&mut self) {
        let Some((fd, kind)) = self.sh.pick(&mut self.rng, Some(true)) else {
            return;
        };
        let Kind::Cfs(minor) = kind else { return };
        const READ_AT: usize = 32768;
        let mut write = Vec::new();
        let mut msgs = Vec::new();
        for _ in 0..self.rng.below(5) {
            let (op, exact) = self.out_opcode(false);
            let len = match self.rng.below(4) {
                0 => exact,
                1 => self.rng.pick(&[0, 4, OUT_HDR_SIZE - 1, VC_MAXMSGSIZE + 1]),
                2 => exact + self.rng.index(3) - 1,
                _ => self.size().min(READ_AT / 4),
            };
            let mut m = vec![0u8; len];
            self.rng.fill(&mut m);
            if len >= OUT_HDR_SIZE {
                let oh = OutHdr {
                    opcode: op,
                    unique: self.sh.unique(&mut self.rng),
                    result: self.rng.pick(&[0, 0, 2, -1]),
                };
                m[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
            }
            let at = write.len();
            write.resize(at + record_size(len), 0);
            put_record(&mut write[at..], &m).unwrap();
            // A result the driver must overwrite.
            write[at + 4..at + 8].copy_from_slice(&0x5a5a_i32.to_ne_bytes());
            msgs.push((at, m));
        }
        // Now and then a frame that lies about its length, or a truncated tail.
        match self.rng.below(12) {
            0 => write.extend_from_slice(&u32::MAX.to_ne_bytes()),
            1 => write.extend_from_slice(&[0u8; RECORD_HDR_SIZE + 3][..RECORD_HDR_SIZE]),
            _ => {}
        }
        if let [.., (at, _)] = msgs.as_slice() {
            if self.rng.chance(1, 12) {
                let at = *at;
                write[at..at + 4].copy_from_slice(&(READ_AT as u32).to_ne_bytes());
                msgs.pop();
            }
        }
        let write_len = write.len().min(READ_AT);
        self.big[..write_len].copy_from_slice(&write[..write_len]);
        let read_size = self.rng.pick(&[
            0,
            RECORD_HDR_SIZE,
            RECORD_HDR_SIZE + IN_HDR_SIZE,
            100,
            record_size(VC_MAXMSGSIZE),
            self.big.len() - READ_AT,
        ]);
        self.big[READ_AT..].fill(0xee);
        let base = self.big.as_mut_ptr() as usize;
        let mut x = PsdevExchange {
            write_buf: base as u64,
            write_size: write_len as u32,
            write_consumed: 0,
            read_buf: (base + READ_AT) as u64,
            read_size: read_size as u32,
            read_consumed: 0,
        };
        let bad_buffer = self.rng.chance(1, 10);
        if bad_buffer {
            let bad = self.sh.arena.bad(&mut self.rng, 4096) as u64;
            if self.rng.chance(1, 2) {
                x.write_buf = bad;
            } else {
                x.read_buf = bad;
            }
        }
        let r = sys::raw_ioctl(
            fd.as_raw_fd(),
            CODA_PSDEV_IOC_EXCHANGE,
            &mut x as *mut PsdevExchange as usize,
        );
        self.t.expect("exchange", &r, EXCHANGE_ERRNOS);
        let done = x.write_consumed as usize;
        if done > write_len || x.read_consumed > x.read_size {
            self.t.bad(format!(
                "exchange on cfs{minor}: counts past the sizes: {x:?}"
            ));
            return;
        }
        if r.is_ok() && done != write_len {
            self.t.bad(format!(
                "exchange on cfs{minor} succeeded with {done} of {write_len} written"
            ));
        }
        if x.write_buf == base as u64 {
            for (at, m) in msgs.iter().filter(|(at, _)| *at < done) {
                let b = &self.big[*at..];
                let result = i32::from_ne_bytes(b[4..8].try_into().unwrap());
                self.check_record_result(minor, m, result);
            }
        }
        if x.read_buf == (base + READ_AT) as u64 {
            self.check_exchange_reads(minor, READ_AT, x.read_consumed as usize, read_size);
        }
    }

    /// The result stored in a written record: what the same write(2) would have returned.
    fn check_record_result(&mut self, minor: u32, m: &[u8], result: i32) {
        let r = if result == 0 {
            Ok(m.len())
        } else {
            Err(Errno::from_raw(-result))
        };
        if !matches!(r, Ok(_) | Err(Errno::EINVAL | Errno::ESRCH | Errno::EFAULT)) {
            self.t.bad(format!(
                "exchange on cfs{minor}: a record's result is {result}"
            ));
        }
        self.check_write(minor, m, &r);
    }

    /// The records an exchange read: whole messages, each as read(2) returns one, and
    /// nothing written past them.
    fn check_exchange_reads(&mut self, minor: u32, at: usize, n: usize, room: usize) {
        let mut bad = Vec::new();
        for r in records(&self.big[at..at + n]) {
            let Ok((rec, m)) = r else {
                bad.push(format!("records of {n} bytes do not parse: {r:?}"));
                break;
            };
            let len = m.len();
            if rec.result != 0 || !(IN_HDR_SIZE..=VC_MAXMSGSIZE).contains(&len) {
                bad.push(format!("record {rec:?}"));
            } else if let Some(h) = sys::read_struct::<InHdr>(m) {
                if h.opcode == CODA_SIGNAL {
                    if len != IN_HDR_SIZE || h.pid != 0 || h.pgid != 0 || h.uid != 0 {
                        bad.push(format!("CODA_SIGNAL of {len} bytes: {h:?}"));
                    }
                } else if !is_upcall(h.opcode) {
                    bad.push(format!("opcode {} is no upcall", h.opcode));
                } else {
                    self.sh.remember(minor, h.unique);
                }
            }
        }
        // The padding inside is left as it was, and nothing past read_consumed is written.
        if self.big[at + n..at + room].iter().any(|&x| x != 0xee) {
            bad.push(format!("bytes written past read_consumed {n}"));
        }
        for b in bad {
            self.t.bad(format!("exchange read on cfs{minor}: {b}"));
        }
    }

    /// A forked child makes an upcall; it is killed, interrupted or stopped while it waits.
    fn fork_caller(&mut self) {
        let msg = work::request(&mut self.rng, CODA_GETATTR, 16, 0);
        let mut out = vec![0u8; 64];
        let minor = self.rng.below(u64::from(self.sh.devices)) as u32;
        let mut c = CtlCall {
            minor,
            flags: 0,
            in_: msg.as_ptr() as u64,
            in_len: msg.len() as u32,
            out_cap: out.len() as u32,
            out: out.as_mut_ptr() as u64,
            out_len: 0,
            unique: 0,
        };
        let ctl = self.ctl.as_raw_fd();
        let arg = c.as_mut_bytes().as_mut_ptr() as usize;
        // SAFETY: the child only makes raw system calls (ioctl, _exit) on memory prepared
        // before the fork, which is async-signal-safe in a multi-threaded parent.
        let pid = match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // SAFETY: see above.
                unsafe {
                    let r = libc::ioctl(ctl, CODA_CTL_IOC_CALL as libc::c_ulong, arg);
                    libc::_exit(if r == 0 { 0 } else { 1 });
                }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => child,
            Err(_) => return,
        };
        std::thread::sleep(Duration::from_micros(self.rng.below(20_000)));
        use nix::sys::signal::kill;
        use nix::sys::signal::Signal;
        match self.rng.below(5) {
            0 => {
                let _ = kill(pid, Signal::SIGUSR1);
            }
            1 => {
                let _ = kill(pid, Signal::SIGSTOP);
                std::thread::sleep(Duration::from_micros(self.rng.below(5000)));
                let _ = kill(pid, Signal::SIGCONT);
            }
            _ => {}
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        self.t.note("fork caller", &Ok(0));
    }

    fn fdinfo(&mut self) {
        let Some((fd, kind)) = self.sh.pick(&mut self.rng, None) else {
            return;
        };
        let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
            .unwrap_or_default();
        let key = match kind {
            Kind::Cfs(_) => "coda_minor:",
            Kind::Ctl => "coda_devices:",
        };
        if !s.contains(key) {
            self.t.bad(format!("fdinfo of {kind:?} lacks {key}: {s:?}"));
        }
    }

    fn stats(&mut self) {
        let minor = self.rng.below(u64::from(self.sh.devices)) as u32;
        match coda_dev::ctl_stats(self.ctl.as_fd(), minor) {
            Ok(st) => {
                if let Err(e) = sys::check_balance(&st) {
                    self.t
                        .bad(format!("stats of cfs{minor} do not balance: {e}"));
                }
                if st.minor != minor {
                    self.t
                        .bad(format!("stats of cfs{minor} say minor {}", st.minor));
                }
            }
            Err(e) => self.t.bad(format!("CODA_CTL_IOC_STATS: {e}")),
        }
    }
}

pub fn run(a: &FuzzArgs, rep: &mut Report) {
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "# psdev-fuzz: seed {seed} ({} threads, {} s); repeat with --seed {seed}",
        a.threads, a.secs
    );
    sys::install_signal_handlers();
    let devices = sys::devices();
    let timeout = sys::timeout_secs();
    let before: Vec<_> = (0..devices).map(sys::stats).collect();
    let sh = Arc::new(Shared {
        devices,
        pool: Mutex::new(Vec::new()),
        uniques: Mutex::new(VecDeque::new()),
        highest_unique: AtomicU32::new(0),
        arena: Arena::new(),
        stop: AtomicBool::new(false),
    });
    let targets = work::Targets::new();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Tally)>();
    let mut handles = Vec::new();
    for id in 0..a.threads {
        let (sh, targets, done_tx) = (sh.clone(), targets.clone(), done_tx.clone());
        let ctl = match sys::open_dev(sys::CTL_PATH, false) {
            Ok(f) => f,
            Err(e) => {
                rep.check("fuzz: open the control device", Err(e.to_string()));
                return;
            }
        };
        let rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        handles.push(std::thread::spawn(move || {
            let token = targets.enter();
            let mut w = Worker {
                id,
                rng,
                sh: sh.clone(),
                t: Tally::default(),
                buf: vec![0u8; 16384],
                big: vec![0u8; 65536 + 16384],
                ctl,
            };
            while !sh.stop.load(Ordering::Relaxed) {
                w.step();
            }
            targets.leave(token);
            let _ = done_tx.send((w.id, w.t));
        }));
    }
    drop(done_tx);
    let sig = work::Signaller::start(targets.clone(), 2000, seed);
    std::thread::sleep(Duration::from_secs(a.secs));
    sh.stop.store(true, Ordering::SeqCst);

    // Every thread must come back: a blocked upcall ends by its timeout at the latest.
    let limit = Duration::from_secs(if timeout == 0 { 60 } else { timeout + 30 });
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let mut finished = 0;
    while finished < a.threads {
        let left = limit.saturating_sub(t0.elapsed());
        match done_rx.recv_timeout(left) {
            Ok((_, t)) => {
                finished += 1;
                for (k, v) in t.counts {
                    *tally.counts.entry(k).or_default() += v;
                }
                tally.violations.extend(t.violations);
            }
            Err(_) => break,
        }
    }
    let sent = sig.stop();
    let hang = if finished < a.threads {
        let mut s = format!(
            "{} of {} threads still busy {:?} after stop",
            a.threads - finished,
            a.threads,
            limit
        );
        if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
            for e in rd.flatten() {
                let st = std::fs::read_to_string(e.path().join("stack")).unwrap_or_default();
                let _ = write!(s, "\ntask {:?}:\n{st}", e.file_name());
            }
        }
        Err(s)
    } else {
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    };
    let hung = hang.is_err();
    rep.check("fuzz: every thread returns after stop (no hang)", hang);
    if hung {
        return;
    }
    let steps: u64 = tally.counts.values().sum();
    println!("# {steps} calls, {sent} signals sent; results:");
    for (k, v) in &tally.counts {
        println!("#   {k}: {v}");
    }
    rep.check(
        "fuzz: every result is one the uapi allows",
        if tally.violations.is_empty() {
            Ok(())
        } else {
            Err(tally.violations.join("\n"))
        },
    );
    // Venus goes away: every device must be quiet and balanced.
    sh.pool.lock().unwrap().clear();
    let mut bad = Vec::new();
    for m in 0..devices {
        let quiet = sys::wait_for(Duration::from_secs(5), || {
            sys::stats(m).is_ok_and(|s| s.outstanding == 0)
        });
        match sys::stats(m) {
            Ok(st) => {
                println!("# cfs{m}: {}", sys::describe(&st));
                if let Err(e) = sys::check_quiet(&st) {
                    bad.push(format!("cfs{m}: {e} (waited: {quiet})"));
                }
                if let Some(Ok(b)) = before.get(m as usize) {
                    if st.opens == b.opens && m == 0 {
                        bad.push("cfs0 was never opened by the fuzzer".into());
                    }
                }
            }
            Err(e) => bad.push(e),
        }
    }
    rep.check(
        "fuzz: after Venus closes, nothing outstanding and the counters balance",
        sys::all_good(bad),
    );
}
