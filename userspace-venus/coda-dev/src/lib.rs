// SPDX-License-Identifier: GPL-2.0

//! The ioctls of `/dev/cfsN` and `/dev/coda_ctl` (uapi/coda_psdev.h and `<linux/coda.h>`)
//! and the two ways to mount Coda on a device, in one place for the Venus stub, the
//! benchmark, the control tool, the harness and the fuzzer. Errors are the kernel's errno.

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;

use coda_msg::CodaMountData;
use coda_msg::CtlCall;
use coda_msg::PsdevExchange;
use coda_msg::PsdevStats;
use nix::errno::Errno;
use rustix::mount::fsconfig_create;
use rustix::mount::fsconfig_set_fd;
use rustix::mount::fsmount;
use rustix::mount::fsopen;
use rustix::mount::move_mount;
use rustix::mount::FsMountFlags;
use rustix::mount::FsOpenFlags;
use rustix::mount::MountAttrFlags;
use rustix::mount::MoveMountFlags;
use zerocopy::FromZeros;

nix::ioctl_readwrite_bad!(ioc_kernel_version, coda_msg::CIOC_KERNEL_VERSION, u64);
nix::ioctl_readwrite_bad!(ioc_psdev_stats, coda_msg::CODA_PSDEV_IOC_STATS, PsdevStats);
nix::ioctl_readwrite_bad!(
    ioc_exchange,
    coda_msg::CODA_PSDEV_IOC_EXCHANGE,
    PsdevExchange
);
nix::ioctl_readwrite_bad!(ioc_ctl_call, coda_msg::CODA_CTL_IOC_CALL, CtlCall);
nix::ioctl_readwrite_bad!(ioc_ctl_stats, coda_msg::CODA_CTL_IOC_STATS, PsdevStats);

/// `CIOC_KERNEL_VERSION`: the Coda protocol version the device speaks. Declared with a
/// size_t, stored as an int by both Linux and this driver: a zeroed u64 reads right.
pub fn kernel_version(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut v: u64 = 0;
    // SAFETY: the command reads and writes at most a size_t through the pointer: `v`.
    unsafe { ioc_kernel_version(fd.as_raw_fd(), &mut v) }?;
    Ok(v)
}

/// `CODA_PSDEV_IOC_STATS` on an open /dev/cfsN.
pub fn psdev_stats(fd: BorrowedFd<'_>) -> Result<PsdevStats, Errno> {
    let mut st = PsdevStats::new_zeroed();
    // SAFETY: `st` is a whole `struct coda_psdev_stats`, which the driver overwrites.
    unsafe { ioc_psdev_stats(fd.as_raw_fd(), &mut st) }?;
    Ok(st)
}

/// `CODA_CTL_IOC_STATS` on /dev/coda_ctl: the statistics of /dev/cfs<minor>.
pub fn ctl_stats(fd: BorrowedFd<'_>, minor: u32) -> Result<PsdevStats, Errno> {
    let mut st = PsdevStats::new_zeroed();
    st.version = coda_msg::CODA_PSDEV_STATS_VERSION;
    st.minor = minor;
    // SAFETY: `st` is a whole `struct coda_psdev_stats`, which the driver reads the minor
    // from and overwrites.
    unsafe { ioc_ctl_stats(fd.as_raw_fd(), &mut st) }?;
    Ok(st)
}

/// `CODA_CTL_IOC_CALL` on /dev/coda_ctl, with `c` as given; the driver fills in out_len
/// and unique.
///
/// # Safety
///
/// `c.in_` must point at `c.in_len` readable bytes and `c.out` at `c.out_cap` bytes that
/// nothing else uses during the call, or at memory that is not mapped (the call then
/// fails with EFAULT).
pub unsafe fn ctl_call(fd: BorrowedFd<'_>, c: &mut CtlCall) -> Result<(), Errno> {
    // SAFETY: `c` is a whole `struct coda_ctl_call`; its pointers are the caller's promise.
    unsafe { ioc_ctl_call(fd.as_raw_fd(), c) }.map(drop)
}

/// A synchronous upcall on /dev/cfs<minor> through /dev/coda_ctl (`flags` 0 or
/// `CODA_CTL_ASYNC`): `msg` goes to Venus, the reply lands in `out`. Returns the call
/// structure as the driver left it (out_len, unique).
pub fn ctl_call_with(
    fd: BorrowedFd<'_>,
    minor: u32,
    flags: u32,
    msg: &[u8],
    out: &mut [u8],
) -> Result<CtlCall, Errno> {
    let mut c = CtlCall {
        minor,
        flags,
        in_: msg.as_ptr() as u64,
        in_len: u32::try_from(msg.len()).map_err(|_| Errno::EINVAL)?,
        out_cap: u32::try_from(out.len()).map_err(|_| Errno::EINVAL)?,
        out: out.as_mut_ptr() as u64,
        out_len: 0,
        unique: 0,
    };
    // SAFETY: the pointers name `msg` (read) and `out` (written), sized as the call says
    // and borrowed for its length.
    unsafe { ctl_call(fd, &mut c) }?;
    Ok(c)
}

/// `CODA_PSDEV_IOC_EXCHANGE` on an open /dev/cfsN, with `x` as given; the driver updates
/// the consumed counts.
///
/// # Safety
///
/// `x.write_buf` must point at `x.write_size` bytes that the driver may read and store
/// each record's result into, and `x.read_buf` at `x.read_size` bytes for it to write,
/// each used by nothing else during the call (or memory that is not mapped: EFAULT).
pub unsafe fn exchange(fd: BorrowedFd<'_>, x: &mut PsdevExchange) -> Result<(), Errno> {
    // SAFETY: `x` is a whole `struct coda_psdev_exchange`; its buffers are the caller's
    // promise.
    unsafe { ioc_exchange(fd.as_raw_fd(), x) }.map(drop)
}

/// `mount("coda", dir, "coda", 0, &coda_mount_data)`, the way Venus mounts: the binary
/// mount data names the device's fd.
pub fn mount_legacy(dev: BorrowedFd<'_>, dir: &CStr) -> std::io::Result<()> {
    let data = CodaMountData {
        version: coda_msg::CODA_MOUNT_VERSION,
        fd: dev.as_raw_fd(),
    };
    // SAFETY: the strings are NUL-terminated and live across the call; `data` is the
    // binary `struct coda_mount_data` coda's parse_monolithic reads, and outlives it.
    let r = unsafe {
        libc::mount(
            c"coda".as_ptr(),
            dir.as_ptr(),
            c"coda".as_ptr(),
            0,
            (&raw const data).cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The same through fsopen("coda"), fsconfig("fd"), fsmount and move_mount.
pub fn mount_fsopen(dev: impl AsFd, dir: &CStr) -> std::io::Result<()> {
    let fs = fsopen("coda", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_fd(&fs, "fd", dev)?;
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mnt,
        c"",
        rustix::fs::CWD,
        dir,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}
