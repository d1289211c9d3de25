// SPDX-License-Identifier: GPL-2.0

//! Writing replies and downcalls to /dev/cfsN, and the downcalls' delivery to
//! /dev/coda_ctl.

use coda_msg::PsdevStats;
use coda_msg::CODA_FLUSH;
use coda_msg::CODA_GETATTR;
use coda_msg::CODA_PURGEFID;
use coda_msg::CODA_PURGEUSER;
use coda_msg::CODA_REPLACE;
use coda_msg::CODA_STATFS;
use coda_msg::CODA_ZAPDIR;
use coda_msg::CODA_ZAPFILE;
use coda_msg::OUTPUT_ARGS_SIZE;
use coda_msg::OUT_HDR_SIZE;
use coda_msg::VC_MAXMSGSIZE;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;

use super::answer;
use super::expect_answer;
use super::start_call;
use super::CAP;
use super::STAYS;
use crate::caller::Ctl;
use crate::caller::SENTINEL;
use crate::check::expect_errno;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::sys;
use crate::sys::BadBuf;
use crate::sys::GuardedPage;
use crate::sys::UffdPage;
use crate::venus;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

/// Every downcall and its sizes in <linux/coda.h>: the `coda_*_out` structure, and for
/// CODA_FLUSH a bare header or a whole `union outputArgs`.
const DOWNCALLS: [(u32, &[usize]); 6] = [
    (CODA_PURGEUSER, &[16]),
    (CODA_ZAPFILE, &[28]),
    (CODA_ZAPDIR, &[28]),
    (CODA_PURGEFID, &[28]),
    (CODA_REPLACE, &[44]),
    (CODA_FLUSH, &[OUT_HDR_SIZE, OUTPUT_ARGS_SIZE]),
];

/// A downcall of exactly `len` bytes (unique 0, as Venus sends them) with a recognisable
/// body; below 12 bytes, a truncated header.
fn downcall(opcode: u32, len: usize, seed: u8) -> Vec<u8> {
    let mut d = msg::reply_pattern(opcode, 0, len, seed);
    d.truncate(len);
    d
}

pub fn flush_first(_env: &Env) -> TestResult {
    // /dev/cfs3 is used by no earlier test: this is its first open and first write.
    for len in [OUT_HDR_SIZE, OUTPUT_ARGS_SIZE] {
        let v = Venus::open(3)?;
        let n = v
            .write(&downcall(CODA_FLUSH, len, 0))
            .ctx(&format!("CODA_FLUSH of {len} bytes right after open"))?;
        ensure_eq!(n, len, "count returned for CODA_FLUSH");
    }
    Ok(())
}

/// A caller blocked in a GETATTR that Venus has read; returns its unique.
fn read_call(
    ctl: &Ctl,
    v: &Venus,
    token: u64,
    cap: usize,
) -> Result<(Worker<crate::caller::CallResult>, u32), String> {
    let w = start_call(
        ctl,
        v.minor,
        "caller",
        msg::request_token(CODA_GETATTR, token),
        cap,
    )?;
    let (h, _) = v.next_request()?;
    Ok((w, h.unique))
}

pub fn short_write(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let (w, u) = read_call(&ctl, &v, 1, CAP)?;
    let full = msg::reply(CODA_GETATTR, u, 0, &1u64.to_le_bytes());
    for n in [1usize, 4, 8, 11] {
        expect_errno(
            v.write(&full[..n]),
            Errno::EINVAL,
            &format!("a {n}-byte reply"),
        )?;
    }
    w.still_blocked_after(STAYS)?;
    v.reply(&full)?;
    expect_answer(w.join_within(EXPECT)?, 1, "caller").map(drop)
}

pub fn unknown_unique(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let (w, u) = read_call(&ctl, &v, 1, CAP)?;
    for bad in [0u32, u.wrapping_add(1000), 0xdead_beef, u32::MAX] {
        expect_errno(
            v.write(&msg::reply_pattern(CODA_GETATTR, bad, 20, 0)),
            Errno::ESRCH,
            &format!("a reply to unique {bad:#x}"),
        )?;
    }
    // The call that is waiting was not disturbed.
    w.still_blocked_after(STAYS)?;
    v.reply(&msg::reply(CODA_GETATTR, u, 0, &1u64.to_le_bytes()))?;
    expect_answer(w.join_within(EXPECT)?, 1, "caller").map(drop)
}

