// SPDX-License-Identifier: GPL-2.0

//! psdev-fuzz: reliability tests of coda_psdev, run as root inside the (debug) guest.
//!
//! `fuzz` is a seeded syscall fuzzer; `lifecycle`, `hostile`, `faults` and `soak` are the
//! crash, privilege, fault-injection and stress checks. Each prints `ok - <name>` or
//! `not ok - <name>` per check and ends with `N passed, M failed`.

mod faults;
mod fuzz;
mod hostile;
mod initfaults;
mod lifecycle;
mod soak;
mod sys;
mod work;

use clap::Parser;
use clap::Subcommand;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Random programs of syscalls on every device from several threads (module loaded).
    Fuzz(fuzz::FuzzArgs),
    /// Venus killed under load, Venus restarted, rmmod while open, load/unload cycles.
    Lifecycle(lifecycle::LifecycleArgs),
    /// Privilege checks and byte-exactness of everything read (module loaded).
    Hostile,
    /// failslab / fail_page_alloc on the module's allocations (module loaded, debugfs).
    Faults(faults::FaultArgs),
    /// Bounded stress with Venus restarts and signals (module loaded).
    Soak(soak::SoakArgs),
    /// Callers over the max_outstanding bound under a storm of signals (module loaded small).
    Bound(soak::BoundArgs),
    /// Callers over the bound while Venus reads nothing end within the timeout.
    RoomTimeout,
    /// The module's initialisation with each of its allocations failed in turn.
    InitFaults(initfaults::InitFaultsArgs),
    /// Internal: a Venus process for `lifecycle` to kill.
    #[command(hide = true)]
    VenusChild(lifecycle::VenusChildArgs),
    /// Internal: open the devices as an unprivileged or namespaced caller.
    #[command(hide = true)]
    TryOpen(hostile::TryOpenArgs),
}

/// Runs `f` on another thread and waits at most `limit` for it; `None` if it is stuck.
pub fn join_within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

fn main() {
    let cli = Cli::parse();
    let mut rep = sys::Report::default();
    match &cli.cmd {
        Cmd::Fuzz(a) => fuzz::run(a, &mut rep),
        Cmd::Lifecycle(a) => lifecycle::run(a, &mut rep),
        Cmd::Hostile => hostile::run(&mut rep),
        Cmd::Faults(a) => faults::run(a, &mut rep),
        Cmd::Soak(a) => soak::run(a, &mut rep),
        Cmd::Bound(a) => soak::bound(a, &mut rep),
        Cmd::RoomTimeout => soak::room_timeout(&mut rep),
        Cmd::InitFaults(a) => initfaults::run(a, &mut rep),
        Cmd::VenusChild(a) => std::process::exit(lifecycle::venus_child(a)),
        Cmd::TryOpen(a) => std::process::exit(hostile::try_open(a)),
    }
    std::process::exit(rep.finish());
}
