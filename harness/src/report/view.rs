//! The report's view model: one experiment's results as plain data for the template, every
//! number taken from what the analysis stored.

use super::charts;
use super::format::{bytes, num};
use crate::results::{Better, Check, ExperimentResult, ExperimentStatus, VerdictKind};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct ExperimentView {
    pub id: String,
    pub title: String,
    pub guide_section: String,
    pub claim: String,
    pub failed: Option<String>,
    pub headline: Option<VerdictView>,
    /// One chart, table of medians and list of verdicts per case (one, unnamed, without cases).
    pub cases: Vec<CaseView>,
    pub spectrum_svg: Option<String>,
    pub metric: String,
    pub axis: String,
    pub points: Vec<String>,
    pub variants: Vec<(String, String)>,
    /// Checks with a right answer (rows missed, …); failures also show next to the headline.
    pub checks: Vec<CheckView>,
    pub failed_checks: Vec<String>,
    /// Informational observations (rows scanned, …), one table per kind: variant × point.
    pub observations: Vec<ObservationTable>,
    /// The other metrics the samples carry (allocations, achieved rate, …): the median over
    /// repetitions, variant × point.
    pub metric_tables: Vec<ObservationTable>,
    /// Micro experiments: allocations and instructions per call against the sweep, in the
    /// claim's case (title, chart).
    pub cost_charts: Vec<(String, String)>,
    pub resources: Vec<ResourceRow>,
    /// The guide's targets this experiment is held to: variant × point rows, a column each.
    pub targets: Option<TargetTable>,
    /// The capacity search and stress, where the experiment ran one.
    pub capacity: Option<super::capacity::CapacityView>,
    /// `bench --profile`: where each variant's CPU went.
    pub profiles: Vec<super::profiles::ProfileView>,
    /// `bench --profile` of a micro experiment: (variant, where, file) of dhat's heap profiles.
    pub heap_profiles: Vec<(String, String, String)>,
    pub errors: Vec<String>,
    /// Samples left out of every verdict, with why.
    pub invalid: Vec<String>,
    /// Per point: the rounds it ran, why it stopped, and what its claim comparison could
    /// have detected; and the sequential plan in words (empty: fixed rounds).
    pub rounds: Vec<String>,
    pub plan: String,
    /// The rule the finding was decided by: the smallest effect that matters and why.
    pub rule: String,
    /// What each control point said (points where the technique cannot act), and whether one
    /// differs.
    pub controls: Vec<String>,
    pub control_differs: bool,
    pub notes: Vec<String>,
    pub wall_time_s: String,
}

