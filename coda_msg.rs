// SPDX-License-Identifier: GPL-2.0

//! The Coda kernel/Venus wire format (`<linux/coda.h>`, `CODA_KERNEL_VERSION` 5, x86_64) and
//! this driver's own uapi (`uapi/coda_psdev.h`).
//!
//! This one file is compiled into the kernel module and into the userspace crates, so it uses
//! only `core` and zerocopy, and never allocates.
//!
//! Conventions:
//! - C `long`, `u_long`, `u_quad_t`, `ino_t` and `cdev_t` are 64 bits (x86_64).
//! - Pointer fields (`coda_ioctl_in.data`, `coda_ioctl_out.data`, `coda_readlink_out.data`)
//!   are carried as `u64`: on the wire they hold an offset from the start of the message.
//! - Where C has implicit padding, the struct has an explicit `_pad*` field so that it can be
//!   `IntoBytes`; builders keep these zero and parsers ignore them.
//! - Parsers copy the fixed part out of the message (`read_from_prefix`), so message buffers
//!   need no particular alignment.

// Each user (kernel module, Venus stub, test harness) uses a different subset.
#![allow(dead_code)]

use core::mem::size_of;
use zerocopy::FromBytes;
use zerocopy::Immutable;
use zerocopy::IntoBytes;

// The derive macros live in their own crate in the kernel; they are named by path so that
// they never clash with the traits imported above.
use zerocopy_derive as zd;

// ---------------------------------------------------------------------------------------------
// ioctl number encoding (asm-generic/ioctl.h, used by x86).

