//! The versioned results.json schema, its atomic write, and loading with clear errors.
//!
//! One schema serves every experiment: a run is its context plus, per experiment, the raw
//! samples (variant × sweep point × repetition), correctness checks and the analysis.
//! `schema/results.schema.json` is generated from these types (`cargo xtask schema`) and a
//! test keeps the two in step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped whenever a change to these types would make an older reader misread a file.
/// Version 2 added `Sample::invalid`, `Settings::order_seed`, `ExperimentResult::headline`
/// `::summaries` and `::metric_comparisons`, and `MetricInfo::negligible_below`; version 3 the
/// case axis (`ExperimentResult::cases`, and `case` on samples, checks, analyses, summaries and
/// comparisons); version 4 `RunResults::against` (a run of two revisions, `bench --against`);
/// version 5 paired rounds (`sequential`, `rounds`, `rule`, `time`, per-round pairs);
/// version 6 `ExperimentResult::go_finding` (the claim decided on the guide's Go original).
/// Older files still read: those take their defaults (one unnamed case, one revision).
pub const SCHEMA_VERSION: u32 = 6;
/// The oldest version this perflab reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunResults {
    pub schema_version: u32,
    /// `<UTC timestamp>-<short git revision>`, also the name of the run's directory.
    pub run_id: String,
    pub context: RunContext,
    pub experiments: Vec<ExperimentResult>,
    /// False while the run is still going or when it was interrupted: the file then holds the
    /// experiments finished so far.
    pub complete: bool,
    /// `bench --against REV`: the other revision's results, measured in the same run, its
    /// trials interleaved with this checkout's (`experiments`) on the same servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<AgainstRun>,
}

/// The other revision of a two-revision run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgainstRun {
    /// The revision as asked (`HEAD~1`, `main`, a tag).
    pub revision: String,
    /// The commit it resolved to.
    pub commit: String,
    pub experiments: Vec<ExperimentResult>,
}

impl RunResults {
    /// The wall time of the experiments finished so far: what they took of the run's budget
    /// (`bench --resume` carries the rest over).
    pub fn experiments_wall_ms(&self) -> u64 {
        self.experiments.iter().map(|e| e.wall_time_ms).sum()
    }

