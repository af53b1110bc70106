//! The `Experiment` trait: what an experiment declares and the hooks the runner calls.
//!
//! The fairness rule every experiment follows: each variant gets the same data, the same
//! connection setup outside the clock, the same statement preparation unless preparation is
//! the technique, the same warm-up, and the runner's balanced order (`runner::variant_order`).
//! A variant that differs in more than the technique is its own named variant, and the guide's
//! Go code is ported with Go's semantics. One variant is marked `tests_claim`: its comparison
//! is the headline.
//!
//! An experiment declares itself once: its variants (and cases) in tables the names, the
//! parsing and `Meta` derive from (`pick`, `names_of`), its knobs, and its engine: the load
//! engine's `Run` hook, or the micro engine's `Routines` (with an optional `Run` of its own).

pub use crate::knob::{Knob, KnobDefault};
use crate::load::LoadConfig;
use crate::micro::{Bench, Routines};
use crate::provision::Env;
use crate::resources::Probe;
pub use crate::results::Trial;
use crate::results::{CaseInfo, Check, MetricInfo, Sample, Settings, SweepPoint, VariantInfo};
use anyhow::Context as _;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, for the trait's async hooks (called once per sample, outside timed code).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A variant of a technique; the first of an experiment is the baseline unless `baseline`
/// names another (an experiment can hold several independent comparisons, e.g. GET vs MGET
/// and SET vs pipeline).
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: &'static str,
    pub description: &'static str,
    /// Compared with this variant; `None`: with the experiment's first variant (or, for the
    /// first one, nothing: it is the baseline).
    pub baseline: Option<&'static str>,
    /// This variant's comparison with its baseline is the one that tests the guide's claim:
    /// the experiment's headline (a Go original so marked tests it on the guide's Go code:
    /// `Meta::go_claim`, the `go_finding`).
    pub tests_claim: bool,
    /// What the claim asks of this variant against its baseline: to beat it (most claims), or
    /// to keep up with it (calibration: the harness against a reference tool).
    pub claim_kind: crate::results::ClaimKind,
    /// A Go original: measured by this Go benchmark of `go/inproc` (`StringBuilding/join`:
    /// `BenchmarkStringBuilding`'s sub-benchmark `join`) instead of a Rust routine
    /// (`micro::go`). It is compared with Go variants only.
    pub go: Option<&'static str>,
    /// A Go server: `go`'s benchmark serves (`micro::go_server`) and the experiment's own
    /// `Run` drives it with the harness's load engine, as it drives its Rust services.
    pub go_server: bool,
}

impl Variant {
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            baseline: None,
            tests_claim: false,
            claim_kind: crate::results::ClaimKind::Beats,
            go: None,
            go_server: false,
        }
    }

    /// A variant that starts a comparison group of its own: it is a baseline.
    pub const fn baseline_of_group(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            baseline: Some(name),
            tests_claim: false,
            claim_kind: crate::results::ClaimKind::Beats,
            go: None,
            go_server: false,
        }
    }

    /// Mark this variant's comparison as the one that tests the guide's claim (the headline).
    pub const fn tests_claim(mut self) -> Self {
        self.tests_claim = true;
        self
    }

    /// Mark this variant's comparison as the claim's, where the claim is that it keeps up with
    /// its baseline (within the smallest effect that matters), not that it beats it.
    pub const fn tests_claim_keeps_up(mut self) -> Self {
        self.tests_claim = true;
        self.claim_kind = crate::results::ClaimKind::KeepsUp;
        self
    }

    pub const fn compared_with(mut self, baseline: &'static str) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// A Go original, measured by Go benchmark `bench` (`micro::go`); its name starts with
    /// `go-` and its baseline is a Go variant (the catalogue test checks both).
    pub const fn in_go(mut self, bench: &'static str) -> Self {
        self.go = Some(bench);
        self
    }

    /// A Go original that is a server: Go benchmark `bench` serves (`micro::go_server`) and
    /// the experiment's `Run` drives it with the harness's own load, as its Rust services
    /// (their `GoServer::start`); named and compared as any Go original.
    pub const fn go_server(mut self, bench: &'static str) -> Self {
        self.go = Some(bench);
        self.go_server = true;
        self
    }
}

