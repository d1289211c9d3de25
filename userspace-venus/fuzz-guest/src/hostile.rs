// SPDX-License-Identifier: GPL-2.0

//! Hostile callers and privilege: who may open the devices, and that nothing read from them
//! carries a byte the reader was not meant to get.

use crate::sys;
use crate::sys::Report;
use crate::sys::Rng;
use crate::work;
use coda_msg::*;
use nix::errno::Errno;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;
use zerocopy::FromBytes;
use zerocopy::FromZeros;
use zerocopy::IntoBytes;

#[derive(clap::Args, Debug, Clone)]
pub struct TryOpenArgs {
    /// uid: drop to uid/gid 65534; userns: root of a new user namespace; pidns: root in a
    /// new pid namespace.
    #[arg(long)]
    pub mode: String,
    pub paths: Vec<String>,
}

/// Opens each path as the chosen kind of caller; prints `<path> <result>` per path.
pub fn try_open(a: &TryOpenArgs) -> i32 {
    use nix::sched::unshare;
    use nix::sched::CloneFlags;
    use nix::unistd::Gid;
    use nix::unistd::Uid;
    let setup = match a.mode.as_str() {
        "uid" => nix::unistd::setgroups(&[])
            .and_then(|_| nix::unistd::setgid(Gid::from_raw(65534)))
            .and_then(|_| nix::unistd::setuid(Uid::from_raw(65534)))
            .map_err(|e| e.to_string()),
        // As `unshare -U -r`: root inside, mapped to the caller (root) outside.
        "userns" => unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                std::fs::write("/proc/self/setgroups", "deny")
                    .and_then(|_| std::fs::write("/proc/self/uid_map", "0 0 1"))
                    .and_then(|_| std::fs::write("/proc/self/gid_map", "0 0 1"))
                    .map_err(|e| e.to_string())
            }),
        "pidns" => unshare(CloneFlags::CLONE_NEWPID).map_err(|e| e.to_string()),
        m => Err(format!("unknown mode {m}")),
    };
    if let Err(e) = setup {
        println!("setup-failed {e}");
        return 1;
    }
    let probe = || {
        for p in &a.paths {
            match sys::open_dev(p, true) {
                Ok(_) => println!("{p} ok"),
                Err(e) => println!("{p} {:?}", Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            }
        }
    };
    if a.mode == "pidns" {
        // Only children enter the new pid namespace.
        // SAFETY: single-threaded here; the child only opens files and prints.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                probe();
                std::process::exit(0);
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                let _ = nix::sys::wait::waitpid(child, None);
            }
            Err(e) => {
                println!("setup-failed fork {e}");
                return 1;
            }
        }
    } else {
        probe();
    }
    0
}

/// Runs `try-open` in a child process; returns the result per path.
fn probe(mode: &str, paths: &[String]) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg("try-open")
        .arg("--mode")
        .arg(mode)
        .args(paths)
        .output()
        .map_err(|e| e.to_string())?;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    if s.contains("setup-failed") {
        return Err(s);
    }
    Ok(paths
        .iter()
        .map(|p| {
            s.lines()
                .find_map(|l| l.strip_prefix(&format!("{p} ")))
                .unwrap_or("missing")
                .to_string()
        })
        .collect())
}

fn expect_all(mode: &str, paths: &[String], want: &str) -> Result<(), String> {
    let got = probe(mode, paths)?;
    let bad: Vec<_> = paths
        .iter()
        .zip(&got)
        .filter(|(_, g)| g.as_str() != want)
        .map(|(p, g)| format!("{p}: {g}, want {want}"))
        .collect();
    sys::all_good(bad)
}

