// SPDX-License-Identifier: GPL-2.0

//! The upcall engine: one [`VenusComm`] per `/dev/cfsN`, the channel between kernel-side
//! callers and Venus.
//!
//! A caller's [`VenusComm::call`] queues a request and sleeps until Venus replies; Venus
//! takes requests with [`VenusComm::take_waiting`] (or a batch with
//! [`VenusComm::take_batch`]) and answers with [`VenusComm::reply_begin`] and
//! [`VenusComm::reply_commit`].
//!
//! # Lifetimes
//!
//! Linux's coda had use-after-free bugs where a signalled caller freed a request that the
//! reader or writer was still touching. Here each request is an [`Upcall`] owned by
//! reference counts (`Arc`): the caller, the request queue, the reply table and a reader or
//! writer in the middle of a copy each hold their own reference, so no path can free a
//! request another path still uses. Its mutable state is [`LockedBy`] the device mutex:
//! every change of phase happens under that one lock, and a request has exactly one
//! outcome (replied, interrupted, timed out, aborted) decided by whoever changes its phase
//! first. Copies to and from userspace run without the lock; they hold a reference and
//! re-check the phase when they come back.
//!
//! # Bounds
//!
//! All storage is allocated when the device is created: the request queue and the
//! CODA_SIGNAL queue hold at most `max_outstanding` entries each and the reply table has
//! twice that many slots. A message occupies one unit of the bound from its call until it
//! leaves the device (read by Venus when it needs no reply, replied, cancelled, or its
//! CODA_SIGNAL read); callers beyond the bound sleep until a unit frees up.
//!
//! Replies are matched in O(1): a unique is only handed out when its slot in the table
//! (`unique & mask`) is free, so a lookup is one index and one compare.

use kernel::alloc::KVVec;
use kernel::new_condvar;
use kernel::new_mutex;
use kernel::new_poll_condvar;
use kernel::prelude::*;
use kernel::sync::poll::PollCondVar;
use kernel::sync::Arc;
use kernel::sync::CondVar;
use kernel::sync::CondVarTimeoutResult;
use kernel::sync::LockedBy;
use kernel::sync::Mutex;
use kernel::sync::MutexGuard;
use kernel::sync::UniqueArc;
use kernel::time::msecs_to_jiffies;
use kernel::time::Jiffies;

use zerocopy::FromZeros;

use crate::coda_msg;
use crate::coda_msg::InHdr;
use crate::coda_msg::PsdevStats;
use crate::raw::SignalBlock;

/// How long a caller whose request woke no Venus thread (one was already on its way, see
/// [`CommState::venus_busy`]) waits before it wakes one itself: the most a Venus thread that
/// blocked elsewhere can delay a request.
const NUDGE: Jiffies = 1;

/// Venus threads that sleep on their own wait queue (see [`CommState::sleepers`]); more
/// wait on the shared one.
const MAX_SLEEPERS: usize = 64;

/// How one sleep of a caller ended.
enum Slept {
    Woken,
    /// The sleep reached its cap before the caller's deadline.
    Capped,
    GiveUp(GiveUp),
}

/// How long a caller waits, and what the end of that wait means. Built by
/// [`VenusComm::patience`], which holds the rules.
pub(crate) struct Patience {
    /// Jiffies left until the timeout; `None`: no timeout (or no longer one).
    left: Option<Jiffies>,
    /// Signals blocked while the call waits.
    block: Option<SignalBlock>,
    /// At the timeout the block is lifted and the call goes on (the file system's rule, as
    /// Linux's `coda_waitfor_upcall`); otherwise the call fails with ETIMEDOUT.
    lift_at_timeout: bool,
}

impl Patience {
    /// The timeout ran out: whether the call fails now with ETIMEDOUT. If not, every
    /// signal the caller had not blocked itself, but the stop signals, now ends the wait,
    /// and it has no timeout.
    fn run_out(&mut self) -> bool {
        self.left = None;
        if self.lift_at_timeout {
            // The old block restores the caller's mask before the new one is taken.
            self.block = None;
            self.block = Some(SignalBlock::stops());
            self.lift_at_timeout = false;
            false
        } else {
            true
        }
    }
}

/// A Venus thread asleep until a message is queued.
#[pin_data]
struct Sleeper {
    /// It reads through the exchange, and takes every message queued when it wakes.
    batch: bool,
    /// Taken off the sleepers by a waker.
    woken: LockedBy<bool, CommState>,
    #[pin]
    cv: CondVar,
}

/// Settings from the module parameters.
#[derive(Clone, Copy)]
pub(crate) struct Config {
    /// How long a call waits for its reply, in seconds; 0 waits forever.
    pub(crate) timeout_secs: u32,
    /// Every call ignores ordinary signals (Linux's `coda_hard`).
    pub(crate) hard: bool,
    /// Messages a device holds at most.
    pub(crate) max_outstanding: usize,
}

/// Where a request is in its life. Terminal phases carry the caller's outcome.
enum Phase {
    /// In the request queue.
    Queued,
    /// Taken by a reader that is copying it to Venus.
    Reading,
    /// Read by Venus; awaiting the reply.
    Read,
    /// Venus replied; the caller takes the bytes.
    Replied(KVec<u8>),
    /// The call ended with this error and no reply.
    Failed(Error),
    /// The caller gave up while a reader was copying the request to Venus: whether Venus
    /// got it is known only when the copy ends, and so is which counter the signal goes to.
    GaveUpReading(GiveUp),
}

/// Why a caller gives up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum GiveUp {
    Signal,
    Timeout,
}

impl GiveUp {
    fn errno(self) -> Error {
        match self {
            GiveUp::Signal => EINTR,
            GiveUp::Timeout => ETIMEDOUT,
        }
    }
}

/// Who makes a call, for the rules of its wait ([`VenusComm::patience`]).
#[derive(Clone, Copy)]
enum Caller {
    /// A root process through `/dev/coda_ctl`.
    Control,
    /// The kernel's Coda file system, with its `hard` and `timeout` sysctls.
    Fs { hard: bool, timeout_secs: u32 },
}

/// One upcall. See the module documentation for who holds references and why.
#[pin_data]
pub(crate) struct Upcall {
    unique: u32,
    opcode: u32,
    /// Room for the reply; `None` for an asynchronous upcall.
    out_cap: Option<usize>,
    /// Made by the kernel's Coda file system (see `bridge`), not through the control device.
    from_fs: bool,
    /// CODA_CLOSE, CODA_STORE, CODA_RELEASE or CODA_ACCESS_INTENT: Venus must see it even
    /// if its caller stops waiting, or the file's data and Venus's open counts are lost.
    must_deliver: bool,
    /// The request as Venus will read it; never changed once shared.
    msg: KVec<u8>,
    phase: LockedBy<Phase, CommState>,
    /// A forced unmount of the file system that made the call ends it (with EIO).
    cancelled: LockedBy<bool, CommState>,
    /// Its caller stopped waiting before Venus read it, and it stays queued for Venus with
    /// no one to reply to (see [`VenusComm::detach`]).
    detached: LockedBy<bool, CommState>,
    /// The caller sleeps here.
    #[pin]
    done: CondVar,
}

impl Upcall {
    pub(crate) fn unique(&self) -> u32 {
        self.unique
    }
}

/// A fixed-capacity FIFO that never allocates after creation.
struct Ring<T> {
    /// A power of two long, so that positions wrap with a mask.
    slots: KVVec<Option<T>>,
    limit: usize,
    head: usize,
    len: usize,
}

