// SPDX-License-Identifier: GPL-2.0

//! Round trips of every message, and the parsers' refusals.

use coda_msg::*;
use core::fmt::Debug;
use core::mem::size_of;
use zerocopy::FromBytes;
use zerocopy::Immutable;
use zerocopy::IntoBytes;

fn ih(opcode: u32) -> InHdr {
    InHdr {
        opcode,
        unique: 77,
        pid: 1234,
        pgid: 1200,
        uid: 1000,
    }
}

fn oh(opcode: u32) -> OutHdr {
    OutHdr {
        opcode,
        unique: 77,
        result: 0,
    }
}

const FID: CodaFid = CodaFid {
    opaque: [1, 2, 3, 0xdead_beef],
};

/// Fills a `T` from a byte pattern (padding zero), writes it, reads it back.
fn roundtrip<T: FromBytes + IntoBytes + Immutable + PartialEq + Debug>() {
    let mut pattern: Vec<u8> = (0..size_of::<T>()).map(|i| (i * 7 + 3) as u8).collect();
    let v = T::read_from_bytes(&pattern).unwrap();
    let mut buf = [0u8; VC_MAXMSGSIZE];
    assert_eq!(put_struct(&mut buf, &v), Ok(size_of::<T>()));
    assert_eq!(&buf[..size_of::<T>()], v.as_bytes());
    let back: T = read_msg(&buf[..size_of::<T>()]).unwrap();
    assert_eq!(back, v);
    // Trailing bytes are allowed (the C client pads messages), a short message is not.
    let back: T = read_msg(&buf[..size_of::<T>() + 9]).unwrap();
    assert_eq!(back, v);
    assert_eq!(
        read_msg::<T>(&buf[..size_of::<T>() - 1]),
        Err(MsgError::Short)
    );
    assert_eq!(
        read_msg::<T>(&[0; VC_MAXMSGSIZE + 1]),
        Err(MsgError::TooLong)
    );
    assert_eq!(
        put_struct(&mut buf[..size_of::<T>() - 1], &v),
        Err(MsgError::NoSpace)
    );
    pattern.fill(0);
    assert_eq!(T::read_from_bytes(&pattern).unwrap(), T::new_zeroed());
}

macro_rules! roundtrip_all {
    ($($t:ty),* $(,)?) => {
        $(roundtrip::<$t>();)*
    };
}

#[test]
fn every_struct_roundtrips() {
    coda_msg::for_each_wire_struct!(roundtrip_all);
}

#[test]
fn headers() {
    let mut buf = [0u8; 64];
    put_struct(&mut buf, &ih(CODA_GETATTR)).unwrap();
    assert_eq!(in_hdr(&buf[..IN_HDR_SIZE]), Ok(ih(CODA_GETATTR)));
    assert_eq!(in_hdr(&buf[..IN_HDR_SIZE - 1]), Err(MsgError::Short));
    put_struct(&mut buf, &oh(CODA_FLUSH)).unwrap();
    assert_eq!(out_hdr(&buf[..OUT_HDR_SIZE]), Ok(oh(CODA_FLUSH)));
    assert_eq!(out_hdr(&buf[..OUT_HDR_SIZE - 1]), Err(MsgError::Short));
    // Unaligned buffers are fine.
    let mut big = [0u8; 300];
    let m = GetattrOut {
        oh: oh(CODA_GETATTR),
        attr: CodaVattr {
            va_size: 12345,
            ..Default::default()
        },
        ..Default::default()
    };
    put_struct(&mut big[1..], &m).unwrap();
    assert_eq!(read_msg::<GetattrOut>(&big[1..]), Ok(m));
}

#[test]
fn lookup() {
    let mut buf = [0u8; VC_MAXMSGSIZE];
    let m = LookupIn {
        ih: ih(CODA_LOOKUP),
        vfid: FID,
        name: 0,
        flags: CLU_CASE_SENSITIVE,
    };
    let n = build_lookup(&mut buf, m, b"hello").unwrap();
    assert_eq!(n, size_of::<LookupIn>() + 6);
    assert_eq!(&buf[44..50], b"hello\0");
    let (p, name) = parse_lookup(&buf[..n]).unwrap();
    assert_eq!(name, b"hello");
    assert_eq!(p.name, 44);
    assert_eq!(p.vfid, FID);
    assert_eq!(p.flags, CLU_CASE_SENSITIVE);

    // As the C client sends it: padded to the reply's size with zeros.
    let (_, name) = parse_lookup(&buf[..64]).unwrap();
    assert_eq!(name, b"hello");

    // The longest name; one longer.
    let long = [b'x'; CODA_MAXNAMLEN];
    let n = build_lookup(&mut buf, m, &long).unwrap();
    assert_eq!(parse_lookup(&buf[..n]).unwrap().1, &long[..]);
    assert_eq!(
        build_lookup(&mut buf, m, &[b'x'; CODA_MAXNAMLEN + 1]),
        Err(MsgError::TooLong)
    );
}

