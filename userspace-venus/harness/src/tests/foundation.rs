// SPDX-License-Identifier: GPL-2.0

//! The devices exist as documented, only root may open them, the basic ioctls, and the
//! module unloads.

use std::collections::HashSet;
use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::wait_until;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::module;
use crate::module::cfs_path;
use crate::module::CTL_PATH;
use crate::msg;
use crate::runner::Env;
use crate::sys;
use crate::venus::Venus;

/// Fails unless `path` is a character device owned by root:root with mode 0600; returns
/// its device number.
fn check_node(path: &str) -> Result<u64, String> {
    let st = nix::sys::stat::stat(path).ctx(path)?;
    ensure_eq!(
        st.st_mode & libc::S_IFMT,
        libc::S_IFCHR,
        "{path}: file type"
    );
    ensure_eq!(st.st_mode & 0o7777, 0o600, "{path}: mode");
    ensure_eq!((st.st_uid, st.st_gid), (0, 0), "{path}: owner");
    Ok(st.st_rdev)
}

pub fn cfs_nodes(env: &Env) -> TestResult {
    let n = env.params.devices();
    let mut rdevs = HashSet::new();
    for minor in 0..n {
        let rdev = check_node(&cfs_path(minor))?;
        ensure!(
            rdevs.insert(rdev),
            "{} shares its device number",
            cfs_path(minor)
        );
    }
    ensure!(
        !Path::new(&cfs_path(n)).exists(),
        "{} exists with devices={n}",
        cfs_path(n)
    );
    Ok(())
}

pub fn ctl_node(_env: &Env) -> TestResult {
    check_node(CTL_PATH).map(drop)
}

fn expect_refused(r: Result<Result<(), Errno>, String>, what: &str) -> TestResult {
    match r? {
        Err(Errno::EACCES) | Err(Errno::EPERM) => Ok(()),
        Err(e) => Err(format!(
            "{what}: open failed with {e}, want EACCES or EPERM"
        )),
        Ok(()) => Err(format!("{what}: open succeeded")),
    }
}

const CFS0: &CStr = c"/dev/cfs0";
const CTL: &CStr = c"/dev/coda_ctl";

pub fn nobody_cfs(_env: &Env) -> TestResult {
    expect_refused(sys::open_as_nobody(CFS0), "/dev/cfs0 as uid 65534")
}

pub fn nobody_ctl(_env: &Env) -> TestResult {
    expect_refused(sys::open_as_nobody(CTL), "/dev/coda_ctl as uid 65534")
}

/// Gives a device node mode 0666 until dropped, so that only the driver's own check stands
/// between an unprivileged process and the device.
struct Relaxed(&'static str);

impl Relaxed {
    fn new(path: &'static str) -> Result<Self, String> {
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .ctx(&format!("chmod 0666 {path}"))?;
        Ok(Self(path))
    }
}

impl Drop for Relaxed {
    fn drop(&mut self) {
        let _ = nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            self.0,
            Mode::from_bits_truncate(0o600),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        );
    }
}

pub fn needs_cap(_env: &Env) -> TestResult {
    let _cfs = Relaxed::new("/dev/cfs0")?;
    let _ctl = Relaxed::new(CTL_PATH)?;
    expect_refused(
        sys::open_as_nobody(CFS0),
        "/dev/cfs0 (mode 0666) as uid 65534",
    )?;
    expect_refused(
        sys::open_as_nobody(CTL),
        "/dev/coda_ctl (mode 0666) as uid 65534",
    )
}

pub fn user_ns(_env: &Env) -> TestResult {
    expect_refused(
        sys::open_in_user_ns(CFS0),
        "/dev/cfs0 from a new user namespace",
    )?;
    expect_refused(
        sys::open_in_user_ns(CTL),
        "/dev/coda_ctl from a new user namespace",
    )
}

pub fn pid_ns(_env: &Env) -> TestResult {
    expect_refused(
        sys::open_in_pid_ns(CFS0),
        "/dev/cfs0 from a new pid namespace",
    )?;
    expect_refused(
        sys::open_in_pid_ns(CTL),
        "/dev/coda_ctl from a new pid namespace",
    )
}

pub fn kernel_version(_env: &Env) -> TestResult {
    let v = Venus::open(0)?;
    let ver = sys::kernel_version(v.fd()).ctx("CIOC_KERNEL_VERSION")?;
    ensure_eq!(ver, 5, "CIOC_KERNEL_VERSION");
    Ok(())
}

