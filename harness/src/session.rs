//! A run session: servers up, a run directory, then each experiment run and its results saved
//! atomically at once (an interrupted run keeps what it finished), then the servers stopped and
//! the run marked complete. The command line keeps the flags, the progress display and the
//! exit codes; everything between lives here.

use crate::experiment::{Experiment, Meta, RunCtx};
use crate::micro::Workers;
use crate::provenance;
use crate::provision::{self, Request};
use crate::results::{self, ExperimentResult, ExperimentStatus, RunContext, RunResults, Settings, SCHEMA_VERSION};
use crate::runner::{self, Progress};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the process is being interrupted: from then on nothing more is written, so that an
/// experiment failing because its servers are going is never saved as if it had run.
static FROZEN: AtomicBool = AtomicBool::new(false);

/// Stop writing results (the signal handler calls this before stopping the servers).
pub fn freeze() {
    FROZEN.store(true, Ordering::SeqCst);
}

/// Whether `freeze` was called.
pub fn frozen() -> bool {
    FROZEN.load(Ordering::SeqCst)
}

/// Why a session could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The request cannot be served (a missing binary, an unusable URL, a directory that cannot
    /// be made): the user must change something.
    #[error("{0}")]
    BadRequest(String),
    /// Something failed while running.
    #[error("{0}")]
    Failed(String),
}

/// What a session is asked to do.
pub struct SessionPlan<'a> {
    pub experiments: &'a [Box<dyn Experiment>],
    pub settings: Settings,
    pub request: Request,
    /// The reports directory; the run's own directory is made inside it.
    pub out: PathBuf,
    /// Count instructions with callgrind (`--instructions`).
    pub instructions: bool,
    /// The command line as given (redacted before it is stored).
    pub arguments: Vec<String>,
    /// The checkout the run measures (for its git revision).
    pub workspace: PathBuf,
    /// `--against REV`: the other revision's build, measured beside this one.
    pub against: Option<AgainstBuild>,
    /// `--resume`: the interrupted run to continue (its results so far, and where they are),
    /// instead of a new run directory.
    pub resume: Option<(RunResults, PathBuf)>,
}

/// Another revision's build (`bench --against`): its `xtask` executable serves trials.
#[derive(Debug, Clone)]
pub struct AgainstBuild {
    pub exe: PathBuf,
    /// The revision as asked, and the commit it resolved to.
    pub revision: String,
    pub commit: String,
}

/// A run directory's lock, held by the process measuring into it: `flock`, which the kernel
/// releases when that process ends however it ends (SIGKILL included), so that no second
/// process writes the same results.json (a `--resume` of a run still going is refused).
pub struct RunLock(#[allow(dead_code)] std::fs::File);

impl RunLock {
    const NAME: &'static str = ".lock";

    /// Take the lock of the run in `dir`, or say who holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, String> {
        let path = dir.join(Self::NAME);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Self::lock(file, &path)
    }

    /// Whether the run in `dir` is free to resume (nothing is written).
    pub fn check(dir: &Path) -> Result<(), String> {
        let path = dir.join(Self::NAME);
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => Self::lock(file, &path).map(drop),
            Err(_) => Ok(()),
        }
    }

    fn lock(file: std::fs::File, path: &Path) -> Result<RunLock, String> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!("the run is still going: another process holds {}", path.display()));
        }
        Ok(RunLock(file))
    }
}

/// A running session: its servers, its results so far, where they are saved.
pub struct Session {
    /// When `--budget` runs out.
    budget_end: Option<std::time::Instant>,
    ctx: Option<RunCtx>,
    request: Request,
    results: RunResults,
    results_path: PathBuf,
    /// Notes every in-process experiment gets (a worker that could not be found).
    micro_notes: Vec<String>,
    instructions: bool,
    /// With `--against`: the other build, and this build's own executable (both serve trials).
    against: Option<(AgainstBuild, PathBuf)>,
    /// Held while the session writes into the run's directory.
    _lock: RunLock,
}

