//! The Coda wire format, shared with the kernel module: the same source file.
#![no_std]

#[path = "../../../coda_msg.rs"]
mod coda_msg;

pub use coda_msg::*;