/// A case of an experiment: one of several query shapes or operations the variants are all
/// measured in (`by-username`, `insert`), each with its own chart and verdicts. The case axis
/// keeps a second dimension out of variant names.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub description: &'static str,
    /// The guide's claim is tested in this case (the headline's case).
    pub tests_claim: bool,
}

impl Case {
    pub const fn new(name: &'static str, description: &'static str) -> Self {
        Self { name, description, tests_claim: false }
    }

    /// The case in which the claim variant's comparison is the headline.
    pub const fn tests_claim(mut self) -> Self {
        self.tests_claim = true;
        self
    }
}

/// Something declared by name in a table: a variant or a case.
pub trait Named {
    fn name(&self) -> &'static str;
}

impl Named for Variant {
    fn name(&self) -> &'static str {
        self.name
    }
}

impl Named for Case {
    fn name(&self) -> &'static str {
        self.name
    }
}

/// The value declared with `name` in a table of (variant or case, value): how an experiment
/// turns the name the runner hands it back into what it stands for. An unknown name is an
/// error that names it.
pub fn pick<N: Named, T: Copy>(table: &[(N, T)], name: &str) -> anyhow::Result<T> {
    table
        .iter()
        .find(|(n, _)| n.name() == name)
        .map(|(_, v)| *v)
        .with_context(|| format!("unknown variant or case {name:?}"))
}

/// The variants (or cases) of a table, for `Meta`.
pub fn names_of<N: Named + Clone, T>(table: &[(N, T)]) -> Vec<N> {
    table.iter().map(|(n, _)| n.clone()).collect()
}

/// The Go server of `variant` in an experiment's table of Go servers (each declared with
/// `Variant::go_server`, beside what it stands for; `micro::go_server`): its benchmark and
/// that entry.
pub fn go_served<T: Copy>(table: &[(Variant, T)], variant: &str) -> Option<(&'static str, T)> {
    table.iter().find(|(v, _)| v.name == variant).and_then(|(v, t)| Some((v.go?, *t)))
}

/// The sweep axis: its values form the x-axis of the main chart.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub axis: &'static str,
    pub unit: &'static str,
    pub full: Vec<f64>,
    pub quick: Vec<f64>,
    /// Names for a categorical axis: value `i` is labelled `labels[i]` (empty: numeric axis).
    pub labels: Vec<&'static str>,
}

impl Sweep {
    /// A numeric axis.
    pub fn numeric(axis: &'static str, unit: &'static str, full: &[f64], quick: &[f64]) -> Self {
        Self { axis, unit, full: full.to_vec(), quick: quick.to_vec(), labels: Vec::new() }
    }

    /// A categorical axis (query shapes, payloads): every category in both modes.
    pub fn categories(axis: &'static str, labels: &[&'static str]) -> Self {
        let values: Vec<f64> = (0..labels.len()).map(|i| i as f64).collect();
        Self { axis, unit: "", full: values.clone(), quick: values, labels: labels.to_vec() }
    }

    pub fn points(&self, quick: bool) -> Vec<SweepPoint> {
        let values = if quick { &self.quick } else { &self.full };
        values
            .iter()
            .map(|&value| {
                let label = match self.labels.get(value as usize) {
                    Some(l) if value.fract() == 0.0 && value >= 0.0 => (*l).to_owned(),
                    _ => format_value(value),
                };
                SweepPoint { label, value }
            })
            .collect()
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Which servers an experiment needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub postgres: bool,
    pub redis: bool,
    /// A Redis Cluster of six nodes (three masters, three replicas).
    pub redis_cluster: bool,
}

impl Needs {
    pub const NONE: Needs = Needs { postgres: false, redis: false, redis_cluster: false };
    pub const POSTGRES: Needs = Needs { postgres: true, redis: false, redis_cluster: false };
    pub const REDIS: Needs = Needs { postgres: false, redis: true, redis_cluster: false };
    pub const BOTH: Needs = Needs { postgres: true, redis: true, redis_cluster: false };
    pub const REDIS_CLUSTER: Needs = Needs { postgres: false, redis: false, redis_cluster: true };
}

