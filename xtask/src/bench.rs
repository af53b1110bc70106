//! `cargo xtask bench`: provision servers, run the selected experiments, write results.json
//! after each one (atomically, so an interrupted run keeps what it finished), render the report.

use crate::flags::{default_reports_dir, parse_duration, BenchArgs};
use crate::{catalogue, report, Failure};
use harness::experiment::Settings;
use harness::micro;
use harness::provision::{self, Provider, Request};
use harness::results::{self, ExperimentStatus, RunContext, RunResults, RunSettings, SCHEMA_VERSION};
use harness::runner::{self, Progress};
use harness::{context, Experiment, RunCtx};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set by the signal handler; after it, nothing more is written.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

struct Plan {
    experiments: Vec<Box<dyn Experiment>>,
    settings: Settings,
    request: Request,
    out: PathBuf,
    filter: Option<String>,
    instructions: bool,
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
    let settings = Settings {
        quick,
        repetitions: args.reps.unwrap_or(if quick { 2 } else { 5 }),
        duration: dur(
            &args.duration,
            "duration",
            if quick { Duration::from_millis(400) } else { Duration::from_secs(5) },
        )?,
        warmup: dur(&args.warmup, "warmup", if quick { Duration::from_millis(150) } else { Duration::from_secs(1) })?,
        concurrency: args.concurrency,
        sets,
        order_seed: args.order_seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }),
    };
    if settings.repetitions == 0 || settings.repetitions > 1000 {
        return Err(Failure::usage("--reps must be between 1 and 1000"));
    }
    if settings.concurrency == Some(0) || settings.concurrency.is_some_and(|c| c > 10_000) {
        return Err(Failure::usage("--concurrency must be between 1 and 10000"));
    }
    let provider: Provider = args.provider.parse().map_err(Failure::usage)?;
    let request = Request {
        provider,
        pg_url: args.pg_url.clone().filter(|s| !s.is_empty()),
        redis_url: args.redis_url.clone().filter(|s| !s.is_empty()),
        need_postgres: experiments.iter().any(|e| e.meta().needs.postgres),
        need_redis: experiments.iter().any(|e| e.meta().needs.redis),
    };
    Ok(Plan {
        experiments,
        settings,
        request,
        out: args.out.clone().unwrap_or_else(default_reports_dir),
        filter: args.filter.clone(),
        instructions: args.instructions,
    })
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
                let (knobs, names) = knobs_of(exp.as_ref());
                let knob = knobs.iter().find(|k| k.name == name).ok_or_else(|| {
                    Failure::usage(format!("--set {key}: {exp_id} has no setting {name:?}; its settings are: {names}"))
                })?;
                knob.check(exp_id, value).map_err(Failure::Usage)?;
            }
            None => {
                let mut found = false;
                for e in selected {
                    let m = e.meta();
                    if let Some(k) = m.knobs.iter().find(|k| k.name == key) {
                        k.check(m.id, value).map_err(Failure::Usage)?;
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

/// The micro engine's workers: this executable times; `perflab-alloc` beside it counts
/// allocations. Under `cargo xtask` (cargo's `CARGO` is set) it is built first, so that it
/// is never older than the experiments it measures; `PERFLAB_ALLOC_EXE` names one outright.
/// Without it, allocations are skipped and `notes` says why.
fn micro_workers(instructions: bool, notes: &mut Vec<String>) -> micro::Workers {
    let timer = std::env::current_exe().ok();
    let alloc = match std::env::var_os("PERFLAB_ALLOC_EXE") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let sibling = timer.as_ref().map(|t| t.with_file_name("perflab-alloc"));
            if let (Some(cargo), Some(t)) = (std::env::var_os("CARGO"), timer.as_ref()) {
                let release = t.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "release");
                let mut cmd = std::process::Command::new(cargo);
                cmd.args(["build", "--quiet", "--package", "xtask", "--bin", "perflab-alloc"]);
                if release {
                    cmd.arg("--release");
                }
                eprintln!("perflab: building the allocation worker (perflab-alloc)…");
                match cmd.status() {
                    Ok(s) if s.success() => {}
                    Ok(s) => notes.push(format!("building perflab-alloc failed ({s})")),
                    Err(e) => notes.push(format!("cannot run cargo to build perflab-alloc: {e}")),
                }
            }
            sibling
        }
    };
    let alloc = alloc.filter(|p| p.is_file());
    if alloc.is_none() {
        notes.push(
            "Allocations were not counted: the allocation worker perflab-alloc was not found \
             (run through `cargo xtask`, or set PERFLAB_ALLOC_EXE)."
                .to_owned(),
        );
    }
    let valgrind = if instructions {
        let v = harness::provision::which("valgrind");
        if v.is_none() {
            eprintln!("perflab: --instructions: valgrind is not installed; instruction counts are skipped");
            notes.push("Instruction counts were asked for (--instructions) but valgrind is not installed.".to_owned());
        }
        v
    } else {
        None
    };
    micro::Workers { timer, alloc, valgrind }
}

pub fn bench(args: BenchArgs) -> Result<ExitCode, Failure> {
    let plan = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from)?;
    runtime.block_on(run(plan, args.no_report))
}