pub fn unread_unique(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    // Learn where uniques stand, then queue a call that Venus does not read yet.
    let u0 = ctl
        .call_async(0, &msg::request_token(CODA_STATFS, 0))
        .ctx("async upcall")?;
    v.next()?;
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 1), CAP)?;
    let probes: Vec<u32> = (1..=8).map(|i| u0.wrapping_add(i)).collect();
    for &p in &probes {
        expect_errno(
            v.write(&msg::reply_pattern(CODA_GETATTR, p, 20, 0)),
            Errno::ESRCH,
            &format!("a reply to unread unique {p}"),
        )?;
    }
    let (h, m) = v.next_request()?;
    ensure!(
        probes.contains(&h.unique),
        "the queued call got unique {}, outside the probed {probes:?}",
        h.unique
    );
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 1, "caller").map(drop)
}

pub fn too_long_reply(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let before = v.stats()?;
    for (cap, len) in [(64usize, 65usize), (64, VC_MAXMSGSIZE)] {
        let (w, u) = read_call(&ctl, &v, 1, cap)?;
        expect_errno(
            v.write(&msg::reply_pattern(CODA_GETATTR, u, len, 0)),
            Errno::EINVAL,
            &format!("a {len}-byte reply to a {cap}-byte out_cap"),
        )?;
        expect_errno(
            w.join_within(EXPECT)?,
            Errno::EIO,
            "the caller of the oversized reply",
        )?;
        expect_errno(
            v.write(&msg::reply_pattern(CODA_GETATTR, u, 20, 0)),
            Errno::ESRCH,
            "a second reply after the oversized one",
        )?;
    }
    let after = v.stats()?;
    let bad =
        after.op[CODA_GETATTR as usize].bad_replies - before.op[CODA_GETATTR as usize].bad_replies;
    ensure_eq!(bad, 2, "GETATTR bad_replies");
    Ok(())
}

pub fn exact_cap_reply(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let (w, u) = read_call(&ctl, &v, 1, CAP)?;
    let r = msg::reply_pattern(CODA_GETATTR, u, CAP, 3);
    v.reply(&r)?;
    let got = w.join_within(EXPECT)?.ctx("caller")?;
    ensure_eq!(got.out_len, CAP, "out_len");
    ensure!(
        got.bytes() == r.as_slice(),
        "the caller's reply differs from the one written"
    );
    Ok(())
}

pub fn short_reply(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    for len in [OUT_HDR_SIZE, 40] {
        let (w, u) = read_call(&ctl, &v, 1, 256)?;
        let mut r = msg::reply_pattern(CODA_GETATTR, u, len, 9);
        // An error reply is a bare header in real life.
        if len == OUT_HDR_SIZE {
            r[8..12].copy_from_slice(&libc::ENOENT.to_ne_bytes());
        }
        v.reply(&r)?;
        let got = w.join_within(EXPECT)?.ctx("caller")?;
        ensure_eq!(got.out_len, len, "out_len");
        ensure!(
            got.bytes() == r.as_slice(),
            "the caller's {len} bytes differ from the reply written"
        );
        ensure!(
            got.buf[len..].iter().all(|&b| b == SENTINEL),
            "bytes past out_len were written"
        );
    }
    Ok(())
}

pub fn bad_reply_buffer(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut g = GuardedPage::new().ctx("mmap")?;
    let (w, u) = read_call(&ctl, &v, 1, CAP)?;
    let good = msg::reply(CODA_GETATTR, u, 0, &1u64.to_le_bytes());
    expect_errno(
        sys::write_from_bad(v.fd(), BadBuf::Low, good.len()),
        Errno::EFAULT,
        "a reply from address 1",
    )?;
    expect_errno(
        sys::write_from_bad(v.fd(), BadBuf::Guard(&mut g), good.len()),
        Errno::EFAULT,
        "a reply from a PROT_NONE page",
    )?;
    // A readable header, then the fault: the driver has already matched the unique.
    g.put_tail(&good[..OUT_HDR_SIZE]);
    expect_errno(
        sys::write_from_bad(v.fd(), BadBuf::Straddle(&mut g, OUT_HDR_SIZE), good.len()),
        Errno::EFAULT,
        "a reply whose body faults",
    )?;
    w.still_blocked_after(STAYS)?;
    v.reply(&good)?;
    expect_answer(w.join_within(EXPECT)?, 1, "caller").map(drop)
}

