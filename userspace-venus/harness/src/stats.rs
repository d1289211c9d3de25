// SPDX-License-Identifier: GPL-2.0

//! Reading and comparing the driver's statistics.

use coda_msg::PsdevOpStats;
use coda_msg::PsdevStats;

use crate::check::TestResult;

/// The sum of one per-opcode counter over all opcodes.
pub fn sum(st: &PsdevStats, f: fn(&PsdevOpStats) -> u64) -> u64 {
    st.op.iter().map(f).sum()
}

/// The uapi's invariant: every call is settled once or still outstanding.
pub fn check_balance(st: &PsdevStats) -> TestResult {
    let calls = sum(st, |o| o.calls);
    let settled = sum(st, |o| {
        o.replies
            + o.intr_before_read
            + o.intr_after_read
            + o.timeouts
            + o.aborted
            + o.bad_replies
            + o.async_read
    });
    if calls == settled + st.outstanding {
        Ok(())
    } else {
        Err(format!(
            "counters do not balance: calls {calls} != settled {settled} + outstanding {}",
            st.outstanding
        ))
    }
}

/// Fails unless nothing is outstanding, queued, processing or held in memory.
pub fn check_idle(st: &PsdevStats) -> TestResult {
    let gauges = (st.outstanding, st.pending, st.processing, st.mem_bytes);
    if gauges == (0, 0, 0, 0) {
        Ok(())
    } else {
        Err(format!(
            "device not idle: outstanding {} pending {} processing {} mem_bytes {}",
            gauges.0, gauges.1, gauges.2, gauges.3
        ))
    }
}

/// Fails unless the device is idle ([`check_idle`]) and its counters balance
/// ([`check_balance`]): how a test that left nothing in flight ends.
pub fn check_quiet(st: &PsdevStats) -> TestResult {
    check_idle(st)?;
    check_balance(st)
}

/// `after - before` for one opcode.
pub fn op_delta(before: &PsdevStats, after: &PsdevStats, op: u32) -> PsdevOpStats {
    let (a, b) = (&after.op[op as usize], &before.op[op as usize]);
    PsdevOpStats {
        calls: a.calls.wrapping_sub(b.calls),
        replies: a.replies.wrapping_sub(b.replies),
        intr_before_read: a.intr_before_read.wrapping_sub(b.intr_before_read),
        intr_after_read: a.intr_after_read.wrapping_sub(b.intr_after_read),
        signals_sent: a.signals_sent.wrapping_sub(b.signals_sent),
        timeouts: a.timeouts.wrapping_sub(b.timeouts),
        aborted: a.aborted.wrapping_sub(b.aborted),
        bad_replies: a.bad_replies.wrapping_sub(b.bad_replies),
        async_read: a.async_read.wrapping_sub(b.async_read),
        bytes_in: a.bytes_in.wrapping_sub(b.bytes_in),
        bytes_out: a.bytes_out.wrapping_sub(b.bytes_out),
    }
}

/// Fails unless opcode `op`'s counters moved by exactly `want`; the byte counters are
/// compared only when `bytes` is set.
pub fn expect_op(
    before: &PsdevStats,
    after: &PsdevStats,
    op: u32,
    want: PsdevOpStats,
    bytes: bool,
) -> TestResult {
    let mut got = op_delta(before, after, op);
    if !bytes {
        got.bytes_in = want.bytes_in;
        got.bytes_out = want.bytes_out;
    }
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "opcode {op} ({}) counters moved by {}, want {}",
            coda_msg::opcode_name(op),
            show(&got),
            show(&want)
        ))
    }
}

fn show(o: &PsdevOpStats) -> String {
    format!(
        "calls {} replies {} intr {}/{} signals {} timeouts {} aborted {} bad {} async {} bytes {}/{}",
        o.calls,
        o.replies,
        o.intr_before_read,
        o.intr_after_read,
        o.signals_sent,
        o.timeouts,
        o.aborted,
        o.bad_replies,
        o.async_read,
        o.bytes_in,
        o.bytes_out
    )
}

/// The end of most tests: opcode `op`'s counters moved by `want` since `before` (bytes
/// compared when `bytes` is set), nothing is left in flight and the totals balance.
pub fn expect_settled(
    v: &crate::venus::Venus,
    before: &PsdevStats,
    op: u32,
    want: PsdevOpStats,
    bytes: bool,
) -> TestResult {
    let after = v.stats()?;
    expect_op(before, &after, op, want, bytes)?;
    check_quiet(&after)
}
