// SPDX-License-Identifier: GPL-2.0

//! A Venus stub: serves an in-memory file tree to the kernel's Coda client through
//! /dev/cfsN, the way Coda's cache manager does.

mod serve;
mod tree;

use clap::Parser;
use clap::ValueEnum;
use coda_msg::*;
use nix::sys::signal::SigSet;
use nix::sys::signal::Signal;
use rustix::fs::Mode;
use rustix::fs::OFlags;
use serve::fatal;
use serve::Config;
use serve::Recording;
use serve::Venus;
use std::io::BufRead;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::os::unix::thread::JoinHandleExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tree::Tree;
use tree::ROOT_INO;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MountApi {
    /// mount(2) with `struct coda_mount_data` naming the device fd.
    Legacy,
    /// fsopen/fsconfig("fd")/fsmount/move_mount.
    Fsopen,
}

/// Serve an in-memory file tree on a Coda pseudo-device (/dev/cfsN).
///
/// Signals: SIGTERM/SIGINT shut down cleanly (exit 0); SIGUSR1 sends CODA_ZAPDIR for the
/// root.  The control FIFO takes lines: flush | zapdir PATH | zapfile PATH | purgefid PATH |
/// replace PATH | purgeuser UID | quit  (PATH relative to the served root, or #N for the
/// object with inode number N, the second word of its fid); hold OPCODE (hold the reply to
/// the next upcall of that opcode, e.g. OPEN_BY_FD, until `release`) | release |
/// write PATH TEXT (set a file's data to TEXT and a newline, sending no downcall) |
/// container PATH FIFO (the next open of PATH gets the FIFO FIFO, opened for writing, as
/// its container) |
/// mount DIR (mount the device again, after an unmount).  Each line is answered on stderr
/// with `venus: control: done: LINE` or `venus: control: failed: LINE: why`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Host directory whose contents seed the served tree.
    #[arg(conflicts_with = "gen")]
    seed: Option<PathBuf>,

    /// Seed a generated tree of N files instead (dirNN/fileNNNNN, 100 a directory).
    #[arg(long, value_name = "N")]
    gen: Option<usize>,

    /// The pseudo-device to serve.
    #[arg(short, long, default_value = "/dev/cfs0")]
    device: PathBuf,

    /// Directory (a tmpfs) for container files.
    #[arg(long, default_value = "/tmp/venus-cache")]
    cache_dir: PathBuf,

    /// Reader threads sharing the device fd.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,

    /// Log each message (-v), with names and details (-vv), with raw bytes (-vvv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// After the initial CODA_FLUSH, mount the device here (`mount -t coda`).
    #[arg(long, value_name = "DIR")]
    mount: Option<PathBuf>,

    /// How to mount.
    #[arg(long, value_enum, default_value = "legacy")]
    mount_api: MountApi,

    /// Append every upcall read to FILE: a u32 little-endian length, then the raw bytes.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Append every reply and downcall the device took to FILE, in the order written, in
    /// the format of --record.
    #[arg(long, value_name = "FILE")]
    record_replies: Option<PathBuf>,

    /// Append the contents of each file container copied back into the tree (at CODA_CLOSE
    /// after writing, CODA_FSYNC) to FILE: a u32 little-endian length, then the inode number
    /// (u32 little-endian) and the data.
    #[arg(long, value_name = "FILE")]
    record_containers: Option<PathBuf>,

    /// Before each copy-back, fill the container with the next contents from FILE (made by
    /// --record-containers): when recorded upcalls are replayed, the data the recorded
    /// client wrote into containers, which no upcall carries, comes back too.
    #[arg(long, value_name = "FILE")]
    replay_containers: Option<PathBuf>,

    /// Send a downcall after every N replies, cycling ZAPFILE, ZAPDIR, PURGEUSER, PURGEFID,
    /// REPLACE.
    #[arg(long, value_name = "N")]
    downcall_every: Option<u64>,

    /// Control FIFO (created if missing) taking downcall commands, one a line.
    #[arg(long, value_name = "FIFO")]
    control: Option<PathBuf>,

    /// Exit (status 0) after serving N messages.
    #[arg(long, value_name = "N")]
    max_requests: Option<u64>,

    /// Exit (status 0) after SECS seconds.
    #[arg(long, value_name = "SECS")]
    exit_after: Option<f64>,

    /// Wait this long before each reply, so that callers can be interrupted (CODA_SIGNAL)
    /// or give up.
    #[arg(long, value_name = "MS")]
    delay_ms: Option<u64>,

    /// Answer CODA_ACCESS_INTENT with EOPNOTSUPP, as Venus before 2019 did.
    #[arg(long)]
    no_access_intent: bool,

    /// Readers block in read(2) instead of poll(2) then a non-blocking read: the driver
    /// then wakes one reader per message (Linux's psdev wakes every blocked reader).
    #[arg(long)]
    blocking_read: bool,

    /// Readers trade each batch of replies for the next batch of messages in one
    /// CODA_PSDEV_IOC_EXCHANGE call (this driver's; not in Linux's or NetBSD's psdev).
    #[arg(long, conflicts_with = "blocking_read")]
    exchange: bool,
}

