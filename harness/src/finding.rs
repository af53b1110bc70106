//! The summary's answer for one experiment: does the guide's claim hold? One rule over the
//! stored verdicts of the claim's comparison and the claim variant's correctness checks.

use crate::results::Check;
use crate::results::{
    Claim, ClaimKind, Comparison, ExperimentResult, ExperimentStatus, Finding, FindingKind, VerdictKind,
};

/// What one comparison says of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Says {
    Supports,
    Contradicts,
    NoEffect,
    Undecided,
}

/// What `c` says of a claim of `kind`, given whether its difference is significant after the
/// correction for the finding's several points (`holm`), with `band` the smallest effect that
/// matters as a ratio (1.05: 5 %) and `higher` whether a higher value of the metric is better.
fn says(c: &Comparison, kind: ClaimKind, significant: bool, band: f64, higher: bool) -> Says {
    let within = |x: f64| x >= 1.0 / band && x <= band;
    let ci_within = matches!((c.ratio_ci_low, c.ratio_ci_high), (Some(lo), Some(hi)) if within(lo) && within(hi));
    // No ratio but a verdict of no difference: both negligible (or zero), nothing to choose.
    let negligible = c.ratio.is_none() && c.verdict == VerdictKind::NoDifference;
    let small = c.ratio.is_some_and(within);
    let measured = matches!(c.verdict, VerdictKind::Better | VerdictKind::Worse | VerdictKind::NoDifference);
    let same = match kind {
        ClaimKind::Beats => Says::NoEffect,
        ClaimKind::KeepsUp => Says::Supports,
    };
    // Keeping up is one-sided: reaching at least 1/band of the reference, faster included, so
    // a CI whose worse end is there supports it however far its better end reaches.
    if kind == ClaimKind::KeepsUp && measured && crate::analysis::paired::keeps_up(c, band, higher) {
        return Says::Supports;
    }
    match c.verdict {
        // A significant difference whose whole CI is smaller than what matters is no effect
        // that matters; one whose estimate is, but not its CI, is not yet decided either way.
        VerdictKind::Better | VerdictKind::Worse if significant && ci_within => same,
        VerdictKind::Better | VerdictKind::Worse if significant && small => Says::Undecided,
        VerdictKind::Better if significant => Says::Supports,
        VerdictKind::Worse if significant => Says::Contradicts,
        _ if measured && (ci_within || negligible) => same,
        _ => Says::Undecided,
    }
}

/// Holm's step-down over the p-values of one finding's points at level `alpha`: which of them
/// are significant with the family-wise error kept at `alpha`. A point without a p-value is in
/// the family but never significant.
pub fn holm(p: &[Option<f64>], alpha: f64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].unwrap_or(1.0).total_cmp(&p[b].unwrap_or(1.0)));
    let mut significant = vec![false; p.len()];
    for (k, &i) in order.iter().enumerate() {
        match p[i] {
            Some(pi) if pi <= alpha / (p.len() - k) as f64 => significant[i] = true,
            _ => break,
        }
    }
    significant
}

/// The summary's answer, by this rule (the README's "The summary" says the same), with the
/// experiment's `DecisionRule` (smallest effect that matters `e`, control points):
/// - take the claim's comparison (its variant against its baseline, in its case) at every
///   sweep point that is not a control; a difference is significant when it passes Holm's
///   correction over those points at the comparisons' level;
/// - read each as *supports*, *contradicts*, *no effect* or *undecided*: a significant
///   difference whose ratio lies within [1/(1+e), 1+e] is *no effect that matters*; beyond
///   it, better supports and worse contradicts; not significant with the whole CI within
///   that band is *no effect*; for a claim to keep up, *no effect* supports, and so does any
///   CI whose worse end is within 1+e of 1 (keeping up is one-sided: faster keeps up too);
///   anything else (a wide CI, too few rounds, a side missing) is undecided;
/// - **holds**: supported at every point, and no correctness check of the variant failed;
///   **holds in part**: supported somewhere, but contradicted, without effect or undecided
///   elsewhere, or with a failed correctness check; **does not hold**: supported nowhere, and
///   contradicted or without effect somewhere; **inconclusive**: no point decided anything,
///   or the experiment failed;
/// - the control points are read the same way and reported beside the finding: a control
///   that differs beyond the smallest effect says something besides the technique differs.
pub fn finding(result: &ExperimentResult, claim: Claim<'_>) -> Option<Finding> {
    let declared = claim.variant?;
    // A variant that fails a correctness check cannot support the claim: the correct
    // variant that tests it stands in, and the reason says what the declared one lost.
    if let Some(stand_in) = correct_stand_in(result, claim) {
        let mut f = rule(result, Claim { variant: Some(&stand_in), ..claim })?;
        let n = broken(result, declared, claim.case);
        f.reason = format!(
            "{declared} fails {n} correctness check(s) ({}), so its speed is no evidence; read from {stand_in}, which passes them: {}",
            failed_checks(result, declared, claim.case),
            f.reason
        );
        return Some(f);
    }
    rule(result, claim)
}

