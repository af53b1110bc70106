//! The HTML report: tera templates and plotters charts, SVG inlined, so one file works offline.
//!
//! It reads results only (never the load engine or provisioning): a results.json copied from a
//! CI job renders the same page anywhere. The template context is plain serializable data and
//! can be dumped as JSON for debugging (`report_context`).

use crate::results::{
    spectrum_metric, Better, Check, ExperimentResult, ExperimentStatus, MetricSummary, RunResults, VerdictKind,
};
use plotters::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("../templates/report.html.tera");
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

#[derive(Debug, Serialize)]
pub struct ReportContext {
    pub run: RunView,
    pub experiments: Vec<ExperimentView>,
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

#[derive(Debug, Serialize)]
pub struct ExperimentView {
    pub id: String,
    pub title: String,
    pub guide_section: String,
    pub claim: String,
    pub failed: Option<String>,
    pub verdicts: Vec<VerdictView>,
    pub headline: Option<VerdictView>,
    pub chart_svg: String,
    pub spectrum_svg: Option<String>,
    pub metric: String,
    pub axis: String,
    pub points: Vec<String>,
    pub table: Vec<TableRow>,
    pub variants: Vec<(String, String)>,
    /// Checks with a right answer (rows missed, …); failures also show next to the headline.
    pub checks: Vec<CheckView>,
    pub failed_checks: Vec<String>,
    /// Informational observations (rows scanned, …), one table per kind: variant × point.
    pub observations: Vec<ObservationTable>,
    /// The other metrics the samples carry (allocations, achieved rate, …): the median over
    /// repetitions, variant × point.
    pub metric_tables: Vec<ObservationTable>,
    pub resources: Vec<ResourceRow>,
    pub errors: Vec<String>,
    /// Samples left out of every verdict, with why.
    pub invalid: Vec<String>,
    pub notes: Vec<String>,
    pub wall_time_s: String,
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
        let rows = e
            .variants
            .iter()
            .map(|v| TableRow {
                variant: v.name.clone(),
                cells: e
                    .sweep
                    .points
                    .iter()
                    .map(|p| {
                        summary(e, &m.name, &v.name, &p.label).map(|s| num(s.median)).unwrap_or_else(|| "–".into())
                    })
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

/// Render the whole page.
pub fn render(results: &RunResults) -> anyhow::Result<String> {
    let ctx = report_context(results);
    let mut tera = tera::Tera::default();
    tera.add_raw_template("report.html", TEMPLATE)?;
    let html = tera.render("report.html", &tera::Context::from_serialize(&ctx)?)?;
    Ok(html)
}

/// The data the template sees.
pub fn report_context(results: &RunResults) -> ReportContext {
    let c = &results.context;
    let h = &c.host;
    let mut servers = Vec::new();
    servers.push(("provider".to_owned(), c.servers.provider.clone()));
    for (name, s) in [("PostgreSQL", &c.servers.postgres), ("Redis", &c.servers.redis)] {
        if let Some(s) = s {
            let settings: Vec<String> = s.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            servers.push((name.to_owned(), format!("{} at {} ({})", s.version, s.url, settings.join(", "))));
        }
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
            "{} mode · {} repetitions · {} ms warm-up + {} ms per sample{}{}",
            if s.quick { "quick" } else { "full" },
            s.repetitions,
            s.warmup_ms,
            s.duration_ms,
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
    ReportContext { run, experiments: results.experiments.iter().map(experiment_view).collect() }
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

fn experiment_view(e: &ExperimentResult) -> ExperimentView {
    let metric = &e.primary_metric;
    let verdicts: Vec<VerdictView> = e
        .analysis
        .iter()
        .flat_map(|p| p.comparisons.iter())
        .map(|c| VerdictView { class: verdict_class(c.verdict).into(), sentence: c.sentence.clone() })
        .collect();
    // The headline is the one analysis chose (the claim's comparison); every point's verdict
    // is listed below it.
    let headline = e
        .headline
        .as_ref()
        .map(|c| VerdictView { class: verdict_class(c.verdict).into(), sentence: c.sentence.clone() });
    let points: Vec<String> = e.sweep.points.iter().map(|p| p.label.clone()).collect();
    let table = e
        .variants
        .iter()
        .map(|v| TableRow {
            variant: v.name.clone(),
            cells: e
                .analysis
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
    let checks = e
        .checks
        .iter()
        .filter(|c| c.ok.is_some())
        .map(|c| CheckView {
            variant: c.variant.clone(),
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
            format!("{}{at}: {} = {} ({})", c.variant, c.name, num(c.value), c.detail)
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
        let rows = e
            .variants
            .iter()
            .map(|v| TableRow {
                variant: v.name.clone(),
                cells: points
                    .iter()
                    .map(|p| {
                        e.checks
                            .iter()
                            .filter(same)
                            .find(|x| x.variant == v.name && x.point.as_deref() == *p)
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
            *errors.entry(format!("{} / {}: {k}", s.variant, s.point)).or_default() += v;
        }
    }
    let invalid = e
        .samples
        .iter()
        .filter_map(|s| {
            s.invalid.as_ref().map(|why| {
                format!("{} at {} {}, repetition {}: {why}", s.variant, e.sweep.axis, s.point, s.repetition + 1)
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
        verdicts,
        headline,
        chart_svg: main_chart(e),
        spectrum_svg: spectrum_chart(e),
        metric: format!(
            "{} ({}, {} is better){}",
            metric.name,
            metric.unit,
            if metric.better == Better::Lower { "lower" } else { "higher" },
            if metric.description.is_empty() { String::new() } else { format!(": {}", metric.description) }
        ),
        axis,
        points,
        table,
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
        observations,
        resources: resource_rows(e),
        errors: errors.into_iter().map(|(k, v)| format!("{k} ×{v}")).collect(),
        invalid,
        notes: e.notes.clone(),
        wall_time_s: format!("{:.1}", e.wall_time_ms as f64 / 1000.0),
    }
}

/// The analysis's summary of `metric` for `variant` at `point`, if it made one.
fn summary<'a>(e: &'a ExperimentResult, metric: &str, variant: &str, point: &str) -> Option<&'a MetricSummary> {
    e.summaries.iter().find(|s| s.metric == metric && s.variant == variant && s.point == point)
}

fn resource_rows(e: &ExperimentResult) -> Vec<ResourceRow> {
    let mut rows = Vec::new();
    for p in &e.sweep.points {
        for v in &e.variants {
            let med = |metric: &str| summary(e, metric, &v.name, &p.label).map(|s| s.median);
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
                variant: v.name.clone(),
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

/// A number with three significant digits and a thousands-friendly form.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        crate::results::fmt_num(v)
    }
}

fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

struct Series {
    name: String,
    /// Per x position: (median, low, high).
    points: Vec<Option<(f64, f64, f64)>>,
}

/// The primary metric against the sweep, one line per variant, the CI of each median as a band.
fn main_chart(e: &ExperimentResult) -> String {
    let series: Vec<Series> = e
        .variants
        .iter()
        .map(|v| Series {
            name: v.name.clone(),
            points: e
                .analysis
                .iter()
                .map(|p| p.variants.iter().find(|s| s.variant == v.name).map(|s| (s.median, s.ci_low, s.ci_high)))
                .collect(),
        })
        .collect();
    let labels: Vec<String> = e.sweep.points.iter().map(|p| p.label.clone()).collect();
    let x_desc =
        if e.sweep.unit.is_empty() { e.sweep.axis.clone() } else { format!("{} ({})", e.sweep.axis, e.sweep.unit) };
    let y_desc = format!("{} ({})", e.primary_metric.name, e.primary_metric.unit);
    line_chart(&labels, &x_desc, &y_desc, &series)
        .unwrap_or_else(|err| format!("<p class=\"error\">chart failed: {err}</p>"))
}

/// Latency percentiles at the last sweep point, one line per variant (median over repetitions).
fn spectrum_chart(e: &ExperimentResult) -> Option<String> {
    let point = e.sweep.points.last()?;
    let mut labels: Vec<String> = Vec::new();
    let mut series = Vec::new();
    // The percentiles the samples recorded, in order, as the analysis summarised them.
    let percentiles: Vec<f64> = e
        .samples
        .iter()
        .find_map(|s| s.latency.as_ref())
        .map(|l| l.percentiles_us.iter().map(|(p, _)| *p).collect())
        .unwrap_or_default();
    for v in &e.variants {
        let points: Vec<Option<(f64, f64, f64)>> = percentiles
            .iter()
            .map(|&p| summary(e, &spectrum_metric(p), &v.name, &point.label).map(|s| (s.median, s.ci_low, s.ci_high)))
            .collect();
        if points.iter().all(Option::is_none) {
            continue;
        }
        if labels.is_empty() {
            labels = percentiles.iter().map(|p| format!("p{p}")).collect();
        }
        series.push(Series { name: v.name.clone(), points });
    }
    if series.is_empty() {
        return None;
    }
    let x_desc = format!("percentile, at {} {}", e.sweep.axis, point.label);
    line_chart(&labels, &x_desc, "latency (us)", &series).ok()
}

fn line_chart(labels: &[String], x_desc: &str, y_desc: &str, series: &[Series]) -> anyhow::Result<String> {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().flatten().flat_map(|&(m, l, h)| [m, l, h]))
        .filter(|v| v.is_finite())
        .collect();
    let (min, max) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    if all.is_empty() {
        return Ok("<p class=\"muted\">no data to chart</p>".into());
    }
    // A log axis once values span more than 20×: techniques often differ by orders of magnitude.
    let log = min > 0.0 && max / min > 20.0;
    let tf = |v: f64| if log { v.log10() } else { v };
    let (lo, hi) = if log {
        (min.log10().floor(), max.log10().ceil())
    } else {
        let pad = ((max - min) * 0.08).max(max.abs() * 0.05).max(1e-9);
        ((min - pad).max(if min >= 0.0 { 0.0 } else { f64::MIN }), max + pad)
    };
    let n = labels.len().max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 380)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)?;
        let labels_owned = labels.to_vec();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels_owned.len() {
                    labels_owned[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| if log { num(10f64.powf(*y)) } else { num(*y) })
            .y_labels(if log { ((hi - lo) as usize + 1).max(2) } else { 8 })
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64, f64, f64)> = s
                .points
                .iter()
                .enumerate()
                .filter_map(|(x, p)| p.map(|(m, l, h)| (x as f64, tf(m), tf(l), tf(h))))
                .filter(|(_, m, l, h)| m.is_finite() && l.is_finite() && h.is_finite())
                .collect();
            if pts.len() > 1 {
                let mut band: Vec<(f64, f64)> = pts.iter().map(|&(x, _, _, h)| (x, h)).collect();
                band.extend(pts.iter().rev().map(|&(x, _, l, _)| (x, l)));
                chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15))))?;
            }
            chart
                .draw_series(
                    LineSeries::new(pts.iter().map(|&(x, m, _, _)| (x, m)), color.stroke_width(2)).point_size(3),
                )?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            // Error bars: single points have no band.
            chart
                .draw_series(pts.iter().map(|&(x, _, l, h)| PathElement::new(vec![(x, l), (x, h)], color.mix(0.6))))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(1234567.0), "1.23M");
        assert_eq!(num(12345.0), "12.3k");
        assert_eq!(num(250.0), "250");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.1234), "0.123");
    }

    #[test]
    fn chart_is_svg_with_every_series() {
        let s = vec![
            Series { name: "offset".into(), points: vec![Some((10.0, 9.0, 11.0)), Some((1000.0, 900.0, 1100.0))] },
            Series { name: "keyset".into(), points: vec![Some((10.0, 9.0, 11.0)), None] },
        ];
        let svg = line_chart(&["1".into(), "1000".into()], "page depth", "latency (us)", &s).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("offset") && svg.contains("keyset") && svg.contains("page depth"));
    }
}
