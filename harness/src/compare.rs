//! Comparing two runs, as a regression gate reads them: for every experiment × case × variant
//! × point × declared metric present in both, the old and new median with their 95% CIs, the
//! change, a Mann-Whitney U test over the repetitions, and a verdict (benchstat's `~` for no
//! significant change). Correctness comes first: a check that was right and is now wrong is a
//! regression whatever the timings say.
//!
//! Two kinds of metric are judged differently. Timings and rates vary between runs: a change
//! is called only when the U test finds it (p ≤ 0.05) *and* it is larger than the timing
//! threshold; a significant change under it is "within noise". Deterministic metrics
//! (instruction counts, allocations, bytes, statements per batch) do not vary between runs of
//! the same code: they are compared by their medians against a small exact threshold, with no
//! test needed.

use crate::analysis;
use crate::results::{Better, ExperimentResult, ExperimentStatus, RunResults};
use crate::stats;
use serde::Serialize;

mod confirm;
mod output;
pub use confirm::{confirm, Confirmation};
pub use output::{fmt_change, summary_line, to_html, to_markdown, to_text};

/// The default threshold for timings and rates, percent. In an A/A study (two separate quick
/// runs of one commit, 4 repetitions, on the 2-core CI machine) the median change of a timing
/// was 9 %, the 90th percentile 47 %, and 13 % of the 760 timing comparisons were significant;
/// at 25 % compare still called 29 of them regressions. Between separate runs on such a machine
/// a timing gate is noise (`Gate::Deterministic` gates on counts only); within one run, where
/// the noise hits both sides alike, 25 % is the band a change must leave. Gated on the primary
/// metrics only (`Gate::Primary`, the default), two separate quick runs compare with exit 0.
pub const DEFAULT_TIMING_THRESHOLD_PCT: f64 = 25.0;

/// The noise band behind `DEFAULT_TIMING_THRESHOLD_PCT`, as compare prints it.
pub const SEPARATE_RUNS_NOISE: &str = "between two separate quick runs of one commit on the 2-core CI machine the primary metrics' medians moved 10 % (median) and 39 % (90th percentile)";

/// The default timing threshold of a two-revision run (`bench --against`), percent. Its two
/// builds run in the same rounds, so a timing is compared paired (per-round log-ratios), and a
/// regression must be significant, beyond this threshold, and found again by a confirmation
/// run of its experiment (Holm over the flagged comparisons): the family-wise error of the
/// gate is the confirmation's α whatever the threshold, which only keeps changes too small to
/// matter out of the gate.
pub const DEFAULT_INTERLEAVED_TIMING_THRESHOLD_PCT: f64 = 3.0;

/// What stands behind `DEFAULT_INTERLEAVED_TIMING_THRESHOLD_PCT`, as compare prints it.
pub const INTERLEAVED_NOISE: &str = "one run of two revisions: each timing is compared paired, round by round, and a flagged regression is confirmed by re-running its experiment (Holm over the flagged comparisons, family-wise error 5 %)";
/// The default threshold for deterministic metrics, percent. The same A/A study found counts
/// identical except where a client library or a concurrent cache allocates as it goes: the
/// Redis round trip's bytes moved by up to 2.6 %, moka's allocations by 1.2 %.
pub const DEFAULT_EXACT_THRESHOLD_PCT: f64 = 5.0;

/// Which regressions fail the gate (`Report::regressions`); the others are reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Every metric, timings included.
    All,
    /// Each experiment's primary metric (the one its verdicts are about), every count and
    /// correctness; the other timings are reported, not gated. For one run of two revisions
    /// (`bench --against`): its noise is shared, but an experiment has a dozen timing metrics
    /// (tails, CPU shares) and a run hundreds of comparisons, so at p ≤ 0.05 each, some would
    /// be called by chance; the primary metrics are the few that decide. The default.
    #[default]
    Primary,
    /// Counts only (instructions, allocations, bytes, statements) and correctness: for
    /// separate runs on a noisy machine, where timings move more than any useful threshold.
    Deterministic,
}