impl Session {
    /// Sweep what killed runs left, find the micro engine's workers if an in-process
    /// experiment is selected, start the servers, make the run directory and write a first
    /// results.json (so even a run killed in its first experiment leaves a readable file).
    /// Returns the session and the directories swept.
    pub async fn start(plan: SessionPlan<'_>) -> Result<(Session, Vec<PathBuf>), SessionError> {
        let mut swept = crate::reaper::sweep_leftovers(&provision::cache_dir());
        swept.extend(provision::cpucap::sweep_dead());
        let containers = provision::sweep_containers().await;
        if containers > 0 {
            eprintln!("perflab: removed {containers} container(s) left by perflab runs that were killed");
        }
        let mut micro_notes = Vec::new();
        let this_exe = match &plan.against {
            Some(_) => Some(std::env::current_exe().map_err(|e| {
                SessionError::Failed(format!("cannot find this build's executable to serve trials: {e}"))
            })?),
            None => None,
        };
        // With --against too: under cargo, this finds (builds) this checkout's allocation
        // worker, which its trial server then takes from beside its executable.
        let micro = if plan.experiments.iter().any(|e| e.engine().is_micro()) {
            Workers::discover(plan.instructions, &mut micro_notes)
        } else {
            Workers::default()
        };
        std::fs::create_dir_all(&plan.out)
            .map_err(|e| SessionError::BadRequest(format!("cannot create {}: {e}", plan.out.display())))?;
        let env = provision::provision(&plan.request).await.map_err(|e| {
            if e.is_user_error() {
                SessionError::BadRequest(e.to_string())
            } else {
                SessionError::Failed(e.to_string())
            }
        })?;
        let probe = env.probe();
        let mut budget_ms = plan.settings.budget_ms;
        let (results, results_path) = match plan.resume {
            // The run goes on in its own directory, with what is left of its budget: the
            // experiments it finished took their wall time of it.
            Some((mut results, path)) => {
                budget_ms = budget_ms.map(|b| b.saturating_sub(results.experiments_wall_ms()));
                results.context.resumed.push(results::Resumption {
                    at: provenance::now_rfc3339(),
                    kept: results.experiments.len(),
                    host: provenance::host(),
                    servers: env.servers.clone(),
                });
                (results, path)
            }
            None => {
                // The run's directory is made once the servers are up, so a failed start
                // leaves nothing. (A resumed run's code was checked against its record.)
                let (git_revision, git_dirty) = provenance::git_revision(&plan.workspace);
                let git_changes = provenance::git_changes(&plan.workspace);
                let (run_id, dir) = provenance::create_run_dir(&plan.out, git_revision.as_deref()).map_err(|e| {
                    SessionError::BadRequest(format!("cannot create a run directory in {}: {e}", plan.out.display()))
                })?;
                let results = RunResults {
                    schema_version: SCHEMA_VERSION,
                    run_id,
                    context: RunContext {
                        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
                        git_revision,
                        git_dirty,
                        git_changes,
                        started_at: provenance::now_rfc3339(),
                        finished_at: None,
                        host: provenance::host(),
                        rustc: provenance::rustc_version(),
                        arguments: crate::redact::redact_args(plan.arguments),
                        settings: plan.settings.clone(),
                        servers: env.servers.clone(),
                        resumed: Vec::new(),
                    },
                    experiments: Vec::new(),
                    complete: false,
                    against: plan.against.as_ref().map(|a| results::AgainstRun {
                        revision: a.revision.clone(),
                        commit: a.commit.clone(),
                        experiments: Vec::new(),
                    }),
                };
                (results, dir.join("results.json"))
            }
        };
        let dir = results_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let lock = RunLock::acquire(&dir).map_err(SessionError::BadRequest)?;
        // The Go originals are built before the budget's clock starts, as perflab's own
        // executables are: a build is not an experiment's time (the first on a machine takes
        // a minute or more; later ones find it cached). One that fails is said by each
        // experiment that needs it.
        if crate::micro::go::missing().is_none()
            && plan.experiments.iter().any(|e| e.meta().variants.iter().any(|v| v.go.is_some()))
        {
            let _ = crate::micro::go::test_binary().await;
        }
        let session = Session {
            budget_end: budget_ms.map(|ms| std::time::Instant::now() + std::time::Duration::from_millis(ms)),
            ctx: Some(RunCtx {
                env,
                settings: plan.settings,
                probe,
                micro,
                out_dir: Some(dir.clone()),
                deadline: None,
            }),
            request: plan.request,
            results,
            results_path,
            micro_notes,
            instructions: plan.instructions,
            against: plan.against.zip(this_exe),
            _lock: lock,
        };
        session.save()?;
        Ok((session, swept))
    }

