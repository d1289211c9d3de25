// SPDX-License-Identifier: GPL-2.0

//! coda_psdev: the Coda file system's kernel-to-Venus channel, in Rust.
//!
//! Registers `/dev/cfs0` .. `/dev/cfs<devices - 1>`, through which Venus, Coda's cache
//! manager, reads upcalls and writes replies and downcalls, and `/dev/coda_ctl`, through
//! which a root process makes upcalls as a file system would. NetBSD's `coda_psdev.c` is
//! the behaviour ported; Linux's `fs/coda/psdev.c` and `upcall.c` are the compatibility
//! reference, whose bugs (unvalidated lengths, use-after-free on signal races, lost
//! messages on short buffers) this driver does not repeat.
//!
//! Layout: [`upcall`] is the engine, [`cfs`] the device Venus opens, [`control`] the
//! control device, [`raw`] the glue holding all `unsafe`, [`coda_msg`] the wire format
//! shared with userspace.

use kernel::prelude::*;
use kernel::str::CString;

mod bridge;
mod cfs;
// Shared with userspace, where its items are a crate's public API.
#[allow(unreachable_pub)]
mod coda_msg;
mod control;
mod raw;
mod upcall;

use cfs::CfsCtx;
use cfs::CfsOps;
use control::CtlCtx;
use control::CtlOps;
use control::DowncallHub;
use raw::MiscReg;
use upcall::Config;
use upcall::VenusComm;

module! {
    type: CodaPsdevModule,
    name: "coda_psdev",
    authors: ["coda-psdev developers"],
    description: "Coda pseudo-device: the kernel-to-Venus upcall channel (/dev/cfsN)",
    license: "GPL",
    params: {
        devices: u32 {
            default: 4,
            description: "Number of /dev/cfsN devices to create (1-16)",
        },
        timeout: u32 {
            default: 30,
            description: "Seconds a /dev/coda_ctl call waits for its reply before ETIMEDOUT (0 = forever); CLOSE/STORE/RELEASE/ACCESS_INTENT and the file system's calls never time out",
        },
        hard: bool {
            default: false,
            description: "Upcalls ignore ordinary signals and never time out, only SIGKILL ends them (like coda_hard)",
        },
        max_outstanding: u32 {
            default: 1024,
            description: "Messages queued or awaiting a reply per device before callers wait (1-65536)",
        },
    },
}

const MAX_DEVICES: u32 = 16;
const MAX_OUTSTANDING: u32 = 65536;

struct CodaPsdevModule {
    _cfs: KVec<Pin<KBox<MiscReg<CfsOps>>>>,
    _ctl: Pin<KBox<MiscReg<CtlOps>>>,
}

impl Drop for CodaPsdevModule {
    fn drop(&mut self) {
        bridge::withdraw();
    }
}

impl kernel::Module for CodaPsdevModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let n = module_parameters::devices.value();
        if n == 0 || n > MAX_DEVICES {
            pr_err!("devices={} is out of range: give 1 to {}\n", n, MAX_DEVICES);
            return Err(EINVAL);
        }
        let max = module_parameters::max_outstanding.value();
        if max == 0 || max > MAX_OUTSTANDING {
            pr_err!(
                "max_outstanding={} is out of range: give 1 to {}\n",
                max,
                MAX_OUTSTANDING
            );
            return Err(EINVAL);
        }
        let config = Config {
            timeout_secs: module_parameters::timeout.value(),
            hard: module_parameters::hard.value(),
            max_outstanding: max as usize,
        };
        // SAFETY: called once, before anything can use the bridge.
        unsafe { bridge::FS_BRIDGE.init() };
        // SAFETY: as above.
        unsafe { bridge::FS_DOWNCALL.init() };
        let hub = DowncallHub::new()?;
        let mut comms = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        let mut cfs = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        for minor in 0..n {
            let comm = VenusComm::new(minor, config)?;
            comms.push(comm.clone(), GFP_KERNEL)?;
            let ctx = CfsCtx {
                comm,
                hub: hub.clone(),
            };
            let name = CString::try_from_fmt(fmt!("cfs{}", minor))?;
            cfs.push(
                KBox::pin_init(MiscReg::register(name, ctx), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        let mut minors = KVec::with_capacity(cfs.len(), GFP_KERNEL)?;
        for reg in cfs.iter() {
            minors.push(reg.minor(), GFP_KERNEL)?;
        }
        let mut ctl_comms = KVec::with_capacity(comms.len(), GFP_KERNEL)?;
        for c in comms.iter() {
            ctl_comms.push(c.clone(), GFP_KERNEL)?;
        }
        let ctl = KBox::pin_init(
            MiscReg::register(
                CString::try_from_fmt(fmt!("{}", coda_msg::CODA_PSDEV_CTL_NAME))?,
                CtlCtx {
                    comms: ctl_comms,
                    hub,
                },
            ),
            GFP_KERNEL,
        )?;
        // Last, so that no later failure leaves the bridge holding the devices; a failure
        // here empties it again.
        if let Err(e) = bridge::publish(&comms, &minors) {
            bridge::withdraw();
            return Err(e);
        }
        pr_info!(
            "{} devices, timeout {} s, hard {}, max_outstanding {}\n",
            n,
            config.timeout_secs,
            config.hard,
            max
        );
        Ok(Self {
            _cfs: cfs,
            _ctl: ctl,
        })
    }
}
