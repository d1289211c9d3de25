// SPDX-License-Identifier: GPL-2.0

//! The control device `/dev/coda_ctl`: a root process makes upcalls through it as the
//! kernel's Coda file system does (the same queue, CODA_SIGNAL and close behaviour; the
//! signal and timeout rules are in `VenusComm::patience`), and reads the downcalls Venus
//! wrote. The tests and the benchmarks drive the engine through it.

use kernel::fs::file;
use kernel::fs::File;
use kernel::new_mutex;
use kernel::new_poll_condvar;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::seq_print;
use kernel::sync::poll::PollCondVar;
use kernel::sync::poll::PollTable;
use kernel::sync::Arc;
use kernel::sync::ArcBorrow;
use kernel::sync::Mutex;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use zerocopy::FromBytes;
use zerocopy::IntoBytes;

use crate::coda_msg;
use crate::coda_msg::CtlCall;
use crate::coda_msg::CtlDowncall;
use crate::raw;
use crate::raw::FileOps;
use crate::upcall::VenusComm;

/// A downcall waiting for one listener.
struct Downcall {
    minor: u32,
    msg: KVec<u8>,
}

/// One open file of the control device: it receives every downcall written after it was
/// opened.
#[pin_data]
pub(crate) struct Listener {
    #[pin]
    queue: Mutex<KVVec<Downcall>>,
    #[pin]
    readable: PollCondVar,
}

/// Where Venus's downcalls go: every open control file.
#[pin_data]
pub(crate) struct DowncallHub {
    #[pin]
    listeners: Mutex<KVec<Arc<Listener>>>,
}

impl DowncallHub {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                listeners <- new_mutex!(KVec::new(), "DowncallHub::listeners"),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues a copy of `msg` for every listener; returns how many could not take it
    /// (full queue or no memory).
    pub(crate) fn deliver(&self, minor: u32, msg: &[u8]) -> u64 {
        let listeners = self.listeners.lock();
        let mut dropped = 0;
        for l in listeners.iter() {
            let mut q = l.queue.lock();
            let queued = q.len() < coda_msg::CODA_CTL_DOWNCALL_QUEUE
                && KVec::from_elem(0u8, msg.len(), GFP_KERNEL)
                    .ok()
                    .and_then(|mut copy| {
                        copy.copy_from_slice(msg);
                        q.push(Downcall { minor, msg: copy }, GFP_KERNEL).ok()
                    })
                    .is_some();
            drop(q);
            if queued {
                l.readable.notify_all();
            } else {
                dropped += 1;
            }
        }
        dropped
    }

    fn subscribe(&self, l: Arc<Listener>) -> Result {
        self.listeners.lock().push(l, GFP_KERNEL)?;
        Ok(())
    }

    fn unsubscribe(&self, l: &Arc<Listener>) {
        self.listeners.lock().retain(|x| !Arc::ptr_eq(x, l));
    }
}

/// What the control device's files share.
pub(crate) struct CtlCtx {
    pub(crate) comms: KVec<Arc<VenusComm>>,
    pub(crate) hub: Arc<DowncallHub>,
}

/// An open file of the control device.
pub(crate) struct ControlFile {
    comms: KVec<Arc<VenusComm>>,
    hub: Arc<DowncallHub>,
    listener: Arc<Listener>,
}

pub(crate) struct CtlOps;

impl ControlFile {
    fn comm(&self, minor: u32) -> Result<&Arc<VenusComm>> {
        self.comms.get(minor as usize).ok_or(EINVAL)
    }

    fn call(&self, arg: UserPtr) -> Result<isize> {
        let user = UserSlice::new(arg, core::mem::size_of::<CtlCall>());
        let (mut reader, mut writer) = user.reader_writer();
        let mut raw = [0u8; core::mem::size_of::<CtlCall>()];
        reader.read_slice(&mut raw)?;
        let mut c = CtlCall::read_from_bytes(&raw).map_err(|_| EINVAL)?;
        if c.flags & !coda_msg::CODA_CTL_ASYNC != 0 {
            return Err(EINVAL);
        }
        let comm = self.comm(c.minor)?;
        let in_len = c.in_len as usize;
        if !(coda_msg::IN_HDR_SIZE..=coda_msg::VC_MAXMSGSIZE).contains(&in_len) {
            return Err(EINVAL);
        }
        let mut msg = KVec::new();
        UserSlice::new(UserPtr::from_addr(c.in_ as usize), in_len)
            .read_all(&mut msg, GFP_KERNEL)?;
        if c.flags & coda_msg::CODA_CTL_ASYNC != 0 {
            let up = comm.submit_async(msg)?;
            c.unique = up.unique();
            c.out_len = 0;
        } else {
            let cap = c.out_cap as usize;
            let reply = comm.call(msg, cap)?;
            // The caller sized `out` with out_cap, and the reply fits it.
            UserSlice::new(UserPtr::from_addr(c.out as usize), reply.bytes.len())
                .writer()
                .write_slice(&reply.bytes)?;
            c.unique = reply.unique;
            c.out_len = reply.bytes.len() as u32;
        }
        writer.write_slice(c.as_bytes())?;
        Ok(0)
    }

