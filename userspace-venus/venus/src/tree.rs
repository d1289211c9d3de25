// SPDX-License-Identifier: GPL-2.0

//! The in-memory file tree Venus serves, with POSIX-like semantics and errno results.
//!
//! Nodes are numbered (`Ino`); a fid carries the number and a `unique` that CODA_REPLACE
//! changes.  Files are held in memory and copied to a container file while the kernel has
//! them open (see `crate::serve`).

use coda_msg::CodaFid;
use coda_msg::CodaTimespec;
use coda_msg::CodaVattr;
use coda_msg::C_VDIR;
use coda_msg::C_VLNK;
use coda_msg::C_VREG;
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

pub type Ino = u32;
pub type Result<T> = std::result::Result<T, Errno>;

pub const ROOT_INO: Ino = 1;
/// The volume word of every fid this Venus hands out.
const VOLUME: u32 = 0x7f00_0001;
const BLOCK: u64 = 4096;

#[derive(Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir {
        parent: Ino,
        children: BTreeMap<Vec<u8>, Ino>,
    },
    Symlink(Vec<u8>),
}

#[derive(Debug)]
pub struct Node {
    pub kind: Kind,
    pub unique: u32,
    /// Permission bits (07777).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: CodaTimespec,
    pub mtime: CodaTimespec,
    pub ctime: CodaTimespec,
    /// Container opens not yet closed: while nonzero the container holds the data.
    pub opens: u32,
}

impl Node {
    fn new(kind: Kind, perm: u16, uid: u32, gid: u32) -> Self {
        let now = now();
        let nlink = if matches!(kind, Kind::Dir { .. }) {
            2
        } else {
            1
        };
        Node {
            kind,
            unique: 1,
            perm: perm & 0o7777,
            uid,
            gid,
            nlink,
            atime: now,
            mtime: now,
            ctime: now,
            opens: 0,
        }
    }

    pub fn vtype(&self) -> i32 {
        match self.kind {
            Kind::File(_) => C_VREG,
            Kind::Dir { .. } => C_VDIR,
            Kind::Symlink(_) => C_VLNK,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }

    /// Size as the kernel should see it: for directories, the size of their container.
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File(d) => d.len() as u64,
            Kind::Symlink(t) => t.len() as u64,
            Kind::Dir { children, .. } => children
                .keys()
                .map(|n| coda_msg::venus_dirsiz(n.len()) as u64)
                .sum(),
        }
    }
}

pub fn now() -> CodaTimespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    CodaTimespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    }
}

pub struct Tree {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
}

/// Returns an errno unless `cond` holds.
fn ensure(cond: bool, e: Errno) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(e)
    }
}

