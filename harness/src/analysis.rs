//! Turns the samples of an experiment into per-variant summaries and verdicts.

use crate::results::{Better, Comparison, ExperimentResult, MetricInfo, PointAnalysis, VariantSummary, VerdictKind};
use crate::stats;

/// Confidence level of every interval, and the significance level of every test.
pub const LEVEL: f64 = 0.95;
pub const ALPHA: f64 = 0.05;
const RESAMPLES: usize = 4000;
const SEED: u64 = 0x9e11_ab5e_ed00_0001;

/// The primary metric's values per repetition for one variant at one point.
pub fn values(result: &ExperimentResult, metric: &str, variant: &str, point: &str) -> Vec<f64> {
    result
        .samples
        .iter()
        .filter(|s| s.variant == variant && s.point == point)
        .filter_map(|s| s.metrics.get(metric).copied())
        .filter(|v| v.is_finite())
        .collect()
}

/// Fill `result.analysis` from its samples.
pub fn analyse(result: &mut ExperimentResult) {
    let metric = result.primary_metric.clone();
    let mut out = Vec::new();
    for point in &result.sweep.points {
        let mut variants = Vec::new();
        for v in &result.variants {
            let vals = values(result, &metric.name, &v.name, &point.label);
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
            let a = values(result, &metric.name, &v.name, &point.label);
            let b = values(result, &metric.name, baseline, &point.label);
            let where_ = format!("{} {}", result.sweep.axis, point.label);
            comparisons.push(compare(&v.name, baseline, &a, &b, &metric, &where_));
        }
        out.push(PointAnalysis { point: point.label.clone(), variants, comparisons });
    }
    result.analysis = out;
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

fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// Compare `variant` (values `a`) with `baseline` (values `b`) on `metric`.
pub fn compare(variant: &str, baseline: &str, a: &[f64], b: &[f64], metric: &MetricInfo, where_: &str) -> Comparison {
    let missing = |why: &str| Comparison {
        variant: variant.to_owned(),
        baseline: baseline.to_owned(),
        ratio: None,
        ratio_ci_low: None,
        ratio_ci_high: None,
        p_value: None,
        verdict: VerdictKind::Missing,
        sentence: format!("{variant} vs {baseline} at {where_}: {why}"),
    };
    if a.is_empty() || b.is_empty() {
        return missing("no samples to compare");
    }
    let Some(ci) = stats::bootstrap_ratio_ci(a, b, LEVEL, RESAMPLES, SEED) else {
        return missing("the baseline's median is zero, so no ratio exists");
    };
    let mw = stats::mann_whitney_u(a, b).expect("non-empty, finite");
    // Express the ratio as a factor of improvement (> 1: the variant is better).
    let (factor, f_low, f_high) = match metric.better {
        Better::Higher => (ci.estimate, ci.low, ci.high),
        Better::Lower => (1.0 / ci.estimate, 1.0 / ci.high, 1.0 / ci.low),
    };
    let timing = matches!(metric.unit.as_str(), "us" | "ms" | "s" | "ns") || metric.unit.ends_with("/s");
    let (up, down) = if timing { ("faster", "slower") } else { ("better", "worse") };
    let (ma, mb) = (stats::median(a).unwrap_or(f64::NAN), stats::median(b).unwrap_or(f64::NAN));
    let medians = format!("median {} {} vs {} {}", fmt_num(ma), metric.unit, fmt_num(mb), metric.unit);
    let (word, shown, lo, hi) =
        if factor >= 1.0 { (up, factor, f_low, f_high) } else { (down, 1.0 / factor, 1.0 / f_high, 1.0 / f_low) };
    let straddles = ci.low <= 1.0 && ci.high >= 1.0;
    let (verdict, sentence) = if mw.min_attainable_p > ALPHA {
        (
            VerdictKind::Inconclusive,
            format!(
                "{variant} looks {}× {word} than {baseline} at {where_} ({medians}), but {} vs {} repetitions are too few for a significance test (it needs 4 or more each)",
                fmt_num(shown),
                a.len(),
                b.len()
            ),
        )
    } else if straddles || mw.p_value > ALPHA {
        (
            VerdictKind::NoDifference,
            format!(
                "no significant difference between {variant} and {baseline} at {where_} (ratio {}, 95% CI {}–{}, {})",
                fmt_num(ci.estimate),
                fmt_num(ci.low),
                fmt_num(ci.high),
                fmt_p(mw.p_value)
            ),
        )
    } else {
        (
            if factor >= 1.0 { VerdictKind::Better } else { VerdictKind::Worse },
            format!(
                "{variant} is {}× {word} than {baseline} at {where_} (95% CI {}–{}, {}; {medians})",
                fmt_num(shown),
                fmt_num(lo),
                fmt_num(hi),
                fmt_p(mw.p_value)
            ),
        )
    };
    Comparison {
        variant: variant.to_owned(),
        baseline: baseline.to_owned(),
        ratio: Some(ci.estimate),
        ratio_ci_low: Some(ci.low),
        ratio_ci_high: Some(ci.high),
        p_value: Some(mw.p_value),
        verdict,
        sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency() -> MetricInfo {
        MetricInfo {
            name: "latency_p50_us".into(),
            unit: "us".into(),
            better: Better::Lower,
            description: String::new(),
        }
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
        let m = MetricInfo {
            name: "ops_per_sec".into(),
            unit: "ops/s".into(),
            better: Better::Higher,
            description: String::new(),
        };
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
    fn empty_side_is_missing() {
        let c = compare("a", "b", &[], &[1.0], &latency(), "x");
        assert_eq!(c.verdict, VerdictKind::Missing);
    }
}
