//! Runs one experiment: setup, then every sweep point × repetition × variant (variants
//! interleaved within a repetition, so drift on a shared machine hits all of them alike),
//! then its checks and the analysis.

use crate::analysis;
use crate::experiment::{self, Experiment, Meta, RunCtx, Trial};
use crate::redact::redact;
use crate::results::{ExperimentResult, ExperimentStatus, Sample, SweepInfo};
use std::time::Instant;

/// What the runner reports as it goes, for a progress bar.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Setup { experiment: &'a str },
    Sample { experiment: &'a str, case: &'a str, variant: &'a str, point: &'a str, repetition: u32 },
    Checks { experiment: &'a str },
}

/// An experiment stopped because a server died or stopped answering: the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ServerFault(String);

/// The order the trials (case × variant) run in at sweep point `point_index`, repetition `repetition`: a
/// permutation shuffled from `seed` and the point, rotated by the repetition. Over as many
/// repetitions as there are variants each variant runs once in every position, so an order
/// effect (caches warmed by the one before, a table grown by it, the machine heating up) does
/// not land on the same variant every time; the seed is recorded in results.json.
pub fn variant_order(n: usize, seed: u64, point_index: usize, repetition: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = crate::stats::SplitMix64::new(seed ^ (point_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    if n > 0 {
        order.rotate_left(repetition as usize % n);
    }
    order
}

/// How many samples `meta` takes with these settings.
pub fn planned_samples(meta: &Meta, quick: bool, repetitions: u32) -> u64 {
    meta.sweep.points(quick).len() as u64
        * u64::from(repetitions)
        * meta.variants.len() as u64
        * meta.case_names().len() as u64
}

fn empty_result(meta: &Meta, quick: bool) -> ExperimentResult {
    ExperimentResult {
        id: meta.id.to_owned(),
        title: meta.title.to_owned(),
        guide_section: meta.guide_section.to_owned(),
        claim: meta.claim.to_owned(),
        variants: meta.variant_infos(),
        cases: meta.case_infos(),
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
        headline: None,
        summaries: Vec::new(),
        metric_comparisons: Vec::new(),
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
    result.notes = notes.iter().map(|n| redact(n)).collect();
    if let Err(e) = outcome {
        // A driver's "connection closed" says little; a dead or hung server is the cause.
        // (When the run found that out itself, the error says so already.)
        let error = if e.downcast_ref::<ServerFault>().is_some() {
            format!("{e:#}")
        } else {
            match ctx.env.health().await {
                Err(server) => format!("{server}: {e:#}"),
                Ok(()) => format!("{e:#}"),
            }
        };
        result.status = ExperimentStatus::Failed { error: redact(&error) };
    }
    analysis::analyse(&mut result, meta.claim());
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
    for (point_index, point) in points.iter().enumerate() {
        let observed = exp
            .setup_point(ctx, point)
            .await
            .map_err(|e| e.context(format!("setup of {} {}", meta.sweep.axis, point.label)))?;
        point_checks.extend(observed);
        // Every case × variant is one trial; the trials are interleaved like variants.
        let trials: Vec<(&str, &str)> =
            meta.case_names().into_iter().flat_map(|case| meta.variants.iter().map(move |v| (case, v.name))).collect();
        for repetition in 0..ctx.settings.repetitions {
            let order = variant_order(trials.len(), ctx.settings.order_seed, point_index, repetition);
            for &ti in &order {
                let (case, variant) = trials[ti];
                let at = Trial { case, variant, point };
                let snapshot = ctx.probe.begin();
                let mut sample: Sample = experiment::measure(exp, meta.id, ctx, at)
                    .await
                    .map_err(|e| e.context(format!("{}/{at} repetition {}", meta.id, repetition + 1)))?;
                if sample.resources.is_none() {
                    sample.resources = Some(ctx.probe.end(&snapshot));
                }
                sample.case = case.to_owned();
                sample.variant = variant.to_owned();
                sample.point = point.label.clone();
                sample.repetition = repetition;
                sample.errors = std::mem::take(&mut sample.errors).into_iter().map(|(k, v)| (redact(&k), v)).collect();
                sample.invalid = analysis::invalid_reason(&sample);
                let failed = sample.invalid.clone();
                result.samples.push(sample);
                progress(Progress::Sample { experiment: meta.id, case, variant, point: &point.label, repetition });
                // A sample made of errors: if a server is gone or stuck, nothing after this can
                // be measured, and the experiment ends here with the cause. Otherwise the sample
                // stays, invalid, and the run goes on.
                if let Some(why) = failed {
                    if let Err(server) = ctx.env.health().await {
                        return Err(anyhow::Error::new(ServerFault(format!(
                            "{server}, during {}/{at} repetition {} ({why})",
                            meta.id,
                            repetition + 1
                        ))));
                    }
                }
            }
        }
    }
    progress(Progress::Checks { experiment: meta.id });
    result.checks = point_checks;
    result.checks.extend(exp.checks(ctx).await.map_err(|e| e.context("checks"))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_runs_in_every_position_over_n_repetitions() {
        for n in 1..7 {
            for point in 0..3 {
                let mut seen = vec![vec![0u32; n]; n];
                for rep in 0..n as u32 {
                    let order = variant_order(n, 42, point, rep);
                    let mut sorted = order.clone();
                    sorted.sort();
                    assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
                    for (pos, &v) in order.iter().enumerate() {
                        seen[v][pos] += 1;
                    }
                }
                assert!(seen.iter().flatten().all(|&c| c == 1), "n={n}: {seen:?}");
            }
        }
    }

    #[test]
    fn the_order_changes_with_the_seed_and_is_reproducible() {
        assert_eq!(variant_order(5, 7, 0, 0), variant_order(5, 7, 0, 0));
        let distinct: std::collections::BTreeSet<Vec<usize>> = (0..20).map(|s| variant_order(5, s, 0, 0)).collect();
        assert!(distinct.len() > 5, "the seed shuffles: {distinct:?}");
    }
}