    /// The two runs a two-revision run holds, as `compare` reads them: (the other revision,
    /// this checkout). `None` for a run of one revision.
    pub fn split_revisions(&self) -> Option<(RunResults, RunResults)> {
        let against = self.against.as_ref()?;
        let mut this = self.clone();
        this.against = None;
        this.run_id = format!("{} (this checkout)", self.run_id);
        let mut base = this.clone();
        base.run_id =
            format!("{} ({} = {})", self.run_id, against.revision, &against.commit[..against.commit.len().min(12)]);
        base.experiments = against.experiments.clone();
        base.context.git_revision = Some(against.commit.clone());
        base.context.git_dirty = Some(false);
        Some((base, this))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunContext {
    pub harness_version: String,
    pub git_revision: Option<String>,
    pub git_dirty: Option<bool>,
    /// With uncommitted changes: a fingerprint of them (FNV-1a of `git diff HEAD`), so that
    /// `bench --resume` can tell the same changes from other ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_changes: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub host: Host,
    pub rustc: Option<String>,
    /// The command line as given.
    pub arguments: Vec<String>,
    pub settings: Settings,
    pub servers: Servers,
    /// Each time the run was continued after an interruption (`bench --resume`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<Resumption>,
}

/// One continuation of an interrupted run: when, how many experiments it kept, and the
/// servers the experiments after it ran on (fresh ones; `servers` above are the first part's).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resumption {
    /// RFC 3339, UTC.
    pub at: String,
    /// The experiments finished before it, kept as they were.
    pub kept: usize,
    /// The machine the rest ran on (a retry may run on another).
    pub host: Host,
    pub servers: Servers,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub cpu_model: Option<String>,
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    pub kernel: Option<String>,
    pub os: String,
}

pub mod capacity;
mod finding;
mod rounds;
mod settings;
mod store;
pub use finding::{Claim, ClaimKind, Finding, FindingKind};
pub use rounds::{ControlPoint, DecisionRule, PointRounds, Sequential, StopReason, TimeSpent};
pub use settings::{Offered, Overload, Settings, Timeline, Trial};
pub use store::{read, save, write_atomic, ReadError};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Servers {
    /// `local` (ephemeral servers from the machine's binaries), `docker` or `external`.
    pub provider: String,
    pub postgres: Option<ServerInfo>,
    pub redis: Option<ServerInfo>,
    /// The Redis Cluster of the cluster experiment (its nodes' seed URLs, redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_cluster: Option<ServerInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerInfo {
    pub version: String,
    /// Connection URL with any password replaced by `***` (`redact`).
    pub url: String,
    /// Settings that shape the numbers (fsync, shared_buffers, persistence, …).
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentResult {
    pub id: String,
    pub title: String,
    /// The guide's section the technique comes from.
    pub guide_section: String,
    /// What the guide claims, in one sentence.
    pub claim: String,
    pub variants: Vec<VariantInfo>,
    /// The cases (query shapes, operations) every variant is measured in, each with its own
    /// chart and verdicts; empty: one unnamed case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<CaseInfo>,
    pub sweep: SweepInfo,
    /// The metric the verdicts are about.
    pub primary_metric: MetricInfo,
    /// Other metrics found in the samples, described for the report.
    pub metrics: Vec<MetricInfo>,
    /// Error kinds that are the technique's outcome (`Meta::outcome_errors`): they do not make
    /// a sample with successes invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome_errors: Vec<String>,
    pub status: ExperimentStatus,
    pub samples: Vec<Sample>,
    /// Correctness counts and other one-off observations per variant and point.
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub analysis: Vec<PointAnalysis>,
    /// The comparison that tests the guide's claim (the experiment names it), at the last
    /// sweep point: the one line to read first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<Comparison>,
    /// What the run found of the guide's claim, by the rule of `finding::finding`: the
    /// summary's row for this experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// The same claim decided on the guide's Go original (`Meta::go_claim`), where the
    /// experiment runs one: beside `finding`, never compared with it as a measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_finding: Option<Finding>,
    /// The guide's targets this experiment is held to, checked per variant, point and case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetCheck>,
    /// Median and 95% CI of every metric the report shows (the declared metrics, the
    /// resources, the latency spectrum) per variant and point, over the valid samples:
    /// computed once by the analysis, so that nothing downstream recomputes a number.
    #[serde(default)]
    pub summaries: Vec<MetricSummary>,
    /// Every other declared metric compared with the baseline, as `analysis` compares the
    /// primary one: what a regression gate on allocations or instructions reads.
    #[serde(default)]
    pub metric_comparisons: Vec<MetricComparison>,
    /// The capacity search and stress of each variant, where the experiment declares one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<capacity::CapacityResult>,
    /// `bench --profile`: where each variant's CPU went, with the profile files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileInfo>,
    /// `bench --profile` of a micro experiment: dhat's heap profile per variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heap_profiles: Vec<HeapProfileInfo>,
    /// The sequential plan the rounds followed (version 5 on): none for a run with a fixed
    /// number of rounds per point (`--against`, selftest, `--min-rounds` equal to `--reps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<Sequential>,
    /// Per sweep point (of the claim's case): the rounds it ran and why it stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<PointRounds>,
    /// What the finding is decided by (version 5 on): the smallest effect that matters and
    /// the control points. None in an older file until `decide` fills it from the catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<DecisionRule>,
    /// Where the experiment's wall time went (version 5 on; none in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpent>,
    pub wall_time_ms: u64,
}

impl ExperimentResult {
    /// Where a comparison is made, for its sentence: `page depth 1000`, or with a case
    /// `table size 50000 in by-username`.
    pub fn place(&self, case: &str, point: &str) -> String {
        if case.is_empty() {
            format!("{} {point}", self.sweep.axis)
        } else {
            format!("{} {point} in {case}", self.sweep.axis)
        }
    }

    /// The analysis's summary of `metric` for `variant` at `point` of `case`, if it made one.
    pub fn summary(&self, metric: &str, case: &str, variant: &str, point: &str) -> Option<&MetricSummary> {
        self.summaries.iter().find(|s| s.metric == metric && s.case == case && s.variant == variant && s.point == point)
    }

    /// The names of the cases, `[""]` for an experiment without cases.
    pub fn case_names(&self) -> Vec<&str> {
        if self.cases.is_empty() {
            vec![""]
        } else {
            self.cases.iter().map(|c| c.name.as_str()).collect()
        }
    }
}

/// A case of an experiment: one query shape or operation, measured with every variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseInfo {
    pub name: String,
    pub description: String,
}

/// A comparison of a declared metric other than the primary one, at one sweep point.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricComparison {
    pub metric: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub point: String,
    pub comparison: Comparison,
}