/// One case of an experiment: its chart, medians and verdicts.
#[derive(Debug, Serialize)]
pub struct CaseView {
    /// Empty for an experiment without cases.
    pub name: String,
    pub description: String,
    pub chart_svg: String,
    pub table: Vec<TableRow>,
    pub verdicts: Vec<VerdictView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerdictView {
    pub class: String,
    pub sentence: String,
}

#[derive(Debug, Serialize)]
pub struct TableRow {
    pub variant: String,
    pub cells: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    pub variant: String,
    pub point: String,
    pub name: String,
    pub value: String,
    pub class: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct ObservationTable {
    pub name: String,
    pub detail: String,
    /// Column headings: one per sweep point, or a single "value" for observations made once
    /// per variant rather than per point.
    pub columns: Vec<String>,
    pub rows: Vec<TableRow>,
}

#[derive(Debug, Serialize)]
pub struct ResourceRow {
    pub variant: String,
    pub point: String,
    pub harness_cpu: String,
    pub server_cpu: String,
    pub harness_rss: String,
    pub server_rss: String,
}

fn metric_tables(e: &ExperimentResult, axis: &str) -> Vec<ObservationTable> {
    let mut tables = Vec::new();
    for m in e.metrics.iter().filter(|m| m.name != e.primary_metric.name) {
        if !e.samples.iter().any(|s| s.metrics.contains_key(&m.name)) {
            continue;
        }
        let rows = trials(e)
            .map(|(case, v)| TableRow {
                variant: row_label(case, v),
                cells: e
                    .sweep
                    .points
                    .iter()
                    .map(|p| e.summary(&m.name, case, v, &p.label).map(|s| num(s.median)).unwrap_or_else(|| "–".into()))
                    .collect(),
            })
            .collect();
        tables.push(ObservationTable {
            name: format!("{} ({})", m.name, m.unit),
            detail: format!(
                "{}; {} is better",
                m.description,
                if m.better == Better::Lower { "lower" } else { "higher" }
            ),
            columns: e.sweep.points.iter().map(|p| format!("{axis} = {}", p.label)).collect(),
            rows,
        });
    }
    tables
}

/// What a call costs besides time, where the micro engine measured it: heap allocations
/// (dhat) and instructions (callgrind, with --instructions).
const COST_METRICS: [&str; 3] = ["allocs_per_call", "allocs_per_item", "instructions_per_call"];

fn cost_charts(e: &ExperimentResult) -> Vec<(String, String)> {
    let case = e.headline.as_ref().map_or("", |h| h.case.as_str());
    e.metrics
        .iter()
        .filter(|m| COST_METRICS.contains(&m.name.as_str()) && m.name != e.primary_metric.name)
        .filter(|m| e.summaries.iter().any(|s| s.metric == m.name))
        .map(|m| {
            let in_case = if case.is_empty() { String::new() } else { format!(" in {case}") };
            (format!("{}{in_case}", m.description), charts::metric_chart(e, case, m))
        })
        .collect()
}

fn verdict_class(k: VerdictKind) -> &'static str {
    match k {
        VerdictKind::Better => "better",
        VerdictKind::Worse => "worse",
        VerdictKind::NoDifference => "same",
        VerdictKind::Inconclusive => "inconclusive",
        VerdictKind::Missing => "missing",
    }
}

pub fn experiment_view(e: &ExperimentResult, run_dir: Option<&std::path::Path>) -> ExperimentView {
    let metric = &e.primary_metric;
    // The headline is the one analysis chose (the claim's comparison); every point's verdict
    // is listed below it.
    let headline = e
        .headline
        .as_ref()
        .map(|c| VerdictView { class: verdict_class(c.verdict).into(), sentence: c.sentence.clone() });
    let points: Vec<String> = e.sweep.points.iter().map(|p| p.label.clone()).collect();
    let descriptions: Vec<(&str, &str)> = if e.cases.is_empty() {
        vec![("", "")]
    } else {
        e.cases.iter().map(|c| (c.name.as_str(), c.description.as_str())).collect()
    };
    let cases = descriptions.into_iter().map(|(case, description)| case_view(e, case, description)).collect();
    let checks = e
        .checks
        .iter()
        .filter(|c| c.ok.is_some())
        .map(|c| CheckView {
            variant: row_label(&c.case, &c.variant),
            point: c.point.clone().unwrap_or_default(),
            name: c.name.clone(),
            value: num(c.value),
            class: if c.ok == Some(true) { "better" } else { "worse" }.into(),
            detail: c.detail.clone(),
        })
        .collect();
    let failed_checks = e
        .checks
        .iter()
        .filter(|c| c.ok == Some(false))
        .map(|c| {
            let at = c.point.as_ref().map(|p| format!(" at {} {p}", e.sweep.axis)).unwrap_or_default();
            format!("{}{at}: {} = {} ({})", row_label(&c.case, &c.variant), c.name, num(c.value), c.detail)
        })
        .collect();
    let axis = format!(
        "{}{}",
        e.sweep.axis,
        if e.sweep.unit.is_empty() { String::new() } else { format!(" ({})", e.sweep.unit) }
    );
    let mut observations: Vec<ObservationTable> = Vec::new();
    for c in e.checks.iter().filter(|c| c.ok.is_none()) {
        if observations.iter().any(|t| t.name == c.name) {
            continue;
        }
        let same = |x: &&Check| x.ok.is_none() && x.name == c.name;
        let per_point = e.checks.iter().filter(same).any(|x| x.point.is_some());
        let (columns, points): (Vec<String>, Vec<Option<&str>>) = if per_point {
            (
                e.sweep.points.iter().map(|p| format!("{} = {}", axis, p.label)).collect(),
                e.sweep.points.iter().map(|p| Some(p.label.as_str())).collect(),
            )
        } else {
            (vec!["value".to_owned()], vec![None])
        };
        // Rows for the trials that have this observation (a case's own checks in its rows).
        // A check made once for all cases has an empty case: its rows come first.
        let mut keys: Vec<(&str, &str)> = e.variants.iter().map(|v| ("", v.name.as_str())).collect();
        keys.extend(trials(e).filter(|(case, _)| !case.is_empty()));
        let rows = keys
            .into_iter()
            .filter(|(case, v)| e.checks.iter().filter(same).any(|x| x.case == *case && x.variant == *v))
            .map(|(case, v)| TableRow {
                variant: row_label(case, v),
                cells: points
                    .iter()
                    .map(|p| {
                        e.checks
                            .iter()
                            .filter(same)
                            .find(|x| x.case == case && x.variant == v && x.point.as_deref() == *p)
                            .map(|x| x.text.clone().unwrap_or_else(|| num(x.value)))
                            .unwrap_or_else(|| "–".into())
                    })
                    .collect(),
            })
            .collect();
        observations.push(ObservationTable { name: c.name.clone(), detail: c.detail.clone(), columns, rows });
    }
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in &e.samples {
        for (k, v) in &s.errors {
            *errors.entry(format!("{} / {}: {k}", row_label(&s.case, &s.variant), s.point)).or_default() += v;
        }
    }
    let invalid = e
        .samples
        .iter()
        .filter_map(|s| {
            s.invalid.as_ref().map(|why| {
                let who = row_label(&s.case, &s.variant);
                format!("{who} at {} {}, repetition {}: {why}", e.sweep.axis, s.point, s.repetition + 1)
            })
        })
        .collect();
    let metric_tables = metric_tables(e, &axis);
    ExperimentView {
        id: e.id.clone(),
        title: e.title.clone(),
        guide_section: e.guide_section.clone(),
        claim: e.claim.clone(),
        failed: match &e.status {
            ExperimentStatus::Ok => None,
            ExperimentStatus::Failed { error } => Some(error.clone()),
        },
        headline,
        cases,
        spectrum_svg: charts::spectrum_chart(e, e.headline.as_ref().map_or("", |h| h.case.as_str())),
        metric: format!(
            "{} ({}, {} is better){}",
            metric.name,
            metric.unit,
            if metric.better == Better::Lower { "lower" } else { "higher" },
            if metric.description.is_empty() { String::new() } else { format!(": {}", metric.description) }
        ),
        axis,
        points,
        variants: e
            .variants
            .iter()
            .map(|v| {
                let base = v
                    .baseline
                    .as_ref()
                    .map(|b| format!(" (compared with {b})"))
                    .unwrap_or_else(|| " (baseline)".into());
                (v.name.clone(), format!("{}{base}", v.description))
            })
            .collect(),
        checks,
        failed_checks,
        metric_tables,
        cost_charts: cost_charts(e),
        observations,
        resources: resource_rows(e),
        targets: target_table(e),
        capacity: super::capacity::view(e),
        profiles: super::profiles::views(e, run_dir),
        heap_profiles: e
            .heap_profiles
            .iter()
            .map(|h| {
                let in_case = if h.case.is_empty() { String::new() } else { format!("{} · ", h.case) };
                (h.variant.clone(), format!("{in_case}{} {}", e.sweep.axis, h.point), h.file.clone())
            })
            .collect(),
        errors: errors.into_iter().map(|(k, v)| format!("{k} ×{v}")).collect(),
        invalid,
        rounds: e
            .rounds
            .iter()
            .map(|r| {
                let why = match r.stop {
                    crate::results::StopReason::Decided => "decided",
                    crate::results::StopReason::Cap => "cap reached, undecided",
                    crate::results::StopReason::Fixed => "fixed",
                    crate::results::StopReason::Budget => "time budget spent, undecided",
                };
                let could = r.detectable.map(|d| format!("; could tell ±{}%", num(d * 100.0))).unwrap_or_default();
                let disturbed = if r.disturbed > 0 {
                    format!("; {} disturbed by other processes, left out", r.disturbed)
                } else {
                    String::new()
                };
                format!("{} {}: {} rounds ({why}{could}{disturbed})", e.sweep.axis, r.point, r.rounds)
            })
            .collect(),
        plan: e
            .sequential
            .as_ref()
            .map(|p| {
                format!(
                    "Rounds: from {} to {} per point, looked at after {} rounds, each look at {}% confidence (α = 5 % split over the looks{}); a point stops at the first look where the claim's comparison is decided: a difference, or a CI within ±{}% (no effect that matters). Estimates from points that stopped early lean high.",
                    p.min_rounds,
                    p.cap,
                    p.looks.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", "),
                    num((1.0 - p.alpha_per_look) * 100.0),
                    if p.family > 1 { format!(", and a difference over the claim's {} points", p.family) } else { String::new() },
                    num(((p.band - 1.0) * 1000.0).round() / 10.0)
                )
            })
            .unwrap_or_default(),
        rule: e
            .rule
            .as_ref()
            .map(|r| format!("Smallest effect that matters: {} ({}).", r.percent(), r.why))
            .unwrap_or_default(),
        controls: e.finding.as_ref().map(|f| f.controls.clone()).unwrap_or_default(),
        control_differs: e.finding.as_ref().is_some_and(|f| f.control_differs),
        notes: e.notes.clone(),
        wall_time_s: format!("{:.1}", e.wall_time_ms as f64 / 1000.0),
    }
}