    fn stats(&self, arg: UserPtr) -> Result<isize> {
        let size = core::mem::size_of::<coda_msg::PsdevStats>();
        let (mut reader, mut writer) = UserSlice::new(arg, size).reader_writer();
        let mut head = [0u8; 8];
        reader.read_slice(&mut head)?;
        let minor = u32::from_ne_bytes([head[4], head[5], head[6], head[7]]);
        let stats = self.comm(minor)?.stats_bytes()?;
        writer.write_slice(stats.as_bytes())?;
        Ok(0)
    }

    fn read(&self, file: &File, mut out: UserSliceWriter) -> Result<usize> {
        let d = self.take_downcall(file, out.len())?;
        let hdr = CtlDowncall {
            minor: d.minor,
            len: d.msg.len() as u32,
        };
        // Copied with no lock held: a reader whose buffer faults slowly (userfaultfd, a
        // file on a slow mount) must not hold up Venus's downcalls, which take this
        // listener's lock to queue for it.
        match out
            .write_slice(hdr.as_bytes())
            .and_then(|()| out.write_slice(&d.msg))
        {
            Ok(()) => Ok(core::mem::size_of::<CtlDowncall>() + d.msg.len()),
            Err(e) => {
                // A fault leaves the record first in line.
                let mut q = self.listener.queue.lock();
                q.reserve(1, GFP_KERNEL)?;
                q.insert_within_capacity(0, d).map_err(|_| ENOMEM)?;
                Err(e)
            }
        }
    }

    /// Takes the oldest downcall if a buffer of `room` bytes can hold it, waiting for one
    /// as a blocking read does: EAGAIN with O_NONBLOCK, ERESTARTSYS on a signal, EMSGSIZE
    /// (the record stays queued) when it does not fit.
    fn take_downcall(&self, file: &File, room: usize) -> Result<Downcall> {
        let mut q = self.listener.queue.lock();
        loop {
            if let Some(d) = q.first() {
                if room < core::mem::size_of::<CtlDowncall>() + d.msg.len() {
                    return Err(EMSGSIZE);
                }
                return q.remove(0).map_err(|_| EINVAL);
            }
            if file.flags() & file::flags::O_NONBLOCK != 0 {
                return Err(EAGAIN);
            }
            if self.listener.readable.wait_interruptible(&mut q) {
                return Err(ERESTARTSYS);
            }
        }
    }
}

impl FileOps for CtlOps {
    type Ctx = CtlCtx;
    type Ptr = Arc<ControlFile>;

    fn open(ctx: &CtlCtx, _file: &File) -> Result<Arc<ControlFile>> {
        if !raw::current_may_open() {
            return Err(EPERM);
        }
        let mut comms = KVec::with_capacity(ctx.comms.len(), GFP_KERNEL)?;
        for c in ctx.comms.iter() {
            comms.push(c.clone(), GFP_KERNEL)?;
        }
        let listener = Arc::pin_init(
            pin_init!(Listener {
                queue <- new_mutex!(KVVec::new(), "Listener::queue"),
                readable <- new_poll_condvar!("Listener::readable"),
            }),
            GFP_KERNEL,
        )?;
        ctx.hub.subscribe(listener.clone())?;
        Ok(Arc::new(
            ControlFile {
                comms,
                hub: ctx.hub.clone(),
                listener,
            },
            GFP_KERNEL,
        )?)
    }

    fn release(this: Arc<ControlFile>) {
        this.hub.unsubscribe(&this.listener);
    }

    fn read(this: ArcBorrow<'_, ControlFile>, file: &File, out: UserSliceWriter) -> Result<usize> {
        this.read(file, out)
    }

    fn write(
        _this: ArcBorrow<'_, ControlFile>,
        _file: &File,
        _data: UserSliceReader,
    ) -> Result<usize> {
        Err(EINVAL)
    }

    fn ioctl(
        this: ArcBorrow<'_, ControlFile>,
        _file: &File,
        cmd: u32,
        arg: UserPtr,
    ) -> Result<isize> {
        match cmd {
            coda_msg::CODA_CTL_IOC_CALL => this.call(arg),
            coda_msg::CODA_CTL_IOC_STATS => this.stats(arg),
            _ => Err(ENOTTY),
        }
    }

    fn poll(this: ArcBorrow<'_, ControlFile>, file: &File, table: PollTable<'_>) -> u32 {
        table.register_wait(file, &this.listener.readable);
        if this.listener.queue.lock().is_empty() {
            raw::POLL_WRITABLE
        } else {
            raw::POLL_READABLE | raw::POLL_WRITABLE
        }
    }

    fn show_fdinfo(this: ArcBorrow<'_, ControlFile>, m: &SeqFile) {
        seq_print!(m, "coda_devices:\t{}\n", this.comms.len());
        seq_print!(
            m,
            "coda_downcalls_queued:\t{}\n",
            this.listener.queue.lock().len()
        );
    }
}
