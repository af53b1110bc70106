//! The capacity search and stress of one experiment, for the report: a table per variant and
//! the latency-vs-offered-rate chart, from what results.json stores.

use super::charts;
use super::format::num;
use crate::results::capacity::{CapacityResult, Phase, Step};
use crate::results::ExperimentResult;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct CapacityView {
    /// Where it was searched and the limits, in words.
    pub at: String,
    pub limits: String,
    pub chart_svg: String,
    pub rows: Vec<CapacityRow>,
}

#[derive(Debug, Serialize)]
pub struct CapacityRow {
    pub variant: String,
    /// The highest rate that held, or why there is none.
    pub capacity: String,
    /// Served rate and p95 at the capacity.
    pub at_capacity: String,
    /// One cell per stress step: what was served, its p95, its errors by kind.
    pub stress: Vec<String>,
    /// How many rates were tried, and the first limit that broke.
    pub search: String,
    /// After an overload of 2× the capacity: how long until it was within the limits again.
    pub recovery: String,
}

pub fn view(e: &ExperimentResult) -> Option<CapacityView> {
    let first = e.capacity.first()?;
    let in_case = if first.case.is_empty() { String::new() } else { format!(" in {}", first.case) };
    let at = format!("{} {}{in_case}", e.sweep.axis, first.point);
    // In declaration order, as every other table and chart of the experiment.
    let mut results: Vec<&CapacityResult> = e.capacity.iter().collect();
    results.sort_by_key(|c| e.variants.iter().position(|v| v.name == c.variant));
    let series: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|c| {
            let pts = c.steps.iter().filter_map(|s| Some((s.offered_per_sec, s.p95_us? / 1000.0))).collect();
            (c.variant.clone(), pts)
        })
        .collect();
    let chart_svg = charts::xy_log_chart(
        "offered rate (requests/s, open loop)",
        "p95 latency (ms)",
        &series,
        Some(first.limits.p95_ms),
        &|v| format!("{}/s", num(v)),
    )
    .unwrap_or_else(|err| format!("<p class=\"error\">chart failed: {err}</p>"));
    let rows = results.into_iter().map(row).collect();
    Some(CapacityView { at, limits: first.limits.describe(), chart_svg, rows })
}

/// For the summary: the capacity of the claim's variant and of its baseline, side by side.
pub fn claim_line(e: &ExperimentResult) -> Option<String> {
    let claim = e.headline.as_ref()?;
    let first = e.capacity.first()?;
    let of = |variant: &str| {
        let c = e.capacity.iter().find(|c| c.variant == variant)?;
        Some(format!(
            "{variant} {}",
            c.capacity_per_sec.map_or_else(|| "none held".to_owned(), |v| format!("{}/s", num(v)))
        ))
    };
    let in_case = if first.case.is_empty() { String::new() } else { format!(" in {}", first.case) };
    Some(format!(
        "Capacity (p95 < {} ms) at {} {}{in_case}: {} vs {}",
        first.limits.p95_ms,
        e.sweep.axis,
        first.point,
        of(&claim.variant)?,
        of(&claim.baseline)?
    ))
}

fn row(c: &CapacityResult) -> CapacityRow {
    let search: Vec<&Step> = c.steps.iter().filter(|s| s.phase == Phase::Search).collect();
    let at_capacity = c
        .capacity_per_sec
        .and_then(|cap| search.iter().find(|s| s.offered_per_sec == cap))
        .map(|s| format!("served {}/s, p95 {}", num(s.achieved_per_sec), p95(s)))
        .unwrap_or_default();
    let capacity = match (c.capacity_per_sec, &c.error) {
        (Some(cap), _) => format!("{}/s", num(cap)),
        (None, Some(_)) => "not found (a trial failed)".into(),
        (None, None) => "none: the lowest rate tried broke".into(),
    };
    let stress = c
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Stress)
        .map(|s| {
            let factor = c.capacity_per_sec.map(|cap| s.offered_per_sec / cap).unwrap_or(0.0);
            let errors = if s.errors.is_empty() {
                "no errors".to_owned()
            } else {
                let kinds: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                format!("errors {:.2} %: {}", s.error_rate * 100.0, kinds.join(", "))
            };
            format!(
                "{factor:.1}× ({}/s): served {}/s, p95 {}, {errors}",
                num(s.offered_per_sec),
                num(s.achieved_per_sec),
                p95(s)
            )
        })
        .collect();
    let first_break = search.iter().find_map(|s| s.broke.as_deref()).unwrap_or("none broke");
    let mut search_text = format!("{} rates; first break: {first_break}", search.len());
    if let Some(err) = &c.error {
        search_text.push_str(&format!("; stopped: {err}"));
    }
    let recovery = c.recovery.as_ref().map(|r| {
        let after = match r.recovered_after_ms {
            Some(0) => "within the limits from the first window after it".to_owned(),
            Some(ms) => format!("within the limits again {ms} ms after it stopped"),
            None => format!("not within the limits again in the {} ms watched", r.after_ms),
        };
        let errors: u64 = r.errors.values().sum();
        let errors = if errors > 0 { format!("; {errors} errors") } else { String::new() };
        format!(
            "{}/s for {} ms, then {}/s: {after} ({} ms windows{errors})",
            num(r.overload_per_sec),
            r.overload_ms,
            num(r.then_per_sec),
            r.window_ms
        )
    });
    CapacityRow {
        variant: c.variant.clone(),
        capacity,
        at_capacity,
        stress,
        search: search_text,
        recovery: recovery.unwrap_or_default(),
    }
}

fn p95(s: &Step) -> String {
    s.p95_us.map_or_else(|| "none (nothing succeeded)".to_owned(), |us| format!("{} ms", num(us / 1000.0)))
}
