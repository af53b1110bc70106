//! Turns the samples of an experiment into per-variant summaries and verdicts.

use crate::results::{
    resource_value, spectrum_metric, Better, Comparison, ExperimentResult, MetricComparison, MetricInfo, MetricSummary,
    PointAnalysis, Sample, VariantSummary, VerdictKind, RESOURCE_METRICS,
};
use crate::stats;

/// Confidence level of every interval, and the significance level of every test.
pub const LEVEL: f64 = 0.95;
pub const ALPHA: f64 = 0.05;
const RESAMPLES: usize = 4000;
const SEED: u64 = 0x9e11_ab5e_ed00_0001;

pub(crate) mod paired;
mod validity;
pub use paired::{by_round, claim_decided, pair_rounds, paired_values, MIN_PAIRS};
pub use validity::{invalid_reason, starvation, MAX_ERROR_RATE, MIN_PACED_FOR_P99, STARVED_SHARE};

/// A metric's values per repetition for one variant at one point of one case, from valid
/// samples only.
pub fn values(result: &ExperimentResult, metric: &str, case: &str, variant: &str, point: &str) -> Vec<f64> {
    result
        .samples
        .iter()
        .filter(|s| s.case == case && s.variant == variant && s.point == point && s.invalid.is_none())
        .filter_map(|s| s.metrics.get(metric).copied())
        .filter(|v| v.is_finite())
        .collect()
}

/// How many samples of `variant` at `point` of `case` were invalid, and why the first one was.
fn invalid_count<'a>(result: &'a ExperimentResult, case: &str, variant: &str, point: &str) -> (usize, &'a str) {
    let mut bad = result
        .samples
        .iter()
        .filter(|s| s.case == case && s.variant == variant && s.point == point)
        .filter_map(|s| s.invalid.as_deref());
    let first = bad.next();
    (first.map_or(0, |_| 1 + bad.count()), first.unwrap_or(""))
}

pub use crate::results::Claim;

/// Fill `result.analysis`, `headline`, `summaries` and `metric_comparisons` from its samples
/// (`decide::decide` adds the finding and the targets).
/// Samples not yet judged are judged here (`invalid_reason`), so a sample made of errors never
/// reaches a verdict whoever produced it.
pub fn analyse(result: &mut ExperimentResult, claim: Claim<'_>) {
    for s in &mut result.samples {
        if s.invalid.is_none() {
            s.invalid = invalid_reason(s, &result.outcome_errors);
        }
    }
    let metric = result.primary_metric.clone();
    let level = paired::level(result);
    let mut out = Vec::new();
    for case in result.case_names() {
        for point in &result.sweep.points {
            let mut variants = Vec::new();
            for v in &result.variants {
                let vals = values(result, &metric.name, case, &v.name, &point.label);
                if let Some(ci) = stats::bootstrap_median_ci(&vals, LEVEL, RESAMPLES, SEED) {
                    variants.push(VariantSummary {
                        variant: v.name.clone(),
                        n: vals.len(),
                        median: ci.estimate,
                        ci_low: ci.low,
                        ci_high: ci.high,
                    });
                }
            }
            let mut comparisons = Vec::new();
            for v in &result.variants {
                let Some(baseline) = &v.baseline else {
                    continue;
                };
                let a = values(result, &metric.name, case, &v.name, &point.label);
                let b = values(result, &metric.name, case, baseline, &point.label);
                let (pa, pb) = paired_values(result, &metric.name, case, &v.name, baseline, &point.label);
                let where_ = result.place(case, &point.label);
                let mut c = compare_at(&v.name, baseline, &a, &b, Some((&pa, &pb)), &metric, &where_, level);
                c.case = case.to_owned();
                if c.verdict == VerdictKind::Missing {
                    for (name, vals) in [(v.name.as_str(), &a), (baseline.as_str(), &b)] {
                        let (bad, why) = invalid_count(result, case, name, &point.label);
                        if vals.is_empty() && bad > 0 {
                            // Why the samples were left out: failed operations, or a harness
                            // that paced late; the first one's reason says which.
                            c.sentence = format!(
                                "no verdict for {} vs {baseline} at {where_}: every sample of {name} ({bad}) was left out (failed operations or a late harness); the first: {why}",
                                v.name
                            );
                            break;
                        }
                    }
                }
                comparisons.push(c);
            }
            out.push(PointAnalysis { case: case.to_owned(), point: point.label.clone(), variants, comparisons });
        }
    }
    // The headline: the claim's comparison at the last point where it has a verdict, else at
    // the last point (a missing verdict says why); without a named claim variant, the first
    // comparison. Never chosen by size: the most extreme ratio is rarely the claim's.
    let pick = |p: &PointAnalysis| -> Option<Comparison> {
        if p.case != claim.case {
            return None;
        }
        match claim.variant {
            Some(v) => p.comparisons.iter().find(|c| c.variant == v).cloned(),
            None => p.comparisons.first().cloned(),
        }
    };
    // A control point (where the technique cannot act) is never the headline while another
    // point has a verdict.
    let controls: Vec<&str> = result.rule.iter().flat_map(|r| r.controls.iter().map(|c| c.point.as_str())).collect();
    let evidence = |p: &&PointAnalysis| !controls.contains(&p.point.as_str());
    result.headline = out
        .iter()
        .rev()
        .filter(evidence)
        .filter_map(pick)
        .find(|c| c.verdict != VerdictKind::Missing)
        .or_else(|| out.iter().rev().filter_map(pick).find(|c| c.verdict != VerdictKind::Missing))
        .or_else(|| out.iter().rev().find_map(pick));
    // What each point's claim comparison could have detected: its CI's half-width.
    for r in &mut result.rounds {
        r.detectable = out
            .iter()
            .filter(|p| p.case == claim.case && p.point == r.point)
            .flat_map(|p| p.comparisons.iter())
            .find(|c| Some(c.variant.as_str()) == claim.variant)
            .and_then(|c| Some((c.ratio_ci_high? / c.ratio_ci_low?).sqrt() - 1.0))
            .filter(|d| d.is_finite());
    }
    result.analysis = out;
    result.summaries = summaries(result);
    result.metric_comparisons = metric_comparisons(result);
}