/// Every case × variant of `e`, in declaration order.
fn trials(e: &ExperimentResult) -> impl Iterator<Item = (&str, &str)> {
    let cases = e.case_names();
    cases.into_iter().flat_map(move |c| e.variants.iter().map(move |v| (c, v.name.as_str())))
}

/// How a table names a variant in a case: `by-username · guide`, or just the variant.
fn row_label(case: &str, variant: &str) -> String {
    if case.is_empty() {
        variant.to_owned()
    } else {
        format!("{case} · {variant}")
    }
}

/// One case's chart, medians and verdicts.
fn case_view(e: &ExperimentResult, case: &str, description: &str) -> CaseView {
    let analyses: Vec<&crate::results::PointAnalysis> = e.analysis.iter().filter(|p| p.case == case).collect();
    let table = e
        .variants
        .iter()
        .map(|v| TableRow {
            variant: v.name.clone(),
            cells: analyses
                .iter()
                .map(|p| {
                    p.variants
                        .iter()
                        .find(|s| s.variant == v.name)
                        .map(|s| format!("{} [{}–{}] n={}", num(s.median), num(s.ci_low), num(s.ci_high), s.n))
                        .unwrap_or_else(|| "–".into())
                })
                .collect(),
        })
        .collect();
    let verdicts = analyses
        .iter()
        .flat_map(|p| p.comparisons.iter())
        .map(|c| VerdictView { class: verdict_class(c.verdict).into(), sentence: c.sentence.clone() })
        .collect();
    CaseView {
        name: case.to_owned(),
        description: description.to_owned(),
        chart_svg: charts::main_chart(e, case),
        table,
        verdicts,
    }
}