pub fn unknown_ioctls(_env: &Env) -> TestResult {
    use coda_msg::ioc;
    use coda_msg::IOC_NONE;
    use coda_msg::IOC_READ;
    use coda_msg::IOC_WRITE;
    let magic = coda_msg::CODA_PSDEV_IOC_MAGIC;
    let v = Venus::open(0)?;
    let ctl = Ctl::open()?;
    let for_cfs = [
        ioc(IOC_NONE, magic, 0x7f, 0),
        // The statistics ioctl with a wrong size is another command.
        ioc(IOC_READ, magic, 1, 8),
        coda_msg::CODA_CTL_IOC_CALL,
        coda_msg::CODA_CTL_IOC_STATS,
        ioc(IOC_READ | IOC_WRITE, b'c' as u32, 11, 8),
        libc::TCGETS as u32,
    ];
    for cmd in for_cfs {
        expect_errno(
            sys::ioctl_null(v.fd(), cmd),
            Errno::ENOTTY,
            &format!("ioctl {cmd:#x} on /dev/cfs0"),
        )?;
    }
    let for_ctl = [
        ioc(IOC_NONE, magic, 0x7f, 0),
        ioc(IOC_READ | IOC_WRITE, magic, 0x10, 8),
        coda_msg::CODA_PSDEV_IOC_STATS,
        libc::TCGETS as u32,
    ];
    for cmd in for_ctl {
        expect_errno(
            sys::ioctl_null(ctl.fd(), cmd),
            Errno::ENOTTY,
            &format!("ioctl {cmd:#x} on {CTL_PATH}"),
        )?;
    }
    Ok(())
}

pub fn minor_range(env: &Env) -> TestResult {
    let n = env.params.devices();
    let ctl = Ctl::open()?;
    let m = msg::request_token(coda_msg::CODA_STATFS, 1);
    expect_errno(
        ctl.call(n, &m, 64),
        Errno::EINVAL,
        &format!("a call to minor {n}"),
    )?;
    expect_errno(
        ctl.call_async(n, &m),
        Errno::EINVAL,
        &format!("an async call to minor {n}"),
    )?;
    expect_errno(
        ctl.stats(n).map(drop),
        Errno::EINVAL,
        &format!("CODA_CTL_IOC_STATS for minor {n}"),
    )?;
    let st = ctl
        .stats(n - 1)
        .ctx(&format!("CODA_CTL_IOC_STATS for minor {}", n - 1))?;
    ensure_eq!(st.minor, n - 1, "minor in the statistics");
    // The last device works; calls to it fail ENODEV only for want of a Venus.
    expect_errno(
        ctl.call(n - 1, &m, 64),
        Errno::ENODEV,
        &format!("a call to minor {} without Venus", n - 1),
    )
}

pub fn rmmod_refused_while_open(_env: &Env) -> TestResult {
    for path in [cfs_path(0), CTL_PATH.to_owned()] {
        let fd =
            nix::fcntl::open(path.as_str(), nix::fcntl::OFlag::O_RDWR, Mode::empty()).ctx(&path)?;
        if module::rmmod().is_ok() {
            return Err(format!("rmmod succeeded while {path} was open"));
        }
        ensure!(module::loaded(), "the module is gone while {path} is open");
        ensure!(Path::new(&path).exists(), "{path} vanished while open");
        // The file still works.
        if path == CTL_PATH {
            sys::ctl_stats(fd.as_fd(), 0).ctx("statistics after the refused rmmod")?;
        } else {
            sys::kernel_version(fd.as_fd()).ctx("CIOC_KERNEL_VERSION after the refused rmmod")?;
        }
    }
    Ok(())
}

pub fn unloads_cleanly(env: &Env) -> TestResult {
    module::unload_retrying()?;
    ensure!(
        !module::loaded(),
        "/sys/module/{} still exists",
        module::MODULE
    );
    let mut nodes: Vec<String> = (0..env.params.devices()).map(cfs_path).collect();
    nodes.push(CTL_PATH.to_owned());
    wait_until("the device nodes disappear", Duration::from_secs(2), || {
        Ok(nodes.iter().all(|p| !Path::new(p).exists()))
    })
}
