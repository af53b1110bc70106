//! `cargo xtask history [DIR]`: every results.json under a directory (the reports folder, or
//! the one a nightly job keeps between runs) as a trend: per experiment, each variant's primary
//! metric at the last sweep point of the claim's case over time, with its CI, the change points
//! E-Divisive finds in it, and a table of those change points with the commit range in which
//! each happened. Written to `<DIR>/history/index.html`.

use crate::flags::default_reports_dir;
use crate::Failure;
use harness::changepoint::{self, ChangePoint};
use harness::report::{line_chart, Series};
use harness::results::RunResults;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn results_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth < 4 && p.file_name().is_some_and(|n| n != "history") {
            results_files(&p, out, depth + 1);
        } else if p.file_name().is_some_and(|n| n == "results.json") {
            out.push(p);
        }
    }
}

/// One point of a series: a run's median and interval.
struct Obs {
    run: usize,
    median: f64,
    low: f64,
    high: f64,
}

/// A run's position on the x axis: date and commit.
struct RunLabel {
    started: String,
    revision: String,
}

/// A series: (experiment, case, variant, point).
type Key = (String, String, String, String);
/// Series → observations in run order.
type SeriesMap = BTreeMap<Key, Vec<Obs>>;
/// Series → (metric, unit).
type Units = BTreeMap<Key, (String, String)>;

fn collect(runs: &[RunResults]) -> (SeriesMap, Units) {
    let mut series: SeriesMap = BTreeMap::new();
    let mut units = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for e in &run.experiments {
            let Some(point) = e.sweep.points.last() else {
                continue;
            };
            let case = e.headline.as_ref().map(|h| h.case.clone()).unwrap_or_default();
            for v in &e.variants {
                if let Some(s) = e.summary(&e.primary_metric.name, &case, &v.name, &point.label) {
                    let key = (e.id.clone(), case.clone(), v.name.clone(), point.label.clone());
                    units.insert(key.clone(), (e.primary_metric.name.clone(), e.primary_metric.unit.clone()));
                    series.entry(key).or_default().push(Obs {
                        run: i,
                        median: s.median,
                        low: s.ci_low,
                        high: s.ci_high,
                    });
                }
            }
        }
    }
    (series, units)
}

/// The history page's data (history.html, rendered by the report's templates).
#[derive(serde::Serialize)]
struct HistoryView {
    runs: usize,
    dir: String,
    first: String,
    last: String,
    change_points: Vec<ChangePointRow>,
    sections: Vec<SectionView>,
    skipped: Vec<String>,
}

#[derive(serde::Serialize)]
struct ChangePointRow {
    experiment: String,
    /// `case/variant`, or the variant alone.
    series: String,
    point: String,
    metric: String,
    /// `rev (date) → rev (date)`.
    between: String,
    change: String,
    p: String,
}

/// One experiment: its chart (or why none could be drawn).
#[derive(serde::Serialize)]
struct SectionView {
    id: String,
    metric: String,
    point: String,
    case: String,
    svg: Option<String>,
    chart_error: Option<String>,
}

