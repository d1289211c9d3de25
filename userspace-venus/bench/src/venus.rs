// SPDX-License-Identifier: GPL-2.0

//! A minimal Venus of the benchmark's own, for the rows that need upcalls Venus reads but
//! never answers (5, outstanding upcalls; 6, interrupted calls), which the Venus stub has
//! no mode for. It serves a one-directory file system: ROOT, GETATTR, ACCESS and STATFS are
//! answered at once, every CODA_LOOKUP is parked (read, never answered).
//!
//! It runs as a process of its own (`bench serve`), as Venus does: a ping-pong between
//! threads of one process skips the address-space switch, which under emulation is a large
//! part of a round trip, and would not compare with row 1. It reports each parked lookup
//! and each CODA_SIGNAL on its standard output, one line each, with the CLOCK_MONOTONIC
//! time it read it; the parent turns the lines into [`Event`]s. Its readers block in
//! read(2), the cheapest way Venus can wait. Killing it closes the device.

use std::io;
use std::io::BufRead;
use std::io::BufReader;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use coda_msg::CodaFid;
use coda_msg::CodaStatfs;
use coda_msg::CodaVattr;
use coda_msg::GetattrOut;
use coda_msg::InHdr;
use coda_msg::OutHdr;
use coda_msg::RootOut;
use coda_msg::StatfsOut;
use nix::sys::signal::SaFlags;
use nix::sys::signal::SigAction;
use nix::sys::signal::SigHandler;
use nix::sys::signal::SigSet;
use nix::sys::signal::Signal;
use rustix::fs::Mode;
use rustix::fs::OFlags;
use rustix::io::Errno;

/// What the Venus process saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Readers run (and the mount, if asked for, is up).
    Ready,
    /// A CODA_LOOKUP, read and left unanswered.
    Parked { unique: u32 },
    /// A CODA_SIGNAL for an upcall whose caller gave up, read at `at_ns`.
    Signal { unique: u32, at_ns: u64 },
}

impl Event {
    fn line(&self) -> String {
        match self {
            Event::Ready => "R\n".to_string(),
            Event::Parked { unique } => format!("P {unique}\n"),
            Event::Signal { unique, at_ns } => format!("S {unique} {at_ns}\n"),
        }
    }

