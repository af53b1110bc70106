//! The comparison's outputs: plain text as benchstat prints it, markdown for a pull request,
//! an HTML page with charts.

use super::{row_name, Estimate, Gate, Report, Row, Verdict};
use crate::results::Better;

fn fmt_side(s: &Estimate) -> String {
    let spread = if s.median != 0.0 { (s.ci_high - s.ci_low) / 2.0 / s.median.abs() * 100.0 } else { 0.0 };
    format!("{} ±{:.0}%", crate::report::num(s.median), spread)
}

/// The change column as benchstat writes it: `+5.85% (p=0.008 n=5+5)`, or `~` when no
/// significant change.
pub fn fmt_change(r: &Row) -> String {
    let n = match r.pairs {
        Some(pairs) => format!("{pairs} rounds paired"),
        None => format!("n={}+{}", r.old.n, r.new.n),
    };
    match (r.verdict, r.p_value) {
        (Verdict::Same, Some(p)) => format!("~ (p={p:.3} {n})"),
        (Verdict::Same, None) if r.change_pct == 0.0 => "~ (exact)".into(),
        (Verdict::Same, None) => format!("~ ({:+.2}% within {}%)", r.change_pct, r.threshold_pct),
        (_, Some(p)) => format!("{:+.2}% (p={p:.3} {n})", r.change_pct),
        (_, None) => format!("{:+.2}% (exact)", r.change_pct),
    }
}

impl Row {
    /// Whether a regression of this row fails `gate`.
    pub fn gated(&self, gate: Gate) -> bool {
        match gate {
            Gate::All => true,
            Gate::Primary => self.primary || self.deterministic,
            Gate::Deterministic => self.deterministic,
        }
    }
}

fn verdict_word(r: &Row, gate: Gate) -> &'static str {
    match r.verdict {
        Verdict::Regressed if !r.gated(gate) => "regressed (not gated)",
        Verdict::Regressed => "REGRESSED",
        Verdict::Improved => "improved",
        Verdict::WithinNoise => "within noise",
        Verdict::Same => "",
    }
}

/// Plain text, one table per experiment and metric.
pub fn to_text(rep: &Report) -> String {
    let mut out = format!("old: {}\nnew: {}\n{}\n", rep.old_run, rep.new_run, rep.thresholds);
    if !rep.context_differences.is_empty() {
        out.push_str("\nWARNING: the runs differ in context; numbers may differ for that reason too:\n");
        for d in &rep.context_differences {
            out.push_str(&format!("  {d}\n"));
        }
    }
    for b in &rep.broken_checks {
        out.push_str(&format!("\nCORRECTNESS REGRESSION: {}\n", b.describe()));
    }
    let mut last = (String::new(), String::new());
    for r in &rep.rows {
        if (r.experiment.clone(), r.metric.clone()) != last {
            last = (r.experiment.clone(), r.metric.clone());
            let better = if r.better == Better::Lower { "lower" } else { "higher" };
            out.push_str(&format!(
                "\n{} · {} ({}, {better} is better)\n{:<44} {:>16} {:>16}  {}\n",
                r.experiment, r.metric, r.unit, "", "old", "new", "change"
            ));
        }
        out.push_str(&format!(
            "{:<44} {:>16} {:>16}  {} {}\n",
            row_name(r),
            fmt_side(&r.old),
            fmt_side(&r.new),
            fmt_change(r),
            verdict_word(r, rep.gate)
        ));
    }
    for x in &rep.not_compared {
        out.push_str(&format!("\nnot compared: {x}"));
    }
    out.push_str(&format!("\n{}\n", summary_line(rep)));
    out
}

/// One line: how many rows regressed, improved, and the thresholds.
pub fn summary_line(rep: &Report) -> String {
    let count = |v: Verdict| rep.rows.iter().filter(|r| r.verdict == v).count();
    let ungated = count(Verdict::Regressed) - (rep.regressions() - rep.broken_checks.len());
    format!(
        "{} regression(s) ({} broken check(s)){}, {} improvement(s), {} within noise, {} unchanged, over {} comparisons",
        rep.regressions(),
        rep.broken_checks.len(),
        if ungated > 0 { format!(" and {ungated} timing regression(s) not gated ({:?} gate)", rep.gate) } else { String::new() },
        count(Verdict::Improved),
        count(Verdict::WithinNoise),
        count(Verdict::Same),
        rep.rows.len()
    )
}