pub fn history(dir: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let dir = dir.unwrap_or_else(default_reports_dir);
    if !dir.is_dir() {
        return Err(Failure::usage(format!("{} is not a directory of runs", dir.display())));
    }
    let mut files = Vec::new();
    results_files(&dir, &mut files, 0);
    let mut runs: Vec<RunResults> = Vec::new();
    let mut skipped = Vec::new();
    for f in &files {
        match harness::results::read(f) {
            Ok(r) if !runs.iter().any(|x| x.run_id == r.run_id) => runs.push(r),
            Ok(_) => {} // the same run kept twice (a baseline is a copy of a run)
            Err(e) => skipped.push(format!("{}: {e}", f.display())),
        }
    }
    if runs.is_empty() {
        return Err(Failure::usage(format!("no results.json under {}: run `cargo xtask bench` first", dir.display())));
    }
    runs.sort_by(|a, b| a.context.started_at.cmp(&b.context.started_at));
    let labels: Vec<RunLabel> = runs
        .iter()
        .map(|r| RunLabel {
            started: r.context.started_at.get(..16).unwrap_or(&r.context.started_at).replace('T', " "),
            revision: r.context.git_revision.clone().unwrap_or_else(|| "?".into()),
        })
        .collect();
    let (series, units) = collect(&runs);
    let mut sections = Vec::new();
    let mut change_points = Vec::new();
    let mut by_experiment: BTreeMap<&str, Vec<(&Key, &Vec<Obs>)>> = BTreeMap::new();
    for (k, v) in &series {
        by_experiment.entry(k.0.as_str()).or_default().push((k, v));
    }
    for (exp, list) in by_experiment {
        let runs_here: Vec<usize> = {
            let mut r: Vec<usize> = list.iter().flat_map(|(_, obs)| obs.iter().map(|o| o.run)).collect();
            r.sort();
            r.dedup();
            r
        };
        let x_labels: Vec<String> =
            runs_here.iter().map(|&i| format!("{} {}", &labels[i].started[5..], labels[i].revision)).collect();
        let mut chart_series = Vec::new();
        let (metric, unit) = units.get(list[0].0).cloned().unwrap_or_default();
        for (key, obs) in &list {
            let values: Vec<f64> = obs.iter().map(|o| o.median).collect();
            let cps: Vec<ChangePoint> = changepoint::detect(&values, changepoint::Options::default());
            for cp in &cps {
                let (before, after) = (&labels[obs[cp.index - 1].run], &labels[obs[cp.index].run]);
                change_points.push(ChangePointRow {
                    experiment: exp.to_owned(),
                    series: if key.1.is_empty() { key.2.clone() } else { format!("{}/{}", key.1, key.2) },
                    point: key.3.clone(),
                    metric: metric.clone(),
                    between: format!(
                        "{} ({}) → {} ({})",
                        before.revision, before.started, after.revision, after.started
                    ),
                    change: format!("{:+.1}%", cp.change_pct()),
                    p: format!("{:.3}", cp.p_value),
                });
            }
            let mut points = vec![None; runs_here.len()];
            for o in obs.iter() {
                let x = runs_here.iter().position(|&r| r == o.run).expect("collected");
                points[x] = Some((o.median, o.low, o.high));
            }
            let marks = if cps.is_empty() { String::new() } else { format!(" ({} change point(s))", cps.len()) };
            chart_series.push(Series { name: format!("{}{marks}", key.2), points });
        }
        let chart = line_chart(&x_labels, "run (date, commit)", &format!("{metric} ({unit})"), &chart_series);
        sections.push(SectionView {
            id: exp.to_owned(),
            metric,
            point: list[0].0 .3.clone(),
            case: list[0].0 .1.clone(),
            chart_error: chart.as_ref().err().map(|e| e.to_string()),
            svg: chart.ok(),
        });
    }
    let found = change_points.len();
    let page = harness::report::render_page(
        "history.html",
        &HistoryView {
            runs: runs.len(),
            dir: dir.display().to_string(),
            first: labels[0].started.clone(),
            last: labels[labels.len() - 1].started.clone(),
            change_points,
            sections,
            skipped,
        },
    )
    .map_err(|e| Failure::Run(format!("rendering the history page: {e:#}")))?;
    let out = dir.join("history").join("index.html");
    std::fs::create_dir_all(out.parent().expect("has a parent"))
        .map_err(|e| Failure::Run(format!("creating {}: {e}", out.display())))?;
    harness::results::write_atomic(&out, harness::redact::redact(&page).as_bytes())
        .map_err(|e| Failure::Run(format!("writing {}: {e}", out.display())))?;
    eprintln!("{} run(s), {found} change point(s)", runs.len());
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