fn resource_rows(e: &ExperimentResult) -> Vec<ResourceRow> {
    let mut rows = Vec::new();
    for p in &e.sweep.points {
        for (case, v) in trials(e) {
            let med = |metric: &str| e.summary(metric, case, v, &p.label).map(|s| s.median);
            let Some(wall) = med("wall_s") else {
                continue;
            };
            let pct = |cpu: Option<f64>| match cpu {
                Some(c) if wall > 0.0 => format!("{:.2} s ({:.0}% of a core)", c, 100.0 * c / wall),
                Some(c) => format!("{c:.2} s"),
                None => "–".into(),
            };
            let size = |b: Option<f64>| b.map(|b| bytes(b as u64)).unwrap_or_else(|| "–".into());
            rows.push(ResourceRow {
                variant: row_label(case, v),
                point: p.label.clone(),
                harness_cpu: pct(med("harness_cpu_s")),
                server_cpu: pct(med("server_cpu_s")),
                harness_rss: size(med("harness_peak_rss_bytes")),
                server_rss: size(med("server_rss_bytes")),
            });
        }
    }
    rows
}

/// One row of the summary the report opens with: an experiment's claim and what the run found.
#[derive(Debug, Serialize)]
pub struct SummaryRow {
    pub id: String,
    pub claim: String,
    /// "holds", "holds in part", "does not hold", "inconclusive" or "failed"; for a claim to
    /// keep up (a calibration, a balancer against the best alternative) "keeps up", "keeps up
    /// in part" and "falls behind" instead of the first three: such a claim is not a technique
    /// to adopt, and the words say what was measured.
    pub finding: String,
    pub class: String,
    /// The same claim on the guide's Go original, in the same words (empty: none ran).
    pub go_finding: String,
    pub go_class: String,
    pub go_reason: String,
    pub reason: String,
    /// The headline verdict (ratio, CI, p, medians), as the experiment's section shows it.
    pub headline: String,
    /// The claim variant's capacity beside its baseline's, where a capacity search ran.
    pub capacity: String,
    /// Correctness checks that failed, any variant.
    pub broken_checks: usize,
    /// The guide's targets checked (variant × point × target) and how many failed.
    pub targets_checked: usize,
    pub targets_failed: usize,
}

