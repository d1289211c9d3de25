// SPDX-License-Identifier: GPL-2.0

//! Answering upcalls and sending downcalls on an open /dev/cfsN.

use crate::tree::Ino;
use crate::tree::Kind;
use crate::tree::Tree;
use crate::tree::ROOT_INO;
use coda_msg::*;
use rustix::fs::Mode;
use rustix::fs::OFlags;
use rustix::io::Errno;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::io::Seek;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::MutexGuard;
use zerocopy::Immutable;
use zerocopy::IntoBytes;

/// Settings of a running Venus.
pub struct Config {
    pub verbose: u8,
    /// Reply to synchronous CODA_ACCESS_INTENT with success (else EOPNOTSUPP).
    pub access_intent: bool,
    /// Send a downcall after every this many replies.
    pub downcall_every: Option<u64>,
    pub max_requests: Option<u64>,
    /// Sleep before each reply (to let callers time out or be interrupted).
    pub delay: Option<std::time::Duration>,
    /// Readers block in read(2) (the device was opened without O_NONBLOCK).
    pub blocking_read: bool,
    /// Readers use CODA_PSDEV_IOC_EXCHANGE (the device was opened without O_NONBLOCK).
    pub exchange: bool,
}

/// Replies for the next CODA_PSDEV_IOC_EXCHANGE, as records, and the answers they carry.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    /// Each answer and the offset of its record in `buf`.
    answers: Vec<(usize, Answer)>,
}

impl Batch {
    fn push(&mut self, a: Answer, reply: &[u8]) {
        let at = self.buf.len();
        self.buf.resize(at + record_size(reply.len()), 0);
        if let Err(e) = put_record(&mut self.buf[at..], reply) {
            fatal(format!("a {}-byte reply record: {e:?}", reply.len()));
        }
        self.answers.push((at, a));
    }
}

/// A reply made for one message, to be written; what to do once it was (or was not).
struct Answer {
    unique: u32,
    len: usize,
    /// The container of an OPEN_BY_FD, open until the reply is written.
    opened: Option<(OwnedFd, Ino)>,
    held: bool,
}

/// Record files: each record is a u32 little-endian length, then that many bytes.
#[derive(Default)]
pub struct Recording {
    /// Every upcall read.
    pub upcalls: Option<File>,
    /// Every reply and downcall the device took, in the order written.
    pub writes: Option<File>,
    /// Each file container copied back into the tree: the inode number (u32 little-endian),
    /// then the data.
    pub containers: Option<File>,
}

/// Container contents to replay, oldest first: (inode, data).
pub type ContainerQueue = VecDeque<(Ino, Vec<u8>)>;

/// Appends one record (the concatenation of `parts`) to a record file.
fn append_record(file: &Option<Mutex<File>>, parts: &[&[u8]]) {
    let Some(file) = file else {
        return;
    };
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut entry = Vec::with_capacity(4 + len);
    entry.extend_from_slice(&(len as u32).to_le_bytes());
    for p in parts {
        entry.extend_from_slice(p);
    }
    // One write_all under the lock: records from several threads never interleave.
    let mut f = file
        .lock()
        .unwrap_or_else(|_| fatal("record lock poisoned"));
    if let Err(e) = f.write_all(&entry) {
        fatal(format!("writing a record file: {e}"));
    }
}

/// Reads a file of records made by `--record-containers`: (inode, data) in order.
pub fn read_container_records(path: &std::path::Path) -> std::io::Result<ContainerQueue> {
    let bytes = std::fs::read(path)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut out = VecDeque::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len || len < 4 {
            return Err(bad("truncated record"));
        }
        let (rec, tail) = tail.split_at(len);
        let (ino, data) = rec.split_at(4);
        let ino = u32::from_le_bytes(ino.try_into().map_err(|_| bad("short record"))?);
        out.push_back((ino, data.to_vec()));
        rest = tail;
    }
    Ok(out)
}

pub struct Venus {
    pub dev: OwnedFd,
    pub tree: Mutex<Tree>,
    /// This run's container directory.
    pub cache: PathBuf,
    pub cfg: Config,
    record_upcalls: Option<Mutex<File>>,
    record_writes: Option<Mutex<File>>,
    record_containers: Option<Mutex<File>>,
    /// Contents to put into containers before they are copied back, oldest first: the data
    /// a kernel client wrote through them in a recorded run, which no upcall carries.
    replay_containers: Option<Mutex<ContainerQueue>>,
    /// Set once shutdown starts; `wake` is then readable for every poller.
    pub stop: AtomicBool,
    wake_r: OwnedFd,
    wake_w: OwnedFd,
    pub served: AtomicU64,
    /// CODA_PSDEV_IOC_EXCHANGE calls that read at least one message.
    pub exchanges: AtomicU64,
    pub downcalls: AtomicU64,
    /// Fid of the last object an upcall named, the target of periodic downcalls.
    last_ino: Mutex<Ino>,
    /// The control FIFO's `hold`: an upcall whose reply waits for `release`.
    hold: Mutex<Hold>,
    released: Condvar,
    /// The control FIFO's `container`: the next open of this file gets this FIFO (opened
    /// for writing) as its container, so that a test sees when the kernel puts it.
    fifo_container: Mutex<Option<(Ino, PathBuf)>>,
}

/// What `hold OPCODE` asked for, and whether a reply is held now.
#[derive(Default)]
struct Hold {
    /// Hold the next upcall with this opcode.
    next: Option<u32>,
    /// A reader holds a reply until `release`.
    holding: bool,
    /// The unique of the last upcall held.
    last: Option<u32>,
}

