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
        println!(
            "{:<16} sweep: {} {:?} (quick {:?}); needs: {}",
            "",
            m.sweep.axis,
            m.sweep.full,
            m.sweep.quick,
            if servers.is_empty() { "no server".into() } else { servers.join(" + ") }
        );
    }
    Ok(ExitCode::SUCCESS)
}