/// Everything an experiment declares about itself.
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: &'static str,
    pub title: &'static str,
    pub guide_section: &'static str,
    pub claim: &'static str,
    pub variants: Vec<Variant>,
    /// The cases every variant is measured in; empty: none (one unnamed case).
    pub cases: Vec<Case>,
    pub sweep: Sweep,
    pub primary_metric: MetricInfo,
    pub metrics: Vec<MetricInfo>,
    pub needs: Needs,
    /// Error kinds that are the technique's own outcome, not a failure of the measurement (a
    /// balancer sending requests to a backend that answers 503): counted by kind and in the
    /// error rate like any error, but a sample with successes stays a measurement however many
    /// of them it has. Latency and throughput still count successes only, and a sample made of
    /// errors alone still never reaches a verdict. Empty for almost every experiment.
    pub outcome_errors: &'static [&'static str],
    /// The guide's targets (`targets::SERVICE`, `targets::DB_QUERY`, …) this experiment's
    /// operation is held to; empty for the in-process and calibration experiments.
    pub targets: &'static [crate::targets::Target],
    /// The `--set` settings it reads.
    pub knobs: Vec<Knob>,
    /// The capacity search and stress, where the question is the rate a technique sustains.
    pub capacity: Option<CapacityPlan>,
    /// The smallest effect that matters for the claim, where it is not the default 5 %.
    pub smallest_effect: Option<SmallestEffect>,
    /// Sweep points where the technique cannot act (a batch of one): controls, not evidence.
    pub controls: Vec<Control>,
    /// Each sweep point is a trial of its own (selftest's comparisons), not a point of one
    /// finding: a point stops on its own look's α, with no correction over the points.
    pub independent_points: bool,
    /// The least a sample's measured time lasts, whatever `--duration` says, where a tool
    /// counts whole seconds (wrk, pgbench): the budget weighs the experiment's rounds by it.
    /// The warm-up is the settings' (pgbench has none, and the harness's variants measured
    /// beside it none either). Zero for most.
    pub sample_floor: std::time::Duration,
}

/// What an experiment leaves out of its `Meta` is the harness's default: no cases, no
/// knobs, no servers, no targets, no capacity search, the default smallest effect, no
/// controls. Its identity, variants, sweep and metrics it always declares.
impl Default for Meta {
    fn default() -> Self {
        Self {
            id: "",
            title: "",
            guide_section: "",
            claim: "",
            variants: Vec::new(),
            cases: Vec::new(),
            sweep: Sweep::numeric("", "", &[], &[]),
            primary_metric: MetricInfo::new("", "", crate::results::Better::Lower, ""),
            metrics: Vec::new(),
            needs: Needs::NONE,
            outcome_errors: &[],
            targets: &[],
            knobs: Vec::new(),
            capacity: None,
            smallest_effect: None,
            controls: Vec::new(),
            independent_points: false,
            sample_floor: std::time::Duration::ZERO,
        }
    }
}

/// The smallest effect that matters for an experiment's claim (`DecisionRule`), with why.
#[derive(Debug, Clone, Copy)]
pub struct SmallestEffect {
    /// As a share: 0.10 is 10 %.
    pub share: f64,
    pub why: &'static str,
}

impl SmallestEffect {
    /// A calibration's: the harness keeps up when it reaches at least 0.9× the reference tool.
    pub const KEEPS_UP: Self = Self {
        share: 0.10,
        why: "the harness keeps up when it reaches at least 0.9× the reference tool's throughput (DESIGN.md): within 10 % it is not the bottleneck",
    };
}

/// A sweep value where the technique cannot act, and why (`DecisionRule::controls`).
#[derive(Debug, Clone, Copy)]
pub struct Control {
    pub value: f64,
    pub why: &'static str,
}

impl Control {
    pub const fn new(value: f64, why: &'static str) -> Self {
        Self { value, why }
    }
}

/// What samples really cost against their warm-up and measured time: each sample's
/// connections, per-sample data and analysis on top (the quick catalogue at fefe2da: 259 s
/// for 849 samples of 200 ms, 1.52×). The budget's reserves and the riders' room use it.
pub const SAMPLE_COST: f64 = 1.5;

