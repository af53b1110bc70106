//! perflab's harness: everything an experiment needs and nothing experiment-specific.
//!
//! `experiment` declares the trait; `provision` brings up servers; `load` and `resources`
//! measure; `stats` and `analysis` decide; `results` stores; `report` renders.

pub mod analysis;
pub mod context;
pub mod experiment;
pub mod faultproxy;
pub mod fixtures;
pub mod load;
pub mod micro;
pub mod pgpool;
pub mod plan;
pub mod provision;
pub mod redact;
pub mod redis_util;
pub mod report;
pub mod resources;
pub mod results;
pub mod runner;
pub mod stats;
pub mod workerpool;

pub use experiment::{BoxFuture, Experiment, Knob, Meta, Needs, RunCtx, Settings, Sweep, Variant};
pub use load::{LoadConfig, OpError, Worker};
pub use results::{Better, Check, MetricInfo, Sample, SweepPoint};
