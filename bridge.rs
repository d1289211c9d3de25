// SPDX-License-Identifier: GPL-2.0

//! The bridge to the kernel's own Coda file system (`fs/coda`, built against this driver
//! by `make coda-fs`): its upcalls go through the same engine as everyone's, and Venus's
//! downcalls reach its caches. [`crate::raw`] holds the C entry points; this is their logic.

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::coda_msg;
use crate::upcall::VenusComm;

/// `coda_psdev_upcall` flag: queue the upcall, await no reply.
pub(crate) const UPCALL_ASYNC: u32 = 1;
/// `coda_psdev_upcall` flag: only SIGKILL ends the wait, which has no timeout (the file
/// system's `hard` sysctl).
pub(crate) const UPCALL_NOINTR: u32 = 2;

/// The file system's downcall handler: `(minor, message, length) -> errno`.
pub(crate) type DowncallFn = unsafe extern "C" fn(i32, *mut u8, i32) -> i32;

/// What the C entry points reach through [`FS_BRIDGE`].
pub(crate) struct Bridge {
    comms: KVec<Arc<VenusComm>>,
    /// Misc minor of each `/dev/cfsN`, for mount's device check.
    minors: KVec<u32>,
}

kernel::sync::global_lock! {
    // SAFETY: initialised in the module initialiser, before any device or export is usable.
    pub(crate) unsafe(uninit) static FS_BRIDGE: Mutex<Bridge> = Bridge {
        comms: KVec::new(),
        minors: KVec::new(),
    };
}

kernel::sync::global_lock! {
    // SAFETY: initialised in the module initialiser, before any device or export is usable.
    // Its own lock: the file system calls into us with its `vc_mutex` held (mount) and
    // takes that mutex inside a downcall, so the downcall must not hold `FS_BRIDGE`.
    pub(crate) unsafe(uninit) static FS_DOWNCALL: Mutex<Option<DowncallFn>> = None;
}

/// Fills the bridge once the devices exist.
pub(crate) fn publish(comms: &[Arc<VenusComm>], minors: &[u32]) -> Result {
    let mut b = FS_BRIDGE.lock();
    for c in comms {
        b.comms.push(c.clone(), GFP_KERNEL)?;
    }
    b.minors.extend_from_slice(minors, GFP_KERNEL)?;
    Ok(())
}

/// Empties the bridge at module exit (the file system module, which uses our exports, is
/// gone by then).
pub(crate) fn withdraw() {
    let mut b = FS_BRIDGE.lock();
    // Assigned, not cleared: the storage must be freed too.
    b.comms = KVec::new();
    b.minors = KVec::new();
    drop(b);
    *FS_DOWNCALL.lock() = None;
}

/// Linux's Coda file system says "Venus is not there" with ENXIO, where the engine says
/// ENODEV: its users see the errno they always saw.
fn venus_gone_is_enxio(e: Error) -> Error {
    if e == ENODEV {
        ENXIO
    } else {
        e
    }
}

fn comm(index: i32) -> Result<Arc<VenusComm>> {
    let b = FS_BRIDGE.lock();
    usize::try_from(index)
        .ok()
        .and_then(|i| b.comms.get(i))
        .cloned()
        .ok_or(ENXIO)
}

/// An upcall from the file system: `buf` holds the request and receives the reply.
/// `hard` and `timeout_secs` are the file system's sysctls (see
/// [`VenusComm::call_from_kernel`]).
pub(crate) fn upcall(
    index: i32,
    buf: &mut [u8],
    in_len: usize,
    hard: bool,
    timeout_secs: u32,
) -> Result<usize> {
    let comm = comm(index)?;
    let mut msg = KVec::with_capacity(in_len, GFP_KERNEL)?;
    msg.extend_from_slice(buf.get(..in_len).ok_or(EINVAL)?, GFP_KERNEL)?;
    let reply = comm
        .call_from_kernel(msg, buf.len(), hard, timeout_secs)
        .map_err(venus_gone_is_enxio)?;
    let n = reply.bytes.len();
    buf.get_mut(..n).ok_or(EIO)?.copy_from_slice(&reply.bytes);
    Ok(n)
}

/// An asynchronous upcall from the file system (CODA_ACCESS_INTENT's finaliser): queued
/// for Venus, no reply awaited.
pub(crate) fn upcall_async(index: i32, request: &[u8]) -> Result {
    let comm = comm(index)?;
    let mut msg = KVec::with_capacity(request.len(), GFP_KERNEL)?;
    msg.extend_from_slice(request, GFP_KERNEL)?;
    comm.submit_from_kernel(msg).map_err(venus_gone_is_enxio)
}

/// The index of the `/dev/cfsN` with this misc minor, for the file system's mount.
pub(crate) fn index_of_minor(minor: u32) -> Option<usize> {
    FS_BRIDGE.lock().minors.iter().position(|&m| m == minor)
}

/// `umount -f` of the file system on `/dev/cfs<index>`.
pub(crate) fn abort(index: i32) {
    if let Ok(c) = comm(index) {
        c.abort_fs_calls();
    }
}

/// Whether Venus has `/dev/cfs<index>` open.
pub(crate) fn venus_present(index: i32) -> bool {
    comm(index).is_ok_and(|c| c.venus_is_open())
}

pub(crate) fn set_downcall(handler: Option<DowncallFn>) {
    *FS_DOWNCALL.lock() = handler;
}

/// Hands a validated downcall to the file system, if one is loaded, and returns its
/// error. The handler lock is held across the call so that the file system cannot
/// unregister (and unload) meanwhile.
pub(crate) fn downcall(minor: u32, msg: &mut [u8]) -> Result {
    let h = FS_DOWNCALL.lock();
    match *h {
        Some(handler) if msg.len() >= coda_msg::OUT_HDR_SIZE => {
            kernel::error::to_result(crate::raw::call_downcall(handler, minor, msg))
        }
        _ => Ok(()),
    }
}
