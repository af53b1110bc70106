//! The capacity search's records as results.json stores them: the limits a rate must stay
//! within, each rate tried (judged from its sample), the recovery trial and one variant's
//! whole search. The search itself is `load::capacity`.

use super::{Offered, Overload, Sample, Timeline};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a rate must stay within to hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// p95 latency limit, milliseconds (the guide's target for the layer: API 200, DB 50).
    pub p95_ms: f64,
    /// Largest share of failed operations (the guide's 0.1 %: 0.001).
    pub max_error_rate: f64,
    /// Smallest share of the offered rate that must succeed (0.95): below it the service
    /// is falling behind, whatever its latency says so far.
    pub keep_up: f64,
}

impl Limits {
    /// The guide's error target (0.1 %) and a 95 % keep-up share, with this p95 limit.
    pub const fn guide(p95_ms: f64) -> Self {
        Self { p95_ms, max_error_rate: 0.001, keep_up: 0.95 }
    }

    /// In words, for the report.
    pub fn describe(&self) -> String {
        format!(
            "p95 < {} ms, errors < {} %, successes ≥ {} % of the offered rate",
            trim(self.p95_ms),
            trim(self.max_error_rate * 100.0),
            trim(self.keep_up * 100.0)
        )
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Which part of the procedure a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Step-up or bisection: finding the capacity.
    Search,
    /// Beyond the capacity found (1.5×, 2×): what breaks.
    Stress,
}

/// One rate tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub phase: Phase,
    /// Arrivals offered per second (open loop).
    pub offered_per_sec: f64,
    /// Successes per second.
    pub achieved_per_sec: f64,
    /// Latency percentiles of the successes, microseconds (none: nothing succeeded).
    pub p50_us: Option<f64>,
    pub p95_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub error_rate: f64,
    /// Failed operations by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Which limit the rate broke, in words; none: it held.
    pub broke: Option<String>,
}

impl Step {
    /// Judge the sample measured at `offered` against `limits`.
    pub fn judge(phase: Phase, offered: f64, sample: &Sample, limits: &Limits) -> Self {
        let m = |k: &str| sample.metrics.get(k).copied().filter(|v| v.is_finite());
        let achieved = m("ops_per_sec").unwrap_or(0.0);
        let ok = m("ok").unwrap_or(0.0);
        let failed: u64 = sample.errors.values().sum();
        let error_rate = if ok + failed as f64 > 0.0 { failed as f64 / (ok + failed as f64) } else { 0.0 };
        let (p50, p95, p99) = (m("latency_p50_us"), m("latency_p95_us"), m("latency_p99_us"));
        let broke = match p95 {
            None => Some("no operation succeeded".to_owned()),
            Some(_) if error_rate > limits.max_error_rate => {
                Some(format!("errors {:.2} % > {} %", error_rate * 100.0, trim(limits.max_error_rate * 100.0)))
            }
            Some(p) if p / 1000.0 > limits.p95_ms => {
                Some(format!("p95 {:.1} ms > {} ms", p / 1000.0, trim(limits.p95_ms)))
            }
            Some(_) if achieved < limits.keep_up * offered => {
                Some(format!("served {achieved:.0}/s of {offered:.0}/s offered"))
            }
            Some(_) => None,
        };
        Self {
            phase,
            offered_per_sec: offered,
            achieved_per_sec: achieved,
            p50_us: p50,
            p95_us: p95,
            p99_us: p99,
            error_rate,
            errors: sample.errors.clone(),
            broke,
        }
    }

    pub fn held(&self) -> bool {
        self.broke.is_none()
    }
}

/// Recovery: an overload of twice the capacity for the first half step of the measured
/// window, then half the capacity for two steps, counted in windows: how long after the
/// overload stops does every window keep 95 % of its requests within the p95 limit again?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    pub overload_per_sec: f64,
    pub overload_ms: u64,
    /// The rate after the overload.
    pub then_per_sec: f64,
    /// How long the trial watched after the overload.
    pub after_ms: u64,
    pub window_ms: u64,
    /// From the end of the overload to the start of the first window from which on every
    /// window kept 95 % of its requests within the limit; none: not within `after_ms`.
    pub recovered_after_ms: Option<u64>,
    /// Per window from the start of the overload: [requests due, failed or over the limit].
    pub windows: Vec<[u64; 2]>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

impl Recovery {
    /// The open loop of a recovery trial after capacity `capacity`, with search steps of `step`.
    pub fn trial(capacity: f64, step: std::time::Duration, limits: &Limits) -> Offered {
        use std::time::Duration;
        let overload = step / 2;
        let then = capacity / 2.0;
        // Windows of a twentieth of a step, long enough for 20 requests at the lower rate.
        let window = (step / 20).max(Duration::from_secs_f64(20.0 / then.max(1e-9))).min(step);
        Offered {
            rate_per_sec: then,
            window: overload + step * 2,
            overload: Some(Overload { rate_per_sec: capacity * 2.0, duration: overload }),
            timeline: Some(Timeline { window, limit: Duration::from_secs_f64(limits.p95_ms / 1000.0) }),
        }
    }

    /// What the trial `offered` measured in `sample`.
    pub fn from_sample(offered: &Offered, sample: &Sample) -> Option<Self> {
        let (overload, timeline) = (offered.overload?, offered.timeline?);
        let window = timeline.window;
        let overload_windows = overload.duration.as_nanos().div_ceil(window.as_nanos()) as usize;
        let windows = sample.timeline.clone();
        // The first window from which on every one kept 95 % of its requests within the limit.
        let good = |w: &[u64; 2]| w[1] as f64 <= 0.05 * w[0] as f64;
        let mut first_good = windows.len();
        while first_good > overload_windows && good(&windows[first_good - 1]) {
            first_good -= 1;
        }
        let recovered =
            (first_good < windows.len()).then(|| ((first_good - overload_windows) as u128 * window.as_millis()) as u64);
        Some(Self {
            overload_per_sec: overload.rate_per_sec,
            overload_ms: overload.duration.as_millis() as u64,
            then_per_sec: offered.rate_per_sec,
            after_ms: offered.window.saturating_sub(overload.duration).as_millis() as u64,
            window_ms: window.as_millis() as u64,
            recovered_after_ms: recovered,
            windows,
            errors: sample.errors.clone(),
        })
    }
}

/// One variant's capacity search, as results.json stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityResult {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    /// The sweep point searched at (its label).
    pub point: String,
    pub limits: Limits,
    /// The highest rate that held, arrivals per second; none: even the lowest broke.
    pub capacity_per_sec: Option<f64>,
    /// Every rate tried, in order (search, then stress).
    pub steps: Vec<Step>,
    /// The recovery trial after the stress, where a capacity was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// Why the search stopped early (a trial failed); none: it ran to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