    fn parse(line: &str) -> Option<Event> {
        let mut w = line.split_whitespace();
        match w.next()? {
            "R" => Some(Event::Ready),
            "P" => Some(Event::Parked {
                unique: w.next()?.parse().ok()?,
            }),
            "S" => Some(Event::Signal {
                unique: w.next()?.parse().ok()?,
                at_ns: w.next()?.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for both processes.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

const ROOT_FID: CodaFid = CodaFid {
    opaque: [0x7f, 1, 1, 1],
};

extern "C" fn wake_only(_: nix::libc::c_int) {}

/// Installs a do-nothing handler for `sig` without SA_RESTART, so that the signal ends a
/// blocking system call with EINTR instead of killing the process.
pub fn interrupt_with(sig: Signal) -> io::Result<()> {
    let act = SigAction::new(
        SigHandler::Handler(wake_only),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing, so it is async-signal-safe, and replacing the
    // disposition of `sig` affects only this process, which expects EINTR from it.
    unsafe { nix::sys::signal::sigaction(sig, &act) }?;
    Ok(())
}

/// `bench serve`, the Venus process: serves `device` with `readers` threads until killed.
pub fn serve(device: &Path, readers: usize, mount: Option<&Path>) -> io::Result<()> {
    let dev = rustix::fs::open(device, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io::Error::other(format!("open {}: {e}", device.display())))?;
    std::thread::scope(|s| {
        for _ in 0..readers.max(1) {
            let dev = &dev;
            s.spawn(move || serve_device(dev));
        }
        // The kernel makes ROOT and GETATTR upcalls during the mount: the readers run.
        if let Some(dir) = mount {
            if let Err(e) = mount_coda(&dev, dir) {
                eprintln!("bench serve: mount coda on {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
        emit(Event::Ready);
    });
    Ok(())
}

fn emit(ev: Event) {
    let mut out = io::stdout().lock();
    // The parent is gone only once the benchmark ends: then so is this process.
    if out.write_all(ev.line().as_bytes()).is_err() || out.flush().is_err() {
        std::process::exit(0);
    }
}

fn serve_device(dev: &OwnedFd) {
    let mut msg = vec![0u8; coda_msg::VC_MAXMSGSIZE];
    let mut out = vec![0u8; coda_msg::VC_MAXMSGSIZE];
    loop {
        let n = match rustix::io::read(dev, &mut msg) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => {
                eprintln!("bench serve: read: {e}");
                std::process::exit(1);
            }
        };
        let at_ns = now_ns();
        let Ok(ih) = coda_msg::in_hdr(&msg[..n]) else {
            eprintln!("bench serve: a {n}-byte message without a header");
            continue;
        };
        if let Some(len) = answer(&ih, &mut out) {
            loop {
                match rustix::io::write(dev, &out[..len]) {
                    Err(Errno::INTR) => continue,
                    // ESRCH: the caller gave up meanwhile.
                    Ok(_) | Err(Errno::SRCH) => break,
                    Err(e) => {
                        eprintln!("bench serve: reply to {}: {e}", ih.unique);
                        break;
                    }
                }
            }
        }
        match ih.opcode {
            coda_msg::CODA_LOOKUP => emit(Event::Parked { unique: ih.unique }),
            coda_msg::CODA_SIGNAL => emit(Event::Signal {
                unique: ih.unique,
                at_ns,
            }),
            _ => {}
        }
    }
}

/// The reply to `ih` in `out`, or `None` for a message left unanswered.
fn answer(ih: &InHdr, out: &mut [u8]) -> Option<usize> {
    let oh = OutHdr {
        opcode: ih.opcode,
        unique: ih.unique,
        result: 0,
    };
    let put = match ih.opcode {
        coda_msg::CODA_ROOT => coda_msg::put_struct(out, &RootOut { oh, vfid: ROOT_FID }),
        coda_msg::CODA_GETATTR => coda_msg::put_struct(
            out,
            &GetattrOut {
                oh,
                _pad0: 0,
                attr: root_attr(),
            },
        ),
        coda_msg::CODA_ACCESS => coda_msg::put_struct(out, &oh),
        coda_msg::CODA_STATFS => coda_msg::put_struct(
            out,
            &StatfsOut {
                oh,
                stat: CodaStatfs {
                    f_blocks: 1 << 20,
                    f_bfree: 1 << 19,
                    f_bavail: 1 << 19,
                    f_files: 1 << 20,
                    f_ffree: 1 << 19,
                },
            },
        ),
        coda_msg::CODA_LOOKUP | coda_msg::CODA_SIGNAL => return None,
        _ => coda_msg::put_struct(
            out,
            &OutHdr {
                result: Errno::OPNOTSUPP.raw_os_error(),
                ..oh
            },
        ),
    };
    put.ok()
}

fn root_attr() -> CodaVattr {
    CodaVattr {
        va_type: coda_msg::C_VDIR as i64,
        va_mode: 0o755,
        va_nlink: 2,
        va_fileid: ROOT_FID.f2i() as i64,
        va_size: 4096,
        va_blocksize: 4096,
        va_bytes: 4096,
        ..Default::default()
    }
}

/// Mounts coda.ko's device `dev` on `dir` (the new mount API: no unsafe mount data).
fn mount_coda(dev: impl AsFd, dir: &Path) -> io::Result<()> {
    let dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    coda_dev::mount_fsopen(dev, &dir)
}

/// The parent's handle on a running `bench serve`.
pub struct MiniVenus {
    child: Child,
    events: mpsc::Receiver<Event>,
    mount: Option<PathBuf>,
}

impl MiniVenus {
    /// Starts Venus on `device` (and mounts it on `mount`: coda.ko) and waits until it
    /// serves.
    pub fn start(device: &Path, readers: usize, mount: Option<&Path>) -> io::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("serve")
            .arg("--device")
            .arg(device)
            .arg("--readers")
            .arg(readers.to_string())
            .stdout(Stdio::piped());
        if let Some(m) = mount {
            cmd.arg("--mount").arg(m);
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no pipe"))?;
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match Event::parse(&line) {
                    Some(ev) if tx.send(ev).is_ok() => {}
                    Some(_) => break,
                    None => eprintln!("bench: venus said {line:?}"),
                }
            }
        });
        let v = MiniVenus {
            child,
            events,
            mount: mount.map(Path::to_path_buf),
        };
        match v.next_event(Duration::from_secs(120)) {
            Ok(Event::Ready) => Ok(v),
            Ok(ev) => {
                v.stop()?;
                Err(io::Error::other(format!("venus: {ev:?} before ready")))
            }
            Err(e) => {
                v.stop()?;
                Err(e)
            }
        }
    }

    /// Waits for the next event, at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> io::Result<Event> {
        self.events
            .recv_timeout(timeout)
            .map_err(|e| io::Error::new(io::ErrorKind::TimedOut, format!("venus event: {e}")))
    }

    /// Waits until `n` more lookups were parked.
    pub fn wait_parked(&self, n: usize, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut got = 0;
        while got < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Event::Parked { .. } = self.next_event(left)? {
                got += 1;
            }
        }
        Ok(())
    }

    /// Kills Venus, which closes the device: every caller still waiting fails (ENODEV).
    pub fn stop(mut self) -> io::Result<()> {
        let _ = self.child.kill();
        self.child.wait()?;
        Ok(())
    }

    /// Where Venus mounted coda.ko: to unmount once Venus is gone (coda.ko wants the
    /// device closed first) and its callers have returned.
    pub fn mount(&self) -> Option<PathBuf> {
        self.mount.clone()
    }
}

/// Unmounts coda.ko's mount.
pub fn unmount(mnt: Option<PathBuf>) -> io::Result<()> {
    if let Some(m) = mnt {
        rustix::mount::unmount(&m, rustix::mount::UnmountFlags::empty())
            .map_err(|e| io::Error::other(format!("umount {}: {e}", m.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(opcode: u32) -> InHdr {
        InHdr {
            opcode,
            unique: 9,
            pid: 1,
            pgid: 1,
            uid: 0,
        }
    }

    #[test]
    fn answers() {
        let mut out = vec![0u8; 512];
        let n = answer(&hdr(coda_msg::CODA_STATFS), &mut out).unwrap();
        assert_eq!(n, std::mem::size_of::<StatfsOut>());
        let oh = coda_msg::out_hdr(&out[..n]).unwrap();
        assert_eq!(
            (oh.opcode, oh.unique, oh.result),
            (coda_msg::CODA_STATFS, 9, 0)
        );
        assert!(answer(&hdr(coda_msg::CODA_LOOKUP), &mut out).is_none());
        assert!(answer(&hdr(coda_msg::CODA_SIGNAL), &mut out).is_none());
        let n = answer(&hdr(coda_msg::CODA_MKDIR), &mut out).unwrap();
        assert_ne!(coda_msg::out_hdr(&out[..n]).unwrap().result, 0);
    }

    #[test]
    fn event_lines() {
        for ev in [
            Event::Ready,
            Event::Parked { unique: 7 },
            Event::Signal {
                unique: 8,
                at_ns: 123,
            },
        ] {
            assert_eq!(Event::parse(ev.line().trim_end()), Some(ev));
        }
        assert_eq!(Event::parse("X"), None);
    }
}
