// SPDX-License-Identifier: GPL-2.0

//! `/dev/cfsN` as Venus sees it: read takes one whole message, write answers one upcall or
//! delivers a downcall, poll says whether a message waits, ioctl answers the kernel version
//! and the statistics, and CODA_PSDEV_IOC_EXCHANGE does many writes and reads in one call.

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
use crate::coda_msg::PsdevExchange;
use crate::coda_msg::PsdevRecord;
use crate::control::DowncallHub;
use crate::raw;
use crate::raw::FileOps;
use crate::upcall::Taken;
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

/// Messages an exchange takes from the queues per acquisition of the device lock.
const EXCHANGE_BATCH: usize = 16;

impl VenusFile {
    fn read(&self, file: &File, mut out: UserSliceWriter) -> Result<usize> {
        let t = self.wait_next(file, out.len(), false)?;
        self.comm.copy_out(t, |bytes| out.write_slice(bytes))
    }

    /// Takes the next message if it fits `room`, waiting for one as a blocking read does:
    /// EAGAIN with O_NONBLOCK, ERESTARTSYS on a signal, EMSGSIZE when it does not fit.
    /// `batch`: for the exchange.
    fn wait_next(&self, file: &File, room: usize, batch: bool) -> Result<Taken> {
        let nonblock = file.flags() & file::flags::O_NONBLOCK != 0;
        self.comm.take_waiting(room, nonblock, batch)
    }

    /// One message written by Venus: with write(2) (`by_write`) or as an exchange record.
    fn write(&self, data: UserSliceReader, by_write: bool) -> Result<usize> {
        let count = data.len();
        let r = self.write_inner(data, by_write);
        if r.is_err() {
            self.comm.count_bad_write();
        }
        r.map(|()| count)
    }

    fn write_inner(&self, data: UserSliceReader, by_write: bool) -> Result {
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
            // The file system's error is Venus's, as Linux's `coda_psdev_write` returns it.
            return bridge::downcall(self.comm.minor, &mut msg);
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
        self.comm.reply_commit(pending, bytes, by_write)?;
        if let Some(h) = handle {
            h.hand_over();
        }
        Ok(())
    }

    /// CODA_PSDEV_IOC_EXCHANGE: the writes, then the reads of one Venus cycle (see the
    /// uapi header). The consumed counts go back to Venus whatever the outcome, so a call
    /// ended by a signal is repeated without writing a reply twice or losing a message.
    fn exchange(&self, file: &File, arg: UserPtr) -> Result<isize> {
        const SIZE: usize = core::mem::size_of::<PsdevExchange>();
        let (mut reader, mut writer) = UserSlice::new(arg, SIZE).reader_writer();
        let mut raw = [0u8; SIZE];
        reader.read_slice(&mut raw)?;
        // Fails now, before anything is written or read, if the counts could not go back.
        UserSlice::new(arg, SIZE).writer().write_slice(&raw)?;
        let mut x = PsdevExchange::read_from_bytes(&raw).map_err(|_| EINVAL)?;
        // Every field is checked before anything is written or read.
        if x.write_size as usize > coda_msg::CODA_PSDEV_EXCHANGE_MAX
            || x.write_consumed > x.write_size
            || x.read_consumed > x.read_size
        {
            return Err(EINVAL);
        }
        // Messages read are committed before the counts go back: a Venus that unmaps the
        // structure during the call loses them, as binder's BINDER_WRITE_READ would.
        let r = self
            .exchange_writes(&mut x)
            .and_then(|()| self.exchange_reads(file, &mut x));
        writer.write_slice(x.as_bytes())?;
        r.map(|()| 0)
    }

