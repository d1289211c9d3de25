// SPDX-License-Identifier: GPL-2.0

//! The checks behind the fuzz targets of `coda_msg.rs`.
//!
//! Every parser is run on arbitrary bytes and compared with a small reference model written
//! from the protocol's rules (not from the parser's code), so a parser that accepts what it
//! should refuse, or returns bytes from the wrong place, fails as surely as one that panics.
//! The round-trip targets build messages from arbitrary fields and names and parse them back.
//!
//! Each target is a plain function of the input bytes; `fuzz_targets/` only wraps them.

use coda_msg::*;
use core::fmt::Debug;
use core::mem::size_of;
use zerocopy::FromBytes;
use zerocopy::Immutable;
use zerocopy::IntoBytes;

/// Reads fields off the fuzz input; past its end every byte is zero, so any input is valid.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    fn u8(&mut self) -> u8 {
        let (b, rest) = self
            .rest
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.rest = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A value of a wire struct from the next `size_of::<T>()` bytes.
    fn value<T: FromBytes>(&mut self) -> T {
        let mut raw = vec![0u8; size_of::<T>()];
        for b in raw.iter_mut() {
            *b = self.u8();
        }
        T::read_from_bytes(&raw).expect("sized buffer")
    }

    /// A byte string of a length taken from the input (a u16, so names can exceed every
    /// limit), cut short by the end of the input.
    fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16()).min(self.rest.len());
        let (b, rest) = self.rest.split_at(n);
        self.rest = rest;
        b
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.rest)
    }
}

// ---------------------------------------------------------------------------------------------
// Reference model, from the protocol's rules.

/// Whether a whole message of `len` bytes with a `fixed`-byte fixed part is acceptable.
fn ref_size_ok(len: usize, fixed: usize) -> bool {
    len >= fixed && len <= VC_MAXMSGSIZE
}

/// Where the NUL-terminated string at `offset` lies, if acceptable: after the fixed part,
/// inside the message, 1 ..= `max_len` bytes then a NUL.
fn ref_string(msg: &[u8], fixed: usize, offset: i32, max_len: usize) -> Option<(usize, usize)> {
    if !ref_size_ok(msg.len(), fixed) || offset < 0 {
        return None;
    }
    let off = offset as usize;
    if off < fixed || off >= msg.len() {
        return None;
    }
    let n = msg[off..].iter().position(|&b| b == 0)?;
    (1..=max_len).contains(&n).then_some((off, n))
}

fn ref_name(msg: &[u8], fixed: usize, offset: i32) -> Option<(usize, usize)> {
    let (off, n) = ref_string(msg, fixed, offset, CODA_MAXNAMLEN)?;
    (!msg[off..off + n].contains(&b'/')).then_some((off, n))
}

fn ref_data(msg: &[u8], fixed: usize, offset: u64, len: u64) -> Option<(usize, usize)> {
    if !ref_size_ok(msg.len(), fixed) {
        return None;
    }
    let end = u128::from(offset) + u128::from(len);
    (offset >= fixed as u64 && end <= msg.len() as u128).then_some((offset as usize, len as usize))
}

/// A name as the builders must accept it.
fn ref_valid_name(s: &[u8]) -> bool {
    (1..=CODA_MAXNAMLEN).contains(&s.len()) && !s.contains(&0) && !s.contains(&b'/')
}

fn ref_valid_path(s: &[u8]) -> bool {
    (1..=CODA_MAXPATHLEN).contains(&s.len()) && !s.contains(&0)
}

/// Asserts that a parser's string agrees with the model: both refuse, or both give the same
/// bytes at the same place.
fn agree(msg: &[u8], got: Result<&[u8], MsgError>, want: Option<(usize, usize)>, what: &str) {
    match (got, want) {
        (Ok(s), Some((off, n))) => {
            assert_eq!(s.as_ptr(), msg[off..].as_ptr(), "{what}: wrong place");
            assert_eq!(s.len(), n, "{what}: wrong length");
        }
        (Err(_), None) => {}
        (got, want) => panic!("{what}: parser {got:?}, model {want:?}"),
    }
}

fn expect_size_error(msg: &[u8], fixed: usize, e: MsgError) {
    if msg.len() > VC_MAXMSGSIZE {
        assert_eq!(e, MsgError::TooLong);
    } else if msg.len() < fixed {
        assert_eq!(e, MsgError::Short);
    }
}

