//! The micro engine: in-process measurement of CPU and memory techniques.
//!
//! An in-process experiment hands the engine a [`Routine`] per trial (case, variant, sweep
//! point) through [`Routines`]. The engine measures it in worker processes, never in the
//! process that runs the servers and the load engine:
//!
//! - **time**: criterion (warm-up, sampling plan, bootstrap estimates) in the timing worker,
//!   the `xtask` executable itself (`xtask micro-worker`). Criterion prints its own progress;
//!   in a worker that output is discarded and the estimates it saved are read back;
//! - **allocations**: dhat in the allocation worker `perflab-alloc`, a separate executable
//!   whose global allocator is dhat's counting one, so the counting never slows a timing;
//! - **instructions** (`--instructions`): the timing worker under valgrind's callgrind, once
//!   with the routine run `n` times and once with it run zero times; the difference divided
//!   by `n` is the routine's own instruction count, setup and process start cancelled out.
//!
//! Each worker gets a [`Job`] as one JSON argument and writes its [`Measurement`] as JSON to
//! the file the job names. A failed worker reports the last line of its stderr.
//!
//! `parent` is the side in the run's process (jobs out, measurements in); `worker` the side
//! in the worker processes. The engine knows results and the reaper, never the experiments
//! or the servers: what it measures comes through [`Routines`], what it needs of the run
//! through [`Bench`].

pub mod go;
pub mod go_server;
mod parent;
mod worker;

pub use parent::{allocations_into, heap_profile, instructions_into, measure, parse_callgrind_total};
pub use worker::{worker_main, Allocator};

use crate::results::{Better, MetricInfo, Settings, SweepPoint, Trial};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::path::PathBuf;

/// The body one iteration of which is measured, with the state it works on (built by the
/// experiment before any timing starts).
pub struct Routine {
    body: Box<dyn FnMut(u64) + Send>,
    items: u64,
}

impl Routine {
    /// `f(&mut state)` is one iteration; its result goes through `black_box`, so the work
    /// cannot be optimised away, and so does the state.
    pub fn new<S: Send + 'static, O>(mut state: S, mut f: impl FnMut(&mut S) -> O + Send + 'static) -> Self {
        Self {
            body: Box::new(move |n| {
                for _ in 0..n {
                    black_box(f(black_box(&mut state)));
                }
            }),
            items: 1,
        }
    }

    /// One iteration handles `n` items (records, conditions): the per-item metrics divide
    /// by it.
    pub fn items(mut self, n: u64) -> Self {
        self.items = n.max(1);
        self
    }

    /// Run `n` iterations.
    pub fn run(&mut self, n: u64) {
        (self.body)(n);
    }
}

/// An in-process experiment as the micro engine sees it: a routine per trial.
pub trait Routines: Send + Sync {
    /// The routine the engine times (criterion), counts allocations of (dhat) and counts
    /// instructions of (callgrind), for one trial. Called in a worker process, never in the
    /// one that runs the servers.
    fn routine(&self, input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine>;
}

/// What the parent side needs of the run: its settings, the worker executables, the run's
/// Redis (for routines with a round trip; handed to workers through the environment).
#[derive(Clone, Copy)]
pub struct Bench<'a> {
    pub settings: &'a Settings,
    pub workers: &'a Workers,
    pub redis_url: Option<&'a str>,
}

/// What an experiment gets to build its routine with.
pub struct Input<'a> {
    pub settings: &'a Settings,
    /// The run's Redis, for routines that include a round trip (`serialization`).
    pub redis_url: Option<&'a str>,
}

/// The worker executables, found by xtask.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    /// The timing worker: invoked as `<exe> micro-worker <job>`.
    pub timer: Option<PathBuf>,
    /// The allocation worker (`perflab-alloc`); `None`: allocations are not measured.
    pub alloc: Option<PathBuf>,
    /// valgrind, when `--instructions` asked for instruction counts and it is installed.
    pub valgrind: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Time,
    Allocs,
    /// Run the routine `iterations` times, nothing else (under callgrind).
    Instructions,
}

/// One measurement for a worker to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub experiment: String,
    #[serde(default)]
    pub case: String,
    pub variant: String,
    pub point: SweepPoint,
    pub mode: Mode,
    /// The run's settings, as the routine's `Input` gives them.
    pub settings: Settings,
    /// Criterion's plan (from the settings: `parent::plan`).
    pub warmup_ms: u64,
    pub measure_ms: u64,
    pub samples: usize,
    pub resamples: usize,
    /// Instructions mode: iterations to run.
    pub iterations: u64,
    /// Criterion's output directory (time mode), created and removed by the parent.
    pub scratch: PathBuf,
    /// Where the worker writes its `Measurement`.
    pub out: PathBuf,
    /// Allocations mode, `bench --profile`: also write dhat's heap profile here (the JSON
    /// that dhat's viewer, dh_view.html, opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_profile: Option<PathBuf>,
}

/// What a worker measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measurement {
    /// Items per iteration (`Routine::items`).
    pub items: u64,
    /// Time mode: criterion's estimates of one iteration, nanoseconds.
    pub time: Option<TimeEstimates>,
    /// Allocation mode.
    pub allocs: Option<AllocCounts>,
    /// Instructions mode: instructions executed by the whole worker process (callgrind's
    /// total), filled in by the parent from the profile.
    pub instructions: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeEstimates {
    pub median_ns: f64,
    pub median_ci_ns: (f64, f64),
    pub mean_ns: f64,
    pub mean_ci_ns: (f64, f64),
    pub std_dev_ns: f64,
    /// Criterion's samples: (iterations, total nanoseconds).
    pub samples: Vec<(u64, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AllocCounts {
    pub iterations: u64,
    /// Allocations (a reallocation counts as one) per iteration.
    pub allocs_per_iter: f64,
    pub bytes_per_iter: f64,
    /// Peak of live heap bytes allocated by the routine (above what was live before it).
    pub peak_bytes: f64,
}

/// The metrics a micro sample carries, for an experiment's `Meta::metrics`.
pub fn metrics(item: &str) -> Vec<MetricInfo> {
    vec![
        time_metric(),
        MetricInfo::new("time_mean_ns", "ns", Better::Lower, "mean time of one call (criterion)"),
        MetricInfo::new("time_per_item_ns", "ns", Better::Lower, format!("median time per {item}")),
        MetricInfo::new(
            "allocs_per_call",
            "allocations",
            Better::Lower,
            "heap allocations per call, reallocations included (dhat)",
        ),
        MetricInfo::new("bytes_per_call", "bytes", Better::Lower, "bytes allocated per call (dhat)"),
        MetricInfo::new("allocs_per_item", "allocations", Better::Lower, format!("heap allocations per {item} (dhat)")),
        MetricInfo::new("bytes_per_item", "bytes", Better::Lower, format!("bytes allocated per {item} (dhat)")),
        MetricInfo::new("peak_heap_bytes", "bytes", Better::Lower, "peak live heap of the calls (dhat)"),
        MetricInfo::new(
            "instructions_per_call",
            "instructions",
            Better::Lower,
            "instructions per call (callgrind, with --instructions)",
        ),
    ]
}

/// The primary metric of most micro experiments.
pub fn time_metric() -> MetricInfo {
    MetricInfo::new("time_ns", "ns", Better::Lower, "median time of one call (criterion)")
}
