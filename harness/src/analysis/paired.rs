//! Comparisons from paired rounds: in each round every variant ran once at the point, on the
//! same servers and data, so a round's two samples share whatever the machine did then. The
//! verdict comes from the per-round log-ratios (`stats::paired_log_ratio`); the sequential
//! runner asks `claim_decided` after each look whether a point may stop.

use super::{direction, fmt_level, fmt_num, fmt_p, Claim, Direction};
use crate::results::{Comparison, ExperimentResult, MetricInfo, Sequential, VerdictKind};
use crate::stats;

/// Fewer pairs than this never decide: a t with one degree of freedom is too easily fooled
/// by one odd round.
pub const MIN_PAIRS: usize = 3;

/// The values of `metric` for `variant` and `baseline` at `point` of `case`, paired by round:
/// only rounds where both have a valid sample with a finite value, in round order.
pub fn paired_values(
    result: &ExperimentResult,
    metric: &str,
    case: &str,
    variant: &str,
    baseline: &str,
    point: &str,
) -> (Vec<f64>, Vec<f64>) {
    pair_rounds(&by_round(result, metric, case, variant, point), &by_round(result, metric, case, baseline, point))
}

/// The valid, finite values of `metric` for `variant` at `point` of `case`, keyed by round
/// (the samples of a round share its repetition number).
pub fn by_round(
    result: &ExperimentResult,
    metric: &str,
    case: &str,
    variant: &str,
    point: &str,
) -> std::collections::BTreeMap<u32, f64> {
    result
        .samples
        .iter()
        .filter(|s| s.case == case && s.variant == variant && s.point == point && s.invalid.is_none())
        .filter_map(|s| Some((s.repetition, super::sample_value(s, metric)?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// The rounds present in both: `a`'s and `b`'s values side by side, in round order.
pub fn pair_rounds(
    a: &std::collections::BTreeMap<u32, f64>,
    b: &std::collections::BTreeMap<u32, f64>,
) -> (Vec<f64>, Vec<f64>) {
    a.iter().filter_map(|(r, &x)| b.get(r).map(|&y| (x, y))).unzip()
}

/// The confidence level of `result`'s comparisons: its sequential plan's per-look level, or
/// 95 %.
pub fn level(result: &ExperimentResult) -> f64 {
    result.sequential.as_ref().map_or(super::LEVEL, |s| 1.0 - s.alpha_per_look)
}

/// The paired verdict of `a` over `b` (per-round values), or none where pairing cannot serve
/// (fewer than 2 pairs, a value that is not positive): the caller then compares unpaired.
pub(super) fn compare_paired(
    variant: &str,
    baseline: &str,
    (a, b): (&[f64], &[f64]),
    metric: &MetricInfo,
    where_: &str,
    level: f64,
) -> Option<Comparison> {
    let r = stats::paired_log_ratio(a, b, level)?;
    let (ma, mb) = (stats::median(a)?, stats::median(b)?);
    let Direction { better, word, shown, lo, hi } = direction(metric, r.ratio, r.low, r.high);
    let medians = format!("median {} {} vs {} {}", fmt_num(ma), metric.unit, fmt_num(mb), metric.unit);
    let pct = fmt_level(level);
    let n = r.n;
    let (verdict, sentence) = if n < MIN_PAIRS {
        (
            VerdictKind::Inconclusive,
            format!(
                "{variant} looks {}× {word} than {baseline} at {where_} ({medians}), but {n} paired rounds are too few for a verdict (it needs {MIN_PAIRS})",
                fmt_num(shown)
            ),
        )
    } else if r.p > 1.0 - level {
        (
            VerdictKind::NoDifference,
            format!(
                "no significant difference between {variant} and {baseline} at {where_} (ratio {}, {pct}% CI {}–{}, {}, {n} rounds paired)",
                fmt_num(r.ratio),
                fmt_num(r.low),
                fmt_num(r.high),
                fmt_p(r.p)
            ),
        )
    } else {
        (
            if better { VerdictKind::Better } else { VerdictKind::Worse },
            format!(
                "{variant} is {}× {word} than {baseline} at {where_} ({pct}% CI {}–{}, {}, {n} rounds paired; {medians})",
                fmt_num(shown),
                fmt_num(lo),
                fmt_num(hi),
                fmt_p(r.p)
            ),
        )
    };
    Some(Comparison {
        case: String::new(),
        variant: variant.to_owned(),
        baseline: baseline.to_owned(),
        ratio: Some(r.ratio),
        ratio_ci_low: Some(r.low),
        ratio_ci_high: Some(r.high),
        p_value: Some(r.p),
        verdict,
        sentence,
        pairs: Some(n as u32),
        level: Some(level),
    })
}

/// Whether the claim's comparison at `point` (of the claim's case) is decided under `plan`:
/// a difference at the look's level shared by the plan's family of points (Bonferroni: what
/// stops here also passes the finding's Holm correction), or a CI at that level within the
/// plan's band (no effect that matters), or both sides under the metric's negligible level.
/// A point without a claim to decide is never decided early.
pub fn claim_decided(result: &ExperimentResult, claim: Claim<'_>, point: &str, plan: &Sequential) -> bool {
    let Some(variant) = claim.variant else {
        return false;
    };
    let Some(baseline) = result.variants.iter().find(|v| v.name == variant).and_then(|v| v.baseline.clone()) else {
        return false;
    };
    let metric = &result.primary_metric;
    let (a, b) = paired_values(result, &metric.name, claim.case, variant, &baseline, point);
    let level = 1.0 - plan.alpha_per_look / f64::from(plan.family.max(1));
    let c = super::compare_at(variant, &baseline, &a, &b, Some((&a, &b)), metric, "", level);
    let within = |x: f64| x >= 1.0 / plan.band && x <= plan.band;
    // Keeping up is one-sided (as the finding reads it): a CI whose worse end stays within the
    // band decides, however far its better end reaches.
    let higher = metric.better == crate::results::Better::Higher;
    if claim.kind == crate::results::ClaimKind::KeepsUp && keeps_up(&c, plan.band, higher) {
        return true;
    }
    match c.verdict {
        // A difference is decided once its estimate is beyond the smallest effect that matters
        // or its whole CI inside it; in between, whether it matters is still open.
        VerdictKind::Better | VerdictKind::Worse => match (c.ratio, c.ratio_ci_low, c.ratio_ci_high) {
            (Some(r), Some(lo), Some(hi)) => !within(r) || (within(lo) && within(hi)),
            _ => true,
        },
        VerdictKind::NoDifference => match (c.ratio_ci_low, c.ratio_ci_high) {
            (Some(lo), Some(hi)) => within(lo) && within(hi),
            // No ratio: decided only when there is nothing more to learn (both sides under
            // the metric's negligible level, or the same median), not for a zero median
            // against another that is merely not significant yet.
            _ => {
                let (ma, mb) = (stats::median(&a), stats::median(&b));
                let negligible =
                    metric.negligible_below.is_some_and(|l| ma.zip(mb).is_some_and(|(x, y)| x <= l && y <= l));
                negligible || (ma.is_some() && ma == mb)
            }
        },
        VerdictKind::Inconclusive | VerdictKind::Missing => false,
    }
}

/// Whether `c`'s CI lies wholly on the side of keeping up: the variant reaches at least 1/band
/// of its reference (`higher`: a higher value is better), however much better it may be.
pub(crate) fn keeps_up(c: &Comparison, band: f64, higher: bool) -> bool {
    match (higher, c.ratio_ci_low, c.ratio_ci_high) {
        (true, Some(lo), _) => lo >= 1.0 / band,
        (false, _, Some(hi)) => hi <= band,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::validity::tests::sample;
    use crate::results::ClaimKind;

    /// A point stops on a difference only at the look's α shared by the plan's family of
    /// points: a difference that decides one point alone does not stop one of twenty.
    #[test]
    fn a_family_of_points_shares_the_looks_alpha() {
        // Six rounds, "fast" about 8 % faster with a few % of noise per round.
        let noise = [0.06, -0.04, 0.02, -0.06, 0.04, -0.02];
        let mut samples = Vec::new();
        for (rep, n) in noise.iter().enumerate() {
            samples.push(sample("base", rep as u32, 100.0, 1000.0, 0));
            samples.push(sample("fast", rep as u32, 92.0 * (1.0 + n), 1000.0, 0));
        }
        let result = crate::analysis::tests::result_with(samples);
        let claim = Claim { case: "", variant: Some("fast"), kind: ClaimKind::Beats };
        let plan =
            |family| Sequential { min_rounds: 3, cap: 6, looks: vec![3, 6], alpha_per_look: 0.025, band: 1.05, family };
        let (a, b) = paired_values(&result, "latency_p50_us", "", "fast", "base", "1");
        let p = stats::paired_log_ratio(&a, &b, 0.975).unwrap().p;
        assert!(p < 0.025 && p > 0.025 / 20.0, "the case is between the two levels: p = {p}");
        assert!(claim_decided(&result, claim, "1", &plan(1)));
        assert!(!claim_decided(&result, claim, "1", &plan(20)));
    }

    /// A keeps-up point stops once its CI's worse end is within the band, however far past the
    /// band its better end reaches; a CI that reaches past the band on the worse side, and is
    /// not significant, goes on.
    #[test]
    fn keeping_up_stops_on_the_worse_end_alone() {
        // "fast" has a latency (lower is better) 8 % under "base", with wide noise.
        let series = |shift: f64| {
            let noise = [0.10, -0.10, 0.08, -0.08, 0.0, 0.04];
            let mut samples = Vec::new();
            for (rep, n) in noise.iter().enumerate() {
                samples.push(sample("base", rep as u32, 100.0, 1000.0, 0));
                samples.push(sample("fast", rep as u32, 100.0 * shift * (1.0 + n), 1000.0, 0));
            }
            crate::analysis::tests::result_with(samples)
        };
        let plan =
            Sequential { min_rounds: 3, cap: 6, looks: vec![3, 6], alpha_per_look: 0.025, band: 1.05, family: 1 };
        let keeps = Claim { case: "", variant: Some("fast"), kind: ClaimKind::KeepsUp };
        let beats = Claim { kind: ClaimKind::Beats, ..keeps };
        let faster = series(0.92);
        let (a, b) = paired_values(&faster, "latency_p50_us", "", "fast", "base", "1");
        let r = stats::paired_log_ratio(&a, &b, 0.975).unwrap();
        assert!(r.high <= 1.05 && r.low < 1.0 / 1.05, "the CI reaches past the band on the better side only: {r:?}");
        assert!(claim_decided(&faster, keeps, "1", &plan));
        assert!(!claim_decided(&faster, beats, "1", &plan), "the same CI decides nothing for a claim to beat");
        let slower = series(1.0 / 0.92);
        assert!(!claim_decided(&slower, keeps, "1", &plan), "past the band on the worse side");
    }
}
