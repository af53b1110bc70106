//! `cargo xtask list`: the catalogue, for choosing a `--filter`.

use crate::{catalogue, Failure};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

pub fn list() -> Result<ExitCode, Failure> {
    let mut out = String::new();
    for e in catalogue::all() {
        let m = e.meta();
        let variants: Vec<&str> = m.variants.iter().map(|v| v.name).collect();
        let servers: Vec<&str> = [
            (m.needs.postgres, "postgres"),
            (m.needs.redis, "redis"),
            (m.needs.redis_cluster, "redis cluster (6 nodes)"),
        ]
        .into_iter()
        .filter_map(|(n, s)| n.then_some(s))
        .collect();
        let _ = writeln!(out, "{:<16} {}", m.id, m.title);
        let _ = writeln!(out, "{:<16} claim: {}", "", m.claim);
        let _ = writeln!(out, "{:<16} variants: {}", "", variants.join(", "));
        if !m.cases.is_empty() {
            let cases: Vec<&str> = m.cases.iter().map(|c| c.name).collect();
            let _ = writeln!(out, "{:<16} cases: {}", "", cases.join(", "));
        }
        let labels = |quick: bool| -> String {
            m.sweep.points(quick).iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(" | ")
        };
        let mut needs = if servers.is_empty() { "no server".to_owned() } else { servers.join(" + ") };
        if e.engine().is_micro() {
            needs.push_str("; in-process (micro engine: criterion, dhat)");
        }
        let _ = writeln!(
            out,
            "{:<16} sweep: {}: {} (quick: {}); needs: {needs}",
            "",
            m.sweep.axis,
            labels(false),
            labels(true)
        );
        for k in &m.knobs {
            let range = if k.integer {
                format!("{}..={}", k.min as i64, k.max as i64)
            } else {
                format!("{}..={}", k.min, k.max)
            };
            let _ = writeln!(out, "{:<16} --set {}.{}=<{range}>: {}; {}", "", m.id, k.name, k.doc, k.default_text());
        }
    }
    let _ = writeln!(out, "\nevery experiment:");
    let _ =
        writeln!(out, "{:<16} --set <id>.{}=<P% | VARIANT:P%>: {}", "", harness::inject::KNOB, harness::inject::DOC);
    // `cargo xtask list | head -1` closes the pipe early: that is the reader's choice, not an
    // error (println! would panic on it).
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(Failure::Run(format!("writing the list: {e}"))),
    }
}