/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`: userspace writes, the kernel reads.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: the kernel writes, userspace reads.
pub const IOC_READ: u32 = 2;

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;

/// Linux's `_IOC(dir, type, nr, size)`.
///
/// A size that does not fit the 14-bit field fails the build when used in a constant.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << IOC_SIZEBITS));
    assert!(ty < (1 << IOC_TYPEBITS));
    assert!(nr < (1 << IOC_NRBITS));
    (dir << IOC_DIRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
}

// ---------------------------------------------------------------------------------------------
// Constants of <linux/coda.h>.

pub const CODA_KERNEL_VERSION: u32 = 5;
pub const CODA_MAXNAMLEN: usize = 255;
pub const CODA_MAXPATHLEN: usize = 1024;
pub const CODA_MAXSYMLINK: usize = 10;
pub const CODA_MAXSYMLINKS: usize = 10;

/// `_IOWR('c', 10, size_t)`.
pub const CIOC_KERNEL_VERSION: u32 = ioc(IOC_READ | IOC_WRITE, b'c' as u32, 10, size_of::<u64>());

// Open modes (coda_open*_in.flags, coda_close_in.flags).
pub const C_O_READ: u32 = 0x001;
pub const C_O_WRITE: u32 = 0x002;
pub const C_O_TRUNC: u32 = 0x010;
pub const C_O_EXCL: u32 = 0x100;
pub const C_O_CREAT: u32 = 0x200;

pub const C_M_READ: u32 = 0o400;
pub const C_M_WRITE: u32 = 0o200;

// coda_access_in.flags.
pub const C_A_C_OK: u32 = 8;
pub const C_A_R_OK: u32 = 4;
pub const C_A_W_OK: u32 = 2;
pub const C_A_X_OK: u32 = 1;
pub const C_A_F_OK: u32 = 0;

// venus_dirent.d_type.
pub const CDT_UNKNOWN: u8 = 0;
pub const CDT_FIFO: u8 = 1;
pub const CDT_CHR: u8 = 2;
pub const CDT_DIR: u8 = 4;
pub const CDT_BLK: u8 = 6;
pub const CDT_REG: u8 = 8;
pub const CDT_LNK: u8 = 10;
pub const CDT_SOCK: u8 = 12;
pub const CDT_WHT: u8 = 14;

/// Linux's `IFTOCDT()`: the directory entry type of a mode.
pub const fn iftocdt(mode: u32) -> u8 {
    ((mode & 0o170000) >> 12) as u8
}

// enum coda_vtype.
pub const C_VNON: i32 = 0;
pub const C_VREG: i32 = 1;
pub const C_VDIR: i32 = 2;
pub const C_VBLK: i32 = 3;
pub const C_VCHR: i32 = 4;
pub const C_VLNK: i32 = 5;
pub const C_VSOCK: i32 = 6;
pub const C_VFIFO: i32 = 7;
pub const C_VBAD: i32 = 8;

// coda_lookup_in.flags.
pub const CLU_CASE_SENSITIVE: i32 = 0x01;
pub const CLU_CASE_INSENSITIVE: i32 = 0x02;

/// Set in coda_lookup_out.vtype: do not cache the result.
pub const CODA_NOCACHE: u32 = 0x8000_0000;

// coda_access_intent_in.type.
pub const CODA_ACCESS_TYPE_READ: i32 = 1;
pub const CODA_ACCESS_TYPE_WRITE: i32 = 2;
pub const CODA_ACCESS_TYPE_MMAP: i32 = 3;
pub const CODA_ACCESS_TYPE_READ_FINISH: i32 = 4;
pub const CODA_ACCESS_TYPE_WRITE_FINISH: i32 = 5;

pub const CODA_MOUNT_VERSION: i32 = 1;

pub const CODA_CONTROL: &[u8] = b".CONTROL";
pub const CODA_CONTROLLEN: usize = 8;

// Opcodes.
pub const CODA_ROOT: u32 = 2;
pub const CODA_OPEN_BY_FD: u32 = 3;
pub const CODA_OPEN: u32 = 4;
pub const CODA_CLOSE: u32 = 5;
pub const CODA_IOCTL: u32 = 6;
pub const CODA_GETATTR: u32 = 7;
pub const CODA_SETATTR: u32 = 8;
pub const CODA_ACCESS: u32 = 9;
pub const CODA_LOOKUP: u32 = 10;
pub const CODA_CREATE: u32 = 11;
pub const CODA_REMOVE: u32 = 12;
pub const CODA_LINK: u32 = 13;
pub const CODA_RENAME: u32 = 14;
pub const CODA_MKDIR: u32 = 15;
pub const CODA_RMDIR: u32 = 16;
pub const CODA_SYMLINK: u32 = 18;
pub const CODA_READLINK: u32 = 19;
pub const CODA_FSYNC: u32 = 20;
pub const CODA_VGET: u32 = 22;
pub const CODA_SIGNAL: u32 = 23;
pub const CODA_REPLACE: u32 = 24;
pub const CODA_FLUSH: u32 = 25;
pub const CODA_PURGEUSER: u32 = 26;
pub const CODA_ZAPFILE: u32 = 27;
pub const CODA_ZAPDIR: u32 = 28;
/// Not in Linux: a BSD downcall number that Linux's `DOWNCALL()` range covers but ignores.
pub const CODA_ZAPVNODE: u32 = 29;
pub const CODA_PURGEFID: u32 = 30;
pub const CODA_OPEN_BY_PATH: u32 = 31;
pub const CODA_RESOLVE: u32 = 32;
pub const CODA_REINTEGRATE: u32 = 33;
pub const CODA_STATFS: u32 = 34;
pub const CODA_STORE: u32 = 35;
pub const CODA_RELEASE: u32 = 36;
pub const CODA_ACCESS_INTENT: u32 = 37;
pub const CODA_NCALLS: u32 = 38;

pub const VC_MAXDATASIZE: u32 = 8192;

/// Symbolic name of an opcode, for logs.
pub const fn opcode_name(opcode: u32) -> &'static str {
    match opcode {
        CODA_ROOT => "ROOT",
        CODA_OPEN_BY_FD => "OPEN_BY_FD",
        CODA_OPEN => "OPEN",
        CODA_CLOSE => "CLOSE",
        CODA_IOCTL => "IOCTL",
        CODA_GETATTR => "GETATTR",
        CODA_SETATTR => "SETATTR",
        CODA_ACCESS => "ACCESS",
        CODA_LOOKUP => "LOOKUP",
        CODA_CREATE => "CREATE",
        CODA_REMOVE => "REMOVE",
        CODA_LINK => "LINK",
        CODA_RENAME => "RENAME",
        CODA_MKDIR => "MKDIR",
        CODA_RMDIR => "RMDIR",
        CODA_SYMLINK => "SYMLINK",
        CODA_READLINK => "READLINK",
        CODA_FSYNC => "FSYNC",
        CODA_VGET => "VGET",
        CODA_SIGNAL => "SIGNAL",
        CODA_REPLACE => "REPLACE",
        CODA_FLUSH => "FLUSH",
        CODA_PURGEUSER => "PURGEUSER",
        CODA_ZAPFILE => "ZAPFILE",
        CODA_ZAPDIR => "ZAPDIR",
        CODA_ZAPVNODE => "ZAPVNODE",
        CODA_PURGEFID => "PURGEFID",
        CODA_OPEN_BY_PATH => "OPEN_BY_PATH",
        CODA_RESOLVE => "RESOLVE",
        CODA_REINTEGRATE => "REINTEGRATE",
        CODA_STATFS => "STATFS",
        CODA_STORE => "STORE",
        CODA_RELEASE => "RELEASE",
        CODA_ACCESS_INTENT => "ACCESS_INTENT",
        _ => "?",
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol classification.

/// Opcodes a file-system caller may send to Venus.
pub const fn is_upcall(opcode: u32) -> bool {
    matches!(opcode, 2..=16 | 18 | 19 | 20 | 22 | 31..=37)
}

/// Linux's `DOWNCALL()`: messages Venus writes unasked.
pub const fn is_downcall(opcode: u32) -> bool {
    opcode >= CODA_REPLACE && opcode <= CODA_PURGEFID
}

/// Upcalls that ordinary signals must not interrupt before Venus has read them (Linux's
/// `CODA_INTERRUPTIBLE()`): losing them would leak references or data.
pub const fn is_uninterruptible(opcode: u32) -> bool {
    matches!(
        opcode,
        CODA_CLOSE | CODA_STORE | CODA_RELEASE | CODA_ACCESS_INTENT
    )
}

// ---------------------------------------------------------------------------------------------
// Structures of <linux/coda.h>.

/// Declares `#[repr(C)]` wire structs with the common derives.
macro_rules! wire_structs {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }
    )*) => {
        $(
            $(#[$meta])*
            #[repr(C)]
            #[derive(
                Clone,
                Copy,
                Debug,
                Default,
                PartialEq,
                Eq,
                zd::FromBytes,
                zd::IntoBytes,
                zd::Immutable,
                zd::KnownLayout,
            )]
            pub struct $name {
                $($(#[$fmeta])* pub $field: $ty,)*
            }
        )*
    };
}

wire_structs! {
    /// `struct CodaFid`: a 128-bit file identifier, opaque to the kernel.
    #[derive(Hash, PartialOrd, Ord)]
    pub struct CodaFid {
        pub opaque: [u32; 4],
    }

    /// `struct coda_timespec`.
    pub struct CodaTimespec {
        pub tv_sec: i64,
        pub tv_nsec: i64,
    }

    /// `struct coda_vattr`.
    pub struct CodaVattr {
        /// `enum coda_vtype` in a `long`.
        pub va_type: i64,
        pub va_mode: u16,
        pub va_nlink: i16,
        pub va_uid: u32,
        pub va_gid: u32,
        pub _pad0: u32,
        pub va_fileid: i64,
        pub va_size: u64,
        pub va_blocksize: i64,
        pub va_atime: CodaTimespec,
        pub va_mtime: CodaTimespec,
        pub va_ctime: CodaTimespec,
        pub va_gen: u64,
        pub va_flags: u64,
        pub va_rdev: u64,
        pub va_bytes: u64,
        pub va_filerev: u64,
    }

    /// `struct coda_statfs`.
    pub struct CodaStatfs {
        pub f_blocks: i32,
        pub f_bfree: i32,
        pub f_bavail: i32,
        pub f_files: i32,
        pub f_ffree: i32,
    }

    /// The fixed part of `struct venus_dirent`, the records of a directory's container file:
    /// `d_namlen` name bytes and a NUL follow, the record is `d_reclen` bytes long.
    pub struct VenusDirentHdr {
        pub d_fileno: u32,
        pub d_reclen: u16,
        pub d_type: u8,
        pub d_namlen: u8,
    }

    /// `struct coda_mount_data`, the data of `mount -t coda`.
    pub struct CodaMountData {
        pub version: i32,
        pub fd: i32,
    }
}