/// Builds a lookup message by hand with the given name offset and trailing bytes.
fn raw_lookup(offset: i32, tail: &[u8]) -> Vec<u8> {
    let m = LookupIn {
        ih: ih(CODA_LOOKUP),
        vfid: FID,
        name: offset,
        flags: 0,
    };
    let mut v = m.as_bytes().to_vec();
    v.extend_from_slice(tail);
    v
}

#[test]
fn name_errors() {
    // Short: not even the fixed part.
    let msg = raw_lookup(44, b"a\0");
    assert_eq!(parse_lookup(&msg[..43]), Err(MsgError::Short));
    assert_eq!(parse_lookup(&[]), Err(MsgError::Short));
    // Too long a message.
    let mut huge = raw_lookup(44, b"a\0");
    huge.resize(VC_MAXMSGSIZE + 1, 0);
    assert_eq!(parse_lookup(&huge), Err(MsgError::TooLong));
    // Offsets: negative, into the fixed part, at the end, past the end.
    assert_eq!(
        parse_lookup(&raw_lookup(-1, b"a\0")),
        Err(MsgError::BadOffset)
    );
    assert_eq!(
        parse_lookup(&raw_lookup(0, b"a\0")),
        Err(MsgError::BadOffset)
    );
    assert_eq!(
        parse_lookup(&raw_lookup(43, b"a\0")),
        Err(MsgError::BadOffset)
    );
    assert_eq!(
        parse_lookup(&raw_lookup(46, b"a\0")),
        Err(MsgError::BadOffset)
    );
    assert_eq!(
        parse_lookup(&raw_lookup(1000, b"a\0")),
        Err(MsgError::BadOffset)
    );
    assert_eq!(
        parse_lookup(&raw_lookup(i32::MAX, b"a\0")),
        Err(MsgError::BadOffset)
    );
    // A later offset inside the message is fine.
    assert_eq!(
        parse_lookup(&raw_lookup(45, b"a\0")),
        Err(MsgError::BadName)
    );
    assert_eq!(parse_lookup(&raw_lookup(45, b"ab\0")).unwrap().1, b"b");
    // No NUL before the end of the message.
    assert_eq!(
        parse_lookup(&raw_lookup(44, b"abc")),
        Err(MsgError::Unterminated)
    );
    // Longer than CODA_MAXNAMLEN, with or without a NUL later.
    let mut long = vec![b'x'; CODA_MAXNAMLEN + 1];
    assert_eq!(parse_lookup(&raw_lookup(44, &long)), Err(MsgError::TooLong));
    long.push(0);
    assert_eq!(parse_lookup(&raw_lookup(44, &long)), Err(MsgError::TooLong));
    // Empty, or holding a '/'.
    assert_eq!(parse_lookup(&raw_lookup(44, b"\0")), Err(MsgError::BadName));
    assert_eq!(
        parse_lookup(&raw_lookup(44, b"a/b\0")),
        Err(MsgError::BadName)
    );
    // Wrong opcode.
    let mut msg = raw_lookup(44, b"a\0");
    msg[0] = CODA_CREATE as u8;
    assert_eq!(parse_lookup(&msg), Err(MsgError::BadOpcode));
    // Builders refuse what parsers refuse.
    let mut buf = [0u8; 128];
    let m = LookupIn::default();
    assert_eq!(build_lookup(&mut buf, m, b""), Err(MsgError::BadName));
    assert_eq!(build_lookup(&mut buf, m, b"a/b"), Err(MsgError::BadName));
    assert_eq!(build_lookup(&mut buf, m, b"a\0b"), Err(MsgError::BadName));
    assert_eq!(
        build_lookup(&mut buf[..45], m, b"ab"),
        Err(MsgError::NoSpace)
    );
}