pub fn unknown_opcode(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let (w, u) = read_call(&ctl, &v, 1, CAP)?;
    for op in [
        0u32,
        1,
        17,
        21,
        coda_msg::CODA_SIGNAL,
        coda_msg::CODA_ZAPVNODE,
        38,
        39,
        1000,
        u32::MAX,
    ] {
        for len in [OUT_HDR_SIZE, 28] {
            // The unique is that of a call Venus read: only the opcode is wrong.
            expect_errno(
                v.write(&msg::reply_pattern(op, u, len, 0)),
                Errno::EINVAL,
                &format!("a {len}-byte write with opcode {op}"),
            )?;
        }
    }
    w.still_blocked_after(STAYS)?;
    v.reply(&msg::reply(CODA_GETATTR, u, 0, &1u64.to_le_bytes()))?;
    expect_answer(w.join_within(EXPECT)?, 1, "caller").map(drop)
}

pub fn downcall_exact_sizes(_env: &Env) -> TestResult {
    let v = Venus::open(0)?;
    for (op, sizes) in DOWNCALLS {
        for &len in sizes {
            let n = v
                .write(&downcall(op, len, 1))
                .ctx(&format!("{} of {len} bytes", coda_msg::opcode_name(op)))?;
            ensure_eq!(n, len, "count returned for {}", coda_msg::opcode_name(op));
        }
    }
    Ok(())
}

/// Sizes a downcall of `sizes` must be refused at.
fn wrong_sizes(sizes: &[usize]) -> Vec<usize> {
    let mut v = vec![
        OUT_HDR_SIZE,
        OUT_HDR_SIZE + 1,
        OUTPUT_ARGS_SIZE - 1,
        OUTPUT_ARGS_SIZE,
        OUTPUT_ARGS_SIZE + 1,
    ];
    v.extend([4096, VC_MAXMSGSIZE, VC_MAXMSGSIZE + 1]);
    for &s in sizes {
        v.extend([s - 1, s + 1, s + 4, 2 * s]);
    }
    v.sort_unstable();
    v.dedup();
    v.retain(|n| !sizes.contains(n));
    v
}

pub fn downcall_other_sizes(_env: &Env) -> TestResult {
    let v = Venus::open(0)?;
    let listener = Ctl::open()?;
    for (op, sizes) in DOWNCALLS {
        for len in wrong_sizes(sizes) {
            expect_errno(
                v.write(&downcall(op, len, 1)),
                Errno::EINVAL,
                &format!("{} of {len} bytes", coda_msg::opcode_name(op)),
            )?;
        }
    }
    // Nothing refused was delivered.
    expect_errno(
        listener.read_record_nonblock(),
        Errno::EAGAIN,
        "control read after the refused downcalls",
    )
}

fn expect_record(l: &Ctl, who: &str, minor: u32, bytes: &[u8]) -> TestResult {
    let (h, b) = l.next_record(EXPECT).ctx(who)?;
    ensure_eq!(h.minor, minor, "{who}: record minor");
    ensure_eq!(h.len as usize, bytes.len(), "{who}: record length");
    ensure!(
        b == bytes,
        "{who}: record bytes differ from the downcall written"
    );
    Ok(())
}