impl CodaFid {
    /// Linux's `coda_f2i()`: the inode number hash of a fid.
    pub const fn f2i(&self) -> u32 {
        self.opaque[3] ^ (self.opaque[2] << 10) ^ (self.opaque[1] << 20) ^ self.opaque[0]
    }
}

/// `sizeof(struct venus_dirent)`: the fixed part and a name of `CODA_MAXNAMLEN + 1` bytes.
pub const VENUS_DIRENT_SIZE: usize = size_of::<VenusDirentHdr>() + CODA_MAXNAMLEN + 1;

/// Linux's `DIRSIZ()`: the record length of a `venus_dirent` with a name of `namlen` bytes.
pub const fn venus_dirsiz(namlen: usize) -> usize {
    size_of::<VenusDirentHdr>() + ((namlen + 1 + 3) & !3)
}

wire_structs! {
    /// `struct coda_in_hdr`: starts every upcall.
    pub struct InHdr {
        pub opcode: u32,
        pub unique: u32,
        pub pid: i32,
        pub pgid: i32,
        pub uid: u32,
    }

    /// `struct coda_out_hdr`: starts every reply and downcall.  `result` is a positive errno.
    pub struct OutHdr {
        pub opcode: u32,
        pub unique: u32,
        pub result: i32,
    }

    /// `struct coda_root_in`.
    pub struct RootIn {
        pub ih: InHdr,
    }

    /// `struct coda_root_out`.
    pub struct RootOut {
        pub oh: OutHdr,
        pub vfid: CodaFid,
    }

    /// `struct coda_open_in`.
    pub struct OpenIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_open_out`.
    pub struct OpenOut {
        pub oh: OutHdr,
        pub _pad0: u32,
        pub dev: u64,
        pub inode: u64,
    }

    /// `struct coda_store_in`.
    pub struct StoreIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_store_out`.
    pub struct StoreOut {
        pub out: OutHdr,
    }

    /// `struct coda_release_in`.
    pub struct ReleaseIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_release_out`.
    pub struct ReleaseOut {
        pub out: OutHdr,
    }

    /// `struct coda_close_in`.
    pub struct CloseIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_close_out`.
    pub struct CloseOut {
        pub out: OutHdr,
    }

    /// `struct coda_ioctl_in`; `data` is the offset of `len` data bytes in the message.
    pub struct IoctlIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub cmd: i32,
        pub len: i32,
        pub rwflag: i32,
        pub data: u64,
    }

    /// `struct coda_ioctl_out`; `data` is the offset of `len` data bytes in the message.
    pub struct IoctlOut {
        pub oh: OutHdr,
        pub len: i32,
        pub data: u64,
    }

    /// `struct coda_getattr_in`.
    pub struct GetattrIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
    }

    /// `struct coda_getattr_out`.
    pub struct GetattrOut {
        pub oh: OutHdr,
        pub _pad0: u32,
        pub attr: CodaVattr,
    }

    /// `struct coda_setattr_in`.
    pub struct SetattrIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub _pad0: u32,
        pub attr: CodaVattr,
    }

    /// `struct coda_setattr_out`.
    pub struct SetattrOut {
        pub out: OutHdr,
    }

    /// `struct coda_access_in`.
    pub struct AccessIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_access_out`.
    pub struct AccessOut {
        pub out: OutHdr,
    }

    /// `struct coda_lookup_in`; `name` is the offset of a NUL-terminated name.
    pub struct LookupIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub name: i32,
        pub flags: i32,
    }

    /// `struct coda_lookup_out`.
    pub struct LookupOut {
        pub oh: OutHdr,
        pub vfid: CodaFid,
        pub vtype: i32,
    }

    /// `struct coda_create_in`; `name` is the offset of a NUL-terminated name.
    pub struct CreateIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub _pad0: u32,
        pub attr: CodaVattr,
        pub excl: i32,
        pub mode: i32,
        pub name: i32,
        pub _pad1: u32,
    }

    /// `struct coda_create_out`.
    pub struct CreateOut {
        pub oh: OutHdr,
        pub vfid: CodaFid,
        pub _pad0: u32,
        pub attr: CodaVattr,
    }

    /// `struct coda_remove_in`; `name` is the offset of a NUL-terminated name.
    pub struct RemoveIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub name: i32,
    }

    /// `struct coda_remove_out`.
    pub struct RemoveOut {
        pub out: OutHdr,
    }

    /// `struct coda_link_in`: link `source_fid` into directory `dest_fid` as `tname`.
    pub struct LinkIn {
        pub ih: InHdr,
        pub source_fid: CodaFid,
        pub dest_fid: CodaFid,
        pub tname: i32,
    }

    /// `struct coda_link_out`.
    pub struct LinkOut {
        pub out: OutHdr,
    }

    /// `struct coda_rename_in`; `srcname` and `destname` are offsets of NUL-terminated names.
    pub struct RenameIn {
        pub ih: InHdr,
        pub source_fid: CodaFid,
        pub srcname: i32,
        pub dest_fid: CodaFid,
        pub destname: i32,
    }

    /// `struct coda_rename_out`.
    pub struct RenameOut {
        pub out: OutHdr,
    }

    /// `struct coda_mkdir_in`; `name` is the offset of a NUL-terminated name.
    pub struct MkdirIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub _pad0: u32,
        pub attr: CodaVattr,
        pub name: i32,
        pub _pad1: u32,
    }

    /// `struct coda_mkdir_out`.
    pub struct MkdirOut {
        pub oh: OutHdr,
        pub vfid: CodaFid,
        pub _pad0: u32,
        pub attr: CodaVattr,
    }

    /// `struct coda_rmdir_in`; `name` is the offset of a NUL-terminated name.
    pub struct RmdirIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub name: i32,
    }

    /// `struct coda_rmdir_out`.
    pub struct RmdirOut {
        pub out: OutHdr,
    }

    /// `struct coda_symlink_in`: in directory `vfid`, create `tname` pointing at `srcname`
    /// (both offsets of NUL-terminated strings).
    pub struct SymlinkIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub srcname: i32,
        pub attr: CodaVattr,
        pub tname: i32,
        pub _pad0: u32,
    }

    /// `struct coda_symlink_out`.
    pub struct SymlinkOut {
        pub out: OutHdr,
    }

    /// `struct coda_readlink_in`.
    pub struct ReadlinkIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
    }

    /// `struct coda_readlink_out`; `data` is the offset of `count` bytes of link target.
    pub struct ReadlinkOut {
        pub oh: OutHdr,
        pub count: i32,
        pub data: u64,
    }

    /// `struct coda_fsync_in`.
    pub struct FsyncIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
    }

    /// `struct coda_fsync_out`.
    pub struct FsyncOut {
        pub out: OutHdr,
    }

    /// `struct coda_vget_in`.
    pub struct VgetIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
    }

    /// `struct coda_vget_out`.
    pub struct VgetOut {
        pub oh: OutHdr,
        pub vfid: CodaFid,
        pub vtype: i32,
    }

    /// `struct coda_purgeuser_out` (downcall).
    pub struct PurgeuserOut {
        pub oh: OutHdr,
        pub uid: u32,
    }

    /// `struct coda_zapfile_out` (downcall).
    pub struct ZapfileOut {
        pub oh: OutHdr,
        pub fid: CodaFid,
    }

    /// `struct coda_zapdir_out` (downcall).
    pub struct ZapdirOut {
        pub oh: OutHdr,
        pub fid: CodaFid,
    }

    /// `struct coda_purgefid_out` (downcall).
    pub struct PurgefidOut {
        pub oh: OutHdr,
        pub fid: CodaFid,
    }

    /// `struct coda_replace_out` (downcall).
    pub struct ReplaceOut {
        pub oh: OutHdr,
        pub new_fid: CodaFid,
        pub old_fid: CodaFid,
    }

    /// `struct coda_open_by_fd_in`.
    pub struct OpenByFdIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_open_by_fd_out` as userspace sees it (without the kernel-only `fh`).
    pub struct OpenByFdOut {
        pub oh: OutHdr,
        pub fd: i32,
    }

    /// `struct coda_open_by_path_in`.
    pub struct OpenByPathIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub flags: i32,
    }

    /// `struct coda_open_by_path_out`.
    pub struct OpenByPathOut {
        pub oh: OutHdr,
        pub path: i32,
    }

    /// `struct coda_statfs_in`.
    pub struct StatfsIn {
        pub ih: InHdr,
    }

    /// `struct coda_statfs_out`.
    pub struct StatfsOut {
        pub oh: OutHdr,
        pub stat: CodaStatfs,
    }

    /// `struct coda_access_intent_in`.
    pub struct AccessIntentIn {
        pub ih: InHdr,
        pub vfid: CodaFid,
        pub count: i32,
        pub pos: i32,
        pub r#type: i32,
    }

    /// `struct coda_access_intent_out`.
    pub struct AccessIntentOut {
        pub out: OutHdr,
    }
}

