//! Runs one experiment: setup, then every sweep point × repetition × variant (variants
//! interleaved within a repetition, so drift on a shared machine hits all of them alike),
//! then its checks and the analysis. With `bench --against`, on two builds' sides at once,
//! each trial run on both back to back.

use crate::analysis;
use crate::experiment::{self, BoxFuture, Experiment, Meta, RunCtx, Trial};
use crate::redact::redact;
use crate::results::{
    Check, ExperimentResult, ExperimentStatus, PointRounds, Sample, Sequential, StopReason, SweepInfo, SweepPoint,
    TimeSpent,
};
use std::time::{Duration, Instant};

/// What the runner reports as it goes, for a progress bar.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Setup {
        experiment: &'a str,
    },
    Sample {
        experiment: &'a str,
        case: &'a str,
        variant: &'a str,
        point: &'a str,
        repetition: u32,
    },
    /// A step of a variant's capacity search, at `rate` arrivals per second.
    Capacity {
        experiment: &'a str,
        variant: &'a str,
        rate: f64,
    },
    /// A variant's profiled trial (`bench --profile`).
    Profile {
        experiment: &'a str,
        variant: &'a str,
    },
    Checks {
        experiment: &'a str,
    },
}

/// An experiment stopped because a server died or stopped answering: the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ServerFault(String);

/// The order the trials (case × variant) run in at sweep point `point_index`, repetition
/// `repetition`: a Williams design over the trials, relabelled by a permutation shuffled from
/// `seed` and the point. Over one cycle of the design (as many repetitions as there are
/// trials, twice that for an odd number) every trial runs equally often in every position and
/// directly after every other trial equally often, so neither an order effect (the machine
/// heating up) nor a carry-over (caches warmed by the trial before, a table grown by it) lands
/// on the same variant every time; the seed is recorded in results.json.
pub fn variant_order(n: usize, seed: u64, point_index: usize, repetition: u32) -> Vec<usize> {
    let mut labels: Vec<usize> = (0..n).collect();
    let mut rng = crate::stats::SplitMix64::new(seed ^ (point_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..n).rev() {
        labels.swap(i, rng.below(i + 1));
    }
    if n == 0 {
        return labels;
    }
    // Row r of the design: 0, 1, n-1, 2, n-2, … shifted by r (mod n); for odd n the rows
    // n..2n are those rows reversed.
    let cycle = if n % 2 == 0 { n } else { 2 * n };
    let r = repetition as usize % cycle;
    let first = |j: usize| match j {
        0 => 0,
        j if j % 2 == 1 => j.div_ceil(2),
        j => n - j / 2,
    };
    let mut row: Vec<usize> = (0..n).map(|j| labels[(first(j) + r) % n]).collect();
    if r >= n {
        row.reverse();
    }
    row
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
        outcome_errors: meta.outcome_errors.iter().map(|k| (*k).to_owned()).collect(),
        status: ExperimentStatus::Ok,
        samples: Vec::new(),
        checks: Vec::new(),
        notes: Vec::new(),
        analysis: Vec::new(),
        headline: None,
        finding: None,
        go_finding: None,
        targets: Vec::new(),
        summaries: Vec::new(),
        metric_comparisons: Vec::new(),
        capacity: Vec::new(),
        profiles: Vec::new(),
        heap_profiles: Vec::new(),
        sequential: None,
        rounds: Vec::new(),
        rule: Some(meta.rule(&meta.sweep.points(quick))),
        time: None,
        wall_time_ms: 0,
    }
}

/// The result of an experiment that could not start (its trial servers did not come up).
pub fn failed_result(meta: &Meta, quick: bool, error: &str) -> ExperimentResult {
    let mut r = empty_result(meta, quick);
    r.status = ExperimentStatus::Failed { error: redact(error) };
    r
}

