// SPDX-License-Identifier: GPL-2.0

//! Building upcall requests and Venus replies as bytes.

use coda_msg::InHdr;
use coda_msg::OutHdr;
use zerocopy::IntoBytes;

/// Offset of the 8-byte token a test puts right after the in-header to tell messages apart.
pub const TOKEN_AT: usize = coda_msg::IN_HDR_SIZE;

/// An upcall request: a `coda_in_hdr` for `opcode` (unique 0: the driver assigns it) and
/// `body`.
pub fn request(opcode: u32, body: &[u8]) -> Vec<u8> {
    let hdr = InHdr {
        opcode,
        unique: 0,
        pid: std::process::id() as i32,
        pgid: nix::unistd::getpgrp().as_raw(),
        uid: 0,
    };
    let mut m = hdr.as_bytes().to_vec();
    m.extend_from_slice(body);
    m
}

/// A request of the size of `opcode`'s input structure (at least room for a token), with
/// `token` right after the header.
pub fn request_token(opcode: u32, token: u64) -> Vec<u8> {
    let size = input_size(opcode).max(TOKEN_AT + 8);
    let mut body = vec![0u8; size - coda_msg::IN_HDR_SIZE];
    body[..8].copy_from_slice(&token.to_le_bytes());
    request(opcode, &body)
}

/// The size of the C input structure of the opcodes the tests use.
fn input_size(opcode: u32) -> usize {
    use std::mem::size_of;
    match opcode {
        coda_msg::CODA_CLOSE => size_of::<coda_msg::CloseIn>(),
        coda_msg::CODA_STORE => size_of::<coda_msg::StoreIn>(),
        coda_msg::CODA_RELEASE => size_of::<coda_msg::ReleaseIn>(),
        coda_msg::CODA_ACCESS_INTENT => size_of::<coda_msg::AccessIntentIn>(),
        coda_msg::CODA_GETATTR => size_of::<coda_msg::GetattrIn>(),
        coda_msg::CODA_ACCESS => size_of::<coda_msg::AccessIn>(),
        coda_msg::CODA_STATFS => size_of::<coda_msg::StatfsIn>(),
        _ => coda_msg::IN_HDR_SIZE,
    }
}

/// The token of a request built by [`request_token`].
pub fn token_of(msg: &[u8]) -> Option<u64> {
    let b = msg.get(TOKEN_AT..TOKEN_AT + 8)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// The header of a message Venus read.
pub fn in_hdr(msg: &[u8]) -> Result<InHdr, String> {
    coda_msg::in_hdr(msg)
        .map_err(|e| format!("bad message from the device ({} bytes): {e:?}", msg.len()))
}

/// A reply or downcall: a `coda_out_hdr` and `body`.
pub fn reply(opcode: u32, unique: u32, result: i32, body: &[u8]) -> Vec<u8> {
    let hdr = OutHdr {
        opcode,
        unique,
        result,
    };
    let mut m = hdr.as_bytes().to_vec();
    m.extend_from_slice(body);
    m
}

/// A reply of exactly `len` bytes (at least the header) whose body bytes count up from
/// `seed`, so a caller can check it got every byte.
pub fn reply_pattern(opcode: u32, unique: u32, len: usize, seed: u8) -> Vec<u8> {
    let body: Vec<u8> = (0..len.saturating_sub(coda_msg::OUT_HDR_SIZE))
        .map(|i| seed.wrapping_add(i as u8))
        .collect();
    reply(opcode, unique, 0, &body)
}

/// Records for CODA_PSDEV_IOC_EXCHANGE: each message after its header, padded.
pub fn records<M: AsRef<[u8]>>(msgs: &[M]) -> Vec<u8> {
    let mut buf = Vec::new();
    for m in msgs {
        let m = m.as_ref();
        let at = buf.len();
        buf.resize(at + coda_msg::record_size(m.len()), 0);
        coda_msg::put_record(&mut buf[at..], m).expect("sized for the record");
    }
    buf
}

/// The records in `buf`: each one's result and message.
pub fn parse_records(buf: &[u8]) -> Result<Vec<(i32, Vec<u8>)>, String> {
    coda_msg::records(buf)
        .map(|r| {
            r.map(|(rec, m)| (rec.result, m.to_vec()))
                .map_err(|e| format!("records of {} bytes: {e:?}", buf.len()))
        })
        .collect()
}
