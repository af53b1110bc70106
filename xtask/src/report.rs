//! `cargo xtask report [RUN]`: render index.html from a results.json alone; and how a run is
//! found (a directory, a results.json, or the latest run), for every command that reads one.

use crate::flags::{default_reports_dir, ReportArgs, ReportFormat};
use crate::Failure;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn report(args: ReportArgs) -> Result<ExitCode, Failure> {
    let results_path = run_results(args.run, args.out)?;
    if args.format == ReportFormat::Markdown {
        let results = load_for_report(&results_path)?;
        let md = harness::redact::redact(&harness::report::render_markdown(&results));
        let out = results_dir(&results_path).join("summary.md");
        harness::results::write_atomic(&out, md.as_bytes())
            .map_err(|e| Failure::Run(format!("writing {}: {e}", out.display())))?;
        print!("{md}");
        return Ok(ExitCode::SUCCESS);
    }
    let out = render_run(&results_path)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn results_dir(results_path: &Path) -> &Path {
    results_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Render `results.json` into `index.html` beside it; returns the page's path.
pub fn render_run(results_path: &Path) -> Result<PathBuf, Failure> {
    let results = load_for_report(results_path)?;
    let html = harness::report::render(&results, Some(results_dir(results_path)))
        .map_err(|e| Failure::Run(format!("rendering the report: {e:#}")))?;
    let out = results_dir(results_path).join("index.html");
    // A results.json written before redaction existed must not leak through its report either.
    harness::results::write_atomic(&out, harness::redact::redact(&html).as_bytes())
        .map_err(|e| Failure::Run(format!("writing {}: {e}", out.display())))?;
    Ok(out)
}

/// A results.json, with what an older file lacks filled in for the report.
fn load_for_report(results_path: &Path) -> Result<harness::results::RunResults, Failure> {
    let mut results = harness::results::read(results_path).map_err(Failure::usage)?;
    // A version 1 file has no summaries or headline, and a file written before findings
    // existed has no finding: both are decided again from their samples, by the one decision
    // path and the experiment's declaration in this build's catalogue, on the run's own host's
    // cores (the report itself only reads what was decided and stored).
    if results.schema_version < 2 || results.experiments.iter().any(|e| e.finding.is_none()) {
        let catalogue = xtask::catalogue::all();
        let cores = results.context.host.cores.max(1);
        for e in results.experiments.iter_mut().filter(|e| e.finding.is_none() || e.summaries.is_empty()) {
            if let Some(meta) = catalogue.iter().map(|c| c.meta()).find(|m| m.id == e.id) {
                harness::decide::decide(e, &meta, cores);
            }
        }
    }
    Ok(results)
}

/// The results.json of `run` (a run directory or the file itself), or of the latest run in
/// `reports` (default: the workspace's reports/) when no run is given.
pub fn run_results(run: Option<PathBuf>, reports: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match run {
        Some(p) if p.is_dir() => Ok(p.join("results.json")),
        Some(p) if p.exists() => Ok(p),
        Some(p) => {
            Err(Failure::usage(format!("{} does not exist: give a run directory or a results.json", p.display())))
        }
        None => Ok(latest_run(&reports.unwrap_or_else(default_reports_dir))?.join("results.json")),
    }
}

/// The newest run directory (run ids sort by time) in `reports` that holds a results.json.
pub fn latest_run(reports: &Path) -> Result<PathBuf, Failure> {
    let none = || Failure::usage(format!("no runs in {}: run `cargo xtask bench` first", reports.display()));
    let mut runs: Vec<PathBuf> = std::fs::read_dir(reports)
        .map_err(|_| none())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("results.json").is_file())
        .collect();
    runs.sort();
    runs.pop().ok_or_else(none)
}
