// SPDX-License-Identifier: GPL-2.0

//! The system interfaces the tests need beyond what nix and rustix wrap safely: the driver's
//! ioctls, reads and writes at deliberately bad addresses, the signal handler, forked
//! children, and what /proc says about a blocked task. Every `unsafe` of the harness is here.

use std::ffi::CStr;
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use coda_msg::CtlCall;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::mman::MapFlags;
use nix::sys::mman::ProtFlags;
use nix::sys::signal::SaFlags;
use nix::sys::signal::SigAction;
use nix::sys::signal::SigHandler;
use nix::sys::signal::SigSet;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::WaitPidFlag;
use nix::sys::wait::WaitStatus;
use nix::unistd::ForkResult;
use nix::unistd::Pid;
use rustix::process::Gid;
use rustix::process::Uid;

static SIGNALS_HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_sig: libc::c_int) {
    SIGNALS_HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// How many SIGUSR1/SIGUSR2 the process has handled so far.
pub fn signals_handled() -> usize {
    SIGNALS_HANDLED.load(Ordering::SeqCst)
}

/// Installs a counting handler for SIGUSR1 without SA_RESTART, so that it ends a blocking
/// read or upcall with EINTR, and for SIGUSR2 with SA_RESTART, so that a read the driver
/// lets restart does restart.
pub fn install_signal_handlers() -> Result<(), Errno> {
    for (sig, flags) in [
        (Signal::SIGUSR1, SaFlags::empty()),
        (Signal::SIGUSR2, SaFlags::SA_RESTART),
    ] {
        let sa = SigAction::new(SigHandler::Handler(count_signal), flags, SigSet::empty());
        // SAFETY: the handler only increments an atomic, which is async-signal-safe.
        unsafe { nix::sys::signal::sigaction(sig, &sa) }?;
    }
    Ok(())
}

pub use coda_dev::ctl_call;
pub use coda_dev::ctl_stats;
pub use coda_dev::exchange;
pub use coda_dev::kernel_version;
pub use coda_dev::psdev_stats;

/// `ioctl(fd, cmd, arg)`.
///
/// # Safety
///
/// `arg` must be null, point at no mapping, or point at memory of ours that the command may
/// read and write for its encoded size.
unsafe fn ioctl_raw<T>(fd: BorrowedFd<'_>, cmd: u32, arg: *mut T) -> Result<libc::c_int, Errno> {
    // SAFETY: forwarded from the caller's contract.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), cmd as libc::Ioctl, arg) })
}

/// An ioctl with a null argument, for commands the device must not know.
pub fn ioctl_null(fd: BorrowedFd<'_>, cmd: u32) -> Result<libc::c_int, Errno> {
    // SAFETY: with a null argument the kernel cannot touch our memory.
    unsafe { ioctl_raw(fd, cmd, std::ptr::null_mut::<u8>()) }
}

/// `CODA_PSDEV_IOC_EXCHANGE` with an argument address that is not ours.
pub fn exchange_bad_arg(fd: BorrowedFd<'_>, bad: BadBuf<'_>) -> Result<(), Errno> {
    let addr = bad.addr();
    // SAFETY: `addr` is unmapped, PROT_NONE, or a guarded page's tail that `bad` borrows
    // mutably: the kernel can write nothing that Rust code also refers to.
    unsafe { ioctl_raw(fd, coda_msg::CODA_PSDEV_IOC_EXCHANGE, addr as *mut u8) }.map(drop)
}

/// An address below mmap_min_addr: never mapped, so any access faults.
const LOW_ADDR: usize = 1;

/// Two pages: the first readable and writable, the second PROT_NONE, so that a buffer
/// ending in the first page and running into the second faults part way through a copy.
/// PROT_NONE rather than munmap: the range stays ours, so no other thread's mapping can
/// land there while the kernel copies.
pub struct GuardedPage {
    base: NonNull<libc::c_void>,
    page: usize,
}

impl GuardedPage {
    pub fn new() -> Result<Self, Errno> {
        let page = rustix::param::page_size();
        let len = NonZeroUsize::new(2 * page).ok_or(Errno::EINVAL)?;
        // SAFETY: a fresh anonymous private mapping aliases nothing.
        let base = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }?;
        let guard = Self { base, page };
        let second =
            NonNull::new(guard.inaccessible() as *mut libc::c_void).ok_or(Errno::EINVAL)?;
        // SAFETY: the second page is part of our own mapping and nothing refers into it.
        unsafe { nix::sys::mman::mprotect(second, page, ProtFlags::PROT_NONE) }?;
        Ok(guard)
    }

    /// The first byte of the inaccessible page.
    pub fn inaccessible(&self) -> usize {
        self.base.as_ptr() as usize + self.page
    }

    /// An address whose first `valid` bytes are accessible and the rest are not.
    pub fn straddle(&self, valid: usize) -> usize {
        self.inaccessible() - valid.min(self.page)
    }

    /// The last `n` bytes of the accessible page.
    pub fn tail(&self, n: usize) -> Vec<u8> {
        // SAFETY: the first page is readable and ours; the kernel wrote it only during a
        // system call that has returned.
        let first =
            unsafe { std::slice::from_raw_parts(self.base.as_ptr().cast::<u8>(), self.page) };
        first[self.page - n.min(self.page)..].to_vec()
    }

    /// Puts `bytes` at the end of the accessible page, just before the guard.
    pub fn put_tail(&mut self, bytes: &[u8]) {
        // SAFETY: the first page is readable and writable, ours alone, and `&mut self`
        // makes this the only reference into it.
        let first =
            unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().cast::<u8>(), self.page) };
        let start = self.page - bytes.len().min(self.page);
        first[start..].copy_from_slice(&bytes[..self.page - start]);
    }
}

