//! perflab's command line. `main` only dispatches; each task lives in its own file.

mod against;
mod bench;
mod compare;
mod export;
mod flags;
mod history;
mod list;
mod merge;
mod report;
mod runs;
mod schema;
mod selftest_cmd;

use std::process::ExitCode;
use xtask::catalogue;

/// Exit codes: 0 ok, 1 an experiment failed, 2 bad input or nothing to run with, 3 a
/// comparison found a regression (`compare`, `bench --baseline … --fail-on-regression`,
/// `bench --against REV`).
#[derive(Debug)]
pub enum Failure {
    /// Bad input or environment: one line, exit 2.
    Usage(String),
    /// Something failed while running: exit 1.
    Run(String),
}

impl Failure {
    pub fn usage(msg: impl std::fmt::Display) -> Self {
        Self::Usage(msg.to_string())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Run(format!("{e:#}"))
    }
}

fn main() -> ExitCode {
    use clap::Parser;
    // Before anything can print or store a password: learn the ones the environment holds
    // (those on the command line are learnt as bench reads its URLs and arguments).
    harness::redact::register_environment();
    let args = match flags::Cli::try_parse() {
        Ok(args) => args,
        // clap echoes what it could not parse, which may be a URL with a password in it.
        Err(e) => {
            let text = harness::redact::redact(&e.to_string());
            if e.use_stderr() {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let result = match args.command {
        flags::Command::Bench(b) => bench::bench(b),
        flags::Command::Report(r) => report::report(r),
        flags::Command::Compare(c) => compare::compare(c),
        flags::Command::Export(e) => export::export(e),
        flags::Command::History { dir } => history::history(dir),
        flags::Command::Selftest(args) => selftest_cmd::selftest(args),
        flags::Command::Merge { shards, out, hosts_may_differ } => merge::merge(shards, out, hosts_may_differ),
        flags::Command::List => list::list(),
        flags::Command::Schema => schema::schema(),
        flags::Command::TrialServer { protocol: true } => {
            println!("{}", harness::trial_server::PROTOCOL);
            return ExitCode::SUCCESS;
        }
        flags::Command::TrialServer { protocol: false } => return harness::trial_server::serve(catalogue::all()),
        flags::Command::MicroWorker { job } => {
            return catalogue::micro_worker(&job, harness::micro::Allocator::System);
        }
    };
    match result {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {}", harness::redact::redact(&msg));
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            eprintln!("error: {}", harness::redact::redact(&msg));
            ExitCode::from(1)
        }
    }
}