pub const IN_HDR_SIZE: usize = 20;
pub const OUT_HDR_SIZE: usize = 12;
const _: () = assert!(size_of::<InHdr>() == IN_HDR_SIZE);
const _: () = assert!(size_of::<OutHdr>() == OUT_HDR_SIZE);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Largest of a list of sizes, for the sizes of C unions.
macro_rules! max_size {
    ($($t:ty),+ $(,)?) => {{
        let mut m = 0;
        $(m = max(m, size_of::<$t>());)+
        m
    }};
}

/// `sizeof(union inputArgs)`.
pub const INPUT_ARGS_SIZE: usize = max_size!(
    InHdr,
    OpenIn,
    StoreIn,
    ReleaseIn,
    CloseIn,
    IoctlIn,
    GetattrIn,
    SetattrIn,
    AccessIn,
    LookupIn,
    CreateIn,
    RemoveIn,
    LinkIn,
    RenameIn,
    MkdirIn,
    RmdirIn,
    SymlinkIn,
    ReadlinkIn,
    FsyncIn,
    VgetIn,
    OpenByFdIn,
    OpenByPathIn,
    StatfsIn,
    AccessIntentIn,
);

/// `sizeof(union outputArgs)` as userspace sees it.  The kernel's own `coda_open_by_fd_out`
/// has an extra pointer (24 bytes), still smaller than the largest member.
pub const OUTPUT_ARGS_SIZE: usize = max_size!(
    OutHdr,
    RootOut,
    OpenOut,
    IoctlOut,
    GetattrOut,
    LookupOut,
    CreateOut,
    MkdirOut,
    ReadlinkOut,
    VgetOut,
    PurgeuserOut,
    ZapfileOut,
    ZapdirOut,
    PurgefidOut,
    ReplaceOut,
    OpenByFdOut,
    OpenByPathOut,
    StatfsOut,
);

/// `sizeof(union coda_downcalls)`.
pub const DOWNCALLS_SIZE: usize =
    max_size!(PurgeuserOut, ZapfileOut, ZapdirOut, PurgefidOut, ReplaceOut);

/// `VC_MAXMSGSIZE`: the largest message either way.
pub const VC_MAXMSGSIZE: usize = INPUT_ARGS_SIZE + OUTPUT_ARGS_SIZE + VC_MAXDATASIZE as usize;

const _: () = assert!(INPUT_ARGS_SIZE == 192);
const _: () = assert!(OUTPUT_ARGS_SIZE == 168);
const _: () = assert!(VC_MAXMSGSIZE == 8552);

