//! `bench --against`'s confirmation: a first run's regressions judged again on a second run of
//! their experiments.

use super::{fmt_change, row_name, BrokenCheck, Report, Row, Verdict};
use crate::analysis;
use serde::Serialize;

/// A first run's regressions judged again on a second run of their experiments (`bench
/// --against`'s confirmation).
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    /// The regressions the first run flagged, described.
    pub flagged: Vec<String>,
    /// Those the second run found again.
    pub confirmed: Vec<String>,
}

impl Confirmation {
    pub fn describe(&self) -> String {
        let mut out = format!(
            "confirmation: {} of {} flagged regression(s) found again{}",
            self.confirmed.len(),
            self.flagged.len(),
            if self.confirmed.is_empty() { " (the first run's were chance: not gated)" } else { ":" }
        );
        for c in &self.confirmed {
            out.push_str(&format!("\n  REGRESSED: {c}"));
        }
        out
    }
}

/// Judge `first`'s gated regressions on `again`, a new run of their experiments. A broken
/// check stands when it is broken again; a count when it regresses again (it is exact); a
/// timing when it regresses again beyond its threshold with its p rejected by Holm's step-down
/// over the flagged timings alone. The second run's data are new, so a timing the first run
/// flagged by chance passes both only with probability at most α for the whole family:
/// the first run screens, the second decides.
pub fn confirm(first: &Report, again: &Report) -> Confirmation {
    let key = |r: &Row| (r.experiment.clone(), r.case.clone(), r.variant.clone(), r.point.clone(), r.metric.clone());
    let flagged: Vec<&Row> =
        first.rows.iter().filter(|r| r.verdict == Verdict::Regressed && r.gated(first.gate)).collect();
    let found = |r: &Row| again.rows.iter().find(|a| key(a) == key(r));
    let describe = |r: &Row| format!("{} {} {} {}", r.experiment, row_name(r), r.metric, fmt_change(r));
    let timings: Vec<(&Row, Option<f64>)> =
        flagged.iter().filter(|r| !r.deterministic).map(|r| (*r, found(r).and_then(|a| a.p_value))).collect();
    let rejected = crate::finding::holm(&timings.iter().map(|(_, p)| *p).collect::<Vec<_>>(), analysis::ALPHA);
    let mut out = Confirmation { flagged: Vec::new(), confirmed: Vec::new() };
    for b in &first.broken_checks {
        out.flagged.push(b.describe());
        let same = |x: &BrokenCheck| {
            (&x.experiment, &x.case, &x.variant, &x.point, &x.check)
                == (&b.experiment, &b.case, &b.variant, &b.point, &b.check)
        };
        if let Some(x) = again.broken_checks.iter().find(|x| same(x)) {
            out.confirmed.push(x.describe());
        }
    }
    for r in &flagged {
        out.flagged.push(describe(r));
        let Some(a) = found(r).filter(|a| a.verdict == Verdict::Regressed) else { continue };
        let holds = r.deterministic || timings.iter().zip(&rejected).any(|((t, _), &ok)| ok && std::ptr::eq(*t, *r));
        if holds {
            out.confirmed.push(describe(a));
        }
    }
    out
}
