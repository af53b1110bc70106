//! Test helpers: run an experiment of the catalogue the way `bench` does, in quick mode, on
//! ephemeral servers of its own, and check what every experiment must satisfy.

use crate::experiment::{Engine, Experiment, Meta, RunCtx};
use crate::results::{ExperimentResult, ExperimentStatus, Settings};

/// Run `exp` end to end (setup, every trial of every quick sweep point, checks, analysis) on
/// servers of its own, with the shortest settings that still measure and these `--set`
/// values. In-process experiments need the micro engine's workers, which only a `cargo xtask`
/// executable provides: they are checked with `routines_build` instead.
pub async fn run_quick(exp: &dyn Experiment, sets: &[(&str, &str)]) -> anyhow::Result<ExperimentResult> {
    let meta = exp.meta();
    anyhow::ensure!(
        matches!(exp.engine(), Engine::Load(_)),
        "{} is measured in worker processes: use testing::routines_build",
        meta.id
    );
    let mut ctx = RunCtx::for_tests_needing(meta.needs, sets).await?;
    ctx.settings = Settings { repetitions: 2, ..ctx.settings };
    let result = crate::runner::run_experiment(exp, &ctx, &|_| {}).await;
    if let ExperimentStatus::Failed { error } = &result.status {
        anyhow::bail!("{} failed: {error}", meta.id);
    }
    Ok(result)
}

/// A context on servers of the experiment's own needs, with these `--set` values, and the
/// experiment set up in it (its data loaded), as a run's first step does; panics on failure.
pub async fn set_up(exp: &dyn Experiment, sets: &[(&str, &str)]) -> RunCtx {
    let ctx = RunCtx::for_tests_needing(exp.meta().needs, sets).await.expect("servers for the test");
    exp.setup(&ctx).await.expect("the experiment's setup");
    ctx
}

/// The samples `run_quick` must have taken: every case × variant × quick point × repetition,
/// each with the primary metric, or made of errors only (no success: nothing to measure).
pub fn assert_complete(meta: &Meta, result: &ExperimentResult) {
    let points = meta.sweep.points(true);
    for case in meta.case_names() {
        for v in &meta.variants {
            for p in &points {
                let n = result
                    .samples
                    .iter()
                    .filter(|s| s.case == case && s.variant == v.name && s.point == p.label)
                    .filter(|s| s.metrics.contains_key(&meta.primary_metric.name) || s.metrics.get("ok") == Some(&0.0))
                    .count();
                assert_eq!(
                    n, 2,
                    "{}: {case}/{}/{}: samples with {}",
                    meta.id, v.name, p.label, meta.primary_metric.name
                );
            }
        }
    }
}

/// Build every routine of an in-process experiment (every case × variant × point, quick and
/// full) without timing it: a variant that cannot be built fails here, not in a run.
pub fn routines_build(exp: &dyn Experiment) -> anyhow::Result<usize> {
    let Engine::Micro { routines, .. } = exp.engine() else {
        return Ok(0);
    };
    let meta = exp.meta();
    let settings = Settings::quick_for_tests();
    let input = crate::micro::Input { settings: &settings, redis_url: None };
    let mut built = 0;
    for quick in [true, false] {
        for point in meta.sweep.points(quick) {
            for case in meta.case_names() {
                // Go originals have no Rust routine: `micro::go` runs them.
                for v in meta.variants.iter().filter(|v| v.go.is_none()) {
                    let at = crate::results::Trial { case, variant: v.name, point: &point, offered: None, round: 0 };
                    match routines.routine(&input, at) {
                        Ok(_) => built += 1,
                        // Routines with a round trip to Redis need a server: building them is
                        // what a run checks.
                        Err(e) if format!("{e:#}").contains("Redis") => {}
                        Err(e) => anyhow::bail!("{}: {at}: {e:#}", meta.id),
                    }
                }
            }
        }
    }
    Ok(built)
}
