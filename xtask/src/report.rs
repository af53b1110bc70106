//! `cargo xtask report [RUN]`: render index.html from a results.json alone.

use crate::flags::ReportArgs;
use crate::Failure;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn report(args: ReportArgs) -> Result<ExitCode, Failure> {
    let results_path = crate::compare::run_results(args.run, args.out)?;
    let out = render_run(&results_path)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Render `results.json` into `index.html` beside it; returns the page's path.
pub fn render_run(results_path: &Path) -> Result<PathBuf, Failure> {
    let mut results = harness::results::load(results_path).map_err(Failure::usage)?;
    // A version 1 file has no summaries or headline: analyse its samples again (the report
    // itself only reads what the analysis stored).
    if results.schema_version < 2 {
        let catalogue = xtask::catalogue::all();
        for e in &mut results.experiments {
            let meta = catalogue.iter().map(|c| c.meta()).find(|m| m.id == e.id);
            let claim = harness::analysis::Claim { case: "", variant: meta.and_then(|m| m.claim_variant()) };
            harness::analysis::analyse(e, claim);
        }
    }
    let html = harness::report::render(&results).map_err(|e| Failure::Run(format!("rendering the report: {e:#}")))?;
    let dir = results_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let out = dir.join("index.html");
    // A results.json written before redaction existed must not leak through its report either.
    harness::results::write_atomic(&out, harness::redact::redact(&html).as_bytes())
        .map_err(|e| Failure::Run(format!("writing {}: {e}", out.display())))?;
    Ok(out)
}