    fn exchange_writes(&self, x: &mut PsdevExchange) -> Result {
        let size = x.write_size as usize;
        let mut at = x.write_consumed as usize;
        let buf = UserPtr::from_addr(x.write_buf as usize);
        while at < size {
            let left = size - at;
            let rec = buf.wrapping_byte_add(at);
            let mut hdr = [0u8; coda_msg::RECORD_HDR_SIZE];
            if left < hdr.len() {
                return Err(EINVAL);
            }
            UserSlice::new(rec, hdr.len())
                .reader()
                .read_slice(&mut hdr)?;
            let len = PsdevRecord::read_from_bytes(&hdr).map_err(|_| EINVAL)?.len as usize;
            if len > left - hdr.len() {
                return Err(EINVAL);
            }
            let msg = UserSlice::new(rec.wrapping_byte_add(hdr.len()), len).reader();
            let result = match self.write(msg, false) {
                Ok(_) => 0i32,
                Err(e) => e.to_errno(),
            };
            // Counted as consumed before the result is stored: a fault there must not
            // make Venus write the record again.
            at += coda_msg::record_size(len).min(left);
            x.write_consumed = at as u32;
            UserSlice::new(rec.wrapping_byte_add(4), 4)
                .writer()
                .write_slice(result.as_bytes())?;
        }
        Ok(())
    }

    fn exchange_reads(&self, file: &File, x: &mut PsdevExchange) -> Result {
        let at = x.read_consumed as usize;
        // One call reads at most CODA_PSDEV_EXCHANGE_MAX bytes: its loop is bounded.
        let size = (x.read_size as usize).min(at + coda_msg::CODA_PSDEV_EXCHANGE_MAX);
        if at == size {
            return Ok(());
        }
        // No message could fit: fail now rather than wait for one.
        if size - at < coda_msg::RECORD_HDR_SIZE + coda_msg::IN_HDR_SIZE {
            return Err(EMSGSIZE);
        }
        let buf = UserPtr::from_addr(x.read_buf as usize);
        // The first message is waited for, and its errors are the call's.
        let t = self.wait_next(file, size - at - coda_msg::RECORD_HDR_SIZE, true)?;
        self.comm
            .copy_out(t, |bytes| Self::put_record(buf, size, x, bytes))?;
        // After it the call takes what is queued, a batch per acquisition of the device
        // lock. A message that does not fit, or whose copy faults, stays queued: what was
        // read before it is Venus's.
        loop {
            let mut batch: [Option<Taken>; EXCHANGE_BATCH] = [const { None }; EXCHANGE_BATCH];
            let mut room = size - x.read_consumed as usize;
            let n = self.comm.take_batch(&mut batch, |len| {
                if coda_msg::RECORD_HDR_SIZE + len > room {
                    return false;
                }
                room -= coda_msg::record_size(len).min(room);
                true
            });
            let mut copied = 0;
            for t in batch[..n].iter().flatten() {
                if self
                    .comm
                    .with_bytes(t, |bytes| Self::put_record(buf, size, x, bytes))
                    .is_err()
                {
                    break;
                }
                copied += 1;
            }
            self.comm.settle(&mut batch[..n], copied);
            if copied < EXCHANGE_BATCH {
                return Ok(());
            }
        }
    }

    /// Copies one message to Venus as a record at `read_consumed`, which moves past it (the
    /// last record of the buffer may lack its padding).
    fn put_record(buf: UserPtr, size: usize, x: &mut PsdevExchange, bytes: &[u8]) -> Result {
        let at = x.read_consumed as usize;
        let left = size - at;
        let mut out = UserSlice::new(buf.wrapping_byte_add(at), left).writer();
        let rec = PsdevRecord {
            len: bytes.len() as u32,
            result: 0,
        };
        out.write_slice(rec.as_bytes())?;
        out.write_slice(bytes)?;
        x.read_consumed = (at + coda_msg::record_size(bytes.len()).min(left)) as u32;
        Ok(())
    }

    fn ioctl(&self, file: &File, cmd: u32, arg: UserPtr) -> Result<isize> {
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
            coda_msg::CODA_PSDEV_IOC_EXCHANGE => self.exchange(file, arg),
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
        this.write(data, true)
    }

    fn ioctl(this: ArcBorrow<'_, VenusFile>, file: &File, cmd: u32, arg: UserPtr) -> Result<isize> {
        this.ioctl(file, cmd, arg)
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
        seq_print!(m, "coda_wakes_skipped:\t{}\n", st.wakes_skipped);
        seq_print!(m, "coda_nudges:\t{}\n", st.nudges);
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
