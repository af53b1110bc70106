//! The summary's answer for one experiment: does the guide's claim hold? One rule over the
//! stored verdicts of the claim's comparison and the claim variant's correctness checks.

use crate::results::Check;
use crate::results::{
    Claim, ClaimKind, Comparison, ExperimentResult, ExperimentStatus, Finding, FindingKind, VerdictKind,
};

/// Two medians whose ratio's whole 95% CI lies within this factor of 1 (0.909 to 1.10) are the
/// same for the summary's purposes: a claim that a technique beats its baseline finds no
/// effect there, a claim that it keeps up finds that it does. 10 % is also what the
/// calibrations ask (the harness at ≥ 0.9× the reference tool).
pub const EQUIVALENCE: f64 = 1.10;

/// What one comparison says of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Says {
    Supports,
    Contradicts,
    NoEffect,
    Undecided,
}

fn says(c: &Comparison, kind: ClaimKind) -> Says {
    let within = matches!((c.ratio_ci_low, c.ratio_ci_high), (Some(lo), Some(hi))
        if lo >= 1.0 / EQUIVALENCE && hi <= EQUIVALENCE);
    // No ratio but a verdict of no difference: both negligible (or zero), nothing to choose.
    let negligible = c.ratio.is_none() && c.verdict == VerdictKind::NoDifference;
    match (c.verdict, kind) {
        (VerdictKind::Better, _) => Says::Supports,
        (VerdictKind::Worse, ClaimKind::Beats) => Says::Contradicts,
        (VerdictKind::Worse, ClaimKind::KeepsUp) if within => Says::Supports,
        (VerdictKind::Worse, ClaimKind::KeepsUp) => Says::Contradicts,
        (VerdictKind::NoDifference, ClaimKind::Beats) if within || negligible => Says::NoEffect,
        (VerdictKind::NoDifference, ClaimKind::KeepsUp) if within || negligible => Says::Supports,
        _ => Says::Undecided,
    }
}

/// The summary's answer, by this rule (the README's "The summary" says the same):
/// - take the claim's comparison (its variant against its baseline, in its case) at every
///   sweep point, and read each as *supports*, *contradicts*, *no effect* or *undecided*:
///   better supports; worse contradicts (for a keeps-up claim, worse within `EQUIVALENCE`
///   still supports); no significant difference with the whole CI of the ratio within
///   `EQUIVALENCE` of 1 is *no effect* for a claim to beat the baseline and *supports* a claim
///   to keep up; anything else (a wide CI, too few repetitions, a side missing) is undecided;
/// - **holds**: supported somewhere, contradicted and without effect nowhere, and no
///   correctness check of the variant failed; **holds in part**: supported somewhere but not
///   everywhere a verdict was reached, or with a failed correctness check; **does not hold**:
///   supported nowhere, and contradicted or without effect somewhere; **inconclusive**: no point
///   decided anything, or the experiment failed.
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
    let (mut supported, mut contradicted, mut no_effect, mut undecided) = (vec![], vec![], vec![], vec![]);
    for p in result.analysis.iter().filter(|p| p.case == claim.case) {
        let Some(c) = p.comparisons.iter().find(|c| c.variant == variant) else {
            continue;
        };
        let label = result.place("", &p.point);
        match says(c, claim.kind) {
            Says::Supports => supported.push(label),
            Says::Contradicts => contradicted.push(label),
            Says::NoEffect => no_effect.push(label),
            Says::Undecided => undecided.push(label),
        }
    }
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
    } else if contradicted.is_empty() && no_effect.is_empty() && broken_checks == 0 {
        FindingKind::Holds
    } else {
        FindingKind::HoldsInPart
    };
    let (better, worse) = match claim.kind {
        ClaimKind::Beats => ("better", "worse"),
        ClaimKind::KeepsUp => ("keeps up (within 10 %)", "falls behind"),
    };
    let mut parts = Vec::new();
    for (what, at) in [
        (better, &supported),
        (worse, &contradicted),
        ("no measurable effect (within 10 %)", &no_effect),
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::PointAnalysis;

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
        // An undecided point does not spoil a finding, a contradicting one does.
        assert_eq!(kind(&[(Inconclusive, 0.4, 1.3), (Better, 0.3, 0.5)], beats), FindingKind::Holds);
        assert_eq!(kind(&[(Worse, 1.4, 1.6), (Better, 0.3, 0.5)], beats), FindingKind::HoldsInPart);
        // No difference: no effect when the whole CI is within 10 % of 1, undecided when wider.
        assert_eq!(kind(&[(NoDifference, 0.95, 1.04), (Better, 0.3, 0.5)], beats), FindingKind::HoldsInPart);
        assert_eq!(kind(&[(NoDifference, 0.95, 1.04)], beats), FindingKind::DoesNotHold);
        assert_eq!(kind(&[(NoDifference, 0.7, 1.4)], beats), FindingKind::Inconclusive);
        assert_eq!(kind(&[(Worse, 1.4, 1.6)], beats), FindingKind::DoesNotHold);
        assert_eq!(kind(&[(Missing, 0.0, 0.0)], beats), FindingKind::Inconclusive);
        // Keeping up: within 10 % is enough, even when significantly behind.
        let keeps = Claim { kind: ClaimKind::KeepsUp, ..beats };
        assert_eq!(kind(&[(NoDifference, 0.93, 1.05)], keeps), FindingKind::Holds);
        assert_eq!(kind(&[(Worse, 0.92, 0.97)], keeps), FindingKind::Holds);
        assert_eq!(kind(&[(Worse, 0.7, 0.85)], keeps), FindingKind::DoesNotHold);
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
}