/// Markdown for a pull-request comment: the regressions and improvements first, every row in
/// a collapsed table.
pub fn to_markdown(rep: &Report) -> String {
    let mut out = format!(
        "### perflab: `{}` → `{}`\n\n**{}**\n\n{}\n",
        rep.old_run,
        rep.new_run,
        summary_line(rep),
        rep.thresholds
    );
    if !rep.context_differences.is_empty() {
        out.push_str("\n> **Warning:** the runs differ in context: ");
        out.push_str(&rep.context_differences.join("; "));
        out.push('\n');
    }
    for b in &rep.broken_checks {
        out.push_str(&format!("\n- :x: **correctness** {}", b.describe()));
    }
    let table = |rows: &[&Row]| {
        let mut t =
            String::from("\n| experiment | trial | metric | old | new | change | |\n|---|---|---|---:|---:|---|---|\n");
        for r in rows {
            t.push_str(&format!(
                "| {} | `{}` | {} ({}) | {} | {} | {} | {} |\n",
                r.experiment,
                row_name(r),
                r.metric,
                r.unit,
                fmt_side(&r.old),
                fmt_side(&r.new),
                fmt_change(r),
                verdict_word(r, rep.gate)
            ));
        }
        t
    };
    let notable: Vec<&Row> =
        rep.rows.iter().filter(|r| matches!(r.verdict, Verdict::Regressed | Verdict::Improved)).collect();
    if !notable.is_empty() {
        out.push_str(&table(&notable));
    }
    let all: Vec<&Row> = rep.rows.iter().collect();
    out.push_str(&format!("\n<details><summary>all {} comparisons</summary>\n", all.len()));
    out.push_str(&table(&all));
    out.push_str("\n</details>\n");
    out
}

/// The compare page's data (compare.html, rendered by the report's templates).
#[derive(serde::Serialize)]
struct CompareView {
    old_run: String,
    new_run: String,
    summary: String,
    context_differences: Vec<String>,
    broken_checks: Vec<String>,
    groups: Vec<GroupView>,
}

/// One experiment and case: its primary metric's chart and rows.
#[derive(serde::Serialize)]
struct GroupView {
    title: String,
    /// The chart, or why it could not be drawn.
    svg: Option<String>,
    chart_error: Option<String>,
    rows: Vec<RowView>,
}

#[derive(serde::Serialize)]
struct RowView {
    class: &'static str,
    trial: String,
    old: String,
    new: String,
    change: String,
    verdict: &'static str,
}

/// An HTML page: the summary, broken checks, and per experiment and case one chart of the
/// primary metric, old against new (median and 95% CI per variant and point), with its table.
pub fn to_html(rep: &Report) -> anyhow::Result<String> {
    use crate::report::{line_chart, Series};
    // Group the primary metric's rows by experiment and case: rows come primary metric first,
    // so an experiment's first row names its primary metric.
    let mut primary: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for r in &rep.rows {
        primary.entry(r.experiment.as_str()).or_insert(r.metric.as_str());
    }
    let mut groups: Vec<(String, String, String, Vec<&Row>)> = Vec::new();
    for r in rep.rows.iter().filter(|r| primary.get(r.experiment.as_str()) == Some(&r.metric.as_str())) {
        match groups.iter_mut().find(|g| g.0 == r.experiment && g.1 == r.case) {
            Some(g) => g.3.push(r),
            None => groups.push((r.experiment.clone(), r.case.clone(), r.metric.clone(), vec![r])),
        }
    }
    let mut views = Vec::new();
    for (exp, case, metric, rows) in groups {
        let labels: Vec<String> = rows.iter().map(|r| format!("{}@{}", r.variant, r.point)).collect();
        let side = |f: fn(&Row) -> &Estimate| -> Vec<Option<(f64, f64, f64)>> {
            rows.iter().map(|r| Some((f(r).median, f(r).ci_low, f(r).ci_high))).collect()
        };
        let series = [
            Series { name: format!("old ({})", rep.old_run), points: side(|r| &r.old) },
            Series { name: format!("new ({})", rep.new_run), points: side(|r| &r.new) },
        ];
        let unit = rows.first().map(|r| r.unit.clone()).unwrap_or_default();
        let chart = line_chart(&labels, "variant@point", &format!("{metric} ({unit})"), &series);
        views.push(GroupView {
            title: if case.is_empty() { exp.clone() } else { format!("{exp} · {case}") },
            chart_error: chart.as_ref().err().map(|e| e.to_string()),
            svg: chart.ok(),
            rows: rows
                .iter()
                .map(|r| RowView {
                    class: match r.verdict {
                        Verdict::Regressed => "worse",
                        Verdict::Improved => "better",
                        _ => "",
                    },
                    trial: row_name(r),
                    old: fmt_side(&r.old),
                    new: fmt_side(&r.new),
                    change: fmt_change(r),
                    verdict: verdict_word(r, rep.gate),
                })
                .collect(),
        });
    }
    crate::report::render_page(
        "compare.html",
        &CompareView {
            old_run: rep.old_run.clone(),
            new_run: rep.new_run.clone(),
            summary: summary_line(rep),
            context_differences: rep.context_differences.clone(),
            broken_checks: rep.broken_checks.iter().map(|b| b.describe()).collect(),
            groups: views,
        },
    )
}