/// What to send back for one upcall.
enum Reply {
    /// The reply is in the output buffer, this long.
    Len(usize),
    /// A CODA_OPEN_BY_FD reply: the container `fd` of `ino` must stay open until the reply
    /// is written, the kernel takes it from our fd table then.
    Opened(usize, OwnedFd, Ino),
    /// Asynchronous upcalls (CODA_SIGNAL, the access-intent finishers) get no reply.
    None,
}

type Res = Result<Reply, Errno>;

/// Exits the whole process with a message: the device or the protocol broke.
pub fn fatal(msg: impl std::fmt::Display) -> ! {
    eprintln!("venus: fatal: {msg}");
    std::process::exit(1)
}

fn msg_err(e: MsgError) -> Errno {
    match e {
        MsgError::TooLong => Errno::NAMETOOLONG,
        _ => Errno::INVAL,
    }
}

fn put<T: IntoBytes + Immutable>(out: &mut [u8], v: &T) -> Res {
    let n = put_struct(out, v).map_err(|_| Errno::INVAL)?;
    Ok(Reply::Len(n))
}

fn name_str(n: &[u8]) -> String {
    String::from_utf8_lossy(n).into_owned()
}

impl Venus {
    pub fn new(
        dev: OwnedFd,
        tree: Tree,
        cache: PathBuf,
        cfg: Config,
        rec: Recording,
        replay_containers: Option<ContainerQueue>,
    ) -> std::io::Result<Self> {
        let (wake_r, wake_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok(Venus {
            dev,
            tree: Mutex::new(tree),
            cache,
            cfg,
            record_upcalls: rec.upcalls.map(Mutex::new),
            record_writes: rec.writes.map(Mutex::new),
            record_containers: rec.containers.map(Mutex::new),
            replay_containers: replay_containers.map(Mutex::new),
            stop: AtomicBool::new(false),
            wake_r,
            wake_w,
            served: AtomicU64::new(0),
            exchanges: AtomicU64::new(0),
            downcalls: AtomicU64::new(0),
            last_ino: Mutex::new(ROOT_INO),
            hold: Mutex::new(Hold::default()),
            released: Condvar::new(),
            fifo_container: Mutex::new(None),
        })
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        // A thread that panicked holding the lock left the tree half changed: stop.
        self.tree
            .lock()
            .unwrap_or_else(|_| fatal("tree lock poisoned"))
    }

    /// Starts shutdown: every reader returns from its poll.
    pub fn shutdown(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.wake_w, b"x");
        }
        self.release();
    }

    /// Holds the reply to the next upcall with `opcode` until [`Self::release`], so that a
    /// test can interrupt or abort the call that waits for it.
    pub fn hold_next(&self, opcode: u32) {
        self.hold_state().next = Some(opcode);
    }

    /// The next open of `ino` gets the FIFO `path` as its container.
    pub fn fifo_container(&self, ino: Ino, path: PathBuf) {
        if let Ok(mut f) = self.fifo_container.lock() {
            *f = Some((ino, path));
        }
    }

    /// Lets a held reply go.
    pub fn release(&self) {
        self.hold_state().holding = false;
        self.released.notify_all();
    }

    /// Whether the next upcall of some opcode is to be held.
    fn hold_armed(&self) -> bool {
        self.hold_state().next.is_some()
    }

    fn hold_state(&self) -> MutexGuard<'_, Hold> {
        self.hold
            .lock()
            .unwrap_or_else(|_| fatal("hold lock poisoned"))
    }

    /// Waits for `release` if this upcall is the one `hold` asked for; says so.
    fn wait_if_held(&self, ih: &InHdr) -> bool {
        let mut h = self.hold_state();
        if h.next != Some(ih.opcode) {
            return false;
        }
        h.next = None;
        h.holding = true;
        h.last = Some(ih.unique);
        // Always logged: tests wait for this line.
        eprintln!(
            "venus: holding {} unique={}",
            opcode_name(ih.opcode),
            ih.unique
        );
        while h.holding && !self.stop.load(Ordering::SeqCst) {
            h = self
                .released
                .wait(h)
                .unwrap_or_else(|_| fatal("hold lock poisoned"));
        }
        true
    }

    /// Changes a file's data as another client would on the server: no downcall, so the
    /// kernel sees it only once it refetches the attributes.
    pub fn change_file(&self, ino: Ino, data: &[u8]) -> Result<(), String> {
        let mut t = self.tree();
        let n = t.node_mut(ino).map_err(|e| e.to_string())?;
        let Kind::File(d) = &mut n.kind else {
            return Err(format!("#{ino} is not a file"));
        };
        d.clear();
        d.extend_from_slice(data);
        n.mtime = crate::tree::now();
        n.ctime = n.mtime;
        Ok(())
    }

    /// Returns once shutdown has started.
    pub fn wait_stopped(&self) {
        use rustix::event::PollFd;
        use rustix::event::PollFlags;
        while !self.stop.load(Ordering::SeqCst) {
            let mut fds = [PollFd::new(&self.wake_r, PollFlags::IN)];
            let _ = rustix::event::poll(&mut fds, None);
        }
    }

    /// Reads and answers upcalls until shutdown, blocked in read(2): main kicks the
    /// readers with a signal at shutdown.
    fn blocking_reader_loop(&self, id: usize) {
        let mut msg = vec![0u8; VC_MAXMSGSIZE];
        let mut out = vec![0u8; VC_MAXMSGSIZE];
        while !self.stop.load(Ordering::SeqCst) {
            let n = match rustix::io::read(&self.dev, &mut msg) {
                Ok(0) => fatal("read of 0 bytes from the device"),
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => fatal(format!("read from the device: {e}")),
            };
            self.serve_one(id, &msg[..n], &mut out);
        }
    }

    /// Reads and answers upcalls until shutdown, each CODA_PSDEV_IOC_EXCHANGE writing the
    /// replies to the messages the previous one read: one system call per batch.
    fn exchange_reader_loop(&self, id: usize) {
        // Room for a few of the largest messages; small ones come many at a time.
        let mut read_buf = vec![0u8; 4 * record_size(VC_MAXMSGSIZE)];
        let mut batch = Batch::default();
        let mut out = vec![0u8; VC_MAXMSGSIZE];
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            // The read half may wait long for the next message: a reply whose outcome
            // Venus must act on (a container to close, a held reply to log, a count that
            // may end the run) goes in an exchange of its own. At shutdown only the
            // replies go.
            let prompt = batch
                .answers
                .iter()
                .any(|(_, a)| a.held || a.opened.is_some())
                || !batch.answers.is_empty()
                    && (self.cfg.max_requests.is_some() || self.cfg.downcall_every.is_some());
            let room = if stopping || prompt {
                0
            } else {
                read_buf.len()
            };
            let n = self.exchange(&mut batch, &mut read_buf[..room]);
            if n > 0 {
                self.exchanges.fetch_add(1, Ordering::Relaxed);
            }
            if stopping || self.stop.load(Ordering::SeqCst) && n == 0 {
                return;
            }
            for rec in records(&read_buf[..n]) {
                let msg = match rec {
                    Ok((_, msg)) => msg,
                    Err(e) => fatal(format!("the records an exchange read: {e:?}")),
                };
                // Replies made so far do not wait behind a held or delayed one.
                if !batch.answers.is_empty() && (self.cfg.delay.is_some() || self.hold_armed()) {
                    self.exchange(&mut batch, &mut []);
                }
                let Some(a) = self.answer(id, msg, &mut out) else {
                    continue;
                };
                if batch.buf.len() + record_size(a.len) > CODA_PSDEV_EXCHANGE_MAX {
                    self.exchange(&mut batch, &mut []);
                }
                let len = a.len;
                batch.push(a, &out[..len]);
            }
        }
    }

    /// One CODA_PSDEV_IOC_EXCHANGE: writes `batch` and settles its answers, then reads
    /// into `read` (waiting for a message unless it is empty). Returns the bytes read.
    fn exchange(&self, batch: &mut Batch, read: &mut [u8]) -> usize {
        let mut x = PsdevExchange {
            write_buf: batch.buf.as_mut_ptr() as u64,
            write_size: batch.buf.len() as u32,
            write_consumed: 0,
            read_buf: read.as_mut_ptr() as u64,
            read_size: read.len() as u32,
            read_consumed: 0,
        };
        loop {
            // SAFETY: the write buffer is the batch's records (read, results stored), the
            // read buffer `read`, both sized as `x` says and borrowed across the call.
            let r = unsafe { coda_dev::exchange(self.dev.as_fd(), &mut x) };
            match r {
                Ok(()) => break,
                // The counts say what was done: the same call goes on from there.
                Err(nix::errno::Errno::EINTR) if !self.stop.load(Ordering::SeqCst) => continue,
                Err(nix::errno::Errno::EINTR) => {
                    x.read_size = x.read_consumed;
                    if x.write_consumed == x.write_size {
                        break;
                    }
                }
                Err(e) => fatal(format!("CODA_PSDEV_IOC_EXCHANGE: {e}")),
            }
        }
        for (at, a) in batch.answers.drain(..) {
            let rec = &batch.buf[at..];
            let result = i32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]);
            let r = if result == 0 {
                Ok(())
            } else {
                Err(Errno::from_raw_os_error(-result))
            };
            let delivered = self.reply_written(r, &rec[RECORD_HDR_SIZE..][..a.len]);
            self.settle(a, delivered);
        }
        batch.buf.clear();
        x.read_consumed as usize
    }

    /// Reads and answers upcalls until shutdown.
    pub fn reader_loop(&self, id: usize) {
        if self.cfg.blocking_read {
            return self.blocking_reader_loop(id);
        }
        if self.cfg.exchange {
            return self.exchange_reader_loop(id);
        }
        use rustix::event::PollFd;
        use rustix::event::PollFlags;
        let mut msg = vec![0u8; VC_MAXMSGSIZE];
        let mut out = vec![0u8; VC_MAXMSGSIZE];
        while !self.stop.load(Ordering::SeqCst) {
            let mut fds = [
                PollFd::new(&self.dev, PollFlags::IN),
                PollFd::new(&self.wake_r, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => fatal(format!("poll on the device: {e}")),
            }
            if !fds[1].revents().is_empty() {
                break;
            }
            let dev_ev = fds[0].revents();
            if dev_ev.intersects(PollFlags::ERR | PollFlags::NVAL) {
                fatal(format!("poll on the device reports {dev_ev:?}"));
            }
            if !dev_ev.contains(PollFlags::IN) {
                continue;
            }
            let n = match rustix::io::read(&self.dev, &mut msg) {
                Ok(0) => fatal("read of 0 bytes from the device"),
                Ok(n) => n,
                // Another reader took the message.
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                Err(e) => fatal(format!("read from the device: {e}")),
            };
            self.serve_one(id, &msg[..n], &mut out);
        }
    }

    fn serve_one(&self, id: usize, msg: &[u8], out: &mut [u8]) {
        if let Some(a) = self.answer(id, msg, out) {
            let delivered = self.write_reply(&out[..a.len]);
            self.settle(a, delivered);
        }
    }

    /// Answers one message into `out`; None when it takes no reply.
    fn answer(&self, id: usize, msg: &[u8], out: &mut [u8]) -> Option<Answer> {
        append_record(&self.record_upcalls, &[msg]);
        let ih = match in_hdr(msg) {
            Ok(ih) => ih,
            Err(e) => {
                eprintln!("venus: [{id}] dropping a {}-byte message: {e:?}", msg.len());
                return None;
            }
        };
        if self.cfg.verbose >= 3 {
            eprintln!("venus: [{id}] raw {:02x?}", msg);
        }
        let res = self.dispatch(&ih, msg, out);
        let (len, fd, result) = match res {
            Ok(Reply::None) => {
                if self.cfg.verbose >= 1 {
                    eprintln!(
                        "venus: [{id}] {} unique={} pid={} (no reply)",
                        opcode_name(ih.opcode),
                        ih.unique,
                        ih.pid
                    );
                }
                self.count_served();
                return None;
            }
            Ok(Reply::Len(len)) => (len, None, 0),
            Ok(Reply::Opened(len, fd, ino)) => (len, Some((fd, ino)), 0),
            Err(e) => {
                let oh = OutHdr {
                    opcode: ih.opcode,
                    unique: ih.unique,
                    result: e.raw_os_error(),
                };
                let len = put_struct(out, &oh).unwrap_or(0);
                (len, None, e.raw_os_error())
            }
        };
        if self.cfg.verbose >= 1 {
            eprintln!(
                "venus: [{id}] {} unique={} pid={} uid={} -> {} ({} bytes)",
                opcode_name(ih.opcode),
                ih.unique,
                ih.pid,
                ih.uid,
                if result == 0 {
                    "ok".to_string()
                } else {
                    Errno::from_raw_os_error(result).to_string()
                },
                len
            );
        }
        if let Some(d) = self.cfg.delay {
            std::thread::sleep(d);
        }
        let held = self.wait_if_held(&ih);
        Some(Answer {
            unique: ih.unique,
            len,
            opened: fd,
            held,
        })
    }

    /// Finishes an answer once its reply was written (`delivered`) or refused.
    fn settle(&self, a: Answer, delivered: bool) {
        if a.held {
            eprintln!(
                "venus: held reply unique={}: {}",
                a.unique,
                if delivered {
                    "delivered"
                } else {
                    "dropped (ESRCH: the caller is gone)"
                }
            );
        }
        if let Some((fd, ino)) = a.opened {
            drop(fd);
            if !delivered {
                // No CODA_CLOSE will come for an open the kernel never saw.
                let mut t = self.tree();
                let _ = self.close_container(&mut t, ino, 0);
            }
        }
        self.count_served();
    }

    /// Writes a reply; false when the caller had gone.
    fn write_reply(&self, reply: &[u8]) -> bool {
        loop {
            match rustix::io::write(&self.dev, reply) {
                Err(Errno::INTR) => continue,
                // The driver could not take it now (fault injection): it is not lost, and
                // the caller still waits, so write it again.
                Err(Errno::NOMEM) => {
                    eprintln!(
                        "venus: reply unique={}: ENOMEM, written again",
                        reply_unique(reply)
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => return self.reply_written(r.map(drop), reply),
            }
        }
    }

    /// What the driver said of a reply (to write(2) or in an exchange's record): true if it
    /// reached its caller, false if the caller had gone (ESRCH); anything else is fatal.
    fn reply_written(&self, r: Result<(), Errno>, reply: &[u8]) -> bool {
        match r {
            Ok(()) => {
                append_record(&self.record_writes, &[reply]);
                true
            }
            // The caller gave up (signal or timeout) before our reply.
            Err(Errno::SRCH) => {
                if self.cfg.verbose >= 1 {
                    eprintln!("venus: reply dropped: the caller is gone (ESRCH)");
                }
                false
            }
            Err(e) => fatal(format!("writing a reply: {e}")),
        }
    }

    fn count_served(&self) {
        let n = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(every) = self.cfg.downcall_every {
            if every > 0 && n.is_multiple_of(every) {
                self.periodic_downcall(n / every);
            }
        }
        if self.cfg.max_requests.is_some_and(|m| n >= m) {
            self.shutdown();
        }
    }

    fn note(&self, ino: Ino) {
        if let Ok(mut l) = self.last_ino.lock() {
            *l = ino;
        }
    }

    fn dispatch(&self, ih: &InHdr, msg: &[u8], out: &mut [u8]) -> Res {
        let oh = OutHdr {
            opcode: ih.opcode,
            unique: ih.unique,
            result: 0,
        };
        let v = self.cfg.verbose >= 2;
        match ih.opcode {
            CODA_ROOT => {
                let t = self.tree();
                put(
                    out,
                    &RootOut {
                        oh,
                        vfid: t.fid(ROOT_INO),
                    },
                )
            }
            CODA_GETATTR => {
                let m: GetattrIn = read_msg(msg).map_err(msg_err)?;
                let t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                self.note(ino);
                let mut attr = t.attr(ino)?;
                if t.node(ino)?.opens > 0 {
                    // The kernel writes the container directly: it has the current size.
                    if let Ok(md) = std::fs::metadata(self.container(ino)) {
                        use std::os::unix::fs::MetadataExt;
                        attr.va_size = md.size();
                        attr.va_bytes = md.blocks() * 512;
                        attr.va_mtime = CodaTimespec {
                            tv_sec: md.mtime(),
                            tv_nsec: md.mtime_nsec(),
                        };
                    }
                }
                put(
                    out,
                    &GetattrOut {
                        oh,
                        attr,
                        ..Default::default()
                    },
                )
            }
            CODA_SETATTR => {
                let m: SetattrIn = read_msg(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                self.setattr(&mut t, ino, &m.attr)?;
                put(out, &oh)
            }
            CODA_ACCESS => {
                let m: AccessIn = read_msg(msg).map_err(msg_err)?;
                let t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                check_access(t.node(ino)?, ih.uid, m.flags as u32)?;
                put(out, &oh)
            }
            CODA_LOOKUP => {
                let (m, name) = parse_lookup(msg).map_err(msg_err)?;
                let t = self.tree();
                let dir = t.ino_of(&m.vfid)?;
                let r = t.lookup(dir, name);
                if v {
                    eprintln!("venus:   lookup {:?} in {dir}: {r:?}", name_str(name));
                }
                let ino = r?;
                self.note(ino);
                put(
                    out,
                    &LookupOut {
                        oh,
                        vfid: t.fid(ino),
                        vtype: t.node(ino)?.vtype(),
                    },
                )
            }
            CODA_CREATE => {
                let (m, name) = parse_create(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let dir = t.ino_of(&m.vfid)?;
                if v {
                    eprintln!("venus:   create {:?} mode {:o}", name_str(name), m.mode);
                }
                let ino = t.create(dir, name, m.mode as u16, ih.uid, m.excl != 0)?;
                self.note(ino);
                put(
                    out,
                    &CreateOut {
                        oh,
                        vfid: t.fid(ino),
                        attr: t.attr(ino)?,
                        ..Default::default()
                    },
                )
            }
            CODA_REMOVE => {
                let (m, name) = parse_remove(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let dir = t.ino_of(&m.vfid)?;
                if v {
                    eprintln!("venus:   remove {:?}", name_str(name));
                }
                t.remove(dir, name)?;
                put(out, &oh)
            }
            CODA_LINK => {
                let (m, name) = parse_link(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let ino = t.ino_of(&m.source_fid)?;
                let dir = t.ino_of(&m.dest_fid)?;
                if v {
                    eprintln!("venus:   link {ino} as {:?}", name_str(name));
                }
                t.link(ino, dir, name)?;
                put(out, &oh)
            }
            CODA_RENAME => {
                let (m, src, dst) = parse_rename(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let sdir = t.ino_of(&m.source_fid)?;
                let ddir = t.ino_of(&m.dest_fid)?;
                if v {
                    eprintln!("venus:   rename {:?} -> {:?}", name_str(src), name_str(dst));
                }
                t.rename(sdir, src, ddir, dst)?;
                put(out, &oh)
            }
            CODA_MKDIR => {
                let (m, name) = parse_mkdir(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let dir = t.ino_of(&m.vfid)?;
                if v {
                    eprintln!("venus:   mkdir {:?}", name_str(name));
                }
                let ino = t.mkdir(dir, name, m.attr.va_mode, ih.uid)?;
                put(
                    out,
                    &MkdirOut {
                        oh,
                        vfid: t.fid(ino),
                        attr: t.attr(ino)?,
                        ..Default::default()
                    },
                )
            }
            CODA_RMDIR => {
                let (m, name) = parse_rmdir(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let dir = t.ino_of(&m.vfid)?;
                if v {
                    eprintln!("venus:   rmdir {:?}", name_str(name));
                }
                t.rmdir(dir, name)?;
                put(out, &oh)
            }
            CODA_SYMLINK => {
                let (m, target, name) = parse_symlink(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let dir = t.ino_of(&m.vfid)?;
                if v {
                    eprintln!(
                        "venus:   symlink {:?} -> {:?}",
                        name_str(name),
                        name_str(target)
                    );
                }
                t.symlink(dir, name, target, ih.uid)?;
                put(out, &oh)
            }
            CODA_READLINK => {
                let m: ReadlinkIn = read_msg(msg).map_err(msg_err)?;
                let t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                match &t.node(ino)?.kind {
                    Kind::Symlink(target) => {
                        let r = ReadlinkOut {
                            oh,
                            ..Default::default()
                        };
                        let n = build_readlink_out(out, r, target).map_err(msg_err)?;
                        Ok(Reply::Len(n))
                    }
                    _ => Err(Errno::INVAL),
                }
            }
            CODA_OPEN_BY_FD => {
                let m: OpenByFdIn = read_msg(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                self.note(ino);
                let fd = self.open_container(&mut t, ino, m.flags as u32)?;
                let r = OpenByFdOut {
                    oh,
                    fd: fd.as_raw_fd(),
                };
                if v {
                    eprintln!("venus:   open {ino} flags {:#x} -> fd {}", m.flags, r.fd);
                }
                let n = put_struct(out, &r).map_err(msg_err)?;
                Ok(Reply::Opened(n, fd, ino))
            }
            CODA_CLOSE => {
                let m: CloseIn = read_msg(msg).map_err(msg_err)?;
                let mut t = self.tree();
                if let Ok(ino) = t.ino_of(&m.vfid) {
                    self.close_container(&mut t, ino, m.flags as u32)?;
                }
                put(out, &oh)
            }
            CODA_FSYNC => {
                let m: FsyncIn = read_msg(msg).map_err(msg_err)?;
                let mut t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                if t.node(ino)?.opens > 0 {
                    self.write_back(&mut t, ino)?;
                }
                put(out, &oh)
            }
            CODA_STATFS => {
                let t = self.tree();
                let (nodes, bytes) = t.counts();
                let blocks: i32 = 1 << 20;
                let used = i32::try_from(bytes.div_ceil(4096)).unwrap_or(blocks);
                let files: i32 = 1 << 20;
                let stat = CodaStatfs {
                    f_blocks: blocks,
                    f_bfree: (blocks - used).max(0),
                    f_bavail: (blocks - used).max(0),
                    f_files: files,
                    f_ffree: files.saturating_sub(nodes as i32).max(0),
                };
                put(out, &StatfsOut { oh, stat })
            }
            CODA_VGET => {
                let m: VgetIn = read_msg(msg).map_err(msg_err)?;
                let t = self.tree();
                let ino = t.ino_of(&m.vfid)?;
                put(
                    out,
                    &VgetOut {
                        oh,
                        vfid: t.fid(ino),
                        vtype: t.node(ino)?.vtype(),
                    },
                )
            }
            CODA_ACCESS_INTENT => {
                let m: AccessIntentIn = read_msg(msg).map_err(msg_err)?;
                if v {
                    eprintln!(
                        "venus:   access intent type {} count {} pos {}",
                        m.r#type, m.count, m.pos
                    );
                }
                match m.r#type {
                    // Sent asynchronously: the kernel waits for no reply.
                    CODA_ACCESS_TYPE_READ_FINISH | CODA_ACCESS_TYPE_WRITE_FINISH => Ok(Reply::None),
                    _ if self.cfg.access_intent => put(out, &oh),
                    _ => Err(Errno::OPNOTSUPP),
                }
            }
            CODA_SIGNAL => {
                // We answer every upcall before reading the next: nothing to cancel.
                if v {
                    eprintln!("venus:   signal for unique {}", ih.unique);
                }
                if self.hold_state().last == Some(ih.unique) {
                    // Always logged: tests wait for this line.
                    eprintln!(
                        "venus: the caller of held unique={} gave up (CODA_SIGNAL)",
                        ih.unique
                    );
                }
                Ok(Reply::None)
            }
            // Obsolete or never sent by Linux: OPEN, IOCTL (pioctl), OPEN_BY_PATH, RESOLVE,
            // REINTEGRATE, STORE, RELEASE.
            op if is_upcall(op) => Err(Errno::OPNOTSUPP),
            _ => Err(Errno::INVAL),
        }
    }

    fn setattr(&self, t: &mut Tree, ino: Ino, a: &CodaVattr) -> Result<(), Errno> {
        let opens = t.node(ino)?.opens;
        if a.va_size != u64::MAX {
            let size = a.va_size;
            if t.node(ino)?.is_dir() {
                return Err(Errno::ISDIR);
            }
            if opens > 0 {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.container(ino))
                    .map_err(io_errno)?;
                f.set_len(size).map_err(io_errno)?;
            }
            match &mut t.node_mut(ino)?.kind {
                Kind::File(d) => d.resize(size as usize, 0),
                _ => return Err(Errno::INVAL),
            }
            let n = t.node_mut(ino)?;
            n.mtime = crate::tree::now();
        }
        let n = t.node_mut(ino)?;
        if a.va_mode != u16::MAX {
            n.perm = a.va_mode & 0o7777;
        }
        if a.va_uid != u32::MAX {
            n.uid = a.va_uid;
        }
        if a.va_gid != u32::MAX {
            n.gid = a.va_gid;
        }
        if a.va_atime.tv_sec != -1 {
            n.atime = a.va_atime;
        }
        if a.va_mtime.tv_sec != -1 {
            n.mtime = a.va_mtime;
        }
        n.ctime = if a.va_ctime.tv_sec != -1 {
            a.va_ctime
        } else {
            crate::tree::now()
        };
        Ok(())
    }

    fn container(&self, ino: Ino) -> PathBuf {
        self.cache.join(format!("{ino}"))
    }

    /// Opens a container for the kernel: the file's data (shared by all its opens), or a
    /// fresh, unnamed file of `venus_dirent` records for a directory.
    fn open_container(&self, t: &mut Tree, ino: Ino, flags: u32) -> Result<OwnedFd, Errno> {
        let rw = OFlags::RDWR | OFlags::CLOEXEC;
        let fifo = self
            .fifo_container
            .lock()
            .ok()
            .and_then(|mut f| f.take_if(|(i, _)| *i == ino));
        if let Some((_, path)) = fifo {
            // Its reader is already waiting in open(2); the file stays out of the tree's
            // open counts, so its CODA_CLOSE changes nothing here.
            let wo = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
            return Ok(rustix::fs::open(&path, wo, Mode::empty())?);
        }
        let node = t.node(ino)?;
        match &node.kind {
            Kind::Symlink(_) => Err(Errno::OPNOTSUPP),
            Kind::Dir { .. } => {
                let fd = rustix::fs::open(&self.cache, rw | OFlags::TMPFILE, Mode::from(0o600))?;
                let mut f = File::from(fd);
                f.write_all(&dirents(t, ino)?).map_err(io_errno)?;
                f.rewind().map_err(io_errno)?;
                Ok(f.into())
            }
            Kind::File(data) => {
                let path = self.container(ino);
                if node.opens == 0 {
                    let data = if flags & C_O_TRUNC != 0 && flags & C_O_WRITE != 0 {
                        &[][..]
                    } else {
                        &data[..]
                    };
                    std::fs::write(&path, data).map_err(io_errno)?;
                }
                let fd = rustix::fs::open(&path, rw, Mode::empty())?;
                if flags & C_O_TRUNC != 0 && flags & C_O_WRITE != 0 {
                    rustix::fs::ftruncate(&fd, 0)?;
                    if let Kind::File(d) = &mut t.node_mut(ino)?.kind {
                        d.clear();
                    }
                }
                t.node_mut(ino)?.opens += 1;
                Ok(fd)
            }
        }
    }

    /// Puts the next replayed contents into the container of `ino`, as the recorded run's
    /// kernel client had written them by now.
    fn refill(&self, ino: Ino, path: &std::path::Path) -> Result<(), Errno> {
        let Some(q) = &self.replay_containers else {
            return Ok(());
        };
        let mut q = q.lock().unwrap_or_else(|_| fatal("replay lock poisoned"));
        match q.front() {
            Some((want, data)) if *want == ino => {
                std::fs::write(path, data).map_err(io_errno)?;
                q.pop_front();
            }
            // The replay went its own way: leave the container alone, say so, and let the
            // comparison of the answers show where.
            Some((want, _)) => {
                eprintln!("venus: container replay: next contents are for {want}, not {ino}")
            }
            None => eprintln!("venus: container replay: no contents left for {ino}"),
        }
        Ok(())
    }

    /// Copies a file's container back into the tree.
    fn write_back(&self, t: &mut Tree, ino: Ino) -> Result<(), Errno> {
        let path = self.container(ino);
        self.refill(ino, &path)?;
        let mut data = Vec::new();
        let mut f = File::open(&path).map_err(io_errno)?;
        f.read_to_end(&mut data).map_err(io_errno)?;
        let md = f.metadata().map_err(io_errno)?;
        append_record(&self.record_containers, &[&ino.to_le_bytes(), &data]);
        let n = t.node_mut(ino)?;
        if let Kind::File(d) = &mut n.kind {
            *d = data;
            use std::os::unix::fs::MetadataExt;
            n.mtime = CodaTimespec {
                tv_sec: md.mtime(),
                tv_nsec: md.mtime_nsec(),
            };
        }
        Ok(())
    }

    fn close_container(&self, t: &mut Tree, ino: Ino, flags: u32) -> Result<(), Errno> {
        let n = t.node(ino)?;
        if !matches!(n.kind, Kind::File(_)) || n.opens == 0 {
            return Ok(());
        }
        if flags & C_O_WRITE != 0 {
            self.write_back(t, ino)?;
        }
        let n = t.node_mut(ino)?;
        n.opens -= 1;
        if n.opens == 0 {
            let _ = std::fs::remove_file(self.container(ino));
            t.reap(ino);
        }
        Ok(())
    }

    /// Writes a downcall; the kernel must take all of it.
    pub fn downcall(&self, msg: &[u8]) -> Result<(), String> {
        let op = check_downcall(msg).map_err(|e| format!("bad downcall: {e:?}"))?;
        loop {
            match rustix::io::write(&self.dev, msg) {
                Ok(n) if n == msg.len() => break,
                Ok(n) => {
                    return Err(format!(
                        "{} downcall: wrote {n} of {} bytes",
                        opcode_name(op),
                        msg.len()
                    ))
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(format!("{} downcall: {e}", opcode_name(op))),
            }
        }
        append_record(&self.record_writes, &[msg]);
        self.downcalls.fetch_add(1, Ordering::SeqCst);
        if self.cfg.verbose >= 1 {
            eprintln!("venus: sent {} downcall", opcode_name(op));
        }
        Ok(())
    }

    /// Builds and sends a downcall about `ino` (or user `uid` for PURGEUSER).
    pub fn send_downcall(&self, opcode: u32, ino: Ino, uid: u32) -> Result<(), String> {
        let oh = OutHdr {
            opcode,
            unique: 0,
            result: 0,
        };
        let mut buf = [0u8; DOWNCALLS_SIZE];
        let len = {
            let mut t = self.tree();
            let fid = t.fid(ino);
            match opcode {
                CODA_FLUSH => put_struct(&mut buf, &oh),
                CODA_PURGEUSER => put_struct(&mut buf, &PurgeuserOut { oh, uid }),
                CODA_ZAPFILE => put_struct(&mut buf, &ZapfileOut { oh, fid }),
                CODA_ZAPDIR => put_struct(&mut buf, &ZapdirOut { oh, fid }),
                CODA_PURGEFID => put_struct(&mut buf, &PurgefidOut { oh, fid }),
                CODA_REPLACE => {
                    // Hand out a new fid for the object from now on.
                    let n = t.node_mut(ino).map_err(|e| e.to_string())?;
                    n.unique = n.unique.wrapping_add(1).max(1);
                    let new_fid = t.fid(ino);
                    put_struct(
                        &mut buf,
                        &ReplaceOut {
                            oh,
                            new_fid,
                            old_fid: fid,
                        },
                    )
                }
                _ => return Err(format!("opcode {opcode} is not a downcall")),
            }
            .map_err(|e| format!("{e:?}"))?
        };
        self.downcall(&buf[..len])
    }

    /// The `k`-th periodic downcall: cycles through every kind, about the last object seen.
    fn periodic_downcall(&self, k: u64) {
        const CYCLE: [u32; 5] = [
            CODA_ZAPFILE,
            CODA_ZAPDIR,
            CODA_PURGEUSER,
            CODA_PURGEFID,
            CODA_REPLACE,
        ];
        let op = CYCLE[(k as usize - 1) % CYCLE.len()];
        let last = *self
            .last_ino
            .lock()
            .unwrap_or_else(|_| fatal("lock poisoned"));
        let ino = {
            let t = self.tree();
            match op {
                CODA_ZAPDIR => ROOT_INO,
                // The root keeps its fid: the kernel asked for it only once, at mount.
                CODA_REPLACE if last == ROOT_INO || t.node(last).is_err() => return,
                _ if t.node(last).is_err() => ROOT_INO,
                _ => last,
            }
        };
        if let Err(e) = self.send_downcall(op, ino, 0) {
            fatal(e);
        }
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_io_error(&e).unwrap_or(Errno::IO)
}

/// Permission check for CODA_ACCESS: `mask` is MAY_READ/WRITE/EXEC (= C_A_R/W/X_OK).
fn check_access(n: &crate::tree::Node, uid: u32, mask: u32) -> Result<(), Errno> {
    let mask = mask & (C_A_R_OK | C_A_W_OK | C_A_X_OK);
    let perm = u32::from(n.perm);
    if uid == 0 {
        // Root may do anything but execute a file nobody may execute.
        if mask & C_A_X_OK != 0 && !n.is_dir() && perm & 0o111 == 0 {
            return Err(Errno::ACCESS);
        }
        return Ok(());
    }
    let bits = if uid == n.uid {
        (perm >> 6) & 7
    } else {
        perm & 7
    };
    if mask & !bits != 0 {
        return Err(Errno::ACCESS);
    }
    Ok(())
}

/// A directory's container: "." and ".." then every entry, as `venus_dirent` records.
fn dirents(t: &Tree, dir: Ino) -> Result<Vec<u8>, Errno> {
    let parent = t.lookup(dir, b"..")?;
    let mut entries = vec![(b".".to_vec(), dir), (b"..".to_vec(), parent)];
    entries.extend(t.entries(dir)?);
    let mut out = Vec::new();
    for (name, ino) in entries {
        let reclen = venus_dirsiz(name.len());
        let ty = match t.node(ino)?.kind {
            Kind::File(_) => CDT_REG,
            Kind::Dir { .. } => CDT_DIR,
            Kind::Symlink(_) => CDT_LNK,
        };
        let hdr = VenusDirentHdr {
            d_fileno: t.fid(ino).f2i(),
            d_reclen: reclen as u16,
            d_type: ty,
            d_namlen: name.len() as u8,
        };
        let start = out.len();
        out.extend_from_slice(hdr.as_bytes());
        out.extend_from_slice(&name);
        out.resize(start + reclen, 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromBytes;

    /// Reads a container the way coda_venus_readdir() does.
    fn read_dirents(buf: &[u8]) -> Vec<(String, u8, u32)> {
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < buf.len() {
            let (h, rest) = VenusDirentHdr::read_from_prefix(&buf[pos..]).unwrap();
            assert!(h.d_reclen as usize >= size_of::<VenusDirentHdr>() + h.d_namlen as usize);
            assert_eq!(h.d_reclen % 4, 0);
            let name = &rest[..h.d_namlen as usize];
            assert_eq!(rest[h.d_namlen as usize], 0);
            out.push((name_str(name), h.d_type, h.d_fileno));
            pos += h.d_reclen as usize;
        }
        assert_eq!(pos, buf.len());
        out
    }

    #[test]
    fn directory_container() {
        let mut t = Tree::new();
        let d = t.mkdir(ROOT_INO, b"dir", 0o755, 0).unwrap();
        let f = t
            .create(ROOT_INO, b"a-much-longer-file-name", 0o644, 0, true)
            .unwrap();
        t.symlink(ROOT_INO, b"l", b"dir", 0).unwrap();
        let got = read_dirents(&dirents(&t, ROOT_INO).unwrap());
        let names: Vec<_> = got.iter().map(|(n, ty, _)| (n.as_str(), *ty)).collect();
        assert_eq!(
            names,
            [
                (".", CDT_DIR),
                ("..", CDT_DIR),
                ("a-much-longer-file-name", CDT_REG),
                ("dir", CDT_DIR),
                ("l", CDT_LNK),
            ]
        );
        assert_eq!(got[2].2, t.fid(f).f2i());
        assert_eq!(got[3].2, t.fid(d).f2i());
        assert_eq!(t.attr(f).unwrap().va_fileid, t.fid(f).f2i() as i64);
        assert_eq!(read_dirents(&dirents(&t, d).unwrap()).len(), 2);
    }

    #[test]
    fn container_records() {
        let path =
            std::env::temp_dir().join(format!("venus-containers-{}.rec", std::process::id()));
        let file = Some(Mutex::new(File::create(&path).unwrap()));
        append_record(&file, &[&7u32.to_le_bytes(), b"data 1\n"]);
        append_record(&file, &[&9u32.to_le_bytes(), b""]);
        let q = read_container_records(&path).unwrap();
        assert_eq!(q, [(7, b"data 1\n".to_vec()), (9, Vec::new())]);
        // A record cut short is refused.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_container_records(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn access() {
        let mut t = Tree::new();
        let f = t.create(ROOT_INO, b"f", 0o640, 1000, true).unwrap();
        let n = t.node(f).unwrap();
        assert_eq!(check_access(n, 0, C_A_R_OK | C_A_W_OK), Ok(()));
        assert_eq!(check_access(n, 0, C_A_X_OK), Err(Errno::ACCESS));
        assert_eq!(check_access(n, 1000, C_A_R_OK | C_A_W_OK), Ok(()));
        assert_eq!(check_access(n, 1000, C_A_X_OK), Err(Errno::ACCESS));
        assert_eq!(check_access(n, 1001, C_A_R_OK), Err(Errno::ACCESS));
        assert_eq!(check_access(n, 1001, C_A_F_OK), Ok(()));
    }
}

/// The unique of a reply, for the log.
fn reply_unique(reply: &[u8]) -> u32 {
    reply
        .get(4..8)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}