pub fn run(rep: &mut Report) {
    sys::install_signal_handlers();
    let paths = vec![sys::cfs_path(0), sys::CTL_PATH.to_string()];
    rep.check(
        "hostile: an unprivileged user cannot open the devices (mode 0600)",
        expect_all("uid", &paths, "EACCES"),
    );
    // With the file mode out of the way the module's own check must refuse.
    let modes: Vec<_> = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.permissions().mode()))
        .collect();
    for p in &paths {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666));
    }
    rep.check(
        "hostile: an unprivileged user cannot open the devices even when mode 0666",
        expect_all("uid", &paths, "EPERM"),
    );
    rep.check(
        "hostile: root in a user namespace cannot open the devices",
        expect_all("userns", &paths, "EPERM"),
    );
    rep.check(
        "hostile: root in a pid namespace cannot open the devices",
        expect_all("pidns", &paths, "EPERM"),
    );
    for (p, m) in paths.iter().zip(modes) {
        if let Ok(m) = m {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(m & 0o7777));
        }
    }
    rep.check(
        "hostile: read returns exactly the caller's request",
        request_bytes(),
    );
    rep.check(
        "hostile: CODA_SIGNAL is exactly 20 bytes, pid/pgid/uid zero",
        signal_bytes(),
    );
    rep.check(
        "hostile: statistics ioctls fill every byte deterministically",
        stats_bytes(),
    );
    rep.check(
        "hostile: CIOC_KERNEL_VERSION stores the version as an int, nothing more",
        kernel_version(),
    );
    rep.check(
        "hostile: a reply reaches the caller byte-exact, nothing past it",
        reply_bytes(),
    );
    rep.check(
        "hostile: a downcall record on the control device is byte-exact",
        downcall_bytes(),
    );
    rep.check(
        "hostile: a short read buffer is EMSGSIZE and loses nothing",
        short_read(),
    );
    rep.check(
        "hostile: bad caller pointers are EFAULT and leave nothing outstanding",
        bad_pointers(),
    );
}

/// Reads the next message into a buffer pre-filled with 0xaa; returns it and its length.
fn venus_read(fd: &OwnedFd, timeout: Duration) -> Result<(Vec<u8>, usize), String> {
    let mut buf = vec![0xaau8; VC_MAXMSGSIZE + 64];
    let mut got = Err(Errno::EAGAIN);
    sys::wait_for(timeout, || {
        got = sys::raw_read(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as usize,
            VC_MAXMSGSIZE + 64,
        );
        got != Err(Errno::EAGAIN)
    });
    let n = got.map_err(|e| format!("Venus read: {e}"))?;
    Ok((buf, n))
}

fn untouched(b: &[u8], fill: u8) -> bool {
    b.iter().all(|&x| x == fill)
}

/// A caller thread that makes one call and returns its result.
fn call_in_thread(
    msg: Vec<u8>,
    out_cap: usize,
) -> std::thread::JoinHandle<(Result<CtlCall, Errno>, Vec<u8>)> {
    std::thread::spawn(move || {
        let ctl = sys::open_dev(sys::CTL_PATH, false).expect("open ctl");
        let mut out = vec![0xaau8; out_cap + 64];
        let r = coda_dev::ctl_call_with(ctl.as_fd(), 0, 0, &msg, &mut out[..out_cap]);
        (r, out)
    })
}

fn caller_msg(tag: u32) -> Vec<u8> {
    let mut m = work::request(&mut Rng::new(u64::from(tag)), CODA_GETATTR, 40, tag);
    // Ids the caller chose: Venus gets them as given, a CODA_SIGNAL must not.
    m[8..20].copy_from_slice(&[
        0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0x33, 0x33, 0x33, 0x33,
    ]);
    m
}

fn open_venus() -> Result<OwnedFd, String> {
    sys::open_dev(&sys::cfs_path(0), true).map_err(|e| format!("open cfs0: {e}"))
}

fn request_bytes() -> Result<(), String> {
    let v = open_venus()?;
    let msg = caller_msg(1);
    let h = call_in_thread(msg.clone(), 64);
    let (buf, n) = venus_read(&v, Duration::from_secs(10))?;
    let mut want = msg.clone();
    want[4..8].copy_from_slice(&buf[4..8]);
    let mut bad = Vec::new();
    if n != msg.len() || buf[..n] != want[..] {
        bad.push(format!(
            "read {n} bytes, sent {}: {:02x?}",
            msg.len(),
            &buf[..n.min(32)]
        ));
    }
    if !untouched(&buf[n..], 0xaa) {
        bad.push("read wrote past the message".into());
    }
    drop(v);
    let _ = h.join();
    sys::all_good(bad)
}

