// SPDX-License-Identifier: GPL-2.0

//! The control device /dev/coda_ctl: upcalls made as a file system would make them, and a
//! device's statistics.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use coda_msg::CodaFid;
use coda_msg::CtlCall;
use coda_msg::InHdr;
use coda_msg::LookupIn;
use coda_msg::PsdevStats;
use zerocopy::IntoBytes;

/// An open /dev/coda_ctl; calls from several threads share it.
pub struct Ctl(File);

impl Ctl {
    pub fn open(path: &Path) -> io::Result<Self> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(Ctl)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
    }

    /// A synchronous upcall on /dev/cfs<minor>: blocks until Venus replies into `out`.
    pub fn call(&self, minor: u32, msg: &[u8], out: &mut [u8]) -> nix::Result<CtlCall> {
        coda_dev::ctl_call_with(self.0.as_fd(), minor, 0, msg, out)
    }

    /// The statistics of /dev/cfs<minor>.
    pub fn stats(&self, minor: u32) -> nix::Result<PsdevStats> {
        coda_dev::ctl_stats(self.0.as_fd(), minor)
    }
}

/// An upcall of `size` bytes: the header with `opcode`, zero padding after it (Venus parses
/// a STATFS by its header alone, so a padded one is still a STATFS).
pub fn request(opcode: u32, size: usize) -> Vec<u8> {
    let mut msg = vec![0u8; size.max(coda_msg::IN_HDR_SIZE)];
    let hdr = InHdr {
        opcode,
        unique: 0,
        pid: std::process::id() as i32,
        pgid: 0,
        uid: 0,
    };
    msg[..coda_msg::IN_HDR_SIZE].copy_from_slice(hdr.as_bytes());
    msg
}

/// A CODA_LOOKUP of `name` in the root, as coda.ko would send it.
pub fn lookup_request(name: &str) -> Vec<u8> {
    let mut buf = vec![0u8; coda_msg::INPUT_ARGS_SIZE + coda_msg::CODA_MAXNAMLEN + 1];
    let m = LookupIn {
        ih: InHdr {
            opcode: coda_msg::CODA_LOOKUP,
            unique: 0,
            pid: std::process::id() as i32,
            pgid: 0,
            uid: 0,
        },
        vfid: CodaFid { opaque: [1; 4] },
        name: 0,
        flags: 0,
    };
    let n = coda_msg::build_lookup(&mut buf, m, name.as_bytes()).expect("a short plain name");
    buf.truncate(n);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let m = request(coda_msg::CODA_STATFS, 4096);
        assert_eq!(m.len(), 4096);
        assert_eq!(coda_msg::in_hdr(&m).unwrap().opcode, coda_msg::CODA_STATFS);
        assert_eq!(
            request(coda_msg::CODA_STATFS, 0).len(),
            coda_msg::IN_HDR_SIZE
        );
        let l = lookup_request("park7");
        let (m, name) = coda_msg::parse_lookup(&l).unwrap();
        assert_eq!(m.ih.opcode, coda_msg::CODA_LOOKUP);
        assert_eq!(name, b"park7");
    }
}