/// Opens the device, checks the protocol version and sends the initial CODA_FLUSH.
fn open_device(path: &PathBuf, blocking: bool) -> OwnedFd {
    // Non-blocking for poll: with several readers, poll wakes them all and only one gets the
    // message.
    let nonblock = if blocking {
        OFlags::empty()
    } else {
        OFlags::NONBLOCK
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | nonblock | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| fatal(format!("open {}: {e}", path.display())));

    let version = coda_dev::kernel_version(fd.as_fd())
        .unwrap_or_else(|e| fatal(format!("CIOC_KERNEL_VERSION on {}: {e}", path.display())));
    if version != u64::from(CODA_KERNEL_VERSION) {
        fatal(format!(
            "kernel speaks Coda version {version}, this Venus {CODA_KERNEL_VERSION}"
        ));
    }

    let flush = OutHdr {
        opcode: CODA_FLUSH,
        unique: 0,
        result: 0,
    };
    match rustix::io::write(&fd, zerocopy::IntoBytes::as_bytes(&flush)) {
        Ok(OUT_HDR_SIZE) => {}
        Ok(n) => fatal(format!("CODA_FLUSH: wrote {n} of {OUT_HDR_SIZE} bytes")),
        Err(e) => fatal(format!("CODA_FLUSH: {e}")),
    }
    fd
}

/// `mount -t coda` of our device on `dir`. Not from a reader thread: the kernel makes
/// ROOT and GETATTR upcalls during the mount, which the readers must be free to answer.
fn mount(venus: &Venus, dir: &std::path::Path, api: MountApi) -> Result<(), String> {
    let cdir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "mount point holds a NUL".to_string())?;
    let r = match api {
        MountApi::Legacy => coda_dev::mount_legacy(venus.dev.as_fd(), &cdir),
        MountApi::Fsopen => coda_dev::mount_fsopen(&venus.dev, &cdir),
    };
    r.map_err(|e| format!("mount -t coda on {}: {e}", dir.display()))?;
    eprintln!("venus: mounted on {}", dir.display());
    Ok(())
}

fn spawn_mount(venus: Arc<Venus>, dir: PathBuf, api: MountApi) {
    std::thread::spawn(move || mount(&venus, &dir, api).unwrap_or_else(|e| fatal(e)));
}

extern "C" fn kick(_: nix::libc::c_int) {}

