//! `cargo xtask selftest`: runs `xtask::selftest`'s two experiments (micro engine, load engine
//! on an ephemeral Redis) through a harness session (100 ms samples, the given repetitions),
//! then counts, over each one's 20 comparisons, how often the A/A pair was called different
//! and how often each known slowdown was found. The rates are
//! added to the run's notes and printed; the run and its report stay like any other.

use crate::flags::default_reports_dir;
use crate::{report, Failure};
use harness::provision::Request;
use harness::results::{self, ExperimentResult, ExperimentStatus, Settings, VerdictKind};
use harness::session::{Session, SessionPlan};
use harness::Experiment;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn selftest(reps: u32, out: Option<PathBuf>) -> Result<ExitCode, Failure> {
    if !(4..=100).contains(&reps) {
        return Err(Failure::usage("--reps must be between 4 and 100 (the U test needs 4 a side to reach p ≤ 0.05)"));
    }
    let experiments: Vec<Box<dyn Experiment>> =
        vec![Box::new(xtask::selftest::SelfTest), Box::new(xtask::selftest::SelfTestLoad)];
    let settings = Settings { repetitions: reps, order_seed: std::process::id().into(), ..Settings::quick_for_tests() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from)?;
    let (mut results, path) = runtime.block_on(async {
        let (mut session, _) = Session::start(SessionPlan {
            experiments: &experiments,
            settings,
            request: Request { need_redis: true, ..Request::default() },
            out: out.unwrap_or_else(default_reports_dir),
            instructions: false,
            arguments: std::env::args().collect(),
            workspace: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
            against: None,
        })
        .await
        .map_err(crate::bench::failure)?;
        for e in &experiments {
            let m = e.meta();
            eprintln!(
                "selftest: {} ({} engine): {} comparisons × {} variants × {reps} repetitions…",
                m.id,
                if e.engine().is_micro() { "micro" } else { "load" },
                xtask::selftest::COMPARISONS,
                m.variants.len()
            );
            let (r, _) = session.run(e.as_ref(), &|_| {}).await.map_err(crate::bench::failure)?;
            if let ExperimentStatus::Failed { error } = &r.status {
                return Err(Failure::Run(format!("{} failed: {error}", m.id)));
            }
        }
        session.finish().map_err(crate::bench::failure)
    })?;
    for e in &mut results.experiments {
        let lines = rates(e);
        for l in &lines {
            println!("{}: {l}", e.id);
        }
        e.notes.extend(lines);
    }
    results::save(&path, &results).map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    let page = report::render_run(&path)?;
    eprintln!("report: {}", page.display());
    Ok(ExitCode::SUCCESS)
}

/// Over the comparisons of `e`: how often the A/A pair was called different, how often each
/// slowdown was found, and the smallest found at least 80 % of the time.
fn rates(e: &ExperimentResult) -> Vec<String> {
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
    let pct = |a: usize, n: usize| if n == 0 { 0.0 } else { 100.0 * a as f64 / n as f64 };
    let (fp, n0) = rate("a-again", &|v| matches!(v, VerdictKind::Better | VerdictKind::Worse));
    let mut lines = vec![format!(
        "A/A: {fp} of {n0} comparisons of the same operation with itself were called different ({:.0} %; the goal is at most 5 %).",
        pct(fp, n0)
    )];
    let mut smallest = None;
    for v in e.variants.iter().filter_map(|v| v.name.strip_prefix("plus-").map(|p| (v.name.as_str(), p))) {
        let (name, size) = v;
        let (found, n) = rate(name, &|v| v == VerdictKind::Worse);
        let size = size.trim_end_matches("pct");
        lines
            .push(format!("+{size} %: the slowdown was found in {found} of {n} comparisons ({:.0} %).", pct(found, n)));
        if smallest.is_none() && n > 0 && pct(found, n) >= 80.0 {
            smallest = Some(size.to_owned());
        }
    }
    lines.push(match smallest {
        Some(s) => format!("The smallest slowdown found in at least 80 % of the comparisons: +{s} % (the minimum detectable effect at these settings)."),
        None => "No slowdown tried was found in 80 % of the comparisons: the minimum detectable effect is larger than the largest tried.".to_owned(),
    });
    lines
}
