//! The report's charts: plotters drawing SVG, inlined in the page.

use super::format::num;
use crate::results::{spectrum_metric, ExperimentResult, MetricInfo};
use plotters::prelude::*;

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

/// Legend entries per row under a chart (each 170 px wide, beside the y axis's labels).
const LEGEND_PER_ROW: usize = 4;

pub struct Series {
    pub name: String,
    /// Per x position: (median, low, high).
    pub points: Vec<Option<(f64, f64, f64)>>,
}

/// The primary metric against the sweep in one case, one line per variant, the CI of each
/// median as a band.
pub fn main_chart(e: &ExperimentResult, case: &str) -> String {
    let series: Vec<Series> = e
        .variants
        .iter()
        .map(|v| Series {
            name: v.name.clone(),
            points: e
                .analysis
                .iter()
                .filter(|p| p.case == case)
                .map(|p| p.variants.iter().find(|s| s.variant == v.name).map(|s| (s.median, s.ci_low, s.ci_high)))
                .collect(),
        })
        .collect();
    sweep_chart(e, &e.primary_metric, &series)
}

/// A metric against the sweep in one case, one line per variant, from the analysis's
/// summaries (median and the CI of each as a band).
pub fn metric_chart(e: &ExperimentResult, case: &str, metric: &MetricInfo) -> String {
    let series: Vec<Series> = e
        .variants
        .iter()
        .map(|v| Series {
            name: v.name.clone(),
            points: e
                .sweep
                .points
                .iter()
                .map(|p| e.summary(&metric.name, case, &v.name, &p.label).map(|s| (s.median, s.ci_low, s.ci_high)))
                .collect(),
        })
        .collect();
    sweep_chart(e, metric, &series)
}

/// `series` of `metric` against the experiment's sweep axis.
fn sweep_chart(e: &ExperimentResult, metric: &MetricInfo, series: &[Series]) -> String {
    let labels: Vec<String> = e.sweep.points.iter().map(|p| p.label.clone()).collect();
    let x_desc =
        if e.sweep.unit.is_empty() { e.sweep.axis.clone() } else { format!("{} ({})", e.sweep.axis, e.sweep.unit) };
    let y_desc = format!("{} ({})", metric.name, metric.unit);
    line_chart(&labels, &x_desc, &y_desc, series)
        .unwrap_or_else(|err| format!("<p class=\"error\">chart failed: {err}</p>"))
}