#[test]
fn create_remove_link_mkdir_rmdir() {
    let mut buf = [0u8; VC_MAXMSGSIZE];

    let m = CreateIn {
        ih: ih(CODA_CREATE),
        vfid: FID,
        excl: 1,
        mode: 0o100644,
        ..Default::default()
    };
    let n = build_create(&mut buf, m, b"file.txt").unwrap();
    assert_eq!(n, 192 + 9);
    let (p, name) = parse_create(&buf[..n]).unwrap();
    assert_eq!(
        (p.excl, p.mode, p.name, name),
        (1, 0o100644, 192, &b"file.txt"[..])
    );
    assert_eq!(parse_remove(&buf[..n]), Err(MsgError::BadOpcode));

    let m = RemoveIn {
        ih: ih(CODA_REMOVE),
        vfid: FID,
        name: 0,
    };
    let n = build_remove(&mut buf, m, b"gone").unwrap();
    assert_eq!(n, 40 + 5);
    let (p, name) = parse_remove(&buf[..n]).unwrap();
    assert_eq!((p.vfid, p.name, name), (FID, 40, &b"gone"[..]));

    let m = LinkIn {
        ih: ih(CODA_LINK),
        source_fid: FID,
        dest_fid: CodaFid { opaque: [9; 4] },
        tname: 0,
    };
    let n = build_link(&mut buf, m, b"hard").unwrap();
    let (p, name) = parse_link(&buf[..n]).unwrap();
    assert_eq!(
        (p.source_fid, p.dest_fid.opaque, p.tname),
        (FID, [9; 4], 56)
    );
    assert_eq!(name, b"hard");

    let m = MkdirIn {
        ih: ih(CODA_MKDIR),
        vfid: FID,
        attr: CodaVattr {
            va_mode: 0o755,
            ..Default::default()
        },
        ..Default::default()
    };
    let n = build_mkdir(&mut buf, m, b"dir").unwrap();
    let (p, name) = parse_mkdir(&buf[..n]).unwrap();
    assert_eq!((p.attr.va_mode, p.name, name), (0o755, 184, &b"dir"[..]));

    let m = RmdirIn {
        ih: ih(CODA_RMDIR),
        vfid: FID,
        name: 0,
    };
    let n = build_rmdir(&mut buf, m, b"dir").unwrap();
    let (p, name) = parse_rmdir(&buf[..n]).unwrap();
    assert_eq!((p.name, name), (40, &b"dir"[..]));
    assert_eq!(parse_rmdir(&buf[..n - 1]), Err(MsgError::Unterminated));
}

#[test]
fn rename() {
    let mut buf = [0u8; VC_MAXMSGSIZE];
    let m = RenameIn {
        ih: ih(CODA_RENAME),
        source_fid: FID,
        dest_fid: CodaFid { opaque: [5; 4] },
        ..Default::default()
    };
    let n = build_rename(&mut buf, m, b"abcd", b"xy").unwrap();
    // As venus_rename() lays it out: the second name at the first's length rounded up past
    // its NUL to a multiple of 4.
    assert_eq!(n, 60 + 8 + 3);
    let (p, src, dst) = parse_rename(&buf[..n]).unwrap();
    assert_eq!((p.srcname, p.destname), (60, 68));
    assert_eq!((src, dst), (&b"abcd"[..], &b"xy"[..]));
    assert_eq!(p.dest_fid.opaque, [5; 4]);

    // A bad second offset is caught too.
    let mut bad = buf[..n].to_vec();
    bad[56..60].copy_from_slice(&(n as i32).to_ne_bytes());
    assert_eq!(parse_rename(&bad), Err(MsgError::BadOffset));
}

#[test]
fn symlink() {
    let mut buf = [0u8; VC_MAXMSGSIZE];
    let m = SymlinkIn {
        ih: ih(CODA_SYMLINK),
        vfid: FID,
        ..Default::default()
    };
    let n = build_symlink(&mut buf, m, b"../some/target", b"link").unwrap();
    let (p, target, name) = parse_symlink(&buf[..n]).unwrap();
    assert_eq!((target, name), (&b"../some/target"[..], &b"link"[..]));
    assert_eq!((p.srcname, p.tname), (184, 184 + 16));
    assert_eq!(n, 184 + 16 + 5);

    // Targets may hold '/', up to CODA_MAXPATHLEN bytes; names may not.
    let long = [b'/'; CODA_MAXPATHLEN];
    let n = build_symlink(&mut buf, m, &long, b"l").unwrap();
    assert_eq!(parse_symlink(&buf[..n]).unwrap().1, &long[..]);
    assert_eq!(
        build_symlink(&mut buf, m, &[b'a'; CODA_MAXPATHLEN + 1], b"l"),
        Err(MsgError::TooLong)
    );
    assert_eq!(
        build_symlink(&mut buf, m, b"t", b"a/b"),
        Err(MsgError::BadName)
    );
}