/// Every declared metric but the primary one, compared with each variant's baseline at every
/// point of every case, from valid samples; metrics a variant did not record are left out.
fn metric_comparisons(result: &ExperimentResult) -> Vec<MetricComparison> {
    let level = paired::level(result);
    let mut out = Vec::new();
    for metric in result.metrics.iter().filter(|m| m.name != result.primary_metric.name) {
        for case in result.case_names() {
            for point in &result.sweep.points {
                for v in &result.variants {
                    let Some(baseline) = &v.baseline else {
                        continue;
                    };
                    let a = values(result, &metric.name, case, &v.name, &point.label);
                    let b = values(result, &metric.name, case, baseline, &point.label);
                    if a.is_empty() || b.is_empty() {
                        continue;
                    }
                    let (pa, pb) = paired_values(result, &metric.name, case, &v.name, baseline, &point.label);
                    let where_ = result.place(case, &point.label);
                    let mut c = compare_at(&v.name, baseline, &a, &b, Some((&pa, &pb)), metric, &where_, level);
                    c.case = case.to_owned();
                    c.sentence = format!("{}: {}", metric.name, c.sentence);
                    out.push(MetricComparison {
                        metric: metric.name.clone(),
                        case: case.to_owned(),
                        point: point.label.clone(),
                        comparison: c,
                    });
                }
            }
        }
    }
    out
}

/// A sample's value of `metric`: a recorded metric, a resource (`RESOURCE_METRICS`), or a
/// percentile of its latency spectrum (`spectrum_metric`).
pub(crate) fn sample_value(s: &Sample, metric: &str) -> Option<f64> {
    if let Some(&v) = s.metrics.get(metric) {
        return Some(v);
    }
    if RESOURCE_METRICS.contains(&metric) {
        return s.resources.as_ref().and_then(|r| resource_value(r, metric));
    }
    s.latency.as_ref()?.percentiles_us.iter().find(|(p, _)| spectrum_metric(*p) == metric).map(|&(_, v)| v)
}

