//! The HTML report: tera templates and plotters charts, SVG inlined, so one file works offline.
//!
//! It reads results only (never the load engine or provisioning), and computes no number: every
//! median, interval and verdict is the analysis's, stored in results.json, so a results.json
//! copied from a CI job renders the same page anywhere. `view` turns an experiment's results
//! into plain serializable data (`report_context` can be dumped as JSON for debugging),
//! `charts` draws, `format` writes numbers.

mod capacity;
mod charts;
mod format;
mod markdown;
mod profiles;
mod view;

pub use charts::{line_chart, Series};
pub use format::num;
pub use markdown::render as render_markdown;
pub use view::{ExperimentView, SummaryRow, VerdictView};

use crate::results::{ExperimentStatus, RunResults};
use format::bytes;
use serde::Serialize;

/// The pages perflab writes, one family: base.html's layout and stylesheet, each page a block
/// in it, and one escaping (tera's, of every value it substitutes; a chart goes in as SVG
/// through `safe`).
const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("../../templates/base.html.tera")),
    ("report.html", include_str!("../../templates/report.html.tera")),
    ("compare.html", include_str!("../../templates/compare.html.tera")),
    ("history.html", include_str!("../../templates/history.html.tera")),
];

/// Render page `name` (report.html, compare.html or history.html) from `ctx`.
pub fn render_page(name: &str, ctx: &impl Serialize) -> anyhow::Result<String> {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates(TEMPLATES)?;
    Ok(tera.render(name, &tera::Context::from_serialize(ctx)?)?)
}

#[derive(Debug, Serialize)]
pub struct ReportContext {
    pub run: RunView,
    /// The first screen: one row per experiment, the claim and what the run found of it.
    pub summary: Vec<SummaryRow>,
    /// How many rows say each finding, in the summary's order.
    pub tally: Vec<(String, usize)>,
    /// The same at a glance: per finding, its class and the experiments that have it.
    pub glance: Vec<Glance>,
    /// The experiments with a Go original: the same finding in Go and Rust, or not.
    pub go: GoAgreement,
    /// The guide's targets checked in the whole run, and how many failed.
    pub targets_checked: usize,
    pub targets_failed: usize,
    /// Where the run's time went, per experiment and in all (empty for older files).
    pub time: Vec<TimeRow>,
    pub experiments: Vec<ExperimentView>,
}

/// One experiment's time, in seconds as shown.
#[derive(Debug, Serialize)]
pub struct TimeRow {
    pub id: String,
    pub wall: String,
    pub setup: String,
    pub samples: String,
    /// How many samples, each's time, and of it the fixed cost beyond warm-up and measurement.
    pub per_sample: String,
    pub capacity: String,
    pub other: String,
}

/// Where the time went: one row per experiment that recorded it, then the total.
fn time_rows(results: &RunResults) -> Vec<TimeRow> {
    let s = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
    let mut total = crate::results::TimeSpent::default();
    let mut wall = 0;
    let mut rows: Vec<TimeRow> = results
        .experiments
        .iter()
        .filter_map(|e| {
            let t = e.time.as_ref()?;
            total.setup_ms += t.setup_ms;
            total.samples_ms += t.samples_ms;
            total.samples += t.samples;
            total.capacity_ms += t.capacity_ms;
            total.after_ms += t.after_ms;
            wall += e.wall_time_ms;
            Some(TimeRow {
                id: e.id.clone(),
                wall: s(e.wall_time_ms),
                setup: s(t.setup_ms),
                samples: s(t.samples_ms),
                per_sample: match t.fixed_per_sample_ms() {
                    Some(fixed) => format!(
                        "{} × {:.2} s (set {:.2} s, fixed cost {:.2} s)",
                        t.samples,
                        t.samples_ms as f64 / 1000.0 / f64::from(t.samples),
                        t.set_per_sample_ms as f64 / 1000.0,
                        fixed / 1000.0
                    ),
                    None => "none".into(),
                },
                capacity: s(t.capacity_ms),
                other: s(t.after_ms),
            })
        })
        .collect();
    if rows.len() > 1 {
        rows.push(TimeRow {
            id: "all".into(),
            wall: s(wall),
            setup: s(total.setup_ms),
            samples: s(total.samples_ms),
            per_sample: format!("{} samples", total.samples),
            capacity: s(total.capacity_ms),
            other: s(total.after_ms),
        });
    }
    rows
}

/// Where the guide's Go originals and the Rust ports reach the same finding, where they reach
/// different ones, and where either decided nothing (or failed): no agreement to read there.
#[derive(Debug, Default, Serialize)]
pub struct GoAgreement {
    pub same: Vec<String>,
    pub differ: Vec<String>,
    pub undecided: Vec<String>,
    /// Some experiment has a Go original's finding.
    pub any: bool,
}