#[test]
fn readlink_and_ioctl_data() {
    let mut buf = [0u8; VC_MAXMSGSIZE];
    let m = ReadlinkOut {
        oh: oh(CODA_READLINK),
        ..Default::default()
    };
    let n = build_readlink_out(&mut buf, m, b"/etc/passwd").unwrap();
    assert_eq!(n, 24 + 11 + 1);
    let (p, target) = parse_readlink_out(&buf[..n]).unwrap();
    assert_eq!((p.count, p.data, target), (11, 24, &b"/etc/passwd"[..]));
    // Without the NUL.
    assert_eq!(parse_readlink_out(&buf[..n - 1]).unwrap().1, b"/etc/passwd");
    // Data running past the end, offsets inside the fixed part or far away, bad counts.
    assert_eq!(parse_readlink_out(&buf[..n - 2]), Err(MsgError::BadOffset));
    let mut bad = buf[..n].to_vec();
    bad[16..24].copy_from_slice(&8u64.to_ne_bytes());
    assert_eq!(parse_readlink_out(&bad), Err(MsgError::BadOffset));
    bad[16..24].copy_from_slice(&u64::MAX.to_ne_bytes());
    assert_eq!(parse_readlink_out(&bad), Err(MsgError::BadOffset));
    let mut bad = buf[..n].to_vec();
    bad[12..16].copy_from_slice(&(-1i32).to_ne_bytes());
    assert_eq!(parse_readlink_out(&bad), Err(MsgError::BadLength));
    bad[12..16].copy_from_slice(&(CODA_MAXPATHLEN as i32 + 1).to_ne_bytes());
    assert_eq!(parse_readlink_out(&bad), Err(MsgError::TooLong));
    // An error reply carries no data.
    let e = ReadlinkOut {
        oh: OutHdr {
            result: 2,
            ..oh(CODA_READLINK)
        },
        ..Default::default()
    };
    assert_eq!(parse_readlink_out(e.as_bytes()), Ok((e, &[][..])));
    assert_eq!(
        build_readlink_out(&mut buf, m, &[b'a'; CODA_MAXPATHLEN + 1]),
        Err(MsgError::TooLong)
    );

    let data: Vec<u8> = (0..=255).collect();
    let m = IoctlIn {
        ih: ih(CODA_IOCTL),
        vfid: FID,
        cmd: 42,
        ..Default::default()
    };
    let n = build_ioctl_in(&mut buf, m, &data).unwrap();
    assert_eq!(n, 56 + 256);
    let (p, d) = parse_ioctl_in(&buf[..n]).unwrap();
    assert_eq!((p.cmd, p.len, p.data, d), (42, 256, 56, &data[..]));
    assert_eq!(parse_ioctl_in(&buf[..n - 1]), Err(MsgError::BadOffset));
    let big = vec![0u8; VC_MAXDATASIZE as usize + 1];
    assert_eq!(build_ioctl_in(&mut buf, m, &big), Err(MsgError::TooLong));

    let m = IoctlOut {
        oh: oh(CODA_IOCTL),
        ..Default::default()
    };
    let n = build_ioctl_out(&mut buf, m, &data[..10]).unwrap();
    let (p, d) = parse_ioctl_out(&buf[..n]).unwrap();
    assert_eq!((p.len, p.data, d), (10, 24, &data[..10]));
    let mut bad = buf[..n].to_vec();
    bad[12..16].copy_from_slice(&(VC_MAXDATASIZE as i32 + 1).to_ne_bytes());
    assert_eq!(parse_ioctl_out(&bad), Err(MsgError::TooLong));
}

