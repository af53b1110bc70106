//! What the experiment names as the test of the guide's claim (`Claim`), and what a run found
//! of it (`Finding`): the summary's row.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the experiment names as the test of the guide's claim: a variant's comparison with
/// its baseline, in a case (`""` for an experiment without cases), and whether the variant is
/// to beat the baseline or keep up with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claim<'a> {
    pub case: &'a str,
    pub variant: Option<&'a str>,
    pub kind: ClaimKind,
}

/// What a claim asks of its variant against the baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimKind {
    /// To be better (the guide's techniques).
    #[default]
    Beats,
    /// To be as good, within the smallest effect that matters (the harness against a
    /// reference tool).
    KeepsUp,
}

/// The summary's answer for one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Supported at every point where the technique acts (controls aside), no correctness
    /// failure.
    Holds,
    /// Supported somewhere, but not everywhere: contradicted, without an effect that matters
    /// or undecided elsewhere, or a correctness check of the variant failed.
    HoldsInPart,
    /// Supported nowhere: worse, or no effect that matters, where a verdict was reached.
    DoesNotHold,
    /// No point reached a verdict either way (too few repetitions, too much noise, a failure).
    Inconclusive,
}

/// What the run found of the guide's claim, from the claim's comparisons at every sweep point
/// of the claim's case and the variant's correctness checks (`analysis::finding`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub kind: FindingKind,
    pub claim: ClaimKind,
    /// The variant the claim is about, and the one it is compared with.
    pub variant: String,
    pub baseline: String,
    /// Sweep points where the verdict supports the claim, contradicts it, shows no effect
    /// that matters (`DecisionRule::smallest_effect`), or decides nothing.
    pub supported: Vec<String>,
    pub contradicted: Vec<String>,
    pub no_effect: Vec<String>,
    pub undecided: Vec<String>,
    /// What the control points said (`DecisionRule::controls`), one sentence each: checks
    /// that nothing differs where the technique cannot act, never evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
    /// A control point differs beyond the smallest effect that matters: something besides
    /// the technique differs between the variants.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control_differs: bool,
    /// Correctness checks of the variant that failed.
    pub broken_checks: usize,
    /// The finding in one line: which points said what, and why the rule concluded so.
    pub reason: String,
}
