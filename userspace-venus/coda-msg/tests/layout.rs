// SPDX-License-Identifier: GPL-2.0

//! Layouts and constants of coda_msg.rs against the kernel's <linux/coda.h> and the
//! project's uapi/coda_psdev.h, as gcc sees them.

mod common;

use coda_msg::*;
use common::compare_with_c;
use common::Items;

/// What a userspace Venus includes: coda.h wants these BSD typedefs, and <sys/types.h> would
/// clash with the kernel's own <linux/time.h>.  They match glibc's on x86_64.
const CODA_PRELUDE: &str = "\
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
typedef unsigned short u_short;
typedef unsigned long u_long;
typedef unsigned long long u_quad_t;
typedef char *caddr_t;
typedef unsigned long ino_t;
#include <linux/ioctl.h>
#include <linux/coda.h>
";

fn coda_items() -> Items {
    let mut it = Items::default();

    layout!(it, "CodaFid", CodaFid { "opaque" => opaque });
    layout!(it, "coda_timespec", CodaTimespec { "tv_sec" => tv_sec, "tv_nsec" => tv_nsec });
    layout!(it, "coda_vattr", CodaVattr {
        "va_type" => va_type,
        "va_mode" => va_mode,
        "va_nlink" => va_nlink,
        "va_uid" => va_uid,
        "va_gid" => va_gid,
        "va_fileid" => va_fileid,
        "va_size" => va_size,
        "va_blocksize" => va_blocksize,
        "va_atime" => va_atime,
        "va_mtime" => va_mtime,
        "va_ctime" => va_ctime,
        "va_gen" => va_gen,
        "va_flags" => va_flags,
        "va_rdev" => va_rdev,
        "va_bytes" => va_bytes,
        "va_filerev" => va_filerev,
    });
    layout!(it, "coda_statfs", CodaStatfs {
        "f_blocks" => f_blocks,
        "f_bfree" => f_bfree,
        "f_bavail" => f_bavail,
        "f_files" => f_files,
        "f_ffree" => f_ffree,
    });
    layout!(it, prefix "venus_dirent", VenusDirentHdr {
        "d_fileno" => d_fileno,
        "d_reclen" => d_reclen,
        "d_type" => d_type,
        "d_namlen" => d_namlen,
    });
    it.push(
        "VENUS_DIRENT_SIZE",
        "sizeof(struct venus_dirent)",
        VENUS_DIRENT_SIZE as u64,
    );
    it.push(
        "DIRSIZ",
        "({ struct venus_dirent d = { .d_namlen = 5 }; DIRSIZ(&d); })",
        venus_dirsiz(5) as u64,
    );
    layout!(it, "coda_mount_data", CodaMountData { "version" => version, "fd" => fd });

    layout!(it, "coda_in_hdr", InHdr {
        "opcode" => opcode,
        "unique" => unique,
        "pid" => pid,
        "pgid" => pgid,
        "uid" => uid,
    });
    layout!(it, "coda_out_hdr", OutHdr {
        "opcode" => opcode,
        "unique" => unique,
        "result" => result,
    });
    it.push(
        "IN_HDR_SIZE",
        "sizeof(struct coda_in_hdr)",
        IN_HDR_SIZE as u64,
    );
    it.push(
        "OUT_HDR_SIZE",
        "sizeof(struct coda_out_hdr)",
        OUT_HDR_SIZE as u64,
    );

    layout!(it, "coda_root_in", RootIn { "in" => ih });
    layout!(it, "coda_root_out", RootOut { "oh" => oh, "VFid" => vfid });
    layout!(it, "coda_open_in", OpenIn { "ih" => ih, "VFid" => vfid, "flags" => flags });
    layout!(it, "coda_open_out", OpenOut { "oh" => oh, "dev" => dev, "inode" => inode });
    layout!(it, "coda_store_in", StoreIn { "ih" => ih, "VFid" => vfid, "flags" => flags });
    layout!(it, "coda_store_out", StoreOut { "out" => out });
    layout!(it, "coda_release_in", ReleaseIn { "ih" => ih, "VFid" => vfid, "flags" => flags });
    layout!(it, "coda_release_out", ReleaseOut { "out" => out });
    layout!(it, "coda_close_in", CloseIn { "ih" => ih, "VFid" => vfid, "flags" => flags });
    layout!(it, "coda_close_out", CloseOut { "out" => out });
    layout!(it, "coda_ioctl_in", IoctlIn {
        "ih" => ih,
        "VFid" => vfid,
        "cmd" => cmd,
        "len" => len,
        "rwflag" => rwflag,
        "data" => data,
    });
    layout!(it, "coda_ioctl_out", IoctlOut { "oh" => oh, "len" => len, "data" => data });
    layout!(it, "coda_getattr_in", GetattrIn { "ih" => ih, "VFid" => vfid });
    layout!(it, "coda_getattr_out", GetattrOut { "oh" => oh, "attr" => attr });
    layout!(it, "coda_setattr_in", SetattrIn { "ih" => ih, "VFid" => vfid, "attr" => attr });
    layout!(it, "coda_setattr_out", SetattrOut { "out" => out });
    layout!(it, "coda_access_in", AccessIn { "ih" => ih, "VFid" => vfid, "flags" => flags });
    layout!(it, "coda_access_out", AccessOut { "out" => out });
    layout!(it, "coda_lookup_in", LookupIn {
        "ih" => ih,
        "VFid" => vfid,
        "name" => name,
        "flags" => flags,
    });
    layout!(it, "coda_lookup_out", LookupOut { "oh" => oh, "VFid" => vfid, "vtype" => vtype });
    layout!(it, "coda_create_in", CreateIn {
        "ih" => ih,
        "VFid" => vfid,
        "attr" => attr,
        "excl" => excl,
        "mode" => mode,
        "name" => name,
    });
    layout!(it, "coda_create_out", CreateOut { "oh" => oh, "VFid" => vfid, "attr" => attr });
    layout!(it, "coda_remove_in", RemoveIn { "ih" => ih, "VFid" => vfid, "name" => name });
    layout!(it, "coda_remove_out", RemoveOut { "out" => out });
    layout!(it, "coda_link_in", LinkIn {
        "ih" => ih,
        "sourceFid" => source_fid,
        "destFid" => dest_fid,
        "tname" => tname,
    });
    layout!(it, "coda_link_out", LinkOut { "out" => out });
    layout!(it, "coda_rename_in", RenameIn {
        "ih" => ih,
        "sourceFid" => source_fid,
        "srcname" => srcname,
        "destFid" => dest_fid,
        "destname" => destname,
    });
    layout!(it, "coda_rename_out", RenameOut { "out" => out });
    layout!(it, "coda_mkdir_in", MkdirIn {
        "ih" => ih,
        "VFid" => vfid,
        "attr" => attr,
        "name" => name,
    });
    layout!(it, "coda_mkdir_out", MkdirOut { "oh" => oh, "VFid" => vfid, "attr" => attr });
    layout!(it, "coda_rmdir_in", RmdirIn { "ih" => ih, "VFid" => vfid, "name" => name });
    layout!(it, "coda_rmdir_out", RmdirOut { "out" => out });
    layout!(it, "coda_symlink_in", SymlinkIn {
        "ih" => ih,
        "VFid" => vfid,
        "srcname" => srcname,
        "attr" => attr,
        "tname" => tname,
    });
    layout!(it, "coda_symlink_out", SymlinkOut { "out" => out });
    layout!(it, "coda_readlink_in", ReadlinkIn { "ih" => ih, "VFid" => vfid });
    layout!(it, "coda_readlink_out", ReadlinkOut {
        "oh" => oh,
        "count" => count,
        "data" => data,
    });
    layout!(it, "coda_fsync_in", FsyncIn { "ih" => ih, "VFid" => vfid });
    layout!(it, "coda_fsync_out", FsyncOut { "out" => out });
    layout!(it, "coda_vget_in", VgetIn { "ih" => ih, "VFid" => vfid });
    layout!(it, "coda_vget_out", VgetOut { "oh" => oh, "VFid" => vfid, "vtype" => vtype });
    layout!(it, "coda_purgeuser_out", PurgeuserOut { "oh" => oh, "uid" => uid });
    layout!(it, "coda_zapfile_out", ZapfileOut { "oh" => oh, "CodaFid" => fid });
    layout!(it, "coda_zapdir_out", ZapdirOut { "oh" => oh, "CodaFid" => fid });
    layout!(it, "coda_purgefid_out", PurgefidOut { "oh" => oh, "CodaFid" => fid });
    layout!(it, "coda_replace_out", ReplaceOut {
        "oh" => oh,
        "NewFid" => new_fid,
        "OldFid" => old_fid,
    });
    layout!(it, "coda_open_by_fd_in", OpenByFdIn {
        "ih" => ih,
        "VFid" => vfid,
        "flags" => flags,
    });
    layout!(it, "coda_open_by_fd_out", OpenByFdOut { "oh" => oh, "fd" => fd });
    layout!(it, "coda_open_by_path_in", OpenByPathIn {
        "ih" => ih,
        "VFid" => vfid,
        "flags" => flags,
    });
    layout!(it, "coda_open_by_path_out", OpenByPathOut { "oh" => oh, "path" => path });
    layout!(it, "coda_statfs_in", StatfsIn { "in" => ih });
    layout!(it, "coda_statfs_out", StatfsOut { "oh" => oh, "stat" => stat });
    layout!(it, "coda_access_intent_in", AccessIntentIn {
        "ih" => ih,
        "VFid" => vfid,
        "count" => count,
        "pos" => pos,
        "type" => r#type,
    });
    layout!(it, "coda_access_intent_out", AccessIntentOut { "out" => out });

    it.push(
        "INPUT_ARGS_SIZE",
        "sizeof(union inputArgs)",
        INPUT_ARGS_SIZE as u64,
    );
    it.push(
        "OUTPUT_ARGS_SIZE",
        "sizeof(union outputArgs)",
        OUTPUT_ARGS_SIZE as u64,
    );
    it.push(
        "DOWNCALLS_SIZE",
        "sizeof(union coda_downcalls)",
        DOWNCALLS_SIZE as u64,
    );

    let c = |it: &mut Items, name: &str, v: u64| it.constant(name, v);
    c(&mut it, "VC_MAXDATASIZE", VC_MAXDATASIZE as u64);
    c(&mut it, "VC_MAXMSGSIZE", VC_MAXMSGSIZE as u64);
    c(&mut it, "CODA_KERNEL_VERSION", CODA_KERNEL_VERSION as u64);
    c(&mut it, "CIOC_KERNEL_VERSION", CIOC_KERNEL_VERSION as u64);
    c(&mut it, "CODA_MAXNAMLEN", CODA_MAXNAMLEN as u64);
    c(&mut it, "CODA_MAXPATHLEN", CODA_MAXPATHLEN as u64);
    c(&mut it, "CODA_MAXSYMLINK", CODA_MAXSYMLINK as u64);
    c(&mut it, "CODA_MAXSYMLINKS", CODA_MAXSYMLINKS as u64);
    c(&mut it, "CODA_MOUNT_VERSION", CODA_MOUNT_VERSION as u64);
    c(&mut it, "CODA_CONTROLLEN", CODA_CONTROLLEN as u64);
    c(&mut it, "CODA_NOCACHE", CODA_NOCACHE as u64);
    for (name, v) in [
        ("C_O_READ", C_O_READ),
        ("C_O_WRITE", C_O_WRITE),
        ("C_O_TRUNC", C_O_TRUNC),
        ("C_O_EXCL", C_O_EXCL),
        ("C_O_CREAT", C_O_CREAT),
        ("C_M_READ", C_M_READ),
        ("C_M_WRITE", C_M_WRITE),
        ("C_A_C_OK", C_A_C_OK),
        ("C_A_R_OK", C_A_R_OK),
        ("C_A_W_OK", C_A_W_OK),
        ("C_A_X_OK", C_A_X_OK),
        ("C_A_F_OK", C_A_F_OK),
    ] {
        c(&mut it, name, v as u64);
    }
    for (name, v) in [
        ("CDT_UNKNOWN", CDT_UNKNOWN),
        ("CDT_FIFO", CDT_FIFO),
        ("CDT_CHR", CDT_CHR),
        ("CDT_DIR", CDT_DIR),
        ("CDT_BLK", CDT_BLK),
        ("CDT_REG", CDT_REG),
        ("CDT_LNK", CDT_LNK),
        ("CDT_SOCK", CDT_SOCK),
        ("CDT_WHT", CDT_WHT),
    ] {
        c(&mut it, name, v as u64);
    }
    for (name, v) in [
        ("C_VNON", C_VNON),
        ("C_VREG", C_VREG),
        ("C_VDIR", C_VDIR),
        ("C_VBLK", C_VBLK),
        ("C_VCHR", C_VCHR),
        ("C_VLNK", C_VLNK),
        ("C_VSOCK", C_VSOCK),
        ("C_VFIFO", C_VFIFO),
        ("C_VBAD", C_VBAD),
        ("CLU_CASE_SENSITIVE", CLU_CASE_SENSITIVE),
        ("CLU_CASE_INSENSITIVE", CLU_CASE_INSENSITIVE),
        ("CODA_ACCESS_TYPE_READ", CODA_ACCESS_TYPE_READ),
        ("CODA_ACCESS_TYPE_WRITE", CODA_ACCESS_TYPE_WRITE),
        ("CODA_ACCESS_TYPE_MMAP", CODA_ACCESS_TYPE_MMAP),
        ("CODA_ACCESS_TYPE_READ_FINISH", CODA_ACCESS_TYPE_READ_FINISH),
        (
            "CODA_ACCESS_TYPE_WRITE_FINISH",
            CODA_ACCESS_TYPE_WRITE_FINISH,
        ),
    ] {
        c(&mut it, name, v as u64);
    }
    for (name, v) in [
        ("CODA_ROOT", CODA_ROOT),
        ("CODA_OPEN_BY_FD", CODA_OPEN_BY_FD),
        ("CODA_OPEN", CODA_OPEN),
        ("CODA_CLOSE", CODA_CLOSE),
        ("CODA_IOCTL", CODA_IOCTL),
        ("CODA_GETATTR", CODA_GETATTR),
        ("CODA_SETATTR", CODA_SETATTR),
        ("CODA_ACCESS", CODA_ACCESS),
        ("CODA_LOOKUP", CODA_LOOKUP),
        ("CODA_CREATE", CODA_CREATE),
        ("CODA_REMOVE", CODA_REMOVE),
        ("CODA_LINK", CODA_LINK),
        ("CODA_RENAME", CODA_RENAME),
        ("CODA_MKDIR", CODA_MKDIR),
        ("CODA_RMDIR", CODA_RMDIR),
        ("CODA_SYMLINK", CODA_SYMLINK),
        ("CODA_READLINK", CODA_READLINK),
        ("CODA_FSYNC", CODA_FSYNC),
        ("CODA_VGET", CODA_VGET),
        ("CODA_SIGNAL", CODA_SIGNAL),
        ("CODA_REPLACE", CODA_REPLACE),
        ("CODA_FLUSH", CODA_FLUSH),
        ("CODA_PURGEUSER", CODA_PURGEUSER),
        ("CODA_ZAPFILE", CODA_ZAPFILE),
        ("CODA_ZAPDIR", CODA_ZAPDIR),
        ("CODA_PURGEFID", CODA_PURGEFID),
        ("CODA_OPEN_BY_PATH", CODA_OPEN_BY_PATH),
        ("CODA_RESOLVE", CODA_RESOLVE),
        ("CODA_REINTEGRATE", CODA_REINTEGRATE),
        ("CODA_STATFS", CODA_STATFS),
        ("CODA_STORE", CODA_STORE),
        ("CODA_RELEASE", CODA_RELEASE),
        ("CODA_ACCESS_INTENT", CODA_ACCESS_INTENT),
        ("CODA_NCALLS", CODA_NCALLS),
    ] {
        c(&mut it, name, v as u64);
    }
    // DOWNCALL() over every opcode, and past the end.
    for op in 0..64u32 {
        it.push(
            format!("DOWNCALL({op})"),
            format!("DOWNCALL({op})"),
            is_downcall(op) as u64,
        );
    }
    it
}