fn opcode_of(msg: &[u8]) -> Option<u32> {
    msg.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

// ---------------------------------------------------------------------------------------------
// Targets.

/// `read_msg` of every wire struct, `in_hdr`, `out_hdr`, and the opcode classifiers.
pub fn headers(data: &[u8]) {
    fn one<T: FromBytes + IntoBytes + Immutable + Debug>(msg: &[u8]) {
        let fixed = size_of::<T>();
        match read_msg::<T>(msg) {
            Ok(v) => {
                assert!(ref_size_ok(msg.len(), fixed));
                assert_eq!(v.as_bytes(), &msg[..fixed]);
            }
            Err(e) => {
                assert!(!ref_size_ok(msg.len(), fixed));
                expect_size_error(msg, fixed, e);
            }
        }
    }
    macro_rules! all {
        ($($t:ty),* $(,)?) => { $(one::<$t>(data);)* };
    }
    coda_msg::for_each_wire_struct!(all);
    assert_eq!(in_hdr(data).ok(), read_msg::<InHdr>(data).ok());
    assert_eq!(out_hdr(data).ok(), read_msg::<OutHdr>(data).ok());

    if let Some(op) = opcode_of(data) {
        assert!(!(is_upcall(op) && is_downcall(op)), "op {op} is both");
        assert!(!is_uninterruptible(op) || is_upcall(op));
        let known = is_upcall(op) || is_downcall(op) || op == CODA_SIGNAL;
        assert_eq!(opcode_name(op) != "?", known, "name of op {op}");
        assert!(
            !known || op < CODA_NCALLS,
            "op {op} is past the counted range"
        );
    }
}

/// The parsers of messages that carry names, on arbitrary bytes. The first byte picks the
/// parser; its top bit makes the message carry the right opcode, so the fuzzer gets past the
/// opcode check at once.
pub fn named(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut msg = rest.to_vec();
    let opcodes = [
        CODA_LOOKUP,
        CODA_CREATE,
        CODA_REMOVE,
        CODA_LINK,
        CODA_MKDIR,
        CODA_RMDIR,
        CODA_RENAME,
        CODA_SYMLINK,
    ];
    let which = usize::from(sel & 0x7f) % opcodes.len();
    let op = opcodes[which];
    if sel & 0x80 != 0 && msg.len() >= 4 {
        msg[..4].copy_from_slice(&op.to_ne_bytes());
    }
    let msg = &msg[..];
    let op_ok = opcode_of(msg) == Some(op);

    /// One name at the offset in `field`; returns whether the model accepts it.
    fn one_name<T: FromBytes + IntoBytes + Immutable + Copy + Debug>(
        msg: &[u8],
        op_ok: bool,
        r: Result<(T, &[u8]), MsgError>,
        field: impl Fn(&T) -> i32,
    ) {
        let fixed = size_of::<T>();
        let model = read_msg::<T>(msg)
            .ok()
            .filter(|_| op_ok)
            .and_then(|m| ref_name(msg, fixed, field(&m)));
        match r {
            Ok((m, name)) => {
                assert_eq!(m.as_bytes(), &msg[..fixed]);
                agree(msg, Ok(name), model, "name");
            }
            Err(e) => {
                assert!(model.is_none(), "refused {e:?} a message the model accepts");
                expect_size_error(msg, fixed, e);
                if ref_size_ok(msg.len(), fixed) && !op_ok {
                    assert_eq!(e, MsgError::BadOpcode);
                }
            }
        }
    }

    match op {
        CODA_LOOKUP => one_name(msg, op_ok, parse_lookup(msg), |m: &LookupIn| m.name),
        CODA_CREATE => one_name(msg, op_ok, parse_create(msg), |m: &CreateIn| m.name),
        CODA_REMOVE => one_name(msg, op_ok, parse_remove(msg), |m: &RemoveIn| m.name),
        CODA_LINK => one_name(msg, op_ok, parse_link(msg), |m: &LinkIn| m.tname),
        CODA_MKDIR => one_name(msg, op_ok, parse_mkdir(msg), |m: &MkdirIn| m.name),
        CODA_RMDIR => one_name(msg, op_ok, parse_rmdir(msg), |m: &RmdirIn| m.name),
        CODA_RENAME => {
            let fixed = size_of::<RenameIn>();
            let model = read_msg::<RenameIn>(msg)
                .ok()
                .filter(|_| op_ok)
                .and_then(|m| {
                    Some((
                        ref_name(msg, fixed, m.srcname)?,
                        ref_name(msg, fixed, m.destname)?,
                    ))
                });
            match parse_rename(msg) {
                Ok((m, src, dst)) => {
                    assert_eq!(m.as_bytes(), &msg[..fixed]);
                    let (s, d) = model.expect("parser accepted, model refused");
                    agree(msg, Ok(src), Some(s), "rename source");
                    agree(msg, Ok(dst), Some(d), "rename destination");
                }
                Err(e) => {
                    assert!(model.is_none(), "refused {e:?} a rename the model accepts");
                    expect_size_error(msg, fixed, e);
                }
            }
        }
        CODA_SYMLINK => {
            let fixed = size_of::<SymlinkIn>();
            let model = read_msg::<SymlinkIn>(msg)
                .ok()
                .filter(|_| op_ok)
                .and_then(|m| {
                    Some((
                        ref_string(msg, fixed, m.srcname, CODA_MAXPATHLEN)?,
                        ref_name(msg, fixed, m.tname)?,
                    ))
                });
            match parse_symlink(msg) {
                Ok((m, target, name)) => {
                    assert_eq!(m.as_bytes(), &msg[..fixed]);
                    let (t, n) = model.expect("parser accepted, model refused");
                    agree(msg, Ok(target), Some(t), "symlink target");
                    agree(msg, Ok(name), Some(n), "symlink name");
                }
                Err(e) => {
                    assert!(model.is_none(), "refused {e:?} a symlink the model accepts");
                    expect_size_error(msg, fixed, e);
                }
            }
        }
        _ => unreachable!(),
    }
}

/// The parsers of messages that carry data (CODA_IOCTL both ways, CODA_READLINK replies).
pub fn data(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut msg = rest.to_vec();
    let (op, which) = match sel % 3 {
        0 => (CODA_IOCTL, 0),
        1 => (CODA_IOCTL, 1),
        _ => (CODA_READLINK, 2),
    };
    if sel & 0x80 != 0 && msg.len() >= 4 {
        msg[..4].copy_from_slice(&op.to_ne_bytes());
    }
    let msg = &msg[..];
    let op_ok = opcode_of(msg) == Some(op);

    fn check<T: FromBytes + IntoBytes + Immutable + Copy + Debug>(
        msg: &[u8],
        op_ok: bool,
        r: Result<(T, &[u8]), MsgError>,
        result: impl Fn(&T) -> i32,
        len_off: impl Fn(&T) -> (i32, u64),
        max: usize,
    ) {
        let fixed = size_of::<T>();
        let model = read_msg::<T>(msg).ok().filter(|_| op_ok).and_then(|m| {
            if result(&m) != 0 {
                return Some(None);
            }
            let (len, off) = len_off(&m);
            if len < 0 || len as usize > max {
                return None;
            }
            ref_data(msg, fixed, off, len as u64).map(Some)
        });
        match (r, model) {
            (Ok((m, d)), Some(want)) => {
                assert_eq!(m.as_bytes(), &msg[..fixed]);
                match want {
                    None => assert!(d.is_empty(), "an error reply carries no data"),
                    Some(w) => agree(msg, Ok(d), Some(w), "data"),
                }
            }
            (Err(e), None) => expect_size_error(msg, fixed, e),
            (r, m) => panic!("parser {r:?}, model {m:?}"),
        }
    }

    match which {
        0 => check(
            msg,
            op_ok,
            parse_ioctl_in(msg),
            |_| 0,
            |m: &IoctlIn| (m.len, m.data),
            VC_MAXDATASIZE as usize,
        ),
        1 => check(
            msg,
            op_ok,
            parse_ioctl_out(msg),
            |m: &IoctlOut| m.oh.result,
            |m: &IoctlOut| (m.len, m.data),
            VC_MAXDATASIZE as usize,
        ),
        _ => check(
            msg,
            op_ok,
            parse_readlink_out(msg),
            |m: &ReadlinkOut| m.oh.result,
            |m: &ReadlinkOut| (m.count, m.data),
            CODA_MAXPATHLEN,
        ),
    }
}

/// `check_downcall`, the check the module makes on every downcall Venus writes.
pub fn downcall(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut msg = rest.to_vec();
    // Half the time a downcall opcode, so sizes get explored for each.
    if sel & 0x80 != 0 && msg.len() >= 4 {
        let op = CODA_REPLACE + u32::from(sel & 0x7f) % (CODA_PURGEFID - CODA_REPLACE + 1);
        msg[..4].copy_from_slice(&op.to_ne_bytes());
    }
    let msg = &msg[..];
    let want = opcode_of(msg)
        .filter(|_| msg.len() >= OUT_HDR_SIZE)
        .and_then(|op| {
            let sizes: &[usize] = match op {
                CODA_FLUSH => &[OUT_HDR_SIZE, OUTPUT_ARGS_SIZE],
                CODA_PURGEUSER => &[size_of::<PurgeuserOut>()],
                CODA_ZAPFILE => &[size_of::<ZapfileOut>()],
                CODA_ZAPDIR => &[size_of::<ZapdirOut>()],
                CODA_PURGEFID => &[size_of::<PurgefidOut>()],
                CODA_REPLACE => &[size_of::<ReplaceOut>()],
                _ => &[],
            };
            sizes.contains(&msg.len()).then_some(op)
        });
    let got = check_downcall(msg);
    assert_eq!(
        got.ok(),
        want,
        "check_downcall {got:?} for {} bytes",
        msg.len()
    );
    if let Ok(op) = got {
        assert!(is_downcall(op));
        assert!(
            msg.len() <= OUTPUT_ARGS_SIZE,
            "the module relies on this bound"
        );
    }
}

/// `string_at`, `name_at` and `data_at` with arbitrary fixed parts, offsets and limits.
pub fn offsets(data: &[u8]) {
    let mut inp = Input::new(data);
    let fixed = usize::from(inp.u16());
    let offset = inp.u32() as i32;
    let max_len = usize::from(inp.u16());
    let off64 = inp.u64();
    let len64 = inp.u64();
    // Small offsets are the interesting ones; keep them near the message most of the time.
    let off64 = if off64 >> 63 == 0 {
        off64 % 0x4000
    } else {
        off64
    };
    let len64 = if len64 >> 63 == 0 {
        len64 % 0x4000
    } else {
        len64
    };
    let msg = inp.rest();
    agree(
        msg,
        string_at(msg, fixed, offset, max_len),
        ref_string(msg, fixed, offset, max_len),
        "string_at",
    );
    agree(
        msg,
        name_at(msg, fixed, offset),
        ref_name(msg, fixed, offset),
        "name_at",
    );
    agree(
        msg,
        data_at(msg, fixed, off64, len64),
        ref_data(msg, fixed, off64, len64),
        "data_at",
    );
}

/// Builds a named request from arbitrary fields and names and parses it back. The builder
/// must accept exactly the valid names, write no byte it was not given (the output does not
/// depend on what the buffer held), refuse a short buffer cleanly, and the parser must give
/// back the same fields and names.
pub fn roundtrip_named(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8() % 8;
    let cap = usize::from(inp.u16()) % (VC_MAXMSGSIZE + 1);

    /// Builds into a zeroed full-size buffer, a 0xa5-filled one and one of `cap` bytes.
    fn build(
        cap: usize,
        f: impl Fn(&mut [u8]) -> Result<usize, MsgError>,
    ) -> Result<Vec<u8>, MsgError> {
        let mut a = vec![0u8; VC_MAXMSGSIZE];
        let mut b = vec![0xa5u8; VC_MAXMSGSIZE];
        let ra = f(&mut a);
        let rb = f(&mut b);
        assert_eq!(ra, rb);
        let mut small = vec![0x5au8; cap];
        match (f(&mut small), ra) {
            (Ok(n), Ok(m)) => {
                assert_eq!(n, m);
                assert_eq!(small[..n], a[..n]);
            }
            (Err(MsgError::NoSpace), Ok(n)) => assert!(cap < n + 4, "NoSpace with room"),
            (Err(e), Err(f)) => assert!(e == f || e == MsgError::NoSpace),
            (s, f) => panic!("small buffer {s:?}, full buffer {f:?}"),
        }
        let n = ra?;
        assert_eq!(a[..n], b[..n], "the builder left bytes it did not write");
        assert!(n <= VC_MAXMSGSIZE);
        a.truncate(n);
        Ok(a)
    }

    macro_rules! one {
        ($t:ty, $op:expr, $build:ident, $parse:ident, $field:ident) => {{
            let mut m: $t = inp.value();
            m.ih.opcode = $op;
            let name = inp.bytes();
            match build(cap, |buf| $build(buf, m, name)) {
                Ok(msg) => {
                    assert!(ref_valid_name(name), "built with name {name:?}");
                    let (p, got) = $parse(&msg).expect("parse what was built");
                    m.$field = size_of::<$t>() as i32;
                    assert_eq!(p, m);
                    assert_eq!(got, name);
                }
                Err(e) => assert!(!ref_valid_name(name), "refused {e:?} for {name:?}"),
            }
        }};
    }

    match sel {
        0 => one!(LookupIn, CODA_LOOKUP, build_lookup, parse_lookup, name),
        1 => one!(CreateIn, CODA_CREATE, build_create, parse_create, name),
        2 => one!(RemoveIn, CODA_REMOVE, build_remove, parse_remove, name),
        3 => one!(LinkIn, CODA_LINK, build_link, parse_link, tname),
        4 => one!(MkdirIn, CODA_MKDIR, build_mkdir, parse_mkdir, name),
        5 => one!(RmdirIn, CODA_RMDIR, build_rmdir, parse_rmdir, name),
        6 => {
            let mut m: RenameIn = inp.value();
            m.ih.opcode = CODA_RENAME;
            let (src, dst) = (inp.bytes(), inp.bytes());
            let ok = ref_valid_name(src) && ref_valid_name(dst);
            match build(cap, |buf| build_rename(buf, m, src, dst)) {
                Ok(msg) => {
                    assert!(ok, "built rename {src:?} -> {dst:?}");
                    let (p, s, d) = parse_rename(&msg).expect("parse what was built");
                    assert_eq!((s, d), (src, dst));
                    assert_eq!(p.ih, m.ih);
                    assert_eq!((p.source_fid, p.dest_fid), (m.source_fid, m.dest_fid));
                }
                Err(e) => assert!(!ok, "refused {e:?} for {src:?} -> {dst:?}"),
            }
        }
        _ => {
            let mut m: SymlinkIn = inp.value();
            m.ih.opcode = CODA_SYMLINK;
            let (target, name) = (inp.bytes(), inp.bytes());
            let ok = ref_valid_path(target) && ref_valid_name(name);
            match build(cap, |buf| build_symlink(buf, m, target, name)) {
                Ok(msg) => {
                    assert!(ok, "built symlink {name:?} -> {target:?}");
                    let (p, t, n) = parse_symlink(&msg).expect("parse what was built");
                    assert_eq!((t, n), (target, name));
                    assert_eq!((p.ih, p.vfid, p.attr), (m.ih, m.vfid, m.attr));
                }
                Err(e) => assert!(!ok, "refused {e:?} for {name:?} -> {target:?}"),
            }
        }
    }
}

/// Builds CODA_IOCTL requests and replies and CODA_READLINK replies with arbitrary data and
/// parses them back.
pub fn roundtrip_data(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8() % 3;
    let cap = usize::from(inp.u16()) % (VC_MAXMSGSIZE + 1);
    let mut buf = vec![0u8; VC_MAXMSGSIZE];
    let mut small = vec![0u8; cap];
    match sel {
        0 => {
            let mut m: IoctlIn = inp.value();
            m.ih.opcode = CODA_IOCTL;
            let d = inp.bytes();
            let r = build_ioctl_in(&mut buf, m, d);
            let rs = build_ioctl_in(&mut small, m, d);
            assert!(rs.is_err() || rs == r);
            match r {
                Ok(n) => {
                    assert!(d.len() <= VC_MAXDATASIZE as usize);
                    let (p, got) = parse_ioctl_in(&buf[..n]).expect("parse what was built");
                    assert_eq!(got, d);
                    assert_eq!(
                        (p.ih, p.vfid, p.cmd, p.rwflag),
                        (m.ih, m.vfid, m.cmd, m.rwflag)
                    );
                }
                Err(e) => {
                    assert!(d.len() > VC_MAXDATASIZE as usize, "refused {e:?}");
                }
            }
        }
        1 => {
            let mut m: IoctlOut = inp.value();
            m.oh.opcode = CODA_IOCTL;
            let d = inp.bytes();
            let r = build_ioctl_out(&mut buf, m, d);
            let rs = build_ioctl_out(&mut small, m, d);
            assert!(rs.is_err() || rs == r);
            match r {
                Ok(n) => {
                    let (p, got) = parse_ioctl_out(&buf[..n]).expect("parse what was built");
                    assert_eq!(p.oh, m.oh);
                    if m.oh.result == 0 {
                        assert_eq!(got, d);
                    } else {
                        assert!(got.is_empty());
                    }
                }
                Err(e) => {
                    assert!(d.len() > VC_MAXDATASIZE as usize, "refused {e:?}");
                }
            }
        }
        _ => {
            let mut m: ReadlinkOut = inp.value();
            m.oh.opcode = CODA_READLINK;
            let d = inp.bytes();
            let r = build_readlink_out(&mut buf, m, d);
            let rs = build_readlink_out(&mut small, m, d);
            assert!(rs.is_err() || rs == r);
            match r {
                Ok(n) => {
                    assert_eq!(buf[n - 1], 0, "Venus ends a link target with a NUL");
                    let (p, got) = parse_readlink_out(&buf[..n]).expect("parse what was built");
                    assert_eq!(p.oh, m.oh);
                    if m.oh.result == 0 {
                        assert_eq!(got, d);
                    } else {
                        assert!(got.is_empty());
                    }
                }
                Err(e) => assert!(d.len() > CODA_MAXPATHLEN, "refused {e:?}"),
            }
        }
    }
}

/// `put_struct`/`read_msg` of every wire struct, and `put_string`/`put_data` at arbitrary
/// offsets into buffers of arbitrary size: never out of bounds, padding zeroed.
pub fn roundtrip_put(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let cap = usize::from(inp.u16()) % (VC_MAXMSGSIZE + 1);
    // Offsets stay in the range a message can have: builders only pass offsets they computed
    // from struct sizes and earlier strings.
    let offset = usize::from(inp.u16()) % (2 * VC_MAXMSGSIZE);
    let max_len = usize::from(inp.u16()) % (CODA_MAXPATHLEN + 2);

    fn structs<T: FromBytes + IntoBytes + Immutable + PartialEq + Debug>(
        inp: &mut Input<'_>,
        cap: usize,
    ) {
        let v: T = inp.value();
        let mut buf = vec![0xa5u8; cap];
        match put_struct(&mut buf, &v) {
            Ok(n) => {
                assert_eq!(n, size_of::<T>());
                assert_eq!(read_msg::<T>(&buf[..n]), Ok(v));
                assert!(buf[n..].iter().all(|&b| b == 0xa5), "wrote past the struct");
            }
            Err(e) => {
                assert_eq!(e, MsgError::NoSpace);
                assert!(cap < size_of::<T>());
            }
        }
    }

    match sel % 8 {
        0 => structs::<InHdr>(&mut inp, cap),
        1 => structs::<CreateIn>(&mut inp, cap),
        2 => structs::<GetattrOut>(&mut inp, cap),
        3 => structs::<PsdevStats>(&mut inp, cap),
        4 => structs::<CtlCall>(&mut inp, cap),
        5 => structs::<ReplaceOut>(&mut inp, cap),
        6 => {
            let s = inp.bytes();
            let mut buf = vec![0xa5u8; cap];
            match put_string(&mut buf, offset, s, max_len) {
                Ok(end) => {
                    assert!(!s.is_empty() && !s.contains(&0) && s.len() <= max_len);
                    assert_eq!(end % 4, offset % 4, "ends on the 4-byte grid of its start");
                    assert!(end > offset + s.len() && end <= offset + s.len() + 4);
                    assert_eq!(&buf[offset..offset + s.len()], s);
                    assert!(buf[offset + s.len()..end].iter().all(|&b| b == 0));
                    assert!(buf[..offset].iter().all(|&b| b == 0xa5));
                    assert!(buf[end..].iter().all(|&b| b == 0xa5));
                }
                Err(MsgError::NoSpace) => {
                    assert!(offset + s.len() + 1 > cap || offset + (s.len() & !3) + 4 > cap);
                    assert!(buf.iter().all(|&b| b == 0xa5), "wrote before refusing");
                }
                Err(MsgError::BadName) => assert!(s.is_empty() || s.contains(&0)),
                Err(MsgError::TooLong) => assert!(s.len() > max_len),
                Err(e) => panic!("put_string: {e:?}"),
            }
        }
        _ => {
            let s = inp.bytes();
            let mut buf = vec![0xa5u8; cap];
            match put_data(&mut buf, offset, s) {
                Ok(end) => {
                    assert_eq!(end, offset + s.len());
                    assert_eq!(&buf[offset..end], s);
                }
                Err(e) => {
                    assert_eq!(e, MsgError::NoSpace);
                    assert!(offset + s.len() > cap);
                }
            }
        }
    }
}