impl Meta {
    /// How long one sample's warm-up and measurement last: the settings', the measured time at
    /// least `sample_floor`.
    pub fn sample_time(&self, settings: &crate::results::Settings) -> std::time::Duration {
        settings.warmup + settings.duration.max(self.sample_floor)
    }

    /// The variant whose comparison tests the claim (the first Rust variant marked so).
    pub fn claim_variant(&self) -> Option<&'static str> {
        self.variants.iter().find(|v| v.tests_claim && v.go.is_none()).map(|v| v.name)
    }

    /// The case the claim is tested in: the one marked so, else the first (`""` without cases).
    pub fn claim_case(&self) -> &'static str {
        self.cases.iter().find(|c| c.tests_claim).or(self.cases.first()).map_or("", |c| c.name)
    }

    /// The claim, as the analysis looks for it.
    pub fn claim(&self) -> crate::results::Claim<'static> {
        let kind =
            self.variants.iter().find(|v| v.tests_claim && v.go.is_none()).map_or(Default::default(), |v| v.claim_kind);
        crate::results::Claim { case: self.claim_case(), variant: self.claim_variant(), kind }
    }

    /// The same claim tested on the guide's Go original: the Go variant marked `tests_claim`
    /// against its Go baseline, in the claim's case, decided by the same rule (`go_finding`).
    pub fn go_claim(&self) -> Option<crate::results::Claim<'static>> {
        let v = self.variants.iter().find(|v| v.tests_claim && v.go.is_some())?;
        Some(crate::results::Claim { case: self.claim_case(), variant: Some(v.name), kind: v.claim_kind })
    }

    /// The rule its finding is decided by, at the sweep `points` a run measured (a control
    /// declared at a value the run skipped is left out).
    pub fn rule(&self, points: &[SweepPoint]) -> crate::results::DecisionRule {
        let mut rule = crate::results::DecisionRule::default();
        if let Some(e) = self.smallest_effect {
            rule.smallest_effect = e.share;
            rule.why = e.why.to_owned();
        }
        rule.controls = self
            .controls
            .iter()
            .filter_map(|c| {
                let p = points.iter().find(|p| p.value == c.value)?;
                Some(crate::results::ControlPoint { point: p.label.clone(), why: c.why.to_owned() })
            })
            .collect();
        rule
    }

    /// The names of the cases, `[""]` for an experiment without cases.
    pub fn case_names(&self) -> Vec<&'static str> {
        if self.cases.is_empty() {
            vec![""]
        } else {
            self.cases.iter().map(|c| c.name).collect()
        }
    }

    /// The cases as stored in results.json.
    pub fn case_infos(&self) -> Vec<CaseInfo> {
        self.cases.iter().map(|c| CaseInfo { name: c.name.to_owned(), description: c.description.to_owned() }).collect()
    }

    /// The trials that decide the claim, `(case, variant)`: in the claim's case, its variant
    /// and that variant's baseline, and the same pair for the Go original's claim
    /// (`go_claim`), which runs beside it (in every round, or in a quick run its first
    /// `Settings::go_rounds`); none without a claim variant. The
    /// other variants ride along (`Settings::ride_along`, and under a budget only where it
    /// leaves room), except a variant standing in for a claim variant that failed a
    /// correctness check before the rounds (`finding::correct_stand_in`): the runner adds it.
    pub fn claim_trials(&self) -> Option<Vec<(&'static str, &'static str)>> {
        let mut trials = self.trials_deciding(self.claim_variant()?)?;
        if let Some(go) = self.go_claim().and_then(|c| self.trials_deciding(c.variant?)) {
            trials.extend(go);
        }
        Some(trials)
    }

    /// The Go original's claim's trials (`go_claim`'s variant and its baseline); none without
    /// one. Part of `claim_trials`; in a quick run they run only in a point's first rounds
    /// (`Settings::go_rounds`).
    pub fn go_claim_trials(&self) -> Vec<(&'static str, &'static str)> {
        self.go_claim().and_then(|c| self.trials_deciding(c.variant?)).unwrap_or_default()
    }

    /// `variant`'s baseline and `variant`, in the claim's case.
    fn trials_deciding(&self, variant: &str) -> Option<Vec<(&'static str, &'static str)>> {
        let infos = self.variant_infos();
        let index = self.variants.iter().position(|v| v.name == variant)?;
        let baseline = infos[index].baseline.clone()?;
        let case = self.claim_case();
        Some(vec![(case, self.variants.iter().find(|v| v.name == baseline)?.name), (case, self.variants[index].name)])
    }

    /// The variants as stored in results.json, with each one's baseline resolved.
    pub fn variant_infos(&self) -> Vec<VariantInfo> {
        let first = self.variants.first().map(|v| v.name);
        self.variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let baseline = match v.baseline {
                    Some(b) if b == v.name => None,
                    Some(b) => Some(b.to_owned()),
                    None if i == 0 => None,
                    None => first.map(str::to_owned),
                };
                VariantInfo { name: v.name.to_owned(), description: v.description.to_owned(), baseline }
            })
            .collect()
    }
}