pub fn downcalls_delivered(_env: &Env) -> TestResult {
    let l1 = Ctl::open()?;
    let l2 = Ctl::open()?;
    let v0 = Venus::open(0)?;
    let v1 = Venus::open(1)?;
    let zap = downcall(CODA_ZAPFILE, 28, 1);
    let purge = downcall(CODA_PURGEUSER, 16, 2);
    v1.reply(&zap)?;
    v0.reply(&purge)?;
    for (l, who) in [(&l1, "listener 1"), (&l2, "listener 2")] {
        expect_record(l, who, 1, &zap)?;
        expect_record(l, who, 0, &purge)?;
        expect_errno(
            l.read_record_nonblock(),
            Errno::EAGAIN,
            &format!("{who} after its two records"),
        )?;
    }
    // A listener opened later gets only what is written later.
    let l3 = Ctl::open()?;
    expect_errno(
        l3.read_record_nonblock(),
        Errno::EAGAIN,
        "a listener opened after the downcalls",
    )?;
    // Every kind, in the order written.
    let all: Vec<Vec<u8>> = DOWNCALLS
        .iter()
        .flat_map(|(op, sizes)| sizes.iter().map(move |&len| downcall(*op, len, *op as u8)))
        .collect();
    for d in &all {
        v0.reply(d)?;
    }
    for (l, who) in [(&l1, "listener 1"), (&l3, "listener 3")] {
        for d in &all {
            let op = coda_msg::out_hdr(d).map(|h| h.opcode).unwrap_or(0);
            expect_record(l, &format!("{who}, {}", coda_msg::opcode_name(op)), 0, d)?;
        }
    }
    Ok(())
}

pub fn ctl_read_rules(_env: &Env) -> TestResult {
    let l = Ctl::open()?;
    let v = Venus::open(0)?;
    expect_errno(
        l.read_record_nonblock(),
        Errno::EAGAIN,
        "O_NONBLOCK control read of an empty queue",
    )?;
    let nb = Ctl::try_open(OFlag::O_NONBLOCK).ctx("open the control device O_NONBLOCK")?;
    expect_errno(
        nb.read_record(),
        Errno::EAGAIN,
        "control read, opened O_NONBLOCK",
    )?;
    let ready = |l: &Ctl| venus::poll_now(l.fd()).map(|f| f.contains(PollFlags::POLLIN));
    ensure!(
        !ready(&l).ctx("poll")?,
        "poll reports POLLIN on an empty control queue"
    );
    let d = downcall(CODA_REPLACE, 44, 5);
    v.reply(&d)?;
    ensure!(
        ready(&l).ctx("poll")?,
        "poll does not report POLLIN with a record queued"
    );
    let total = 8 + d.len();
    for room in [1usize, 8, total - 1] {
        expect_errno(
            l.read_record_room(room).map(drop),
            Errno::EMSGSIZE,
            &format!("control read into {room} bytes"),
        )?;
    }
    ensure!(ready(&l).ctx("poll")?, "the record is gone after EMSGSIZE");
    let (h, b) = l
        .read_record_room(total)
        .ctx("control read into exactly the record's size")?;
    ensure_eq!((h.minor, h.len as usize), (0, d.len()), "record header");
    ensure!(b == d, "record bytes differ");
    ensure!(
        !ready(&l).ctx("poll")?,
        "poll reports POLLIN after the record was read"
    );
    // O_NONBLOCK reads the record when there is one.
    v.reply(&d)?;
    let (h, _) = nb
        .read_record()
        .ctx("control read, opened O_NONBLOCK, with a record queued")?;
    ensure_eq!(h.len as usize, d.len(), "record length");
    Ok(())
}

pub fn ctl_read_blocks(_env: &Env) -> TestResult {
    let l = Ctl::open()?;
    let v = Venus::open(0)?;
    let lc = l.clone();
    let reader = Worker::spawn("ctl reader", move || lc.read_record())?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    reader.still_blocked_after(STAYS)?;
    let d = downcall(CODA_ZAPDIR, 28, 4);
    v.reply(&d)?;
    let (h, b) = reader
        .join_within(EXPECT)?
        .ctx("the blocked control read")?;
    ensure_eq!((h.minor, h.len as usize), (0, d.len()), "record header");
    ensure!(b == d, "record bytes differ");
    // A signal ends a blocked control read.
    let lc = l.clone();
    let reader = Worker::spawn("ctl reader", move || lc.read_record())?;
    reader.wait_sleeping_in(&[sys::SYS_READ])?;
    reader.kill(nix::sys::signal::Signal::SIGUSR1)?;
    expect_errno(
        reader.join_within(EXPECT)?.map(drop),
        Errno::EINTR,
        "the interrupted control read",
    )
}