/// A finding in the summary's words, and its class.
fn finding_words(finding: Option<&crate::results::Finding>, failed: bool) -> (&'static str, &'static str) {
    use crate::results::FindingKind;
    match (finding, failed) {
        (_, true) => ("failed", "worse"),
        (Some(f), _) => {
            let keeps_up = f.claim == crate::results::ClaimKind::KeepsUp;
            match (f.kind, keeps_up) {
                (FindingKind::Holds, false) => ("holds", "better"),
                (FindingKind::HoldsInPart, false) => ("holds in part", "inconclusive"),
                (FindingKind::DoesNotHold, false) => ("does not hold", "worse"),
                (FindingKind::Holds, true) => ("keeps up", "better"),
                (FindingKind::HoldsInPart, true) => ("keeps up in part", "inconclusive"),
                (FindingKind::DoesNotHold, true) => ("falls behind", "worse"),
                (FindingKind::Inconclusive, _) => ("inconclusive", "same"),
            }
        }
        (None, _) => ("no claim tested", "same"),
    }
}

pub fn summary_row(e: &ExperimentResult) -> SummaryRow {
    let failed = matches!(e.status, crate::results::ExperimentStatus::Failed { .. });
    let (finding, class) = finding_words(e.finding.as_ref(), failed);
    let (go_finding, go_class) = match &e.go_finding {
        Some(f) => finding_words(Some(f), failed),
        None => ("", ""),
    };
    SummaryRow {
        id: e.id.clone(),
        claim: e.claim.clone(),
        finding: finding.into(),
        class: class.into(),
        go_finding: go_finding.into(),
        go_class: go_class.into(),
        go_reason: e.go_finding.as_ref().map(|f| f.reason.clone()).unwrap_or_default(),
        reason: e.finding.as_ref().map(|f| f.reason.clone()).unwrap_or_default(),
        headline: e.headline.as_ref().map(|h| h.sentence.clone()).unwrap_or_default(),
        capacity: super::capacity::claim_line(e).unwrap_or_default(),
        broken_checks: e.checks.iter().filter(|c| c.ok == Some(false)).count(),
        targets_checked: e.targets.len(),
        targets_failed: e.targets.iter().filter(|t| !t.pass).count(),
    }
}

/// The guide's targets of one experiment as a table.
#[derive(Debug, Serialize)]
pub struct TargetTable {
    /// Each target as the guide states it, with its k6 form.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<TargetRow>,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
pub struct TargetRow {
    pub variant: String,
    pub point: String,
    /// (value with unit and pass or fail, class), in column order; empty where not measured.
    pub cells: Vec<(String, String)>,
}

fn target_table(e: &ExperimentResult) -> Option<TargetTable> {
    if e.targets.is_empty() {
        return None;
    }
    let mut columns: Vec<(String, String)> = Vec::new();
    for t in &e.targets {
        if !columns.iter().any(|(c, _)| *c == t.target) {
            columns.push((t.target.clone(), t.k6.clone()));
        }
    }
    let mut rows: Vec<TargetRow> = Vec::new();
    for t in &e.targets {
        let variant = row_label(&t.case, &t.variant);
        let i = match rows.iter().position(|r| r.variant == variant && r.point == t.point) {
            Some(i) => i,
            None => {
                rows.push(TargetRow {
                    variant,
                    point: t.point.clone(),
                    cells: vec![(String::new(), String::new()); columns.len()],
                });
                rows.len() - 1
            }
        };
        let col = columns.iter().position(|(c, _)| *c == t.target).unwrap_or(0);
        let mark = if t.pass { "pass" } else { "FAIL" };
        rows[i].cells[col] =
            (format!("{} {} · {mark}", num(t.value), t.unit), if t.pass { "better" } else { "worse" }.into());
    }
    Some(TargetTable { columns, rows, failed: e.targets.iter().filter(|t| !t.pass).count() })
}
