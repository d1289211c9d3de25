// SPDX-License-Identifier: GPL-2.0

//! `coda-ctl compare`: checks a replay against the run it replays. The stub must have
//! received the same upcalls (uniques aside) and answered them the same, up to the fields
//! that differ between any two runs: the timestamps of `coda_vattr` (the stub's clock) and
//! the descriptor number in CODA_OPEN_BY_FD replies (the stub's fd table).

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;

use coda_msg::CodaTimespec;
use coda_msg::CodaVattr;
use coda_msg::CreateOut;
use coda_msg::GetattrOut;
use coda_msg::MkdirOut;
use coda_msg::OpenByFdOut;
use coda_msg::OutHdr;
use zerocopy::FromBytes;
use zerocopy::IntoBytes;

use crate::records;

#[derive(clap::Args)]
pub struct Args {
    /// The recorded run: upcalls.rec and replies.rec of `venus --record/--record-replies`.
    peer: PathBuf,
    /// The replay: the same two files of the replay's stub, and ctl-replies.rec and
    /// ctl-downcalls.rec of `coda-ctl replay`.
    replay: PathBuf,
}

/// Diagnostics shown for each check at most.
const SHOWN: usize = 10;

/// Fields that may differ between two runs.
#[derive(Clone, Copy)]
struct Mask {
    times: bool,
    fd: bool,
}

/// A message without its unique.
fn sans_unique(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    if let Some(u) = m.get_mut(4..8) {
        u.fill(0);
    }
    m
}

fn clear_times(a: &mut CodaVattr) {
    a.va_atime = CodaTimespec::default();
    a.va_mtime = CodaTimespec::default();
    a.va_ctime = CodaTimespec::default();
}

/// Applies `f` to the reply struct `T` at the start of `m`, if `m` holds one.
fn edit<T: FromBytes + IntoBytes + zerocopy::Immutable>(m: &mut [u8], f: impl FnOnce(&mut T)) {
    if let Ok((mut v, _)) = T::read_from_prefix(m) {
        f(&mut v);
        // Cannot fail: `m` held a whole `T`.
        let _ = v.write_to_prefix(m);
    }
}

/// A reply (unique already cleared) with the masked fields zeroed. Only successful replies
/// carry them.
fn masked(reply: &[u8], mask: Mask) -> Vec<u8> {
    let mut m = reply.to_vec();
    let Ok((oh, _)) = OutHdr::read_from_prefix(reply) else {
        return m;
    };
    if oh.result != 0 {
        return m;
    }
    match oh.opcode {
        coda_msg::CODA_GETATTR if mask.times => {
            edit(&mut m, |r: &mut GetattrOut| clear_times(&mut r.attr))
        }
        coda_msg::CODA_CREATE if mask.times => {
            edit(&mut m, |r: &mut CreateOut| clear_times(&mut r.attr))
        }
        coda_msg::CODA_MKDIR if mask.times => {
            edit(&mut m, |r: &mut MkdirOut| clear_times(&mut r.attr))
        }
        coda_msg::CODA_OPEN_BY_FD if mask.fd => edit(&mut m, |r: &mut OpenByFdOut| r.fd = 0),
        _ => {}
    }
    m
}

/// How two replies to the same upcall compare.
#[derive(Debug, PartialEq)]
enum Same {
    Exactly,
    /// Equal once the masked fields are: which of them differed.
    Masked {
        times: bool,
        fd: bool,
    },
    No(String),
}

/// The attributes of a reply that carries them.
fn attr_of(reply: &[u8]) -> Option<CodaVattr> {
    match records::opcode(reply)? {
        coda_msg::CODA_GETATTR => GetattrOut::read_from_prefix(reply).ok().map(|r| r.0.attr),
        coda_msg::CODA_CREATE => CreateOut::read_from_prefix(reply).ok().map(|r| r.0.attr),
        coda_msg::CODA_MKDIR => MkdirOut::read_from_prefix(reply).ok().map(|r| r.0.attr),
        _ => None,
    }
}