/// Median and CI of every metric the report shows, per variant and point, from valid samples.
fn summaries(result: &ExperimentResult) -> Vec<MetricSummary> {
    let mut names: Vec<String> = std::iter::once(result.primary_metric.name.clone())
        .chain(result.metrics.iter().map(|m| m.name.clone()))
        .chain(RESOURCE_METRICS.iter().map(|m| (*m).to_owned()))
        .collect();
    for s in &result.samples {
        for (p, _) in s.latency.iter().flat_map(|l| &l.percentiles_us) {
            let name = spectrum_metric(*p);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.dedup();
    let mut out = Vec::new();
    for name in &names {
        for case in result.case_names() {
            for point in &result.sweep.points {
                for v in &result.variants {
                    let vals: Vec<f64> = result
                        .samples
                        .iter()
                        .filter(|s| s.case == case && s.variant == v.name && s.point == point.label)
                        .filter(|s| s.invalid.is_none())
                        .filter_map(|s| sample_value(s, name))
                        .filter(|x| x.is_finite())
                        .collect();
                    if let Some(ci) = stats::bootstrap_median_ci(&vals, LEVEL, RESAMPLES, SEED) {
                        out.push(MetricSummary {
                            metric: name.clone(),
                            case: case.to_owned(),
                            variant: v.name.clone(),
                            point: point.label.clone(),
                            n: vals.len(),
                            median: ci.estimate,
                            ci_low: ci.low,
                            ci_high: ci.high,
                        });
                    }
                }
            }
        }
    }
    out
}

pub use crate::results::fmt_num;

/// A confidence level as a percentage in as few digits as it needs: 95, 97.5, 98.8.
fn fmt_level(level: f64) -> String {
    format!("{}", (level * 1000.0).round() / 10.0)
}

/// A ratio variant / baseline (with its CI) read as a direction: whether the variant is
/// better, the word for it ("faster"/"slower" for a time or a rate, else "better"/"worse"),
/// and the factor with its CI as shown (≥ 1, the CI turned the same way).
struct Direction {
    better: bool,
    word: &'static str,
    shown: f64,
    lo: f64,
    hi: f64,
}

fn direction(metric: &MetricInfo, ratio: f64, low: f64, high: f64) -> Direction {
    // As a factor of improvement (> 1: the variant is better).
    let (factor, f_low, f_high) = match metric.better {
        Better::Higher => (ratio, low, high),
        Better::Lower => (1.0 / ratio, 1.0 / high, 1.0 / low),
    };
    let timing = matches!(metric.unit.as_str(), "us" | "ms" | "s" | "ns") || metric.unit.ends_with("/s");
    let (up, down) = if timing { ("faster", "slower") } else { ("better", "worse") };
    if factor >= 1.0 {
        Direction { better: true, word: up, shown: factor, lo: f_low, hi: f_high }
    } else {
        Direction { better: false, word: down, shown: 1.0 / factor, lo: 1.0 / f_high, hi: 1.0 / f_low }
    }
}

pub(crate) fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// Compare `variant` (values `a`) with `baseline` (values `b`) on `metric`, unpaired.
pub fn compare(variant: &str, baseline: &str, a: &[f64], b: &[f64], metric: &MetricInfo, where_: &str) -> Comparison {
    compare_at(variant, baseline, a, b, None, metric, where_, LEVEL)
}

/// Compare `variant` (values `a`) with `baseline` (values `b`) on `metric`: from the per-round
/// `pairs` at `level` where they serve (`paired::compare_paired`), else unpaired (medians, a
/// bootstrap 95% CI of their ratio, the U test).
#[allow(clippy::too_many_arguments)]
pub fn compare_at(
    variant: &str,
    baseline: &str,
    a: &[f64],
    b: &[f64],
    pairs: Option<(&[f64], &[f64])>,
    metric: &MetricInfo,
    where_: &str,
    level: f64,
) -> Comparison {
    let missing = |why: &str| {
        let sentence = format!("{variant} vs {baseline} at {where_}: {why}");
        Comparison::without_ratio(variant, baseline, None, VerdictKind::Missing, sentence)
    };
    if a.is_empty() || b.is_empty() {
        return missing("no samples to compare");
    }
    let (ma, mb) = (stats::median(a).unwrap_or(f64::NAN), stats::median(b).unwrap_or(f64::NAN));
    if let Some(level) = metric.negligible_below.filter(|_| metric.better == Better::Lower) {
        if ma <= level && mb <= level {
            let mw = stats::mann_whitney_u(a, b).expect("non-empty, finite");
            let sentence = format!(
                "{variant} and {baseline} are both within {} {} at {where_} (median {} vs {}): below {} {} the difference does not matter",
                fmt_num(ma.max(mb)),
                metric.unit,
                fmt_num(ma),
                fmt_num(mb),
                fmt_num(level),
                metric.unit,
            );
            let p = Some(mw.p_value);
            return Comparison::without_ratio(variant, baseline, p, VerdictKind::NoDifference, sentence);
        }
    }
    if ma == 0.0 || mb == 0.0 {
        // A ratio with a zero median is 0 or infinite ("inf× faster"): state the medians and
        // let the rank test alone decide whether they differ.
        return zero_median(variant, baseline, a, b, (ma, mb), metric, where_, 1.0 - level);
    }
    if let Some(c) = pairs.and_then(|p| paired::compare_paired(variant, baseline, p, metric, where_, level)) {
        return c;
    }
    let alpha = 1.0 - level;
    let pct = fmt_level(level);
    let Some(ci) = stats::bootstrap_ratio_ci(a, b, level, RESAMPLES, SEED) else {
        // Zero medians were handled above; a resample can still meet one.
        return missing("no ratio could be formed from these samples");
    };
    let mw = stats::mann_whitney_u(a, b).expect("non-empty, finite");
    let Direction { better: variant_better, word, shown, lo, hi } = direction(metric, ci.estimate, ci.low, ci.high);
    let medians = format!("median {} {} vs {} {}", fmt_num(ma), metric.unit, fmt_num(mb), metric.unit);
    let straddles = ci.low <= 1.0 && ci.high >= 1.0;
    let (verdict, sentence) = if mw.min_attainable_p > alpha {
        (
            VerdictKind::Inconclusive,
            format!(
                "{variant} looks {}× {word} than {baseline} at {where_} ({medians}), but {} vs {} repetitions are too few for a significance test (it needs 4 or more each)",
                fmt_num(shown),
                a.len(),
                b.len()
            ),
        )
    } else if straddles || mw.p_value > alpha {
        (
            VerdictKind::NoDifference,
            format!(
                "no significant difference between {variant} and {baseline} at {where_} (ratio {}, {pct}% CI {}–{}, {})",
                fmt_num(ci.estimate),
                fmt_num(ci.low),
                fmt_num(ci.high),
                fmt_p(mw.p_value)
            ),
        )
    } else {
        (
            if variant_better { VerdictKind::Better } else { VerdictKind::Worse },
            format!(
                "{variant} is {}× {word} than {baseline} at {where_} ({pct}% CI {}–{}, {}; {medians})",
                fmt_num(shown),
                fmt_num(lo),
                fmt_num(hi),
                fmt_p(mw.p_value)
            ),
        )
    };
    Comparison {
        case: String::new(),
        variant: variant.to_owned(),
        baseline: baseline.to_owned(),
        ratio: Some(ci.estimate),
        ratio_ci_low: Some(ci.low),
        ratio_ci_high: Some(ci.high),
        p_value: Some(mw.p_value),
        verdict,
        sentence,
        pairs: None,
        level: Some(level),
    }
}

/// `compare` where a median is zero: no ratio, the medians and the U test.
#[allow(clippy::too_many_arguments)]
fn zero_median(
    variant: &str,
    baseline: &str,
    a: &[f64],
    b: &[f64],
    (ma, mb): (f64, f64),
    metric: &MetricInfo,
    where_: &str,
    alpha: f64,
) -> Comparison {
    let mw = stats::mann_whitney_u(a, b).expect("non-empty, finite");
    let medians = format!("median {} {} vs {} {}", fmt_num(ma), metric.unit, fmt_num(mb), metric.unit);
    let variant_better = match metric.better {
        Better::Higher => ma > mb,
        Better::Lower => ma < mb,
    };
    // A count the same in every round on both sides (allocations, bytes) is exact: no test
    // is needed once there are enough rounds for a verdict at all.
    let constant = |v: &[f64]| {
        crate::results::is_deterministic(&metric.name) && v.len() >= paired::MIN_PAIRS && v.iter().all(|x| *x == v[0])
    };
    let (verdict, sentence) = if ma == mb {
        (VerdictKind::NoDifference, format!("no difference between {variant} and {baseline} at {where_} ({medians})"))
    } else if constant(a) && constant(b) {
        (
            if variant_better { VerdictKind::Better } else { VerdictKind::Worse },
            format!(
                "{variant} is {} than {baseline} at {where_} ({} vs {} {} in every round: exact, no test needed)",
                if variant_better { "better" } else { "worse" },
                fmt_num(ma),
                fmt_num(mb),
                metric.unit
            ),
        )
    } else if mw.min_attainable_p > alpha {
        (
            VerdictKind::Inconclusive,
            format!(
                "{variant} looks {} than {baseline} at {where_} ({medians}), but {} vs {} repetitions are too few for a significance test",
                if variant_better { "better" } else { "worse" },
                a.len(),
                b.len()
            ),
        )
    } else if mw.p_value > alpha {
        (
            VerdictKind::NoDifference,
            format!(
                "no significant difference between {variant} and {baseline} at {where_} ({medians}, {})",
                fmt_p(mw.p_value)
            ),
        )
    } else {
        (
            if variant_better { VerdictKind::Better } else { VerdictKind::Worse },
            format!(
                "{variant} is {} than {baseline} at {where_} ({medians}; {}; a zero median leaves no ratio)",
                if variant_better { "better" } else { "worse" },
                fmt_p(mw.p_value)
            ),
        )
    };
    let p = if constant(a) && constant(b) && ma != mb { 0.0 } else { mw.p_value };
    Comparison::without_ratio(variant, baseline, Some(p), verdict, sentence)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn latency() -> MetricInfo {
        MetricInfo::new("latency_p50_us", "us", Better::Lower, "")
    }

    #[test]
    fn separated_samples_give_a_directional_verdict() {
        let fast = [10.0, 11.0, 10.5, 9.8, 10.2];
        let slow = [100.0, 98.0, 103.0, 101.0, 99.0];
        let c = compare("keyset", "offset", &fast, &slow, &latency(), "page depth 1000");
        assert_eq!(c.verdict, VerdictKind::Better, "{}", c.sentence);
        assert!(c.sentence.starts_with("keyset is 9.80×"), "{}", c.sentence);
        assert!(c.sentence.contains("faster than offset at page depth 1000"), "{}", c.sentence);
        let c = compare("offset", "keyset", &slow, &fast, &latency(), "x");
        assert_eq!(c.verdict, VerdictKind::Worse, "{}", c.sentence);
        assert!(c.sentence.contains("slower"), "{}", c.sentence);
    }

    #[test]
    fn overlapping_samples_give_no_difference() {
        let a = [10.0, 12.0, 11.0, 9.0, 13.0];
        let b = [11.0, 10.5, 12.5, 9.5, 11.5];
        let c = compare("a", "b", &a, &b, &latency(), "x");
        assert_eq!(c.verdict, VerdictKind::NoDifference, "{}", c.sentence);
        assert!(c.sentence.starts_with("no significant difference"), "{}", c.sentence);
    }

    #[test]
    fn two_repetitions_are_inconclusive_however_far_apart() {
        let c = compare("a", "b", &[1.0, 1.1], &[100.0, 101.0], &latency(), "x");
        assert_eq!(c.verdict, VerdictKind::Inconclusive, "{}", c.sentence);
        assert!(c.sentence.contains("too few"), "{}", c.sentence);
    }

    #[test]
    fn throughput_is_better_when_higher() {
        let m = MetricInfo::new("ops_per_sec", "ops/s", Better::Higher, "");
        let c = compare(
            "pool",
            "new-conn",
            &[2000.0, 2100.0, 1990.0, 2050.0, 2010.0],
            &[100.0, 110.0, 105.0, 95.0, 102.0],
            &m,
            "c 8",
        );
        assert_eq!(c.verdict, VerdictKind::Better);
        assert!(c.sentence.contains("faster"), "{}", c.sentence);
        assert!(c.ratio.unwrap() > 19.0);
    }

    #[test]
    fn both_within_a_negligible_level_is_no_difference() {
        let m = MetricInfo::new("rate_error_pct", "%", Better::Lower, "").negligible_below(1.0);
        let c = compare(
            "governor",
            "guide",
            &[0.05, 0.04, 0.06, 0.05, 0.05],
            &[0.3, 0.31, 0.29, 0.3, 0.32],
            &m,
            "rate 1000",
        );
        assert_eq!(c.verdict, VerdictKind::NoDifference, "{}", c.sentence);
        assert!(c.sentence.contains("both within 0.300 %"), "{}", c.sentence);
        // Above the level the ratio is called as usual.
        let c = compare("governor", "guide", &[0.5, 0.4, 0.6, 0.5, 0.5], &[3.0, 3.1, 2.9, 3.0, 3.2], &m, "rate 1000");
        assert_eq!(c.verdict, VerdictKind::Better, "{}", c.sentence);
    }

    #[test]
    fn a_zero_median_gives_no_infinite_ratio() {
        let c = compare("none", "some", &[0.0; 5], &[13.0, 13.0, 14.0, 13.0, 13.0], &latency(), "x");
        assert!(!c.sentence.contains("inf"), "{}", c.sentence);
        assert_eq!(c.ratio, None);
        assert_eq!(c.verdict, VerdictKind::Better, "{}", c.sentence);
        let c = compare("some", "none", &[13.0, 13.0, 14.0, 13.0, 13.0], &[0.0; 5], &latency(), "x");
        assert_eq!(c.verdict, VerdictKind::Worse, "{}", c.sentence);
    }

    #[test]
    fn counts_the_same_in_every_round_are_exact_even_against_zero() {
        let m = MetricInfo::new("allocs_per_call", "allocations", Better::Lower, "");
        // Three rounds cannot reach significance with a rank test; exact counts need none.
        let c = compare("lazy", "eager", &[0.0; 3], &[1.0; 3], &m, "0%");
        assert_eq!(c.verdict, VerdictKind::Better, "{}", c.sentence);
        assert_eq!(c.p_value, Some(0.0));
        assert!(c.sentence.contains("exact"), "{}", c.sentence);
        // Two rounds are too few for any verdict; a count that varies still needs the test.
        let c = compare("lazy", "eager", &[0.0; 2], &[1.0; 2], &m, "0%");
        assert_eq!(c.verdict, VerdictKind::Inconclusive, "{}", c.sentence);
        let c = compare("lazy", "eager", &[0.0; 3], &[1.0, 2.0, 1.0], &m, "0%");
        assert_eq!(c.verdict, VerdictKind::Inconclusive, "{}", c.sentence);
    }

    use super::validity::tests::sample;

    pub(crate) fn result_with(samples: Vec<Sample>) -> ExperimentResult {
        use crate::results::{ExperimentStatus, SweepInfo, SweepPoint, VariantInfo};
        ExperimentResult {
            id: "t".into(),
            title: String::new(),
            guide_section: String::new(),
            claim: String::new(),
            variants: vec![
                VariantInfo { name: "base".into(), description: String::new(), baseline: None },
                VariantInfo { name: "fast".into(), description: String::new(), baseline: Some("base".into()) },
            ],
            cases: vec![],
            sweep: SweepInfo {
                axis: "n".into(),
                unit: String::new(),
                points: vec![SweepPoint { label: "1".into(), value: 1.0 }],
            },
            primary_metric: latency(),
            metrics: vec![],
            outcome_errors: vec![],
            status: ExperimentStatus::Ok,
            samples,
            checks: vec![],
            notes: vec![],
            analysis: vec![],
            headline: None,
            finding: None,
            go_finding: None,
            targets: vec![],
            summaries: vec![],
            metric_comparisons: vec![],
            capacity: vec![],
            profiles: vec![],
            heap_profiles: vec![],
            sequential: None,
            rounds: vec![],
            rule: None,
            time: None,
            wall_time_ms: 0,
        }
    }

    #[test]
    fn every_metric_resource_and_percentile_is_summarised_from_valid_samples() {
        use crate::results::{LatencySummary, Resources};
        let mut samples = Vec::new();
        for rep in 0..5 {
            for (variant, base) in [("base", 100.0), ("fast", 10.0)] {
                let mut s = sample(variant, rep, base + rep as f64, 1000.0, 0);
                s.metrics.insert("extra".into(), 2.0 * base);
                s.resources =
                    Some(Resources { harness_cpu_s: 0.5, redis_cpu_s: Some(0.25), wall_s: 1.0, ..Default::default() });
                s.latency = Some(LatencySummary {
                    count: 1000,
                    percentiles_us: vec![(99.9, base * 3.0)],
                    ..Default::default()
                });
                samples.push(s);
            }
        }
        // An invalid sample with wild values must not move any summary.
        let mut bad = sample("fast", 5, 1e9, 0.0, 500);
        bad.metrics.insert("extra".into(), 1e9);
        samples.push(bad);
        let mut r = result_with(samples);
        r.metrics.push(MetricInfo::new("extra", "x", Better::Lower, ""));
        analyse(&mut r, Claim::default());
        let get = |m: &str, v: &str| r.summaries.iter().find(|s| s.metric == m && s.variant == v).cloned().unwrap();
        assert_eq!(get("extra", "fast").median, 20.0);
        assert_eq!(get("extra", "fast").n, 5, "the invalid sample is left out");
        assert_eq!(get("latency_p50_us", "base").median, 102.0);
        assert_eq!(get("server_cpu_s", "fast").median, 0.25);
        assert_eq!(get("harness_cpu_s", "fast").median, 0.5);
        assert_eq!(get(&spectrum_metric(99.9), "base").median, 300.0);
        assert!(r.summaries.iter().all(|s| s.metric != "server_rss_bytes"), "absent resources are not invented");
        // The declared metric is compared with the baseline too, from the same valid samples.
        let c = r.metric_comparisons.iter().find(|c| c.metric == "extra").expect("extra is compared");
        assert_eq!(c.comparison.variant, "fast");
        assert_eq!(c.comparison.verdict, VerdictKind::Better, "{}", c.comparison.sentence);
        assert!((c.comparison.ratio.unwrap() - 0.1).abs() < 1e-9, "20 vs 200");
        assert!(c.comparison.sentence.starts_with("extra: "), "{}", c.comparison.sentence);
    }

    #[test]
    fn samples_made_of_errors_never_reach_a_verdict() {
        // "fast" is fast only because every call failed at once: 5 repetitions of errors.
        let mut samples = Vec::new();
        for rep in 0..5 {
            samples.push(sample("base", rep, 100.0 + rep as f64, 1000.0, 0));
            samples.push(sample("fast", rep, 1.0, 0.0, 270_000));
        }
        let mut r = result_with(samples);
        analyse(&mut r, Claim { case: "", variant: Some("fast"), ..Claim::default() });
        assert!(r.samples.iter().filter(|s| s.variant == "fast").all(|s| s.invalid.is_some()));
        let c = &r.analysis[0].comparisons[0];
        assert_eq!(c.verdict, VerdictKind::Missing, "{}", c.sentence);
        assert!(c.sentence.contains("failed operations"), "{}", c.sentence);
        assert_eq!(r.headline.as_ref().map(|h| h.verdict), Some(VerdictKind::Missing));
        assert!(r.analysis[0].variants.iter().all(|v| v.variant != "fast"), "no median from errors");
    }

    #[test]
    fn the_headline_is_the_claim_not_the_largest_ratio() {
        let mut r = result_with(vec![]);
        r.variants.push(VariantInfo2::reference());
        for rep in 0..5 {
            r.samples.push(sample("base", rep, 100.0 + rep as f64, 1000.0, 0));
            r.samples.push(sample("fast", rep, 50.0 + rep as f64, 1000.0, 0));
            r.samples.push(sample("ref", rep, 1.0 + rep as f64 * 0.01, 1000.0, 0));
        }
        analyse(&mut r, Claim { case: "", variant: Some("fast"), ..Claim::default() });
        assert_eq!(r.headline.as_ref().unwrap().variant, "fast");
        analyse(&mut r, Claim { case: "", variant: Some("ref"), ..Claim::default() });
        assert_eq!(r.headline.as_ref().unwrap().variant, "ref");
    }

    #[test]
    fn a_control_point_is_not_the_headline_while_another_point_has_a_verdict() {
        let mut r = result_with(vec![]);
        r.sweep.points.push(crate::results::SweepPoint { label: "2".into(), value: 2.0 });
        for rep in 0..5 {
            for (point, fast) in [("1", 50.0), ("2", 100.0)] {
                let mut a = sample("base", rep, 100.0 + rep as f64, 1000.0, 0);
                let mut b = sample("fast", rep, fast + rep as f64, 1000.0, 0);
                a.point = point.into();
                b.point = point.into();
                r.samples.extend([a, b]);
            }
        }
        analyse(&mut r, Claim { case: "", variant: Some("fast"), ..Claim::default() });
        assert_eq!(r.headline.as_ref().unwrap().verdict, VerdictKind::NoDifference, "the last point, without controls");
        r.rule = Some(crate::results::DecisionRule {
            controls: vec![crate::results::ControlPoint { point: "2".into(), why: String::new() }],
            ..Default::default()
        });
        analyse(&mut r, Claim { case: "", variant: Some("fast"), ..Claim::default() });
        assert_eq!(
            r.headline.as_ref().unwrap().verdict,
            VerdictKind::Better,
            "point 1, the last that is not a control"
        );
    }

    struct VariantInfo2;
    impl VariantInfo2 {
        fn reference() -> crate::results::VariantInfo {
            crate::results::VariantInfo {
                name: "ref".into(),
                description: String::new(),
                baseline: Some("base".into()),
            }
        }
    }

    #[test]
    fn empty_side_is_missing() {
        let c = compare("a", "b", &[], &[1.0], &latency(), "x");
        assert_eq!(c.verdict, VerdictKind::Missing);
    }

    /// Each case is analysed apart: its samples never mix with another's, and the headline
    /// is the claim's comparison in the claim's case.
    #[test]
    fn cases_are_analysed_apart_and_the_headline_comes_from_the_claims_case() {
        use crate::results::CaseInfo;
        let mut samples = Vec::new();
        for rep in 0..6 {
            // In "read" fast is 4× faster; in "write" it is 2× slower.
            for (case, base, fast) in [("read", 100.0, 25.0), ("write", 100.0, 200.0)] {
                for (variant, v) in [("base", base), ("fast", fast)] {
                    let mut s = sample(variant, rep, v + f64::from(rep), 1000.0, 0);
                    s.case = case.into();
                    samples.push(s);
                }
            }
        }
        let mut r = result_with(samples);
        r.cases = ["read", "write"].map(|c| CaseInfo { name: c.into(), description: String::new() }).to_vec();
        analyse(&mut r, Claim { case: "write", variant: Some("fast"), ..Claim::default() });
        assert_eq!(r.analysis.len(), 2, "one analysis per case and point");
        let verdict = |case: &str| {
            let p = r.analysis.iter().find(|p| p.case == case).unwrap();
            assert_eq!(p.variants.iter().find(|v| v.variant == "base").unwrap().n, 6, "{case}: its own samples only");
            p.comparisons[0].verdict
        };
        assert_eq!(verdict("read"), VerdictKind::Better);
        assert_eq!(verdict("write"), VerdictKind::Worse);
        let h = r.headline.as_ref().unwrap();
        assert_eq!((h.case.as_str(), h.verdict), ("write", VerdictKind::Worse));
        assert!(h.sentence.contains("in write"), "{}", h.sentence);
        assert!(r.summaries.iter().any(|s| s.case == "read" && s.variant == "fast"));
    }
}
