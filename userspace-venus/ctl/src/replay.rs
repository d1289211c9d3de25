// SPDX-License-Identifier: GPL-2.0

//! `coda-ctl replay`: makes a recorded stream of upcalls again through /dev/coda_ctl, in the
//! order the recording client sent them, and the recording stub's downcalls at the same
//! points, through its control FIFO.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use coda_msg::AccessIntentIn;
use coda_msg::CtlDowncall;
use coda_msg::PurgeuserOut;
use coda_msg::ReplaceOut;
use coda_msg::ZapfileOut;
use nix::errno::Errno;
use nix::poll::PollFd;
use nix::poll::PollFlags;
use nix::poll::PollTimeout;
use zerocopy::FromBytes;

use crate::records;

#[derive(clap::Args)]
pub struct Args {
    /// Which /dev/cfsN the stub serves.
    #[arg(long, default_value_t = 0)]
    minor: u32,
    /// The upcalls to make (`venus --record` of the recorded run).
    upcalls: PathBuf,
    /// What the stub wrote in the recorded run (`venus --record-replies`): its downcalls are
    /// made again after the same replies.
    #[arg(long, requires = "control")]
    writes: Option<PathBuf>,
    /// The control FIFO of the stub serving /dev/cfs<minor> (`venus --control`).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Write each reply the control device returned here, one record each.
    #[arg(long)]
    replies_out: Option<PathBuf>,
    /// Write each downcall the control device delivered here, one record each.
    #[arg(long)]
    downcalls_out: Option<PathBuf>,
    /// Seconds to wait for each downcall.
    #[arg(long, default_value_t = 10.0)]
    downcall_timeout: f64,
}

/// Linux's C client sends the access-intent finalisers asynchronously (no reply awaited).
fn is_async(msg: &[u8]) -> bool {
    records::opcode(msg) == Some(coda_msg::CODA_ACCESS_INTENT)
        && AccessIntentIn::read_from_prefix(msg).is_ok_and(|(m, _)| {
            matches!(
                m.r#type,
                coda_msg::CODA_ACCESS_TYPE_READ_FINISH | coda_msg::CODA_ACCESS_TYPE_WRITE_FINISH
            )
        })
}

/// The stub's control command that makes `msg` again. The stub's fids carry the inode
/// number in their second word, which `#N` names.
fn downcall_command(msg: &[u8]) -> Result<String, String> {
    let op = records::opcode(msg).unwrap_or(0);
    let short = || format!("short {} downcall", coda_msg::opcode_name(op));
    let ino = |m: &[u8]| -> Result<u32, String> {
        let (z, _) = ZapfileOut::read_from_prefix(m).map_err(|_| short())?;
        Ok(z.fid.opaque[1])
    };
    Ok(match op {
        coda_msg::CODA_FLUSH => "flush".to_string(),
        coda_msg::CODA_PURGEUSER => {
            let (p, _) = PurgeuserOut::read_from_prefix(msg).map_err(|_| short())?;
            format!("purgeuser {}", p.uid)
        }
        coda_msg::CODA_ZAPFILE => format!("zapfile #{}", ino(msg)?),
        coda_msg::CODA_ZAPDIR => format!("zapdir #{}", ino(msg)?),
        coda_msg::CODA_PURGEFID => format!("purgefid #{}", ino(msg)?),
        coda_msg::CODA_REPLACE => {
            let (r, _) = ReplaceOut::read_from_prefix(msg).map_err(|_| short())?;
            format!("replace #{}", r.old_fid.opaque[1])
        }
        _ => {
            return Err(format!(
                "no control command makes {}",
                coda_msg::opcode_name(op)
            ))
        }
    })
}

/// Where each recorded downcall goes in the replay: after the call at that index of the
/// replay order (None: before the first), that is after the last call whose reply the stub
/// had written before it.
fn plan_downcalls(
    writes: &[Vec<u8>],
    upcalls: &[Vec<u8>],
    order: &[usize],
) -> Vec<(Option<usize>, Vec<u8>)> {
    let mut pos_of_unique = HashMap::new();
    for (pos, &i) in order.iter().enumerate() {
        if let Some(u) = records::unique(&upcalls[i]) {
            pos_of_unique.entry(u).or_insert(pos);
        }
    }
    let mut last = None;
    let mut plan = Vec::new();
    for w in writes {
        if records::is_downcall(w) {
            plan.push((last, w.clone()));
        } else if let Some(&p) = records::unique(w).and_then(|u| pos_of_unique.get(&u)) {
            last = last.max(Some(p));
        }
    }
    plan
}

struct Replay<'a> {
    args: &'a Args,
    ctl: File,
    replies: Option<records::Writer>,
    downcalls: Option<records::Writer>,
    made: usize,
    /// Downcalls that could not be made again.
    down_errors: Vec<String>,
}