fn signal_bytes() -> Result<(), String> {
    let v = open_venus()?;
    let h = call_in_thread(caller_msg(2), 64);
    let (req, _) = venus_read(&v, Duration::from_secs(10))?;
    let unique = u32::from_ne_bytes(req[4..8].try_into().unwrap());
    // The caller is still waiting (Venus never replies): interrupt it.
    use std::os::unix::thread::JoinHandleExt;
    let p = h.as_pthread_t();
    let mut got = None;
    sys::wait_for(Duration::from_secs(10), || {
        // The thread is not joined before this loop ends, so its pthread_t stays valid even
        // once it has returned (then the signal is simply not delivered).
        let _ = nix::sys::pthread::pthread_kill(p, nix::sys::signal::Signal::SIGUSR1);
        let mut buf = vec![0xaau8; VC_MAXMSGSIZE + 64];
        if let Ok(n) = sys::raw_read(v.as_raw_fd(), buf.as_mut_ptr() as usize, VC_MAXMSGSIZE + 64) {
            got = Some((buf, n));
        }
        got.is_some()
    });
    let (r, _) = h.join().map_err(|_| "caller panicked")?;
    let (buf, n) = got.ok_or("no CODA_SIGNAL after interrupting the caller")?;
    let hdr = InHdr::read_from_prefix(&buf).unwrap().0;
    let mut bad = Vec::new();
    if r != Err(Errno::EINTR) {
        bad.push(format!("interrupted caller got {r:?}, want EINTR"));
    }
    if n != IN_HDR_SIZE
        || hdr
            != (InHdr {
                opcode: CODA_SIGNAL,
                unique,
                pid: 0,
                pgid: 0,
                uid: 0,
            })
    {
        bad.push(format!(
            "CODA_SIGNAL of {n} bytes: {hdr:?} (unique of the request {unique})"
        ));
    }
    if !untouched(&buf[n..], 0xaa) {
        bad.push("read wrote past the CODA_SIGNAL".into());
    }
    sys::all_good(bad)
}

fn stats_bytes() -> Result<(), String> {
    let v = open_venus()?;
    let ctl = sys::open_dev(sys::CTL_PATH, true).map_err(|e| e.to_string())?;
    let size = core::mem::size_of::<PsdevStats>();
    let mut results = Vec::new();
    for fill in [0x00u8, 0xff, 0x5a] {
        for (fd, cmd) in [(&v, CODA_PSDEV_IOC_STATS), (&ctl, CODA_CTL_IOC_STATS)] {
            let mut buf = vec![fill; size + 64];
            buf[4..8].copy_from_slice(&0u32.to_ne_bytes());
            sys::raw_ioctl(fd.as_raw_fd(), cmd, buf.as_mut_ptr() as usize)
                .map_err(|e| format!("ioctl {cmd:#x}: {e}"))?;
            if !untouched(&buf[size..], fill) {
                return Err(format!("ioctl {cmd:#x} wrote past the structure"));
            }
            results.push(buf[..size].to_vec());
        }
    }
    if results.windows(2).any(|w| w[0] != w[1]) {
        let (a, b) = (&results[0], &results[1]);
        let i = a
            .iter()
            .zip(b.iter())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Err(format!(
            "results differ with the buffer's old contents (first at byte {i})"
        ));
    }
    let st = PsdevStats::read_from_bytes(&results[0]).unwrap();
    if st.version != CODA_PSDEV_STATS_VERSION || st.minor != 0 {
        return Err(format!("version {} minor {}", st.version, st.minor));
    }
    Ok(())
}

fn kernel_version() -> Result<(), String> {
    let v = open_venus()?;
    let mut buf = [0xffu8; 16];
    sys::raw_ioctl(
        v.as_raw_fd(),
        CIOC_KERNEL_VERSION,
        buf.as_mut_ptr() as usize,
    )
    .map_err(|e| e.to_string())?;
    // Declared with a size_t, stored as an int (as Linux and NetBSD do): the other bytes of
    // the caller's size_t stay the caller's.
    let got = u32::from_ne_bytes(buf[..4].try_into().unwrap());
    if got != CODA_KERNEL_VERSION || !untouched(&buf[4..], 0xff) {
        return Err(format!("{:02x?}", buf));
    }
    Ok(())
}