/// Says which fields of two messages of the same kind differ.
fn describe(a: &[u8], b: &[u8]) -> String {
    let op = coda_msg::opcode_name(records::opcode(a).unwrap_or(0));
    if a.len() != b.len() {
        return format!("{op}: {} bytes vs {}", a.len(), b.len());
    }
    let result = |m: &[u8]| OutHdr::read_from_prefix(m).map_or(0, |r| r.0.result);
    let mut d = Vec::new();
    if let (Some(x), Some(y)) = (attr_of(a), attr_of(b)) {
        macro_rules! fields {
            ($($f:ident),*) => {$(
                if x.$f != y.$f {
                    d.push(format!("{} {:?} vs {:?}", stringify!($f), x.$f, y.$f));
                }
            )*};
        }
        fields!(
            va_type,
            va_mode,
            va_nlink,
            va_uid,
            va_gid,
            va_fileid,
            va_size,
            va_blocksize,
            va_gen,
            va_flags,
            va_rdev,
            va_bytes,
            va_filerev
        );
    }
    let offs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    if d.is_empty() {
        let first = offs.first().copied().unwrap_or(0);
        let win = first..(first + 16).min(a.len());
        d.push(format!(
            "{} differing bytes, the first at offset {first}: {:02x?} vs {:02x?}",
            offs.len(),
            &a[win.clone()],
            &b[win]
        ));
    }
    format!(
        "{op} (result {} vs {}): {}",
        result(a),
        result(b),
        d.join(", ")
    )
}

fn compare_replies(peer: &[u8], replay: &[u8]) -> Same {
    let (a, b) = (sans_unique(peer), sans_unique(replay));
    if a == b {
        return Same::Exactly;
    }
    let all = Mask {
        times: true,
        fd: true,
    };
    if masked(&a, all) != masked(&b, all) {
        return Same::No(describe(&a, &b));
    }
    let only = |times, fd| Mask { times, fd };
    Same::Masked {
        times: masked(&a, only(false, true)) != masked(&b, only(false, true)),
        fd: masked(&a, only(true, false)) != masked(&b, only(true, false)),
    }
}

/// Upcalls in the order their client queued them (by unique), each with its position in
/// the recording.
fn by_unique(recs: &[Vec<u8>]) -> Vec<(usize, &[u8])> {
    let mut v: Vec<(usize, &[u8])> = recs.iter().map(|r| &r[..]).enumerate().collect();
    v.sort_by_key(|(_, m)| records::unique(m).unwrap_or(0));
    v
}

/// The replies of a record of writes by unique, and its downcalls in order.
fn split_writes(writes: &[Vec<u8>]) -> (HashMap<u32, &[u8]>, Vec<&[u8]>, usize) {
    let mut replies = HashMap::new();
    let mut downcalls = Vec::new();
    let mut dups = 0;
    for w in writes {
        if records::is_downcall(w) {
            downcalls.push(&w[..]);
        } else if replies
            .insert(records::unique(w).unwrap_or(0), &w[..])
            .is_some()
        {
            dups += 1;
        }
    }
    (replies, downcalls, dups)
}

/// Prints one TAP line and its diagnostics; returns `ok`.
fn report(ok: bool, name: String, notes: &[String]) -> bool {
    println!("{} - {name}", if ok { "ok" } else { "not ok" });
    for n in notes.iter().take(SHOWN) {
        println!("#   {n}");
    }
    if notes.len() > SHOWN {
        println!("#   ... and {} more", notes.len() - SHOWN);
    }
    ok
}

/// Compares two lists of messages exactly, in order.
fn same_list(what: &str, a: &[&[u8]], b: &[&[u8]]) -> (bool, Vec<String>) {
    let mut notes = Vec::new();
    if a.len() != b.len() {
        notes.push(format!("{what}: {} vs {}", a.len(), b.len()));
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            notes.push(format!("{what} {i}: {}", describe(x, y)));
        }
    }
    (notes.is_empty(), notes)
}

fn read(dir: &Path, name: &str) -> Result<Vec<Vec<u8>>, String> {
    records::read(&dir.join(name))
}

