//! The run's settings and where one sample is taken: what experiments read, what a micro
//! worker gets in its job, and what results.json records.

use super::SweepPoint;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The run's settings: what an experiment reads (`RunCtx::settings`), what a micro worker
/// gets in its job, and what results.json records. One type for all three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub quick: bool,
    /// Rounds per sweep point: at most this many (every variant once per round).
    pub repetitions: u32,
    /// Rounds per point before the claim's comparison is first looked at; a point stops at a
    /// look where it is decided (`results::Sequential`). 0, or as many as `repetitions`:
    /// every point runs `repetitions` rounds.
    #[serde(default)]
    pub min_rounds: u32,
    /// `--budget`: the run's time for its experiments' rounds: each experiment not yet run
    /// keeps a reserve for its claim's minimum rounds, the rest is split over the experiments
    /// as they start (what one leaves unused rolls forward) and within one over its points; a
    /// point past its share stops after its minimum rounds (`StopReason::Budget`). None: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
    /// `--noise-limit`: a round in which other processes (and the hypervisor's steal) took
    /// more than this many cores on average over one of its samples is disturbed: its samples
    /// are left out of every verdict, as a pair (version 5 on). None: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_limit: Option<f64>,
    /// Rounds of a point in which the trials outside the claim (other variants, other cases)
    /// ride along; after them only the claim's trials run until decided. Quick: 2
    /// (`--claim-only`: 0); none: every round (a full run, `--against`). Under a budget they
    /// ride along only where it leaves room for them. Where it is set, the Go original's
    /// claim runs in fewer rounds too (`Settings::go_rounds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ride_along: Option<u32>,
    /// Measured time per sample.
    #[serde(rename = "duration_ms", with = "millis")]
    #[schemars(with = "u64")]
    pub duration: Duration,
    /// Warm-up per sample, before the measured time.
    #[serde(rename = "warmup_ms", with = "millis")]
    #[schemars(with = "u64")]
    pub warmup: Duration,
    /// `--concurrency`: overrides an experiment's own client concurrency where it has one
    /// that is not its sweep axis.
    pub concurrency: Option<u32>,
    /// `--set key=value`, experiment-specific knobs (`pg-pagination.rows=50000`).
    pub sets: BTreeMap<String, String>,
    /// `--filter`, the experiments selected.
    pub filter: Option<String>,
    /// `--shard I/N`: this run holds every N-th experiment of the selection, from the I-th
    /// (`cargo xtask merge` joins the shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Seed of the order the variants run in within each repetition (a Williams design whose
    /// labels are shuffled per point, so neither an order effect nor a carry-over from the
    /// trial before lands on the same variant every time).
    #[serde(default)]
    pub order_seed: u64,
    /// Run the capacity search and stress where an experiment declares one (`bench
    /// --capacity`; on by default in a full run, off in a quick one).
    #[serde(default)]
    pub capacity: bool,
    /// `bench --profile`: sample the harness's CPU during one extra trial of each variant.
    #[serde(default)]
    pub profile: bool,
}

impl Settings {
    /// Rounds of a point in which the Go original's claim runs beside the port's in a quick
    /// run on one build whose points stop early (`ride_along` set, a sequential plan: 2 ≤
    /// `min_rounds` < `repetitions`): the plan's minimum rounds, and at least the 3 pairs a
    /// verdict needs, after which the port's claim alone runs on and alone decides when the
    /// point stops. None (a full run, `--against`, fixed rounds): every round, and a point
    /// stops once both claims are decided.
    pub fn go_rounds(&self) -> Option<u32> {
        let plan = self.min_rounds >= 2 && self.min_rounds < self.repetitions;
        self.ride_along.filter(|_| self.quick && plan).map(|n| n.max(self.min_rounds).max(3))
    }
}

#[cfg(any(test, feature = "testing"))]
impl Settings {
    /// Quick settings with the shortest samples that still measure: for tests.
    pub fn quick_for_tests() -> Self {
        Self {
            quick: true,
            repetitions: 1,
            min_rounds: 0,
            budget_ms: None,
            noise_limit: None,
            ride_along: None,
            duration: Duration::from_millis(100),
            warmup: Duration::from_millis(20),
            concurrency: None,
            sets: BTreeMap::new(),
            filter: None,
            shard: None,
            order_seed: 0,
            capacity: false,
            profile: false,
        }
    }
}

/// A `Duration` as whole milliseconds in JSON.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Where one sample is taken: a case (query shape, operation; `""` when the experiment has
/// none), a variant and a sweep point.
#[derive(Debug, Clone, Copy)]
pub struct Trial<'a> {
    pub case: &'a str,
    pub variant: &'a str,
    pub point: &'a SweepPoint,
    /// Set by the capacity search: measure an open loop at this rate (`Settings::load_for`
    /// reads it) instead of the experiment's usual load.
    pub offered: Option<Offered>,
    /// The round the trial belongs to (its repetition; 0 outside the rounds: the capacity
    /// search, tests), for an experiment that draws its random setting anew each round, the
    /// same for every variant of the round.
    pub round: u32,
}

impl std::fmt::Display for Trial<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.case.is_empty() {
            write!(f, "{}/{}", self.variant, self.point.label)?;
        } else {
            write!(f, "{}/{}/{}", self.case, self.variant, self.point.label)?;
        }
        match self.offered {
            Some(o) => write!(f, " at {:.0}/s", o.rate_per_sec),
            None => Ok(()),
        }
    }
}

/// An open loop a trial is asked to run instead of its usual load (the capacity search's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offered {
    pub rate_per_sec: f64,
    /// The measured window.
    pub window: Duration,
    pub overload: Option<Overload>,
    pub timeline: Option<Timeline>,
}

impl Offered {
    /// `rate_per_sec` for `window`, nothing else.
    pub fn rate(rate_per_sec: f64, window: Duration) -> Self {
        Self { rate_per_sec, window, overload: None, timeline: None }
    }
}

/// A higher arrival rate for the first `duration` of the measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overload {
    pub rate_per_sec: f64,
    pub duration: Duration,
}

/// Windows of the measured time in which requests are counted: due, and failed or slower
/// than `limit` (latency from the intended start, as the open loop measures it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeline {
    pub window: Duration,
    pub limit: Duration,
}