fn go_agreement(summary: &[SummaryRow]) -> GoAgreement {
    let mut go = GoAgreement::default();
    for r in summary.iter().filter(|r| !r.go_finding.is_empty()) {
        go.any = true;
        let undecided = |f: &str| matches!(f, "inconclusive" | "failed" | "no claim tested");
        let bucket = if undecided(&r.finding) || undecided(&r.go_finding) {
            &mut go.undecided
        } else if r.go_finding == r.finding {
            &mut go.same
        } else {
            &mut go.differ
        };
        bucket.push(r.id.clone());
    }
    go
}

#[derive(Debug, Serialize)]
pub struct Glance {
    pub finding: String,
    /// What it means for a reader deciding.
    pub meaning: String,
    pub class: String,
    pub ids: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub complete: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub git: String,
    pub host: String,
    pub rustc: String,
    pub arguments: String,
    pub settings: String,
    pub servers: Vec<(String, String)>,
    pub failed: usize,
}

/// Render the whole page.
/// Render the whole page; with the run's directory, the flame graphs of `bench --profile` are
/// embedded from the files beside results.json.
pub fn render(results: &RunResults, run_dir: Option<&std::path::Path>) -> anyhow::Result<String> {
    render_page("report.html", &report_context(results, run_dir))
}

/// The data the template sees.
pub fn report_context(results: &RunResults, run_dir: Option<&std::path::Path>) -> ReportContext {
    let mut ctx = report_context_summary(results);
    ctx.experiments = results.experiments.iter().map(|e| view::experiment_view(e, run_dir)).collect();
    ctx
}