impl Tree {
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node::new(
                Kind::Dir {
                    parent: ROOT_INO,
                    children: BTreeMap::new(),
                },
                0o755,
                0,
                0,
            ),
        );
        Tree {
            nodes,
            next_ino: ROOT_INO + 1,
        }
    }

    pub fn fid(&self, ino: Ino) -> CodaFid {
        let unique = self.nodes.get(&ino).map_or(0, |n| n.unique);
        CodaFid {
            opaque: [VOLUME, ino, unique, 0],
        }
    }

    /// The node a fid names.  Any `unique` is accepted: after a CODA_REPLACE the kernel may
    /// still hold the old fid in a request already on its way.
    pub fn ino_of(&self, fid: &CodaFid) -> Result<Ino> {
        let ino = fid.opaque[1];
        ensure(
            fid.opaque[0] == VOLUME && self.nodes.contains_key(&ino),
            Errno::NOENT,
        )?;
        Ok(ino)
    }

    pub fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(Errno::NOENT)
    }

    pub fn node_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::NOENT)
    }

    fn children(&self, dir: Ino) -> Result<&BTreeMap<Vec<u8>, Ino>> {
        match &self.node(dir)?.kind {
            Kind::Dir { children, .. } => Ok(children),
            _ => Err(Errno::NOTDIR),
        }
    }

    fn children_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<Vec<u8>, Ino>> {
        match &mut self.node_mut(dir)?.kind {
            Kind::Dir { children, .. } => Ok(children),
            _ => Err(Errno::NOTDIR),
        }
    }

    /// Sorted entries of a directory (without "." and "..").
    pub fn entries(&self, dir: Ino) -> Result<Vec<(Vec<u8>, Ino)>> {
        Ok(self
            .children(dir)?
            .iter()
            .map(|(n, i)| (n.clone(), *i))
            .collect())
    }

    pub fn attr(&self, ino: Ino) -> Result<CodaVattr> {
        let n = self.node(ino)?;
        let size = n.size();
        Ok(CodaVattr {
            va_type: n.vtype() as i64,
            va_mode: n.perm,
            va_nlink: n.nlink.min(i16::MAX as u32) as i16,
            va_uid: n.uid,
            va_gid: n.gid,
            va_fileid: self.fid(ino).f2i() as i64,
            va_size: size,
            va_blocksize: BLOCK as i64,
            va_atime: n.atime,
            va_mtime: n.mtime,
            va_ctime: n.ctime,
            va_gen: n.unique as u64,
            va_bytes: size.div_ceil(BLOCK) * BLOCK,
            ..Default::default()
        })
    }

    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Ino> {
        match name {
            b"." => {
                self.children(dir)?;
                Ok(dir)
            }
            b".." => match &self.node(dir)?.kind {
                Kind::Dir { parent, .. } => Ok(*parent),
                _ => Err(Errno::NOTDIR),
            },
            _ => self.children(dir)?.get(name).copied().ok_or(Errno::NOENT),
        }
    }

    /// Resolves a path relative to the root, following no symlinks.
    pub fn resolve(&self, path: &str) -> Result<Ino> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(ROOT_INO, |dir, c| self.lookup(dir, c.as_bytes()))
    }

    fn touch_dir(&mut self, dir: Ino) {
        if let Ok(n) = self.node_mut(dir) {
            let t = now();
            n.mtime = t;
            n.ctime = t;
        }
    }

    fn add(&mut self, dir: Ino, name: &[u8], node: Node) -> Result<Ino> {
        ensure(
            !name.is_empty() && name != b"." && name != b"..",
            Errno::EXIST,
        )?;
        ensure(!self.children(dir)?.contains_key(name), Errno::EXIST)?;
        let ino = self.next_ino;
        self.next_ino = self.next_ino.checked_add(1).ok_or(Errno::NOSPC)?;
        let is_dir = node.is_dir();
        self.nodes.insert(ino, node);
        self.children_mut(dir)?.insert(name.to_vec(), ino);
        if is_dir {
            self.node_mut(dir)?.nlink += 1;
        }
        self.touch_dir(dir);
        Ok(ino)
    }

    /// CODA_CREATE: a new regular file, or the existing one unless `excl`.
    pub fn create(
        &mut self,
        dir: Ino,
        name: &[u8],
        perm: u16,
        uid: u32,
        excl: bool,
    ) -> Result<Ino> {
        if let Ok(ino) = self.lookup(dir, name) {
            ensure(!excl, Errno::EXIST)?;
            ensure(!self.node(ino)?.is_dir(), Errno::ISDIR)?;
            return Ok(ino);
        }
        let gid = self.node(dir)?.gid;
        self.add(dir, name, Node::new(Kind::File(Vec::new()), perm, uid, gid))
    }

    pub fn mkdir(&mut self, dir: Ino, name: &[u8], perm: u16, uid: u32) -> Result<Ino> {
        let gid = self.node(dir)?.gid;
        let kind = Kind::Dir {
            parent: dir,
            children: BTreeMap::new(),
        };
        self.add(dir, name, Node::new(kind, perm, uid, gid))
    }

    pub fn symlink(&mut self, dir: Ino, name: &[u8], target: &[u8], uid: u32) -> Result<Ino> {
        let gid = self.node(dir)?.gid;
        let kind = Kind::Symlink(target.to_vec());
        self.add(dir, name, Node::new(kind, 0o777, uid, gid))
    }

    pub fn link(&mut self, ino: Ino, dir: Ino, name: &[u8]) -> Result<()> {
        ensure(!self.node(ino)?.is_dir(), Errno::PERM)?;
        ensure(name != b"." && name != b"..", Errno::EXIST)?;
        ensure(!self.children(dir)?.contains_key(name), Errno::EXIST)?;
        self.children_mut(dir)?.insert(name.to_vec(), ino);
        let n = self.node_mut(ino)?;
        n.nlink += 1;
        n.ctime = now();
        self.touch_dir(dir);
        Ok(())
    }

    /// Drops one link to `ino`; the node goes when no link and no open container is left.
    fn unref(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlink = n.nlink.saturating_sub(1);
            n.ctime = now();
            if n.nlink == 0 && n.opens == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    /// Forgets a node whose last link went while it was open, once it is closed.
    pub fn reap(&mut self, ino: Ino) {
        if self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.nlink == 0 && n.opens == 0 && !n.is_dir())
        {
            self.nodes.remove(&ino);
        }
    }

    pub fn remove(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        let ino = self.lookup(dir, name)?;
        ensure(!self.node(ino)?.is_dir(), Errno::ISDIR)?;
        self.children_mut(dir)?.remove(name);
        self.touch_dir(dir);
        self.unref(ino);
        Ok(())
    }

    pub fn rmdir(&mut self, dir: Ino, name: &[u8]) -> Result<()> {
        ensure(name != b".", Errno::INVAL)?;
        ensure(name != b"..", Errno::NOTEMPTY)?;
        let ino = self.lookup(dir, name)?;
        ensure(self.children(ino)?.is_empty(), Errno::NOTEMPTY)?;
        self.children_mut(dir)?.remove(name);
        self.node_mut(dir)?.nlink -= 1;
        self.touch_dir(dir);
        self.nodes.remove(&ino);
        Ok(())
    }

    /// Whether `anc` is `ino` or one of its ancestors.
    fn is_ancestor(&self, anc: Ino, mut ino: Ino) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.nodes.get(&ino).map(|n| &n.kind) {
                Some(Kind::Dir { parent, .. }) if *parent != ino => ino = *parent,
                _ => return false,
            }
        }
    }

    pub fn rename(&mut self, sdir: Ino, sname: &[u8], ddir: Ino, dname: &[u8]) -> Result<()> {
        for n in [sname, dname] {
            ensure(n != b"." && n != b"..", Errno::INVAL)?;
        }
        self.children(ddir)?;
        let ino = self.lookup(sdir, sname)?;
        let moving_dir = self.node(ino)?.is_dir();
        if moving_dir {
            // A directory cannot move below itself.
            ensure(!self.is_ancestor(ino, ddir), Errno::INVAL)?;
        }
        if let Ok(old) = self.lookup(ddir, dname) {
            if old == ino {
                return Ok(());
            }
            let old_dir = self.node(old)?.is_dir();
            match (moving_dir, old_dir) {
                (true, false) => return Err(Errno::NOTDIR),
                (false, true) => return Err(Errno::ISDIR),
                (true, true) => {
                    ensure(self.children(old)?.is_empty(), Errno::NOTEMPTY)?;
                    self.children_mut(ddir)?.remove(dname);
                    self.node_mut(ddir)?.nlink -= 1;
                    self.nodes.remove(&old);
                }
                (false, false) => {
                    self.children_mut(ddir)?.remove(dname);
                    self.unref(old);
                }
            }
        }
        self.children_mut(sdir)?.remove(sname);
        self.children_mut(ddir)?.insert(dname.to_vec(), ino);
        if moving_dir && sdir != ddir {
            self.node_mut(sdir)?.nlink -= 1;
            self.node_mut(ddir)?.nlink += 1;
            if let Kind::Dir { parent, .. } = &mut self.node_mut(ino)?.kind {
                *parent = ddir;
            }
        }
        self.node_mut(ino)?.ctime = now();
        self.touch_dir(sdir);
        self.touch_dir(ddir);
        Ok(())
    }

    /// Copies a host directory into `dir`.  Returns the number of entries copied; special
    /// files are skipped.
    pub fn seed_from(&mut self, dir: Ino, host: &Path) -> std::io::Result<usize> {
        let mut count = 0;
        let mut entries: Vec<_> = std::fs::read_dir(host)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            use std::os::unix::ffi::OsStrExt;
            use std::os::unix::fs::MetadataExt;
            let name = e.file_name();
            let name = name.as_bytes();
            let meta = e.path().symlink_metadata()?;
            let perm = (meta.mode() & 0o7777) as u16;
            let ft = meta.file_type();
            let res = if ft.is_dir() {
                let sub = self.mkdir(dir, name, perm, meta.uid());
                if let Ok(sub) = sub {
                    count += self.seed_from(sub, &e.path())?;
                }
                sub
            } else if ft.is_file() {
                let data = std::fs::read(e.path())?;
                self.create(dir, name, perm, meta.uid(), true)
                    .and_then(|ino| {
                        if let Kind::File(d) = &mut self.node_mut(ino)?.kind {
                            *d = data;
                        }
                        Ok(ino)
                    })
            } else if ft.is_symlink() {
                let target = std::fs::read_link(e.path())?;
                self.symlink(dir, name, target.as_os_str().as_bytes(), meta.uid())
            } else {
                eprintln!("venus: seed: skipping special file {}", e.path().display());
                continue;
            };
            let ino = res.map_err(std::io::Error::from)?;
            let n = self.node_mut(ino).map_err(std::io::Error::from)?;
            n.gid = meta.gid();
            n.mtime = CodaTimespec {
                tv_sec: meta.mtime(),
                tv_nsec: meta.mtime_nsec(),
            };
            count += 1;
        }
        Ok(count)
    }

    /// A generated tree of `n` files: `dirNN/fileNNNNN` with 100 files a directory, each
    /// holding a line naming itself.
    pub fn generate(&mut self, n: usize) -> Result<()> {
        for i in 0..n {
            let dir_name = format!("dir{:02}", i / 100);
            let dir = match self.lookup(ROOT_INO, dir_name.as_bytes()) {
                Ok(d) => d,
                Err(_) => self.mkdir(ROOT_INO, dir_name.as_bytes(), 0o755, 0)?,
            };
            let name = format!("file{i:05}");
            let ino = self.create(dir, name.as_bytes(), 0o644, 0, true)?;
            if let Kind::File(d) = &mut self.node_mut(ino)?.kind {
                *d = format!("{dir_name}/{name}\n").into_bytes();
            }
        }
        Ok(())
    }

    pub fn counts(&self) -> (usize, u64) {
        let bytes = self.nodes.values().map(Node::size).sum();
        (self.nodes.len(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        let mut t = Tree::new();
        t.mkdir(ROOT_INO, b"a", 0o755, 0).unwrap();
        t.mkdir(ROOT_INO, b"b", 0o755, 0).unwrap();
        let a = t.resolve("a").unwrap();
        t.create(a, b"f", 0o644, 0, true).unwrap();
        t
    }

    fn nlink(t: &Tree, p: &str) -> u32 {
        t.node(t.resolve(p).unwrap()).unwrap().nlink
    }

    #[test]
    fn create_and_lookup() {
        let mut t = tree();
        let a = t.resolve("a").unwrap();
        let f = t.resolve("a/f").unwrap();
        assert_eq!(t.create(a, b"f", 0o600, 0, true), Err(Errno::EXIST));
        assert_eq!(t.create(a, b"f", 0o600, 0, false), Ok(f));
        assert_eq!(t.create(ROOT_INO, b"a", 0o600, 0, false), Err(Errno::ISDIR));
        assert_eq!(t.lookup(f, b"x"), Err(Errno::NOTDIR));
        assert_eq!(t.lookup(a, b".."), Ok(ROOT_INO));
        assert_eq!(t.lookup(ROOT_INO, b".."), Ok(ROOT_INO));
        assert_eq!(t.ino_of(&t.fid(f)), Ok(f));
        assert_eq!(nlink(&t, ""), 4);
    }

    #[test]
    fn rename_rules() {
        let mut t = tree();
        let (root, a, b) = (ROOT_INO, t.resolve("a").unwrap(), t.resolve("b").unwrap());
        // A directory below itself.
        assert_eq!(t.rename(root, b"a", a, b"x"), Err(Errno::INVAL));
        // Over a non-empty directory, a file over a directory and back.
        t.mkdir(b, b"a", 0o755, 0).unwrap();
        t.create(t.resolve("b/a").unwrap(), b"z", 0o644, 0, true)
            .unwrap();
        assert_eq!(t.rename(root, b"a", root, b"b"), Err(Errno::NOTEMPTY));
        assert_eq!(t.rename(a, b"f", root, b"b"), Err(Errno::ISDIR));
        assert_eq!(t.rename(root, b"b", a, b"f"), Err(Errno::NOTDIR));
        // Moving a directory moves a link of the parents.
        t.rename(root, b"a", b, b"moved").unwrap();
        assert_eq!(nlink(&t, ""), 3);
        assert_eq!(nlink(&t, "b"), 4);
        assert_eq!(t.lookup(t.resolve("b/moved").unwrap(), b".."), Ok(b));
        // A file over a file drops the old one.
        let g = t.resolve("b/a").unwrap();
        let z = t.resolve("b/a/z").unwrap();
        t.create(g, b"y", 0o644, 0, true).unwrap();
        t.rename(g, b"y", g, b"z").unwrap();
        assert!(t.node(z).is_err());
        // Renaming onto another link of the same file does nothing.
        let y = t.resolve("b/a/z").unwrap();
        t.link(y, g, b"w").unwrap();
        t.rename(g, b"w", g, b"z").unwrap();
        assert_eq!(t.resolve("b/a/w"), Ok(y));
        assert_eq!(t.node(y).unwrap().nlink, 2);
    }

    #[test]
    fn remove_and_links() {
        let mut t = tree();
        let a = t.resolve("a").unwrap();
        let f = t.resolve("a/f").unwrap();
        assert_eq!(t.link(a, ROOT_INO, b"x"), Err(Errno::PERM));
        t.link(f, ROOT_INO, b"g").unwrap();
        assert_eq!(t.node(f).unwrap().nlink, 2);
        assert_eq!(t.remove(ROOT_INO, b"a"), Err(Errno::ISDIR));
        assert_eq!(t.rmdir(ROOT_INO, b"a"), Err(Errno::NOTEMPTY));
        assert_eq!(t.rmdir(ROOT_INO, b"g"), Err(Errno::NOTDIR));
        t.remove(a, b"f").unwrap();
        assert_eq!(t.node(f).unwrap().nlink, 1);
        // The last link of an open file: the node stays until closed.
        t.node_mut(f).unwrap().opens = 1;
        t.remove(ROOT_INO, b"g").unwrap();
        assert!(t.node(f).is_ok());
        t.node_mut(f).unwrap().opens = 0;
        t.reap(f);
        assert!(t.node(f).is_err());
        t.rmdir(ROOT_INO, b"a").unwrap();
        assert_eq!(nlink(&t, ""), 3);
        assert_eq!(t.resolve("a"), Err(Errno::NOENT));
    }

    #[test]
    fn generate() {
        let mut t = Tree::new();
        t.generate(250).unwrap();
        assert_eq!(t.entries(ROOT_INO).unwrap().len(), 3);
        let f = t.resolve("dir02/file00249").unwrap();
        match &t.node(f).unwrap().kind {
            Kind::File(d) => assert_eq!(d, b"dir02/file00249\n"),
            _ => panic!("not a file"),
        }
    }
}
