//! `cargo xtask bench`: check the flags, run the selected experiments in a harness session
//! (servers, results.json saved after each experiment), show progress, render the report, and
//! turn the outcome into an exit code.

use crate::flags::{default_reports_dir, parse_duration, BenchArgs};
use crate::{catalogue, report, Failure};
use harness::provision::{self, Provider, Request};
use harness::results::{ExperimentStatus, RunResults, Settings};
use harness::runner::{self, Progress};
use harness::session::{self, Session, SessionError, SessionPlan};
use harness::Experiment;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

struct Plan {
    experiments: Vec<Box<dyn Experiment>>,
    settings: Settings,
    request: Request,
    out: PathBuf,
    instructions: bool,
    /// `--save-baseline`, `--baseline`: where each is kept (checked before anything runs).
    save_baseline: Option<(String, PathBuf)>,
    baseline: Option<PathBuf>,
    fail_on_regression: bool,
    fail_on_target: bool,
    export: Option<String>,
    /// `--against REV`: the revision as given and the commit it names, then its build.
    against: Option<(String, String)>,
    against_build: Option<harness::session::AgainstBuild>,
    /// `--resume RUN`: the interrupted run, read back, and where its results.json is.
    resume: Option<(RunResults, PathBuf)>,
}

/// The checkout this build was made from.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Check every argument before anything starts, so bad input costs nothing.
fn plan(args: &BenchArgs) -> Result<Plan, Failure> {
    let mut experiments = catalogue::all();
    if let Some(f) = &args.filter {
        let all_ids: Vec<&'static str> = experiments.iter().map(|e| e.meta().id).collect();
        experiments.retain(|e| catalogue::matches(f, e.meta().id));
        if experiments.is_empty() {
            return Err(Failure::usage(format!(
                "no experiment matches {f:?}; the experiments are: {}",
                all_ids.join(", ")
            )));
        }
    }
    if let Some(shard) = &args.shard {
        let (i, n) = parse_shard(shard)?;
        let mut k = 0;
        experiments.retain(|_| {
            k += 1;
            (k - 1) % n == i - 1
        });
        if experiments.is_empty() {
            return Err(Failure::usage(format!("--shard {shard}: no experiment falls in this shard")));
        }
    }
    let mut sets = BTreeMap::new();
    for s in &args.sets {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                sets.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            _ => {
                return Err(Failure::usage(format!(
                    "--set {s:?} is malformed: expected key=value, e.g. --set pg-pagination.rows=50000"
                )))
            }
        }
    }
    check_sets(&sets, &experiments)?;
    let dur = |v: &Option<String>, flag: &str, default: Duration| match v {
        Some(s) => parse_duration(s).map_err(|e| Failure::usage(format!("--{flag}: {e}"))),
        None => Ok(default),
    };
    let quick = args.quick;
    let d = user_defaults(quick);
    let settings = Settings {
        filter: args.filter.clone(),
        shard: args.shard.clone(),
        quick,
        // Rounds per point: a point stops at a look where the claim's comparison is decided
        // (from 3 rounds quick, 4 full), else at the cap (9 quick, 12 full). `--against` runs
        // a fixed number (4 quick, 5 full), its two builds in the same rounds.
        repetitions: args.reps.unwrap_or(match (quick, args.against.is_some()) {
            (_, false) => d.repetitions,
            (true, true) => 4,
            (false, true) => 5,
        }),
        min_rounds: match (args.min_rounds, args.against.is_some()) {
            (Some(n), _) => n,
            (None, true) => 0,
            (None, false) => {
                let min = d.min_rounds;
                if args.reps.is_some_and(|r| r <= min) {
                    0
                } else {
                    min
                }
            }
        },
        budget_ms: match args.budget.as_deref() {
            // Two builds keep their fixed rounds: the gate needs them.
            _ if args.against.is_some() => None,
            Some("none") => None,
            Some(s) => {
                Some(parse_duration(s).map_err(|e| Failure::usage(format!("--budget: {e} (or none)")))?.as_millis()
                    as u64)
            }
            // Quick: 4.5 minutes, so that with the servers' start and the report the whole
            // catalogue stays under 5 (a 5-minute budget ran 303.6 s).
            None => Some(if quick { 270_000 } else { 60 * 60_000 }),
        },
        // Quick runs decide the claim: the other trials ride along in each point's first two
        // rounds (enough for their medians), then only the claim's two run. `--claim-only`:
        // never. A full run and `--against` (whose gate covers every variant): every round.
        ride_along: match (args.claim_only, quick && args.against.is_none()) {
            (true, _) => Some(0),
            (false, true) => Some(2),
            (false, false) => None,
        },
        noise_limit: match args.noise_limit.as_str() {
            "none" => None,
            s => match s.parse::<f64>() {
                Ok(c) if c > 0.0 && c.is_finite() => Some(c),
                _ => {
                    return Err(Failure::usage(format!(
                        "--noise-limit {s:?}: a number of cores above 0 (0.5: half a core), or none"
                    )))
                }
            },
        },
        duration: dur(&args.duration, "duration", d.duration)?,
        warmup: dur(&args.warmup, "warmup", d.warmup)?,
        concurrency: args.concurrency,
        capacity: !args.no_capacity && (args.capacity || !quick),
        profile: args.profile,
        sets,
        order_seed: args.order_seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }),
    };
    if settings.repetitions == 0 || settings.repetitions > 1000 {
        return Err(Failure::usage("--reps must be between 1 and 1000"));
    }
    if settings.min_rounds > settings.repetitions || settings.min_rounds == 1 {
        return Err(Failure::usage(format!(
            "--min-rounds must be 0 (no early stop) or between 2 and --reps ({})",
            settings.repetitions
        )));
    }
    if settings.min_rounds > 0 && args.against.is_some() {
        return Err(Failure::usage(
            "--min-rounds does not combine with --against: its two builds run a fixed number of rounds (--reps)",
        ));
    }
    if let Some(budget) = settings.budget_ms.map(Duration::from_millis) {
        let least: Duration = experiments.iter().map(|e| session::least_rounds_time(&e.meta(), &settings)).sum();
        if budget < least {
            let need = format!(
                "the {} selected experiment(s) need at least {:.0} s for their minimum rounds alone (the claim's variants {} time(s) at every point, the others only where the budget leaves room, {} ms a sample, its measured time at least a whole second where the reference tool counts seconds), before setups",
                experiments.len(),
                least.as_secs_f64().ceil(),
                if settings.min_rounds >= 2 && settings.min_rounds < settings.repetitions { settings.min_rounds } else { settings.repetitions.min(3) },
                (settings.warmup + settings.duration).as_millis()
            );
            match args.budget.as_deref() {
                Some(asked) => return Err(Failure::usage(format!(
                    "--budget {asked}: {need}: give at least that, fewer experiments (--filter) or shorter samples (--duration)"
                ))),
                // The default budget with longer samples than the default: the run goes on,
                // every point at its minimum rounds, past the default's time.
                None => eprintln!(
                    "perflab: the default budget ({:.0} s) is shorter than these settings allow: {need}; the run will take longer (--budget none to say so, or shorter --duration)",
                    budget.as_secs_f64()
                ),
            }
        }
    }
    if settings.concurrency == Some(0) || settings.concurrency.is_some_and(|c| c > 10_000) {
        return Err(Failure::usage("--concurrency must be between 1 and 10000"));
    }
    let provider: Provider = args.provider.parse().map_err(Failure::usage)?;
    let request = Request {
        provider,
        pg_url: args.pg_url.clone().filter(|s| !s.is_empty()),
        redis_url: args.redis_url.clone().filter(|s| !s.is_empty()),
        redis_cluster_url: args.redis_cluster_url.clone().filter(|s| !s.is_empty()),
        need_postgres: experiments.iter().any(|e| e.meta().needs.postgres),
        need_redis: experiments.iter().any(|e| e.meta().needs.redis),
        need_redis_cluster: experiments.iter().any(|e| e.meta().needs.redis_cluster),
    };
    let out = args.out.clone().unwrap_or_else(default_reports_dir);
    let save_baseline = match &args.save_baseline {
        Some(name) => Some((name.clone(), crate::runs::baseline_path(&out, name)?)),
        None => None,
    };
    let baseline = match &args.baseline {
        Some(name) => {
            let path = crate::runs::baseline_path(&out, name)?;
            if !path.is_file() {
                return Err(Failure::usage(format!(
                    "--baseline {name}: no baseline {name} in {} (make one with --save-baseline {name})",
                    out.join("baselines").display()
                )));
            }
            Some(path)
        }
        None => None,
    };
    if let Some(f) = &args.export {
        if !matches!(f.as_str(), "bmf" | "github-action-benchmark") {
            return Err(Failure::usage(format!("--export {f:?}: bmf or github-action-benchmark")));
        }
    }
    let against = match &args.against {
        Some(rev) => Some((rev.clone(), crate::against::resolve(&workspace(), rev)?)),
        None => None,
    };
    Ok(Plan {
        against,
        against_build: None,
        resume: None,
        save_baseline,
        baseline,
        fail_on_regression: args.fail_on_regression,
        fail_on_target: args.fail_on_target,
        export: args.export.clone(),
        experiments,
        settings,
        request,
        out,
        instructions: args.instructions,
    })
}

