//! `cargo xtask compare OLD [NEW]`: two runs (or the two revisions of one `--against` run)
//! compared by `harness::compare`, printed as text, markdown or JSON, with an HTML page.

use crate::flags::{default_reports_dir, CompareArgs};
use crate::report::latest_run;
use crate::runs::{read, resolve};
use crate::Failure;
use harness::compare::{self, Options};
use std::process::ExitCode;

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
    let first = read(&old_path)?;
    // One run of two revisions (`bench --against`): its two sides, with the narrower noise
    // band interleaving earns.
    let (old, new, opts) = match (&args.new, first.split_revisions()) {
        (None, Some((base, this))) => (base, this, options(&args, Options::interleaved())?),
        (new, _) => {
            let new_path = match new {
                Some(n) => resolve(n, &reports)?,
                None => latest_run(&reports)?.join("results.json"),
            };
            (first, read(&new_path)?, options(&args, Options::default())?)
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
