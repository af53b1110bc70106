//! The micro engine's allocation worker: `perflab-alloc micro-worker <job>`, started by
//! `cargo xtask bench` for in-process experiments. Its global allocator is dhat's counting
//! one, which is why it is an executable of its own: the timing worker (`xtask` itself) keeps
//! the system allocator, so the counting never slows a timing.

use std::process::ExitCode;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, cmd, job] if cmd == "micro-worker" => xtask::catalogue::micro_worker(job, harness::micro::Allocator::Dhat),
        _ => {
            eprintln!(
                "error: perflab-alloc is started by `cargo xtask bench`: usage: perflab-alloc micro-worker <job>"
            );
            ExitCode::from(2)
        }
    }
}