pub use crate::results::is_deterministic;

/// What to compare with, and how strictly.
#[derive(Debug, Clone)]
pub struct Options {
    pub timing_threshold_pct: f64,
    pub exact_threshold_pct: f64,
    /// Per-metric or per-experiment thresholds (`metric=pct`, `experiment.metric=pct`,
    /// `experiment=pct`), the most specific winning.
    pub overrides: Vec<(String, f64)>,
    pub gate: Gate,
    /// What the timing threshold is grounded in (printed with the comparison).
    pub noise: &'static str,
    /// The two sides ran in the same rounds (`bench --against`): timings are compared by
    /// their per-round log-ratios (a paired t), not by their medians (a U test).
    pub paired: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timing_threshold_pct: DEFAULT_TIMING_THRESHOLD_PCT,
            exact_threshold_pct: DEFAULT_EXACT_THRESHOLD_PCT,
            overrides: Vec::new(),
            gate: Gate::Primary,
            noise: SEPARATE_RUNS_NOISE,
            paired: false,
        }
    }
}

impl Options {
    /// The defaults for a two-revision run (`bench --against`): the revisions' trials were
    /// interleaved on the same servers, so their timings share the run's drift and a much
    /// narrower noise band holds (`DEFAULT_INTERLEAVED_TIMING_THRESHOLD_PCT`), and the gate
    /// judges the primary metrics, counts and checks (`Gate::Primary`).
    pub fn interleaved() -> Self {
        Self {
            timing_threshold_pct: DEFAULT_INTERLEAVED_TIMING_THRESHOLD_PCT,
            gate: Gate::Primary,
            noise: INTERLEAVED_NOISE,
            paired: true,
            ..Self::default()
        }
    }

    /// The threshold for `metric` of `experiment`.
    pub fn threshold(&self, experiment: &str, metric: &str) -> f64 {
        let find = |key: &str| self.overrides.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v);
        find(&format!("{experiment}.{metric}"))
            .or_else(|| find(metric))
            .or_else(|| find(experiment))
            .unwrap_or(if is_deterministic(metric) { self.exact_threshold_pct } else { self.timing_threshold_pct })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regressed,
    Improved,
    /// Significant, but smaller than the threshold.
    WithinNoise,
    /// No significant change (benchstat's `~`).
    Same,
}

/// A median with its interval over `n` valid repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub median: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub experiment: String,
    pub case: String,
    pub variant: String,
    pub point: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub deterministic: bool,
    /// The experiment's primary metric.
    pub primary: bool,
    pub old: Estimate,
    pub new: Estimate,
    /// (new − old) / old, percent: of the medians, or paired, of the geometric mean of the
    /// per-round ratios new / old.
    pub change_pct: f64,
    /// Timings only: a paired t on the per-round log-ratios (`pairs` of them), or
    /// Mann-Whitney U over the repetitions of separate runs.
    pub p_value: Option<f64>,
    /// The rounds both sides have (a paired comparison), or none (unpaired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    pub threshold_pct: f64,
    pub verdict: Verdict,
}

/// A correctness check that was right in the old run and is wrong in the new one.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenCheck {
    pub experiment: String,
    pub case: String,
    pub variant: String,
    pub point: Option<String>,
    pub check: String,
    pub old_value: f64,
    pub new_value: f64,
    pub detail: String,
}

impl BrokenCheck {
    /// `pg-pagination keyset: rows missed was 0 (right), is 7 (wrong): must be 0`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}: {} was {} (right), is {} (wrong): {}",
            self.experiment,
            trial_name(&self.case, &self.variant),
            self.check,
            crate::report::num(self.old_value),
            crate::report::num(self.new_value),
            self.detail
        )
    }
}

/// A row as the outputs name it: `by-username/guide/1000`.
pub(crate) fn row_name(r: &Row) -> String {
    format!("{}/{}", trial_name(&r.case, &r.variant), r.point)
}