/// `I/N` with 1 ≤ I ≤ N ≤ 1000.
fn parse_shard(s: &str) -> Result<(usize, usize), Failure> {
    let bad = || Failure::usage(format!("--shard {s:?}: expected I/N with 1 <= I <= N, e.g. --shard 2/4"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if i == 0 || n == 0 || i > n || n > 1000 {
        return Err(bad());
    }
    Ok((i, n))
}

/// Every `--set` names a knob an experiment declares, with a value of its type and range:
/// checked here, before any server starts. `exp.key` must be a knob of `exp` (an experiment of
/// the catalogue, selected or not); a bare `key` must be a knob of a selected experiment.
fn check_sets(sets: &BTreeMap<String, String>, selected: &[Box<dyn Experiment>]) -> Result<(), Failure> {
    let catalogue = catalogue::all();
    let knobs_of = |e: &dyn Experiment| {
        let m = e.meta();
        let names: Vec<&str> = m.knobs.iter().map(|k| k.name).collect();
        (m.knobs, if names.is_empty() { "none".to_owned() } else { names.join(", ") })
    };
    for (key, value) in sets {
        match key.split_once('.') {
            Some((exp_id, name)) => {
                let exp = catalogue.iter().find(|e| e.meta().id == exp_id).ok_or_else(|| {
                    let ids: Vec<&str> = catalogue.iter().map(|e| e.meta().id).collect();
                    Failure::usage(format!(
                        "--set {key}: no experiment {exp_id:?}; the experiments are: {}",
                        ids.join(", ")
                    ))
                })?;
                if name == harness::inject::KNOB {
                    check_slowdown(exp.as_ref(), value)?;
                    continue;
                }
                let (knobs, names) = knobs_of(exp.as_ref());
                let knob = knobs.iter().find(|k| k.name == name).ok_or_else(|| {
                    Failure::usage(format!("--set {key}: {exp_id} has no setting {name:?}; its settings are: {names}"))
                })?;
                knob.check(value).map_err(Failure::Usage)?;
            }
            None if key == harness::inject::KNOB => {
                let mut known_variant = false;
                for e in selected {
                    known_variant |= check_slowdown(e.as_ref(), value).is_ok();
                }
                if !known_variant {
                    return Err(check_slowdown(selected[0].as_ref(), value).unwrap_err());
                }
            }
            None => {
                let mut found = false;
                for e in selected {
                    let m = e.meta();
                    if let Some(k) = m.knobs.iter().find(|k| k.name == key) {
                        k.check(value).map_err(Failure::Usage)?;
                        found = true;
                    }
                }
                if !found {
                    return Err(Failure::usage(format!(
                        "--set {key}={value}: no selected experiment has a setting {key:?} (`cargo xtask list` shows each one's settings)"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `inject_slowdown=P%` or `VARIANT:P%`, with VARIANT one of `exp`'s.
fn check_slowdown(exp: &dyn Experiment, value: &str) -> Result<(), Failure> {
    let m = exp.meta();
    let s = harness::inject::parse(m.id, value).map_err(Failure::Usage)?;
    match s.variant {
        Some(v) if !m.variants.iter().any(|x| x.name == v) => {
            let names: Vec<&str> = m.variants.iter().map(|x| x.name).collect();
            Err(Failure::usage(format!(
                "--set {}.{}={value}: {} has no variant {v:?}; its variants are: {}",
                m.id,
                harness::inject::KNOB,
                m.id,
                names.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

/// `--resume RUN`: the interrupted run's own plan, read back from its results.json (its
/// selection and settings as recorded, the rest of its command line re-read; the experiments
/// it finished taken out), on servers the current flags name. Refused, before anything starts,
/// for a run that is complete, still running, not a run, or measured on other code.
fn resume_plan(args: &BenchArgs, run: &Path) -> Result<Plan, Failure> {
    use clap::Parser;
    let what = format!("--resume {}", run.display());
    let path = if run.is_dir() { run.join("results.json") } else { run.to_path_buf() };
    if !path.is_file() {
        return Err(Failure::usage(format!("{what}: not a run (no results.json there)")));
    }
    let results = harness::results::read(&path).map_err(|e| Failure::usage(format!("{what}: {e}")))?;
    if results.complete {
        return Err(Failure::usage(format!(
            "{what}: run {} is complete (finished {}); nothing to resume",
            results.run_id,
            results.context.finished_at.as_deref().unwrap_or("")
        )));
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    if let Err(why) = session::RunLock::check(&dir) {
        return Err(Failure::usage(format!("{what}: {why}")));
    }
    // The same code: the run's commit, and the same uncommitted changes (none, or the same).
    let c = &results.context;
    let here = workspace();
    let (revision, dirty) = harness::provenance::git_revision(&here);
    let changes = harness::provenance::git_changes(&here);
    let describe = |rev: &Option<String>, changes: &Option<String>, dirty: Option<bool>| {
        let rev = rev.as_deref().map(|r| &r[..r.len().min(12)]).unwrap_or("no git revision");
        match (changes, dirty) {
            (Some(f), _) => format!("{rev} with uncommitted changes {f}"),
            (None, Some(true)) => format!("{rev} with uncommitted changes (not fingerprinted)"),
            _ => rev.to_owned(),
        }
    };
    let same = revision.is_some()
        && revision == c.git_revision
        && changes == c.git_changes
        && (c.git_dirty == Some(false) || c.git_changes.is_some());
    if !same {
        return Err(Failure::usage(format!(
            "{what}: the run measured {}, this checkout is {}: resume it from the run's code, or start a new run",
            describe(&c.git_revision, &c.git_changes, c.git_dirty),
            describe(&revision, &changes, dirty)
        )));
    }
    // Its command line, as stored (redacted), for what the settings do not record (--export,
    // --baseline, --instructions, …); the selection and the settings are the recorded ones.
    let mut original = match crate::flags::Cli::try_parse_from(&c.arguments) {
        Ok(crate::flags::Cli { command: crate::flags::Command::Bench(b) }) => b,
        _ => {
            return Err(Failure::usage(format!(
                "{what}: its command line ({}) is not one `bench` reads",
                c.arguments.join(" ")
            )))
        }
    };
    let s = &c.settings;
    original.filter = s.filter.clone();
    original.shard = s.shard.clone();
    original.sets = s.sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
    original.out = Some(dir.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")));
    // The other revision is the commit the run resolved, whatever its name resolves to now.
    if let Some(a) = &results.against {
        original.against = Some(a.commit.clone());
    }
    original.provider = args.provider.clone();
    original.pg_url = args.pg_url.clone();
    original.redis_url = args.redis_url.clone();
    original.redis_cluster_url = args.redis_cluster_url.clone();
    if args.noise_limit != original.noise_limit {
        eprintln!(
            "perflab: --noise-limit {} is ignored: a resumed run keeps its own ({})",
            args.noise_limit, original.noise_limit
        );
    }
    let mut plan = plan(&original)?;
    plan.settings = s.clone();
    plan.against = results.against.as_ref().map(|a| (a.revision.clone(), a.commit.clone()));
    let selected = plan.experiments.len();
    plan.experiments.retain(|e| !results.experiments.iter().any(|r| r.id == e.meta().id));
    // Servers for what is left only; by default of the kind the run had. URLs are never
    // stored: a run on external servers needs them given again.
    let r = &mut plan.request;
    r.need_postgres = plan.experiments.iter().any(|e| e.meta().needs.postgres);
    r.need_redis = plan.experiments.iter().any(|e| e.meta().needs.redis);
    r.need_redis_cluster = plan.experiments.iter().any(|e| e.meta().needs.redis_cluster);
    // A server the run did not start (its description names no local or docker provider).
    let given = |info: &Option<harness::results::ServerInfo>| {
        info.as_ref().is_some_and(|i| {
            !matches!(i.settings.get("provider").map(String::as_str), Some("local ephemeral" | "docker"))
        })
    };
    let external = [
        (r.need_postgres && r.pg_url.is_none() && given(&c.servers.postgres), "--pg-url"),
        (r.need_redis && r.redis_url.is_none() && given(&c.servers.redis), "--redis-url"),
        (
            r.need_redis_cluster && r.redis_cluster_url.is_none() && given(&c.servers.redis_cluster),
            "--redis-cluster-url",
        ),
    ];
    let missing: Vec<&str> = external.iter().filter(|(m, _)| *m).map(|(_, f)| *f).collect();
    if !missing.is_empty() {
        return Err(Failure::usage(format!(
            "{what}: the run measured external servers, whose URLs are never stored: give them again ({})",
            missing.join(", ")
        )));
    }
    if args.provider == "auto" && matches!(c.servers.provider.as_str(), "local" | "docker") {
        r.provider = c.servers.provider.parse().map_err(Failure::usage)?;
    }
    eprintln!(
        "perflab: resuming run {}: {} of {selected} experiment(s) finished and kept; {} to run{}{}",
        results.run_id,
        results.experiments.len(),
        plan.experiments.len(),
        match plan.experiments.first() {
            Some(e) => format!(
                ", from {} (an experiment cut off mid-way starts again: its rounds are saved when it finishes)",
                e.meta().id
            ),
            None => String::new(),
        },
        match s.budget_ms {
            Some(b) => format!(
                "; {:.0} s of its {:.0} s budget left",
                b.saturating_sub(results.experiments_wall_ms()) as f64 / 1000.0,
                b as f64 / 1000.0
            ),
            None => String::new(),
        }
    );
    plan.resume = Some((results, path));
    Ok(plan)
}

pub fn bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    let mut plan = match &args.resume {
        Some(run) => resume_plan(&args, run)?,
        None => plan(&args)?,
    };
    if let Some((rev, commit)) = &plan.against {
        plan.against_build = Some(crate::against::build(&workspace(), rev, commit)?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from)?;
    runtime.block_on(run(plan, args.no_report))
}

async fn run(mut plan: Plan, no_report: bool) -> Result<ExitCode, Failure> {
    // Ctrl-C or SIGTERM: stop the servers and remove their directories, then leave. Every
    // experiment finished so far is already in results.json.
    tokio::spawn(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        // 128 + the signal's number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
        let code = tokio::select! {
            _ = tokio::signal::ctrl_c() => 130,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => 143,
        };
        // First freeze results.json: an experiment failing because its servers are going must
        // not be written as if it had run.
        session::freeze();
        eprintln!("\ninterrupted: stopping servers; finished experiments are kept in results.json");
        provision::cleanup_all();
        std::process::exit(code);
    });

    let resume = plan.resume.take();
    let resumed = resume.is_some();
    let (results, results_path, mut failed) = measure(&plan, &plan.experiments, resume).await?;
    if resumed {
        // The whole run's outcome: an experiment that failed before the interruption too.
        failed =
            results.experiments.iter().filter(|e| e.status != ExperimentStatus::Ok).map(|e| e.id.clone()).collect();
    }
    let targets: Vec<&harness::results::TargetCheck> = results.experiments.iter().flat_map(|e| &e.targets).collect();
    let missed = targets.iter().filter(|t| !t.pass).count();
    if !targets.is_empty() {
        eprintln!(
            "targets: {missed} of {} checks of the guide's targets failed (see the report's summary)",
            targets.len()
        );
    }
    eprintln!("results: {}", results_path.display());
    if !no_report {
        let page = report::render_run(&results_path)?;
        eprintln!("report:  {}", page.display());
        println!("{}", page.display());
    }
    if let Some(format) = &plan.export {
        for f in crate::export::export_run(&results_path, format)? {
            eprintln!("export:  {}", f.display());
        }
    }
    if let Some((name, _)) = &plan.save_baseline {
        let path = crate::runs::save_baseline(&plan.out, name, &results)?;
        eprintln!("baseline {name}: {}", path.display());
    }
    // `--against` and `--baseline` together: each gate is read on its own (one never
    // overwrites the other), `--against`'s always, `--baseline`'s with --fail-on-regression.
    let (mut against_regressed, mut baseline_regressed) = (false, false);
    if let Some(report) = against_report(&results, &results_path)? {
        against_regressed = report.regressions() > 0 && confirm(&plan, &report).await?;
    }
    if let Some(path) = &plan.baseline {
        let old = harness::results::read(path).map_err(Failure::usage)?;
        let report = harness::compare::compare(&old, &results, &harness::compare::Options::default());
        eprint!("{}", harness::redact::redact(&harness::compare::to_text(&report)));
        baseline_regressed = report.regressions() > 0;
    }
    if !failed.is_empty() {
        return Err(Failure::Run(format!("{} experiment(s) failed: {}", failed.len(), failed.join(", "))));
    }
    Ok(ExitCode::from(gate_exit(
        against_regressed,
        baseline_regressed && plan.fail_on_regression,
        missed > 0 && plan.fail_on_target,
    )))
}

/// The comparison of an `--against` run's two sides, written beside its results.json as
/// compare.html and printed; none for a run of one build.
fn against_report(
    results: &harness::results::RunResults,
    results_path: &std::path::Path,
) -> Result<Option<harness::compare::Report>, Failure> {
    let Some((base, this)) = results.split_revisions() else {
        return Ok(None);
    };
    let report = harness::compare::compare(&base, &this, &harness::compare::Options::interleaved());
    let page = results_path.with_file_name("compare.html");
    let html =
        harness::compare::to_html(&report).map_err(|e| Failure::Run(format!("rendering the compare page: {e:#}")))?;
    harness::results::write_atomic(&page, harness::redact::redact(&html).as_bytes())
        .map_err(|e| Failure::Run(format!("writing {}: {e}", page.display())))?;
    eprint!("{}", harness::redact::redact(&harness::compare::to_text(&report)));
    eprintln!("against: {}", page.display());
    Ok(Some(report))
}

/// `--against`'s confirmation: the experiments with a flagged regression run again, both
/// builds in fresh rounds on fresh servers, and a regression stands only when the new run
/// finds it too (a timing by Holm's test over the flagged comparisons, so the gate's
/// family-wise error is at most α whatever the first run flagged).
async fn confirm(plan: &Plan, first: &harness::compare::Report) -> Result<bool, Failure> {
    let ids = first.regressed_experiments();
    eprintln!(
        "against: {} flagged regression(s) in {}; confirming them in a new run of {}…",
        first.regressions(),
        ids.join(", "),
        if ids.len() == 1 { "that experiment" } else { "those experiments" }
    );
    let mut experiments = catalogue::all();
    experiments.retain(|e| ids.iter().any(|id| id == e.meta().id));
    let (results, results_path, failed) = measure(plan, &experiments, None).await?;
    if !failed.is_empty() {
        return Err(Failure::Run(format!("the confirmation run of {} failed: {}", ids.join(", "), failed.join(", "))));
    }
    let again = against_report(&results, &results_path)?
        .ok_or_else(|| Failure::Run("the confirmation run has no second revision".into()))?;
    let confirmation = harness::compare::confirm(first, &again);
    eprintln!("{}", harness::redact::redact(&confirmation.describe()));
    Ok(!confirmation.confirmed.is_empty())
}

/// Run `experiments` in a session of their own (servers started and stopped), with progress:
/// the run's results, where they were written, and the experiments that failed.
async fn measure(
    plan: &Plan,
    experiments: &[Box<dyn Experiment>],
    resume: Option<(RunResults, PathBuf)>,
) -> Result<(harness::results::RunResults, PathBuf, Vec<String>), Failure> {
    eprintln!(
        "perflab: {} experiment(s), {} mode; starting servers…",
        experiments.len(),
        if plan.settings.quick { "quick" } else { "full" }
    );
    let s = plan.settings.clone();
    let (mut session, swept) = Session::start(SessionPlan {
        experiments,
        settings: plan.settings.clone(),
        request: plan.request.clone(),
        out: plan.out.clone(),
        instructions: plan.instructions,
        arguments: std::env::args().collect(),
        workspace: workspace(),
        against: plan.against_build.clone(),
        resume,
    })
    .await
    .map_err(failure)?;
    if !swept.is_empty() {
        eprintln!(
            "perflab: removed {} temporary director{} left by perflab runs that were killed ({})",
            swept.len(),
            if swept.len() == 1 { "y" } else { "ies" },
            swept.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }

    let sides = if plan.against_build.is_some() { 2 } else { 1 };
    let total: u64 =
        experiments.iter().map(|e| runner::planned_samples(&e.meta(), s.quick, s.repetitions)).sum::<u64>() * sides;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} samples, ETA {eta}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let on_progress = |p: Progress<'_>| match p {
        Progress::Setup { experiment } => bar.set_message(format!("{experiment}: setup")),
        Progress::Sample { experiment, case, variant, point, repetition } => {
            bar.inc(1);
            let case = if case.is_empty() { String::new() } else { format!("{case}: ") };
            bar.set_message(format!("{experiment}: {case}{variant} @ {point} (round {})", repetition + 1));
        }
        Progress::Capacity { experiment, variant, rate } => {
            bar.set_message(format!("{experiment}: capacity of {variant} at {rate:.0}/s"))
        }
        Progress::Profile { experiment, variant } => bar.set_message(format!("{experiment}: profiling {variant}")),
        Progress::Checks { experiment } => bar.set_message(format!("{experiment}: checks")),
    };
    let mut failed = Vec::new();
    let weights: Vec<f64> = experiments.iter().map(|e| session::budget_weight(&e.meta(), &s)).collect();
    let reserves: Vec<Duration> = experiments.iter().map(|e| session::budget_reserve(&e.meta(), &s)).collect();
    for (i, exp) in experiments.iter().enumerate() {
        session.share_budget(&weights[i..], &reserves[i..]);
        let (result, replaced) = session.run(exp.as_ref(), &on_progress).await.map_err(failure)?;
        if session::frozen() {
            std::future::pending::<()>().await; // the signal handler is exiting the process
        }
        bar.suspend(|| match &result.status {
            ExperimentStatus::Failed { error } => {
                eprintln!(
                    "{} failed after {:.1} s: {}",
                    result.id,
                    result.wall_time_ms as f64 / 1000.0,
                    harness::redact::redact(error)
                );
                if let Some(why) = &replaced {
                    eprintln!("perflab: {why}; started fresh servers for the remaining experiments");
                }
            }
            ExperimentStatus::Ok => {
                eprintln!("{} done in {:.1} s", result.id, result.wall_time_ms as f64 / 1000.0);
                if let Some(h) = &result.headline {
                    eprintln!("  {}", h.sentence);
                }
            }
        });
        if result.status != ExperimentStatus::Ok {
            failed.push(result.id.clone());
        }
    }
    bar.finish_and_clear();
    let (results, results_path) = session.finish().map_err(failure)?;
    Ok((results, results_path, failed))
}

/// The exit code of a run whose experiments all finished: 3 when a gate that applies found a
/// regression (`--against` always applies; `--baseline` with --fail-on-regression), else 4
/// when a target was missed under --fail-on-target, else 0.
fn gate_exit(against_regressed: bool, baseline_gated: bool, target_gated: bool) -> u8 {
    if against_regressed || baseline_gated {
        3
    } else if target_gated {
        4
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::gate_exit;

    /// `--against` and `--baseline` together: a regression either gate finds is kept (the
    /// baseline's clean result once overwrote the against's regression).
    #[test]
    fn both_gates_are_read_and_neither_overwrites_the_other() {
        assert_eq!(gate_exit(true, false, false), 3, "against regressed, baseline clean");
        assert_eq!(gate_exit(false, true, false), 3);
        assert_eq!(gate_exit(false, false, true), 4);
        assert_eq!(gate_exit(true, false, true), 3, "a regression outranks a missed target");
        assert_eq!(gate_exit(false, false, false), 0);
    }
}

/// A run's defaults on one build, quick or full, where no flag says otherwise: `bench`'s, and
/// the settings `selftest` measures the method's error rates with. A point stops at a look
/// where the claim's comparison is decided (from 3 rounds quick, 4 full), else at the cap (9
/// quick, 12 full); samples of 150 ms (50 ms warm-up) quick, 1 s (250 ms) full: more, shorter
/// rounds pair away more drift than fewer long ones, and the full catalogue's minimum rounds
/// then fit the hour (2205 s; at 2.5 s a sample they took 4410 s).
pub fn user_defaults(quick: bool) -> Settings {
    Settings {
        quick,
        repetitions: if quick { 9 } else { 12 },
        min_rounds: if quick { 3 } else { 4 },
        duration: if quick { Duration::from_millis(150) } else { Duration::from_secs(1) },
        warmup: if quick { Duration::from_millis(50) } else { Duration::from_millis(250) },
        noise_limit: Some(0.5),
        budget_ms: None,
        ride_along: None,
        concurrency: None,
        sets: Default::default(),
        filter: None,
        shard: None,
        order_seed: 0,
        capacity: false,
        profile: false,
    }
}

pub(crate) fn failure(e: SessionError) -> Failure {
    match e {
        SessionError::BadRequest(m) => Failure::Usage(m),
        SessionError::Failed(m) => Failure::Run(m),
    }
}
