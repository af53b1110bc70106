//! The one decision path: from an experiment's samples to everything results.json states about
//! them. Which samples are measurements, every declared metric's medians and comparisons, the
//! headline (`analysis`), the finding (`finding`) and the guide's targets (`targets`), in that
//! order. The runner calls it after an experiment's trials, and `xtask report` only for a file
//! written before a field existed (its migration); nothing else decides.

use crate::experiment::Meta;
use crate::results::ExperimentResult;

/// Decide `result` as `meta` declares it (its claim and targets), on a machine of `cores`
/// cores (the CPU target is a share of them: the run's host's, for an old file).
pub fn decide(result: &mut ExperimentResult, meta: &Meta, cores: usize) {
    // The rule the finding is decided by: the smallest effect that matters and the control
    // points, as the experiment declares them, at the points the run measured.
    result.rule = Some(meta.rule(&result.sweep.points));
    let declared = meta.claim();
    // Where the claim's variant fails a correctness check, the correct variant that tests the
    // claim takes the headline too (`finding::correct_stand_in`).
    let stand_in = crate::finding::correct_stand_in(result, declared);
    let claim = crate::results::Claim { variant: stand_in.as_deref().or(declared.variant), ..declared };
    crate::analysis::analyse(result, claim);
    result.finding = crate::finding::finding(result, declared);
    // The Go original's finding, by the same rule over its own comparison (Go with Go); none
    // where the Go originals did not run (no toolchain).
    let go_ran = |c: &crate::results::Claim<'_>| result.samples.iter().any(|s| Some(s.variant.as_str()) == c.variant);
    result.go_finding = meta.go_claim().filter(go_ran).and_then(|c| crate::finding::finding(result, c));
    result.targets = crate::targets::evaluate(result, meta.targets, cores);
}