/// What an experiment reads of the run's settings (the type lives with results.json, which
/// records it).
impl Settings {
    /// A time that must pass several times within every sample (a timeout, a check interval):
    /// the knob's `--set` in milliseconds, else a fifth of the measured window, at least
    /// `floor` (200 ms at a full run's 1 s samples).
    pub fn fifth_of_sample(&self, knob: &Knob, floor: std::time::Duration) -> anyhow::Result<std::time::Duration> {
        Ok(match knob.set_value(self)? {
            Some(ms) => std::time::Duration::from_millis(ms as u64),
            None => (self.duration / 5).max(floor),
        })
    }

    /// The sweep's points in this run's mode.
    pub fn points(&self, sweep: &Sweep) -> Vec<SweepPoint> {
        sweep.points(self.quick)
    }

    /// The load configuration for a closed loop with `concurrency` workers.
    pub fn closed_loop(&self, concurrency: u32) -> LoadConfig {
        LoadConfig::closed(concurrency, self.warmup, self.duration)
    }

    /// The load of trial `at` with `concurrency` workers: a closed loop, or, where the
    /// capacity search asks for a rate, an open loop at that rate over the same workers. An
    /// experiment that declares `Meta::capacity` builds its load with this.
    pub fn load_for(&self, at: &Trial<'_>, concurrency: u32) -> LoadConfig {
        match at.offered {
            Some(o) => LoadConfig {
                overload: o.overload,
                timeline: o.timeline,
                ..LoadConfig::open(concurrency, o.rate_per_sec, self.warmup, o.window)
            },
            None => self.closed_loop(concurrency),
        }
    }
}

/// The longest measured window of one capacity-search step (a full run's 5 s samples would
/// make a search of a dozen rates per variant take minutes).
pub const CAPACITY_STEP: std::time::Duration = std::time::Duration::from_secs(2);

/// Where an experiment's capacity search runs: the question "how many requests per second
/// does this technique buy" asked at one case and sweep point, of every variant.
#[derive(Debug, Clone, Copy)]
pub struct CapacityPlan {
    /// The case searched in (`""`: the claim's case).
    pub case: &'static str,
    /// The sweep value searched at (its workers: what `load_for` is given there).
    pub point: f64,
    /// The limits a rate must hold (the guide's target for the layer).
    pub limits: crate::load::capacity::Limits,
    /// Why these limits, in one sentence for the report.
    pub why: &'static str,
}

impl CapacityPlan {
    /// A search at `point` of the claim's case, under the guide's limits for a layer whose p95
    /// target is `p95_ms` (`Limits::guide`).
    pub const fn guide(point: f64, p95_ms: f64, why: &'static str) -> Self {
        Self { case: "", point, limits: crate::load::capacity::Limits::guide(p95_ms), why }
    }

    /// The same search in another case than the claim's.
    pub const fn in_case(self, case: &'static str) -> Self {
        Self { case, ..self }
    }
}