/// Latency percentiles at the last sweep point in `case`, one line per variant (median over
/// repetitions), as HdrHistogram and wrk2 plot them: the x axis is 1/(1 − p) on a log scale,
/// so p90, p99, p99.9 … are evenly spaced and the tail gets the room it needs.
pub fn spectrum_chart(e: &ExperimentResult, case: &str) -> Option<String> {
    let point = e.sweep.points.last()?;
    // The percentiles the samples recorded, in order, as the analysis summarised them.
    let percentiles: Vec<f64> = e
        .samples
        .iter()
        .find_map(|s| s.latency.as_ref())
        .map(|l| l.percentiles_us.iter().map(|(p, _)| *p).collect())
        .unwrap_or_default();
    let series: Vec<(String, Vec<(f64, f64)>)> = e
        .variants
        .iter()
        .map(|v| {
            let points = percentiles
                .iter()
                .filter_map(|&p| {
                    let s = e.summary(&spectrum_metric(p), case, &v.name, &point.label)?;
                    Some((1.0 / (1.0 - p / 100.0), s.median))
                })
                .collect::<Vec<_>>();
            (v.name.clone(), points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if series.is_empty() {
        return None;
    }
    let in_case = if case.is_empty() { String::new() } else { format!(" in {case}") };
    let x_desc = format!("percentile, at {} {}{in_case}", e.sweep.axis, point.label);
    xy_log_chart(&x_desc, "latency (us)", &series, None, &percentile_label).ok()
}

/// A tick of the 1/(1 − p) axis as its percentile: 10 → p90, 1000 → p99.9.
fn percentile_label(v: f64) -> String {
    let p = format!("{:.6}", (100.0 * (1.0 - 1.0 / v)).max(0.0));
    format!("p{}", p.trim_end_matches('0').trim_end_matches('.'))
}

pub fn line_chart(labels: &[String], x_desc: &str, y_desc: &str, series: &[Series]) -> anyhow::Result<String> {
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
    svg_chart(series.len(), |plot, legend| {
        let mut chart = ChartBuilder::on(plot)
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
            chart.draw_series(
                LineSeries::new(pts.iter().map(|&(x, m, _, _)| (x, m)), color.stroke_width(2)).point_size(3),
            )?;
            legend_entry(legend, i, &s.name, color)?;
            // Error bars: single points have no band.
            chart
                .draw_series(pts.iter().map(|&(x, _, l, h)| PathElement::new(vec![(x, l), (x, h)], color.mix(0.6))))?;
        }
        Ok(())
    })
}

/// An SVG chart: a 760×380 plotting area, and below it, in rows, room for the legend of
/// `entries` series, so that the legend never covers a line.
fn svg_chart(entries: usize, draw: impl FnOnce(&Area<'_>, &Area<'_>) -> anyhow::Result<()>) -> anyhow::Result<String> {
    let legend_height = 12 + entries.div_ceil(LEGEND_PER_ROW) as u32 * 22;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 380 + legend_height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_vertically(380);
        draw(&plot, &legend)?;
        root.present()?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Legend entry `i` below a chart, `LEGEND_PER_ROW` to a row.
fn legend_entry(legend: &Area<'_>, i: usize, name: &str, color: RGBColor) -> anyhow::Result<()> {
    let (x, y) = (84 + (i % LEGEND_PER_ROW) as i32 * 170, 14 + (i / LEGEND_PER_ROW) as i32 * 22);
    legend.draw(&PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3)))?;
    legend.draw(&Text::new(name.to_owned(), (x + 28, y - 8), ("sans-serif", 13)))?;
    Ok(())
}

/// A chart of (x, y) points on two log axes, one line per series (points joined in x order),
/// with a dashed horizontal line at `limit` (a target) when given.
pub fn xy_log_chart(
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    limit: Option<f64>,
    x_label: &dyn Fn(f64) -> String,
) -> anyhow::Result<String> {
    let pts = || series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite());
    let ys = pts().map(|p| p.1).chain(limit);
    let (ylo, yhi) = ys.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (xlo, xhi) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if xlo > xhi {
        return Ok("<p class=\"muted\">no data to chart</p>".into());
    }
    let (xlo, xhi) = (xlo.log10().floor(), xhi.log10().ceil().max(xlo.log10().floor() + 1.0));
    let (ylo, yhi) = (ylo.log10().floor(), yhi.log10().ceil().max(ylo.log10().floor() + 1.0));
    svg_chart(series.len(), |plot, legend| {
        let mut chart = ChartBuilder::on(plot)
            .margin(12)
            .margin_right(28)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
        chart
            .configure_mesh()
            .x_labels((xhi - xlo) as usize + 1)
            .y_labels((yhi - ylo) as usize + 1)
            .x_label_formatter(&|x| x_label(10f64.powf(*x)))
            .y_label_formatter(&|y| num(10f64.powf(*y)))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if let Some(l) = limit {
            let y = l.log10();
            let dashes = (0..40).map(|k| xlo + (xhi - xlo) * k as f64 / 40.0);
            let step = (xhi - xlo) / 80.0;
            chart.draw_series(dashes.map(|x| PathElement::new(vec![(x, y), (x + step, y)], BLACK.mix(0.6))))?;
        }
        for (i, (name, points)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut p: Vec<(f64, f64)> =
                points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.log10(), y.log10())).collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.draw_series(LineSeries::new(p, color.stroke_width(2)).point_size(3))?;
            legend_entry(legend, i, name, color)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spectrum_axis_is_labelled_in_percentiles() {
        let labels: Vec<String> = [1.0, 10.0, 100.0, 1000.0, 1e4, 1e5].iter().map(|&v| percentile_label(v)).collect();
        assert_eq!(labels, ["p0", "p90", "p99", "p99.9", "p99.99", "p99.999"]);
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

    /// The legend sits below the plotting area, one more row per four series, so it covers
    /// no line.
    #[test]
    fn the_legend_is_below_the_plot_and_grows_with_the_series() {
        let one = |name: &str| Series { name: name.into(), points: vec![Some((1.0, 0.9, 1.1)), Some((2.0, 1.9, 2.1))] };
        let height = |n: usize| {
            let s: Vec<Series> = (0..n).map(|i| one(&format!("variant-{i}"))).collect();
            let svg = line_chart(&["1".into(), "2".into()], "x", "y", &s).unwrap();
            let h = svg.split("height=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse::<u32>().unwrap();
            // Every name is drawn below the 380 px of the plot.
            for i in 0..n {
                let at = svg.find(&format!("\nvariant-{i}\n")).expect("the name is drawn");
                let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
                let y: f64 = tag.split("y=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
                assert!(y > 380.0, "variant-{i} at y = {y}");
            }
            h
        };
        assert_eq!(height(4), 380 + 34);
        assert_eq!(height(5), 380 + 56);
    }
}
