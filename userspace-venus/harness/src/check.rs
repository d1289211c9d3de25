// SPDX-License-Identifier: GPL-2.0

//! What a test returns, and the small assertions the tests are written with.

use std::fmt::Debug;
use std::fmt::Display;
use std::time::Duration;
use std::time::Instant;

use nix::errno::Errno;

/// A test passes with `Ok(())`; `Err` carries the reason printed after `not ok`.
pub type TestResult = Result<(), String>;

/// Fails the test with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// Fails the test unless both sides are equal, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($arg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!("{}: got {:?}, want {:?}", format!($($arg)+), left, right));
        }
    }};
}

/// Turns any error into a test failure that says what was being done.
pub trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Fails unless `r` is exactly the error `want`.
pub fn expect_errno<T: Debug>(r: Result<T, Errno>, want: Errno, what: &str) -> TestResult {
    match r {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: failed with {e}, want {want}")),
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), want {want}")),
    }
}

/// Polls `f` until it returns true; fails after `within`.
pub fn wait_until(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Result<bool, String>,
) -> TestResult {
    let end = Instant::now() + within;
    loop {
        if f()? {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(format!("timed out after {within:?} waiting until {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
