// SPDX-License-Identifier: GPL-2.0

//! Record files of the Venus stub (`venus --record`, `--record-replies`) and of the replay:
//! each record is a u32 little-endian length, then that many bytes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Every record of `path`, in order.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let bad = || format!("{}: truncated record {}", path.display(), out.len());
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(bad());
        }
        let (rec, tail) = tail.split_at(len);
        out.push(rec.to_vec());
        rest = tail;
    }
    Ok(out)
}

/// Appends records to a file.
pub struct Writer {
    file: File,
    path: String,
}

impl Writer {
    pub fn create(path: &Path) -> Result<Self, String> {
        let file = File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Writer {
            file,
            path: path.display().to_string(),
        })
    }

    pub fn append(&mut self, rec: &[u8]) -> Result<(), String> {
        let mut entry = Vec::with_capacity(4 + rec.len());
        entry.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        entry.extend_from_slice(rec);
        self.file
            .write_all(&entry)
            .map_err(|e| format!("writing {}: {e}", self.path))
    }
}

/// The opcode of a message (both headers start with it).
pub fn opcode(msg: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(*msg.first_chunk::<4>()?))
}

/// The unique of a message: bytes 4..8 of both headers.
pub fn unique(msg: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(msg.get(4..8)?.try_into().ok()?))
}

/// Whether the stub wrote `msg` unasked (a downcall) rather than as a reply.
pub fn is_downcall(msg: &[u8]) -> bool {
    opcode(msg).is_some_and(coda_msg::is_downcall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("coda-ctl-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.rec");
        let mut w = Writer::create(&path).unwrap();
        w.append(b"abc").unwrap();
        w.append(b"").unwrap();
        w.append(&[7; 300]).unwrap();
        drop(w);
        let recs = read(&path).unwrap();
        assert_eq!(recs, vec![b"abc".to_vec(), Vec::new(), vec![7; 300]]);
        std::fs::write(&path, [5, 0, 0, 0, 1, 2]).unwrap();
        assert!(read(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn headers() {
        let mut m = vec![0u8; 20];
        m[..4].copy_from_slice(&coda_msg::CODA_ZAPDIR.to_ne_bytes());
        m[4..8].copy_from_slice(&42u32.to_ne_bytes());
        assert_eq!(opcode(&m), Some(coda_msg::CODA_ZAPDIR));
        assert_eq!(unique(&m), Some(42));
        assert!(is_downcall(&m));
        assert_eq!(unique(&m[..6]), None);
    }
}
