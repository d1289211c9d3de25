// SPDX-License-Identifier: GPL-2.0

//! poll(2) and epoll on /dev/cfsN.

use std::os::fd::AsFd;

use coda_msg::CODA_GETATTR;
use coda_msg::CODA_STATFS;
use nix::errno::Errno;
use nix::poll::PollFd;
use nix::poll::PollFlags;
use nix::poll::PollTimeout;
use nix::sys::epoll::Epoll;
use nix::sys::epoll::EpollCreateFlags;
use nix::sys::epoll::EpollEvent;
use nix::sys::epoll::EpollFlags;
use nix::sys::signal::Signal;

use super::answer;
use super::expect_answer;
use super::start_call;
use super::CAP;
use super::STAYS;
use crate::caller::Ctl;
use crate::check::expect_errno;
use crate::check::Context;
use crate::check::TestResult;
use crate::ensure;
use crate::ensure_eq;
use crate::msg;
use crate::runner::Env;
use crate::sys;
use crate::venus::poll_now;
use crate::venus::Venus;
use crate::venus::EXPECT;
use crate::worker::Worker;

const WRITABLE: PollFlags = PollFlags::POLLOUT.union(PollFlags::POLLWRNORM);
const READABLE: PollFlags = PollFlags::POLLIN.union(PollFlags::POLLRDNORM);

pub fn poll_mask(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let mask = || poll_now(v.fd()).ctx("poll");
    ensure_eq!(mask()?, WRITABLE, "poll of an empty device");
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 1))
        .ctx("async upcall")?;
    ensure_eq!(mask()?, READABLE | WRITABLE, "poll with an upcall queued");
    v.next()?;
    ensure_eq!(mask()?, WRITABLE, "poll after the upcall was read");
    // A request Venus read and has not answered is not readable.
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 2), CAP)?;
    ensure_eq!(mask()?, READABLE | WRITABLE, "poll with a request queued");
    let (_, m) = v.next_request()?;
    ensure_eq!(
        mask()?,
        WRITABLE,
        "poll while a read request awaits its reply"
    );
    answer(&v, &m)?;
    expect_answer(w.join_within(EXPECT)?, 2, "caller")?;
    // A CODA_SIGNAL is a message like any other.
    let w = start_call(&ctl, 0, "caller", msg::request_token(CODA_GETATTR, 3), CAP)?;
    v.next()?;
    w.kill(Signal::SIGUSR1)?;
    expect_errno(w.join_within(EXPECT)?, Errno::EINTR, "interrupted caller")?;
    ensure_eq!(
        mask()?,
        READABLE | WRITABLE,
        "poll with a CODA_SIGNAL queued"
    );
    v.next()?;
    ensure_eq!(mask()?, WRITABLE, "poll after the CODA_SIGNAL was read");
    Ok(())
}

fn epoll_on(v: &Venus, flags: EpollFlags) -> Result<Epoll, String> {
    let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ctx("epoll_create")?;
    ep.add(v.fd(), EpollEvent::new(flags, 7))
        .ctx("epoll_ctl ADD")?;
    Ok(ep)
}

/// epoll_wait for up to `ms`; returns the events reported.
fn epoll_events(ep: &Epoll, ms: u16) -> Result<Vec<EpollFlags>, String> {
    let mut evs = [EpollEvent::empty(); 4];
    let n = ep.wait(&mut evs, PollTimeout::from(ms)).ctx("epoll_wait")?;
    for e in &evs[..n] {
        ensure_eq!(e.data(), 7, "epoll event data");
    }
    Ok(evs[..n].iter().map(|e| e.events()).collect())
}

fn expect_in(evs: Vec<EpollFlags>, what: &str) -> TestResult {
    ensure!(
        evs.len() == 1 && evs[0].contains(EpollFlags::EPOLLIN),
        "{what}: epoll reported {evs:?}, want one EPOLLIN"
    );
    Ok(())
}

pub fn epoll_level(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let ep = epoll_on(&v, EpollFlags::EPOLLIN)?;
    ensure_eq!(epoll_events(&ep, 0)?, vec![], "epoll on an empty device");
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 1))
        .ctx("async upcall")?;
    expect_in(epoll_events(&ep, 1000)?, "first wait with an upcall queued")?;
    expect_in(
        epoll_events(&ep, 0)?,
        "second wait with the upcall still queued",
    )?;
    v.next()?;
    ensure_eq!(
        epoll_events(&ep, 0)?,
        vec![],
        "epoll after the upcall was read"
    );
    Ok(())
}

pub fn epoll_edge(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    let ep = epoll_on(&v, EpollFlags::EPOLLIN | EpollFlags::EPOLLET)?;
    ensure_eq!(epoll_events(&ep, 0)?, vec![], "epoll on an empty device");
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 1))
        .ctx("async upcall A")?;
    expect_in(epoll_events(&ep, 1000)?, "wait after upcall A")?;
    ensure_eq!(
        epoll_events(&ep, 0)?,
        vec![],
        "a second wait with no new upcall"
    );
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 2))
        .ctx("async upcall B")?;
    expect_in(
        epoll_events(&ep, 1000)?,
        "wait after upcall B, with A still queued",
    )?;
    ensure_eq!(epoll_events(&ep, 0)?, vec![], "a wait after B's event");
    v.next()?;
    v.next()?;
    Ok(())
}

pub fn blocked_poller_woken(_env: &Env) -> TestResult {
    let ctl = Ctl::open()?;
    let v = Venus::open(0)?;
    for (mode, flags) in [
        ("level", EpollFlags::EPOLLIN),
        ("edge", EpollFlags::EPOLLIN | EpollFlags::EPOLLET),
    ] {
        let ep = epoll_on(&v, flags)?;
        let poller = Worker::spawn("epoller", move || epoll_events(&ep, 20_000))?;
        poller.wait_sleeping_in(&sys::SYS_POLLS)?;
        poller.still_blocked_after(STAYS)?;
        // A synchronous caller's upcall is what wakes it.
        let w = ctl.spawn_call("caller", 0, msg::request_token(CODA_GETATTR, 1), CAP)?;
        expect_in(
            poller.join_within(EXPECT)??,
            &format!("{mode}-triggered epoll_wait blocked before the upcall"),
        )?;
        let (_, m) = v.next_request()?;
        answer(&v, &m)?;
        expect_answer(w.join_within(EXPECT)?, 1, "caller")?;
    }
    // And plain poll(2).
    let fd = v.shared();
    let poller = Worker::spawn("poller", move || {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, PollTimeout::from(20_000u16)).map(|n| (n, fds[0].revents()))
    })?;
    poller.wait_sleeping_in(&sys::SYS_POLLS)?;
    poller.still_blocked_after(STAYS)?;
    ctl.call_async(0, &msg::request_token(CODA_STATFS, 2))
        .ctx("async upcall")?;
    let (n, revents) = poller.join_within(EXPECT)?.ctx("poll")?;
    ensure!(
        n == 1 && revents.is_some_and(|r| r.contains(PollFlags::POLLIN)),
        "poll blocked before the upcall returned {n} with {revents:?}"
    );
    v.next()?;
    Ok(())
}