impl Replay<'_> {
    /// Has the stub write `msg` again and waits for the control device to deliver it.
    fn downcall(&mut self, msg: &[u8]) -> Result<(), String> {
        let cmd = downcall_command(msg)?;
        let fifo = self.args.control.as_ref().ok_or("no --control FIFO")?;
        // Opened for each command, as `echo CMD > FIFO` in the recorded run did: the stub
        // holds the FIFO open only while a writer does.
        let mut f = File::options()
            .write(true)
            .open(fifo)
            .map_err(|e| format!("opening {}: {e}", fifo.display()))?;
        writeln!(f, "{cmd}").map_err(|e| format!("writing {}: {e}", fifo.display()))?;
        drop(f);
        let deadline = Instant::now() + Duration::from_secs_f64(self.args.downcall_timeout);
        let mut buf = vec![0u8; size_of::<CtlDowncall>() + coda_msg::VC_MAXMSGSIZE];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) if left.is_zero() => return Err(format!("`{cmd}`: no downcall arrived")),
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(format!("poll /dev/coda_ctl: {e}")),
            }
            let n = self
                .ctl
                .read(&mut buf)
                .map_err(|e| format!("reading /dev/coda_ctl: {e}"))?;
            let (hdr, rest) = CtlDowncall::read_from_prefix(&buf[..n])
                .map_err(|_| "short downcall record".to_string())?;
            if hdr.minor != self.args.minor {
                continue;
            }
            let got = &rest[..(hdr.len as usize).min(rest.len())];
            if let Some(w) = &mut self.downcalls {
                w.append(got)?;
            }
            if records::opcode(got) != records::opcode(msg) {
                return Err(format!(
                    "`{cmd}`: the stub wrote {} instead",
                    coda_msg::opcode_name(records::opcode(got).unwrap_or(0))
                ));
            }
            self.made += 1;
            return Ok(());
        }
    }

    /// Makes one upcall: the reply of a synchronous one, or the errno of the control
    /// device's refusal or failure.
    fn call(&self, msg: &[u8]) -> nix::Result<Option<Vec<u8>>> {
        let mut out = vec![0u8; coda_msg::VC_MAXMSGSIZE];
        let flags = if is_async(msg) {
            coda_msg::CODA_CTL_ASYNC
        } else {
            0
        };
        let c = coda_dev::ctl_call_with(self.ctl.as_fd(), self.args.minor, flags, msg, &mut out)?;
        if c.flags & coda_msg::CODA_CTL_ASYNC != 0 {
            return Ok(None);
        }
        out.truncate(c.out_len as usize);
        Ok(Some(out))
    }
}

