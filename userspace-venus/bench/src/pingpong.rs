// SPDX-License-Identifier: GPL-2.0

//! Row 1, the floor: a ping-pong between two processes over a pair of pipes (one byte each
//! way) or a pair of eventfds. An upcall is the same two wake-ups across processes, so no
//! upcall round trip can beat it.

use std::io;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::process::Stdio;
use std::time::Instant;

use clap::ValueEnum;
use rustix::event::eventfd;
use rustix::event::EventfdFlags;
use rustix::io::Errno;
use rustix::pipe::pipe_with;
use rustix::pipe::PipeFlags;

use crate::stats::Record;
use crate::stats::RunStat;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Channel {
    Pipe,
    Eventfd,
}

impl Channel {
    /// Bytes each way: one for a pipe, the 8-byte counter for an eventfd.
    fn size(self) -> usize {
        match self {
            Channel::Pipe => 1,
            Channel::Eventfd => 8,
        }
    }
}

/// Reads exactly `buf.len()` bytes.
pub fn read_exact(fd: impl AsFd, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&fd, &mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes all of `buf`.
pub fn write_all(fd: impl AsFd, buf: &[u8]) -> io::Result<()> {
    let mut put = 0;
    while put < buf.len() {
        match rustix::io::write(&fd, &buf[put..]) {
            Ok(n) => put += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The child's side (`bench echo`): sends back every message, `iters` times, on its
/// standard input and output, which the parent connected to the channel.
pub fn echo(size: usize, iters: u64) -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut buf = [0u8; 8];
    let buf = &mut buf[..size.min(8)];
    for _ in 0..iters {
        read_exact(stdin.as_fd(), buf)?;
        write_all(stdout.as_fd(), buf)?;
    }
    Ok(())
}

/// One run: `warmup` untimed round trips, then `iters` timed ones.
fn one_run(ch: Channel, iters: usize, warmup: usize) -> io::Result<RunStat> {
    // (parent writes, child reads, child writes, parent reads)
    let (to_child, child_in, child_out, from_child): (OwnedFd, OwnedFd, OwnedFd, OwnedFd) = match ch
    {
        Channel::Pipe => {
            let (r1, w1) = pipe_with(PipeFlags::CLOEXEC)?;
            let (r2, w2) = pipe_with(PipeFlags::CLOEXEC)?;
            (w1, r1, w2, r2)
        }
        Channel::Eventfd => {
            let a = eventfd(0, EventfdFlags::CLOEXEC)?;
            let b = eventfd(0, EventfdFlags::CLOEXEC)?;
            (a.try_clone()?, a, b.try_clone()?, b)
        }
    };
    let size = ch.size();
    let total = iters + warmup;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["echo", "--size", &size.to_string(), "--iters"])
        .arg(total.to_string())
        .stdin(Stdio::from(child_in))
        .stdout(Stdio::from(child_out))
        .spawn()?;
    // An eventfd read returns the counter and resets it: the child echoes the 1.
    let token = 1u64.to_ne_bytes();
    let mut buf = [0u8; 8];
    let mut lat = Vec::with_capacity(iters);
    let r = (|| {
        for i in 0..total {
            let t = Instant::now();
            write_all(&to_child, &token[..size])?;
            read_exact(&from_child, &mut buf[..size])?;
            if i >= warmup {
                lat.push(t.elapsed());
            }
        }
        Ok::<(), io::Error>(())
    })();
    if r.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    r?;
    if !status.success() {
        return Err(io::Error::other(format!("echo child: {status}")));
    }
    Ok(RunStat::from_latencies(&mut lat))
}

/// Row 1; with `idle_threads` > 0, the control for row 5: as many threads as there are
/// parked callers there, blocked in a futex in the measuring process, no upcalls at all.
pub fn measure(
    ch: Channel,
    iters: usize,
    runs: usize,
    warmup: usize,
    idle_threads: usize,
) -> io::Result<Record> {
    let (id, what) = match ch {
        Channel::Pipe => ("pipe", "pipe ping-pong, 1 byte each way"),
        Channel::Eventfd => ("eventfd", "eventfd ping-pong"),
    };
    let mut rec = if idle_threads > 0 {
        let mut r = Record::new(
            format!("{id}_idle_{idle_threads}"),
            5,
            "limit",
            format!("{what}, {idle_threads} idle threads"),
        );
        r.outstanding = Some(idle_threads as u64);
        r
    } else {
        Record::new(id, 1, "limit", what)
    };
    rec.size = Some(ch.size() as u32);
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let hold = std::sync::Mutex::new(hold);
    std::thread::scope(|s| {
        for _ in 0..idle_threads {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(s, || {
                    // Every thread sleeps on the one lock until the sender is dropped.
                    let _ = hold.lock().map(|rx| rx.recv());
                })?;
        }
        let r = (0..runs).try_for_each(|_| {
            rec.runs.push(one_run(ch, iters, warmup)?);
            Ok::<(), io::Error>(())
        });
        drop(release);
        r
    })?;
    Ok(rec.finish())
}