/// `variant`'s correctness checks in `case` that failed.
fn failed<'a>(result: &'a ExperimentResult, variant: &'a str, case: &'a str) -> impl Iterator<Item = &'a Check> {
    result.checks.iter().filter(move |c| c.ok == Some(false) && c.variant == variant && c.case == case)
}

/// How many of `variant`'s checks in `case` failed.
fn broken(result: &ExperimentResult, variant: &str, case: &str) -> usize {
    failed(result, variant, case).count()
}

/// The names of `variant`'s failed checks, for the reason.
fn failed_checks(result: &ExperimentResult, variant: &str, case: &str) -> String {
    let mut names: Vec<&str> = failed(result, variant, case).map(|c| c.name.as_str()).collect();
    names.dedup();
    names.join(", ")
}

/// Where the claim's variant fails a correctness check: the first other variant compared with
/// the same baseline that has correctness checks in the claim's case and passes them all (the
/// correct implementation of the same technique). None: the claim's variant is correct, or
/// nothing correct stands in for it.
pub fn correct_stand_in(result: &ExperimentResult, claim: Claim<'_>) -> Option<String> {
    let declared = claim.variant?;
    if broken(result, declared, claim.case) == 0 {
        return None;
    }
    let baseline = result.variants.iter().find(|v| v.name == declared)?.baseline.clone()?;
    result
        .variants
        .iter()
        .filter(|v| v.name != declared && v.baseline.as_deref() == Some(baseline.as_str()))
        .find(|v| {
            let checked = result.checks.iter().any(|c| c.ok.is_some() && c.variant == v.name && c.case == claim.case);
            checked && broken(result, &v.name, claim.case) == 0
        })
        .map(|v| v.name.clone())
}

