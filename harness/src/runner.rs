//! Runs one experiment: setup, then every sweep point × repetition × variant (variants
//! interleaved within a repetition, so drift on a shared machine hits all of them alike),
//! then its checks and the analysis.

use crate::analysis;
use crate::experiment::{Experiment, Meta, RunCtx};
use crate::results::{ExperimentResult, ExperimentStatus, Sample, SweepInfo};
use std::time::Instant;

/// What the runner reports as it goes, for a progress bar.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Setup { experiment: &'a str },
    Sample { experiment: &'a str, variant: &'a str, point: &'a str, repetition: u32 },
    Checks { experiment: &'a str },
}

/// How many samples `meta` takes with these settings.
pub fn planned_samples(meta: &Meta, quick: bool, repetitions: u32) -> u64 {
    meta.sweep.points(quick).len() as u64 * u64::from(repetitions) * meta.variants.len() as u64
}

fn empty_result(meta: &Meta, quick: bool) -> ExperimentResult {
    ExperimentResult {
        id: meta.id.to_owned(),
        title: meta.title.to_owned(),
        guide_section: meta.guide_section.to_owned(),
        claim: meta.claim.to_owned(),
        variants: meta.variant_infos(),
        sweep: SweepInfo {
            axis: meta.sweep.axis.to_owned(),
            unit: meta.sweep.unit.to_owned(),
            points: meta.sweep.points(quick),
        },
        primary_metric: meta.primary_metric.clone(),
        metrics: meta.metrics.clone(),
        status: ExperimentStatus::Ok,
        samples: Vec::new(),
        checks: Vec::new(),
        notes: Vec::new(),
        analysis: Vec::new(),
        wall_time_ms: 0,
    }
}

/// Run `exp`; a failure is recorded in the result's status (with the samples taken before
/// it), never lost.
pub async fn run_experiment(
    exp: &dyn Experiment,
    ctx: &RunCtx,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> ExperimentResult {
    let started = Instant::now();
    let meta = exp.meta();
    let mut result = empty_result(&meta, ctx.settings.quick);
    let outcome = run_inner(exp, ctx, &meta, &mut result, progress).await;
    // Notes come after the run: they may report what setup found (an extension missing, …).
    let mut notes = exp.notes(ctx);
    notes.append(&mut result.notes);
    result.notes = notes;
    if let Err(e) = outcome {
        result.status = ExperimentStatus::Failed { error: format!("{e:#}") };
    }
    analysis::analyse(&mut result);
    result.wall_time_ms = started.elapsed().as_millis() as u64;
    result
}

async fn run_inner(
    exp: &dyn Experiment,
    ctx: &RunCtx,
    meta: &Meta,
    result: &mut ExperimentResult,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<()> {
    progress(Progress::Setup { experiment: meta.id });
    let setup_started = Instant::now();
    exp.setup(ctx).await.map_err(|e| e.context("setup"))?;
    result.notes.push(format!("Setup (schema and data) took {:.1} s.", setup_started.elapsed().as_secs_f64()));
    let points = result.sweep.points.clone();
    let mut point_checks = Vec::new();
    for point in &points {
        let observed = exp
            .setup_point(ctx, point)
            .await
            .map_err(|e| e.context(format!("setup of {} {}", meta.sweep.axis, point.label)))?;
        point_checks.extend(observed);
        for repetition in 0..ctx.settings.repetitions {
            for variant in &meta.variants {
                let snapshot = ctx.probe.begin();
                let mut sample: Sample = exp.run(ctx, variant.name, point).await.map_err(|e| {
                    e.context(format!("{}/{}/{} repetition {}", meta.id, variant.name, point.label, repetition + 1))
                })?;
                if sample.resources.is_none() {
                    sample.resources = Some(ctx.probe.end(&snapshot));
                }
                sample.variant = variant.name.to_owned();
                sample.point = point.label.clone();
                sample.repetition = repetition;
                result.samples.push(sample);
                progress(Progress::Sample {
                    experiment: meta.id,
                    variant: variant.name,
                    point: &point.label,
                    repetition,
                });
            }
        }
    }
    progress(Progress::Checks { experiment: meta.id });
    result.checks = point_checks;
    result.checks.extend(exp.checks(ctx).await.map_err(|e| e.context("checks"))?);
    Ok(())
}
