// SPDX-License-Identifier: GPL-2.0

//! `harness`: integration tests of coda_psdev.ko, run as root inside the test VM. It loads
//! the module itself with each test group's parameters and speaks to /dev/cfsN and
//! /dev/coda_ctl only through the documented uapi (uapi/coda_psdev.h).
//!
//! Output: `ok - <name>` or `not ok - <name>: <reason>` per test, then `N passed, M failed`.

mod caller;
mod check;
mod module;
mod msg;
mod runner;
mod stats;
mod sys;
mod tests;
mod venus;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "In-guest tests of coda_psdev.ko")]
struct Args {
    /// The module to test.
    #[arg(long, required_unless_present = "list")]
    ko: Option<PathBuf>,
    /// Run only the tests whose name (group/test) contains this.
    #[arg(long)]
    filter: Option<String>,
    /// List the tests and exit.
    #[arg(long)]
    list: bool,
    /// Print each test's duration on stderr.
    #[arg(long)]
    timing: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let groups = tests::groups();
    if args.list {
        for g in &groups {
            for t in &g.tests {
                println!("{}", runner::full_name(g, t));
            }
        }
        return ExitCode::SUCCESS;
    }
    let Some(ko) = args.ko else {
        eprintln!("harness: --ko is required");
        return ExitCode::from(2);
    };
    let ko = match ko.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("harness: {}: {e}", ko.display());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sys::install_signal_handlers() {
        eprintln!("harness: cannot install signal handlers: {e}");
        return ExitCode::from(2);
    }
    // A module left loaded by an earlier run would make every insmod fail.
    if module::loaded() {
        if let Err(e) = module::unload_retrying() {
            eprintln!("harness: coda_psdev is loaded and cannot be removed: {e}");
            return ExitCode::from(2);
        }
    }
    let tally = runner::run(&groups, ko, args.filter.as_deref(), args.timing);
    tally.summary();
    if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