impl<T> Ring<T> {
    fn new(limit: usize) -> Result<Self> {
        let n = limit.max(1).next_power_of_two();
        let mut slots = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            slots,
            limit,
            head: 0,
            len: 0,
        })
    }

    fn idx(&self, i: usize) -> usize {
        (self.head + i) & (self.slots.len() - 1)
    }

    /// Appends `v`; callers keep `len < cap` through the outstanding bound.
    fn push_back(&mut self, v: T) -> core::result::Result<(), T> {
        if self.len >= self.limit {
            return Err(v);
        }
        let i = self.idx(self.len);
        self.slots[i] = Some(v);
        self.len += 1;
        Ok(())
    }

    fn push_front(&mut self, v: T) -> core::result::Result<(), T> {
        if self.len >= self.limit {
            return Err(v);
        }
        self.head = self.idx(self.slots.len() - 1);
        self.slots[self.head] = Some(v);
        self.len += 1;
        Ok(())
    }

    fn front(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        self.slots[self.head].as_ref()
    }

    fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.slots[self.head].take();
        self.head = self.idx(1);
        self.len -= 1;
        v
    }

    /// Removes the first entry for which `f` holds, keeping the order of the rest. O(n),
    /// used only when a caller gives up before Venus read its request.
    fn remove_first(&mut self, mut f: impl FnMut(&T) -> bool) -> Option<T> {
        let pos = (0..self.len).find(|&i| self.slots[self.idx(i)].as_ref().is_some_and(&mut f))?;
        let at = self.idx(pos);
        let v = self.slots[at].take();
        for i in pos..self.len - 1 {
            let (to, from) = (self.idx(i), self.idx(i + 1));
            self.slots[to] = self.slots[from].take();
        }
        self.len -= 1;
        v
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The state of one device, under its mutex.
pub(crate) struct CommState {
    /// Venus has the device open.
    open: bool,
    next_unique: u32,
    /// Messages counted against the bound (see the module documentation).
    occupied: usize,
    /// Calls that have no outcome yet.
    outstanding: usize,
    /// Requests Venus has not read, oldest first.
    requests: Ring<Arc<Upcall>>,
    /// Requests whose caller gave up after Venus read them: each becomes a CODA_SIGNAL,
    /// read before any request.
    signals: Ring<Arc<Upcall>>,
    /// Synchronous upcalls in flight, at `unique & mask`.
    table: KVVec<Option<Arc<Upcall>>>,
    mask: usize,
    /// Callers asleep waiting for room under the bound.
    room_waiters: usize,
    /// A Venus thread will take the queued requests without being woken again: one woken
    /// for the exchange, or one that took messages through the exchange and will come back
    /// for more. A new request then wakes no other thread, whose wake-up would cost a
    /// context switch and put Venus on a second CPU for a message the first takes anyway;
    /// its caller wakes one after [`NUDGE`] if none came. Cleared when a reader finds the
    /// queues empty, and by a reply written with write(2): a thread that answers that way
    /// may never come back through the exchange (one that writes through an exchange with
    /// no read half comes back with its next one).
    venus_busy: bool,
    /// Venus threads asleep in [`VenusComm::take_waiting`], the last to sleep on top: as
    /// binder's ready threads, the one woken is the one whose cache is warm.
    sleepers: Ring<Arc<Sleeper>>,
    /// Forced unmounts of the file system so far (see [`VenusComm::abort_fs_calls`]).
    fs_aborts: u64,
    stats: KBox<PsdevStats>,
}

/// What a reader took from the queues; [`VenusComm::settle`] commits it, or puts it back if
/// the copy to Venus failed.
pub(crate) struct Taken {
    upcall: Arc<Upcall>,
    signal: bool,
}

impl PendingReply {
    /// Linux's file system takes CODA_OPEN_BY_FD's container file as a `struct file *`
    /// that the reply's writer (Venus) must turn its descriptor into.
    pub(crate) fn wants_file_handle(&self) -> bool {
        self.upcall.from_fs && self.upcall.opcode == coda_msg::CODA_OPEN_BY_FD
    }

    pub(crate) fn out_cap(&self) -> usize {
        self.upcall.out_cap.unwrap_or(0)
    }
}

/// What a synchronous call returns: Venus's reply, and the unique the upcall carried.
pub(crate) struct Reply {
    pub(crate) unique: u32,
    pub(crate) bytes: KVec<u8>,
}

/// A reply being copied in; see [`VenusComm::reply_begin`].
pub(crate) struct PendingReply {
    upcall: Arc<Upcall>,
}

/// One `/dev/cfsN`: the queues, the reply table and the wait queues.
#[pin_data]
pub(crate) struct VenusComm {
    pub(crate) minor: u32,
    config: Config,
    #[pin]
    state: Mutex<CommState>,
    /// Readers of the device and pollers wait here for a message.
    #[pin]
    readers: PollCondVar,
    /// Callers wait here for room under the bound.
    #[pin]
    room: CondVar,
}

fn op_index(opcode: u32) -> usize {
    (opcode as usize).min(coda_msg::CODA_PSDEV_NOPS - 1)
}

/// The opcode a message starts with; 0 (no upcall) for one too short to have it.
fn opcode_of(msg: &[u8]) -> u32 {
    msg.get(0..4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn secs_to_jiffies(secs: u32) -> Jiffies {
    msecs_to_jiffies(secs.saturating_mul(1000))
}

fn upcall_size(msg_len: usize) -> u64 {
    (core::mem::size_of::<Upcall>() + msg_len) as u64
}

impl CommState {
    fn slot(&self, unique: u32) -> usize {
        unique as usize & self.mask
    }

    /// The synchronous upcall `unique` if it is in flight.
    fn lookup(&self, unique: u32) -> Option<&Arc<Upcall>> {
        self.table[self.slot(unique)]
            .as_ref()
            .filter(|u| u.unique == unique)
    }

    fn unlist(&mut self, up: &Arc<Upcall>) {
        let s = self.slot(up.unique);
        if self.table[s].as_ref().is_some_and(|u| Arc::ptr_eq(u, up)) {
            self.table[s] = None;
        }
    }

    /// Frees one unit of the bound.
    fn release_unit(&mut self, comm: &VenusComm) {
        self.occupied -= 1;
        if self.room_waiters > 0 {
            comm.room.notify_one();
        }
    }

    /// Takes the next message for Venus, CODA_SIGNAL first, if `fits` accepts its length:
    /// `Ok(None)` when nothing is queued, EMSGSIZE when it does not fit (it stays queued).
    fn take(&mut self, fits: impl FnOnce(usize) -> bool) -> Result<Option<Taken>> {
        if self.signals.front().is_some() {
            if !fits(coda_msg::IN_HDR_SIZE) {
                return Err(EMSGSIZE);
            }
            let up = self.signals.pop_front().ok_or(EINVAL)?;
            return Ok(Some(Taken {
                upcall: up,
                signal: true,
            }));
        }
        let Some(up) = self.requests.front() else {
            return Ok(None);
        };
        if !fits(up.msg.len()) {
            return Err(EMSGSIZE);
        }
        let up = self.requests.pop_front().ok_or(EINVAL)?;
        *up.phase.access_mut(self) = Phase::Reading;
        Ok(Some(Taken {
            upcall: up,
            signal: false,
        }))
    }

    /// Takes the Venus thread to wake for a message: the last one to sleep.
    fn pop_sleeper(&mut self) -> Option<Arc<Sleeper>> {
        let s = self.sleepers.pop_front()?;
        *s.woken.access_mut(self) = true;
        if s.batch {
            self.venus_busy = true;
        }
        Some(s)
    }

    /// Messages waiting for Venus: CODA_SIGNALs and requests.
    fn queued(&self) -> usize {
        self.signals.len() + self.requests.len()
    }

    fn update_gauges(&mut self) {
        let pending = self.queued() as u64;
        let st = &mut self.stats;
        st.outstanding = self.outstanding as u64;
        st.peak_outstanding = st.peak_outstanding.max(st.outstanding);
        st.pending = pending;
    }
}

impl VenusComm {
    /// A Venus thread leaves without the messages it may have been woken for: another
    /// thread is woken for them.
    fn pass_on(&self, st: &mut CommState) {
        st.venus_busy = false;
        if st.queued() > 0 {
            self.wake_reader(st);
        }
    }

    /// Wakes a Venus thread for a message: the last sleeper, and the pollers.
    fn wake_reader(&self, st: &mut CommState) {
        if let Some(s) = st.pop_sleeper() {
            s.cv.notify_one();
        }
        self.readers.notify_one();
    }

    pub(crate) fn new(minor: u32, config: Config) -> Result<Arc<Self>> {
        let cap = config.max_outstanding;
        let slots = (2 * cap).next_power_of_two();
        let mut table = KVVec::with_capacity(slots, GFP_KERNEL)?;
        for _ in 0..slots {
            table.push(None, GFP_KERNEL)?;
        }
        let mut stats = KBox::<PsdevStats>::new(PsdevStats::new_zeroed(), GFP_KERNEL)?;
        stats.version = coda_msg::CODA_PSDEV_STATS_VERSION;
        stats.minor = minor;
        let state = CommState {
            open: false,
            next_unique: 1,
            occupied: 0,
            outstanding: 0,
            requests: Ring::new(cap)?,
            signals: Ring::new(cap)?,
            table,
            mask: slots - 1,
            fs_aborts: 0,
            room_waiters: 0,
            venus_busy: false,
            sleepers: Ring::new(MAX_SLEEPERS)?,
            stats,
        };
        Arc::pin_init(
            pin_init!(Self {
                minor,
                config,
                state <- new_mutex!(state, "VenusComm::state"),
                readers <- new_poll_condvar!("VenusComm::readers"),
                room <- new_condvar!("VenusComm::room"),
            }),
            GFP_KERNEL,
        )
    }

    fn lock(&self) -> MutexGuard<'_, CommState> {
        self.state.lock()
    }

    /// Venus opens the device: only one opener at a time, starting from empty queues.
    pub(crate) fn venus_open(&self) -> Result {
        let mut g = self.lock();
        if g.open {
            return Err(EBUSY);
        }
        g.open = true;
        g.stats.opens += 1;
        Ok(())
    }

    /// Venus closed the device: every caller wakes with ENODEV and every queued message is
    /// freed; a new open starts afresh.
    pub(crate) fn venus_close(&self) {
        let mut g = self.lock();
        g.open = false;
        let st = &mut *g;
        for i in 0..st.table.len() {
            if let Some(up) = st.table[i].take() {
                *up.phase.access_mut(st) = Phase::Failed(ENODEV);
                st.stats.op[op_index(up.opcode)].aborted += 1;
                st.stats.mem_bytes -= upcall_size(up.msg.len());
                st.outstanding -= 1;
                up.done.notify_all();
            }
        }
        while let Some(up) = st.requests.pop_front() {
            // Synchronous requests were settled through the table above; a detached one
            // was settled when its caller left.
            if up.out_cap.is_none() {
                st.stats.op[op_index(up.opcode)].aborted += 1;
                st.stats.mem_bytes -= upcall_size(up.msg.len());
                st.outstanding -= 1;
            } else if *up.detached.access(st) {
                st.stats.mem_bytes -= upcall_size(up.msg.len());
            }
        }
        while st.signals.pop_front().is_some() {}
        while let Some(s) = st.pop_sleeper() {
            s.cv.notify_one();
        }
        st.venus_busy = false;
        st.occupied = 0;
        st.stats.processing = 0;
        st.update_gauges();
        drop(g);
        self.room.notify_all();
        self.readers.notify_all();
    }

    /// Queues an asynchronous upcall, which is freed once Venus has read it. `msg` starts
    /// with a `coda_in_hdr` whose unique is overwritten.
    pub(crate) fn submit_async(&self, msg: KVec<u8>) -> Result<Arc<Upcall>> {
        let mut p = self.patience(opcode_of(&msg), Caller::Control);
        self.submit_from(msg, None, false, &mut p).map(|(up, _)| up)
    }

    /// An asynchronous upcall of the kernel's Coda file system: as [`Self::submit_async`],
    /// but a forced unmount ends its wait for room, and a wait for room has no timeout and
    /// ends only on SIGKILL (Linux's never waits: it has no bound, and so no way to lose
    /// the message here).
    pub(crate) fn submit_from_kernel(&self, msg: KVec<u8>) -> Result {
        let mut p = self.patience(
            opcode_of(&msg),
            Caller::Fs {
                hard: true,
                timeout_secs: 0,
            },
        );
        self.submit_from(msg, None, true, &mut p).map(|_| ())
    }

    /// The rules of a caller's wait, in one place:
    ///
    /// - CODA_CLOSE, CODA_STORE, CODA_RELEASE and CODA_ACCESS_INTENT, and every call of a
    ///   hard mount (or with `hard` set), block every signal but SIGKILL.
    /// - The file system's calls never fail by themselves: a hard one, CODA_CLOSE and the
    ///   like wait for Venus's reply, Venus closing the device, `umount -f` or SIGKILL; the
    ///   others let only SIGINT and SIGKILL through until `/proc/sys/coda/timeout` runs
    ///   out, then every signal but the stop signals (Linux's `coda_waitfor_upcall` lets
    ///   every signal through then, and SIGSTOP at any time).
    /// - A stop signal (SIGSTOP, Ctrl-Z's SIGTSTP, SIGTTIN, SIGTTOU) never ends a call: the
    ///   process stops once the call is done (with Linux's coda, SIGSTOP fails the call
    ///   with EINTR).
    /// - The control device's calls fail with ETIMEDOUT after the module's `timeout` (0:
    ///   never), as its callers (tests, benchmarks, tools) expect a bounded wait; the others
    ///   take any signal.
    ///
    /// Whatever ends the wait, a CODA_CLOSE (and the like) that Venus has not read yet
    /// stays queued for it ([`Self::detach`]).
    fn patience(&self, opcode: u32, caller: Caller) -> Patience {
        let blocks_all = self.config.hard
            || matches!(caller, Caller::Fs { hard: true, .. })
            || coda_msg::is_uninterruptible(opcode);
        match caller {
            Caller::Fs { timeout_secs, .. } if !blocks_all => Patience {
                left: Some(secs_to_jiffies(timeout_secs)),
                block: Some(SignalBlock::all_but_sigint()),
                lift_at_timeout: true,
            },
            Caller::Fs { .. } => Patience {
                left: None,
                block: Some(SignalBlock::new()),
                lift_at_timeout: false,
            },
            Caller::Control => Patience {
                left: match self.config.timeout_secs {
                    0 => None,
                    s => Some(secs_to_jiffies(s)),
                },
                block: blocks_all.then(SignalBlock::new),
                lift_at_timeout: false,
            },
        }
    }

    /// One sleep on `cv` of at most the patience left, which is reduced by the time slept,
    /// and at most `cap`.
    fn sleep(
        cv: &CondVar,
        g: &mut MutexGuard<'_, CommState>,
        p: &mut Patience,
        cap: Option<Jiffies>,
    ) -> Slept {
        if p.left == Some(0) {
            // A timeout of 0 jiffies: it runs out before the first sleep.
            return if p.run_out() {
                Slept::GiveUp(GiveUp::Timeout)
            } else {
                Slept::Woken
            };
        }
        let limit = match (p.left, cap) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        let Some(j) = limit else {
            return match cv.wait_interruptible(g) {
                true => Slept::GiveUp(GiveUp::Signal),
                false => Slept::Woken,
            };
        };
        let (rest, slept) = match cv.wait_interruptible_timeout(g, j) {
            CondVarTimeoutResult::Woken { jiffies } => (jiffies, Slept::Woken),
            CondVarTimeoutResult::Signal { jiffies } => (jiffies, Slept::GiveUp(GiveUp::Signal)),
            CondVarTimeoutResult::Timeout => (0, Slept::Capped),
        };
        if let Some(l) = p.left.as_mut() {
            let l_rest = l.saturating_sub(j - rest.min(j));
            if l_rest == 0 && matches!(slept, Slept::Capped) {
                return if p.run_out() {
                    Slept::GiveUp(GiveUp::Timeout)
                } else {
                    Slept::Woken
                };
            }
            *l = l_rest.max(1);
        }
        slept
    }

    fn submit_from(
        &self,
        msg: KVec<u8>,
        out_cap: Option<usize>,
        from_fs: bool,
        p: &mut Patience,
    ) -> Result<(Arc<Upcall>, bool)> {
        if msg.len() < coda_msg::IN_HDR_SIZE || msg.len() > coda_msg::VC_MAXMSGSIZE {
            return Err(EINVAL);
        }
        if out_cap.is_some_and(|c| !(coda_msg::OUT_HDR_SIZE..=coda_msg::VC_MAXMSGSIZE).contains(&c))
        {
            return Err(EINVAL);
        }
        let opcode = opcode_of(&msg);
        if !coda_msg::is_upcall(opcode) {
            return Err(EINVAL);
        }
        // Allocated before the lock is taken; the unique is filled in under it.
        let mut up = UniqueArc::pin_init(
            pin_init!(Upcall {
                unique: 0,
                opcode,
                out_cap,
                from_fs,
                must_deliver: coda_msg::is_uninterruptible(*opcode),
                msg,
                phase: LockedBy::new(&self.state, Phase::Queued),
                cancelled: LockedBy::new(&self.state, false),
                detached: LockedBy::new(&self.state, false),
                done <- new_condvar!("Upcall::done"),
            }),
            GFP_KERNEL,
        )?;
        let mut g = self.lock();
        self.wait_for_room(&mut g, from_fs, p)?;
        let unique = loop {
            let u = g.next_unique;
            g.next_unique = u.wrapping_add(1);
            // Uniques of asynchronous upcalls take no slot, but keep them distinct anyway.
            if u != 0 && g.table[g.slot(u)].is_none() {
                break u;
            }
        };
        let fields = up.as_mut().project();
        *fields.unique = unique;
        fields.msg[4..8].copy_from_slice(&unique.to_ne_bytes());
        let len = fields.msg.len();
        let up: Arc<Upcall> = up.into();
        let st = &mut *g;
        if out_cap.is_some() {
            let s = st.slot(unique);
            st.table[s] = Some(up.clone());
        }
        if st.requests.push_back(up.clone()).is_err() {
            // Cannot happen: the queue holds `max_outstanding` and `occupied` is below it.
            st.unlist(&up);
            return Err(EBUSY);
        }
        st.occupied += 1;
        st.outstanding += 1;
        let ops = &mut st.stats.op[op_index(opcode)];
        ops.calls += 1;
        st.stats.mem_bytes += upcall_size(len);
        st.update_gauges();
        // An asynchronous upcall has no caller to wake a reader later.
        let wake = out_cap.is_none() || !st.venus_busy;
        let sleeper = if wake { st.pop_sleeper() } else { None };
        if !wake {
            st.stats.wakes_skipped += 1;
        }
        drop(g);
        if let Some(s) = sleeper {
            s.cv.notify_one();
        }
        if wake {
            self.readers.notify_one();
        }
        Ok((up, !wake))
    }

    /// Waits until the device has room for one more message under the bound.
    fn wait_for_room(
        &self,
        g: &mut MutexGuard<'_, CommState>,
        from_fs: bool,
        p: &mut Patience,
    ) -> Result {
        let aborts = g.fs_aborts;
        loop {
            if !g.open {
                return Err(ENODEV);
            }
            if from_fs && g.fs_aborts != aborts {
                return Err(EIO);
            }
            if g.occupied < self.config.max_outstanding {
                return Ok(());
            }
            g.room_waiters += 1;
            let slept = Self::sleep(&self.room, g, p, None);
            g.room_waiters -= 1;
            if let Slept::GiveUp(why) = slept {
                // We may have taken a wake-up meant for room that is there now: pass it on.
                if g.occupied < self.config.max_outstanding {
                    self.room.notify_one();
                }
                return Err(why.errno());
            }
        }
    }

    /// Makes an upcall from the control device and waits for Venus's reply, which it
    /// returns (exactly the bytes Venus wrote). Fails with ENODEV when Venus is away or
    /// closes the device, EINTR on a signal, ETIMEDOUT when the module's timeout runs out,
    /// EIO when the reply did not fit `out_cap`; see [`Self::patience`].
    pub(crate) fn call(&self, msg: KVec<u8>, out_cap: usize) -> Result<Reply> {
        self.call_from(msg, out_cap, false, Caller::Control)
    }

    /// [`Self::call`] for the kernel's Coda file system, with its `hard` and `timeout`
    /// sysctls: such a call never times out. A forced unmount ends the file system's calls
    /// ([`Self::abort_fs_calls`]).
    pub(crate) fn call_from_kernel(
        &self,
        msg: KVec<u8>,
        out_cap: usize,
        hard: bool,
        timeout_secs: u32,
    ) -> Result<Reply> {
        self.call_from(msg, out_cap, true, Caller::Fs { hard, timeout_secs })
    }

    fn call_from(
        &self,
        msg: KVec<u8>,
        out_cap: usize,
        from_fs: bool,
        caller: Caller,
    ) -> Result<Reply> {
        let mut p = self.patience(opcode_of(&msg), caller);
        let (up, nudge) = self.submit_from(msg, Some(out_cap), from_fs, &mut p)?;
        self.wait_for(&up, &mut p, nudge).map(|bytes| Reply {
            unique: up.unique,
            bytes,
        })
    }

    /// Sleeps until `up` has an outcome, giving up on a signal or a timeout as `p` says.
    /// With `nudge` its submission woke no Venus thread: if none has taken it after
    /// [`NUDGE`], the caller wakes one.
    fn wait_for(&self, up: &Arc<Upcall>, p: &mut Patience, mut nudge: bool) -> Result<KVec<u8>> {
        let mut g = self.lock();
        loop {
            if let Some(r) = Self::outcome(&mut g, up) {
                return r;
            }
            if *up.cancelled.access(&g) {
                // As if the caller were interrupted: Venus hears of it by CODA_SIGNAL.
                self.give_up(&mut g, up, GiveUp::Signal);
                return Err(EIO);
            }
            // Capped until the nudge is due: an early wake-up may be spurious.
            nudge &= matches!(up.phase.access(&g), Phase::Queued);
            let why = match Self::sleep(&up.done, &mut g, p, nudge.then_some(NUDGE)) {
                Slept::Woken => continue,
                Slept::Capped => {
                    nudge = false;
                    if matches!(up.phase.access(&g), Phase::Queued) {
                        // The Venus thread counted on did not come: it may be blocked.
                        g.venus_busy = false;
                        g.stats.nudges += 1;
                        self.wake_reader(&mut g);
                    }
                    continue;
                }
                Slept::GiveUp(why) => why,
            };
            // A reply that arrived meanwhile wins over the signal or the timeout.
            if let Some(r) = Self::outcome(&mut g, up) {
                return r;
            }
            self.give_up(&mut g, up, why);
            return Err(why.errno());
        }
    }

    /// The outcome of `up` if it has one; takes the reply bytes.
    fn outcome(g: &mut MutexGuard<'_, CommState>, up: &Upcall) -> Option<Result<KVec<u8>>> {
        match core::mem::replace(up.phase.access_mut(g), Phase::Failed(EIO)) {
            Phase::Replied(bytes) => Some(Ok(bytes)),
            Phase::Failed(e) => Some(Err(e)),
            other => {
                *up.phase.access_mut(g) = other;
                None
            }
        }
    }

    /// The caller of `up` stops waiting: before Venus read the request it is dequeued (or,
    /// for a message Venus must see, detached), after it Venus is sent CODA_SIGNAL for it.
    /// Used by [`Self::wait_for`], and by tests.
    pub(crate) fn give_up(&self, g: &mut MutexGuard<'_, CommState>, up: &Arc<Upcall>, why: GiveUp) {
        let st = &mut **g;
        if up.must_deliver && matches!(up.phase.access(st), Phase::Queued) {
            Self::detach(st, up, why);
            return;
        }
        let phase = core::mem::replace(up.phase.access_mut(st), Phase::Failed(EINTR));
        let ops = &mut st.stats.op[op_index(up.opcode)];
        match (why, &phase) {
            (GiveUp::Timeout, _) => ops.timeouts += 1,
            (GiveUp::Signal, Phase::Read) => ops.intr_after_read += 1,
            // Counted when the reader settles it.
            (GiveUp::Signal, Phase::Reading) => {}
            (GiveUp::Signal, _) => ops.intr_before_read += 1,
        }
        let reading = matches!(phase, Phase::Reading);
        if reading {
            *up.phase.access_mut(st) = Phase::GaveUpReading(why);
        }
        st.unlist(up);
        // A signal during the copy to Venus is counted, and the call stops being
        // outstanding, once the copy's end tells which counter it goes to: so every
        // snapshot of the statistics balances.
        if !(why == GiveUp::Signal && reading) {
            st.outstanding -= 1;
        }
        // A message Venus must see keeps its memory until the copy's end says whether it
        // goes back to the queue.
        if !(reading && up.must_deliver) {
            st.stats.mem_bytes -= upcall_size(up.msg.len());
        }
        match phase {
            Phase::Queued => {
                if st.requests.remove_first(|u| Arc::ptr_eq(u, up)).is_some() {
                    st.release_unit(self);
                }
            }
            Phase::Read => {
                st.stats.processing -= 1;
                // Cannot fail: the request held the unit that the signal now holds.
                let _ = st.signals.push_back(up.clone());
                self.wake_reader(st);
            }
            // The reader copying it settles it (`VenusComm::settle`).
            Phase::Reading => {}
            Phase::Replied(_) | Phase::Failed(_) | Phase::GaveUpReading(_) => {}
        }
        g.update_gauges();
    }

    /// The caller of a queued CODA_CLOSE, CODA_STORE, CODA_RELEASE or CODA_ACCESS_INTENT
    /// stops waiting (SIGKILL, `umount -f`): the call ends, but the message stays queued
    /// for Venus as an asynchronous one, so that Venus still stores the file and keeps its
    /// open counts right; its reply, with no caller left, gets ESRCH. It keeps its unit of
    /// the bound and its memory until Venus reads it. Linux's coda dequeues it and Venus
    /// never hears of the close.
    fn detach(st: &mut CommState, up: &Arc<Upcall>, why: GiveUp) {
        st.unlist(up);
        *up.detached.access_mut(st) = true;
        let ops = &mut st.stats.op[op_index(up.opcode)];
        match why {
            GiveUp::Timeout => ops.timeouts += 1,
            GiveUp::Signal => ops.intr_before_read += 1,
        }
        st.outstanding -= 1;
        st.update_gauges();
    }

    /// Gives the bytes Venus gets for a taken message to `f` (which copies them to Venus)
    /// without the lock held: the copy may fault.
    pub(crate) fn with_bytes<R>(&self, t: &Taken, f: impl FnOnce(&[u8]) -> R) -> R {
        if t.signal {
            let hdr = InHdr {
                opcode: coda_msg::CODA_SIGNAL,
                unique: t.upcall.unique,
                pid: 0,
                pgid: 0,
                uid: 0,
            };
            return f(hdr.as_bytes());
        }
        f(&t.upcall.msg)
    }

    /// Copies a taken message to Venus with `copy`, given its bytes, and settles it:
    /// committed when the copy succeeds, back at the head of its queue when it fails (a
    /// bad buffer loses nothing). Returns the message's length.
    pub(crate) fn copy_out(&self, t: Taken, copy: impl FnOnce(&[u8]) -> Result) -> Result<usize> {
        let copied = self.with_bytes(&t, |bytes| copy(bytes).map(|()| bytes.len()));
        self.settle(&mut [Some(t)], usize::from(copied.is_ok()));
        copied
    }

    /// The copy of a taken message to Venus failed: it goes back to the head of its queue.
    fn unread_locked(&self, g: &mut MutexGuard<'_, CommState>, t: Taken) {
        let st = &mut **g;
        if t.signal {
            let _ = st.signals.push_front(t.upcall);
        } else if matches!(t.upcall.phase.access(st), Phase::Reading) {
            *t.upcall.phase.access_mut(st) = Phase::Queued;
            let _ = st.requests.push_front(t.upcall);
        } else if t.upcall.must_deliver {
            // The caller gave up during a copy that failed, and Venus must still see the
            // message: it goes back detached. A signal is counted now, as when the copy
            // succeeds; the unit and the memory stay with it.
            if matches!(
                t.upcall.phase.access(st),
                Phase::GaveUpReading(GiveUp::Signal)
            ) {
                st.stats.op[op_index(t.upcall.opcode)].intr_before_read += 1;
                st.outstanding -= 1;
            }
            *t.upcall.phase.access_mut(st) = Phase::Queued;
            *t.upcall.detached.access_mut(st) = true;
            let _ = st.requests.push_front(t.upcall);
        } else {
            // The caller gave up during the copy: the message leaves the device.
            if matches!(
                t.upcall.phase.access(st),
                Phase::GaveUpReading(GiveUp::Signal)
            ) {
                st.stats.op[op_index(t.upcall.opcode)].intr_before_read += 1;
                st.outstanding -= 1;
            }
            st.release_unit(self);
        }
    }

    /// Takes into `out` the messages queued, under one acquisition of the lock, while
    /// `fits` accepts their lengths; returns how many. Each is settled by [`Self::settle`].
    pub(crate) fn take_batch(
        &self,
        out: &mut [Option<Taken>],
        mut fits: impl FnMut(usize) -> bool,
    ) -> usize {
        let mut g = self.lock();
        // This thread returns to Venus with messages, and comes back for more.
        g.venus_busy = true;
        let mut n = 0;
        while n < out.len() {
            match g.take(&mut fits) {
                Ok(Some(t)) => out[n] = Some(t),
                Ok(None) | Err(_) => break,
            }
            n += 1;
        }
        n
    }

    /// Settles taken messages under one acquisition of the lock: the first `copied` reached
    /// Venus, the rest go back to the head of their queues in their order (a bad buffer
    /// loses nothing).
    pub(crate) fn settle(&self, batch: &mut [Option<Taken>], copied: usize) {
        let mut g = self.lock();
        for t in batch[..copied].iter_mut().filter_map(Option::take) {
            self.commit_locked(&mut g, t);
        }
        let mut back = false;
        for t in batch[copied..].iter_mut().rev().filter_map(Option::take) {
            self.unread_locked(&mut g, t);
            back = true;
        }
        g.update_gauges();
        if back {
            self.wake_reader(&mut g);
        }
    }

    /// Venus got the whole message.
    fn commit_locked(&self, g: &mut MutexGuard<'_, CommState>, t: Taken) {
        let st = &mut **g;
        let up = t.upcall;
        let op = op_index(up.opcode);
        if t.signal {
            st.stats.op[op].signals_sent += 1;
            st.stats.op[op].bytes_in += coda_msg::IN_HDR_SIZE as u64;
            st.release_unit(self);
        } else {
            let len = up.msg.len();
            st.stats.op[op].bytes_in += len as u64;
            let reading = matches!(up.phase.access(st), Phase::Reading);
            if reading && *up.detached.access(st) {
                // Its caller's outcome was counted when it was detached.
                st.stats.mem_bytes -= upcall_size(len);
                st.release_unit(self);
            } else if reading && up.out_cap.is_none() {
                st.stats.op[op].async_read += 1;
                st.outstanding -= 1;
                st.stats.mem_bytes -= upcall_size(len);
                st.release_unit(self);
            } else if reading {
                *up.phase.access_mut(st) = Phase::Read;
                st.stats.processing += 1;
            } else {
                // The caller gave up during the copy, after Venus got it: Venus must hear
                // of it like any call interrupted after the read.
                if matches!(up.phase.access(st), Phase::GaveUpReading(GiveUp::Signal)) {
                    st.stats.op[op].intr_after_read += 1;
                    st.outstanding -= 1;
                }
                if up.must_deliver {
                    st.stats.mem_bytes -= upcall_size(len);
                }
                let _ = st.signals.push_back(up);
                self.wake_reader(st);
            }
        }
    }

    /// The first half of a reply: finds the request Venus read for `unique`. The caller
    /// then copies the reply in without the lock and finishes with [`Self::reply_commit`].
    /// Fails with ESRCH for a unique Venus has not read (or whose caller gave up), and with
    /// EINVAL for a reply longer than the caller's room, whose caller then gets EIO.
    pub(crate) fn reply_begin(&self, unique: u32, len: usize) -> Result<PendingReply> {
        let mut g = self.lock();
        let st = &mut *g;
        let Some(up) = st.lookup(unique).cloned() else {
            return Err(ESRCH);
        };
        if !matches!(up.phase.access(st), Phase::Read) {
            return Err(ESRCH);
        }
        if len > up.out_cap.unwrap_or(0) {
            self.finish(st, &up, Phase::Failed(EIO));
            st.stats.op[op_index(up.opcode)].bad_replies += 1;
            drop(g);
            up.done.notify_all();
            return Err(EINVAL);
        }
        Ok(PendingReply { upcall: up })
    }

    /// Hands the reply to its caller. ESRCH if the caller gave up meanwhile. `by_write`:
    /// Venus wrote it with write(2), not through the exchange.
    pub(crate) fn reply_commit(&self, r: PendingReply, bytes: KVec<u8>, by_write: bool) -> Result {
        let mut g = self.lock();
        if by_write && g.venus_busy {
            // A thread that answers with write(2) may not come back through the exchange:
            // count on none, so that the next request wakes a sleeper rather than waiting
            // for its caller's nudge.
            self.pass_on(&mut g);
        }
        let st = &mut *g;
        let up = r.upcall;
        if !matches!(up.phase.access(st), Phase::Read) {
            return Err(ESRCH);
        }
        let ops = &mut st.stats.op[op_index(up.opcode)];
        ops.replies += 1;
        ops.bytes_out += bytes.len() as u64;
        self.finish(st, &up, Phase::Replied(bytes));
        drop(g);
        // Woken after the unlock: the caller's first act is to take this lock.
        up.done.notify_all();
        Ok(())
    }

    /// Settles a request Venus read with `outcome`; the caller of `finish` wakes its
    /// waiter once the lock is dropped.
    fn finish(&self, st: &mut CommState, up: &Arc<Upcall>, outcome: Phase) {
        *up.phase.access_mut(st) = outcome;
        st.unlist(up);
        st.outstanding -= 1;
        st.stats.processing -= 1;
        st.stats.mem_bytes -= upcall_size(up.msg.len());
        st.release_unit(self);
        st.update_gauges();
    }

    /// A forced unmount (`umount -f`) of the file system on this device: its calls that
    /// have no reply yet, and those waiting for room, end with EIO; as NFS's, it ends the
    /// calls in flight and refuses no later one. They are settled (and counted) as
    /// interrupted calls: Venus gets CODA_SIGNAL for those it read, and a queued
    /// CODA_CLOSE or CODA_STORE never reaches it. Control-device calls go on.
    pub(crate) fn abort_fs_calls(&self) {
        let mut g = self.lock();
        let st = &mut *g;
        st.fs_aborts += 1;
        for i in 0..st.table.len() {
            let Some(up) = st.table[i].clone() else {
                continue;
            };
            if up.from_fs {
                *up.cancelled.access_mut(st) = true;
                up.done.notify_all();
            }
        }
        drop(g);
        self.room.notify_all();
    }

    /// Counts a downcall Venus wrote, and one that was refused.
    pub(crate) fn count_downcall(&self, opcode: u32, dropped: u64) {
        let mut g = self.lock();
        g.stats.downcalls += 1;
        g.stats.downcall_by_op[op_index(opcode)] += 1;
        g.stats.downcalls_dropped += dropped;
    }

    pub(crate) fn count_bad_write(&self) {
        self.lock().stats.bad_writes += 1;
    }

    pub(crate) fn venus_is_open(&self) -> bool {
        self.lock().open
    }

    /// Whether a message waits for Venus.
    pub(crate) fn readable(&self) -> bool {
        let mut g = self.lock();
        let readable = g.queued() > 0;
        if !readable {
            g.venus_busy = false;
        }
        readable
    }

    pub(crate) fn readers(&self) -> &PollCondVar {
        &self.readers
    }

    /// Takes the next message, CODA_SIGNAL first, if it fits `room`, sleeping until one is
    /// queued: EAGAIN instead with `nonblock`, ERESTARTSYS on a signal, EMSGSIZE when it
    /// does not fit (it stays queued: Linux truncates it and loses the rest). Finding the
    /// queues empty and going to sleep happen under one hold of the lock, so that a request
    /// queued in between wakes this thread. `batch`: the thread reads through the exchange.
    pub(crate) fn take_waiting(&self, room: usize, nonblock: bool, batch: bool) -> Result<Taken> {
        let mut me: Option<Arc<Sleeper>> = None;
        let mut allocated = false;
        let mut g = self.lock();
        loop {
            match g.take(|len| len <= room) {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => {}
                Err(e) => {
                    // This thread may have been woken for the message it cannot take.
                    self.pass_on(&mut g);
                    return Err(e);
                }
            }
            g.venus_busy = false;
            if nonblock {
                return Err(EAGAIN);
            }
            if !allocated {
                // Without the lock, then the queues are looked at again. Without it the
                // thread waits on the shared queue.
                allocated = true;
                drop(g);
                me = Arc::pin_init(
                    pin_init!(Sleeper {
                        batch,
                        woken: LockedBy::new(&self.state, false),
                        cv <- new_condvar!("VenusComm::sleeper"),
                    }),
                    GFP_KERNEL,
                )
                .ok();
                g = self.lock();
                continue;
            }
            let listed = me.as_ref().filter(|m| {
                *m.woken.access_mut(&mut g) = false;
                g.sleepers.push_front((*m).clone()).is_ok()
            });
            let signalled = match listed {
                Some(m) => {
                    let signalled = m.cv.wait_interruptible(&mut g);
                    if !*m.woken.access(&g) {
                        g.sleepers.remove_first(|s| Arc::ptr_eq(s, m));
                    }
                    signalled
                }
                None => self.readers.wait_interruptible(&mut g),
            };
            if signalled {
                self.pass_on(&mut g);
                return Err(ERESTARTSYS);
            }
        }
    }

    /// A copy of the statistics.
    pub(crate) fn stats(&self, out: &mut PsdevStats) {
        let g = self.lock();
        *out = *g.stats;
    }

    /// The statistics as bytes, for the ioctls.
    pub(crate) fn stats_bytes(&self) -> Result<KBox<PsdevStats>> {
        let mut b = KBox::<PsdevStats>::new(PsdevStats::new_zeroed(), GFP_KERNEL)?;
        self.stats(&mut b);
        Ok(b)
    }
}

#[kunit_tests(coda_psdev_upcall)]
mod tests {
    use super::*;
    use kernel::time::delay::fsleep;
    use kernel::time::Delta;

    const CFG: Config = Config {
        timeout_secs: 0,
        hard: false,
        max_outstanding: 8,
    };

    /// A control-device caller's patience for a STATFS.
    fn ctl_patience(comm: &VenusComm) -> Patience {
        comm.patience(coda_msg::CODA_STATFS, Caller::Control)
    }

    /// Queues an upcall as a caller would before [`VenusComm::wait_for`].
    fn submit(comm: &VenusComm, msg: KVec<u8>, out_cap: Option<usize>) -> Result<Arc<Upcall>> {
        let mut p = comm.patience(opcode_of(&msg), Caller::Control);
        comm.submit_from(msg, out_cap, false, &mut p)
            .map(|(up, _)| up)
    }

    fn open_comm(config: Config) -> Result<Arc<VenusComm>> {
        let comm = VenusComm::new(0, config)?;
        comm.venus_open()?;
        Ok(comm)
    }

    /// A STATFS request whose body carries `tag`, so a test can tell messages apart.
    fn request(tag: u8) -> Result<KVec<u8>> {
        let mut m = KVec::from_elem(tag, coda_msg::IN_HDR_SIZE + 4, GFP_KERNEL)?;
        m[0..4].copy_from_slice(&coda_msg::CODA_STATFS.to_ne_bytes());
        Ok(m)
    }

    /// Venus reads the next message; returns (was a signal, unique, body tag).
    fn venus_read(comm: &VenusComm) -> Result<Option<(bool, u32, u8)>> {
        let t = match comm.take_waiting(coda_msg::VC_MAXMSGSIZE, true, false) {
            Err(e) if e == EAGAIN => return Ok(None),
            r => r?,
        };
        let signal = t.signal;
        let r = comm.with_bytes(&t, |m| {
            let unique = u32::from_ne_bytes([m[4], m[5], m[6], m[7]]);
            (signal, unique, if signal { 0 } else { m[m.len() - 1] })
        });
        comm.settle(&mut [Some(t)], 1);
        Ok(Some(r))
    }

    fn venus_reply(comm: &VenusComm, unique: u32, len: usize, tag: u8) -> Result {
        let p = comm.reply_begin(unique, len)?;
        let mut bytes = KVec::from_elem(tag, len, GFP_KERNEL)?;
        bytes[0..4].copy_from_slice(&coda_msg::CODA_STATFS.to_ne_bytes());
        bytes[4..8].copy_from_slice(&unique.to_ne_bytes());
        comm.reply_commit(p, bytes, true)
    }

    fn stats(comm: &VenusComm) -> Result<KBox<PsdevStats>> {
        comm.stats_bytes()
    }

    #[test]
    fn queue_order() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        let b = submit(&comm, request(2)?, Some(64))?;
        let c = submit(&comm, request(3)?, None)?;
        assert_eq!(venus_read(&comm)?, Some((false, a.unique, 1)));
        assert_eq!(venus_read(&comm)?, Some((false, b.unique, 2)));
        assert_eq!(venus_read(&comm)?, Some((false, c.unique, 3)));
        assert_eq!(venus_read(&comm)?, None);
        assert_eq!(
            stats(&comm)?.op[coda_msg::CODA_STATFS as usize].async_read,
            1
        );
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn short_buffer_keeps_message() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        assert!(matches!(comm.take_waiting(8, true, false), Err(e) if e == EMSGSIZE));
        assert_eq!(venus_read(&comm)?, Some((false, a.unique, 1)));
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn signal_before_read() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        let b = submit(&comm, request(2)?, Some(64))?;
        comm.give_up(&mut comm.lock(), &a, GiveUp::Signal);
        // A is gone without a trace; B is next and no CODA_SIGNAL is sent.
        assert_eq!(venus_read(&comm)?, Some((false, b.unique, 2)));
        assert_eq!(venus_read(&comm)?, None);
        let st = stats(&comm)?;
        assert_eq!(st.op[coda_msg::CODA_STATFS as usize].intr_before_read, 1);
        assert_eq!(st.outstanding, 1);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn batch_takes_in_order_and_puts_back_the_rest() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        assert_eq!(venus_read(&comm)?, Some((false, a.unique, 1)));
        let b = submit(&comm, request(2)?, Some(64))?;
        let c = submit(&comm, request(3)?, Some(64))?;
        let d = submit(&comm, request(4)?, Some(64))?;
        comm.give_up(&mut comm.lock(), &a, GiveUp::Signal);
        // Room for two messages only: the CODA_SIGNAL and b.
        let mut room = 2;
        let mut batch: [Option<Taken>; 4] = [const { None }; 4];
        let n = comm.take_batch(&mut batch, |_| {
            room -= 1;
            room >= 0
        });
        assert_eq!(n, 2);
        assert!(batch[0].as_ref().is_some_and(|t| t.signal));
        // The CODA_SIGNAL reached Venus; b's copy failed and b goes back before c.
        comm.settle(&mut batch[..n], 1);
        assert_eq!(venus_read(&comm)?, Some((false, b.unique, 2)));
        let n = comm.take_batch(&mut batch, |_| true);
        assert_eq!(n, 2);
        comm.settle(&mut batch[..n], 0);
        assert_eq!(venus_read(&comm)?, Some((false, c.unique, 3)));
        assert_eq!(venus_read(&comm)?, Some((false, d.unique, 4)));
        assert_eq!(venus_read(&comm)?, None);
        let st = stats(&comm)?;
        assert_eq!(st.op[coda_msg::CODA_STATFS as usize].signals_sent, 1);
        assert_eq!(st.processing, 3);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn signal_after_read() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        assert_eq!(venus_read(&comm)?, Some((false, a.unique, 1)));
        let b = submit(&comm, request(2)?, Some(64))?;
        comm.give_up(&mut comm.lock(), &a, GiveUp::Signal);
        // The CODA_SIGNAL overtakes the queued request.
        assert_eq!(venus_read(&comm)?, Some((true, a.unique, 0)));
        assert_eq!(venus_read(&comm)?, Some((false, b.unique, 2)));
        assert!(matches!(venus_reply(&comm, a.unique, 12, 0), Err(e) if e == ESRCH));
        let st = stats(&comm)?;
        assert_eq!(st.op[coda_msg::CODA_STATFS as usize].intr_after_read, 1);
        assert_eq!(st.op[coda_msg::CODA_STATFS as usize].signals_sent, 1);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn forced_unmount_ends_fs_calls() -> Result {
        let comm = open_comm(CFG)?;
        let mut left = ctl_patience(&comm);
        let (fs_read, _) = comm.submit_from(request(1)?, Some(64), true, &mut left)?;
        let ctl = submit(&comm, request(2)?, Some(64))?;
        assert_eq!(venus_read(&comm)?, Some((false, fs_read.unique, 1)));
        let (fs_queued, _) = comm.submit_from(request(3)?, Some(64), true, &mut left)?;
        comm.abort_fs_calls();
        // The file system's calls end with EIO; Venus hears of the one it read.
        assert!(
            matches!(comm.wait_for(&fs_read, &mut ctl_patience(&comm), false), Err(e) if e == EIO)
        );
        assert!(
            matches!(comm.wait_for(&fs_queued, &mut ctl_patience(&comm), false), Err(e) if e == EIO)
        );
        assert_eq!(venus_read(&comm)?, Some((true, fs_read.unique, 0)));
        // The control device's call is untouched and still gets its reply.
        assert_eq!(venus_read(&comm)?, Some((false, ctl.unique, 2)));
        assert_eq!(venus_read(&comm)?, None);
        venus_reply(&comm, ctl.unique, 16, 0xcc)?;
        assert_eq!(
            comm.wait_for(&ctl, &mut ctl_patience(&comm), false)?.len(),
            16
        );
        let st = stats(&comm)?;
        assert_eq!(st.outstanding, 0);
        assert_eq!(st.pending, 0);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn reply_matching() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        let b = submit(&comm, request(2)?, Some(64))?;
        venus_read(&comm)?;
        venus_read(&comm)?;
        // Out of order, and B shorter than its room: each caller gets its own bytes.
        venus_reply(&comm, b.unique, 20, 0xbb)?;
        venus_reply(&comm, a.unique, 64, 0xaa)?;
        let ra = comm.wait_for(&a, &mut ctl_patience(&comm), false)?;
        let rb = comm.wait_for(&b, &mut ctl_patience(&comm), false)?;
        assert_eq!((ra.len(), ra[63]), (64, 0xaa));
        assert_eq!((rb.len(), rb[19]), (20, 0xbb));
        // A second reply to the same unique finds nobody.
        assert!(matches!(venus_reply(&comm, a.unique, 12, 0), Err(e) if e == ESRCH));
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn oversized_reply_fails_caller_with_eio() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(16))?;
        venus_read(&comm)?;
        assert!(matches!(venus_reply(&comm, a.unique, 17, 0), Err(e) if e == EINVAL));
        assert!(matches!(comm.wait_for(&a, &mut ctl_patience(&comm), false), Err(e) if e == EIO));
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn timeout() -> Result {
        let comm = open_comm(Config {
            timeout_secs: 1,
            ..CFG
        })?;
        let a = submit(&comm, request(1)?, Some(64))?;
        venus_read(&comm)?;
        assert!(
            matches!(comm.wait_for(&a, &mut ctl_patience(&comm), false), Err(e) if e == ETIMEDOUT)
        );
        // Venus had read it, so it hears of the timeout.
        assert_eq!(venus_read(&comm)?, Some((true, a.unique, 0)));
        assert_eq!(stats(&comm)?.op[coda_msg::CODA_STATFS as usize].timeouts, 1);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn close_with_waiters() -> Result {
        let comm = open_comm(CFG)?;
        let a = submit(&comm, request(1)?, Some(64))?;
        let b = submit(&comm, request(2)?, Some(64))?;
        venus_read(&comm)?;
        comm.venus_close();
        assert!(
            matches!(comm.wait_for(&a, &mut ctl_patience(&comm), false), Err(e) if e == ENODEV)
        );
        assert!(
            matches!(comm.wait_for(&b, &mut ctl_patience(&comm), false), Err(e) if e == ENODEV)
        );
        assert!(matches!(submit(&comm, request(3)?, Some(64)), Err(e) if e == ENODEV));
        let st = stats(&comm)?;
        assert_eq!(
            (st.outstanding, st.pending, st.processing, st.mem_bytes),
            (0, 0, 0, 0)
        );
        // A new open starts from empty queues.
        comm.venus_open()?;
        assert_eq!(venus_read(&comm)?, None);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn bound_on_outstanding() -> Result {
        let comm = open_comm(Config {
            max_outstanding: 2,
            ..CFG
        })?;
        let a = submit(&comm, request(1)?, Some(64))?;
        let _b = submit(&comm, request(2)?, Some(64))?;
        // A third caller, in a worker, must wait for room.
        let c2 = comm.clone();
        kernel::workqueue::system().try_spawn(GFP_KERNEL, move || {
            if let Ok(m) = request(3) {
                let _ = c2.call(m, 64);
            }
        })?;
        fsleep(Delta::from_millis(200));
        assert_eq!(stats(&comm)?.op[coda_msg::CODA_STATFS as usize].calls, 2);
        venus_read(&comm)?;
        venus_reply(&comm, a.unique, 12, 0)?;
        comm.wait_for(&a, &mut ctl_patience(&comm), false)?;
        let mut waited = 0;
        while stats(&comm)?.op[coda_msg::CODA_STATFS as usize].calls < 3 && waited < 50 {
            fsleep(Delta::from_millis(100));
            waited += 1;
        }
        assert_eq!(stats(&comm)?.op[coda_msg::CODA_STATFS as usize].calls, 3);
        // Closing releases the worker's call with ENODEV.
        comm.venus_close();
        Ok(())
    }

    /// A request of `opcode` with a one-byte body `tag`.
    fn request_op(opcode: u32, tag: u8) -> Result<KVec<u8>> {
        let mut m = request(tag)?;
        m[0..4].copy_from_slice(&opcode.to_ne_bytes());
        Ok(m)
    }

    #[test]
    fn fs_calls_never_time_out() -> Result {
        let comm = open_comm(Config {
            timeout_secs: 1,
            ..CFG
        })?;
        // No file-system call has a deadline: the file system's timeout only lets
        // signals through.
        let fs = Caller::Fs {
            hard: false,
            timeout_secs: 1,
        };
        let close = comm.patience(coda_msg::CODA_CLOSE, fs);
        assert!(close.left.is_none() && !close.lift_at_timeout && close.block.is_some());
        drop(close);
        let mut p = comm.patience(coda_msg::CODA_STATFS, fs);
        assert!(p.lift_at_timeout && p.block.is_some());
        let (a, _) = comm.submit_from(request(1)?, Some(64), true, &mut p)?;
        // Venus answers after three times a shorter timeout, to keep the test quick.
        p.left = Some(msecs_to_jiffies(100));
        let c2 = comm.clone();
        let unique = a.unique;
        kernel::workqueue::system().try_spawn(GFP_KERNEL, move || {
            fsleep(Delta::from_millis(300));
            if venus_read(&c2).is_ok() {
                let _ = venus_reply(&c2, unique, 16, 0xaa);
            }
        })?;
        assert_eq!(comm.wait_for(&a, &mut p, false)?.len(), 16);
        assert!(p.block.is_some() && !p.lift_at_timeout && p.left.is_none());
        assert_eq!(stats(&comm)?.op[coda_msg::CODA_STATFS as usize].timeouts, 0);
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn close_outlives_its_caller() -> Result {
        let comm = open_comm(CFG)?;
        let close = submit(&comm, request_op(coda_msg::CODA_CLOSE, 7)?, Some(64))?;
        let statfs = submit(&comm, request(8)?, Some(64))?;
        // Both callers are killed before Venus reads: the STATFS is gone, the CLOSE is not.
        comm.give_up(&mut comm.lock(), &close, GiveUp::Signal);
        comm.give_up(&mut comm.lock(), &statfs, GiveUp::Signal);
        let st = stats(&comm)?;
        assert_eq!((st.outstanding, st.pending), (0, 1));
        assert_eq!(venus_read(&comm)?, Some((false, close.unique, 7)));
        assert_eq!(venus_read(&comm)?, None);
        // No one waits for the reply.
        assert!(matches!(venus_reply(&comm, close.unique, 12, 0), Err(e) if e == ESRCH));
        let st = stats(&comm)?;
        assert_eq!(st.op[coda_msg::CODA_CLOSE as usize].intr_before_read, 1);
        assert_eq!(
            (st.outstanding, st.pending, st.processing, st.mem_bytes),
            (0, 0, 0, 0)
        );
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn timed_out_close_still_reaches_venus() -> Result {
        let comm = open_comm(Config {
            timeout_secs: 1,
            ..CFG
        })?;
        let close = submit(&comm, request_op(coda_msg::CODA_CLOSE, 9)?, Some(64))?;
        let mut p = comm.patience(coda_msg::CODA_CLOSE, Caller::Control);
        assert!(matches!(comm.wait_for(&close, &mut p, false), Err(e) if e == ETIMEDOUT));
        drop(p);
        assert_eq!(venus_read(&comm)?, Some((false, close.unique, 9)));
        let st = stats(&comm)?;
        assert_eq!(st.op[coda_msg::CODA_CLOSE as usize].timeouts, 1);
        assert_eq!((st.outstanding, st.pending, st.mem_bytes), (0, 0, 0));
        comm.venus_close();
        Ok(())
    }

    #[test]
    fn venus_busy_means_a_thread_comes_back() -> Result {
        for by_write in [false, true] {
            let comm = open_comm(CFG)?;
            let a = submit(&comm, request(1)?, Some(64))?;
            // An exchange takes the only message, then looks for more.
            let t = comm.take_waiting(coda_msg::VC_MAXMSGSIZE, true, true)?;
            comm.settle(&mut [Some(t)], 1);
            let mut batch: [Option<Taken>; 4] = [const { None }; 4];
            assert_eq!(comm.take_batch(&mut batch, |_| true), 0);
            assert!(comm.lock().venus_busy);
            let p = comm.reply_begin(a.unique, 12)?;
            let mut bytes = KVec::from_elem(0u8, 12, GFP_KERNEL)?;
            bytes[0..4].copy_from_slice(&coda_msg::CODA_STATFS.to_ne_bytes());
            comm.reply_commit(p, bytes, by_write)?;
            // Answered through the exchange, the thread is counted on to come back; with
            // write(2) it is not, and the next request wakes a sleeper.
            assert_eq!(comm.lock().venus_busy, !by_write);
            let b = submit(&comm, request(2)?, Some(64))?;
            assert_eq!(stats(&comm)?.wakes_skipped, u64::from(!by_write));
            comm.give_up(&mut comm.lock(), &b, GiveUp::Signal);
            comm.venus_close();
        }
        Ok(())
    }
}
