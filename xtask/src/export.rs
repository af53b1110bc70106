//! `cargo xtask export`: a run's results in the formats other tools read (Bencher's BMF,
//! github-action-benchmark), written beside its results.json.

use crate::flags::ExportArgs;
use crate::report::run_results;
use crate::runs::read;
use crate::Failure;
use harness::results;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Write `results_path`'s exports in `format` beside it; returns the files written.
pub fn export_run(results_path: &Path, format: &str) -> Result<Vec<PathBuf>, Failure> {
    let run = read(results_path)?;
    let dir = results_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let write = |name: &str, value: serde_json::Result<serde_json::Value>| -> Result<PathBuf, Failure> {
        let path = dir.join(name);
        let text =
            value.and_then(|v| serde_json::to_string_pretty(&v)).map_err(|e| Failure::Run(e.to_string()))? + "\n";
        results::write_atomic(&path, harness::redact::mask_known(&text).as_bytes())
            .map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    };
    match format {
        "bmf" => Ok(vec![write("bmf.json", serde_json::to_value(harness::export::bmf(&run)))?]),
        "github-action-benchmark" => {
            let (smaller, bigger) = harness::export::github_action_benchmark(&run);
            Ok(vec![
                write("gab-smaller.json", serde_json::to_value(smaller))?,
                write("gab-bigger.json", serde_json::to_value(bigger))?,
            ])
        }
        other => Err(Failure::usage(format!("export format {other:?}: bmf or github-action-benchmark"))),
    }
}

pub fn export(args: ExportArgs) -> Result<ExitCode, Failure> {
    if !matches!(args.format.as_str(), "bmf" | "github-action-benchmark") {
        return Err(Failure::usage(format!("--format {:?}: bmf or github-action-benchmark", args.format)));
    }
    let results_path = run_results(args.run, args.out)?;
    for f in export_run(&results_path, &args.format)? {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
