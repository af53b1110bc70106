//! `string-building`: the guide's `BuildQuery`, which pre-grows a `strings.Builder`
//! (`Grow(len(conditions) * 20)`) and writes `SELECT * FROM users WHERE c1 AND c2 …`.
//!
//! The guide splices conditions that carry their values into the SQL, which invites
//! injection; here every condition is a column compared with a `$n` placeholder, and the
//! values would travel separately. Three ways to build the same string: repeated
//! `format!` (a new string per condition, as Go's `s += …`), the guide's pre-grown builder
//! (`String::with_capacity` with its estimate, then `push_str`), and `join`.

use harness::micro::{self, Input, Routine};
use harness::{names_of, pick, BoxFuture, Engine, Experiment, Meta, Routines, RunCtx, Sweep, Trial, Variant};
use std::fmt::Write as _;

const ID: &str = "string-building";
const PREFIX: &str = "SELECT * FROM users WHERE ";

/// Conditions as the service gets them: a column and an operator.
pub fn conditions(n: usize) -> Vec<String> {
    const COLUMNS: [&str; 6] =
        ["status =", "created_at >=", "username LIKE", "email =", "deleted_at IS NOT DISTINCT FROM", "id <>"];
    (0..n).map(|i| COLUMNS[i % COLUMNS.len()].to_owned()).collect()
}

/// Repeated concatenation: each step makes a new string from the last (Go's `q += …`).
pub fn concat(conditions: &[String]) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let mut q = PREFIX.to_owned();
    for (i, c) in conditions.iter().enumerate() {
        q = if i > 0 { format!("{q} AND {c} ${}", i + 1) } else { format!("{q}{c} ${}", i + 1) };
    }
    q
}

/// The guide's `BuildQuery`: `builder.Grow(len(conditions) * 20)`, then writes.
pub fn guide_builder(conditions: &[String]) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let mut q = String::with_capacity(conditions.len() * 20);
    q.push_str(PREFIX);
    for (i, c) in conditions.iter().enumerate() {
        if i > 0 {
            q.push_str(" AND ");
        }
        q.push_str(c);
        let _ = write!(q, " ${}", i + 1);
    }
    q
}

/// Each condition formatted on its own, then joined.
pub fn join(conditions: &[String]) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = conditions.iter().enumerate().map(|(i, c)| format!("{c} ${}", i + 1)).collect();
    let mut q = PREFIX.to_owned();
    q.push_str(&parts.join(" AND "));
    q
}

type Build = fn(&[String]) -> String;

const VARIANTS: [(Variant, Build); 3] = [
    (Variant::new("concat", "repeated format!: a new string per condition, like Go's q += …"), concat as Build),
    (
        Variant::new("guide-builder", "the guide's builder: String::with_capacity(len × 20), then push_str")
            .tests_claim(),
        guide_builder as Build,
    ),
    (Variant::new("join", "format each condition, then join(\" AND \")"), join as Build),
];

#[derive(Default)]
pub struct StringBuilding;

impl StringBuilding {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for StringBuilding {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Building a query string",
            guide_section: "应用层优化 › Go语言优化 › 字符串构建优化 (BuildQuery)",
            claim: "A strings.Builder grown in advance (Grow(len*20)) builds strings with fewer allocations than concatenation.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("conditions", "conditions", &[1.0, 10.0, 100.0], &[1.0, 100.0]),
            primary_metric: micro::time_metric(),
            metrics: micro::metrics("condition"),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            // Was the guide's estimate of 20 bytes per condition enough?
            let mut checks = Vec::new();
            for p in self.meta().sweep.points(ctx.settings.quick) {
                let c = conditions(p.value as usize);
                let q = guide_builder(&c);
                checks.push(harness::Check::observation(
                    "guide-builder",
                    Some(&p.label),
                    "query bytes / Grow estimate",
                    q.len() as f64 / (c.len() * 20) as f64,
                    "above 1: the builder outgrew the guide's len × 20 estimate and reallocated",
                ));
            }
            Ok(checks)
        })
    }
}

impl Routines for StringBuilding {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let (variant, point) = (at.variant, at.point);
        let f = pick(&VARIANTS, variant)?;
        let n = point.value as usize;
        Ok(Routine::new(conditions(n), move |c| f(c)).items(n as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_builds_the_same_placeholder_query() {
        assert_eq!(guide_builder(&conditions(2)), "SELECT * FROM users WHERE status = $1 AND created_at >= $2");
        for n in [0, 1, 10, 100] {
            let c = conditions(n);
            let want = guide_builder(&c);
            for (v, f) in VARIANTS {
                let name = v.name;
                assert_eq!(f(&c), want, "{name} at {n}");
            }
        }
        assert_eq!(guide_builder(&[]), "");
        assert!(guide_builder(&conditions(100)).ends_with("$100"));
    }
}
