//! How a run's rounds were planned and how an experiment's finding is decided: the
//! sequential plan, each point's rounds and stop, the smallest effect that matters and the
//! control points.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an experiment declares its finding is decided by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRule {
    /// The smallest effect that matters, as a share (0.05: 5 %): a ratio within
    /// [1/(1 + e), 1 + e] is no effect that matters, significant or not.
    pub smallest_effect: f64,
    /// Why that much, in one sentence.
    pub why: String,
    /// Sweep points (of the claim's case) where the technique cannot act: not evidence for or
    /// against the claim, but checks that nothing differs where nothing should.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<ControlPoint>,
}

impl DecisionRule {
    /// The default smallest effect that matters.
    pub const DEFAULT_SMALLEST_EFFECT: f64 = 0.05;

    /// The band of ratios that are no effect that matters: [1/band, band].
    pub fn band(&self) -> f64 {
        1.0 + self.smallest_effect
    }

    /// The smallest effect as people write it: `5 %`.
    pub fn percent(&self) -> String {
        let pct = (self.smallest_effect * 1000.0).round() / 10.0;
        if pct.fract() == 0.0 {
            format!("{pct:.0} %")
        } else {
            format!("{pct:.1} %")
        }
    }

    /// Whether `point` is a control point.
    pub fn is_control(&self, point: &str) -> bool {
        self.controls.iter().any(|c| c.point == point)
    }
}

impl Default for DecisionRule {
    fn default() -> Self {
        Self {
            smallest_effect: Self::DEFAULT_SMALLEST_EFFECT,
            why: "the default: a technique that buys less than 5 % is rarely worth its code".into(),
            controls: Vec::new(),
        }
    }
}

/// A sweep point where the technique cannot act, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlPoint {
    pub point: String,
    pub why: String,
}

/// A group-sequential plan (`stats::Looks`): after `looks` rounds the claim's comparison at a
/// point is looked at, each look at significance `alpha_per_look` (the family's α split over
/// the looks, so stopping early keeps the false-positive rate), and the point stops once it is
/// decided: a difference (the CI at level 1 − `alpha_per_look` excludes 1) or no effect that
/// matters (that CI within `band` of 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sequential {
    pub min_rounds: u32,
    pub cap: u32,
    pub looks: Vec<u32>,
    pub alpha_per_look: f64,
    /// A ratio within [1/band, band] is no effect that matters.
    pub band: f64,
    /// The claim's points that share a look's α (its control points left out): a point stops
    /// on a difference at `alpha_per_look / family` (Bonferroni), so that every point stopped
    /// so also passes the finding's Holm correction over the same points.
    #[serde(default = "one")]
    pub family: u32,
}

fn one() -> u32 {
    1
}

/// How many rounds a sweep point ran, and why it stopped there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointRounds {
    pub point: String,
    pub rounds: u32,
    pub stop: StopReason,
    /// The effect the claim's comparison could have told from none at this point: the CI's
    /// half-width as a share of the ratio (0.05: ±5 %), from the analysis; none without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectable: Option<f64>,
    /// Rounds left out because other processes took more of the machine than
    /// `Settings::noise_limit` allows (counted in `rounds`; version 5 on).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disturbed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The claim's comparison was decided at a look.
    Decided,
    /// The cap of rounds was reached undecided.
    Cap,
    /// A fixed number of rounds (no sequential plan, or no claim to decide at this point).
    Fixed,
    /// The time budget (`--budget`) ran out, after the point's minimum rounds.
    Budget,
}

/// Where an experiment's wall time went (version 5 on), so a slow experiment shows whether its
/// rounds or its fixed costs took the time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSpent {
    /// The experiment's setup and its points' setups (schemas, data, warm caches); under
    /// `--against`, both builds', as for every field here.
    pub setup_ms: u64,
    /// Inside the rounds' samples, from the call to its sample: warm-up and measured time as
    /// set, plus what each sample does before and after them (connections, per-sample data).
    pub samples_ms: u64,
    /// The samples the rounds took (both sides' under `--against`).
    pub samples: u32,
    /// Warm-up and measured time as set, per sample: `samples_ms / samples` above it is each
    /// sample's fixed cost.
    pub set_per_sample_ms: u64,
    /// The capacity search and stress, and `--profile`'s extra trials.
    #[serde(default)]
    pub capacity_ms: u64,
    /// Correctness checks after the rounds, notes, the analysis.
    #[serde(default)]
    pub after_ms: u64,
}

impl TimeSpent {
    /// Each sample's time beyond its warm-up and measured time: what moving per-sample work
    /// to setup would save, per sample.
    pub fn fixed_per_sample_ms(&self) -> Option<f64> {
        (self.samples > 0)
            .then(|| (self.samples_ms as f64 / f64::from(self.samples) - self.set_per_sample_ms as f64).max(0.0))
    }
}