/// A control reader whose buffer faults slowly (here: for as long as the test likes, with
/// userfaultfd) must not hold up Venus's downcalls, which queue a copy for that reader.
pub fn ctl_slow_reader_blocks_no_downcall(_env: &Env) -> TestResult {
    let l = Ctl::open()?;
    let v = Venus::open(0)?;
    let first = downcall(CODA_ZAPFILE, 28, 1);
    v.reply(&first)?;
    let page = std::sync::Arc::new(UffdPage::new().ctx("userfaultfd page")?);
    let (lc, pc) = (l.clone(), page.clone());
    let reader = Worker::spawn("stalled ctl reader", move || pc.read_from(lc.fd()))?;
    page.wait_fault(EXPECT)?;
    // The reader is stalled in its copy: Venus writes the next downcall.
    let second = downcall(CODA_PURGEUSER, 16, 2);
    let (tx, rx) = std::sync::mpsc::channel();
    let vfd = v.shared();
    let bytes = second.clone();
    std::thread::spawn(move || {
        let _ = tx.send(nix::unistd::write(&*vfd, &bytes));
    });
    let written = rx.recv_timeout(EXPECT);
    page.resolve().ctx("UFFDIO_ZEROPAGE")?;
    let written = match written {
        Ok(r) => r,
        Err(_) => {
            let late = rx.recv().map_err(|e| e.to_string())?;
            return Err(format!(
                "Venus's downcall waited for a control reader's page fault (then: {late:?})"
            ));
        }
    };
    ensure_eq!(written, Ok(second.len()), "Venus's downcall write");
    let n = reader
        .join_within(EXPECT)?
        .ctx("the stalled control read")?;
    ensure_eq!(n, 8 + first.len(), "length of the stalled read");
    ensure!(
        page.contents(n)[8..] == first[..],
        "the stalled read returned other bytes than the first downcall"
    );
    expect_record(&l, "the record after the stalled one", 0, &second)?;
    // A read whose copy faults for good keeps its record for the next read.
    v.reply(&first)?;
    expect_errno(
        sys::read_into_bad(l.fd(), BadBuf::Low, 64).map(drop),
        Errno::EFAULT,
        "a control read into an unmapped buffer",
    )?;
    expect_record(&l, "the record after a faulting read", 0, &first)
}

pub fn ctl_queue_limit(_env: &Env) -> TestResult {
    // The only control file open: every record goes to it alone.
    let l = Ctl::open()?;
    let v = Venus::open(0)?;
    let before = v.stats()?;
    let extra = 3;
    let n = coda_msg::CODA_CTL_DOWNCALL_QUEUE + extra;
    for uid in 0..n as u32 {
        let d = msg::reply(CODA_PURGEUSER, 0, 0, &uid.to_le_bytes());
        v.reply(&d)?;
    }
    let after = v.stats()?;
    ensure_eq!(
        after.downcalls - before.downcalls,
        n as u64,
        "downcalls counted"
    );
    ensure_eq!(
        after.downcalls_dropped - before.downcalls_dropped,
        extra as u64,
        "downcalls dropped"
    );
    venus::set_nonblock(l.fd(), true).ctx("O_NONBLOCK")?;
    for uid in 0..coda_msg::CODA_CTL_DOWNCALL_QUEUE as u32 {
        let (_, b) = l.read_record().ctx(&format!("record {uid}"))?;
        let got = u32::from_le_bytes(b[12..16].try_into().map_err(|_| "short record")?);
        ensure_eq!(
            got,
            uid,
            "uid in record {uid} (the oldest are kept, in order)"
        );
    }
    expect_errno(
        l.read_record(),
        Errno::EAGAIN,
        "a control read past the queue limit",
    )
}

fn by_op(st: &PsdevStats, op: u32) -> u64 {
    st.downcall_by_op[op as usize]
}

