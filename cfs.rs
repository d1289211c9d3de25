// SPDX-License-Identifier: GPL-2.0

//! `/dev/cfsN` as Venus sees it: read takes one whole message, write answers one upcall or
//! delivers a downcall, poll says whether a message waits, ioctl answers the kernel version
//! and the statistics.

use kernel::fs::file;
use kernel::fs::File;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::seq_print;
use kernel::sync::poll::PollTable;
use kernel::sync::Arc;
use kernel::sync::ArcBorrow;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use zerocopy::FromBytes;
use zerocopy::IntoBytes;

use crate::bridge;
use crate::coda_msg;
use crate::coda_msg::OutHdr;
use crate::control::DowncallHub;
use crate::raw;
use crate::raw::FileOps;
use crate::upcall::TakenBytes;
use crate::upcall::VenusComm;

/// What every open of one `/dev/cfsN` shares.
pub(crate) struct CfsCtx {
    pub(crate) comm: Arc<VenusComm>,
    pub(crate) hub: Arc<DowncallHub>,
}

/// Venus's open file of a `/dev/cfsN`.
pub(crate) struct VenusFile {
    comm: Arc<VenusComm>,
    hub: Arc<DowncallHub>,
}

pub(crate) struct CfsOps;

impl VenusFile {
    fn read(&self, file: &File, mut out: UserSliceWriter) -> Result<usize> {
        loop {
            if let Some(t) = self.comm.take_next(out.len())? {
                let copied = self.comm.with_taken_bytes(&t, |b| match b {
                    TakenBytes::Signal(hdr) => out
                        .write_slice(hdr.as_bytes())
                        .map(|()| hdr.as_bytes().len()),
                    TakenBytes::Request(bytes) => out.write_slice(bytes).map(|()| bytes.len()),
                });
                return match copied {
                    Ok(n) => {
                        self.comm.commit_read(t);
                        Ok(n)
                    }
                    // A bad buffer loses nothing: the message stays queued.
                    Err(e) => {
                        self.comm.unread(t);
                        Err(e)
                    }
                };
            }
            if file.flags() & file::flags::O_NONBLOCK != 0 {
                return Err(EAGAIN);
            }
            if self.comm.wait_readable() {
                return Err(ERESTARTSYS);
            }
        }
    }

    fn write(&self, data: UserSliceReader) -> Result<usize> {
        let count = data.len();
        let r = self.write_inner(data);
        if r.is_err() {
            self.comm.count_bad_write();
        }
        r.map(|()| count)
    }

    fn write_inner(&self, data: UserSliceReader) -> Result {
        let count = data.len();
        // A reply is at least its header; Linux and NetBSD read past short writes.
        if count < coda_msg::OUT_HDR_SIZE {
            return Err(EINVAL);
        }
        let hdr: OutHdr = {
            let mut raw = [0u8; coda_msg::OUT_HDR_SIZE];
            data.clone_reader().read_slice(&mut raw)?;
            OutHdr::read_from_bytes(&raw).map_err(|_| EINVAL)?
        };
        if coda_msg::is_downcall(hdr.opcode) {
            // Every downcall is a fixed size no larger than the output union: check before
            // copying so a huge write costs nothing.
            if count > coda_msg::OUTPUT_ARGS_SIZE {
                return Err(EINVAL);
            }
            let mut msg = KVec::new();
            data.read_all(&mut msg, GFP_KERNEL)?;
            let opcode = coda_msg::check_downcall(&msg).map_err(|_| EINVAL)?;
            let dropped = self.hub.deliver(self.comm.minor, &msg);
            self.comm.count_downcall(opcode, dropped);
            bridge::downcall(self.comm.minor, &mut msg);
            return Ok(());
        }
        if !coda_msg::is_upcall(hdr.opcode) {
            return Err(EINVAL);
        }
        let pending = self.comm.reply_begin(hdr.unique, count)?;
        // Linux copies straight into the caller's buffer under its mutex; we copy into our
        // own so a faulting copy leaves the caller waiting for a good reply.
        let mut bytes = KVec::new();
        data.read_all(&mut bytes, GFP_KERNEL)?;
        // Dropped (and the file put) unless the reply reaches its caller.
        let handle = if pending.wants_file_handle() {
            raw::attach_file_handle(&mut bytes, pending.out_cap())?
        } else {
            None
        };
        self.comm.reply_commit(pending, bytes)?;
        if let Some(h) = handle {
            h.hand_over();
        }
        Ok(())
    }