// ---------------------------------------------------------------------------------------------
// Parsing and building.

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// Shorter than its fixed part.
    Short,
    /// Longer than `VC_MAXMSGSIZE`, or a name or data longer than allowed.
    TooLong,
    /// An offset (or offset + length) pointing outside the message or into its fixed part.
    BadOffset,
    /// An opcode that is not valid here.
    BadOpcode,
    /// A length field or message size that is wrong for the opcode.
    BadLength,
    /// A name with no NUL inside the message.
    Unterminated,
    /// An empty name, or one holding a NUL or '/'.
    BadName,
    /// The output buffer is too small.
    NoSpace,
}

/// Copies the fixed part `T` out of the start of `msg` (any alignment).
pub fn read_msg<T: FromBytes>(msg: &[u8]) -> Result<T, MsgError> {
    if msg.len() > VC_MAXMSGSIZE {
        return Err(MsgError::TooLong);
    }
    T::read_from_prefix(msg)
        .map(|(v, _)| v)
        .map_err(|_| MsgError::Short)
}

/// The header of an upcall.
pub fn in_hdr(msg: &[u8]) -> Result<InHdr, MsgError> {
    read_msg::<InHdr>(msg)
}

/// The header of a reply or downcall.
pub fn out_hdr(msg: &[u8]) -> Result<OutHdr, MsgError> {
    read_msg::<OutHdr>(msg)
}

/// Checks the size of a whole message with a fixed part of `fixed` bytes.
fn check_size(msg: &[u8], fixed: usize) -> Result<(), MsgError> {
    if msg.len() > VC_MAXMSGSIZE {
        return Err(MsgError::TooLong);
    }
    if msg.len() < fixed {
        return Err(MsgError::Short);
    }
    Ok(())
}

/// `len` bytes at `offset` of `msg`, which must lie after the fixed part (`fixed` bytes) and
/// inside the message.
pub fn data_at(msg: &[u8], fixed: usize, offset: u64, len: u64) -> Result<&[u8], MsgError> {
    check_size(msg, fixed)?;
    let off = usize::try_from(offset).map_err(|_| MsgError::BadOffset)?;
    let len = usize::try_from(len).map_err(|_| MsgError::BadLength)?;
    if off < fixed {
        return Err(MsgError::BadOffset);
    }
    let end = off.checked_add(len).ok_or(MsgError::BadOffset)?;
    msg.get(off..end).ok_or(MsgError::BadOffset)
}

/// The NUL-terminated string at `offset` of `msg`, without its NUL.
///
/// Accepted: an offset at or after the fixed part (`fixed` bytes) and inside the message, a
/// NUL inside the message, 1 ..= `max_len` bytes before it.  Bytes after the NUL (the C
/// client's padding) are ignored.
pub fn string_at(msg: &[u8], fixed: usize, offset: i32, max_len: usize) -> Result<&[u8], MsgError> {
    check_size(msg, fixed)?;
    let off = usize::try_from(offset).map_err(|_| MsgError::BadOffset)?;
    if off < fixed {
        return Err(MsgError::BadOffset);
    }
    let rest = match msg.get(off..) {
        Some(rest) if !rest.is_empty() => rest,
        _ => return Err(MsgError::BadOffset),
    };
    let window = rest.get(..max_len + 1).unwrap_or(rest);
    match window.iter().position(|&b| b == 0) {
        Some(0) => Err(MsgError::BadName),
        Some(n) => Ok(&rest[..n]),
        None if rest.len() > max_len => Err(MsgError::TooLong),
        None => Err(MsgError::Unterminated),
    }
}

/// A file name: a string of 1 ..= `CODA_MAXNAMLEN` bytes holding no '/'.
pub fn name_at(msg: &[u8], fixed: usize, offset: i32) -> Result<&[u8], MsgError> {
    let name = string_at(msg, fixed, offset, CODA_MAXNAMLEN)?;
    if name.contains(&b'/') {
        return Err(MsgError::BadName);
    }
    Ok(name)
}

/// Parses `T` and checks the opcode in its first word.
fn read_op<T: FromBytes>(msg: &[u8], opcode: u32) -> Result<T, MsgError> {
    let m = read_msg::<T>(msg)?;
    let (op, _) = u32::read_from_prefix(msg).map_err(|_| MsgError::Short)?;
    if op != opcode {
        return Err(MsgError::BadOpcode);
    }
    Ok(m)
}

/// CODA_LOOKUP: the request and the name looked up.
pub fn parse_lookup(msg: &[u8]) -> Result<(LookupIn, &[u8]), MsgError> {
    let m = read_op::<LookupIn>(msg, CODA_LOOKUP)?;
    Ok((m, name_at(msg, size_of::<LookupIn>(), m.name)?))
}

/// CODA_CREATE: the request and the new name.
pub fn parse_create(msg: &[u8]) -> Result<(CreateIn, &[u8]), MsgError> {
    let m = read_op::<CreateIn>(msg, CODA_CREATE)?;
    Ok((m, name_at(msg, size_of::<CreateIn>(), m.name)?))
}

/// CODA_REMOVE: the request and the name removed.
pub fn parse_remove(msg: &[u8]) -> Result<(RemoveIn, &[u8]), MsgError> {
    let m = read_op::<RemoveIn>(msg, CODA_REMOVE)?;
    Ok((m, name_at(msg, size_of::<RemoveIn>(), m.name)?))
}

/// CODA_LINK: the request and the new name.
pub fn parse_link(msg: &[u8]) -> Result<(LinkIn, &[u8]), MsgError> {
    let m = read_op::<LinkIn>(msg, CODA_LINK)?;
    Ok((m, name_at(msg, size_of::<LinkIn>(), m.tname)?))
}

/// CODA_RENAME: the request, the old name and the new name.
pub fn parse_rename(msg: &[u8]) -> Result<(RenameIn, &[u8], &[u8]), MsgError> {
    let m = read_op::<RenameIn>(msg, CODA_RENAME)?;
    let src = name_at(msg, size_of::<RenameIn>(), m.srcname)?;
    let dst = name_at(msg, size_of::<RenameIn>(), m.destname)?;
    Ok((m, src, dst))
}

