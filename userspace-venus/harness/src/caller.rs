// SPDX-License-Identifier: GPL-2.0

//! The caller side: /dev/coda_ctl, through which the tests make upcalls as a file system
//! would and read the downcalls Venus wrote.

use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use coda_msg::CtlCall;
use coda_msg::CtlDowncall;
use coda_msg::PsdevStats;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use zerocopy::FromBytes;

use crate::module::CTL_PATH;
use crate::sys;
use crate::venus;
use crate::worker::Worker;

/// What an upcall's reply buffer holds before the call, so a test sees which bytes the
/// driver wrote.
pub const SENTINEL: u8 = 0xA5;

/// A completed synchronous call.
#[derive(Debug)]
pub struct Reply {
    pub unique: u32,
    pub out_len: usize,
    /// The whole reply buffer (`out_cap` bytes).
    pub buf: Vec<u8>,
}

impl Reply {
    /// The reply Venus wrote.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.out_len.min(self.buf.len())]
    }
}

pub type CallResult = Result<Reply, Errno>;

#[derive(Clone)]
pub struct Ctl {
    fd: Arc<OwnedFd>,
}

impl Ctl {
    pub fn try_open(flags: OFlag) -> Result<Self, Errno> {
        let fd = nix::fcntl::open(
            CTL_PATH,
            OFlag::O_RDWR | OFlag::O_CLOEXEC | flags,
            Mode::empty(),
        )?;
        Ok(Self { fd: Arc::new(fd) })
    }

    pub fn open() -> Result<Self, String> {
        Self::try_open(OFlag::empty()).map_err(|e| format!("open {CTL_PATH}: {e}"))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `CODA_CTL_IOC_CALL` with `msg` and a reply buffer of `out_cap` bytes.
    pub fn call_flags(&self, minor: u32, flags: u32, msg: &[u8], out_cap: usize) -> CallResult {
        let mut out = vec![SENTINEL; out_cap];
        let mut c = CtlCall {
            minor,
            flags,
            in_: msg.as_ptr() as u64,
            in_len: msg.len() as u32,
            out_cap: out_cap as u32,
            out: out.as_mut_ptr() as u64,
            out_len: 0,
            unique: 0,
        };
        // SAFETY: `in_` and `out` point at `msg` and `out`, of exactly `in_len` and
        // `out_cap` bytes, which live across the call and nothing else touches.
        unsafe { sys::ctl_call(self.fd(), &mut c) }?;
        Ok(Reply {
            unique: c.unique,
            out_len: c.out_len as usize,
            buf: out,
        })
    }

    /// A synchronous upcall.
    pub fn call(&self, minor: u32, msg: &[u8], out_cap: usize) -> CallResult {
        self.call_flags(minor, 0, msg, out_cap)
    }

    /// An asynchronous upcall: returns its unique once queued.
    pub fn call_async(&self, minor: u32, msg: &[u8]) -> Result<u32, Errno> {
        let r = self.call_flags(minor, coda_msg::CODA_CTL_ASYNC, msg, coda_msg::OUT_HDR_SIZE)?;
        if r.out_len != 0 {
            return Err(Errno::EPROTO);
        }
        Ok(r.unique)
    }

    /// A synchronous upcall made by a new thread, which blocks in it.
    pub fn spawn_call(
        &self,
        name: &str,
        minor: u32,
        msg: Vec<u8>,
        out_cap: usize,
    ) -> Result<Worker<CallResult>, String> {
        let ctl = self.clone();
        Worker::spawn(name, move || ctl.call(minor, &msg, out_cap))
    }

    pub fn stats(&self, minor: u32) -> Result<PsdevStats, Errno> {
        sys::ctl_stats(self.fd(), minor)
    }

    /// Reads one downcall record into a buffer of `room` bytes.
    pub fn read_record_room(&self, room: usize) -> Result<(CtlDowncall, Vec<u8>), Errno> {
        let mut buf = vec![0u8; room];
        let n = nix::unistd::read(self.fd(), &mut buf)?;
        let (hdr, rest) = CtlDowncall::read_from_prefix(&buf[..n]).map_err(|_| Errno::EPROTO)?;
        Ok((hdr, rest.to_vec()))
    }

    /// Reads one downcall record.
    pub fn read_record(&self) -> Result<(CtlDowncall, Vec<u8>), Errno> {
        self.read_record_room(8 + coda_msg::VC_MAXMSGSIZE)
    }

    /// Reads one record with O_NONBLOCK set for the duration.
    pub fn read_record_nonblock(&self) -> Result<(CtlDowncall, Vec<u8>), Errno> {
        venus::set_nonblock(self.fd(), true)?;
        let r = self.read_record();
        venus::set_nonblock(self.fd(), false)?;
        r
    }

    /// Waits up to `within` for a record and reads it.
    pub fn next_record(&self, within: Duration) -> Result<(CtlDowncall, Vec<u8>), String> {
        if !venus::wait_readable(self.fd(), within).map_err(|e| format!("poll {CTL_PATH}: {e}"))? {
            return Err(format!("no downcall record within {within:?}"));
        }
        self.read_record()
            .map_err(|e| format!("read {CTL_PATH}: {e}"))
    }
}