pub fn downcall_stats(_env: &Env) -> TestResult {
    let v = Venus::open(0)?;
    let before = v.stats()?;
    for (op, sizes) in DOWNCALLS {
        for &len in sizes {
            v.reply(&downcall(op, len, 1))?;
        }
        expect_errno(
            v.write(&downcall(op, sizes[0] + 1, 1)),
            Errno::EINVAL,
            "a downcall one byte too long",
        )?;
    }
    let after = v.stats()?;
    ensure_eq!(after.downcalls - before.downcalls, 7, "downcalls");
    for (op, sizes) in DOWNCALLS {
        ensure_eq!(
            by_op(&after, op) - by_op(&before, op),
            sizes.len() as u64,
            "downcall_by_op[{}]",
            coda_msg::opcode_name(op)
        );
    }
    ensure_eq!(
        after.bad_writes - before.bad_writes,
        DOWNCALLS.len() as u64,
        "bad_writes after the refused downcalls"
    );
    let calls = |st: &PsdevStats| crate::stats::sum(st, |o| o.calls);
    ensure_eq!(
        calls(&after),
        calls(&before),
        "upcalls counted for downcalls"
    );
    Ok(())
}

pub fn bad_writes_once(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let once = |what: &str, f: &mut dyn FnMut() -> TestResult| -> TestResult {
        let before = v.stats()?.bad_writes;
        f()?;
        let after = v.stats()?.bad_writes;
        ensure_eq!(after - before, 1, "bad_writes after {what}");
        Ok(())
    };
    let (w, u) = read_call(&ctl, &v, 1, CAP)?;
    let good = msg::reply(CODA_GETATTR, u, 0, &1u64.to_le_bytes());
    once("a short write (EINVAL)", &mut || {
        expect_errno(v.write(&good[..11]), Errno::EINVAL, "short write")
    })?;
    once("a reply to an unknown unique (ESRCH)", &mut || {
        expect_errno(
            v.write(&msg::reply_pattern(CODA_GETATTR, 0xdead_beef, 20, 0)),
            Errno::ESRCH,
            "unknown unique",
        )
    })?;
    once("a bad buffer (EFAULT)", &mut || {
        expect_errno(
            sys::write_from_bad(v.fd(), BadBuf::Low, 20),
            Errno::EFAULT,
            "bad buffer",
        )
    })?;
    once("an unknown opcode (EINVAL)", &mut || {
        expect_errno(
            v.write(&msg::reply_pattern(17, u, 20, 0)),
            Errno::EINVAL,
            "unknown opcode",
        )
    })?;
    once("a downcall of a wrong size (EINVAL)", &mut || {
        expect_errno(
            v.write(&downcall(CODA_ZAPFILE, 29, 0)),
            Errno::EINVAL,
            "wrong size",
        )
    })?;
    once("a reply longer than out_cap (EINVAL)", &mut || {
        expect_errno(
            v.write(&msg::reply_pattern(CODA_GETATTR, u, CAP + 1, 0)),
            Errno::EINVAL,
            "too long",
        )
    })?;
    expect_errno(
        w.join_within(EXPECT)?,
        Errno::EIO,
        "the caller of the oversized reply",
    )?;
    let w = start_call(
        &ctl,
        0,
        "caller 2",
        msg::request_token(CODA_GETATTR, 2),
        CAP,
    )?;
    let probe = u.wrapping_add(1);
    once("a reply to a unique not read yet (ESRCH)", &mut || {
        let r = v.write(&msg::reply_pattern(CODA_GETATTR, probe, 20, 0));
        expect_errno(r, Errno::ESRCH, "unread unique")
    })?;
    let (_, m) = v.next_request()?;
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 2, "caller 2").map(drop)
}

pub fn replies_any_order(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mut callers = Vec::new();
    let mut requests = Vec::new();
    for t in 1..=3u64 {
        callers.push(start_call(
            &ctl,
            0,
            &format!("caller {t}"),
            msg::request_token(CODA_GETATTR, t),
            CAP,
        )?);
        requests.push(v.next()?);
    }
    for i in [2usize, 0, 1] {
        answer(&v, &requests[i])?;
    }
    for (t, w) in (1..=3u64).zip(callers) {
        expect_answer(w.join_within(EXPECT)?, t, &format!("caller {t}"))?;
    }
    Ok(())
}