/// CODA_MKDIR: the request and the new name.
pub fn parse_mkdir(msg: &[u8]) -> Result<(MkdirIn, &[u8]), MsgError> {
    let m = read_op::<MkdirIn>(msg, CODA_MKDIR)?;
    Ok((m, name_at(msg, size_of::<MkdirIn>(), m.name)?))
}

/// CODA_RMDIR: the request and the name removed.
pub fn parse_rmdir(msg: &[u8]) -> Result<(RmdirIn, &[u8]), MsgError> {
    let m = read_op::<RmdirIn>(msg, CODA_RMDIR)?;
    Ok((m, name_at(msg, size_of::<RmdirIn>(), m.name)?))
}

/// CODA_SYMLINK: the request, the link target (`srcname`, 1 ..= `CODA_MAXPATHLEN` bytes)
/// and the new name (`tname`).
pub fn parse_symlink(msg: &[u8]) -> Result<(SymlinkIn, &[u8], &[u8]), MsgError> {
    let m = read_op::<SymlinkIn>(msg, CODA_SYMLINK)?;
    let target = string_at(msg, size_of::<SymlinkIn>(), m.srcname, CODA_MAXPATHLEN)?;
    let name = name_at(msg, size_of::<SymlinkIn>(), m.tname)?;
    Ok((m, target, name))
}

/// CODA_IOCTL request: the request and its `len` (<= `VC_MAXDATASIZE`) data bytes.
pub fn parse_ioctl_in(msg: &[u8]) -> Result<(IoctlIn, &[u8]), MsgError> {
    let m = read_op::<IoctlIn>(msg, CODA_IOCTL)?;
    let len = checked_len(m.len, VC_MAXDATASIZE as usize)?;
    Ok((m, data_at(msg, size_of::<IoctlIn>(), m.data, len)?))
}

/// CODA_IOCTL reply: the reply and its `len` (<= `VC_MAXDATASIZE`) data bytes.  A reply with
/// a nonzero result carries no data.
pub fn parse_ioctl_out(msg: &[u8]) -> Result<(IoctlOut, &[u8]), MsgError> {
    let m = read_op::<IoctlOut>(msg, CODA_IOCTL)?;
    if m.oh.result != 0 {
        return Ok((m, &[]));
    }
    let len = checked_len(m.len, VC_MAXDATASIZE as usize)?;
    Ok((m, data_at(msg, size_of::<IoctlOut>(), m.data, len)?))
}

/// CODA_READLINK reply: the reply and its `count` (<= `CODA_MAXPATHLEN`) bytes of target (not
/// NUL-terminated; a NUL after them is allowed and not returned).  A reply with a nonzero
/// result carries no data.
pub fn parse_readlink_out(msg: &[u8]) -> Result<(ReadlinkOut, &[u8]), MsgError> {
    let m = read_op::<ReadlinkOut>(msg, CODA_READLINK)?;
    if m.oh.result != 0 {
        return Ok((m, &[]));
    }
    let len = checked_len(m.count, CODA_MAXPATHLEN)?;
    Ok((m, data_at(msg, size_of::<ReadlinkOut>(), m.data, len)?))
}

fn checked_len(len: i32, max: usize) -> Result<u64, MsgError> {
    let len = usize::try_from(len).map_err(|_| MsgError::BadLength)?;
    if len > max {
        return Err(MsgError::TooLong);
    }
    Ok(len as u64)
}

/// Checks a message Venus wrote as a downcall and returns its opcode.  The size must be exact:
/// the opcode's structure, or for CODA_FLUSH a bare `OutHdr` or a whole `union outputArgs`.
pub fn check_downcall(msg: &[u8]) -> Result<u32, MsgError> {
    if msg.len() > VC_MAXMSGSIZE {
        return Err(MsgError::TooLong);
    }
    let oh = out_hdr(msg)?;
    let ok = match oh.opcode {
        CODA_FLUSH => msg.len() == OUT_HDR_SIZE || msg.len() == OUTPUT_ARGS_SIZE,
        CODA_PURGEUSER => msg.len() == size_of::<PurgeuserOut>(),
        CODA_ZAPFILE => msg.len() == size_of::<ZapfileOut>(),
        CODA_ZAPDIR => msg.len() == size_of::<ZapdirOut>(),
        CODA_PURGEFID => msg.len() == size_of::<PurgefidOut>(),
        CODA_REPLACE => msg.len() == size_of::<ReplaceOut>(),
        _ => return Err(MsgError::BadOpcode),
    };
    if ok {
        Ok(oh.opcode)
    } else {
        Err(MsgError::BadLength)
    }
}

/// Writes `v` at the start of `buf` and returns its size.
pub fn put_struct<T: IntoBytes + Immutable>(buf: &mut [u8], v: &T) -> Result<usize, MsgError> {
    let bytes = v.as_bytes();
    buf.get_mut(..bytes.len())
        .ok_or(MsgError::NoSpace)?
        .copy_from_slice(bytes);
    Ok(bytes.len())
}

/// Writes `s` and a NUL at `offset` of `buf`, returns the offset after them rounded up to a
/// multiple of 4 (where the C client puts a following string), zero-filling the gap.
pub fn put_string(
    buf: &mut [u8],
    offset: usize,
    s: &[u8],
    max_len: usize,
) -> Result<usize, MsgError> {
    if s.is_empty() || s.contains(&0) {
        return Err(MsgError::BadName);
    }
    if s.len() > max_len {
        return Err(MsgError::TooLong);
    }
    let end = offset + ((s.len() & !3) + 4);
    let dst = buf.get_mut(offset..end).ok_or(MsgError::NoSpace)?;
    dst.fill(0);
    dst[..s.len()].copy_from_slice(s);
    Ok(end)
}

/// Writes `data` at `offset` of `buf` and returns the offset after it.
pub fn put_data(buf: &mut [u8], offset: usize, data: &[u8]) -> Result<usize, MsgError> {
    let end = offset.checked_add(data.len()).ok_or(MsgError::NoSpace)?;
    buf.get_mut(offset..end)
        .ok_or(MsgError::NoSpace)?
        .copy_from_slice(data);
    Ok(end)
}

fn off32(off: usize) -> i32 {
    // Offsets are below VC_MAXMSGSIZE.
    off as i32
}