fn reply_bytes() -> Result<(), String> {
    let v = open_venus()?;
    let msg = caller_msg(3);
    let h = call_in_thread(msg.clone(), 128);
    let (req, _) = venus_read(&v, Duration::from_secs(10))?;
    let unique = u32::from_ne_bytes(req[4..8].try_into().unwrap());
    let mut reply = vec![0u8; 40];
    let mut rng = Rng::new(3);
    rng.fill(&mut reply);
    let oh = OutHdr {
        opcode: CODA_GETATTR,
        unique,
        result: 0,
    };
    reply[..OUT_HDR_SIZE].copy_from_slice(oh.as_bytes());
    sys::raw_write(v.as_raw_fd(), reply.as_ptr() as usize, reply.len())
        .map_err(|e| format!("reply: {e}"))?;
    let (r, out) = h.join().map_err(|_| "caller panicked")?;
    let c = r.map_err(|e| format!("call: {e}"))?;
    let mut bad = Vec::new();
    if c.out_len != 40 || out[..40] != reply[..] || c.unique != unique {
        bad.push(format!(
            "out_len {} unique {} (want 40, {unique})",
            c.out_len, c.unique
        ));
    }
    if !untouched(&out[40..], 0xaa) {
        bad.push("the call wrote past the reply into the caller's buffer".into());
    }
    if c.in_len as usize != msg.len() || c.out_cap != 128 || c.minor != 0 || c.flags != 0 {
        bad.push(format!("the call changed its input fields: {c:?}"));
    }
    sys::all_good(bad)
}

fn downcall_bytes() -> Result<(), String> {
    let ctl = sys::open_dev(sys::CTL_PATH, true).map_err(|e| e.to_string())?;
    // Drain what earlier tests left.
    let mut sink = vec![0u8; 4096];
    while sys::raw_read(ctl.as_raw_fd(), sink.as_mut_ptr() as usize, sink.len()).is_ok() {}
    let v = open_venus()?;
    let mut d = ZapfileOut::new_zeroed();
    d.oh.opcode = CODA_ZAPFILE;
    d.fid.opaque = [1, 2, 3, 4];
    sys::raw_write(
        v.as_raw_fd(),
        d.as_bytes().as_ptr() as usize,
        d.as_bytes().len(),
    )
    .map_err(|e| format!("downcall: {e}"))?;
    let mut buf = vec![0xaau8; 256];
    let n = sys::raw_read(ctl.as_raw_fd(), buf.as_mut_ptr() as usize, 256)
        .map_err(|e| format!("read ctl: {e}"))?;
    let want_len = 8 + d.as_bytes().len();
    let hdr = CtlDowncall::read_from_prefix(&buf).unwrap().0;
    if n != want_len
        || hdr.minor != 0
        || hdr.len as usize != d.as_bytes().len()
        || &buf[8..n] != d.as_bytes()
        || !untouched(&buf[n..], 0xaa)
    {
        return Err(format!("record of {n} bytes: {:02x?}", &buf[..n.min(48)]));
    }
    Ok(())
}

fn short_read() -> Result<(), String> {
    let v = open_venus()?;
    let msg = caller_msg(4);
    let h = call_in_thread(msg.clone(), 64);
    sys::wait_for(Duration::from_secs(10), || {
        sys::stats(0).is_ok_and(|s| s.pending > 0)
    });
    let mut small = vec![0xaau8; msg.len() - 1];
    let r = sys::raw_read(v.as_raw_fd(), small.as_mut_ptr() as usize, small.len());
    let mut bad = Vec::new();
    if r != Err(Errno::EMSGSIZE) {
        bad.push(format!(
            "read of {} bytes for a {}-byte message: {r:?}",
            small.len(),
            msg.len()
        ));
    }
    if !untouched(&small, 0xaa) {
        bad.push("the refused read wrote into the buffer".into());
    }
    let (_, n) = venus_read(&v, Duration::from_secs(5))?;
    if n != msg.len() {
        bad.push(format!("then read {n} bytes, want {}", msg.len()));
    }
    drop(v);
    let _ = h.join();
    sys::all_good(bad)
}

