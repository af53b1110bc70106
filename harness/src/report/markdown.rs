//! The report's first screen as Markdown (`cargo xtask report --format markdown`): the summary
//! table, the targets and the capacities, for a pull-request comment or a wiki page. The same
//! rows as the HTML page, from the same view model; every cell escaped for Markdown tables.

use super::view;
use crate::results::RunResults;
use std::fmt::Write as _;

/// A table cell: one line, pipes escaped, and `<`, `>`, `&` as entities so that no string from
/// a results file becomes HTML where the Markdown is rendered (GitHub allows some).
fn cell(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "\\|")
}

pub fn render(results: &RunResults) -> String {
    let ctx = super::report_context_summary(results);
    let mut md = String::new();
    let _ = writeln!(md, "## perflab: what the run found\n");
    let _ = writeln!(
        md,
        "Run `{}` · {} · {}{}\n",
        cell(&results.run_id),
        cell(&ctx.run.git),
        cell(&ctx.run.settings),
        if results.complete { "" } else { " · **incomplete run**" }
    );
    let tally: Vec<String> = ctx.tally.iter().map(|(f, n)| format!("{n} {f}")).collect();
    let _ = writeln!(
        md,
        "Findings: {}. The guide's targets: {} of {} checks failed.\n",
        if tally.is_empty() { "none".to_owned() } else { tally.join(", ") },
        ctx.targets_failed,
        ctx.targets_checked
    );
    for g in &ctx.glance {
        let ids: Vec<String> = g.ids.iter().map(|id| format!("`{}`", cell(id))).collect();
        let _ = writeln!(md, "- **{}** ({}): {}", g.finding, g.meaning, ids.join(", "));
    }
    let go = &ctx.go;
    if go.any {
        let ids = |v: &[String]| v.iter().map(|id| format!("`{}`", cell(id))).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            md,
            "- **Go originals** (the guide's own Go code, the same claim decided by the same rule): {} the same in Go and Rust ({}), {} differ ({}), {} undecided in Go or Rust ({})",
            go.same.len(),
            ids(&go.same),
            go.differ.len(),
            ids(&go.differ),
            go.undecided.len(),
            ids(&go.undecided)
        );
    }
    let _ = writeln!(md);
    let go_head = if go.any { " Go original |" } else { "" };
    let _ = writeln!(
        md,
        "| experiment | the guide's claim | finding | why, and the headline |{go_head} broken checks | targets failed |"
    );
    let _ = writeln!(md, "|---|---|---|---|{}---:|---:|", if go.any { "---|" } else { "" });
    for r in &ctx.summary {
        let mut why = cell(&r.reason);
        for extra in [&r.headline, &r.capacity].into_iter().filter(|s| !s.is_empty()) {
            why.push_str("<br>");
            why.push_str(&cell(extra));
        }
        let targets = if r.targets_checked > 0 {
            format!("{} of {}", r.targets_failed, r.targets_checked)
        } else {
            "–".to_owned()
        };
        let go_cell = match (go.any, r.go_finding.is_empty()) {
            (false, _) => String::new(),
            (true, true) => " – |".to_owned(),
            (true, false) => format!(" **{}**<br>{} |", cell(&r.go_finding), cell(&r.go_reason)),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | **{}** | {} |{go_cell} {} | {} |",
            cell(&r.id),
            cell(&r.claim),
            cell(&r.finding),
            why,
            r.broken_checks,
            targets
        );
    }
    let capacities: Vec<_> = results.experiments.iter().filter(|e| !e.capacity.is_empty()).collect();
    if !capacities.is_empty() {
        let _ = writeln!(md, "\n### Capacity: the highest rate each variant sustains\n");
        let _ = writeln!(
            md,
            "An open loop stepped up, then bisected, until a rate broke the p95 limit, errors of 0.1 % or successes below 95 % of the offered rate; then 2× that rate (stress).\n"
        );
        let _ = writeln!(md, "| experiment | where | p95 limit | variant | capacity | at 2× capacity | recovery |");
        let _ = writeln!(md, "|---|---|---:|---|---:|---|---|");
        for e in capacities {
            let Some(v) = super::capacity::view(e) else { continue };
            for r in &v.rows {
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} ms | `{}` | {} | {} | {} |",
                    cell(&e.id),
                    cell(&v.at),
                    e.capacity[0].limits.p95_ms,
                    cell(&r.variant),
                    cell(&r.capacity),
                    cell(r.stress.last().map_or("", String::as_str)),
                    cell(&r.recovery)
                );
            }
        }
    }
    let failed: Vec<_> = results.experiments.iter().map(view::summary_row).filter(|r| r.finding == "failed").collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n{} experiment(s) failed; the HTML report says why.", failed.len());
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_one_line_and_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(cell("<script>alert(1)</script> & co"), "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co");
    }
}