/// What the runner hands to an experiment's hooks.
pub struct RunCtx {
    pub env: Env,
    pub settings: Settings,
    pub probe: Probe,
    /// The micro engine's worker executables (in-process experiments).
    pub micro: crate::micro::Workers,
    /// The run's directory, where `bench --profile` keeps its profiles (none in tests and
    /// in a trial server of `--against`).
    pub out_dir: Option<std::path::PathBuf>,
    /// When the experiment now running should be done with its rounds (`--budget`'s share):
    /// the trials outside its claim ride along only where they leave its claim room before it.
    pub deadline: Option<std::time::Instant>,
}

#[cfg(any(test, feature = "testing"))]
impl RunCtx {
    /// A context for an experiment's own tests: servers from the machine's binaries (the
    /// same provisioning users run), quick settings with these `--set` values, no micro
    /// workers.
    pub async fn for_tests(need_postgres: bool, need_redis: bool, sets: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::for_tests_needing(Needs { postgres: need_postgres, redis: need_redis, redis_cluster: false }, sets).await
    }

    /// `for_tests` with the servers an experiment declares (a Redis Cluster included).
    pub async fn for_tests_needing(needs: Needs, sets: &[(&str, &str)]) -> anyhow::Result<Self> {
        let env = crate::provision::provision(&crate::provision::Request {
            provider: crate::provision::Provider::Local,
            need_postgres: needs.postgres,
            need_redis: needs.redis,
            need_redis_cluster: needs.redis_cluster,
            ..Default::default()
        })
        .await?;
        let probe = env.probe();
        let mut settings = Settings::quick_for_tests();
        settings.sets = sets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Ok(Self { env, settings, probe, micro: Default::default(), out_dir: None, deadline: None })
    }
}

impl RunCtx {
    /// What the micro engine needs of this run.
    pub fn bench(&self) -> Bench<'_> {
        Bench {
            settings: &self.settings,
            workers: &self.micro,
            redis_url: self.env.redis.as_ref().map(|r| r.url.as_str()),
        }
    }
}

/// The hook that measures one sample: the load engine driven by the experiment (or its own
/// driver: threads, a rate limiter's clock).
pub trait Run: Send + Sync {
    /// Measure one trial once. The sample's case/variant/point/repetition fields are filled
    /// in by the runner.
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>>;
}

/// How an experiment is measured.
pub enum Engine<'a> {
    /// Its `Run` hook measures each sample (servers, the load engine).
    Load(&'a dyn Run),
    /// The micro engine measures its routines in worker processes (criterion, dhat,
    /// callgrind); `run`, when given, measures instead and may add the micro engine's counts
    /// (`micro::allocations_into`).
    Micro { routines: &'a dyn Routines, run: Option<&'a dyn Run> },
}

impl Engine<'_> {
    pub fn is_micro(&self) -> bool {
        matches!(self, Engine::Micro { .. })
    }
}

/// One technique on trial.
///
/// The runner calls `setup` once, then for every sweep point `setup_point` and, for every
/// repetition, each case × variant once (interleaved in a balanced order), then `checks` once.
pub trait Experiment: Send + Sync {
    fn meta(&self) -> Meta;

    /// How the samples are measured.
    fn engine(&self) -> Engine<'_>;

    /// Create schema and data. Must be idempotent and deterministic (fixed seed). Nothing by
    /// default (in-process experiments).
    fn setup<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Prepare one sweep point before its samples, for experiments whose sweep axis is the
    /// data itself (a table size, months of data). Returns observations made there (plans,
    /// sizes), which join the checks.
    fn setup_point<'a>(
        &'a self,
        _ctx: &'a RunCtx,
        _point: &'a SweepPoint,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Correctness checks and other one-off observations, run after the measurements.
    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Notes for the report (limits of the experiment, what it cannot reproduce).
    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        Vec::new()
    }
}

/// Measure one trial of experiment `id` with its engine.
pub async fn measure(exp: &dyn Experiment, id: &str, ctx: &RunCtx, at: Trial<'_>) -> anyhow::Result<Sample> {
    match exp.engine() {
        Engine::Load(r) | Engine::Micro { run: Some(r), .. } => r.run(ctx, at).await,
        Engine::Micro { run: None, .. } => crate::micro::measure(&ctx.bench(), id, at).await,
    }
}