/// One build's hands on an experiment: its hooks, called by the runner. `Local` runs them in
/// this process; `trial_server::Remote` in a trial server of another revision's build
/// (`bench --against`), so that the two builds' trials interleave.
pub trait Hooks: Send {
    /// The experiment's `setup`.
    fn setup(&mut self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// The experiment's `setup_point`: what it observed there.
    fn setup_point<'a>(&'a mut self, point: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>>;
    /// One sample of `at`, with its resources, case, variant and point filled in and its
    /// error kinds redacted.
    fn measure<'a>(&'a mut self, at: Trial<'a>, repetition: u32) -> BoxFuture<'a, anyhow::Result<Sample>>;
    /// The experiment's `checks`.
    fn checks(&mut self) -> BoxFuture<'_, anyhow::Result<Vec<Check>>>;
    /// The experiment's notes, after the run (with where a slowdown was injected).
    fn notes(&mut self) -> BoxFuture<'_, Vec<String>>;
    /// This side's build has no such variant or case (`bench --against` a revision from
    /// before it was added or after it was removed): its trials run on the other sides only.
    fn lacks(&self, _case: &str, _variant: &str) -> bool {
        false
    }
    /// Its trials run in this process (the load engine), so a profile of this process sees
    /// them; false for the micro engine's worker processes and another build's trial server.
    fn in_process(&self) -> bool {
        false
    }
    /// `bench --profile` for a micro experiment: dhat's heap profile of `at` written to
    /// `file`; false where there is none to take.
    fn heap_profile<'a>(
        &'a mut self,
        _at: Trial<'a>,
        _file: &'a std::path::Path,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async { Ok(false) })
    }
}