/// The rule over one variant's comparisons (see `finding`). A variant with a failed
/// correctness check supports nothing: its points that read *supports* are reported as
/// speed without correctness, and the finding is decided by the rest.
fn rule(result: &ExperimentResult, claim: Claim<'_>) -> Option<Finding> {
    let variant = claim.variant?;
    let baseline = result.variants.iter().find(|v| v.name == variant)?.baseline.clone()?;
    let decision = result.rule.clone().unwrap_or_default();
    let band = decision.band();
    let at: Vec<(&str, &Comparison)> = result
        .analysis
        .iter()
        .filter(|p| p.case == claim.case)
        .filter_map(|p| Some((p.point.as_str(), p.comparisons.iter().find(|c| c.variant == variant)?)))
        .collect();
    let (evidence, controls): (Vec<_>, Vec<_>) = at.into_iter().partition(|(p, _)| !decision.is_control(p));
    // The α of every comparison of this result: its plan's per-look α (a comparison without a
    // ratio carries no level of its own, so it is not read from one).
    let family_alpha = 1.0 - crate::analysis::paired::level(result);
    let p_of = |c: &Comparison| c.p_value.filter(|_| matches!(c.verdict, VerdictKind::Better | VerdictKind::Worse));
    let significant = holm(&evidence.iter().map(|(_, c)| p_of(c)).collect::<Vec<_>>(), family_alpha);
    let (mut supported, mut contradicted, mut no_effect, mut undecided) = (vec![], vec![], vec![], vec![]);
    for ((point, c), &sig) in evidence.iter().zip(&significant) {
        let mut label = result.place("", point);
        match says(c, claim.kind, sig, band, result.primary_metric.better == crate::results::Better::Higher) {
            Says::Supports => supported.push(label),
            Says::Contradicts => contradicted.push(label),
            Says::NoEffect => no_effect.push(label),
            Says::Undecided => {
                if let (Some(p), false, true) = (p_of(c), sig, evidence.len() > 1) {
                    label = format!(
                        "{label} ({}, not significant across {} points by Holm's correction)",
                        crate::analysis::fmt_p(p),
                        evidence.len()
                    );
                }
                undecided.push(label)
            }
        }
    }
    let mut control_differs = false;
    let control_sentences: Vec<String> = controls
        .iter()
        .map(|(point, c)| {
            let why = decision.controls.iter().find(|k| k.point == *point).map_or("", |k| k.why.as_str());
            let p = p_of(c).is_some_and(|p| p <= family_alpha);
            let differs = p && c.ratio.is_some_and(|r| r < 1.0 / band || r > band);
            control_differs |= differs;
            let said = if differs {
                "differs where the technique cannot act, so something besides it differs between the variants"
            } else {
                "nothing that matters differs, as it should"
            };
            format!("{} is a control ({why}): {said}: {}", result.place("", point), c.sentence)
        })
        .collect();
    let broken_checks = broken(result, variant, claim.case);
    // Speed without correctness is no support.
    let unsupported = if broken_checks > 0 { std::mem::take(&mut supported) } else { Vec::new() };
    let failed = match &result.status {
        ExperimentStatus::Failed { error } => Some(error.clone()),
        _ => None,
    };
    let decided = supported.len() + contradicted.len() + no_effect.len() + unsupported.len();
    let kind = if failed.is_some() || decided == 0 {
        FindingKind::Inconclusive
    } else if supported.is_empty() && contradicted.is_empty() && no_effect.is_empty() {
        // Faster only where it is wrong: nothing decided for the claim.
        FindingKind::Inconclusive
    } else if supported.is_empty() {
        FindingKind::DoesNotHold
    } else if contradicted.is_empty() && no_effect.is_empty() && undecided.is_empty() && broken_checks == 0 {
        FindingKind::Holds
    } else {
        FindingKind::HoldsInPart
    };
    let pct = decision.percent();
    let keeps_up = format!("keeps up (within {pct})");
    let no_effect_words = format!("no effect that matters (within {pct})");
    let (better, worse) = match claim.kind {
        ClaimKind::Beats => ("better", "worse"),
        ClaimKind::KeepsUp => (keeps_up.as_str(), "falls behind"),
    };
    let mut parts = Vec::new();
    for (what, at) in [
        (better, &supported),
        (worse, &contradicted),
        (no_effect_words.as_str(), &no_effect),
        ("undecided", &undecided),
    ] {
        if !at.is_empty() {
            parts.push(format!("{what} at {}", at.join(", ")));
        }
    }
    if broken_checks > 0 {
        parts.push(format!("{broken_checks} correctness check(s) of {variant} failed"));
    }
    if !unsupported.is_empty() {
        parts.push(format!(
            "better at {} but incorrect there, which is no support ({})",
            unsupported.join(", "),
            failed_checks(result, variant, claim.case)
        ));
    }
    if let Some(e) = &failed {
        parts.insert(0, format!("the experiment failed ({})", e.lines().next().unwrap_or(e)));
    }
    if decided == 0 && failed.is_none() {
        parts.push("no point reached a verdict".into());
    }
    if control_differs {
        parts.push("a control point differs (see the controls)".into());
    }
    let reason = format!(
        "{variant} vs {baseline}{}: {}",
        if claim.case.is_empty() { String::new() } else { format!(" in {}", claim.case) },
        parts.join("; ")
    );
    Some(Finding {
        kind,
        claim: claim.kind,
        variant: variant.to_owned(),
        baseline,
        supported,
        contradicted,
        no_effect,
        undecided,
        broken_checks,
        reason,
        controls: control_sentences,
        control_differs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{DecisionRule, PointAnalysis};

    /// A comparison as the analysis stores it, for the finding rule.
    fn said(verdict: VerdictKind, lo: f64, hi: f64) -> Comparison {
        Comparison {
            case: String::new(),
            variant: "fast".into(),
            baseline: "base".into(),
            ratio: Some((lo + hi) / 2.0),
            ratio_ci_low: Some(lo),
            ratio_ci_high: Some(hi),
            p_value: Some(0.01),
            verdict,
            sentence: String::new(),
            pairs: None,
            level: None,
        }
    }

    /// A result whose claim comparison says `verdicts`, one per sweep point.
    fn claimed(verdicts: &[(VerdictKind, f64, f64)]) -> ExperimentResult {
        use crate::results::SweepPoint;
        let mut r = crate::analysis::tests::result_with(vec![]);
        r.sweep.points = (0..verdicts.len()).map(|i| SweepPoint { label: i.to_string(), value: i as f64 }).collect();
        r.analysis = verdicts
            .iter()
            .enumerate()
            .map(|(i, &(v, lo, hi))| PointAnalysis {
                case: String::new(),
                point: i.to_string(),
                variants: vec![],
                comparisons: vec![said(v, lo, hi)],
            })
            .collect();
        r
    }

    #[test]
    fn the_finding_follows_its_rule() {
        use VerdictKind::*;
        let beats = Claim { case: "", variant: Some("fast"), kind: ClaimKind::Beats };
        let kind = |v: &[(VerdictKind, f64, f64)], c: Claim<'_>| finding(&claimed(v), c).unwrap().kind;
        assert_eq!(kind(&[(Better, 0.4, 0.6), (Better, 0.3, 0.5)], beats), FindingKind::Holds);
        // An undecided point is reported and keeps the finding from holding everywhere; a
        // contradicting one too.
        assert_eq!(kind(&[(Inconclusive, 0.4, 1.3), (Better, 0.3, 0.5)], beats), FindingKind::HoldsInPart);
        assert_eq!(kind(&[(Worse, 1.4, 1.6), (Better, 0.3, 0.5)], beats), FindingKind::HoldsInPart);
        // No difference: no effect when the whole CI is within the smallest effect that
        // matters (5 % by default) of 1, undecided when wider.
        assert_eq!(kind(&[(NoDifference, 0.96, 1.04), (Better, 0.3, 0.5)], beats), FindingKind::HoldsInPart);
        assert_eq!(kind(&[(NoDifference, 0.96, 1.04)], beats), FindingKind::DoesNotHold);
        assert_eq!(kind(&[(NoDifference, 0.94, 1.04)], beats), FindingKind::Inconclusive);
        assert_eq!(kind(&[(NoDifference, 0.7, 1.4)], beats), FindingKind::Inconclusive);
        assert_eq!(kind(&[(Worse, 1.4, 1.6)], beats), FindingKind::DoesNotHold);
        assert_eq!(kind(&[(Missing, 0.0, 0.0)], beats), FindingKind::Inconclusive);
        // A significant difference smaller than what matters, its whole CI, is no effect that
        // matters; one whose estimate is (0.96×) but whose CI reaches past 5 % is undecided.
        assert_eq!(kind(&[(Better, 0.985, 0.995)], beats), FindingKind::DoesNotHold);
        assert_eq!(kind(&[(Better, 0.93, 0.99)], beats), FindingKind::Inconclusive);
        let mut r = claimed(&[(Better, 0.91, 0.97)]);
        assert_eq!(finding(&r, beats).unwrap().kind, FindingKind::Holds, "0.94× is beyond 5 %");
        r.rule = Some(DecisionRule { smallest_effect: 0.10, ..Default::default() });
        let f = finding(&r, beats).unwrap();
        assert_eq!(f.kind, FindingKind::DoesNotHold, "but within a declared 10 %: {}", f.reason);
        assert!(f.reason.contains("no effect that matters (within 10 %)"), "{}", f.reason);
        // Keeping up: within the smallest effect is enough, even when significantly behind,
        // and it is one-sided: a CI that reaches past the band on the better side only keeps
        // up; one that reaches past it on the worse side does not decide. This metric is
        // lower-is-better (a latency), so the worse side is above 1.
        let keeps = Claim { kind: ClaimKind::KeepsUp, ..beats };
        assert_eq!(kind(&[(NoDifference, 0.97, 1.03)], keeps), FindingKind::Holds);
        assert_eq!(kind(&[(Worse, 1.01, 1.04)], keeps), FindingKind::Holds);
        assert_eq!(kind(&[(Worse, 1.2, 1.4)], keeps), FindingKind::DoesNotHold);
        assert_eq!(kind(&[(NoDifference, 0.80, 1.04)], keeps), FindingKind::Holds);
        assert_eq!(kind(&[(Better, 0.7, 0.85)], keeps), FindingKind::Holds);
        assert_eq!(kind(&[(NoDifference, 0.96, 1.20)], keeps), FindingKind::Inconclusive);
        // A higher-is-better metric (a throughput): the worse side is below 1.
        let higher = |v: &[(VerdictKind, f64, f64)]| {
            let mut r = claimed(v);
            r.primary_metric.better = crate::results::Better::Higher;
            finding(&r, keeps).unwrap().kind
        };
        assert_eq!(higher(&[(NoDifference, 0.96, 1.20)]), FindingKind::Holds);
        assert_eq!(higher(&[(Worse, 0.96, 0.99)]), FindingKind::Holds);
        assert_eq!(higher(&[(NoDifference, 0.80, 1.04)]), FindingKind::Inconclusive);
        assert_eq!(higher(&[(Worse, 0.7, 0.85)]), FindingKind::DoesNotHold);
        // A variant that fails a correctness check supports nothing: faster only where it is
        // wrong decides nothing for the claim.
        let mut r = claimed(&[(Better, 0.4, 0.6)]);
        r.checks.push(crate::results::Check::verdict("fast", None, "same rows", 0.0, false, "missed rows"));
        let f = finding(&r, beats).unwrap();
        assert_eq!(f.kind, FindingKind::Inconclusive, "{}", f.reason);
        assert!(f.reason.contains("1 correctness check(s) of fast failed"), "{}", f.reason);
        assert!(f.reason.contains("incorrect there, which is no support (same rows)"), "{}", f.reason);
        let mut r = claimed(&[(Better, 0.4, 0.6), (Worse, 1.4, 1.6)]);
        r.checks.push(crate::results::Check::verdict("fast", None, "same rows", 0.0, false, "missed rows"));
        assert_eq!(finding(&r, beats).unwrap().kind, FindingKind::DoesNotHold);
        // A failed experiment is inconclusive whatever it measured before it failed.
        let mut r = claimed(&[(Better, 0.4, 0.6)]);
        r.status = ExperimentStatus::Failed { error: "server died".into() };
        assert_eq!(finding(&r, beats).unwrap().kind, FindingKind::Inconclusive);
        // A correct variant compared with the same baseline stands in for a broken one.
        let mut r = claimed(&[(Better, 0.4, 0.6)]);
        let mut correct = said(Better, 0.3, 0.5);
        correct.variant = "right".into();
        r.analysis[0].comparisons.push(correct);
        r.variants.push(crate::results::VariantInfo {
            name: "right".into(),
            description: String::new(),
            baseline: Some("base".into()),
        });
        r.checks.push(crate::results::Check::verdict("fast", None, "same rows", 0.0, false, "missed rows"));
        r.checks.push(crate::results::Check::verdict("right", None, "same rows", 0.0, true, "all rows"));
        assert_eq!(correct_stand_in(&r, beats).as_deref(), Some("right"));
        let f = finding(&r, beats).unwrap();
        assert_eq!((f.kind, f.variant.as_str()), (FindingKind::Holds, "right"), "{}", f.reason);
        assert!(f.reason.starts_with("fast fails 1 correctness check(s) (same rows)"), "{}", f.reason);
        // No named claim, no finding.
        assert!(finding(&claimed(&[(Better, 0.4, 0.6)]), Claim::default()).is_none());
    }

    /// A result whose claim comparison has these (verdict, ratio, p) at its points, each CI
    /// wide enough never to fall within the band.
    fn with_p(points: &[(VerdictKind, f64, f64)]) -> ExperimentResult {
        let mut r = claimed(&points.iter().map(|&(v, ratio, _)| (v, ratio * 0.8, ratio * 1.2)).collect::<Vec<_>>());
        for (p, &(_, ratio, pv)) in r.analysis.iter_mut().zip(points) {
            p.comparisons[0].ratio = Some(ratio);
            p.comparisons[0].p_value = Some(pv);
        }
        r
    }

    #[test]
    fn holm_keeps_the_family_wise_error_over_the_points() {
        // Sorted 0.01, 0.03, 0.04 against 0.05/3, 0.05/2, 0.05: the first passes, the second
        // stops the step-down.
        assert_eq!(holm(&[Some(0.01), Some(0.04), Some(0.03)], 0.05), vec![true, false, false]);
        assert_eq!(holm(&[Some(0.01), Some(0.02), Some(0.04)], 0.05), vec![true, true, true]);
        assert_eq!(holm(&[None, Some(0.001)], 0.05), vec![false, true]);
        assert_eq!(holm(&[], 0.05), Vec::<bool>::new());
        // Three points each at p = 0.03 would each be significant alone; together none is.
        let beats = Claim { case: "", variant: Some("fast"), kind: ClaimKind::Beats };
        use VerdictKind::Better;
        let f = finding(&with_p(&[(Better, 0.5, 0.03), (Better, 0.5, 0.03), (Better, 0.5, 0.03)]), beats).unwrap();
        assert_eq!(f.kind, FindingKind::Inconclusive, "{}", f.reason);
        assert!(f.reason.contains("not significant across 3 points by Holm's correction"), "{}", f.reason);
        // One of them alone decides.
        let f = finding(&with_p(&[(Better, 0.5, 0.03)]), beats).unwrap();
        assert_eq!(f.kind, FindingKind::Holds, "{}", f.reason);
    }

    #[test]
    fn control_points_are_checks_not_evidence() {
        use VerdictKind::*;
        let beats = Claim { case: "", variant: Some("fast"), kind: ClaimKind::Beats };
        let control = |r: &mut ExperimentResult| {
            r.rule = Some(DecisionRule {
                controls: vec![crate::results::ControlPoint { point: "0".into(), why: "a batch of one".into() }],
                ..Default::default()
            })
        };
        // Without effect at the control, better elsewhere: holds (it would be in part if the
        // control counted), and the control reads as it should.
        let mut r = claimed(&[(NoDifference, 0.98, 1.02), (Better, 0.3, 0.5)]);
        assert_eq!(finding(&r, beats).unwrap().kind, FindingKind::HoldsInPart);
        control(&mut r);
        let f = finding(&r, beats).unwrap();
        assert_eq!((f.kind, f.control_differs), (FindingKind::Holds, false), "{}", f.reason);
        assert_eq!(f.supported, vec!["n 1".to_owned()]);
        assert!(
            f.controls[0].contains("n 0 is a control (a batch of one): nothing that matters differs"),
            "{:?}",
            f.controls
        );
        // A control that differs says something besides the technique differs.
        let mut r = claimed(&[(Worse, 1.4, 1.6), (Better, 0.3, 0.5)]);
        control(&mut r);
        let f = finding(&r, beats).unwrap();
        assert_eq!(f.kind, FindingKind::Holds, "{}", f.reason);
        assert!(f.control_differs && f.reason.contains("a control point differs"), "{}", f.reason);
        // Only controls measured: nothing decided for the claim.
        let mut r = claimed(&[(Better, 0.3, 0.5)]);
        control(&mut r);
        assert_eq!(finding(&r, beats).unwrap().kind, FindingKind::Inconclusive);
    }
}