/// The run and its summary, without the experiments' sections (no chart drawn).
fn report_context_summary(results: &RunResults) -> ReportContext {
    let c = &results.context;
    let h = &c.host;
    let mut servers = Vec::new();
    servers.push(("provider".to_owned(), c.servers.provider.clone()));
    let kinds =
        [("PostgreSQL", &c.servers.postgres), ("Redis", &c.servers.redis), ("Redis Cluster", &c.servers.redis_cluster)];
    for (name, s) in kinds {
        if let Some(s) = s {
            let settings: Vec<String> = s.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            servers.push((name.to_owned(), format!("{} at {} ({})", s.version, s.url, settings.join(", "))));
        }
    }
    for r in &c.resumed {
        servers.push((
            "resumed".to_owned(),
            format!(
                "at {} after an interruption: {} experiment(s) kept, those after them measured on servers started afresh",
                r.at, r.kept
            ),
        ));
    }
    let s = &c.settings;
    let run = RunView {
        run_id: results.run_id.clone(),
        complete: results.complete,
        started_at: c.started_at.clone(),
        finished_at: c.finished_at.clone(),
        git: match (&c.git_revision, c.git_dirty) {
            (Some(r), Some(true)) => format!("{r} (with uncommitted changes)"),
            (Some(r), _) => r.clone(),
            (None, _) => "not a git checkout".into(),
        },
        host: format!(
            "{} · {} cores · {} · Linux {}",
            h.cpu_model.as_deref().unwrap_or("unknown CPU"),
            h.cores,
            h.memory_bytes.map(bytes).unwrap_or_else(|| "? memory".into()),
            h.kernel.as_deref().unwrap_or("?")
        ),
        rustc: c.rustc.clone().unwrap_or_else(|| "unknown".into()),
        arguments: c.arguments.join(" "),
        settings: format!(
            "{} mode · {} · {} ms warm-up + {} ms per sample{}{}",
            if s.quick { "quick" } else { "full" },
            if s.min_rounds >= 2 && s.min_rounds < s.repetitions {
                format!("{} to {} rounds per point", s.min_rounds, s.repetitions)
            } else {
                format!("{} rounds per point", s.repetitions)
            },
            s.warmup.as_millis(),
            s.duration.as_millis(),
            s.concurrency.map(|n| format!(" · concurrency {n}")).unwrap_or_default(),
            if s.sets.is_empty() {
                String::new()
            } else {
                format!(" · {}", s.sets.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            }
        ),
        servers,
        failed: results.experiments.iter().filter(|e| e.status != ExperimentStatus::Ok).count(),
    };
    let summary: Vec<SummaryRow> = results.experiments.iter().map(view::summary_row).collect();
    // The claims to beat a baseline (the guide's techniques: what to adopt), then the claims
    // to keep up (the calibrations: whether the lab's numbers can be trusted; a balancer
    // against the best alternative), then what decided nothing.
    const FINDINGS: [(&str, &str); 8] = [
        ("holds", "worth adopting as measured"),
        ("holds in part", "worth it where its verdicts say so, not everywhere"),
        ("does not hold", "not worth it as the guide has it"),
        (
            "keeps up",
            "within its smallest effect that matters of what it is measured against, or faster, at every point",
        ),
        ("keeps up in part", "within its smallest effect of what it is measured against at some points, not all"),
        ("falls behind", "short of what it is measured against by more than its smallest effect: see where in its row"),
        ("inconclusive", "no decision: more or longer repetitions"),
        ("failed", "the experiment did not finish: see its section"),
    ];
    let tally = FINDINGS
        .iter()
        .map(|(f, _)| ((*f).to_owned(), summary.iter().filter(|r| r.finding == *f).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    let glance = FINDINGS
        .iter()
        .filter_map(|(f, meaning)| {
            let rows: Vec<&SummaryRow> = summary.iter().filter(|r| r.finding == *f).collect();
            let class = rows.first()?.class.clone();
            let ids = rows.iter().map(|r| r.id.clone()).collect();
            Some(Glance { finding: (*f).to_owned(), meaning: (*meaning).to_owned(), class, ids })
        })
        .collect();
    let targets_checked = summary.iter().map(|r| r.targets_checked).sum();
    let targets_failed = summary.iter().map(|r| r.targets_failed).sum();
    let time = time_rows(results);
    let go = go_agreement(&summary);
    ReportContext { run, summary, tally, glance, go, targets_checked, targets_failed, time, experiments: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go and Rust agree only where both decided: an inconclusive or failed side is no
    /// agreement, and without a Go original there is no line.
    #[test]
    fn go_and_rust_agree_only_where_both_decided() {
        let row = |id: &str, rust: &str, go: &str| super::SummaryRow {
            id: id.into(),
            claim: String::new(),
            finding: rust.into(),
            class: String::new(),
            go_finding: go.into(),
            go_class: String::new(),
            go_reason: String::new(),
            reason: String::new(),
            headline: String::new(),
            capacity: String::new(),
            broken_checks: 0,
            targets_checked: 0,
            targets_failed: 0,
        };
        let rows = [
            row("a", "holds", "holds"),
            row("b", "holds", "holds in part"),
            row("c", "inconclusive", "inconclusive"),
            row("d", "holds", "inconclusive"),
            row("e", "failed", "failed"),
            row("f", "holds", ""),
        ];
        let go = super::go_agreement(&rows);
        assert_eq!(go.same, ["a"]);
        assert_eq!(go.differ, ["b"]);
        assert_eq!(go.undecided, ["c", "d", "e"]);
        assert!(go.any);
        assert!(!super::go_agreement(&rows[5..]).any, "no Go original, no line");
    }

    /// Every string a results file carries reaches the page escaped: a claim, a variant name,
    /// a note or an error kind cannot inject markup (tera escapes what it substitutes into an
    /// .html template; charts draw names as SVG text, which plotters escapes).
    #[test]
    fn strings_from_a_results_file_are_html_escaped() {
        let mut r: RunResults = serde_json::from_str(include_str!("../../tests/data/minimal_run.json")).unwrap();
        let evil = "<script>alert('x')</script>";
        r.run_id = evil.into();
        for e in &mut r.experiments {
            e.claim = evil.into();
            e.title = evil.into();
            e.notes.push(evil.into());
            for v in &mut e.variants {
                v.description = evil.into();
            }
            for s in &mut e.samples {
                s.errors.insert(evil.into(), 1);
            }
        }
        let html = render(&r, None).unwrap();
        assert!(!html.contains("<script"), "raw markup in the page");
        assert!(html.contains("&lt;script&gt;"), "the string is shown, escaped");
        let md = render_markdown(&r);
        assert!(!md.contains("<script"), "raw markup in the Markdown");
    }

    /// The summary's words follow the claim: a technique that is worse does not hold; a
    /// calibration that is worse falls behind, and is listed apart from the techniques.
    #[test]
    fn a_claim_to_keep_up_reads_as_one() {
        use crate::results::{ClaimKind, ExperimentResult, Finding, FindingKind};
        let mut r: RunResults = serde_json::from_str(include_str!("../../tests/data/minimal_run.json")).unwrap();
        let e = r.experiments[0].clone();
        let finding = |kind, claim| Finding {
            kind,
            claim,
            variant: "a".into(),
            baseline: "b".into(),
            supported: vec![],
            contradicted: vec!["x".into()],
            no_effect: vec![],
            undecided: vec![],
            broken_checks: 0,
            reason: String::new(),
            controls: vec![],
            control_differs: false,
        };
        r.experiments = [
            ("technique", FindingKind::DoesNotHold, ClaimKind::Beats),
            ("calibration", FindingKind::DoesNotHold, ClaimKind::KeepsUp),
            ("balancer", FindingKind::Holds, ClaimKind::KeepsUp),
        ]
        .into_iter()
        .map(|(id, kind, claim)| ExperimentResult { id: id.into(), finding: Some(finding(kind, claim)), ..e.clone() })
        .collect();
        let ctx = report_context_summary(&r);
        let words: Vec<&str> = ctx.summary.iter().map(|row| row.finding.as_str()).collect();
        assert_eq!(words, ["does not hold", "falls behind", "keeps up"]);
        let glance: Vec<(&str, Vec<String>)> = ctx.glance.iter().map(|g| (g.finding.as_str(), g.ids.clone())).collect();
        assert_eq!(
            glance,
            [
                ("does not hold", vec!["technique".to_owned()]),
                ("keeps up", vec!["balancer".to_owned()]),
                ("falls behind", vec!["calibration".to_owned()])
            ]
        );
    }
}