    /// Give the next experiment its share of what is left of `--budget`. Each experiment left
    /// keeps its reserve (`budget_reserve`: its claim's minimum rounds at what samples really
    /// cost), so one that runs its points to the cap cannot starve those after it; the
    /// slack beyond the reserves is split by weight (`budget_weight`) among the `weights_left`
    /// (its own first, then those after it): its claim's rounds, and the trials outside the
    /// claim where they leave room, take at most its part (`fair_part`). An earlier split let
    /// the claim's rounds draw twice their part, counting on most experiments after it to stop
    /// at their first look; in quick runs about half do not, and the last experiments were left
    /// their minimum rounds. Never past the end; time one leaves unused rolls forward, and a
    /// finished experiment is never revisited. What an experiment spends outside its rounds
    /// (setup, checks after them, the analysis: `outside_rounds`, the mean of those finished so
    /// far in this run) is kept for each experiment after this one before the split, so that
    /// the last ones are not left only their minimum rounds by those costs.
    pub fn share_budget(&mut self, weights_left: &[f64], reserves_left: &[std::time::Duration]) {
        let end = self.budget_end;
        // Kept for those after this one: its own setup comes out of its share, as before.
        let after = weights_left.len().saturating_sub(1) as u32;
        let kept = outside_rounds(&self.results.experiments).saturating_mul(after);
        if let Some(ctx) = self.ctx.as_mut() {
            let now = std::time::Instant::now();
            ctx.deadline = end.map(|end| {
                let left = end.saturating_duration_since(now);
                now + budget_share(left.saturating_sub(kept), weights_left, reserves_left).min(left)
            });
        }
    }

    /// Where results.json is written.
    pub fn results_path(&self) -> &Path {
        &self.results_path
    }

    /// The context experiments run in.
    pub fn ctx(&self) -> &RunCtx {
        self.ctx.as_ref().expect("a session's context lives until finish")
    }

    fn save(&self) -> Result<(), SessionError> {
        if frozen() {
            return Ok(());
        }
        results::save(&self.results_path, &self.results)
            .map_err(|e| SessionError::Failed(format!("writing {}: {e}", self.results_path.display())))
    }

