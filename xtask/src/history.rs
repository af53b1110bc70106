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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
        match harness::results::load(f) {
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
    let mut sections = String::new();
    let mut table = String::new();
    let mut found = 0;
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
                found += 1;
                let (before, after) = (&labels[obs[cp.index - 1].run], &labels[obs[cp.index].run]);
                table.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}{}</code> at {}</td><td>{}</td><td>{} ({}) → {} ({})</td><td class=\"num\">{:+.1}%</td><td class=\"num\">{:.3}</td></tr>\n",
                    esc(exp),
                    if key.1.is_empty() { String::new() } else { format!("{}/", esc(&key.1)) },
                    esc(&key.2),
                    esc(&key.3),
                    esc(&metric),
                    esc(&before.revision),
                    esc(&before.started),
                    esc(&after.revision),
                    esc(&after.started),
                    cp.change_pct(),
                    cp.p_value
                ));
            }
            let mut points = vec![None; runs_here.len()];
            for o in obs.iter() {
                let x = runs_here.iter().position(|&r| r == o.run).expect("collected");
                points[x] = Some((o.median, o.low, o.high));
            }
            let marks = if cps.is_empty() { String::new() } else { format!(" ({} change point(s))", cps.len()) };
            chart_series.push(Series { name: format!("{}{marks}", key.2), points });
        }
        let svg = line_chart(&x_labels, "run (date, commit)", &format!("{metric} ({unit})"), &chart_series)
            .unwrap_or_else(|e| format!("<p class=\"error\">chart failed: {}</p>", esc(&e.to_string())));
        let (case, point) = (&list[0].0 .1, &list[0].0 .3);
        sections.push_str(&format!(
            "<section><h2 id=\"{id}\">{id}</h2><p class=\"muted\">{metric} at the last sweep point ({point}){}; medians with 95% CIs</p><div class=\"chart\">{svg}</div></section>\n",
            if case.is_empty() { String::new() } else { format!(", case {}", esc(case)) },
            id = esc(exp),
            point = esc(point),
            metric = esc(&metric),
        ));
    }
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>perflab history</title><style>body{{font-family:sans-serif;max-width:70rem;margin:auto;padding:1rem}}.muted{{color:#666}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem}}.num{{text-align:right}}.chart svg{{max-width:100%;height:auto}}</style></head><body>
<h1>perflab history</h1>
<p>{n} run(s) from {dir}, {first} to {last}. Change points are found by E-Divisive with means (a permutation test at p ≤ 0.05 on each split, as Apache Otava and MongoDB's CI use it) in each series of medians.</p>
<h2>Change points</h2>
{cp_table}
{sections}
{skipped}
</body></html>
"#,
        n = runs.len(),
        dir = esc(&dir.display().to_string()),
        first = esc(&labels[0].started),
        last = esc(&labels[labels.len() - 1].started),
        cp_table = if found == 0 {
            "<p>None: no series moved beyond what its own noise explains.</p>".to_owned()
        } else {
            format!("<table><tr><th>experiment</th><th>series</th><th>metric</th><th>between</th><th>change</th><th>p</th></tr>\n{table}</table>")
        },
        skipped = if skipped.is_empty() {
            String::new()
        } else {
            format!(
                "<h2>Files left out</h2><ul>{}</ul>",
                skipped.iter().map(|s| format!("<li>{}</li>", esc(s))).collect::<String>()
            )
        },
    );
    let out = dir.join("history").join("index.html");
    std::fs::create_dir_all(out.parent().expect("has a parent"))
        .map_err(|e| Failure::Run(format!("creating {}: {e}", out.display())))?;
    harness::results::write_atomic(&out, harness::redact::redact(&page).as_bytes())
        .map_err(|e| Failure::Run(format!("writing {}: {e}", out.display())))?;
    eprintln!("{} run(s), {found} change point(s)", runs.len());
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