#[test]
fn downcalls() {
    let fid_msg = |op: u32| {
        ZapfileOut {
            oh: oh(op),
            fid: FID,
        }
        .as_bytes()
        .to_vec()
    };
    let purgeuser = PurgeuserOut {
        oh: oh(CODA_PURGEUSER),
        uid: 0,
    };
    let replace = ReplaceOut {
        oh: oh(CODA_REPLACE),
        new_fid: FID,
        old_fid: FID,
    };
    let ok: Vec<(u32, Vec<u8>)> = vec![
        (CODA_PURGEUSER, purgeuser.as_bytes().to_vec()),
        (CODA_ZAPFILE, fid_msg(CODA_ZAPFILE)),
        (CODA_ZAPDIR, fid_msg(CODA_ZAPDIR)),
        (CODA_PURGEFID, fid_msg(CODA_PURGEFID)),
        (CODA_REPLACE, replace.as_bytes().to_vec()),
        (CODA_FLUSH, oh(CODA_FLUSH).as_bytes().to_vec()),
    ];
    for (op, msg) in &ok {
        assert_eq!(check_downcall(msg), Ok(*op), "{}", opcode_name(*op));
        let mut longer = msg.clone();
        longer.push(0);
        assert_eq!(check_downcall(&longer), Err(MsgError::BadLength));
        if msg.len() > OUT_HDR_SIZE {
            assert_eq!(
                check_downcall(&msg[..msg.len() - 1]),
                Err(MsgError::BadLength)
            );
            assert_eq!(
                check_downcall(&msg[..OUT_HDR_SIZE]),
                Err(MsgError::BadLength)
            );
        }
    }
    let mut flush = vec![0u8; OUTPUT_ARGS_SIZE];
    flush[..OUT_HDR_SIZE].copy_from_slice(oh(CODA_FLUSH).as_bytes());
    assert_eq!(check_downcall(&flush), Ok(CODA_FLUSH));
    assert_eq!(check_downcall(&flush[..13]), Err(MsgError::BadLength));
    assert_eq!(
        check_downcall(&fid_msg(CODA_ZAPVNODE)),
        Err(MsgError::BadOpcode)
    );
    assert_eq!(
        check_downcall(oh(CODA_ZAPVNODE).as_bytes()),
        Err(MsgError::BadOpcode)
    );
    assert_eq!(
        check_downcall(oh(CODA_GETATTR).as_bytes()),
        Err(MsgError::BadOpcode)
    );
    assert_eq!(
        check_downcall(oh(CODA_SIGNAL).as_bytes()),
        Err(MsgError::BadOpcode)
    );
    assert_eq!(
        check_downcall(oh(1000).as_bytes()),
        Err(MsgError::BadOpcode)
    );
    assert_eq!(check_downcall(&[0u8; 11]), Err(MsgError::Short));
    assert_eq!(check_downcall(&[]), Err(MsgError::Short));
    let mut huge = vec![0u8; VC_MAXMSGSIZE + 1];
    huge[..OUT_HDR_SIZE].copy_from_slice(oh(CODA_FLUSH).as_bytes());
    assert_eq!(check_downcall(&huge), Err(MsgError::TooLong));
}

#[test]
fn classification() {
    let upcalls = [
        2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 31, 32, 33, 34, 35, 36,
        37,
    ];
    for op in 0..1000u32 {
        assert_eq!(is_upcall(op), upcalls.contains(&op), "is_upcall({op})");
        assert_eq!(
            is_downcall(op),
            (24..=30).contains(&op),
            "is_downcall({op})"
        );
        assert_eq!(
            is_uninterruptible(op),
            [CODA_CLOSE, CODA_STORE, CODA_RELEASE, CODA_ACCESS_INTENT].contains(&op),
            "is_uninterruptible({op})"
        );
        assert!(!(is_upcall(op) && is_downcall(op)));
    }
    assert!(!is_upcall(u32::MAX));
    for op in 0..CODA_NCALLS {
        if is_upcall(op) || is_downcall(op) || op == CODA_SIGNAL {
            assert_ne!(opcode_name(op), "?", "{op}");
        }
    }
}

#[test]
fn exchange_records() {
    let msgs: [&[u8]; 3] = [b"", &[1; 13], &[2; 16]];
    let mut buf = Vec::new();
    for m in msgs {
        let at = buf.len();
        buf.resize(at + record_size(m.len()), 0xff);
        assert_eq!(put_record(&mut buf[at..], m), Ok(record_size(m.len())));
    }
    // 8 + 0, 8 + 13 padded to 24, 8 + 16.
    assert_eq!(buf.len(), 8 + 24 + 24);
    assert_eq!(&buf[8..12], &13u32.to_ne_bytes());
    assert!(
        buf[8 + 8 + 13..8 + 24].iter().all(|&b| b == 0),
        "padding zeroed"
    );
    let got: Vec<_> = records(&buf).map(|r| r.unwrap().1.to_vec()).collect();
    assert_eq!(got, msgs.map(|m| m.to_vec()));
    // The last record may lack its padding.
    let unpadded = &buf[..8 + 8 + 13];
    assert_eq!(records(unpadded).count(), 2);
    assert!(records(unpadded).all(|r| r.is_ok()));
    // A length past the end, or a fragment, ends the walk with an error.
    let mut bad = buf.clone();
    bad[8..12].copy_from_slice(&1000u32.to_ne_bytes());
    let r: Vec<_> = records(&bad).collect();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1], Err(MsgError::Short));
    assert_eq!(records(&[0u8; 7]).next(), Some(Err(MsgError::Short)));
    // No room.
    assert_eq!(put_record(&mut [0u8; 23], &[0; 13]), Err(MsgError::NoSpace));
}
