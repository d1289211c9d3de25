// SPDX-License-Identifier: GPL-2.0

//! Loading and unloading coda_psdev.ko with the module parameters of a test group.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::check::wait_until;

pub const MODULE: &str = "coda_psdev";
pub const CTL_PATH: &str = "/dev/coda_ctl";
/// The module's default device count.
pub const DEFAULT_DEVICES: u32 = 4;

/// The module parameters of one test group; `None` leaves the module's default.
#[derive(Clone, Debug, Default)]
pub struct ModParams {
    pub devices: Option<u32>,
    pub timeout: Option<u32>,
    pub hard: Option<bool>,
    pub max_outstanding: Option<u32>,
}

impl ModParams {
    /// The `name=value` arguments for insmod.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(v) = self.devices {
            a.push(format!("devices={v}"));
        }
        if let Some(v) = self.timeout {
            a.push(format!("timeout={v}"));
        }
        if let Some(v) = self.hard {
            a.push(format!("hard={}", u8::from(v)));
        }
        if let Some(v) = self.max_outstanding {
            a.push(format!("max_outstanding={v}"));
        }
        a
    }

    pub fn devices(&self) -> u32 {
        self.devices.unwrap_or(DEFAULT_DEVICES)
    }
}

pub fn cfs_path(minor: u32) -> String {
    format!("/dev/cfs{minor}")
}

/// Whether the module is in the kernel.
pub fn loaded() -> bool {
    Path::new("/sys/module").join(MODULE).exists()
}

/// Runs insmod; on failure returns what it printed.
pub fn insmod(ko: &Path, args: &[String]) -> Result<(), String> {
    let out = Command::new("insmod")
        .arg(ko)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run insmod: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "insmod {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs rmmod once; on failure returns what it printed.
pub fn rmmod() -> Result<(), String> {
    let out = Command::new("rmmod")
        .arg(MODULE)
        .output()
        .map_err(|e| format!("cannot run rmmod: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rmmod failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Loads the module and waits for its device nodes.
pub fn load(ko: &Path, params: &ModParams) -> Result<(), String> {
    insmod(ko, &params.args())?;
    let last = cfs_path(params.devices() - 1);
    wait_until("the device nodes appear", Duration::from_secs(5), || {
        Ok(Path::new(CTL_PATH).exists() && Path::new(&last).exists())
    })
}

/// Unloads the module, retrying for a moment: a file closed by a thread that is just exiting
/// may still hold a reference.
pub fn unload_retrying() -> Result<(), String> {
    let mut last = Ok(());
    for _ in 0..30 {
        last = rmmod();
        if last.is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}
