//! `cargo xtask compare OLD [NEW]`, `cargo xtask export`, and the baselines bench keeps:
//! finding runs by directory, file or baseline name, and printing what `harness::compare` and
//! `harness::export` make of them.

use crate::flags::{default_reports_dir, CompareArgs, ExportArgs};
use crate::report::{latest_run, run_results};
use crate::Failure;
use harness::compare::{self, Options};
use harness::results::{self, RunResults};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

fn load(path: &Path) -> Result<RunResults, Failure> {
    results::load(path).map_err(Failure::usage)
}

fn options(args: &CompareArgs, base: Options) -> Result<Options, Failure> {
    let gate = match args.gate.as_str() {
        "all" => compare::Gate::All,
        "primary" => compare::Gate::Primary,
        "deterministic" => compare::Gate::Deterministic,
        "" => base.gate,
        other => return Err(Failure::usage(format!("--gate {other:?}: all, primary or deterministic"))),
    };
    let mut opts = Options { gate, ..base };
    let pct = |v: f64, what: &str| {
        if v.is_finite() && (0.0..=10_000.0).contains(&v) {
            Ok(v)
        } else {
            Err(Failure::usage(format!("{what} {v}: a percentage between 0 and 10000")))
        }
    };
    if let Some(t) = args.threshold {
        opts.timing_threshold_pct = pct(t, "--threshold")?;
    }
    if let Some(t) = args.exact_threshold {
        opts.exact_threshold_pct = pct(t, "--exact-threshold")?;
    }
    for kv in &args.threshold_for {
        let (k, v) = kv.split_once('=').filter(|(k, _)| !k.trim().is_empty()).ok_or_else(|| {
            Failure::usage(format!("--threshold-for {kv:?}: expected KEY=PCT, e.g. latency_p99_us=40"))
        })?;
        let v: f64 =
            v.trim().parse().map_err(|_| Failure::usage(format!("--threshold-for {kv:?}: {v:?} is not a number")))?;
        opts.overrides.push((k.trim().to_owned(), pct(v, "--threshold-for")?));
    }
    Ok(opts)
}

/// Compare and print; the exit code says whether anything regressed.
pub fn compare(args: CompareArgs) -> Result<ExitCode, Failure> {
    if !matches!(args.format.as_str(), "text" | "markdown" | "json") {
        return Err(Failure::usage(format!("--format {:?}: text, markdown or json", args.format)));
    }
    let reports = args.out.clone().unwrap_or_else(default_reports_dir);
    let old_path = resolve(&args.old, &reports)?;
    let first = load(&old_path)?;
    // One run of two revisions (`bench --against`): its two sides, with the narrower noise
    // band interleaving earns.
    let (old, new, opts) = match (&args.new, first.split_revisions()) {
        (None, Some((base, this))) => (base, this, options(&args, Options::interleaved())?),
        (new, _) => {
            let new_path = match new {
                Some(n) => resolve(n, &reports)?,
                None => latest_run(&reports)?.join("results.json"),
            };
            (first, load(&new_path)?, options(&args, Options::default())?)
        }
    };
    let report = compare::compare(&old, &new, &opts);
    if args.strict && !report.context_differences.is_empty() {
        return Err(Failure::usage(format!(
            "--strict: the runs differ in context: {}",
            report.context_differences.join("; ")
        )));
    }
    if let Some(html) = &args.html {
        let page = compare::to_html(&report).map_err(|e| Failure::Run(format!("rendering the compare page: {e:#}")))?;
        harness::results::write_atomic(html, harness::redact::redact(&page).as_bytes())
            .map_err(|e| Failure::Run(format!("writing {}: {e}", html.display())))?;
        eprintln!("page: {}", html.display());
    }
    let text = match args.format.as_str() {
        "markdown" => compare::to_markdown(&report),
        "json" => serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)? + "\n",
        _ => compare::to_text(&report),
    };
    print_or_pipe(&harness::redact::redact(&text))?;
    Ok(exit_for(&report))
}

/// 3 when the comparison found a regression (as gungraun), else 0.
pub fn exit_for(report: &compare::Report) -> ExitCode {
    if report.regressions() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_or_pipe(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Run(format!("writing the comparison: {e}"))),
    }
}

/// Write `results_path`'s exports in `format` beside it; returns the files written.
pub fn export_run(results_path: &Path, format: &str) -> Result<Vec<PathBuf>, Failure> {
    let run = load(results_path)?;
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
        runs.push(load(&path)?);
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
    let (run_id, dir) = harness::context::create_run_dir(&reports, merged.context.git_revision.as_deref())
        .map_err(|e| Failure::usage(format!("cannot create a run directory in {}: {e}", reports.display())))?;
    merged.run_id = run_id;
    let path = dir.join("results.json");
    results::save(&path, &merged).map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    let page = crate::report::render_run(&path)?;
    eprintln!("merged {} part(s), {} experiment(s): {}", runs.len(), merged.experiments.len(), path.display());
    println!("{}", page.display());
    Ok(ExitCode::SUCCESS)
}
