//! perflab's harness: everything an experiment needs and nothing experiment-specific.
//!
//! The flow of a run, module by module:
//!
//! - `experiment`: what an experiment declares (`Meta`: variants, cases, sweep, metrics, knobs)
//!   and how it is measured (`Engine`: the load engine's `Run` hook or the micro engine's
//!   `Routines`); `slot`: what an experiment's setup leaves for its trials; `declare`: the
//!   macros it declares with (`table!`, a table of variants or cases; `quick_run_test!`);
//! - `session`: a run from start to finish (servers, run directory, each experiment, atomic
//!   saves); `runner`: one experiment (setup, trials interleaved, checks, analysis), on one
//!   build or on two (`trial_server`: another revision's build serving trials, `--against`);
//! - `provision`: the servers (local ephemeral ones, external URLs, Docker); `reaper`: every
//!   process and directory a run makes, stopped and removed however it ends; `provenance`: the
//!   run's id, host and revision;
//! - `load` (closed and open loops on the servers; `load::capacity`, the capacity search,
//!   stress and recovery) and `micro` (criterion, dhat and callgrind in worker processes)
//!   measure; `resources` watches CPU and memory; `profile` samples where the CPU goes
//!   (`bench --profile`);
//! - `acted` tallies, sample by sample, whether an experiment's technique acted (a sample where
//!   it did not is not a measurement of it), and turns the tally into checks;
//! - `decide` is the one decision path: `analysis` (which samples are measurements, every
//!   metric's median and CI, comparisons, the headline, with `stats`), then `finding` (does the
//!   claim hold) and `targets` (the guide's);
//! - `results` stores (the versioned results.json: plain records, a leaf that imports nothing
//!   else of the harness but `redact`; `results::store` reads and writes files); `report`
//!   renders it, and only it;
//!   `compare` sets two runs side by side as a regression gate reads them; `export` writes
//!   a run for trend trackers (Bencher's BMF, github-action-benchmark); `changepoint` finds
//!   where a series of nightly results moved (E-Divisive with means);
//! - `redact` keeps secrets out of every file and screen; `faultproxy` injects network faults
//!   for tests and service experiments; `inject` adds a known slowdown to one side (`--set
//!   EXP.inject_slowdown=20%`), to show that a comparison sees it;
//! - `build`: perflab's own executables built by cargo while a person waits, with progress;
//! - `kit`: the guide's own helpers several experiments share (fixtures, a `database/sql`
//!   pool, plans, Redis helpers, the guide's worker pool); the machinery never imports it.

pub mod acted;
pub mod analysis;
pub mod build;
pub mod changepoint;
pub mod compare;
pub mod decide;
mod declare;
pub mod experiment;
pub mod export;
pub mod faultproxy;
pub mod finding;
pub mod inject;
pub mod kit;
mod knob;
pub mod load;
pub mod micro;
pub mod profile;
pub mod provenance;
pub mod provision;
pub mod reaper;
pub mod redact;
pub mod report;
pub mod resources;
pub mod results;
pub mod runner;
pub mod session;
pub mod slot;
pub mod stats;
pub mod targets;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trial_server;

pub use declare::fill_notes;
pub use experiment::{
    go_served, names_of, pick, BoxFuture, CapacityPlan, Case, Engine, Experiment, Knob, KnobDefault, Meta, Needs, Run,
    RunCtx, Sweep, Trial, Variant,
};
pub use load::{LoadConfig, OpError, Worker};
pub use micro::{Input, Routine, Routines};
pub use results::{Better, Check, MetricInfo, Sample, Settings, SweepPoint};
pub use slot::Slot;