/// SIGUSR2 interrupts a reader's blocking read (no SA_RESTART) at shutdown.
fn install_kick_handler() {
    use nix::sys::signal::SaFlags;
    use nix::sys::signal::SigAction;
    use nix::sys::signal::SigHandler;
    let act = SigAction::new(SigHandler::Handler(kick), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler does nothing, so it is async-signal-safe; SIGUSR2 is ours.
    unsafe { nix::sys::signal::sigaction(Signal::SIGUSR2, &act) }
        .unwrap_or_else(|e| fatal(format!("sigaction SIGUSR2: {e}")));
}

/// Signals, taken synchronously by one thread (they are blocked everywhere else).
fn spawn_signals(venus: Arc<Venus>, set: SigSet) {
    std::thread::spawn(move || loop {
        match set.wait() {
            Ok(Signal::SIGUSR1) => {
                if let Err(e) = venus.send_downcall(CODA_ZAPDIR, ROOT_INO, 0) {
                    fatal(e);
                }
            }
            Ok(sig) => {
                if venus.cfg.verbose >= 1 {
                    eprintln!("venus: {sig}: shutting down");
                }
                venus.shutdown();
                return;
            }
            Err(e) => fatal(format!("sigwait: {e}")),
        }
    });
}

/// One control command; returns an error message for the sender's log.
fn control_command(venus: &Venus, line: &str, api: MountApi) -> Result<(), String> {
    let mut words = line.splitn(3, char::is_whitespace);
    let cmd = words.next().unwrap_or("");
    let arg = words.next().unwrap_or("/");
    let rest = words.next().unwrap_or("");
    let lookup = |p: &str| {
        let t = venus.tree.lock().map_err(|_| "lock poisoned".to_string())?;
        match p.strip_prefix('#') {
            // By inode number: how a replay names the object a recorded downcall named,
            // whatever its path.
            Some(n) => {
                let ino = n.parse().map_err(|e| format!("{p}: {e}"))?;
                t.node(ino).map_err(|e| format!("{p}: {e}"))?;
                Ok(ino)
            }
            None => t.resolve(p).map_err(|e| format!("{p}: {e}")),
        }
    };
    match cmd {
        "" => Ok(()),
        "quit" => {
            venus.shutdown();
            Ok(())
        }
        "flush" => venus.send_downcall(CODA_FLUSH, ROOT_INO, 0),
        "purgeuser" => {
            let uid = arg.parse().map_err(|e| format!("uid {arg}: {e}"))?;
            venus.send_downcall(CODA_PURGEUSER, ROOT_INO, uid)
        }
        "zapdir" => venus.send_downcall(CODA_ZAPDIR, lookup(arg)?, 0),
        "zapfile" => venus.send_downcall(CODA_ZAPFILE, lookup(arg)?, 0),
        "purgefid" => venus.send_downcall(CODA_PURGEFID, lookup(arg)?, 0),
        "replace" => venus.send_downcall(CODA_REPLACE, lookup(arg)?, 0),
        "hold" => {
            let op = (0..CODA_NCALLS)
                .find(|&op| opcode_name(op) == arg)
                .ok_or_else(|| format!("hold: unknown opcode {arg:?}"))?;
            venus.hold_next(op);
            Ok(())
        }
        "release" => {
            venus.release();
            Ok(())
        }
        "write" => venus.change_file(lookup(arg)?, format!("{rest}\n").as_bytes()),
        "container" => {
            venus.fifo_container(lookup(arg)?, PathBuf::from(rest));
            Ok(())
        }
        "mount" => mount(venus, std::path::Path::new(arg), api),
        _ => Err(format!("unknown command {cmd:?}")),
    }
}

fn spawn_control(venus: Arc<Venus>, fifo: PathBuf, api: MountApi) {
    if !fifo.exists() {
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .unwrap_or_else(|e| fatal(format!("mkfifo {}: {e}", fifo.display())));
    }
    std::thread::spawn(move || loop {
        // Blocks until a writer opens the FIFO; EOF when the last one closes it.
        let f = std::fs::File::open(&fifo)
            .unwrap_or_else(|e| fatal(format!("open {}: {e}", fifo.display())));
        for line in std::io::BufReader::new(f).lines() {
            let line = line.unwrap_or_else(|e| fatal(format!("read {}: {e}", fifo.display())));
            let line = line.trim();
            match control_command(&venus, line, api) {
                Ok(()) => eprintln!("venus: control: done: {line}"),
                Err(e) => eprintln!("venus: control: failed: {line}: {e}"),
            }
        }
    });
}

fn main() {
    let args = Args::parse();

    let mut tree = Tree::new();
    if let Some(dir) = &args.seed {
        let n = tree
            .seed_from(ROOT_INO, dir)
            .unwrap_or_else(|e| fatal(format!("seeding from {}: {e}", dir.display())));
        eprintln!("venus: seeded {n} entries from {}", dir.display());
    } else if let Some(n) = args.gen {
        tree.generate(n)
            .unwrap_or_else(|e| fatal(format!("generating {n} files: {e}")));
    }

    // A directory of our own inside the cache dir, gone at exit.
    let cache = args.cache_dir.join(format!("venus-{}", std::process::id()));
    std::fs::create_dir_all(&cache)
        .unwrap_or_else(|e| fatal(format!("creating {}: {e}", cache.display())));

    let append = |p: &Option<PathBuf>| {
        p.as_ref().map(|p| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .unwrap_or_else(|e| fatal(format!("opening {}: {e}", p.display())))
        })
    };
    let rec = Recording {
        upcalls: append(&args.record),
        writes: append(&args.record_replies),
        containers: append(&args.record_containers),
    };
    let replay = args.replay_containers.as_ref().map(|p| {
        serve::read_container_records(p)
            .unwrap_or_else(|e| fatal(format!("reading {}: {e}", p.display())))
    });

    // Block the signals before any thread starts so that only the signal thread takes them.
    let mut sigs = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGHUP,
    ] {
        sigs.add(s);
    }
    sigs.thread_block()
        .unwrap_or_else(|e| fatal(format!("blocking signals: {e}")));

    // Both wait in the driver until a message comes: main kicks them at shutdown.
    let blocking = args.blocking_read || args.exchange;
    if blocking {
        install_kick_handler();
    }
    let dev = open_device(&args.device, blocking);
    let cfg = Config {
        verbose: args.verbose,
        access_intent: !args.no_access_intent,
        downcall_every: args.downcall_every,
        max_requests: args.max_requests,
        delay: args.delay_ms.map(Duration::from_millis),
        blocking_read: args.blocking_read,
        exchange: args.exchange,
    };
    let venus = Arc::new(
        Venus::new(dev, tree, cache.clone(), cfg, rec, replay)
            .unwrap_or_else(|e| fatal(format!("setup: {e}"))),
    );

    spawn_signals(venus.clone(), sigs);
    if let Some(fifo) = &args.control {
        spawn_control(venus.clone(), fifo.clone(), args.mount_api);
    }
    if let Some(secs) = args.exit_after {
        let v = venus.clone();
        let d = Duration::try_from_secs_f64(secs)
            .unwrap_or_else(|e| fatal(format!("--exit-after {secs}: {e}")));
        std::thread::spawn(move || {
            std::thread::sleep(d);
            v.shutdown();
        });
    }

    let readers: Vec<_> = (0..args.threads as usize)
        .map(|id| {
            let v = venus.clone();
            std::thread::spawn(move || v.reader_loop(id))
        })
        .collect();
    eprintln!(
        "venus: serving {} with {} thread(s)",
        args.device.display(),
        args.threads
    );
    if let Some(dir) = &args.mount {
        spawn_mount(venus.clone(), dir.clone(), args.mount_api);
    }

    if blocking {
        // Readers blocked in read(2) return only on a signal: kick them until they are
        // gone (one kick may land just before a reader enters read).
        venus.wait_stopped();
        while readers.iter().any(|r| !r.is_finished()) {
            for r in readers.iter().filter(|r| !r.is_finished()) {
                let _ = nix::sys::pthread::pthread_kill(r.as_pthread_t(), Signal::SIGUSR2);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for r in readers {
        if r.join().is_err() {
            fatal("a reader thread panicked");
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
    let exchanges = venus.exchanges.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "venus: exiting after {} messages, {} downcalls{}",
        venus.served.load(std::sync::atomic::Ordering::SeqCst),
        venus.downcalls.load(std::sync::atomic::Ordering::SeqCst),
        if args.exchange {
            format!(", read in {exchanges} exchanges")
        } else {
            String::new()
        }
    );
    // Exiting closes the device, also for the threads still holding it.
    std::process::exit(0);
}