/// Venus reads the next request, a GETATTR, and answers it with a 16-byte reply.
fn answer_getattr(v: &OwnedFd) -> Result<(), String> {
    let (req, _) = venus_read(v, Duration::from_secs(10))?;
    let mut reply = [0u8; 16];
    reply[..OUT_HDR_SIZE].copy_from_slice(
        OutHdr {
            opcode: CODA_GETATTR,
            unique: u32::from_ne_bytes(req[4..8].try_into().unwrap()),
            result: 0,
        }
        .as_bytes(),
    );
    sys::raw_write(v.as_raw_fd(), reply.as_ptr() as usize, 16)
        .map_err(|e| format!("reply: {e}"))?;
    Ok(())
}

fn bad_pointers() -> Result<(), String> {
    let v = open_venus()?;
    let ctl = sys::open_dev(sys::CTL_PATH, false).map_err(|e| e.to_string())?;
    let before = coda_dev::ctl_stats(ctl.as_fd(), 0).map_err(|e| e.to_string())?;
    let msg = caller_msg(5);
    let mut bad = Vec::new();
    // The message pointer is a kernel address.
    let mut c = CtlCall {
        minor: 0,
        flags: 0,
        in_: 0xffff_8880_0000_0000,
        in_len: msg.len() as u32,
        out_cap: 64,
        out: 0,
        out_len: 0,
        unique: 0,
    };
    let r = sys::raw_ioctl(
        ctl.as_raw_fd(),
        CODA_CTL_IOC_CALL,
        c.as_mut_bytes().as_mut_ptr() as usize,
    );
    if r != Err(Errno::EFAULT) {
        bad.push(format!("kernel message pointer: {r:?}"));
    }
    // The reply buffer is read-only: the call is answered, the copy-out fails.
    // SAFETY: a fresh anonymous read-only mapping, never touched from Rust.
    let ro = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as u64;
    let m2 = msg.clone();
    let raw_ctl = ctl.as_raw_fd();
    let h = std::thread::spawn(move || {
        let mut c = CtlCall {
            minor: 0,
            flags: 0,
            in_: m2.as_ptr() as u64,
            in_len: m2.len() as u32,
            out_cap: 64,
            out: ro,
            out_len: 0,
            unique: 0,
        };
        sys::raw_ioctl(
            raw_ctl,
            CODA_CTL_IOC_CALL,
            c.as_mut_bytes().as_mut_ptr() as usize,
        )
    });
    answer_getattr(&v)?;
    let r = h.join().map_err(|_| "caller panicked")?;
    if r != Err(Errno::EFAULT) {
        bad.push(format!("read-only reply buffer: {r:?}"));
    }
    // The call structure itself is read-only: the call is made and answered, writing back
    // out_len and unique fails.
    // SAFETY: a fresh anonymous mapping, written through a raw pointer before it is made
    // read-only; no Rust reference to it exists.
    let page = unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        let mut out = vec![0u8; 64];
        let c = CtlCall {
            minor: 0,
            flags: 0,
            in_: msg.as_ptr() as u64,
            in_len: msg.len() as u32,
            out_cap: 64,
            out: out.as_mut_ptr() as u64,
            out_len: 0,
            unique: 0,
        };
        core::ptr::copy_nonoverlapping(c.as_bytes().as_ptr(), p as *mut u8, c.as_bytes().len());
        libc::mprotect(p, 4096, libc::PROT_READ);
        // The reply buffer must outlive the call: leak it (a test process).
        std::mem::forget(out);
        p as usize
    };
    let h = std::thread::spawn(move || sys::raw_ioctl(raw_ctl, CODA_CTL_IOC_CALL, page));
    answer_getattr(&v)?;
    let r = h.join().map_err(|_| "caller panicked")?;
    if r != Err(Errno::EFAULT) {
        bad.push(format!("read-only call structure: {r:?}"));
    }
    let after = coda_dev::ctl_stats(ctl.as_fd(), 0).map_err(|e| e.to_string())?;
    let d = work::delta(&before, &after);
    if after.outstanding != 0 || sys::sum(&d, |o| o.replies) != 2 || sys::sum(&d, |o| o.calls) != 2
    {
        bad.push(format!("after: {}", sys::describe(&after)));
    }
    sys::all_good(bad)
}