    /// Run one experiment and save the results. When it failed and the servers this run
    /// started (local processes or containers) are dead or hung, fresh ones replace them for
    /// the experiments after it (an external server is someone else's: it is left as it is).
    /// Returns the experiment's result and, when servers were replaced, why.
    pub async fn run(
        &mut self,
        exp: &dyn Experiment,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(&ExperimentResult, Option<String>), SessionError> {
        let ctx = self.ctx.as_mut().expect("a session's context lives until finish");
        let mut result = match &self.against {
            None => runner::run_experiment(exp, ctx, progress).await,
            Some((base, this_exe)) => {
                let (base_result, this_result) =
                    run_two_builds(exp, ctx, base, this_exe, self.instructions, progress).await;
                if let (Some(a), Some(base_result)) = (self.results.against.as_mut(), base_result) {
                    a.experiments.push(base_result);
                }
                this_result
            }
        };
        if exp.engine().is_micro() && self.against.is_none() {
            result.notes.extend(self.micro_notes.iter().cloned());
        }
        if let Some(r) = self.results.context.resumed.last() {
            let first = &self.results.context.host;
            let machine = if r.host.cpu_model != first.cpu_model || r.host.cores != first.cores {
                format!(
                    " on another machine ({}, {} cores; the run began on {}, {} cores)",
                    r.host.cpu_model.as_deref().unwrap_or("unknown CPU"),
                    r.host.cores,
                    first.cpu_model.as_deref().unwrap_or("unknown CPU"),
                    first.cores
                )
            } else {
                String::new()
            };
            result.notes.push(format!(
                "Measured after the run was resumed at {}{machine}, on servers started afresh; the {} experiment(s) before the interruption ran on the first ones.",
                r.at, r.kept
            ));
        }
        let mut replaced = None;
        if matches!(result.status, ExperimentStatus::Failed { .. }) && ctx.env.owns_servers() && !frozen() {
            if let Err(why) = ctx.env.health().await {
                ctx.env.shutdown();
                let env = provision::provision(&self.request)
                    .await
                    .map_err(|e| SessionError::Failed(format!("restarting the servers: {e}")))?;
                ctx.probe = env.probe();
                ctx.env = env;
                result.notes.push(format!("After this failure the run replaced its servers ({why})."));
                replaced = Some(why);
            }
        }
        self.results.experiments.push(result);
        self.save()?;
        Ok((self.results.experiments.last().expect("just pushed"), replaced))
    }

    /// Whether this session measures two revisions.
    pub fn has_against(&self) -> bool {
        self.against.is_some()
    }

    /// Stop the servers, mark the run complete and save it; returns the results and their path.
    pub fn finish(mut self) -> Result<(RunResults, PathBuf), SessionError> {
        drop(self.ctx.take()); // stops the servers before anything else is written
        self.results.complete = true;
        self.results.context.finished_at = Some(provenance::now_rfc3339());
        self.save()?;
        // Complete: nothing will write here again (the lock itself goes with the session).
        let _ = std::fs::remove_file(self.results_path.with_file_name(RunLock::NAME));
        Ok((self.results, self.results_path))
    }
}

/// Run `exp` on two builds, each in a trial server of its own, their trials interleaved:
/// (the other revision's result, this build's). An experiment the other build does not have
/// (added since) runs on this side only, and the other's result is `None`: compare lists it
/// as only in the new run, and the gate goes on with the rest.
async fn run_two_builds(
    exp: &dyn Experiment,
    ctx: &RunCtx,
    base: &AgainstBuild,
    this_exe: &Path,
    instructions: bool,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> (Option<ExperimentResult>, ExperimentResult) {
    use crate::trial_server::{NotInBuild, Remote};
    let meta = exp.meta();
    let base_label = format!("the build of {} ({})", base.revision, &base.commit[..base.commit.len().min(12)]);
    // A slowdown injected with `--set …inject_slowdown` goes to this checkout's side only: the
    // other revision is the reference it is measured against.
    let mut base_settings = ctx.settings.clone();
    base_settings.sets.retain(|k, _| k.rsplit('.').next() != Some(crate::inject::KNOB));
    let started = async {
        let b = Remote::start(&base.exe, &base_label, "base", &ctx.env, meta.id, &base_settings, instructions).await?;
        let t = Remote::start(this_exe, "this checkout", "this", &ctx.env, meta.id, &ctx.settings, instructions).await;
        match t {
            Ok(t) => Ok((b, t)),
            Err(e) => {
                b.finish().await;
                Err(e)
            }
        }
    }
    .await;
    match started {
        Ok((mut b, mut t)) => {
            let mut results = runner::run_sides(&meta, ctx, &mut [&mut b, &mut t], progress).await;
            b.finish().await;
            t.finish().await;
            let this = results.pop().expect("two sides");
            let base = results.pop().expect("two sides");
            (Some(base), this)
        }
        Err(e) if e.downcast_ref::<NotInBuild>().is_some_and(|n| n.0 == base_label) => {
            let mut this = runner::run_experiment(exp, ctx, progress).await;
            this.notes.push(format!(
                "Only in this checkout: {base_label} has no {}, so it ran on this side alone (no comparison of revisions).",
                meta.id
            ));
            (None, this)
        }
        Err(e) => {
            let error = crate::redact::redact(&format!("{e:#}"));
            (
                Some(runner::failed_result(&meta, ctx.settings.quick, &error)),
                runner::failed_result(&meta, ctx.settings.quick, &error),
            )
        }
    }
}

/// What an experiment spent outside its rounds (its wall time but its samples' time: setup,
/// checks, analysis), on average over `finished` (zero before the first).
pub fn outside_rounds(finished: &[crate::results::ExperimentResult]) -> std::time::Duration {
    let spent: Vec<u64> =
        finished.iter().filter_map(|e| e.time.as_ref().map(|t| e.wall_time_ms.saturating_sub(t.samples_ms))).collect();
    match spent.len() {
        0 => std::time::Duration::ZERO,
        n => std::time::Duration::from_millis(spent.iter().sum::<u64>() / n as u64),
    }
}

/// Of `left`, the time the first experiment's rounds may take (`Session::share_budget`).
pub fn budget_share(
    left: std::time::Duration,
    weights_left: &[f64],
    reserves_left: &[std::time::Duration],
) -> std::time::Duration {
    let reserved: std::time::Duration = reserves_left.iter().sum();
    let own = reserves_left.first().copied().unwrap_or_default();
    left.min(own + left.saturating_sub(reserved).mul_f64(fair_part(weights_left)))
}

/// The first of `weights_left`'s fair part of what is left: its share by weight.
pub fn fair_part(weights_left: &[f64]) -> f64 {
    let total: f64 = weights_left.iter().sum();
    match weights_left.first() {
        Some(w) if total > 0.0 => (w / total).min(1.0),
        _ => 1.0,
    }
}

/// What an experiment's rounds weigh in `--budget`'s split: the samples one round takes on
/// average over a point's cap of rounds, over all its points (every case × variant at each
/// point of this mode's sweep; with ride-along rounds, the variants outside the claim count
/// only for the rounds they ride along in).
pub fn budget_weight(meta: &Meta, settings: &Settings) -> f64 {
    let cap = settings.repetitions.max(1);
    samples(meta, settings, cap) / f64::from(cap) * meta.sample_time(settings).as_secs_f64()
}

/// The samples `rounds` rounds take over every point: the claim's trials in every round, the
/// Go original's claim in at most its rounds (`Settings::go_rounds`), the others in at most
/// their ride-along rounds (all rounds without ride-along or a claim).
fn samples(meta: &Meta, settings: &Settings, rounds: u32) -> f64 {
    let points = meta.sweep.points(settings.quick).len() as f64;
    let all = (meta.case_names().len() * meta.variants.len()) as f64;
    let per_point = match (settings.ride_along, meta.claim_trials()) {
        (Some(ride), Some(claim)) => {
            let go = meta.go_claim_trials().len() as f64;
            let go_rounds = settings.go_rounds().unwrap_or(rounds).min(rounds);
            let claim = claim.len() as f64 - go;
            claim * f64::from(rounds)
                + go * f64::from(go_rounds)
                + (all - claim - go).max(0.0) * f64::from(ride.min(rounds))
        }
        _ => all * f64::from(rounds),
    };
    points * per_point
}

/// What the budget keeps for an experiment until it runs: its claim's minimum rounds
/// (`least_rounds_time`) at what samples really cost (`experiment::SAMPLE_COST`).
pub fn budget_reserve(meta: &Meta, settings: &Settings) -> std::time::Duration {
    least_rounds_time(meta, settings).mul_f64(crate::experiment::SAMPLE_COST)
}

/// The least time an experiment's rounds take under any budget: a point past its share still
/// runs its minimum rounds (the sequential plan's, or up to 3 without one) of the claim's
/// trials (of every trial without a claim; the others ride along only where the budget
/// leaves room), each sample its warm-up and measured time (`Meta::sample_time`). Setups and each
/// sample's fixed costs come on top, so a budget below the sum of this over the selected
/// experiments cannot be kept.
pub fn least_rounds_time(meta: &Meta, settings: &Settings) -> std::time::Duration {
    let (min, cap) = (settings.min_rounds, settings.repetitions);
    let rounds = if min >= 2 && min < cap { min } else { cap.min(3) };
    let points = meta.sweep.points(settings.quick).len() as f64;
    let trials = match meta.claim_trials() {
        Some(claim) => claim.len(),
        None => meta.case_names().len() * meta.variants.len(),
    };
    meta.sample_time(settings).mul_f64(points * trials as f64 * f64::from(rounds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sweep, Variant};

    #[test]
    fn the_budget_is_split_by_weight_and_the_last_takes_what_is_left() {
        // Weights 1, 3: the first gets its quarter, the last all that is left.
        assert_eq!(fair_part(&[0.0, 0.0]), 1.0);
        assert_eq!(fair_part(&[1.0, 3.0]), 0.25);
        assert_eq!(fair_part(&[3.0, 1.0]), 0.75);
        assert_eq!(fair_part(&[2.0]), 1.0);
        assert_eq!(fair_part(&[]), 1.0);
    }

    #[test]
    fn every_experiment_left_keeps_its_reserve_and_the_slack_is_split_by_weight() {
        let s = std::time::Duration::from_secs;
        // 100 s left, 60 s reserved: the first keeps its 10 s and gets its quarter of the 40 s
        // slack.
        assert_eq!(budget_share(s(100), &[1.0, 1.0, 2.0], &[s(10), s(30), s(20)]), s(20));
        // No slack: its reserve only, whatever its weight.
        assert_eq!(budget_share(s(50), &[3.0, 1.0], &[s(10), s(40)]), s(10));
        // Less than its reserve left: never past the end.
        assert_eq!(budget_share(s(5), &[1.0], &[s(10)]), s(5));
        // The last one takes all that is left.
        assert_eq!(budget_share(s(100), &[1.0], &[s(10)]), s(100));
    }

    /// What is kept for each experiment left is the time the finished ones spent outside their
    /// rounds, on average; an experiment without a time account (a failed one) counts not.
    #[test]
    fn time_outside_the_rounds_is_the_wall_time_but_the_samples() {
        let finished = |wall: u64, samples: Option<u64>| {
            let mut e = crate::runner::failed_result(&Meta::default(), true, "a synthetic result");
            e.wall_time_ms = wall;
            e.time = samples.map(|samples_ms| crate::results::TimeSpent { samples_ms, ..Default::default() });
            e
        };
        assert_eq!(outside_rounds(&[]), std::time::Duration::ZERO);
        let runs = [finished(10_000, Some(8_000)), finished(5_000, Some(1_000)), finished(9_000, None)];
        assert_eq!(outside_rounds(&runs), std::time::Duration::from_millis(3_000));
    }

    /// Quick settings with samples of 50 + 150 ms, a cap of `cap` rounds and a minimum of 3.
    fn samples_of_200ms(cap: u32) -> Settings {
        let mut settings = Settings::quick_for_tests();
        settings.warmup = std::time::Duration::from_millis(50);
        settings.duration = std::time::Duration::from_millis(150);
        settings.repetitions = cap;
        settings.min_rounds = 3;
        settings
    }

    #[test]
    fn the_least_time_counts_the_claims_trials_at_every_point_its_minimum_rounds() {
        let meta = Meta {
            variants: vec![Variant::new("a", "a"), Variant::new("b", "b").compared_with("a")],
            sweep: Sweep::numeric("n", "", &[1.0, 2.0, 3.0], &[1.0]),
            ..Meta::default()
        };
        let mut settings = samples_of_200ms(6);
        // Quick: one point, two variants, three rounds of 200 ms.
        assert_eq!(budget_weight(&meta, &settings), 2.0 * 0.2);
        assert_eq!(least_rounds_time(&meta, &settings), std::time::Duration::from_millis(1200));
        // Full: three points; without a plan (min 0) up to 3 rounds of the cap.
        settings.quick = false;
        settings.min_rounds = 0;
        settings.repetitions = 2;
        assert_eq!(least_rounds_time(&meta, &settings), std::time::Duration::from_millis(2400));
    }

    #[test]
    fn variants_riding_along_weigh_only_their_rounds() {
        let meta = Meta {
            variants: vec![
                Variant::new("a", "a"),
                Variant::new("b", "b").compared_with("a").tests_claim(),
                Variant::new("c", "c").compared_with("b"),
                Variant::new("d", "d").compared_with("b"),
            ],
            sweep: Sweep::numeric("n", "", &[1.0], &[1.0]),
            ..Meta::default()
        };
        let mut settings = samples_of_200ms(8);
        settings.ride_along = Some(2);
        // The claim's a and b run 8 rounds, c and d 2: (2 × 8 + 2 × 2) / 8 samples of 200 ms
        // per round.
        assert!((budget_weight(&meta, &settings) - 2.5 * 0.2).abs() < 1e-12);
        // At the minimum of 3 rounds: 2 × 3 samples of 200 ms; c and d ride along only where
        // the budget leaves room.
        assert_eq!(least_rounds_time(&meta, &settings), std::time::Duration::from_millis(1200));
        settings.ride_along = None;
        assert!((budget_weight(&meta, &settings) - 4.0 * 0.2).abs() < 1e-12);
        // A tool counting whole seconds: each sample measures at least 1 s, after the settings'
        // 50 ms warm-up.
        let meta = Meta { sample_floor: std::time::Duration::from_secs(1), ..meta };
        assert!((budget_weight(&meta, &settings) - 4.0 * 1.05).abs() < 1e-12);
    }
}