impl Drop for GuardedPage {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers into it any more.
        let _ = unsafe { nix::sys::mman::munmap(self.base, 2 * self.page) };
    }
}

/// A buffer address a read or write must fail on with EFAULT.
pub enum BadBuf<'a> {
    /// Address 1: below every mapping.
    Low,
    /// The PROT_NONE page.
    Guard(&'a mut GuardedPage),
    /// `usize` accessible bytes, then the PROT_NONE page.
    Straddle(&'a mut GuardedPage, usize),
}

impl BadBuf<'_> {
    pub fn addr(&self) -> usize {
        match self {
            BadBuf::Low => LOW_ADDR,
            BadBuf::Guard(g) => g.inaccessible(),
            BadBuf::Straddle(g, valid) => g.straddle(*valid),
        }
    }
}

/// `read(fd, bad, len)`.
pub fn read_into_bad(fd: BorrowedFd<'_>, bad: BadBuf<'_>, len: usize) -> Result<usize, Errno> {
    let addr = bad.addr();
    // SAFETY: `addr` is unmapped, PROT_NONE, or the tail of a guarded page that `bad`
    // borrows mutably: the kernel can write nothing that Rust code also refers to.
    let n = unsafe { libc::read(fd.as_raw_fd(), addr as *mut libc::c_void, len) };
    Errno::result(n).map(|n| n as usize)
}

/// `write(fd, bad, len)`.
pub fn write_from_bad(fd: BorrowedFd<'_>, bad: BadBuf<'_>, len: usize) -> Result<usize, Errno> {
    let addr = bad.addr();
    // SAFETY: write(2) only reads the buffer; an address that is not ours faults in the
    // kernel and returns EFAULT.
    let n = unsafe { libc::write(fd.as_raw_fd(), addr as *const libc::c_void, len) };
    Errno::result(n).map(|n| n as usize)
}

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(Signal),
}

