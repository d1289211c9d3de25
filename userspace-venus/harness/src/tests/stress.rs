// SPDX-License-Identifier: GPL-2.0

//! Many callers at once against a multi-threaded Venus.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Duration;
use std::time::Instant;

use coda_msg::CODA_GETATTR;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;

use crate::caller::Ctl;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::stats::check_quiet;
use crate::venus;
use crate::venus::Venus;
use crate::worker::Worker;

const CALLERS: usize = 1000;
const READERS: usize = 4;
/// Callers only make one ioctl: a small stack keeps 1000 threads cheap.
const CALLER_STACK: usize = 64 * 1024;

/// What the readers saw, shared between them.
#[derive(Default)]
struct Seen {
    uniques: Vec<u32>,
    errors: Vec<String>,
}

/// The reply body for a request: the unique it answers and the token it carried, so the
/// caller can tell its own reply from anyone else's.
fn reply_body(unique: u32, token: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&unique.to_le_bytes());
    b[4..].copy_from_slice(&token.to_le_bytes());
    b
}

/// One of Venus's threads: reads and answers until it reads a STATFS, the signal to stop.
fn reader(fd: Arc<OwnedFd>, seen: Arc<Mutex<Seen>>) {
    let fail = |e: String| seen.lock().map(|mut s| s.errors.push(e)).unwrap_or(());
    loop {
        let m = match venus::read_msg(fd.as_fd()) {
            Ok(m) => m,
            // A signal from the test's clean-up.
            Err(Errno::EINTR) => return,
            Err(e) => return fail(format!("read: {e}")),
        };
        let Ok(h) = msg::in_hdr(&m) else {
            return fail(format!("unparsable message of {} bytes", m.len()));
        };
        if h.opcode == CODA_STATFS {
            return;
        }
        let Some(token) = msg::token_of(&m) else {
            return fail(format!("request {} without a token", h.unique));
        };
        let r = msg::reply(h.opcode, h.unique, 0, &reply_body(h.unique, token));
        match nix::unistd::write(fd.as_fd(), &r) {
            Ok(n) if n == r.len() => {}
            Ok(n) => fail(format!("reply to {} wrote {n} bytes", h.unique)),
            Err(e) => fail(format!("reply to {}: {e}", h.unique)),
        }
        if let Ok(mut s) = seen.lock() {
            s.uniques.push(h.unique);
        }
    }
}

/// One caller: a GETATTR carrying `token`; checks it got its own reply.
fn caller(ctl: &Ctl, token: u64) -> Result<u32, String> {
    let r = ctl
        .call(0, &msg::request_token(CODA_GETATTR, token), 64)
        .ctx("call")?;
    let want = msg::reply(CODA_GETATTR, r.unique, 0, &reply_body(r.unique, token));
    ensure!(
        r.bytes() == want.as_slice(),
        "token {token:#x}: got a reply that is not its own"
    );
    Ok(r.unique)
}

pub fn thousand_callers(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let s0 = v.stats()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut readers = Vec::new();
    for i in 0..READERS {
        let (fd, seen) = (v.shared(), seen.clone());
        readers.push(Worker::spawn(&format!("venus {i}"), move || {
            reader(fd, seen)
        })?);
    }
    let t0 = Instant::now();
    // Every caller waits for this gate, so that all of them call at once.
    let gate = Arc::new(RwLock::new(()));
    // Declared before the gate's guard, so that on an early return the guard goes first
    // and the callers are free to end.
    let mut callers = Vec::with_capacity(CALLERS);
    let closed = gate.write().map_err(|_| "gate poisoned")?;
    for i in 0..CALLERS {
        let (ctl, gate) = (ctl.clone(), gate.clone());
        let token = 0x5eed_0000_0000 | i as u64;
        callers.push(Worker::spawn_with_stack(
            "caller",
            CALLER_STACK,
            move || {
                drop(gate.read());
                caller(&ctl, token)
            },
        )?);
    }
    drop(closed);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut uniques = HashSet::new();
    let mut failures = Vec::new();
    for (i, w) in callers.into_iter().enumerate() {
        match w.join_within(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(u)) => {
                if !uniques.insert(u) {
                    failures.push(format!("caller {i} got unique {u} twice"));
                }
            }
            Ok(Err(e)) => failures.push(format!("caller {i}: {e}")),
            // A caller that hangs: give up now; dropping the rest signals them.
            Err(e) => return Err(format!("caller {i}: {e}")),
        }
    }
    let elapsed = t0.elapsed();
    for _ in 0..READERS {
        ctl.call_async(0, &msg::request_token(CODA_STATFS, 0))
            .ctx("stop message")?;
    }
    for r in readers {
        r.join_within(Duration::from_secs(10))?;
    }
    ensure!(
        failures.is_empty(),
        "{} callers failed, first: {}",
        failures.len(),
        failures[..failures.len().min(3)].join("; ")
    );
    let seen = seen.lock().map_err(|_| "a reader panicked")?;
    ensure!(
        seen.errors.is_empty(),
        "Venus errors: {}",
        seen.errors[..seen.errors.len().min(3)].join("; ")
    );
    ensure_eq!(seen.uniques.len(), CALLERS, "requests Venus read");
    let read: HashSet<u32> = seen.uniques.iter().copied().collect();
    ensure_eq!(read.len(), CALLERS, "distinct uniques Venus read");
    ensure!(
        read == uniques,
        "the uniques Venus answered are not those the callers got"
    );
    let s1 = v.stats()?;
    let (a, b) = (&s1.op[CODA_GETATTR as usize], &s0.op[CODA_GETATTR as usize]);
    ensure_eq!(
        (a.calls - b.calls, a.replies - b.replies),
        (CALLERS as u64, CALLERS as u64),
        "GETATTR (calls, replies)"
    );
    ensure!(
        s1.peak_outstanding <= 1024,
        "peak_outstanding {} exceeds max_outstanding",
        s1.peak_outstanding
    );
    check_quiet(&s1)?;
    eprintln!(
        "# 1000 callers answered in {elapsed:?}, peak outstanding {}",
        s1.peak_outstanding
    );
    Ok(())
}
