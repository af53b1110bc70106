//! `cargo xtask selftest`: runs `xtask::selftest` through a harness session (quick-mode
//! samples, the given repetitions), then counts, over its 20 comparisons, how often the A/A
//! pair was called different and how often the known slowdowns were found. The rates are
//! added to the run's notes and printed; the run and its report stay like any other.

use crate::flags::default_reports_dir;
use crate::{report, Failure};
use harness::provision::Request;
use harness::results::{self, Settings, VerdictKind};
use harness::session::{Session, SessionPlan};
use harness::Experiment;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn selftest(reps: u32, out: Option<PathBuf>) -> Result<ExitCode, Failure> {
    if !(4..=100).contains(&reps) {
        return Err(Failure::usage("--reps must be between 4 and 100 (the U test needs 4 a side to reach p ≤ 0.05)"));
    }
    let experiments: Vec<Box<dyn Experiment>> = vec![Box::new(xtask::selftest::SelfTest)];
    let settings = Settings { repetitions: reps, order_seed: std::process::id().into(), ..Settings::quick_for_tests() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from)?;
    let (mut results, path) = runtime.block_on(async {
        let (mut session, _) = Session::start(SessionPlan {
            experiments: &experiments,
            settings,
            request: Request::default(),
            out: out.unwrap_or_else(default_reports_dir),
            instructions: false,
            arguments: std::env::args().collect(),
            workspace: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
            against: None,
        })
        .await
        .map_err(crate::bench::failure)?;
        eprintln!("selftest: {} comparisons × 4 variants × {reps} repetitions…", xtask::selftest::COMPARISONS);
        session.run(experiments[0].as_ref(), &|_| {}).await.map_err(crate::bench::failure)?;
        session.finish().map_err(crate::bench::failure)
    })?;
    let e = &mut results.experiments[0];
    let rate = |variant: &str, hit: &dyn Fn(VerdictKind) -> bool| {
        let verdicts: Vec<VerdictKind> = e
            .analysis
            .iter()
            .flat_map(|p| p.comparisons.iter())
            .filter(|c| c.variant == variant)
            .map(|c| c.verdict)
            .collect();
        (verdicts.iter().filter(|v| hit(**v)).count(), verdicts.len())
    };
    let (fp, n0) = rate("a-again", &|v| matches!(v, VerdictKind::Better | VerdictKind::Worse));
    let (d5, n5) = rate("plus-5pct", &|v| v == VerdictKind::Worse);
    let (d10, n10) = rate("plus-10pct", &|v| v == VerdictKind::Worse);
    let pct = |a: usize, n: usize| if n == 0 { 0.0 } else { 100.0 * a as f64 / n as f64 };
    let lines = [
        format!(
            "A/A: {fp} of {n0} comparisons of a routine with itself were called different ({:.0} %; the goal is at most 5 %).",
            pct(fp, n0)
        ),
        format!("+5 %: the slowdown was found in {d5} of {n5} comparisons ({:.0} %; the goal is at least 80 %).", pct(d5, n5)),
        format!("+10 %: found in {d10} of {n10} comparisons ({:.0} %).", pct(d10, n10)),
    ];
    for l in &lines {
        println!("{l}");
    }
    e.notes.extend(lines.iter().cloned());
    results::save(&path, &results).map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    let page = report::render_run(&path)?;
    eprintln!("report: {}", page.display());
    Ok(ExitCode::SUCCESS)
}