#[test]
fn coda_h_layout() {
    let k = common::ksrc();
    compare_with_c(
        "coda_h",
        CODA_PRELUDE,
        &[k.join("include/uapi"), k.join("arch/x86/include/uapi")],
        &coda_items(),
    );
}

fn psdev_items() -> Items {
    let mut it = Items::default();
    layout!(it, "coda_psdev_opstats", PsdevOpStats {
        "calls" => calls,
        "replies" => replies,
        "intr_before_read" => intr_before_read,
        "intr_after_read" => intr_after_read,
        "signals_sent" => signals_sent,
        "timeouts" => timeouts,
        "aborted" => aborted,
        "bad_replies" => bad_replies,
        "async_read" => async_read,
        "bytes_in" => bytes_in,
        "bytes_out" => bytes_out,
    });
    layout!(it, "coda_psdev_stats", PsdevStats {
        "version" => version,
        "minor" => minor,
        "outstanding" => outstanding,
        "peak_outstanding" => peak_outstanding,
        "pending" => pending,
        "processing" => processing,
        "mem_bytes" => mem_bytes,
        "opens" => opens,
        "downcalls" => downcalls,
        "downcalls_dropped" => downcalls_dropped,
        "bad_writes" => bad_writes,
        "downcall_by_op" => downcall_by_op,
        "op" => op,
        "wakes_skipped" => wakes_skipped,
        "nudges" => nudges,
    });
    layout!(it, "coda_ctl_call", CtlCall {
        "minor" => minor,
        "flags" => flags,
        "in" => in_,
        "in_len" => in_len,
        "out_cap" => out_cap,
        "out" => out,
        "out_len" => out_len,
        "unique" => unique,
    });
    layout!(it, "coda_ctl_downcall", CtlDowncall { "minor" => minor, "len" => len });
    layout!(it, "coda_psdev_record", PsdevRecord { "len" => len, "result" => result });
    layout!(it, "coda_psdev_exchange", PsdevExchange {
        "write_buf" => write_buf,
        "write_size" => write_size,
        "write_consumed" => write_consumed,
        "read_buf" => read_buf,
        "read_size" => read_size,
        "read_consumed" => read_consumed,
    });
    it.constant("CODA_PSDEV_RECORD_ALIGN", CODA_PSDEV_RECORD_ALIGN as u64);
    it.constant("CODA_PSDEV_EXCHANGE_MAX", CODA_PSDEV_EXCHANGE_MAX as u64);
    it.constant("CODA_PSDEV_IOC_EXCHANGE", CODA_PSDEV_IOC_EXCHANGE as u64);
    it.constant("CODA_PSDEV_IOC_MAGIC", CODA_PSDEV_IOC_MAGIC as u64);
    it.constant("CODA_PSDEV_NOPS", CODA_PSDEV_NOPS as u64);
    it.constant("CODA_PSDEV_STATS_VERSION", CODA_PSDEV_STATS_VERSION as u64);
    it.constant("CODA_PSDEV_IOC_STATS", CODA_PSDEV_IOC_STATS as u64);
    it.constant("CODA_CTL_ASYNC", CODA_CTL_ASYNC as u64);
    it.constant("CODA_CTL_IOC_CALL", CODA_CTL_IOC_CALL as u64);
    it.constant("CODA_CTL_IOC_STATS", CODA_CTL_IOC_STATS as u64);
    it.constant("CODA_CTL_DOWNCALL_QUEUE", CODA_CTL_DOWNCALL_QUEUE as u64);
    it.push(
        "CODA_PSDEV_CTL_NAME",
        "sizeof(CODA_PSDEV_CTL_NAME) == 9 && !strcmp(CODA_PSDEV_CTL_NAME, \"coda_ctl\")",
        (CODA_PSDEV_CTL_NAME == "coda_ctl") as u64,
    );
    it
}

#[test]
fn coda_psdev_h_layout() {
    let k = common::ksrc();
    compare_with_c(
        "coda_psdev_h",
        "#include <stdio.h>\n#include <stddef.h>\n#include <string.h>\n#include <coda_psdev.h>\n",
        &[
            common::project_uapi(),
            k.join("include/uapi"),
            k.join("arch/x86/include/uapi"),
        ],
        &psdev_items(),
    );
}

/// The encoding itself, against values computed by hand from asm-generic/ioctl.h.
#[test]
fn ioc_encoding() {
    assert_eq!(CIOC_KERNEL_VERSION, 0xc008_630a);
    assert_eq!(ioc(IOC_NONE, b'T' as u32, 1, 0), 0x5401);
    assert_eq!(ioc(IOC_WRITE, 0xCD, 2, 4), 0x4004_cd02);
    assert_eq!(ioc(IOC_READ, 0xCD, 3, 0x3fff), 0xbfff_cd03);
}