/// A variant in a case as the outputs name it: `by-username/guide`, or just the variant.
fn trial_name(case: &str, variant: &str) -> String {
    if case.is_empty() {
        variant.to_owned()
    } else {
        format!("{case}/{variant}")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub old_run: String,
    pub new_run: String,
    /// How the two runs' contexts differ (host, servers, settings): their numbers may differ
    /// for those reasons too.
    pub context_differences: Vec<String>,
    /// Experiments in only one of the runs, or failed in one.
    pub not_compared: Vec<String>,
    pub broken_checks: Vec<BrokenCheck>,
    pub rows: Vec<Row>,
    pub gate: Gate,
    /// The thresholds and the noise band they stand on, in a sentence.
    pub thresholds: String,
}

impl Report {
    /// The regressions that fail the gate: broken checks, and regressed rows the gate covers.
    pub fn regressions(&self) -> usize {
        let gated = |r: &&Row| r.gated(self.gate);
        self.broken_checks.len() + self.rows.iter().filter(|r| r.verdict == Verdict::Regressed).filter(gated).count()
    }
}

impl Report {
    /// The experiments with a regression the gate covers (a broken check or a gated row), in
    /// the report's order.
    pub fn regressed_experiments(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let flagged = self.broken_checks.iter().map(|b| &b.experiment).chain(
            self.rows.iter().filter(|r| r.verdict == Verdict::Regressed && r.gated(self.gate)).map(|r| &r.experiment),
        );
        for id in flagged {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

/// Compare `new` with `old`.
pub fn compare(old: &RunResults, new: &RunResults, opts: &Options) -> Report {
    let mut report = Report {
        old_run: old.run_id.clone(),
        new_run: new.run_id.clone(),
        context_differences: context_differences(old, new),
        not_compared: Vec::new(),
        broken_checks: Vec::new(),
        rows: Vec::new(),
        gate: opts.gate,
        thresholds: format!(
            "Gate: {}. Timing threshold {} %: {}. Counts: {} %.",
            match opts.gate {
                Gate::All => "every metric",
                Gate::Primary => "each experiment's primary metric, every count and correctness check",
                Gate::Deterministic => "counts and correctness checks only",
            },
            opts.timing_threshold_pct,
            opts.noise,
            opts.exact_threshold_pct
        ),
    };
    for n in &new.experiments {
        let Some(o) = old.experiments.iter().find(|o| o.id == n.id) else {
            report.not_compared.push(format!("{}: only in the new run", n.id));
            continue;
        };
        for (e, which) in [(o, "old"), (n, "new")] {
            if let ExperimentStatus::Failed { error } = &e.status {
                report
                    .not_compared
                    .push(format!("{}: failed in the {which} run ({error}); its samples so far are compared", e.id));
            }
        }
        report.context_differences.extend(redefined_variants(o, n));
        report.broken_checks.extend(broken_checks(o, n));
        report.rows.extend(rows(o, n, opts));
    }
    for o in &old.experiments {
        if !new.experiments.iter().any(|n| n.id == o.id) {
            report.not_compared.push(format!("{}: only in the old run", o.id));
        }
    }
    report
}

/// Variants and cases of one name whose description changed between the runs: their rows
/// compare different code or work (a port rewritten, a baseline replaced, a load reshaped),
/// so a change there may be the new definition rather than a regression.
fn redefined_variants(o: &ExperimentResult, n: &ExperimentResult) -> Vec<String> {
    let variants = |e: &ExperimentResult| -> Vec<(String, String)> {
        e.variants.iter().map(|v| (v.name.clone(), v.description.clone())).collect()
    };
    let cases = |e: &ExperimentResult| -> Vec<(String, String)> {
        e.cases.iter().map(|c| (c.name.clone(), c.description.clone())).collect()
    };
    let mut out = Vec::new();
    for (what, compares, old, new) in
        [("variant", "code", variants(o), variants(n)), ("case", "work", cases(o), cases(n))]
    {
        for (name, now) in &new {
            if let Some((_, was)) = old.iter().find(|(m, was)| m == name && was != now) {
                out.push(format!(
                    "{}/{name}: the {what} was redefined (was: {was}; now: {now}), so its rows compare different {compares}",
                    n.id
                ));
            }
        }
    }
    out
}

fn broken_checks(o: &ExperimentResult, n: &ExperimentResult) -> Vec<BrokenCheck> {
    n.checks
        .iter()
        .filter(|c| c.ok == Some(false))
        .filter_map(|c| {
            let before = o
                .checks
                .iter()
                .find(|x| x.case == c.case && x.variant == c.variant && x.point == c.point && x.name == c.name)?;
            (before.ok == Some(true)).then(|| BrokenCheck {
                experiment: n.id.clone(),
                case: c.case.clone(),
                variant: c.variant.clone(),
                point: c.point.clone(),
                check: c.name.clone(),
                old_value: before.value,
                new_value: c.value,
                detail: c.detail.clone(),
            })
        })
        .collect()
}

fn rows(o: &ExperimentResult, n: &ExperimentResult, opts: &Options) -> Vec<Row> {
    let mut out = Vec::new();
    let metrics =
        std::iter::once(&n.primary_metric).chain(n.metrics.iter().filter(|m| m.name != n.primary_metric.name));
    for metric in metrics {
        for case in n.case_names() {
            for point in &n.sweep.points {
                for v in &n.variants {
                    let (Some(a), Some(b)) = (
                        o.summary(&metric.name, case, &v.name, &point.label),
                        n.summary(&metric.name, case, &v.name, &point.label),
                    ) else {
                        continue;
                    };
                    let deterministic = is_deterministic(&metric.name);
                    let threshold_pct = opts.threshold(&n.id, &metric.name);
                    let change_pct = if a.median != 0.0 {
                        (b.median - a.median) / a.median.abs() * 100.0
                    } else if b.median == 0.0 {
                        0.0
                    } else {
                        f64::INFINITY.copysign(b.median)
                    };
                    let worse = match metric.better {
                        Better::Lower => change_pct > 0.0,
                        Better::Higher => change_pct < 0.0,
                    };
                    // Both sides below the level the experiment declares negligible (a cold
                    // start's "warm-up" of a microsecond): no change worth a verdict.
                    let negligible = metric.negligible_below.is_some_and(|l| a.median.abs() < l && b.median.abs() < l);
                    let paired = match opts.paired && !deterministic && !negligible {
                        true => paired_change(o, n, &metric.name, case, &v.name, &point.label),
                        false => None,
                    };
                    let (change_pct, worse) = match paired {
                        Some(r) => {
                            let c = (r.ratio - 1.0) * 100.0;
                            (c, if metric.better == Better::Lower { c > 0.0 } else { c < 0.0 })
                        }
                        None => (change_pct, worse),
                    };
                    let (p_value, verdict) = if negligible {
                        (None, Verdict::Same)
                    } else if deterministic {
                        (None, judge(true, change_pct, threshold_pct, worse))
                    } else {
                        let p = match paired {
                            Some(r) => Some(r.p),
                            None => {
                                let before = analysis::values(o, &metric.name, case, &v.name, &point.label);
                                let after = analysis::values(n, &metric.name, case, &v.name, &point.label);
                                stats::mann_whitney_u(&before, &after).map(|m| m.p_value)
                            }
                        };
                        let significant = p.is_some_and(|p| p <= analysis::ALPHA);
                        (p, judge(significant, change_pct, threshold_pct, worse))
                    };
                    out.push(Row {
                        experiment: n.id.clone(),
                        case: case.to_owned(),
                        variant: v.name.clone(),
                        point: point.label.clone(),
                        metric: metric.name.clone(),
                        unit: metric.unit.clone(),
                        better: metric.better,
                        deterministic,
                        primary: metric.name == n.primary_metric.name,
                        old: Estimate { median: a.median, ci_low: a.ci_low, ci_high: a.ci_high, n: a.n },
                        new: Estimate { median: b.median, ci_low: b.ci_low, ci_high: b.ci_high, n: b.n },
                        change_pct,
                        p_value,
                        pairs: paired.map(|r| r.n),
                        threshold_pct,
                        verdict,
                    });
                }
            }
        }
    }
    out
}

/// The paired change of `metric` from `o` to `n` (the two sides of one `--against` run, whose
/// samples of a round share its repetition number), from the rounds valid on both sides; none
/// with fewer than 2 such rounds or a value that is not positive (then compared unpaired).
fn paired_change(
    o: &ExperimentResult,
    n: &ExperimentResult,
    metric: &str,
    case: &str,
    variant: &str,
    point: &str,
) -> Option<stats::PairedRatio> {
    let (new, old) = analysis::pair_rounds(
        &analysis::by_round(n, metric, case, variant, point),
        &analysis::by_round(o, metric, case, variant, point),
    );
    stats::paired_log_ratio(&new, &old, 1.0 - analysis::ALPHA)
}

/// The verdict on a change: significant (or deterministic) and beyond the threshold, in the
/// metric's bad direction, is a regression.
fn judge(significant: bool, change_pct: f64, threshold_pct: f64, worse: bool) -> Verdict {
    if !significant || change_pct == 0.0 {
        Verdict::Same
    } else if change_pct.abs() <= threshold_pct {
        Verdict::WithinNoise
    } else if worse {
        Verdict::Regressed
    } else {
        Verdict::Improved
    }
}

/// What differs between the runs' contexts in ways that move numbers.
pub fn context_differences(old: &RunResults, new: &RunResults) -> Vec<String> {
    let (a, b) = (&old.context, &new.context);
    let mut out = Vec::new();
    let mut diff = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what}: {x} → {y}"));
        }
    };
    diff("host CPU", format!("{:?}", a.host.cpu_model), format!("{:?}", b.host.cpu_model));
    diff("cores", a.host.cores.to_string(), b.host.cores.to_string());
    diff("kernel", format!("{:?}", a.host.kernel), format!("{:?}", b.host.kernel));
    diff("provider", a.servers.provider.clone(), b.servers.provider.clone());
    let version = |s: &Option<crate::results::ServerInfo>| s.as_ref().map(|s| s.version.clone()).unwrap_or_default();
    diff("PostgreSQL", version(&a.servers.postgres), version(&b.servers.postgres));
    diff("Redis", version(&a.servers.redis), version(&b.servers.redis));
    let (s, t) = (&a.settings, &b.settings);
    let mode = |q: bool| if q { "quick" } else { "full" }.to_owned();
    diff("mode", mode(s.quick), mode(t.quick));
    diff("repetitions", s.repetitions.to_string(), t.repetitions.to_string());
    diff("duration", format!("{:?}", s.duration), format!("{:?}", t.duration));
    diff("warm-up", format!("{:?}", s.warmup), format!("{:?}", t.warmup));
    diff("concurrency", format!("{:?}", s.concurrency), format!("{:?}", t.concurrency));
    diff("--set", format!("{:?}", s.sets), format!("{:?}", t.sets));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{MetricInfo, Sample};

    fn run(id: &str, values: &[(&str, f64)], reps: u32) -> RunResults {
        let mut r: RunResults = serde_json::from_str(include_str!("../tests/data/minimal_run.json")).unwrap();
        r.run_id = id.into();
        let e = &mut r.experiments[0];
        e.metrics = vec![MetricInfo::new("allocs_per_call", "allocations", Better::Lower, "")];
        e.samples.clear();
        for rep in 0..reps {
            for (variant, v) in values {
                let mut s =
                    Sample { variant: (*variant).into(), point: "1".into(), repetition: rep, ..Sample::default() };
                // A little spread, the same in both runs.
                s.metrics.insert("latency_p50_us".into(), v * (1.0 + 0.01 * f64::from(rep)));
                s.metrics.insert("allocs_per_call".into(), 3.0);
                s.metrics.insert("ok".into(), 100.0);
                e.samples.push(s);
            }
        }
        crate::analysis::analyse(e, crate::analysis::Claim::default());
        r
    }

    #[test]
    fn a_slowdown_beyond_the_threshold_is_a_regression_and_the_same_run_is_not() {
        let old = run("old", &[("a", 100.0)], 6);
        let same = compare(&old, &run("new", &[("a", 100.0)], 6), &Options::default());
        assert_eq!(same.regressions(), 0, "{}", to_text(&same));
        assert!(same.rows.iter().all(|r| r.verdict == Verdict::Same));
        let slow = compare(&old, &run("new", &[("a", 150.0)], 6), &Options::default());
        let r = slow.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap();
        assert_eq!(r.verdict, Verdict::Regressed, "{}", to_text(&slow));
        assert!((r.change_pct - 50.0).abs() < 1.0, "{}", r.change_pct);
        assert!(fmt_change(r).starts_with("+50."), "{}", fmt_change(r));
        // Under the threshold the same slowdown is significant but within noise.
        let tolerant = Options { timing_threshold_pct: 60.0, ..Options::default() };
        let within = compare(&old, &run("new", &[("a", 150.0)], 6), &tolerant);
        assert_eq!(within.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap().verdict, Verdict::WithinNoise);
        // Faster is an improvement, never a regression.
        let fast = compare(&old, &run("new", &[("a", 50.0)], 6), &Options::default());
        assert_eq!(fast.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap().verdict, Verdict::Improved);
        assert_eq!(fast.regressions(), 0);
    }

    /// Both sides of one `--against` run: every round drifts by up to ±30 % (the machine),
    /// variant `a` of the new side takes `slow` times as long in each round, give or take
    /// 0.5 %, and variant `b` (when asked) `slow_b` times.
    fn revision(id: &str, slow: f64, slow_b: Option<f64>) -> RunResults {
        const DRIFT: [f64; 6] = [1.0, 1.3, 0.8, 1.2, 0.75, 1.1];
        let mut r = run(id, &[("a", 100.0)], 6);
        let e = &mut r.experiments[0];
        if let Some(sb) = slow_b {
            let mut b = e.variants[0].clone();
            b.name = "b".into();
            e.variants.push(b);
            for rep in 0..6u32 {
                let mut s = Sample { variant: "b".into(), point: "1".into(), repetition: rep, ..Sample::default() };
                s.metrics.insert("latency_p50_us".into(), 200.0 * DRIFT[rep as usize] * sb);
                s.metrics.insert("ok".into(), 100.0);
                e.samples.push(s);
            }
        }
        for s in e.samples.iter_mut().filter(|s| s.variant == "a") {
            let jitter = if s.repetition % 2 == 0 { 1.005 } else { 0.995 };
            s.metrics.insert("latency_p50_us".into(), 100.0 * DRIFT[s.repetition as usize] * slow * jitter);
        }
        crate::analysis::analyse(e, crate::analysis::Claim::default());
        r
    }

    #[test]
    fn two_revisions_in_one_run_are_compared_paired_so_the_rounds_drift_cancels() {
        let old = revision("old", 1.0, None);
        let slow = revision("new", 1.06, None);
        let unpaired = Options { timing_threshold_pct: 3.0, ..Options::default() };
        let rep = compare(&old, &slow, &unpaired);
        let r = rep.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap();
        assert_eq!((r.verdict, r.pairs), (Verdict::Same, None), "medians under ±30 % drift cannot see 6 %");
        let rep = compare(&old, &slow, &Options::interleaved());
        let r = rep.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap();
        assert_eq!((r.verdict, r.pairs), (Verdict::Regressed, Some(6)), "{}", to_text(&rep));
        assert!((r.change_pct - 6.0).abs() < 0.5, "the geometric mean of the rounds' ratios: {}", r.change_pct);
        assert!(fmt_change(r).contains("6 rounds paired"), "{}", fmt_change(r));
        // A/A: the same drift on both sides, nothing to call.
        let same = compare(&old, &revision("new", 1.0, None), &Options::interleaved());
        assert_eq!(same.regressions(), 0, "{}", to_text(&same));
        // 2 % is significant but under the 3 % threshold: within noise.
        let small = compare(&old, &revision("new", 1.02, None), &Options::interleaved());
        let r = small.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap();
        assert_eq!(r.verdict, Verdict::WithinNoise, "{}", to_text(&small));
    }

    #[test]
    fn a_flagged_regression_stands_only_when_the_confirmation_finds_it_under_holm() {
        let old = revision("old", 1.0, Some(1.0));
        let first = compare(&old, &revision("new", 1.10, Some(1.10)), &Options::interleaved());
        assert_eq!(first.regressions(), 2, "{}", to_text(&first));
        assert_eq!(first.regressed_experiments().len(), 1);
        // Found again: confirmed; gone in the new run (chance the first time): not.
        let again = compare(&old, &revision("new", 1.10, Some(1.10)), &Options::interleaved());
        assert_eq!(confirm(&first, &again).confirmed.len(), 2);
        let gone = compare(&old, &revision("new", 1.0, Some(1.0)), &Options::interleaved());
        let c = confirm(&first, &gone);
        assert_eq!((c.flagged.len(), c.confirmed.len()), (2, 0), "{}", c.describe());
        // Holm over the two flagged: p = 0.03 and 0.04 are each below 0.05 but the smallest
        // is above 0.05 / 2, so neither stands; 0.01 and 0.04 both do (step-down).
        let with_p = |pa: f64, pb: f64| {
            let mut r = again.clone();
            for row in r.rows.iter_mut().filter(|x| x.metric == "latency_p50_us") {
                row.p_value = Some(if row.variant == "a" { pa } else { pb });
            }
            r
        };
        assert_eq!(confirm(&first, &with_p(0.03, 0.04)).confirmed.len(), 0);
        assert_eq!(confirm(&first, &with_p(0.01, 0.04)).confirmed.len(), 2);
        assert_eq!(confirm(&first, &with_p(0.01, 0.3)).confirmed.len(), 1);
    }

    #[test]
    fn too_few_repetitions_cannot_call_a_timing_change_but_deterministic_metrics_gate_exactly() {
        // Two repetitions a side: the U test cannot reach p ≤ 0.05 at all.
        let old = run("old", &[("a", 100.0)], 2);
        let rep = compare(&old, &run("new", &[("a", 300.0)], 2), &Options::default());
        assert_eq!(rep.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap().verdict, Verdict::Same);
        let mut new = run("new", &[("a", 100.0)], 2);
        for s in &mut new.experiments[0].samples {
            s.metrics.insert("allocs_per_call".into(), 4.0);
        }
        crate::analysis::analyse(&mut new.experiments[0], crate::analysis::Claim::default());
        let rep = compare(&old, &new, &Options::default());
        let allocs = rep.rows.iter().find(|r| r.metric == "allocs_per_call").unwrap();
        assert!(allocs.deterministic && allocs.p_value.is_none());
        assert_eq!(allocs.verdict, Verdict::Regressed, "3 → 4 allocations is +33 %");
    }

    #[test]
    fn a_check_that_breaks_is_a_regression_first() {
        use crate::results::Check;
        let mut old = run("old", &[("a", 100.0)], 4);
        let mut new = run("new", &[("a", 100.0)], 4);
        old.experiments[0].checks.push(Check::verdict("a", None, "rows missed", 0.0, true, "must be 0"));
        new.experiments[0].checks.push(Check::verdict("a", None, "rows missed", 7.0, false, "must be 0"));
        let rep = compare(&old, &new, &Options::default());
        assert_eq!(rep.broken_checks.len(), 1);
        assert_eq!(rep.regressions(), 1);
        assert!(to_text(&rep).contains("CORRECTNESS REGRESSION"));
        assert!(to_markdown(&rep).contains(":x: **correctness**"));
        let html = to_html(&rep).unwrap();
        assert!(html.contains("Correctness regression") && html.contains("<svg"), "{html}");
    }

    /// The compare page goes through the report's templates and escaping: a run named with
    /// markup and quotes shows as text (in the page and in the chart's legend), never as markup.
    #[test]
    fn the_compare_page_escapes_what_it_shows() {
        let old = run("old <b>\"run\"</b>", &[("a", 100.0)], 4);
        let new = run("new", &[("a", 150.0)], 4);
        let html = to_html(&compare(&old, &new, &Options::default())).unwrap();
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("<h1>perflab compare</h1>") && html.contains("&lt;b&gt;&quot;run&quot;"), "{html}");
        assert!(html.contains("<svg") && html.contains("<style>"), "the chart and the shared stylesheet");
    }

    #[test]
    fn the_deterministic_gate_reports_timings_without_failing_on_them() {
        let old = run("old", &[("a", 100.0)], 6);
        let opts = Options { gate: Gate::Deterministic, ..Options::default() };
        let slow = compare(&old, &run("new", &[("a", 150.0)], 6), &opts);
        assert_eq!(slow.rows.iter().find(|r| r.metric == "latency_p50_us").unwrap().verdict, Verdict::Regressed);
        assert_eq!(slow.regressions(), 0, "timings are reported, not gated");
        assert!(to_text(&slow).contains("regressed (not gated)"));
        assert!(summary_line(&slow).contains("1 timing regression(s) not gated"));
    }

    #[test]
    fn the_primary_gate_fails_on_the_primary_metric_only() {
        let old = run("old", &[("a", 100.0)], 6);
        let mut slow = run("new", &[("a", 150.0)], 6);
        let opts = Options { gate: Gate::Primary, ..Options::default() };
        let rep = compare(&old, &slow, &opts);
        let primary = rep.rows.iter().find(|r| r.primary).expect("a primary row");
        assert_eq!(primary.metric, "latency_p50_us");
        assert_eq!(rep.regressions(), 1, "the primary metric regressed");
        // The same slowdown in a secondary timing metric is reported, not gated.
        let e = &mut slow.experiments[0];
        e.metrics.push(e.primary_metric.clone());
        e.primary_metric = MetricInfo::new("ok", "ops", Better::Higher, "");
        crate::analysis::analyse(e, crate::analysis::Claim::default());
        let rep = compare(&old, &slow, &opts);
        assert_eq!(rep.regressions(), 0, "{}", to_text(&rep));
        assert!(to_text(&rep).contains("regressed (not gated)"));
    }

    #[test]
    fn thresholds_take_the_most_specific_override() {
        let o = Options {
            overrides: vec![("latency_p50_us".into(), 10.0), ("pg-x.latency_p50_us".into(), 3.0), ("pg-y".into(), 7.0)],
            ..Options::default()
        };
        assert_eq!(o.threshold("pg-x", "latency_p50_us"), 3.0);
        assert_eq!(o.threshold("pg-z", "latency_p50_us"), 10.0);
        assert_eq!(o.threshold("pg-y", "ops_per_sec"), 7.0);
        assert_eq!(o.threshold("pg-z", "instructions_per_call"), DEFAULT_EXACT_THRESHOLD_PCT);
        assert_eq!(o.threshold("pg-z", "ops_per_sec"), DEFAULT_TIMING_THRESHOLD_PCT);
    }

    #[test]
    fn context_differences_are_listed() {
        let old = run("old", &[("a", 1.0)], 1);
        let mut new = old.clone();
        assert!(context_differences(&old, &new).is_empty());
        new.context.settings.quick = !old.context.settings.quick;
        new.context.host.cores += 2;
        let d = context_differences(&old, &new);
        assert_eq!(d.len(), 2, "{d:?}");
    }

    #[test]
    fn a_variant_redefined_between_the_runs_is_listed() {
        let old = run("old", &[("a", 1.0)], 3);
        let mut new = old.clone();
        assert!(compare(&old, &new, &Options::default()).context_differences.is_empty());
        new.experiments[0].variants[0].description = "something else".into();
        let d = compare(&old, &new, &Options::default()).context_differences;
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("/a: the variant was redefined") && d[0].contains("something else"), "{d:?}");
    }
}
