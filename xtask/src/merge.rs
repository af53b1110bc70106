//! `cargo xtask merge`: the parts of one run (shards, `--filter`ed or interrupted runs)
//! joined into one run directory, with its report.

use crate::flags::default_reports_dir;
use crate::runs::read;
use crate::Failure;
use harness::results::{self, RunResults};
use std::path::PathBuf;
use std::process::ExitCode;

/// Join the parts of one run into a run directory of its own under `out`: the experiments in
/// catalogue order, the first part's context. A part is a `--shard`, a `--filter` or a run
/// that was interrupted (it holds what it finished); those settings only select experiments,
/// so they may differ between parts, and every other setting and the commit must not, nor the
/// CPU model unless `hosts_may_differ` (a matrix of CI runners: each experiment then names
/// its machine in a note). The joined run is complete when it holds the whole catalogue (its
/// filter is then none) or, short of that, when every part is (its filter then names what it
/// holds).
pub fn merge(shards: Vec<PathBuf>, out: Option<PathBuf>, hosts_may_differ: bool) -> Result<ExitCode, Failure> {
    let mut runs = Vec::new();
    for s in &shards {
        let path = if s.is_dir() { s.join("results.json") } else { s.clone() };
        runs.push(read(&path)?);
    }
    let first = runs[0].context.clone();
    let first_id = runs[0].run_id.clone();
    let cpu = |r: &RunResults| r.context.host.cpu_model.clone().unwrap_or_else(|| "an unknown CPU".into());
    // What makes a part a stranger, if anything: the settings beyond the selection, the
    // commit, the CPU model.
    let differs = |r: &RunResults| {
        let (a, b) = (&first, &r.context);
        let mut x = a.settings.clone();
        let mut y = b.settings.clone();
        (x.shard, y.shard) = (None, None);
        (x.filter, y.filter) = (None, None);
        (x.order_seed, y.order_seed) = (0, 0);
        if x != y {
            Some("their settings differ beyond --shard and --filter".to_owned())
        } else if a.git_revision != b.git_revision {
            Some("they were measured at different commits".to_owned())
        } else if a.host.cpu_model != b.host.cpu_model && !hosts_may_differ {
            Some(format!(
                "they were measured on different CPU models ({} and {}; --hosts-may-differ joins them, naming each experiment's machine)",
                cpu(&runs[0]),
                cpu(r)
            ))
        } else {
            None
        }
    };
    if let Some((r, why)) = runs.iter().find_map(|r| differs(r).map(|why| (r, why))) {
        return Err(Failure::usage(format!("{first_id} and {} are not parts of one run: {why}", r.run_id)));
    }
    if runs.iter().any(|r| r.context.host.cpu_model != first.host.cpu_model) {
        for r in &mut runs {
            let h = &r.context.host;
            let note = format!(
                "Measured in part {} on {}, {} cores: the parts of this run ran on different machines, so compare this experiment's absolute numbers with another's with care (its verdicts compare variants measured on this one machine).",
                r.run_id,
                cpu(r),
                h.cores
            );
            for e in &mut r.experiments {
                e.notes.push(note.clone());
            }
        }
    }
    // The experiments move into the joined run; each part keeps its context and completeness.
    let experiments = runs.iter_mut().flat_map(|r| std::mem::take(&mut r.experiments)).collect();
    let mut merged = RunResults { experiments, ..runs[0].clone() };
    merged.context.settings.shard = None;
    let order: Vec<&'static str> = crate::catalogue::all().iter().map(|e| e.meta().id).collect();
    merged.experiments.sort_by_key(|e| order.iter().position(|id| *id == e.id).unwrap_or(usize::MAX));
    let ids: Vec<&str> = merged.experiments.iter().map(|e| e.id.as_str()).collect();
    if let Some(dup) = ids.iter().enumerate().find(|(i, id)| ids[..*i].contains(id)) {
        return Err(Failure::usage(format!("experiment {} is in more than one part", dup.1)));
    }
    let whole = order.iter().all(|id| ids.contains(id));
    merged.complete = whole || runs.iter().all(|r| r.complete);
    merged.context.settings.filter = (!whole).then(|| ids.join(","));
    // The joined run spans its parts: it began with the earliest and ended with the latest.
    merged.context.started_at = runs.iter().map(|r| r.context.started_at.clone()).min().unwrap_or_default();
    merged.context.finished_at = runs.iter().filter_map(|r| r.context.finished_at.clone()).max();
    let reports = out.unwrap_or_else(default_reports_dir);
    std::fs::create_dir_all(&reports)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", reports.display())))?;
    let (run_id, dir) = harness::provenance::create_run_dir(&reports, merged.context.git_revision.as_deref())
        .map_err(|e| Failure::usage(format!("cannot create a run directory in {}: {e}", reports.display())))?;
    merged.run_id = run_id;
    let path = dir.join("results.json");
    results::save(&path, &merged).map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    let page = crate::report::render_run(&path)?;
    eprintln!("merged {} part(s), {} experiment(s): {}", runs.len(), merged.experiments.len(), path.display());
    println!("{}", page.display());
    Ok(ExitCode::SUCCESS)
}
