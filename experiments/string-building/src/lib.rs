//! `string-building`: the guide's `BuildQuery`, which pre-grows a `strings.Builder`
//! (`Grow(len(conditions) * 20)`) and writes `SELECT * FROM users WHERE c1 AND c2 …`.
//!
//! The guide splices conditions into the SQL as its caller gives them; here each condition is
//! a column compared with a `$n` placeholder (`status = $1`), written by the caller, so the
//! builder writes the guide's query as printed (prefix, conditions joined by " AND ") and the
//! values would travel separately. Three ways to build the same string: concatenation as Go's
//! `q += " AND " + c` does it (one new string of exactly the right size per condition), the
//! guide's pre-grown builder (`String::with_capacity` with its estimate, then `push_str`), and
//! `join`.

use harness::micro::{self, Input, Routine};
use harness::{names_of, pick, BoxFuture, Engine, Experiment, Meta, Routines, RunCtx, Sweep, Trial, Variant};

const ID: &str = "string-building";
const PREFIX: &str = "SELECT * FROM users WHERE ";

/// Conditions as the service gets them: a column, an operator and its placeholder, about 13
/// bytes each (with " AND ", about the guide's estimate of 20 per condition).
pub fn conditions(n: usize) -> Vec<String> {
    const COLUMNS: [&str; 6] = ["status =", "created_at >=", "username LIKE", "email =", "country =", "id <>"];
    (0..n).map(|i| format!("{} ${}", COLUMNS[i % COLUMNS.len()], i + 1)).collect()
}

/// Repeated concatenation as Go's `q += " AND " + c` does it: each step makes one new string,
/// of exactly the size of the last plus what is added, and copies the last into it.
pub fn concat(conditions: &[String]) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let mut q = PREFIX.to_owned();
    for (i, c) in conditions.iter().enumerate() {
        let sep = if i > 0 { " AND " } else { "" };
        let mut next = String::with_capacity(q.len() + sep.len() + c.len());
        next.push_str(&q);
        next.push_str(sep);
        next.push_str(c);
        q = next;
    }
    q
}

/// The guide's `BuildQuery` as printed: `builder.Grow(len(conditions) * 20)`, then the prefix
/// and the conditions joined by " AND ".
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
    }
    q
}

/// The conditions joined (one string of the exact size), after the prefix.
pub fn join(conditions: &[String]) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let mut q = PREFIX.to_owned();
    q.push_str(&conditions.join(" AND "));
    q
}

type Build = fn(&[String]) -> String;

const VARIANTS: [(Variant, Build); 3] = [
    (
        Variant::new(
            "concat",
            "repeated concatenation, as Go's q += \" AND \" + c: one new string of the exact size per condition",
        ),
        concat as Build,
    ),
    (
        Variant::new("guide-builder", "the guide's builder: String::with_capacity(len × 20), then push_str")
            .tests_claim(),
        guide_builder as Build,
    ),
    (Variant::new("join", "the prefix, then the conditions' join(\" AND \")"), join as Build),
];

/// The guide's Go code beside the ports (`go/inproc/string_building.go`), compared with one
/// another only: the same three ways, compiled by Go and timed by its testing package.
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group("go-concat", "Go original: q += \" AND \" + c").in_go("StringBuilding/concat"),
    Variant::new(
        "go-guide-builder",
        "Go original: the guide's BuildQuery as printed (strings.Builder, Grow(len(conditions) * 20))",
    )
    .compared_with("go-concat")
    .in_go("StringBuilding/guide-builder")
    .tests_claim(),
    Variant::new("go-join", "Go original: the prefix + strings.Join(conditions, \" AND \")")
        .compared_with("go-concat")
        .in_go("StringBuilding/join"),
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
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            sweep: Sweep::numeric("conditions", "conditions", &[1.0, 10.0, 100.0], &[1.0, 100.0]),
            primary_metric: micro::time_metric(),
            metrics: [micro::metrics("condition"), vec![micro::go::gc_metric()]].concat(),
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
            for p in ctx.settings.points(&self.meta().sweep) {
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
        // The guide's estimate holds from 10 conditions on (its prefix is not in it).
        for n in [10, 100] {
            assert!(guide_builder(&conditions(n)).len() <= n * 20, "{n} conditions outgrow len × 20");
        }
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