/// Runs the replay and prints TAP lines; Ok(false) when a check failed.
pub fn run(ctl: File, args: &Args) -> Result<bool, String> {
    let upcalls = records::read(&args.upcalls)?;
    // The client numbered its upcalls in the order it queued them; with several stub
    // threads the recording may hold neighbours swapped.
    let mut order: Vec<usize> = (0..upcalls.len()).collect();
    order.sort_by_key(|&i| records::unique(&upcalls[i]).unwrap_or(0));
    let swapped = order.iter().enumerate().filter(|(p, &i)| *p != i).count();
    let plan = match &args.writes {
        Some(w) => plan_downcalls(&records::read(w)?, &upcalls, &order),
        None => Vec::new(),
    };
    let mut r = Replay {
        args,
        ctl,
        replies: args
            .replies_out
            .as_deref()
            .map(records::Writer::create)
            .transpose()?,
        downcalls: args
            .downcalls_out
            .as_deref()
            .map(records::Writer::create)
            .transpose()?,
        made: 0,
        down_errors: Vec::new(),
    };
    let (mut sync, mut asyncs, mut refused, mut failed) = (0, 0, Vec::new(), Vec::new());
    let mut next = plan.iter().peekable();
    let mut downcalls_at = |r: &mut Replay, at: Option<usize>| {
        while let Some((_, msg)) = next.next_if(|(p, _)| *p == at) {
            if let Err(e) = r.downcall(msg) {
                r.down_errors.push(e);
            }
        }
    };
    downcalls_at(&mut r, None);
    for (pos, &i) in order.iter().enumerate() {
        let msg = &upcalls[i];
        let op = records::opcode(msg).unwrap_or(0);
        let what = || {
            format!(
                "upcall {i} ({}, recorded unique {})",
                coda_msg::opcode_name(op),
                records::unique(msg).unwrap_or(0)
            )
        };
        match r.call(msg) {
            Ok(None) => asyncs += 1,
            Ok(Some(reply)) => {
                sync += 1;
                if let Some(w) = &mut r.replies {
                    w.append(&reply)?;
                }
            }
            // The control device makes only the upcalls a file system makes (CODA_SIGNAL,
            // for one, the driver sends itself): say which it refused.
            Err(Errno::EINVAL) => refused.push(format!("{}: refused (EINVAL)", what())),
            Err(e) => {
                failed.push(format!("{}: {e}", what()));
                if e == Errno::ENODEV {
                    failed.push("the stub is gone: stopping".to_string());
                    break;
                }
            }
        }
        downcalls_at(&mut r, Some(pos));
    }
    let n = upcalls.len();
    let ok_calls = refused.is_empty() && failed.is_empty();
    println!(
        "{} - replay: {n} recorded upcalls made through /dev/coda_ctl ({sync} synchronous, \
         {asyncs} asynchronous, {} refused, {} failed)",
        if ok_calls { "ok" } else { "not ok" },
        refused.len(),
        failed.len()
    );
    if swapped > 0 {
        println!("#   {swapped} upcalls were recorded out of their unique order");
    }
    for l in refused.iter().chain(&failed) {
        println!("#   {l}");
    }
    let mut ok = ok_calls;
    if args.writes.is_some() {
        let ok_down = r.down_errors.is_empty() && r.made == plan.len();
        println!(
            "{} - replay: the stub's {} recorded downcalls made again at their places ({} \
             delivered by the control device)",
            if ok_down { "ok" } else { "not ok" },
            plan.len(),
            r.made
        );
        for l in &r.down_errors {
            println!("#   {l}");
        }
        ok &= ok_down;
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coda_msg::CodaFid;
    use coda_msg::InHdr;
    use coda_msg::OutHdr;
    use zerocopy::IntoBytes;

    fn up(op: u32, unique: u32) -> Vec<u8> {
        InHdr {
            opcode: op,
            unique,
            ..Default::default()
        }
        .as_bytes()
        .to_vec()
    }

    fn reply(op: u32, unique: u32) -> Vec<u8> {
        OutHdr {
            opcode: op,
            unique,
            result: 0,
        }
        .as_bytes()
        .to_vec()
    }

    #[test]
    fn finalisers_are_async() {
        let mut m = AccessIntentIn::default();
        m.ih.opcode = coda_msg::CODA_ACCESS_INTENT;
        m.r#type = coda_msg::CODA_ACCESS_TYPE_READ;
        assert!(!is_async(m.as_bytes()));
        m.r#type = coda_msg::CODA_ACCESS_TYPE_WRITE_FINISH;
        assert!(is_async(m.as_bytes()));
        assert!(!is_async(&m.as_bytes()[..20]));
        assert!(!is_async(&up(coda_msg::CODA_GETATTR, 1)));
    }

    #[test]
    fn commands() {
        let fid = CodaFid {
            opaque: [1, 17, 2, 0],
        };
        let oh = |op| OutHdr {
            opcode: op,
            unique: 0,
            result: 0,
        };
        let z = ZapfileOut {
            oh: oh(coda_msg::CODA_ZAPDIR),
            fid,
        };
        assert_eq!(downcall_command(z.as_bytes()).unwrap(), "zapdir #17");
        let r = ReplaceOut {
            oh: oh(coda_msg::CODA_REPLACE),
            new_fid: CodaFid {
                opaque: [1, 17, 3, 0],
            },
            old_fid: fid,
        };
        assert_eq!(downcall_command(r.as_bytes()).unwrap(), "replace #17");
        let p = PurgeuserOut {
            oh: oh(coda_msg::CODA_PURGEUSER),
            uid: 1000,
        };
        assert_eq!(downcall_command(p.as_bytes()).unwrap(), "purgeuser 1000");
        assert_eq!(
            downcall_command(oh(coda_msg::CODA_FLUSH).as_bytes()).unwrap(),
            "flush"
        );
        assert!(downcall_command(&z.as_bytes()[..20]).is_err());
        assert!(downcall_command(oh(coda_msg::CODA_GETATTR).as_bytes()).is_err());
    }

    #[test]
    fn downcalls_follow_the_replies_before_them() {
        let g = coda_msg::CODA_GETATTR;
        // Recorded with two uniques swapped.
        let upcalls = vec![up(g, 1), up(g, 3), up(g, 2), up(g, 4)];
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|&i| records::unique(&upcalls[i]).unwrap());
        assert_eq!(order, [0, 2, 1, 3]);
        let flush = reply(coda_msg::CODA_FLUSH, 0);
        let writes = vec![
            flush.clone(),
            reply(g, 1),
            reply(g, 3),
            reply(g, 2),
            flush.clone(),
            reply(g, 4),
        ];
        let plan = plan_downcalls(&writes, &upcalls, &order);
        assert_eq!(plan, vec![(None, flush.clone()), (Some(2), flush)]);
    }
}
