//! A minimal Venus inside the benchmark, for the rows that need upcalls Venus reads but never
//! answers (5, outstanding upcalls; 6, interrupted calls), which the Venus stub has no mode
//! for. It serves a one-directory file system: ROOT, GETATTR, ACCESS and STATFS are
//! answered at once, every CODA_LOOKUP is parked (read, never answered), and each parked
//! lookup and each CODA_SIGNAL is reported on a channel with the time it was read.
//!
//! Readers use a blocking read(2), the cheapest way Venus can wait; they are stopped by a
//! signal (SIGUSR2, no SA_RESTART) so that a blocked read returns EINTR.

use std::io;
use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::os::fd::OwnedFd;
use std::os::unix::thread::JoinHandleExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
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

/// What a reader saw, with the time it read it.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// A CODA_LOOKUP, read and left unanswered.
    Parked { unique: u32 },
    /// A CODA_SIGNAL for an upcall whose caller gave up.
    Signal { unique: u32, at: Instant },
}

const ROOT_FID: CodaFid = CodaFid {
    opaque: [0x7f, 1, 1, 1],
};

extern "C" fn wake_only(_: nix::libc::c_int) {}

/// Installs a do-nothing handler for `sig` without SA_RESTART, so that the signal ends a
/// blocking system call with EINTR instead of killing the process or being ignored.
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

/// The running mini-Venus.
pub struct MiniVenus {
    dev: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    pub events: mpsc::Receiver<Event>,
}

impl MiniVenus {
    /// Opens `device` and starts `readers` reader threads.
    pub fn start(device: &Path, readers: usize) -> io::Result<Self> {
        interrupt_with(Signal::SIGUSR2)?;
        let dev = rustix::fs::open(device, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io::Error::other(format!("open {}: {e}", device.display())))?;
        let dev = Arc::new(dev);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let readers = (0..readers.max(1))
            .map(|i| {
                let (dev, stop, tx) = (dev.clone(), stop.clone(), tx.clone());
                std::thread::Builder::new()
                    .name(format!("venus{i}"))
                    .spawn(move || serve(&dev, &stop, &tx))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(MiniVenus {
            dev,
            stop,
            readers,
            events,
        })
    }

    pub fn dev(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
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

    /// Stops the readers and closes the device: every caller still waiting gets ENODEV.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.readers {
            let t = h.as_pthread_t();
            // A reader may enter read() just after a signal: repeat until it is out.
            while !h.is_finished() {
                let _ = nix::sys::pthread::pthread_kill(t, Signal::SIGUSR2);
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = h.join();
        }
        // The readers' references are gone: this closes the device.
        drop(self.dev);
    }
}

fn serve(dev: &OwnedFd, stop: &AtomicBool, tx: &mpsc::Sender<Event>) {
    let mut msg = vec![0u8; coda_msg::VC_MAXMSGSIZE];
    let mut out = vec![0u8; coda_msg::VC_MAXMSGSIZE];
    while !stop.load(Ordering::SeqCst) {
        let n = match rustix::io::read(dev, &mut msg) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => {
                eprintln!("bench venus: read: {e}");
                return;
            }
        };
        let at = Instant::now();
        let Ok(ih) = coda_msg::in_hdr(&msg[..n]) else {
            eprintln!("bench venus: a {n}-byte message without a header");
            continue;
        };
        if let Some(len) = answer(&ih, &mut out) {
            loop {
                match rustix::io::write(dev, &out[..len]) {
                    Err(Errno::INTR) => continue,
                    // ESRCH: the caller gave up meanwhile.
                    Ok(_) | Err(Errno::SRCH) => break,
                    Err(e) => {
                        eprintln!("bench venus: reply to {}: {e}", ih.unique);
                        break;
                    }
                }
            }
        }
        let ev = match ih.opcode {
            coda_msg::CODA_LOOKUP => Event::Parked { unique: ih.unique },
            coda_msg::CODA_SIGNAL => Event::Signal {
                unique: ih.unique,
                at,
            },
            _ => continue,
        };
        // The receiver is gone only once the benchmark stops.
        let _ = tx.send(ev);
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
pub fn mount_coda(dev: BorrowedFd<'_>, dir: &Path) -> io::Result<()> {
    use rustix::mount::*;
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
}