/// Runs the comparisons and prints TAP lines; Ok(false) when one failed.
pub fn run(args: &Args) -> Result<bool, String> {
    let peer_up = read(&args.peer, "upcalls.rec")?;
    let peer_writes = read(&args.peer, "replies.rec")?;
    let rep_up = read(&args.replay, "upcalls.rec")?;
    let rep_writes = read(&args.replay, "replies.rec")?;
    let ctl_replies = read(&args.replay, "ctl-replies.rec")?;
    let ctl_downcalls = read(&args.replay, "ctl-downcalls.rec")?;
    let mut ok = true;

    // The control device makes only upcalls (`coda-ctl replay` reported any it refused).
    let peer: Vec<_> = by_unique(&peer_up)
        .into_iter()
        .filter(|(_, m)| records::opcode(m).is_some_and(coda_msg::is_upcall))
        .collect();
    let rep = by_unique(&rep_up);
    let n = peer.len().min(rep.len());

    // (a) The stub received the same messages.
    let mut notes = Vec::new();
    if peer.len() != rep.len() {
        notes.push(format!(
            "{} replayable upcalls recorded from the C client, {} received in the replay",
            peer.len(),
            rep.len()
        ));
    }
    if peer.len() != peer_up.len() {
        notes.push(format!(
            "{} recorded messages are no upcalls the control device makes",
            peer_up.len() - peer.len()
        ));
    }
    let mut differ = 0;
    for (i, ((pi, p), (_, r))) in peer.iter().zip(&rep).enumerate() {
        let (a, b) = (sans_unique(p), sans_unique(r));
        if a != b {
            differ += 1;
            let first = (0..a.len().min(b.len()))
                .find(|&k| a[k] != b[k])
                .unwrap_or(a.len().min(b.len()));
            notes.push(format!(
                "upcall {i} (recorded as {pi}, {}): {} bytes vs {}, first difference at byte {first}",
                coda_msg::opcode_name(records::opcode(p).unwrap_or(0)),
                a.len(),
                b.len()
            ));
        }
    }
    ok &= report(
        differ == 0 && peer.len() == rep.len(),
        format!(
            "upcalls: the stub received the same messages as from the C client, uniques aside \
             ({n} compared, {differ} differ)"
        ),
        &notes,
    );

    // (b) The stub answered them the same.
    let (peer_replies, peer_down, peer_dups) = split_writes(&peer_writes);
    let (rep_replies, rep_down, rep_dups) = split_writes(&rep_writes);
    let mut notes = Vec::new();
    if peer_dups + rep_dups > 0 {
        notes.push(format!(
            "replies to one unique twice: {peer_dups} in the recording, {rep_dups} in the replay"
        ));
    }
    let (mut compared, mut none, mut times, mut fds, mut differ) = (0, 0, 0, 0, 0);
    for (i, ((_, p), (_, r))) in peer.iter().zip(&rep).enumerate() {
        let pr = records::unique(p).and_then(|u| peer_replies.get(&u));
        let rr = records::unique(r).and_then(|u| rep_replies.get(&u));
        let op = coda_msg::opcode_name(records::opcode(p).unwrap_or(0));
        match (pr, rr) {
            (None, None) => none += 1,
            (Some(_), None) | (None, Some(_)) => {
                differ += 1;
                notes.push(format!(
                    "upcall {i} ({op}): answered {} the C client, {} the replay",
                    if pr.is_some() { "to" } else { "not to" },
                    if rr.is_some() { "in" } else { "not in" }
                ));
            }
            (Some(a), Some(b)) => {
                compared += 1;
                match compare_replies(a, b) {
                    Same::Exactly => {}
                    Same::Masked { times: t, fd } => {
                        times += usize::from(t);
                        fds += usize::from(fd);
                    }
                    Same::No(d) => {
                        differ += 1;
                        notes.push(format!("upcall {i}: {d}"));
                    }
                }
            }
        }
    }
    ok &= report(
        differ == 0 && peer_dups + rep_dups == 0,
        format!(
            "replies: the stub answered as it answered the C client, uniques aside ({compared} \
             compared, {none} upcalls without a reply in both, {differ} differ; masked: {times} \
             with other timestamps, {fds} with another container fd)"
        ),
        &notes,
    );

    // (c) The downcalls made again are the same.
    let (same, notes) = same_list("downcall", &peer_down, &rep_down);
    ok &= report(
        same,
        format!(
            "downcalls: the stub wrote the same downcalls ({} recorded, {} in the replay)",
            peer_down.len(),
            rep_down.len()
        ),
        &notes,
    );

    // (d) The control device returned exactly what the stub wrote.
    let mut notes = Vec::new();
    let mut differ = 0;
    let want: Vec<&[u8]> = rep
        .iter()
        .filter_map(|(_, r)| {
            records::unique(r)
                .and_then(|u| rep_replies.get(&u))
                .copied()
        })
        .collect();
    let got: Vec<&[u8]> = ctl_replies.iter().map(|r| &r[..]).collect();
    if want.len() != got.len() {
        notes.push(format!(
            "the stub wrote {} replies, the control device returned {}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        if w != g {
            differ += 1;
            notes.push(format!("reply {i}: {}", describe(w, g)));
        }
    }
    ok &= report(
        notes.is_empty(),
        format!(
            "control device: returned each reply exactly as the stub wrote it ({} compared, \
             {differ} differ)",
            want.len().min(got.len())
        ),
        &notes,
    );
    let ctl_down: Vec<&[u8]> = ctl_downcalls.iter().map(|r| &r[..]).collect();
    let (same, notes) = same_list("downcall", &rep_down, &ctl_down);
    ok &= report(
        same,
        format!(
            "control device: delivered each downcall exactly as the stub wrote it ({} compared)",
            rep_down.len().min(ctl_down.len())
        ),
        &notes,
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coda_msg::CodaFid;

    fn getattr(unique: u32, size: u64, sec: i64) -> Vec<u8> {
        let mut r = GetattrOut {
            oh: OutHdr {
                opcode: coda_msg::CODA_GETATTR,
                unique,
                result: 0,
            },
            ..Default::default()
        };
        r.attr.va_size = size;
        r.attr.va_mtime.tv_sec = sec;
        r.attr.va_ctime.tv_nsec = sec;
        r.as_bytes().to_vec()
    }

    #[test]
    fn uniques_and_times_are_masked() {
        assert_eq!(
            compare_replies(&getattr(1, 5, 9), &getattr(7, 5, 9)),
            Same::Exactly
        );
        assert_eq!(
            compare_replies(&getattr(1, 5, 9), &getattr(7, 5, 10)),
            Same::Masked {
                times: true,
                fd: false
            }
        );
        match compare_replies(&getattr(1, 5, 9), &getattr(1, 6, 10)) {
            Same::No(d) => assert!(d.contains("va_size 5 vs 6"), "{d}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_successful_replies_are_masked() {
        let mut a = getattr(1, 5, 9);
        let mut b = getattr(1, 5, 10);
        for m in [&mut a, &mut b] {
            m[8..12].copy_from_slice(&2i32.to_ne_bytes());
        }
        assert!(matches!(compare_replies(&a, &b), Same::No(_)));
    }

    #[test]
    fn container_fds_are_masked() {
        let open = |fd| {
            OpenByFdOut {
                oh: OutHdr {
                    opcode: coda_msg::CODA_OPEN_BY_FD,
                    unique: 3,
                    result: 0,
                },
                fd,
            }
            .as_bytes()
            .to_vec()
        };
        assert_eq!(
            compare_replies(&open(8), &open(9)),
            Same::Masked {
                times: false,
                fd: true
            }
        );
        // Other replies keep every byte.
        let create = |unique, ino| {
            CreateOut {
                oh: OutHdr {
                    opcode: coda_msg::CODA_CREATE,
                    unique,
                    result: 0,
                },
                vfid: CodaFid {
                    opaque: [1, ino, 1, 0],
                },
                ..Default::default()
            }
            .as_bytes()
            .to_vec()
        };
        assert_eq!(compare_replies(&create(1, 4), &create(2, 4)), Same::Exactly);
        assert!(matches!(
            compare_replies(&create(1, 4), &create(1, 5)),
            Same::No(_)
        ));
    }

    #[test]
    fn writes_split() {
        let oh = |op, unique| {
            OutHdr {
                opcode: op,
                unique,
                result: 0,
            }
            .as_bytes()
            .to_vec()
        };
        let writes = vec![
            oh(coda_msg::CODA_ROOT, 1),
            oh(coda_msg::CODA_FLUSH, 0),
            oh(coda_msg::CODA_GETATTR, 2),
        ];
        let (replies, downcalls, dups) = split_writes(&writes);
        assert_eq!(replies.len(), 2);
        assert_eq!(downcalls, vec![&writes[1][..]]);
        assert_eq!(dups, 0);
    }
}