/// Forks a child that runs `f` and exits with its result.
///
/// # Safety
///
/// The process may have other threads, so `f` may only make async-signal-safe calls: no
/// allocation, no locks, no stdio.
unsafe fn fork_run(f: impl FnOnce() -> i32) -> Result<Pid, Errno> {
    // SAFETY: the child only runs `f` (the caller's promise) and `_exit`.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            let code = f();
            // SAFETY: _exit ends the child without running Rust or C library clean-up, which
            // might take locks that another thread held at the fork.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

/// Waits for `pid` to end, for at most `within`.
pub fn wait_child(pid: Pid, within: Duration) -> Result<ChildEnd, String> {
    let end = Instant::now() + within;
    loop {
        match nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ChildEnd::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ChildEnd::Signaled(sig)),
            Ok(_) => {}
            Err(e) => return Err(format!("waitpid {pid}: {e}")),
        }
        if Instant::now() >= end {
            return Err(format!("child {pid} still running after {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A forked child, killed and reaped if a test fails before it ended.
pub struct Child(Option<Pid>);

impl Child {
    pub fn new(pid: Pid) -> Self {
        Self(Some(pid))
    }

    pub fn pid(&self) -> Pid {
        self.0.unwrap_or(Pid::from_raw(0))
    }

    /// Waits for the child to end and reaps it.
    pub fn ended(&mut self, within: Duration) -> Result<ChildEnd, String> {
        let end = wait_child(self.pid(), within)?;
        self.0 = None;
        Ok(end)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// Child exit codes above every errno: a setup step failed before the open.
const SETUP_FAILED: i32 = 200;

/// How an open attempted in a child ended.
fn open_result(end: ChildEnd) -> Result<Result<(), Errno>, String> {
    match end {
        ChildEnd::Exited(0) => Ok(Ok(())),
        ChildEnd::Exited(c) if c >= SETUP_FAILED => Err(format!(
            "the child's setup step {} failed",
            c - SETUP_FAILED
        )),
        ChildEnd::Exited(c) => Ok(Err(Errno::from_raw(c))),
        ChildEnd::Signaled(s) => Err(format!("the child died of {s}")),
    }
}

/// The exit code for an open: 0 on success, else the errno.
fn try_open(path: &CStr) -> i32 {
    match nix::fcntl::open(path, OFlag::O_RDWR, Mode::empty()) {
        Ok(_fd) => 0,
        Err(e) => e as i32,
    }
}

/// Opens `path` read-write in a child running as uid and gid 65534 with no groups, which
/// drops every capability.
pub fn open_as_nobody(path: &CStr) -> Result<Result<(), Errno>, String> {
    let nobody = 65534;
    let (gid, uid) = (Gid::from_raw(nobody), Uid::from_raw(nobody));
    let child = || {
        if rustix::thread::set_thread_groups(&[]).is_err() {
            return SETUP_FAILED + 1;
        }
        if rustix::thread::set_thread_res_gid(gid, gid, gid).is_err() {
            return SETUP_FAILED + 2;
        }
        if rustix::thread::set_thread_res_uid(uid, uid, uid).is_err() {
            return SETUP_FAILED + 3;
        }
        try_open(path)
    };
    // SAFETY: the child makes raw setgroups/setresgid/setresuid system calls (for this
    // thread only, which is the child's only thread) and an open: all async-signal-safe.
    let pid = unsafe { fork_run(child) }.map_err(|e| format!("fork: {e}"))?;
    open_result(wait_child(pid, Duration::from_secs(10))?)
}

/// Opens `path` in a child that moved into a new user namespace: still uid 0 to the file
/// system, but without capabilities in the initial namespace.
pub fn open_in_user_ns(path: &CStr) -> Result<Result<(), Errno>, String> {
    let child = || {
        if nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_err() {
            return SETUP_FAILED + 1;
        }
        try_open(path)
    };
    // SAFETY: the child makes an unshare and an open system call only.
    let pid = unsafe { fork_run(child) }.map_err(|e| format!("fork: {e}"))?;
    open_result(wait_child(pid, Duration::from_secs(10))?)
}

/// Opens `path` in a grandchild that lives in a new pid namespace (as root with every
/// capability).
pub fn open_in_pid_ns(path: &CStr) -> Result<Result<(), Errno>, String> {
    let child = || {
        if nix::sched::unshare(CloneFlags::CLONE_NEWPID).is_err() {
            return SETUP_FAILED + 1;
        }
        // SAFETY: the grandchild only makes an open system call.
        let Ok(grandchild) = (unsafe { fork_run(|| try_open(path)) }) else {
            return SETUP_FAILED + 2;
        };
        match nix::sys::wait::waitpid(grandchild, None) {
            Ok(WaitStatus::Exited(_, code)) => code,
            _ => SETUP_FAILED + 3,
        }
    };
    // SAFETY: the child makes unshare, fork and waitpid system calls only.
    let pid = unsafe { fork_run(child) }.map_err(|e| format!("fork: {e}"))?;
    open_result(wait_child(pid, Duration::from_secs(10))?)
}

/// Forks a child that makes the control call `c` on `ctl` and exits with 0 or the errno.
/// The buffers `c` points at are the caller's; the child has its own copy of them.
pub fn fork_ctl_call(ctl: BorrowedFd<'_>, c: &CtlCall) -> Result<Pid, Errno> {
    let mut c = *c;
    let child = || {
        // SAFETY: the child's address space is a copy of ours, so the buffers `c` points at
        // are valid there and used by nothing else.
        match unsafe { ctl_call(ctl, &mut c) } {
            Ok(()) => 0,
            Err(e) => e as i32,
        }
    };
    // SAFETY: the child makes one ioctl system call.
    unsafe { fork_run(child) }
}

/// Forks a Venus that opens `path` and reads messages, never answering, until it is killed.
pub fn fork_silent_venus(path: &CStr) -> Result<Pid, Errno> {
    let child = || {
        let Ok(fd) = nix::fcntl::open(path, OFlag::O_RDWR, Mode::empty()) else {
            return SETUP_FAILED + 1;
        };
        let mut buf = [0u8; coda_msg::VC_MAXMSGSIZE];
        loop {
            if let Err(e) = nix::unistd::read(&fd, &mut buf) {
                if e != Errno::EINTR {
                    return e as i32;
                }
            }
        }
    };
    // SAFETY: the child makes open and read system calls only, into a buffer on its stack.
    unsafe { fork_run(child) }
}

/// Whether the task at `dir` (`/proc/<pid>` or `/proc/self/task/<tid>`) sleeps inside one of
/// the system calls `nrs`.
pub fn sleeping_in(dir: &str, nrs: &[i64]) -> bool {
    let Ok(sys) = std::fs::read_to_string(format!("{dir}/syscall")) else {
        return false;
    };
    let in_call = sys
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<i64>().ok())
        .is_some_and(|n| nrs.contains(&n));
    let Ok(stat) = std::fs::read_to_string(format!("{dir}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    in_call && matches!(state, Some("S") | Some("D"))
}

/// Waits until the task at `dir` sleeps in one of the system calls `nrs`.
pub fn wait_sleeping_in(dir: &str, nrs: &[i64], within: Duration) -> Result<(), String> {
    crate::check::wait_until(&format!("{dir} sleeps in syscall {nrs:?}"), within, || {
        Ok(sleeping_in(dir, nrs))
    })
}

pub const SYS_READ: i64 = libc::SYS_read;
pub const SYS_IOCTL: i64 = libc::SYS_ioctl;
/// Whichever of these the C library uses for poll(2) and epoll_wait(2).
pub const SYS_POLLS: [i64; 5] = [
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];

/// One page of anonymous memory registered with userfaultfd for missing pages: the first
/// access to it, the kernel's own copies included, blocks until [`UffdPage::resolve`]
/// maps it (a copy that stalls as long as the test wants).
pub struct UffdPage {
    uffd: std::os::fd::OwnedFd,
    base: NonNull<libc::c_void>,
    page: usize,
}

// SAFETY: the mapping is only touched through `&self` methods that copy out of it after
// the faulting system call returned, and the fd is an ordinary file descriptor.
unsafe impl Send for UffdPage {}
// SAFETY: as above.
unsafe impl Sync for UffdPage {}

impl UffdPage {
    pub fn new() -> Result<Self, Errno> {
        use linux_raw_sys::general::uffdio_api;
        use linux_raw_sys::general::uffdio_range;
        use linux_raw_sys::general::uffdio_register;
        use rustix::mm::UserfaultfdFlags;
        use std::os::fd::AsFd;
        // SAFETY: creates a new descriptor; nothing of ours is registered with it yet.
        let uffd = unsafe {
            rustix::mm::userfaultfd(UserfaultfdFlags::CLOEXEC | UserfaultfdFlags::NONBLOCK)
        }
        .map_err(|e| Errno::from_raw(e.raw_os_error()))?;
        let mut api = uffdio_api {
            api: linux_raw_sys::general::UFFD_API as u64,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes a `struct uffdio_api`, which `api` is.
        unsafe { ioctl_raw(uffd.as_fd(), linux_raw_sys::ioctl::UFFDIO_API, &mut api) }?;
        let page = rustix::param::page_size();
        let len = NonZeroUsize::new(page).ok_or(Errno::EINVAL)?;
        // SAFETY: a fresh anonymous private mapping aliases nothing.
        let base = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }?;
        let this = Self { uffd, base, page };
        let mut reg = uffdio_register {
            range: uffdio_range {
                start: base.as_ptr() as u64,
                len: page as u64,
            },
            mode: linux_raw_sys::general::UFFDIO_REGISTER_MODE_MISSING as u64,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes a `struct uffdio_register`; the range
        // is our own fresh mapping.
        unsafe {
            ioctl_raw(
                this.uffd.as_fd(),
                linux_raw_sys::ioctl::UFFDIO_REGISTER,
                &mut reg,
            )
        }?;
        Ok(this)
    }

    pub fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Waits until something faults on the page.
    pub fn wait_fault(&self, within: Duration) -> Result<(), String> {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.uffd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(within.as_millis()).unwrap_or(u16::MAX);
        match nix::poll::poll(&mut fds, ms) {
            Ok(1) => {}
            Ok(_) => return Err(format!("no fault on the page within {within:?}")),
            Err(e) => return Err(format!("poll on the userfaultfd: {e}")),
        }
        let mut msg = [0u8; std::mem::size_of::<linux_raw_sys::general::uffd_msg>()];
        let n = nix::unistd::read(self.uffd.as_fd(), &mut msg)
            .map_err(|e| format!("read of the userfaultfd: {e}"))?;
        if n != msg.len() || u32::from(msg[0]) != linux_raw_sys::general::UFFD_EVENT_PAGEFAULT {
            return Err(format!("unexpected userfaultfd event {msg:?}"));
        }
        Ok(())
    }

    /// Maps a zero page there: the stalled access goes on.
    pub fn resolve(&self) -> Result<(), Errno> {
        use std::os::fd::AsFd;
        let mut z = linux_raw_sys::general::uffdio_zeropage {
            range: linux_raw_sys::general::uffdio_range {
                start: self.addr() as u64,
                len: self.page as u64,
            },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: UFFDIO_ZEROPAGE reads and writes a `struct uffdio_zeropage`; the range
        // is ours and registered.
        unsafe {
            ioctl_raw(
                self.uffd.as_fd(),
                linux_raw_sys::ioctl::UFFDIO_ZEROPAGE,
                &mut z,
            )
        }
        .map(drop)
    }

    /// `read(2)` of `fd` into the page.
    pub fn read_from(&self, fd: BorrowedFd<'_>) -> Result<usize, Errno> {
        // SAFETY: the page is ours, writable, and no Rust reference points into it.
        Errno::result(unsafe { libc::read(fd.as_raw_fd(), self.base.as_ptr(), self.page) })
            .map(|n| n as usize)
    }

    /// The first `n` bytes of the page, once the read that filled it has returned.
    pub fn contents(&self, n: usize) -> Vec<u8> {
        // SAFETY: the page is mapped and readable; the kernel wrote it only during a
        // system call that has returned.
        let p = unsafe { std::slice::from_raw_parts(self.base.as_ptr().cast::<u8>(), self.page) };
        p[..n.min(self.page)].to_vec()
    }
}

impl Drop for UffdPage {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers into it any more.
        let _ = unsafe { nix::sys::mman::munmap(self.base, self.page) };
    }
}