/// One metric of one variant at one sweep point, summarised over its valid samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricSummary {
    /// A declared metric's name, one of `RESOURCE_METRICS`, or a `spectrum_metric` name.
    pub metric: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub point: String,
    /// Valid samples the summary rests on.
    pub n: usize,
    pub median: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The resources of a sample as metrics (`Resources`, with the servers' CPU and memory
/// added up over Postgres and Redis).
pub const RESOURCE_METRICS: [&str; 5] =
    ["harness_cpu_s", "server_cpu_s", "harness_peak_rss_bytes", "server_rss_bytes", "wall_s"];

/// The value of resource metric `name` (one of `RESOURCE_METRICS`) in `r`.
pub fn resource_value(r: &Resources, name: &str) -> Option<f64> {
    let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    };
    match name {
        "harness_cpu_s" => Some(r.harness_cpu_s),
        "server_cpu_s" => sum(r.postgres_cpu_s, r.redis_cpu_s),
        "harness_peak_rss_bytes" => r.harness_peak_rss_bytes.map(|b| b as f64),
        "server_rss_bytes" => sum(r.postgres_rss_bytes.map(|b| b as f64), r.redis_rss_bytes.map(|b| b as f64)),
        "wall_s" => Some(r.wall_s),
        _ => None,
    }
}

/// The name under which percentile `p` of the latency spectrum is summarised.
pub fn spectrum_metric(p: f64) -> String {
    format!("latency_spectrum_p{p}_us")
}

