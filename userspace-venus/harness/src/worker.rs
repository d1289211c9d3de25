// SPDX-License-Identifier: GPL-2.0

//! A test's helper thread: it knows its kernel thread id (to see from /proc where it sleeps)
//! and can be signalled with pthread_kill, which is how the tests interrupt a blocked read or
//! upcall.

use std::os::unix::thread::JoinHandleExt;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::check::TestResult;
use crate::sys;

/// Stack of a helper thread; callers and readers need little.
const STACK: usize = 256 * 1024;

pub struct Worker<T> {
    handle: Option<JoinHandle<T>>,
    tid: i32,
    name: String,
}

impl<T: Send + 'static> Worker<T> {
    pub fn spawn(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<Self, String> {
        Self::spawn_with_stack(name, STACK, f)
    }

    pub fn spawn_with_stack(
        name: &str,
        stack: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Self, String> {
        let (tx, rx) = mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .stack_size(stack)
            .spawn(move || {
                let _ = tx.send(nix::unistd::gettid().as_raw());
                f()
            })
            .map_err(|e| format!("cannot start thread {name}: {e}"))?;
        let tid = rx
            .recv()
            .map_err(|_| format!("thread {name} died before it started"))?;
        Ok(Self {
            handle: Some(handle),
            tid,
            name: name.to_owned(),
        })
    }

    /// Takes the result if the thread has finished within `within`.
    pub fn join_within(mut self, within: Duration) -> Result<T, String> {
        let end = Instant::now() + within;
        while !self.is_finished() {
            if Instant::now() >= end {
                return Err(format!("{} still blocked after {within:?}", self.name));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let handle = self.handle.take().ok_or("worker already joined")?;
        handle.join().map_err(|_| format!("{} panicked", self.name))
    }
}

impl<T> Worker<T> {
    fn proc_dir(&self) -> String {
        format!("/proc/self/task/{}", self.tid)
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Sends `sig` to this thread alone.
    pub fn kill(&self, sig: Signal) -> TestResult {
        let Some(h) = &self.handle else {
            return Err(format!("{} was already joined", self.name));
        };
        // The thread is not joined yet, so its pthread_t is still valid even if it ended.
        nix::sys::pthread::pthread_kill(h.as_pthread_t(), sig)
            .map_err(|e| format!("pthread_kill {}: {e}", self.name))
    }

    /// Waits until the thread sleeps inside one of the system calls `nrs`.
    pub fn wait_sleeping_in(&self, nrs: &[i64]) -> TestResult {
        if self.is_finished() {
            return Err(format!("{} ended instead of blocking", self.name));
        }
        sys::wait_sleeping_in(&self.proc_dir(), nrs, Duration::from_secs(10))
            .map_err(|e| format!("{}: {e}", self.name))
    }

    /// Fails if the thread finishes within `d`.
    pub fn still_blocked_after(&self, d: Duration) -> TestResult {
        std::thread::sleep(d);
        if self.is_finished() {
            return Err(format!(
                "{} returned, but should still be blocked",
                self.name
            ));
        }
        Ok(())
    }
}

impl<T> Drop for Worker<T> {
    /// A test that failed may leave its thread blocked; signals end a blocked read or an
    /// interruptible call, so the thread lets go of its files and the next test finds the
    /// devices closed. A thread that still does not end is left behind.
    fn drop(&mut self) {
        let Some(h) = self.handle.take() else {
            return;
        };
        for _ in 0..50 {
            if h.is_finished() {
                let _ = h.join();
                return;
            }
            let _ = nix::sys::pthread::pthread_kill(h.as_pthread_t(), Signal::SIGUSR1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