    fn ioctl(&self, cmd: u32, arg: UserPtr) -> Result<isize> {
        match cmd {
            coda_msg::CIOC_KERNEL_VERSION => {
                // Declared with a size_t, but Linux and NetBSD both store an int: so do we,
                // which works for Venus's zeroed size_t and for a caller passing an int.
                let v = coda_msg::CODA_KERNEL_VERSION;
                UserSlice::new(arg, core::mem::size_of::<u32>())
                    .writer()
                    .write_slice(v.as_bytes())?;
                Ok(0)
            }
            coda_msg::CODA_PSDEV_IOC_STATS => {
                let stats = self.comm.stats_bytes()?;
                UserSlice::new(arg, core::mem::size_of::<coda_msg::PsdevStats>())
                    .writer()
                    .write_slice(stats.as_bytes())?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }
}

impl FileOps for CfsOps {
    type Ctx = CfsCtx;
    type Ptr = Arc<VenusFile>;

    fn open(ctx: &CfsCtx, _file: &File) -> Result<Arc<VenusFile>> {
        if !raw::current_may_open() {
            return Err(EPERM);
        }
        let f = Arc::new(
            VenusFile {
                comm: ctx.comm.clone(),
                hub: ctx.hub.clone(),
            },
            GFP_KERNEL,
        )?;
        f.comm.venus_open()?;
        Ok(f)
    }

    fn release(this: Arc<VenusFile>) {
        this.comm.venus_close();
    }

    fn read(this: ArcBorrow<'_, VenusFile>, file: &File, out: UserSliceWriter) -> Result<usize> {
        this.read(file, out)
    }

    fn write(this: ArcBorrow<'_, VenusFile>, _file: &File, data: UserSliceReader) -> Result<usize> {
        this.write(data)
    }

    fn ioctl(
        this: ArcBorrow<'_, VenusFile>,
        _file: &File,
        cmd: u32,
        arg: UserPtr,
    ) -> Result<isize> {
        this.ioctl(cmd, arg)
    }

    fn poll(this: ArcBorrow<'_, VenusFile>, file: &File, table: PollTable<'_>) -> u32 {
        table.register_wait(file, this.comm.readers());
        if this.comm.readable() {
            raw::POLL_READABLE | raw::POLL_WRITABLE
        } else {
            raw::POLL_WRITABLE
        }
    }

    fn show_fdinfo(this: ArcBorrow<'_, VenusFile>, m: &SeqFile) {
        let Ok(st) = this.comm.stats_bytes() else {
            return;
        };
        let sum = |f: fn(&coda_msg::PsdevOpStats) -> u64| st.op.iter().map(f).sum::<u64>();
        seq_print!(m, "coda_minor:\t{}\n", st.minor);
        seq_print!(m, "coda_outstanding:\t{}\n", st.outstanding);
        seq_print!(m, "coda_peak_outstanding:\t{}\n", st.peak_outstanding);
        seq_print!(m, "coda_pending:\t{}\n", st.pending);
        seq_print!(m, "coda_processing:\t{}\n", st.processing);
        seq_print!(m, "coda_mem_bytes:\t{}\n", st.mem_bytes);
        seq_print!(m, "coda_calls:\t{}\n", sum(|o| o.calls));
        seq_print!(m, "coda_replies:\t{}\n", sum(|o| o.replies));
        seq_print!(
            m,
            "coda_intr_before_read:\t{}\n",
            sum(|o| o.intr_before_read)
        );
        seq_print!(m, "coda_intr_after_read:\t{}\n", sum(|o| o.intr_after_read));
        seq_print!(m, "coda_signals_sent:\t{}\n", sum(|o| o.signals_sent));
        seq_print!(m, "coda_timeouts:\t{}\n", sum(|o| o.timeouts));
        seq_print!(m, "coda_aborted:\t{}\n", sum(|o| o.aborted));
        seq_print!(m, "coda_bad_replies:\t{}\n", sum(|o| o.bad_replies));
        seq_print!(m, "coda_async_read:\t{}\n", sum(|o| o.async_read));
        seq_print!(m, "coda_bytes_in:\t{}\n", sum(|o| o.bytes_in));
        seq_print!(m, "coda_bytes_out:\t{}\n", sum(|o| o.bytes_out));
        seq_print!(m, "coda_downcalls:\t{}\n", st.downcalls);
        seq_print!(m, "coda_downcalls_dropped:\t{}\n", st.downcalls_dropped);
        seq_print!(m, "coda_bad_writes:\t{}\n", st.bad_writes);
        for (op, o) in st.op.iter().enumerate().filter(|(_, o)| o.calls > 0) {
            seq_print!(
                m,
                "coda_op{}:\tcalls {} replies {} intr {}/{} timeouts {} aborted {}\n",
                op,
                o.calls,
                o.replies,
                o.intr_before_read,
                o.intr_after_read,
                o.timeouts,
                o.aborted
            );
        }
    }
}