/// Three significant digits or so, as verdict sentences and the report print numbers.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExperimentStatus {
    Ok,
    Failed { error: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantInfo {
    pub name: String,
    pub description: String,
    /// The variant this one is compared with; `None` for a baseline.
    pub baseline: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepInfo {
    pub axis: String,
    pub unit: String,
    pub points: Vec<SweepPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepPoint {
    pub label: String,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

/// Metrics that are the same in every run of the same code (counted, not timed), by name:
/// compare gates them exactly, and the analysis decides a count constant in every round
/// without a test.
pub fn is_deterministic(metric: &str) -> bool {
    const PREFIXES: [&str; 5] = ["instructions_", "allocs_", "bytes_per_", "peak_heap_", "queries_per_"];
    PREFIXES.iter().any(|p| metric.starts_with(p))
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricInfo {
    /// Key in `Sample::metrics`, with its unit in the name (`latency_p50_us`, `ops_per_sec`).
    pub name: String,
    pub unit: String,
    pub better: Better,
    pub description: String,
    /// Values at or below this are all as good as each other (an error of 0.2 % and one of
    /// 0.05 % both mean "on target"): when both medians are, the verdict says both are within
    /// it instead of calling one several times better. Lower-is-better metrics only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negligible_below: Option<f64>,
}

impl MetricInfo {
    pub fn new(name: &str, unit: &str, better: Better, description: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            unit: unit.to_owned(),
            better,
            description: description.into(),
            negligible_below: None,
        }
    }

    /// Declare the level below which differences do not matter (`negligible_below`).
    pub fn negligible_below(mut self, level: f64) -> Self {
        self.negligible_below = Some(level);
        self
    }
}

/// The error kind of an operation still unanswered when its sample gave up on it. Its latency
/// is unknown (longer than anything measured), so a sample holding one is never a measurement.
pub const UNFINISHED: &str =
    "no answer: the operation was still pending when the sample gave up on it (a stalled server?)";

/// The open loop's pacing lateness (how late the harness itself sent a request it was waiting
/// to send) at the median and the 99th percentile, in µs: sample metrics of the load engine.
pub const PACING_P50: &str = "pacing_lateness_p50_us";
pub const PACING_P99: &str = "pacing_lateness_p99_us";
/// The fewest operations any worker of a sample measured, as a share of the workers' mean:
/// 1 when every worker got the same turns, near 0 when one was starved. A sample metric.
pub const WORKER_OPS_MIN_SHARE: &str = "worker_ops_min_share";

/// The harness's own pacing error a sample tolerates: the recorded lateness, at the median and
/// at the 99th percentile, may be at most this share of the latency recorded at the same
/// percentile (which includes it), or the floor for that percentile, whichever is more. The
/// floors are the timer's own wake-up on the 2-core machine with nothing else to do (a no-op
/// at 10 000 arrivals/s: p50 ≈ 36 µs, p99 ≈ 80–170 µs, `examples/pacing.rs`), with room.
/// Beyond it the sample measured the harness rather than the service, and is invalid.
pub const PACING_MAX_SHARE: f64 = 0.10;
pub const PACING_FLOOR_US: f64 = 50.0;
pub const PACING_P99_FLOOR_US: f64 = 500.0;

/// One measurement: a variant at a sweep point in one repetition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// The case (`ExperimentResult::cases`); empty for an experiment without cases.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub point: String,
    pub repetition: u32,
    pub metrics: BTreeMap<String, f64>,
    pub latency: Option<LatencySummary>,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    pub resources: Option<Resources>,
    /// Why this sample must not enter a verdict (more failed operations than
    /// `analysis::MAX_ERROR_RATE` allows, or its technique did not act); kept, and shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// Per window of the measured time, [requests due, failed or over the limit]: only in a
    /// capacity search's recovery trial (`load::Timeline`), never stored in results.json.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(skip)]
    pub timeline: Vec<[u64; 2]>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
    /// (percentile, microseconds) pairs: 50, 75, 90, 95, 99, 99.9, 99.99, 99.999.
    pub percentiles_us: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU time (user + system) of the harness process during the sample.
    pub harness_cpu_s: f64,
    /// Peak resident set of the harness during the sample (VmHWM reset before it, where the
    /// kernel allows).
    pub harness_peak_rss_bytes: Option<u64>,
    /// CPU time of the server processes this run started (Postgres with all its backends,
    /// Redis); absent for servers the harness did not start.
    pub postgres_cpu_s: Option<f64>,
    pub redis_cpu_s: Option<f64>,
    /// Resident set of the servers at the end of the sample (Postgres: sum over processes,
    /// shared buffers counted once per process that touched them).
    pub postgres_rss_bytes: Option<u64>,
    pub redis_rss_bytes: Option<u64>,
    pub wall_s: f64,
    /// CPU the rest of the machine used meanwhile (version 5 on; none where a server's
    /// processes are out of sight: docker, an external URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub others: Option<OthersCpu>,
}

/// What other processes took from the machine during a sample: noisy neighbours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OthersCpu {
    /// CPU seconds of processes that are neither the harness (with what it started) nor the
    /// run's servers: a build, another benchmark, a browser.
    pub cpu_s: f64,
    /// CPU seconds the hypervisor gave other guests while this one wanted to run (steal).
    pub steal_s: f64,
}

impl OthersCpu {
    /// /proc's resolution: two clock ticks (one at each end of a sample) at the usual 100 Hz.
    pub const RESOLUTION_S: f64 = 0.02;

    /// Cores the neighbours took for certain on average over `wall_s`: their CPU and the
    /// steal, less /proc's resolution (a sample of a few milliseconds that caught one 10 ms
    /// tick of someone else's would otherwise read as several cores).
    pub fn cores(&self, wall_s: f64) -> f64 {
        if wall_s > 0.0 {
            (self.cpu_s + self.steal_s - Self::RESOLUTION_S).max(0.0) / wall_s
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub point: Option<String>,
    pub name: String,
    pub value: f64,
    /// Whether the value is what a correct implementation gives (`None`: informational).
    pub ok: Option<bool>,
    pub detail: String,
    /// A textual observation shown in place of the value (a plan's node chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Check {
    /// An informational observation of `variant` at `point` (no right or wrong value).
    pub fn observation(variant: &str, point: Option<&str>, name: &str, value: f64, detail: impl Into<String>) -> Self {
        Self {
            case: String::new(),
            variant: variant.to_owned(),
            point: point.map(str::to_owned),
            name: name.to_owned(),
            value,
            ok: None,
            detail: detail.into(),
            text: None,
        }
    }

    /// A correctness check: `ok` says whether `value` is what a correct implementation gives.
    pub fn verdict(
        variant: &str,
        point: Option<&str>,
        name: &str,
        value: f64,
        ok: bool,
        detail: impl Into<String>,
    ) -> Self {
        Self { ok: Some(ok), ..Self::observation(variant, point, name, value, detail) }
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The check is about one case of the experiment.
    pub fn in_case(mut self, case: &str) -> Self {
        self.case = case.to_owned();
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointAnalysis {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub point: String,
    pub variants: Vec<VariantSummary>,
    pub comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantSummary {
    pub variant: String,
    pub n: usize,
    pub median: f64,
    /// 95% bootstrap CI of the median.
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// The variant is better than its baseline (CI excludes 1 and p <= 0.05).
    Better,
    /// The variant is worse than its baseline.
    Worse,
    /// No significant difference.
    NoDifference,
    /// Too few repetitions for the test to reach significance at all; the ratio is indicative.
    Inconclusive,
    /// A side has no usable samples.
    Missing,
}

/// One of the guide's targets checked for one variant at one point of one case.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetCheck {
    /// As the guide's table states it: "API p95 < 200 ms".
    pub target: String,
    /// The same as a k6 threshold: "http_req_duration: p(95)<200".
    pub k6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub point: String,
    /// The measured value (median over valid samples; errors over every sample), in `unit`.
    pub value: f64,
    pub limit: f64,
    pub unit: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// The case compared in (empty: the experiment has none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub baseline: String,
    /// variant / baseline of the metric compared: the geometric mean of the per-round ratios
    /// when paired (`pairs`), else median(variant) / median(baseline).
    pub ratio: Option<f64>,
    pub ratio_ci_low: Option<f64>,
    pub ratio_ci_high: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: VerdictKind,
    /// "keyset is 12.4× faster than offset at page depth 1000 (95% CI 11.9–13.0, p = 0.008)".
    pub sentence: String,
    /// Rounds paired (version 5 on): the ratio is then the geometric mean of the per-round
    /// ratios, its CI and p from a t on their logs; none: unpaired (medians, bootstrap, U).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<u32>,
    /// The confidence level of the CI (0.95 unless a sequential plan split α over its looks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
}

impl Comparison {
    /// A comparison that states no ratio (a side missing, a zero median, both negligible).
    pub fn without_ratio(
        variant: &str,
        baseline: &str,
        p_value: Option<f64>,
        verdict: VerdictKind,
        sentence: String,
    ) -> Self {
        Self {
            case: String::new(),
            variant: variant.to_owned(),
            baseline: baseline.to_owned(),
            ratio: None,
            ratio_ci_low: None,
            ratio_ci_high: None,
            p_value,
            verdict,
            sentence,
            pairs: None,
            level: None,
        }
    }
}

/// One variant's profile, as results.json records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub point: String,
    /// Stack samples taken (each one 1/999 s of CPU time of one thread).
    pub samples: u64,
    /// The pprof file, relative to the run directory (`go tool pprof -http=: <file>`).
    pub pprof: String,
    /// The flame graph, relative to the run directory.
    pub flamegraph: String,
    /// The functions that were on CPU most (self time), with their share of the samples.
    pub top: Vec<(String, f64)>,
}

/// A micro experiment's variant profiled by dhat (`bench --profile`): every allocation site
/// of its routine with its stack, as dhat's viewer (dh_view.html) shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeapProfileInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub case: String,
    pub variant: String,
    pub point: String,
    /// The profile, relative to the run directory.
    pub file: String,
}

/// The JSON Schema of results.json, as committed in `schema/results.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunResults)).expect("schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn committed_schema_matches_the_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/results.schema.json");
        let committed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path).expect("schema/results.schema.json exists (cargo xtask schema writes it)"),
        )
        .unwrap();
        assert_eq!(committed, json_schema(), "schema/results.schema.json is stale: run `cargo xtask schema`");
    }
}
