// SPDX-License-Identifier: GPL-2.0

//! The Coda wire format, shared with the kernel module: the same source file.
#![no_std]

#[path = "../../../coda_msg.rs"]
mod coda_msg;

pub use coda_msg::*;

/// Expands to `$m!(T, ...)` over every struct of the wire format and of this driver's uapi:
/// for the tests and fuzzers that must cover each one.
#[macro_export]
macro_rules! for_each_wire_struct {
    ($m:ident) => {
        $m!(
            $crate::CodaFid,
            $crate::CodaTimespec,
            $crate::CodaVattr,
            $crate::CodaStatfs,
            $crate::VenusDirentHdr,
            $crate::CodaMountData,
            $crate::InHdr,
            $crate::OutHdr,
            $crate::RootIn,
            $crate::RootOut,
            $crate::OpenIn,
            $crate::OpenOut,
            $crate::StoreIn,
            $crate::StoreOut,
            $crate::ReleaseIn,
            $crate::ReleaseOut,
            $crate::CloseIn,
            $crate::CloseOut,
            $crate::IoctlIn,
            $crate::IoctlOut,
            $crate::GetattrIn,
            $crate::GetattrOut,
            $crate::SetattrIn,
            $crate::SetattrOut,
            $crate::AccessIn,
            $crate::AccessOut,
            $crate::LookupIn,
            $crate::LookupOut,
            $crate::CreateIn,
            $crate::CreateOut,
            $crate::RemoveIn,
            $crate::RemoveOut,
            $crate::LinkIn,
            $crate::LinkOut,
            $crate::RenameIn,
            $crate::RenameOut,
            $crate::MkdirIn,
            $crate::MkdirOut,
            $crate::RmdirIn,
            $crate::RmdirOut,
            $crate::SymlinkIn,
            $crate::SymlinkOut,
            $crate::ReadlinkIn,
            $crate::ReadlinkOut,
            $crate::FsyncIn,
            $crate::FsyncOut,
            $crate::VgetIn,
            $crate::VgetOut,
            $crate::PurgeuserOut,
            $crate::ZapfileOut,
            $crate::ZapdirOut,
            $crate::PurgefidOut,
            $crate::ReplaceOut,
            $crate::OpenByFdIn,
            $crate::OpenByFdOut,
            $crate::OpenByPathIn,
            $crate::OpenByPathOut,
            $crate::StatfsIn,
            $crate::StatfsOut,
            $crate::AccessIntentIn,
            $crate::AccessIntentOut,
            $crate::PsdevOpStats,
            $crate::PsdevStats,
            $crate::CtlCall,
            $crate::CtlDowncall,
            $crate::PsdevRecord,
            $crate::PsdevExchange,
        )
    };
}