async fn run(plan: Plan, no_report: bool) -> Result<ExitCode, Failure> {
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
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\ninterrupted: stopping servers; finished experiments are kept in results.json");
        provision::cleanup_all();
        std::process::exit(code);
    });

    // A harness killed with SIGKILL leaves its servers' directories behind: remove them now.
    let swept = provision::sweep_leftovers();
    if !swept.is_empty() {
        eprintln!(
            "perflab: removed {} temporary director{} left by perflab runs that were killed ({})",
            swept.len(),
            if swept.len() == 1 { "y" } else { "ies" },
            swept.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }

    let mut micro_notes = Vec::new();
    let micro_workers = if plan.experiments.iter().any(|e| e.meta().needs.micro) {
        micro_workers(plan.instructions, &mut micro_notes)
    } else {
        micro::Workers::default()
    };

    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (git_revision, git_dirty) = context::git_revision(&workspace);
    std::fs::create_dir_all(&plan.out)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", plan.out.display())))?;

    eprintln!(
        "perflab: {} experiment(s), {} mode; starting servers…",
        plan.experiments.len(),
        if plan.settings.quick { "quick" } else { "full" }
    );
    let env = provision::provision(&plan.request).await.map_err(|e| {
        if e.is_user_error() {
            Failure::Usage(e.to_string())
        } else {
            Failure::Run(e.to_string())
        }
    })?;
    let probe = env.probe();
    // The run's directory is made once the servers are up, so a failed start leaves nothing.
    let (run_id, dir) = context::create_run_dir(&plan.out, git_revision.as_deref())
        .map_err(|e| Failure::usage(format!("cannot create a run directory in {}: {e}", plan.out.display())))?;
    let results_path = dir.join("results.json");
    let s = &plan.settings;
    let mut results = RunResults {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.clone(),
        context: RunContext {
            harness_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision,
            git_dirty,
            started_at: context::now_rfc3339(),
            finished_at: None,
            host: context::host(),
            rustc: context::rustc_version(),
            arguments: harness::redact::redact_args(std::env::args()),
            settings: RunSettings {
                quick: s.quick,
                repetitions: s.repetitions,
                duration_ms: s.duration.as_millis() as u64,
                warmup_ms: s.warmup.as_millis() as u64,
                concurrency: s.concurrency,
                sets: s.sets.clone(),
                filter: plan.filter.clone(),
                order_seed: s.order_seed,
            },
            servers: env.servers.clone(),
        },
        experiments: Vec::new(),
        complete: false,
    };
    let save = |r: &RunResults| {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(());
        }
        results::save(&results_path, r).map_err(|e| Failure::Run(format!("writing {}: {e}", results_path.display())))
    };
    save(&results)?;

    let mut ctx = RunCtx { env, settings: plan.settings.clone(), probe, micro: micro_workers };
    let total: u64 = plan.experiments.iter().map(|e| runner::planned_samples(&e.meta(), s.quick, s.repetitions)).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} samples, ETA {eta}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let on_progress = |p: Progress<'_>| match p {
        Progress::Setup { experiment } => bar.set_message(format!("{experiment}: setup")),
        Progress::Sample { experiment, variant, point, repetition } => {
            bar.inc(1);
            bar.set_message(format!("{experiment}: {variant} @ {point} (rep {})", repetition + 1));
        }
        Progress::Checks { experiment } => bar.set_message(format!("{experiment}: checks")),
    };
    let mut failed = Vec::new();
    for exp in &plan.experiments {
        let mut result = runner::run_experiment(exp.as_ref(), &ctx, &on_progress).await;
        if exp.meta().needs.micro {
            result.notes.extend(micro_notes.iter().cloned());
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            std::future::pending::<()>().await; // the signal handler is exiting the process
        }
        if let ExperimentStatus::Failed { error } = &result.status {
            bar.suspend(|| {
                eprintln!(
                    "{} failed after {:.1} s: {}",
                    result.id,
                    result.wall_time_ms as f64 / 1000.0,
                    harness::redact::redact(error)
                )
            });
            failed.push(result.id.clone());
            // A server that died or hangs would fail every experiment after this one: when the
            // run started its own, it starts fresh ones; an external server is someone else's.
            if ctx.env.is_local() {
                if let Err(why) = ctx.env.health().await {
                    bar.suspend(|| eprintln!("perflab: {why}; starting fresh servers for the remaining experiments"));
                    ctx.env.shutdown();
                    let env = provision::provision(&plan.request)
                        .await
                        .map_err(|e| Failure::Run(format!("restarting the servers: {e}")))?;
                    ctx.probe = env.probe();
                    ctx.env = env;
                    result.notes.push(format!("After this failure the run replaced its servers ({why})."));
                }
            }
        } else {
            bar.suspend(|| {
                eprintln!("{} done in {:.1} s", result.id, result.wall_time_ms as f64 / 1000.0);
                if let Some(h) = &result.headline {
                    eprintln!("  {}", h.sentence);
                }
            });
        }
        results.experiments.push(result);
        save(&results)?;
    }
    bar.finish_and_clear();
    drop(ctx); // stops the servers before the report is written
    results.complete = true;
    results.context.finished_at = Some(context::now_rfc3339());
    save(&results)?;
    eprintln!("results: {}", results_path.display());
    if !no_report {
        let page = report::render_run(&results_path)?;
        eprintln!("report:  {}", page.display());
        println!("{}", page.display());
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::Run(format!("{} experiment(s) failed: {}", failed.len(), failed.join(", "))))
    }
}
