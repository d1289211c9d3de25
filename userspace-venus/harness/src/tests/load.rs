// SPDX-License-Identifier: GPL-2.0

//! Module parameters that must make insmod fail (run with the module unloaded).

use std::path::Path;

use crate::check::TestResult;
use crate::ensure;
use crate::module;
use crate::runner::Env;

fn refused(env: &Env, arg: &str) -> TestResult {
    ensure!(!module::loaded(), "the module is loaded before the test");
    if module::insmod(&env.ko, &[arg.to_owned()]).is_ok() {
        let _ = module::unload_retrying();
        return Err(format!("insmod with {arg} succeeded"));
    }
    ensure!(
        !module::loaded(),
        "the module is loaded after the failed insmod"
    );
    ensure!(
        !Path::new(&module::cfs_path(0)).exists(),
        "/dev/cfs0 exists after the failed insmod"
    );
    ensure!(
        !Path::new(module::CTL_PATH).exists(),
        "{} exists after the failed insmod",
        module::CTL_PATH
    );
    Ok(())
}

pub fn devices_zero(env: &Env) -> TestResult {
    refused(env, "devices=0")
}

pub fn devices_thousand(env: &Env) -> TestResult {
    refused(env, "devices=1000")
}

pub fn devices_seventeen(env: &Env) -> TestResult {
    refused(env, "devices=17")
}

pub fn max_outstanding_zero(env: &Env) -> TestResult {
    refused(env, "max_outstanding=0")
}
