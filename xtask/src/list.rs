//! `cargo xtask list`: the catalogue, for choosing a `--filter`.

use crate::{catalogue, Failure};
use std::process::ExitCode;

pub fn list() -> Result<ExitCode, Failure> {
    for e in catalogue::all() {
        let m = e.meta();
        let variants: Vec<&str> = m.variants.iter().map(|v| v.name).collect();
        let servers: Vec<&str> = [(m.needs.postgres, "postgres"), (m.needs.redis, "redis")]
            .into_iter()
            .filter_map(|(n, s)| n.then_some(s))
            .collect();
        println!("{:<16} {}", m.id, m.title);
        println!("{:<16} claim: {}", "", m.claim);
        println!("{:<16} variants: {}", "", variants.join(", "));
        let labels = |quick: bool| -> String {
            m.sweep.points(quick).iter().map(|p| p.label.as_str()).collect::<Vec<_>>().join(" | ")
        };
        let mut needs = if servers.is_empty() { "no server".to_owned() } else { servers.join(" + ") };
        if m.needs.micro {
            needs.push_str("; in-process (micro engine: criterion, dhat)");
        }
        println!("{:<16} sweep: {}: {} (quick: {}); needs: {needs}", "", m.sweep.axis, labels(false), labels(true));
    }
    Ok(ExitCode::SUCCESS)
}
