// SPDX-License-Identifier: GPL-2.0

//! The Venus side: an open /dev/cfsN, read for requests and written for replies.

use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use coda_msg::InHdr;
use coda_msg::PsdevExchange;
use coda_msg::PsdevStats;
use nix::errno::Errno;
use nix::fcntl::FcntlArg;
use nix::fcntl::OFlag;
use nix::poll::PollFd;
use nix::poll::PollFlags;
use nix::poll::PollTimeout;
use nix::sys::stat::Mode;

use crate::check::TestResult;
use crate::module::cfs_path;
use crate::msg;
use crate::sys;

/// How long a test waits for a message it expects.
pub const EXPECT: Duration = Duration::from_secs(5);

pub struct Venus {
    fd: Arc<OwnedFd>,
    pub minor: u32,
}

impl Venus {
    pub fn try_open(minor: u32, flags: OFlag) -> Result<Self, Errno> {
        let fd = nix::fcntl::open(
            cfs_path(minor).as_str(),
            OFlag::O_RDWR | OFlag::O_CLOEXEC | flags,
            Mode::empty(),
        )?;
        Ok(Self {
            fd: Arc::new(fd),
            minor,
        })
    }

    pub fn open(minor: u32) -> Result<Self, String> {
        Self::try_open(minor, OFlag::empty()).map_err(|e| format!("open {}: {e}", cfs_path(minor)))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The file for a reader thread; the device stays open until every clone is gone.
    pub fn shared(&self) -> Arc<OwnedFd> {
        self.fd.clone()
    }

    pub fn read_into(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        nix::unistd::read(self.fd(), buf)
    }

    /// One blocking read with room for any message.
    pub fn read_msg(&self) -> Result<Vec<u8>, Errno> {
        read_msg(self.fd())
    }

    pub fn set_nonblock(&self, on: bool) -> Result<(), Errno> {
        set_nonblock(self.fd(), on)
    }

    /// A read with O_NONBLOCK set for the duration.
    pub fn read_nonblock(&self) -> Result<Vec<u8>, Errno> {
        self.set_nonblock(true)?;
        let r = self.read_msg();
        self.set_nonblock(false)?;
        r
    }

    /// Waits up to `within` for a message and reads it.
    pub fn read_within(&self, within: Duration) -> Result<Vec<u8>, String> {
        if !wait_readable(self.fd(), within).map_err(|e| format!("poll: {e}"))? {
            return Err(format!("no message for Venus within {within:?}"));
        }
        self.read_msg().map_err(|e| format!("read: {e}"))
    }

    /// The next message, which the test expects to come.
    pub fn next(&self) -> Result<Vec<u8>, String> {
        self.read_within(EXPECT)
    }

    /// The next message and its header.
    pub fn next_request(&self) -> Result<(InHdr, Vec<u8>), String> {
        let m = self.next()?;
        Ok((msg::in_hdr(&m)?, m))
    }

    /// Fails unless nothing is queued for Venus.
    pub fn expect_empty(&self, when: &str) -> TestResult {
        match self.read_nonblock() {
            Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(format!("{when}: read failed with {e}, want EAGAIN")),
            Ok(m) => Err(format!(
                "{when}: Venus read a message (opcode {}, {} bytes), want EAGAIN",
                msg::in_hdr(&m).map(|h| h.opcode).unwrap_or(u32::MAX),
                m.len()
            )),
        }
    }

    pub fn write(&self, bytes: &[u8]) -> Result<usize, Errno> {
        nix::unistd::write(self.fd(), bytes)
    }

    /// Writes a reply and fails unless the whole count is accepted.
    pub fn reply(&self, bytes: &[u8]) -> TestResult {
        match self.write(bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(format!("reply write returned {n}, want {}", bytes.len())),
            Err(e) => Err(format!("reply write ({} bytes): {e}", bytes.len())),
        }
    }

    /// One CODA_PSDEV_IOC_EXCHANGE: writes the records `write`, reads with `read_room`.
    pub fn exchange(&self, write: &[u8], read_room: usize) -> Exchanged {
        exchange(self.fd(), write.to_vec(), 0, read_room)
    }

    pub fn stats(&self) -> Result<PsdevStats, String> {
        sys::psdev_stats(self.fd()).map_err(|e| format!("CODA_PSDEV_IOC_STATS: {e}"))
    }
}

/// What one CODA_PSDEV_IOC_EXCHANGE did.
#[derive(Debug)]
pub struct Exchanged {
    pub result: Result<(), Errno>,
    /// The argument as the driver gave it back.
    pub x: PsdevExchange,
    /// The write buffer after the call, results stored.
    pub written: Vec<u8>,
    /// The read buffer up to read_consumed.
    pub read: Vec<u8>,
}

impl Exchanged {
    /// The results of the records written, as far as write_consumed reaches.
    pub fn results(&self) -> Result<Vec<i32>, String> {
        let done = self
            .written
            .get(..self.x.write_consumed as usize)
            .ok_or("write_consumed past the buffer")?;
        Ok(msg::parse_records(done)?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// The messages read.
    pub fn msgs(&self) -> Result<Vec<Vec<u8>>, String> {
        let recs = msg::parse_records(&self.read)?;
        if let Some((r, _)) = recs.iter().find(|(r, _)| *r != 0) {
            return Err(format!("a record read with result {r}, want 0"));
        }
        Ok(recs.into_iter().map(|(_, m)| m).collect())
    }

    /// Fails unless the call succeeded.
    pub fn ok(self, what: &str) -> Result<Self, String> {
        match self.result {
            Ok(()) => Ok(self),
            Err(e) => Err(format!("{what}: CODA_PSDEV_IOC_EXCHANGE failed with {e}")),
        }
    }
}

/// CODA_PSDEV_IOC_EXCHANGE on `fd` from the given write_consumed.
pub fn exchange(
    fd: BorrowedFd<'_>,
    mut written: Vec<u8>,
    write_consumed: u32,
    read_room: usize,
) -> Exchanged {
    let mut read = vec![0u8; read_room];
    let mut x = PsdevExchange {
        write_buf: written.as_mut_ptr() as u64,
        write_size: written.len() as u32,
        write_consumed,
        read_buf: read.as_mut_ptr() as u64,
        read_size: read.len() as u32,
        read_consumed: 0,
    };
    // SAFETY: both buffers are ours, sized as the argument says, and used by nothing else
    // until the call returns.
    let result = unsafe { sys::exchange(fd, &mut x) };
    read.truncate((x.read_consumed as usize).min(read_room));
    Exchanged {
        result,
        x,
        written,
        read,
    }
}

pub fn read_msg(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; coda_msg::VC_MAXMSGSIZE];
    let n = nix::unistd::read(fd, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

pub fn set_nonblock(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    let flags = OFlag::from_bits_retain(nix::fcntl::fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(flags)).map(drop)
}

/// Waits up to `within` for POLLIN.
pub fn wait_readable(fd: BorrowedFd<'_>, within: Duration) -> Result<bool, Errno> {
    let ms = u16::try_from(within.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let n = nix::poll::poll(&mut fds, PollTimeout::from(ms))?;
    Ok(n > 0
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN)))
}

/// The ready mask of `fd` right now, for every event the device reports.
pub fn poll_now(fd: BorrowedFd<'_>) -> Result<PollFlags, Errno> {
    let all =
        PollFlags::POLLIN | PollFlags::POLLRDNORM | PollFlags::POLLOUT | PollFlags::POLLWRNORM;
    let mut fds = [PollFd::new(fd, all)];
    nix::poll::poll(&mut fds, PollTimeout::ZERO)?;
    Ok(fds[0].revents().unwrap_or(PollFlags::empty()))
}