/// Serialises `m` and `name` as the C client does; returns the number of bytes used.
fn build_named<T: IntoBytes + Immutable>(
    buf: &mut [u8],
    m: &mut T,
    set: impl FnOnce(&mut T, i32),
    name: &[u8],
) -> Result<usize, MsgError> {
    let fixed = size_of::<T>();
    check_name(name)?;
    set(m, off32(fixed));
    put_struct(buf, m)?;
    put_string(buf, fixed, name, CODA_MAXNAMLEN)?;
    Ok(fixed + name.len() + 1)
}

fn check_name(name: &[u8]) -> Result<(), MsgError> {
    if name.contains(&b'/') {
        return Err(MsgError::BadName);
    }
    Ok(())
}

/// Serialises a CODA_LOOKUP request (`m.name` is set); returns the length used.
pub fn build_lookup(buf: &mut [u8], mut m: LookupIn, name: &[u8]) -> Result<usize, MsgError> {
    build_named(buf, &mut m, |m, o| m.name = o, name)
}

/// Serialises a CODA_CREATE request (`m.name` is set); returns the length used.
pub fn build_create(buf: &mut [u8], mut m: CreateIn, name: &[u8]) -> Result<usize, MsgError> {
    build_named(buf, &mut m, |m, o| m.name = o, name)
}

/// Serialises a CODA_REMOVE request (`m.name` is set); returns the length used.
pub fn build_remove(buf: &mut [u8], mut m: RemoveIn, name: &[u8]) -> Result<usize, MsgError> {
    build_named(buf, &mut m, |m, o| m.name = o, name)
}

/// Serialises a CODA_LINK request (`m.tname` is set); returns the length used.
pub fn build_link(buf: &mut [u8], mut m: LinkIn, name: &[u8]) -> Result<usize, MsgError> {
    build_named(buf, &mut m, |m, o| m.tname = o, name)
}

/// Serialises a CODA_MKDIR request (`m.name` is set); returns the length used.
pub fn build_mkdir(buf: &mut [u8], mut m: MkdirIn, name: &[u8]) -> Result<usize, MsgError> {
    build_named(buf, &mut m, |m, o| m.name = o, name)
}

/// Serialises a CODA_RMDIR request (`m.name` is set); returns the length used.
pub fn build_rmdir(buf: &mut [u8], mut m: RmdirIn, name: &[u8]) -> Result<usize, MsgError> {
    build_named(buf, &mut m, |m, o| m.name = o, name)
}

/// Serialises a CODA_RENAME request (`m.srcname`, `m.destname` are set); returns the length
/// used.
pub fn build_rename(
    buf: &mut [u8],
    mut m: RenameIn,
    src: &[u8],
    dst: &[u8],
) -> Result<usize, MsgError> {
    check_name(src)?;
    check_name(dst)?;
    let fixed = size_of::<RenameIn>();
    let next = put_string(buf, fixed, src, CODA_MAXNAMLEN)?;
    put_string(buf, next, dst, CODA_MAXNAMLEN)?;
    m.srcname = off32(fixed);
    m.destname = off32(next);
    put_struct(buf, &m)?;
    Ok(next + dst.len() + 1)
}

/// Serialises a CODA_SYMLINK request (`m.srcname`, `m.tname` are set): in directory `m.vfid`,
/// `name` pointing at `target`.  Returns the length used.
pub fn build_symlink(
    buf: &mut [u8],
    mut m: SymlinkIn,
    target: &[u8],
    name: &[u8],
) -> Result<usize, MsgError> {
    check_name(name)?;
    let fixed = size_of::<SymlinkIn>();
    let next = put_string(buf, fixed, target, CODA_MAXPATHLEN)?;
    put_string(buf, next, name, CODA_MAXNAMLEN)?;
    m.srcname = off32(fixed);
    m.tname = off32(next);
    put_struct(buf, &m)?;
    Ok(next + name.len() + 1)
}

/// Serialises a CODA_IOCTL request with `data` (`m.len`, `m.data` are set).
pub fn build_ioctl_in(buf: &mut [u8], mut m: IoctlIn, data: &[u8]) -> Result<usize, MsgError> {
    if data.len() > VC_MAXDATASIZE as usize {
        return Err(MsgError::TooLong);
    }
    let fixed = size_of::<IoctlIn>();
    m.len = data.len() as i32;
    m.data = fixed as u64;
    put_struct(buf, &m)?;
    put_data(buf, fixed, data)
}

/// Serialises a CODA_IOCTL reply with `data` (`m.len`, `m.data` are set).
pub fn build_ioctl_out(buf: &mut [u8], mut m: IoctlOut, data: &[u8]) -> Result<usize, MsgError> {
    if data.len() > VC_MAXDATASIZE as usize {
        return Err(MsgError::TooLong);
    }
    let fixed = size_of::<IoctlOut>();
    m.len = data.len() as i32;
    m.data = fixed as u64;
    put_struct(buf, &m)?;
    put_data(buf, fixed, data)
}

/// Serialises a CODA_READLINK reply with `target` (`m.count`, `m.data` are set), followed by
/// a NUL as real Venus sends it.  Returns the length used.
pub fn build_readlink_out(
    buf: &mut [u8],
    mut m: ReadlinkOut,
    target: &[u8],
) -> Result<usize, MsgError> {
    if target.len() > CODA_MAXPATHLEN {
        return Err(MsgError::TooLong);
    }
    let fixed = size_of::<ReadlinkOut>();
    m.count = target.len() as i32;
    m.data = fixed as u64;
    put_struct(buf, &m)?;
    let end = put_data(buf, fixed, target)?;
    put_data(buf, end, &[0])
}

// ---------------------------------------------------------------------------------------------
// This driver's own uapi (uapi/coda_psdev.h).

pub const CODA_PSDEV_CTL_NAME: &str = "coda_ctl";
pub const CODA_PSDEV_IOC_MAGIC: u32 = 0xCD;
pub const CODA_PSDEV_NOPS: usize = 38;
pub const CODA_PSDEV_STATS_VERSION: u32 = 2;
pub const CODA_CTL_ASYNC: u32 = 0x1;
pub const CODA_CTL_DOWNCALL_QUEUE: usize = 4096;

