// SPDX-License-Identifier: GPL-2.0

//! Runs the test groups: loads the module with each group's parameters, runs every test in
//! its own thread under a watchdog, and prints one line per test and the closing tally.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::check::TestResult;
use crate::module;
use crate::module::ModParams;

/// What a test gets: the module's path and the parameters its group loaded it with.
pub struct Env {
    pub ko: PathBuf,
    pub params: ModParams,
}

pub type TestFn = fn(&Env) -> TestResult;

pub struct Test {
    pub name: &'static str,
    pub run: TestFn,
    /// After this the test counts as hung and the harness stops.
    pub deadline: Duration,
}

/// Tests sharing one load of the module. `params` is `None` for tests that run with the
/// module unloaded (and load it themselves).
pub struct Group {
    pub name: &'static str,
    pub params: Option<ModParams>,
    pub tests: Vec<Test>,
}

pub const DEADLINE: Duration = Duration::from_secs(45);

pub fn test(name: &'static str, run: TestFn) -> Test {
    Test {
        name,
        run,
        deadline: DEADLINE,
    }
}

pub fn full_name(g: &Group, t: &Test) -> String {
    format!("{}/{}", g.name, t.name)
}

#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    fn ok(&mut self, name: &str) {
        self.passed += 1;
        println!("ok - {name}");
    }

    fn not_ok(&mut self, name: &str, why: &str) {
        self.failed += 1;
        // One line per test: the runner that reads this parses lines.
        println!("not ok - {name}: {}", why.replace('\n', "; "));
    }

    pub fn summary(&self) {
        println!("{} passed, {} failed", self.passed, self.failed);
        let _ = std::io::stdout().flush();
    }
}

enum Outcome {
    Done(TestResult),
    Hung,
}

fn run_one(env: &Arc<Env>, t: &Test) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let env = env.clone();
    let f = t.run;
    let spawned = std::thread::Builder::new()
        .name(t.name.chars().take(15).collect())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&env)));
            let _ = tx.send(r.unwrap_or_else(|_| Err("the test panicked".to_owned())));
        });
    if let Err(e) = spawned {
        return Outcome::Done(Err(format!("cannot start the test thread: {e}")));
    }
    match rx.recv_timeout(t.deadline) {
        Ok(r) => Outcome::Done(r),
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Hung,
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Outcome::Done(Err("the test thread vanished".to_owned()))
        }
    }
}

/// Runs the selected tests of every group. Does not return if a test hangs: the process
/// then prints the tally (the rest counted as failed) and exits.
pub fn run(groups: &[Group], ko: PathBuf, filter: Option<&str>, timing: bool) -> Tally {
    let mut tally = Tally::default();
    let selected = |g: &Group, t: &Test| filter.is_none_or(|f| full_name(g, t).contains(f));
    for (gi, g) in groups.iter().enumerate() {
        let tests: Vec<&Test> = g.tests.iter().filter(|t| selected(g, t)).collect();
        if tests.is_empty() {
            continue;
        }
        let env = Arc::new(Env {
            ko: ko.clone(),
            params: g.params.clone().unwrap_or_default(),
        });
        if let Some(p) = &g.params {
            if let Err(e) = module::load(&ko, p) {
                for t in &tests {
                    tally.not_ok(&full_name(g, t), &format!("the module did not load: {e}"));
                }
                continue;
            }
        }
        for (ti, t) in tests.iter().enumerate() {
            let name = full_name(g, t);
            let t0 = std::time::Instant::now();
            let outcome = run_one(&env, t);
            if timing {
                eprintln!("# {:7.2} s  {name}", t0.elapsed().as_secs_f64());
            }
            match outcome {
                Outcome::Done(Ok(())) => tally.ok(&name),
                Outcome::Done(Err(why)) => tally.not_ok(&name, &why),
                Outcome::Hung => {
                    tally.not_ok(&name, &format!("hung: no result within {:?}", t.deadline));
                    let rest_here = tests[ti + 1..].iter().map(|t| full_name(g, t));
                    let rest_later = groups[gi + 1..].iter().flat_map(|g| {
                        g.tests
                            .iter()
                            .filter(|t| selected(g, t))
                            .map(|t| full_name(g, t))
                    });
                    for n in rest_here.chain(rest_later) {
                        tally.not_ok(&n, "not run: the harness stopped after a hung test");
                    }
                    tally.summary();
                    std::process::exit(1);
                }
            }
        }
        // The group's own unload test may have removed the module already.
        if module::loaded() {
            if let Err(e) = module::unload_retrying() {
                tally.not_ok(
                    &format!("{}/cleanup", g.name),
                    &format!("cannot unload the module: {e}"),
                );
            }
        }
    }
    tally
}
