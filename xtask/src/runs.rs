//! Where runs are found and kept: a run named by its directory, its results.json or a
//! baseline name, the baselines `bench --baseline` keeps, and reading a run's file.

use crate::Failure;
use harness::results::{self, RunResults};
use std::path::{Path, PathBuf};

/// Where baseline `name` is kept under `reports`.
pub fn baseline_path(reports: &Path, name: &str) -> Result<PathBuf, Failure> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !ok {
        return Err(Failure::usage(format!(
            "baseline name {name:?}: use letters, digits, '-', '_' and '.' (e.g. main, nightly-2026-11-27)"
        )));
    }
    Ok(reports.join("baselines").join(name).join("results.json"))
}

/// Keep `results` as baseline `name`, atomically (a reader never sees half a file).
pub fn save_baseline(reports: &Path, name: &str, results: &RunResults) -> Result<PathBuf, Failure> {
    let path = baseline_path(reports, name)?;
    std::fs::create_dir_all(path.parent().expect("a baseline file has a directory"))
        .map_err(|e| Failure::Run(format!("creating {}: {e}", path.display())))?;
    results::save(&path, results).map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

/// A run named by a run directory, a results.json or a baseline name.
pub fn resolve(arg: &str, reports: &Path) -> Result<PathBuf, Failure> {
    let p = Path::new(arg);
    if p.is_dir() && p.join("results.json").is_file() {
        return Ok(p.join("results.json"));
    }
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if let Ok(b) = baseline_path(reports, arg) {
        if b.is_file() {
            return Ok(b);
        }
    }
    let baselines: Vec<String> = std::fs::read_dir(reports.join("baselines"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    Err(Failure::usage(format!(
        "{arg:?} is not a run directory, a results.json or a baseline (baselines in {}: {})",
        reports.join("baselines").display(),
        if baselines.is_empty() { "none".to_owned() } else { baselines.join(", ") }
    )))
}

/// Read a run's results.json (a missing, corrupt or other-version file: one clear line).
pub fn read(path: &Path) -> Result<RunResults, Failure> {
    results::read(path).map_err(Failure::usage)
}