const _: () = assert!(CODA_PSDEV_NOPS == CODA_NCALLS as usize);

wire_structs! {
    /// `struct coda_psdev_opstats`: per-opcode counters.
    pub struct PsdevOpStats {
        pub calls: u64,
        pub replies: u64,
        pub intr_before_read: u64,
        pub intr_after_read: u64,
        pub signals_sent: u64,
        pub timeouts: u64,
        pub aborted: u64,
        pub bad_replies: u64,
        pub async_read: u64,
        pub bytes_in: u64,
        pub bytes_out: u64,
    }
}

/// `struct coda_psdev_stats`: statistics of one /dev/cfsN.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, zd::FromBytes, zd::IntoBytes, zd::Immutable, zd::KnownLayout,
)]
pub struct PsdevStats {
    pub version: u32,
    pub minor: u32,
    pub outstanding: u64,
    pub peak_outstanding: u64,
    pub pending: u64,
    pub processing: u64,
    pub mem_bytes: u64,
    pub opens: u64,
    pub downcalls: u64,
    pub downcalls_dropped: u64,
    pub bad_writes: u64,
    pub downcall_by_op: [u64; CODA_PSDEV_NOPS],
    pub op: [PsdevOpStats; CODA_PSDEV_NOPS],
    pub wakes_skipped: u64,
    pub nudges: u64,
}

wire_structs! {
    /// `struct coda_ctl_call`: an upcall made through /dev/coda_ctl.  The C fields `in` and `out`
    /// are `in_` and `out` (`in` is a Rust keyword).
    pub struct CtlCall {
        pub minor: u32,
        pub flags: u32,
        pub in_: u64,
        pub in_len: u32,
        pub out_cap: u32,
        pub out: u64,
        pub out_len: u32,
        pub unique: u32,
    }

    /// `struct coda_ctl_downcall`: the record header read from /dev/coda_ctl.
    pub struct CtlDowncall {
        pub minor: u32,
        pub len: u32,
    }
}

wire_structs! {
    /// `struct coda_psdev_record`: the header of one message in an exchange's buffers.
    pub struct PsdevRecord {
        pub len: u32,
        pub result: i32,
    }

    /// `struct coda_psdev_exchange`: the argument of CODA_PSDEV_IOC_EXCHANGE.
    pub struct PsdevExchange {
        pub write_buf: u64,
        pub write_size: u32,
        pub write_consumed: u32,
        pub read_buf: u64,
        pub read_size: u32,
        pub read_consumed: u32,
    }
}

pub const CODA_PSDEV_RECORD_ALIGN: usize = 8;
pub const CODA_PSDEV_EXCHANGE_MAX: usize = 256 * 1024;
pub const RECORD_HDR_SIZE: usize = size_of::<PsdevRecord>();

/// Bytes a record of a `len`-byte message takes in an exchange buffer, padding included.
pub const fn record_size(len: usize) -> usize {
    (RECORD_HDR_SIZE + len).next_multiple_of(CODA_PSDEV_RECORD_ALIGN)
}

/// Writes a record of `msg` (header with result 0, the message, zeroed padding) at the start
/// of `buf`; returns the bytes it takes, [`record_size`] of the message.
pub fn put_record(buf: &mut [u8], msg: &[u8]) -> Result<usize, MsgError> {
    let len = u32::try_from(msg.len()).map_err(|_| MsgError::TooLong)?;
    let size = record_size(msg.len());
    let rec = buf.get_mut(..size).ok_or(MsgError::NoSpace)?;
    let at = put_struct(rec, &PsdevRecord { len, result: 0 })?;
    let end = put_data(rec, at, msg)?;
    rec[end..].fill(0);
    Ok(size)
}

/// The records of an exchange buffer, in order: each one's header and message. A header
/// whose length runs past the buffer, or a tail too short for a header, ends it with
/// [`MsgError::Short`]; the last record may lack its padding.
pub fn records(buf: &[u8]) -> Records<'_> {
    Records { left: buf }
}

/// See [`records`].
pub struct Records<'a> {
    left: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(PsdevRecord, &'a [u8]), MsgError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left.is_empty() {
            return None;
        }
        let item = PsdevRecord::read_from_prefix(self.left)
            .ok()
            .and_then(|(rec, rest)| Some((rec, rest.get(..rec.len as usize)?)));
        let Some((rec, msg)) = item else {
            self.left = &[];
            return Some(Err(MsgError::Short));
        };
        let next = record_size(msg.len()).min(self.left.len());
        self.left = &self.left[next..];
        Some(Ok((rec, msg)))
    }
}

/// `_IOWR(CODA_PSDEV_IOC_MAGIC, 2, struct coda_psdev_exchange)`.
pub const CODA_PSDEV_IOC_EXCHANGE: u32 = ioc(
    IOC_READ | IOC_WRITE,
    CODA_PSDEV_IOC_MAGIC,
    2,
    size_of::<PsdevExchange>(),
);
/// `_IOR(CODA_PSDEV_IOC_MAGIC, 1, struct coda_psdev_stats)`.
pub const CODA_PSDEV_IOC_STATS: u32 =
    ioc(IOC_READ, CODA_PSDEV_IOC_MAGIC, 1, size_of::<PsdevStats>());
/// `_IOWR(CODA_PSDEV_IOC_MAGIC, 0x10, struct coda_ctl_call)`.
pub const CODA_CTL_IOC_CALL: u32 = ioc(
    IOC_READ | IOC_WRITE,
    CODA_PSDEV_IOC_MAGIC,
    0x10,
    size_of::<CtlCall>(),
);
/// `_IOWR(CODA_PSDEV_IOC_MAGIC, 0x11, struct coda_psdev_stats)`.
pub const CODA_CTL_IOC_STATS: u32 = ioc(
    IOC_READ | IOC_WRITE,
    CODA_PSDEV_IOC_MAGIC,
    0x11,
    size_of::<PsdevStats>(),
);