/// Run `exp`; a failure is recorded in the result's status (with the samples taken before
/// it), never lost.
pub async fn run_experiment(
    exp: &dyn Experiment,
    ctx: &RunCtx,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> ExperimentResult {
    let meta = exp.meta();
    let mut local = Local::new(exp, ctx);
    run_sides(&meta, ctx, &mut [&mut local], progress).await.pop().expect("one side, one result")
}

/// Run an experiment on each of `sides` (one build, or two revisions' builds), with one result
/// per side. Setup runs on each side in turn; then every trial runs on every side, back to
/// back, the side that goes first alternating, so drift hits the sides alike as it hits the
/// variants. A failure on either side stops both, and is recorded in the status of each.
pub async fn run_sides(
    meta: &Meta,
    ctx: &RunCtx,
    sides: &mut [&mut dyn Hooks],
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Vec<ExperimentResult> {
    let started = Instant::now();
    let mut results: Vec<ExperimentResult> = sides.iter().map(|_| empty_result(meta, ctx.settings.quick)).collect();
    let outcome = run_inner(meta, ctx, sides, &mut results, progress).await;
    // Notes come after the run: they may report what setup found (an extension missing, …).
    for (side, result) in sides.iter_mut().zip(&mut results) {
        let mut notes = side.notes().await;
        notes.append(&mut result.notes);
        result.notes = notes.iter().map(|n| redact(n)).collect();
    }
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
        for result in &mut results {
            result.status = ExperimentStatus::Failed { error: redact(&error) };
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for result in &mut results {
        crate::decide::decide(result, meta, cores);
        result.wall_time_ms = ms(started.elapsed());
        if let Some(t) = result.time.as_mut() {
            t.after_ms = result.wall_time_ms.saturating_sub(t.setup_ms + t.samples_ms + t.capacity_ms);
        }
    }
    results
}

/// Noisy neighbours: the most cores other processes (and steal) took over one sample of
/// `point`'s round `repetition`; 0 where they were not measured.
pub fn neighbours(result: &ExperimentResult, point: &str, repetition: u32) -> f64 {
    result
        .samples
        .iter()
        .filter(|s| s.point == point && s.repetition == repetition)
        .filter_map(|s| s.resources.as_ref().and_then(|r| Some(r.others?.cores(r.wall_s))))
        .fold(0.0, f64::max)
}

/// Leave every sample of `point`'s round `repetition` out of the verdicts, so that its pairs
/// are dropped alike (a sample already left out keeps its first reason).
pub fn leave_out_round(result: &mut ExperimentResult, point: &str, repetition: u32, why: &str) {
    for s in result.samples.iter_mut().filter(|s| s.point == point && s.repetition == repetition) {
        s.invalid.get_or_insert_with(|| why.to_owned());
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Add to every result's time accounts.
fn charge(results: &mut [ExperimentResult], add: impl Fn(&mut TimeSpent)) {
    for r in results {
        add(r.time.get_or_insert_with(TimeSpent::default));
    }
}

/// What one sample has cost so far in this experiment (warm-up, measurement and its fixed
/// costs), or before the first its set warm-up and measurement at what samples usually cost
/// (`experiment::SAMPLE_COST`).
fn per_sample(result: &ExperimentResult, meta: &Meta, ctx: &RunCtx) -> std::time::Duration {
    match &result.time {
        Some(t) if t.samples > 0 => std::time::Duration::from_millis(t.samples_ms / u64::from(t.samples)),
        _ => meta.sample_time(&ctx.settings).mul_f64(experiment::SAMPLE_COST),
    }
}

/// The sequential plan of a run on one build whose settings allow stopping early
/// (`Settings::min_rounds` from 2 up to below the cap); none: every point runs the cap.
/// Its band is the experiment's smallest effect that matters, its family the claim's points
/// that are not controls (one where the points are independent trials).
pub fn sequential_plan(ctx: &RunCtx, meta: &Meta, sides: usize, result: &ExperimentResult) -> Option<Sequential> {
    let (min, cap) = (ctx.settings.min_rounds, ctx.settings.repetitions);
    if sides != 1 || min < 2 || min >= cap {
        return None;
    }
    let looks = crate::stats::Looks::geometric(min, cap, analysis::ALPHA);
    let rule = result.rule.clone().unwrap_or_default();
    Some(Sequential {
        min_rounds: min,
        cap,
        looks: looks.rounds,
        alpha_per_look: looks.alpha_per_look,
        band: rule.band(),
        family: if meta.independent_points {
            1
        } else {
            result.sweep.points.iter().filter(|p| !rule.is_control(&p.label)).count().max(1) as u32
        },
    })
}

async fn run_inner(
    meta: &Meta,
    ctx: &RunCtx,
    sides: &mut [&mut dyn Hooks],
    results: &mut [ExperimentResult],
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<()> {
    progress(Progress::Setup { experiment: meta.id });
    // Every result accounts the whole run's time (both sides' under `--against`), so that its
    // parts add up to its wall time.
    let set_per_sample = ctx.settings.warmup + ctx.settings.duration;
    for result in results.iter_mut() {
        result.time = Some(TimeSpent { set_per_sample_ms: ms(set_per_sample), ..TimeSpent::default() });
    }
    for k in 0..sides.len() {
        let setup_started = Instant::now();
        let outcome = sides[k].setup().await;
        charge(results, |t| t.setup_ms += ms(setup_started.elapsed()));
        outcome.map_err(|e| e.context("setup"))?;
        let result = &mut results[k];
        if !meta.outcome_errors.is_empty() {
            result.notes.push(format!(
                "Errors of the kinds {} are this technique's outcome, not a broken measurement: they are counted by kind and in the error rate, and a sample with successes stays valid however many it has (latency and throughput still count successes only; a sample without a success never reaches a verdict). Any other error kind above {}% makes a sample invalid, as everywhere.",
                meta.outcome_errors.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "),
                crate::analysis::MAX_ERROR_RATE * 100.0
            ));
        }
    }
    // Every case × variant is one trial; the trials are interleaved like variants.
    let trials: Vec<(&str, &str)> =
        meta.case_names().into_iter().flat_map(|case| meta.variants.iter().map(move |v| (case, v.name))).collect();
    let sides_count = sides.len();
    for (side, result) in sides.iter().zip(results.iter_mut()) {
        let lacking: Vec<String> = trials
            .iter()
            .filter(|(case, variant)| side.lacks(case, variant))
            .map(|(case, variant)| if case.is_empty() { (*variant).to_owned() } else { format!("{variant} in {case}") })
            .collect();
        // One build alone lacks only what cannot run here (Go originals without Go): its own
        // note says so.
        if !lacking.is_empty() && sides_count > 1 {
            result.notes.push(format!(
                "This build has no {}: those trials ran on the other side only, so their samples here are none and the revisions are not compared there.",
                lacking.join(", ")
            ));
        }
    }
    let plan = sequential_plan(ctx, meta, sides.len(), &results[0]);
    for result in results.iter_mut() {
        result.sequential = plan.clone();
    }
    let mut claim = meta.claim();
    let go_claim = meta.go_claim().filter(|g| g.variant.is_some_and(|v| !sides[0].lacks(g.case, v)));
    // The trials outside the claim ride along: in a point's first `ride_along` rounds (every
    // round without a limit), and under `--budget` only where the point's share leaves room
    // for them beside the claim's minimum rounds. Without a claim every trial is the claim's.
    // Where they ride along (quick), the Go original's claim does too, in its own first
    // rounds (`Settings::go_rounds`), and the port's claim alone decides when a point stops.
    let go_rounds = ctx.settings.go_rounds().filter(|_| go_claim.is_some() && sides.len() == 1);
    let go_pair = if go_rounds.is_some() { meta.go_claim_trials() } else { Vec::new() };
    let go_stops = if go_rounds.is_some() { None } else { go_claim };
    let mut claim_trials = meta.claim_trials().map(|mut c| {
        c.retain(|t| !go_pair.contains(t));
        c
    });
    let mut go_cut: Vec<String> = Vec::new();
    let mut cut_riders: Vec<String> = Vec::new();
    let points = results[0].sweep.points.clone();
    // Under `--budget`, a point past its share of the experiment's time stops once it has its
    // minimum rounds (the plan's, or up to 3 without one); the rest rolls forward.
    let min_rounds = plan.as_ref().map_or(ctx.settings.repetitions.min(3), |p| p.min_rounds);
    for (point_index, point) in points.iter().enumerate() {
        let point_share = |d: Instant| {
            let now = Instant::now();
            now + d.saturating_duration_since(now) / (points.len() - point_index) as u32
        };
        let point_deadline = ctx.deadline.map(point_share);
        // Rounds the riders rode along in, and those their ride-along limit allowed.
        let (mut rode, mut might) = (0, 0);
        let mut rounds = PointRounds {
            point: point.label.clone(),
            rounds: 0,
            stop: StopReason::Fixed,
            detectable: None,
            disturbed: 0,
        };
        for k in 0..sides.len() {
            let setup_started = Instant::now();
            let observed = sides[k].setup_point(point).await;
            charge(results, |t| t.setup_ms += ms(setup_started.elapsed()));
            let observed = observed.map_err(|e| e.context(format!("setup of {} {}", meta.sweep.axis, point.label)))?;
            results[k].checks.extend(observed);
        }
        // The claim's variant failed a correctness check before the rounds (in setup or a
        // point's): the correct variant that stands in for it (`finding::correct_stand_in`)
        // joins the claim's trials and decides when a point stops. A check made after the
        // rounds comes too late for this; its stand-in rests on the rounds it rode along in.
        if let Some(stand_in) = crate::finding::correct_stand_in(&results[0], meta.claim()) {
            if let (Some(v), Some(deciding)) =
                (meta.variants.iter().find(|v| v.name == stand_in), claim_trials.as_mut())
            {
                if !deciding.contains(&(claim.case, v.name)) {
                    deciding.push((claim.case, v.name));
                }
                claim.variant = Some(v.name);
            }
        }
        let in_claim = |t: (&str, &str)| claim_trials.as_ref().is_none_or(|c| c.contains(&t));
        let is_go = |t: (&str, &str)| go_pair.contains(&t);
        let go_riders = trials.iter().filter(|&&t| is_go(t) && !in_claim(t)).count() as u32;
        let riders = trials.iter().filter(|&&t| !in_claim(t)).count() as u32 - go_riders;
        let claim_count = trials.len() as u32 - riders - go_riders;
        let mut go_ran = 0;
        // A disturbed round is replaced by another, up to as many again as the cap: the looks,
        // the cap and the budget's minimum count the rounds that stand.
        for repetition in 0..ctx.settings.repetitions * 2 {
            if repetition >= ctx.settings.repetitions + rounds.disturbed {
                break;
            }
            let stand = rounds.rounds - rounds.disturbed;
            // Riders may ride along (their ride-along limit allows) and do (the budget has room).
            // The Go claim's pair is the claim's in its own rounds (its minimum, reserved by
            // the budget as the port's claim's is): the other riders need room beside both.
            let go_ride = go_riders > 0 && go_rounds.is_some_and(|n| stand < n);
            go_ran += u32::from(go_ride);
            let go_left = go_rounds.map_or(0, |n| go_riders * n.saturating_sub(stand));
            let may_ride = riders > 0 && ctx.settings.ride_along.is_none_or(|n| stand < n);
            let ride = may_ride
                && point_deadline.is_none_or(|d| {
                    let claim_left = claim_count * min_rounds.saturating_sub(stand).max(1) + go_left;
                    Instant::now() + per_sample(&results[0], meta, ctx) * (claim_left + riders) <= d
                });
            rode += u32::from(ride);
            might += u32::from(may_ride);
            let order = variant_order(trials.len(), ctx.settings.order_seed, point_index, repetition);
            for (position, &ti) in order.iter().enumerate() {
                let (case, variant) = trials[ti];
                let t = (case, variant);
                if !in_claim(t) && !(if is_go(t) { go_ride } else { ride }) {
                    continue;
                }
                let at = Trial { case, variant, point, offered: None, round: repetition };
                for k in 0..sides.len() {
                    // Which side goes first alternates from trial to trial and repetition to
                    // repetition.
                    let s = (k + position + repetition as usize) % sides.len();
                    if sides[s].lacks(case, variant) {
                        continue;
                    }
                    let sample_started = Instant::now();
                    let sample = sides[s].measure(at, repetition).await;
                    charge(results, |t| {
                        t.samples_ms += ms(sample_started.elapsed());
                        t.samples += 1;
                    });
                    let mut sample =
                        sample.map_err(|e| e.context(format!("{}/{at} repetition {}", meta.id, repetition + 1)))?;
                    // An experiment's own reason (its technique did not act) stands.
                    if sample.invalid.is_none() {
                        sample.invalid = analysis::invalid_reason(&sample, &results[s].outcome_errors);
                    }
                    if let Some(why) = analysis::starvation(&sample) {
                        let share = sample.metrics.get(crate::results::WORKER_OPS_MIN_SHARE).copied().unwrap_or(0.0);
                        let mut c = Check::observation(variant, Some(&point.label), "starved worker", share, why);
                        c.case = case.to_owned();
                        results[s].checks.push(c);
                    }
                    let failed = sample.invalid.clone();
                    results[s].samples.push(sample);
                    progress(Progress::Sample { experiment: meta.id, case, variant, point: &point.label, repetition });
                    // A sample made of errors: if a server is gone or stuck, nothing after this
                    // can be measured, and the experiment ends here with the cause. Otherwise
                    // the sample stays, invalid, and the run goes on.
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
            rounds.rounds = repetition + 1;
            if let Some(limit) = ctx.settings.noise_limit {
                let worst = results.iter().map(|r| neighbours(r, &point.label, repetition)).fold(0.0, f64::max);
                if worst > limit {
                    rounds.disturbed += 1;
                    let why = format!(
                        "a disturbed round: other processes took {worst:.2} cores during it (limit {limit:.2})"
                    );
                    for r in results.iter_mut() {
                        leave_out_round(r, &point.label, repetition, &why);
                    }
                }
            }
            // At a planned look, a point whose claim comparison is decided stops; the other
            // variants rode along in the same rounds.
            if let Some(plan) = &plan {
                if claim.variant.is_some() {
                    rounds.stop = StopReason::Cap;
                    let look = plan.looks.contains(&(rounds.rounds - rounds.disturbed));
                    // The Go original's claim, where it runs here, is decided too before a
                    // point stops (the same rule, its own comparison).
                    let go_decided =
                        go_stops.is_none_or(|g| analysis::claim_decided(&results[0], g, &point.label, plan));
                    if look && analysis::claim_decided(&results[0], claim, &point.label, plan) && go_decided {
                        rounds.stop = StopReason::Decided;
                        break;
                    }
                }
            }
            // Two builds (`--against`) keep their fixed rounds: a gate with fewer cannot decide.
            let out_of_time = sides.len() == 1 && point_deadline.is_some_and(|d| Instant::now() >= d);
            let stand = rounds.rounds - rounds.disturbed;
            if out_of_time && stand >= min_rounds && stand < ctx.settings.repetitions {
                rounds.stop = StopReason::Budget;
                break;
            }
        }
        // Riders cut short by the budget (not by their ride-along limit) are said per point.
        if ctx.deadline.is_some() && rode < might {
            cut_riders.push(format!("{} {}: {rode} of {might}", meta.sweep.axis, point.label));
        }
        if go_ran > 0 {
            go_cut.push(format!("{} {}: {go_ran}", meta.sweep.axis, point.label));
        }
        for result in results.iter_mut() {
            result.rounds.push(rounds.clone());
        }
    }
    if !cut_riders.is_empty() {
        for result in results.iter_mut() {
            result.notes.push(format!(
                "The time budget left room for the trials outside the claim in fewer rounds than the claim's (rounds they rode along in, of those they might have): {}. Their medians and comparisons rest on those rounds; --budget none (or a larger one) runs them in every round.",
                cut_riders.join("; ")
            ));
        }
    }
    if let (Some(n), false) = (go_rounds, go_cut.is_empty()) {
        for result in results.iter_mut() {
            result.notes.push(format!(
                "A quick run decides the port's claim: the Go original's claim ran beside it in each point's first {n} rounds only (rounds it ran, disturbed ones included: {}), and the port's claim alone decided when a point stopped. Its finding rests on those rounds; a full run runs it in every round until it is decided too.",
                go_cut.join("; ")
            ));
        }
    }
    let extra_started = Instant::now();
    if let (Some(plan), true) = (&meta.capacity, ctx.settings.capacity) {
        if let ([side], [result]) = (&mut *sides, &mut *results) {
            let outcome = capacity_stage(meta, plan, ctx, &mut **side, result, progress).await;
            charge(results, |t| t.capacity_ms += ms(extra_started.elapsed()));
            outcome?;
        } else {
            for result in results.iter_mut() {
                result.notes.push("The capacity search does not run with --against: it measures one build's rates, not a pair of trials.".into());
            }
        }
    }
    let profile_started = Instant::now();
    if let (true, [side], [result]) = (ctx.settings.profile, &mut *sides, &mut *results) {
        let outcome = profile_stage(meta, ctx, &mut **side, result, progress).await;
        charge(results, |t| t.capacity_ms += ms(profile_started.elapsed()));
        outcome?;
    }
    progress(Progress::Checks { experiment: meta.id });
    for (side, result) in sides.iter_mut().zip(results.iter_mut()) {
        result.checks.extend(side.checks().await.map_err(|e| e.context("checks"))?);
    }
    Ok(())
}

/// The capacity search and stress of every variant at the plan's case and point, in a
/// shuffled order, each starting from half the throughput its closed-loop samples measured
/// there. A trial that fails ends that variant's search with the error recorded; a server
/// that died ends the experiment, as in the sweep.
async fn capacity_stage(
    meta: &Meta,
    plan: &experiment::CapacityPlan,
    ctx: &RunCtx,
    side: &mut dyn Hooks,
    result: &mut ExperimentResult,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<()> {
    use crate::load::capacity::{CapacityResult, Recovery, Search, Searcher};
    use crate::load::Offered;
    let step = ctx.settings.duration.min(experiment::CAPACITY_STEP);
    let case = if plan.case.is_empty() { meta.claim_case() } else { plan.case };
    let point = meta
        .sweep
        .points(ctx.settings.quick)
        .into_iter()
        .chain(meta.sweep.points(!ctx.settings.quick))
        .find(|p| p.value == plan.point)
        .unwrap_or_else(|| SweepPoint { label: plan.point.to_string(), value: plan.point });
    // Under `--budget` only the claim's variant and its baseline are searched (every variant
    // without a claim): the search is never cut short, and every variant's would take minutes.
    let claim_pair: Vec<&str> =
        meta.claim_trials().map(|t| t.into_iter().take(1).map(|(_, v)| v).collect()).unwrap_or_default();
    // A Go original's load is a closed loop of its own, which no offered rate paces: it is
    // never searched.
    let in_go = |v: &str| meta.variants.iter().any(|x| x.name == v && x.go.is_some());
    let searched = |v: &str| {
        !in_go(v)
            && (ctx.deadline.is_none()
                || meta.claim_variant().is_none()
                || claim_pair.contains(&v)
                || meta.claim_variant() == Some(v))
    };
    let left_out: Vec<&str> = meta.variants.iter().map(|v| v.name).filter(|v| !searched(v) && !in_go(v)).collect();
    let order = variant_order(meta.variants.len(), ctx.settings.order_seed, usize::MAX, 0);
    for vi in order {
        let variant = meta.variants[vi].name;
        if !searched(variant) {
            continue;
        }
        let closed: Vec<f64> = result
            .samples
            .iter()
            .filter(|s| s.invalid.is_none() && s.case == case && s.variant == variant && s.point == point.label)
            .filter_map(|s| s.metrics.get("ops_per_sec").copied())
            .collect();
        let start = crate::stats::median(&closed).map_or(100.0, |v| v / 2.0);
        let mut searcher = Searcher::new(Search::new(plan.limits, start));
        let mut error = None;
        // The search and stress.
        while let Some((_, rate)) = searcher.next() {
            let at = Trial { case, variant, point: &point, offered: Some(Offered::rate(rate, step)), round: 0 };
            match capacity_trial(meta, ctx, side, at, progress).await? {
                Ok(sample) => searcher.record(&sample),
                Err(why) => {
                    error = Some(why);
                    break;
                }
            }
        }
        // Then one recovery trial, once a capacity is known.
        let mut recovery = None;
        if let (Some(capacity), None) = (searcher.capacity(), &error) {
            let offered = Recovery::trial(capacity, step, &plan.limits);
            let at = Trial { case, variant, point: &point, offered: Some(offered), round: 0 };
            match capacity_trial(meta, ctx, side, at, progress).await? {
                Ok(sample) => recovery = Recovery::from_sample(&offered, &sample),
                Err(why) => error = Some(why),
            }
        }
        let outcome = searcher.finish();
        result.capacity.push(CapacityResult {
            case: case.to_owned(),
            variant: variant.to_owned(),
            point: point.label.clone(),
            limits: plan.limits,
            capacity_per_sec: outcome.capacity,
            steps: outcome.steps,
            recovery,
            error,
        });
    }
    result.notes.push(format!(
        "Capacity search at {} {}{}: an open loop over the same workers, from half the closed-loop throughput, stepped up ×2 until a rate broke ({}), then bisected to within 5 %; each step measures up to {} s after the usual warm-up. Then 1.5× and 2× the capacity found (stress); where a stress rate still holds, a step below it broke by chance and the search goes on upwards from it. Open-loop latency counts from each request's intended start; the engine paces on a kernel timer whose own lateness (tens of microseconds) each sample records, far below the limits. {}",
        meta.sweep.axis,
        point.label,
        if case.is_empty() { String::new() } else { format!(" in {case}") },
        plan.limits.describe(),
        experiment::CAPACITY_STEP.as_secs(),
        plan.why
    ));
    let go: Vec<&str> = meta.variants.iter().filter(|v| v.go.is_some()).map(|v| v.name).collect();
    if !go.is_empty() {
        result.notes.push(format!(
            "The capacity search leaves out the Go originals ({}): their load is a closed loop of their own, which no offered rate paces.",
            go.join(", ")
        ));
    }
    if !left_out.is_empty() {
        result.notes.push(format!(
            "Under the time budget the capacity search ran for the claim's {} only; {} {} not searched (--budget none searches every variant).",
            if claim_pair.is_empty() { "variant" } else { "variant and its baseline" },
            left_out.join(", "),
            if left_out.len() == 1 { "was" } else { "were" }
        ));
    }
    Ok(())
}

/// One trial of the capacity search: its sample, or why it failed (redacted) when the servers
/// are still healthy; an error when a server died, which ends the experiment as in the sweep.
async fn capacity_trial(
    meta: &Meta,
    ctx: &RunCtx,
    side: &mut dyn Hooks,
    at: Trial<'_>,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<Result<Sample, String>> {
    let rate = at.offered.map_or(0.0, |o| o.rate_per_sec);
    progress(Progress::Capacity { experiment: meta.id, variant: at.variant, rate });
    match side.measure(at, 0).await {
        Ok(sample) => Ok(Ok(sample)),
        Err(e) => match ctx.env.health().await {
            Err(server) => Err(anyhow::Error::new(ServerFault(format!(
                "{server}, during the capacity search of {}/{at}",
                meta.id
            )))),
            Ok(()) => Ok(Err(redact(&format!("{at}: {e:#}")))),
        },
    }
}

/// `bench --profile`: one more trial of every variant at the last sweep point of the claim's
/// case, with the CPU profiler on; the profile files go to `profiles/<experiment>/` in the
/// run directory. A failed trial or profiler is a note, not a failed experiment.
async fn profile_stage(
    meta: &Meta,
    ctx: &RunCtx,
    side: &mut dyn Hooks,
    result: &mut ExperimentResult,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> anyhow::Result<()> {
    let Some(dir) = ctx.out_dir.as_deref() else { return Ok(()) };
    let case = meta.claim_case();
    let Some(point) = result.sweep.points.last().cloned() else { return Ok(()) };
    let in_process = side.in_process();
    if meta.variants.iter().any(|v| v.go.is_some()) {
        result.notes.push("--profile: the Go originals are not profiled (Go's pprof is not wired in).".into());
    }
    for v in meta.variants.iter().filter(|v| v.go.is_none()) {
        progress(Progress::Profile { experiment: meta.id, variant: v.name });
        let at = Trial { case, variant: v.name, point: &point, offered: None, round: 0 };
        let in_case = if case.is_empty() { String::new() } else { format!("{case}-") };
        let stem = format!("profiles/{}/{in_case}{}", meta.id, v.name);
        if !in_process {
            // The micro engine's routines run in worker processes the CPU profiler does not
            // see: their profile is dhat's heap profile, from the allocation worker.
            let file = format!("{stem}.dhat-heap.json");
            match side.heap_profile(at, &dir.join(&file)).await {
                Ok(true) => result.heap_profiles.push(crate::profile::HeapProfileInfo {
                    case: case.to_owned(),
                    variant: v.name.to_owned(),
                    point: point.label.clone(),
                    file,
                }),
                Ok(false) => {
                    result
                        .notes
                        .push("--profile: no allocation worker (perflab-alloc) for dhat's heap profiles.".into());
                    return Ok(());
                }
                Err(e) => result.notes.push(redact(&format!("--profile of {at}: {e:#}"))),
            }
            continue;
        }
        let sampler = match crate::profile::Sampler::start() {
            Ok(s) => s,
            Err(e) => {
                result.notes.push(redact(&format!("--profile: {e:#}")));
                return Ok(());
            }
        };
        let measured = side.measure(at, 0).await;
        let title = format!("{} · {at}", meta.id);
        match (measured, sampler.finish(dir, &stem, &title)) {
            (Ok(_), Ok(w)) => result.profiles.push(crate::profile::ProfileInfo {
                case: case.to_owned(),
                variant: v.name.to_owned(),
                point: point.label.clone(),
                samples: w.samples,
                pprof: w.pprof,
                flamegraph: w.flamegraph,
                top: w.top,
            }),
            (Err(e), _) | (_, Err(e)) => result.notes.push(redact(&format!("--profile of {at}: {e:#}"))),
        }
    }
    Ok(())
}

mod local;
#[cfg(test)]
mod tests;

pub use local::Local;
