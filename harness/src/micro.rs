//! The micro engine: in-process measurement of CPU and memory techniques.
//!
//! An in-process experiment hands the engine a [`Routine`] per variant and sweep point (its
//! `Experiment::routine`). The engine measures it in worker processes, never in the process
//! that runs the servers and the load engine:
//!
//! - **time**: criterion (warm-up, sampling plan, bootstrap estimates) in the timing worker,
//!   the `xtask` executable itself (`xtask micro-worker`). Criterion prints its own progress;
//!   in a worker that output is discarded and the estimates it saved are read back;
//! - **allocations**: dhat in the allocation worker `perflab-alloc`, a separate executable
//!   whose global allocator is dhat's counting one, so the counting never slows a timing;
//! - **instructions** (`--instructions`): the timing worker under valgrind's callgrind, once
//!   with the routine run `n` times and once with it run zero times; the difference divided
//!   by `n` is the routine's own instruction count, setup and process start cancelled out.
//!
//! Each worker gets a [`Job`] as one JSON argument and writes its [`Measurement`] as JSON to
//! the file the job names. A failed worker reports the last line of its stderr.

use crate::experiment::{Experiment, RunCtx, Settings};
use crate::results::{Better, MetricInfo, Sample, SweepPoint};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The body one iteration of which is measured, with the state it works on (built by the
/// experiment before any timing starts).
pub struct Routine {
    body: Box<dyn FnMut(u64) + Send>,
    items: u64,
}

impl Routine {
    /// `f(&mut state)` is one iteration; its result goes through `black_box`, so the work
    /// cannot be optimised away, and so does the state.
    pub fn new<S: Send + 'static, O>(mut state: S, mut f: impl FnMut(&mut S) -> O + Send + 'static) -> Self {
        Self {
            body: Box::new(move |n| {
                for _ in 0..n {
                    black_box(f(black_box(&mut state)));
                }
            }),
            items: 1,
        }
    }

    /// One iteration handles `n` items (records, conditions): the per-item metrics divide
    /// by it.
    pub fn items(mut self, n: u64) -> Self {
        self.items = n.max(1);
        self
    }

    /// Run `n` iterations.
    pub fn run(&mut self, n: u64) {
        (self.body)(n);
    }
}

/// The entry named `variant` in a table of (variant name, implementation), or an error that
/// names it.
pub fn pick<T: Copy>(table: &[(&str, T)], variant: &str) -> anyhow::Result<T> {
    table
        .iter()
        .find(|(name, _)| *name == variant)
        .map(|(_, f)| *f)
        .with_context(|| format!("unknown variant {variant}"))
}

/// What an experiment gets to build its routine with.
pub struct Input<'a> {
    pub settings: &'a Settings,
    /// The run's Redis, for routines that include a round trip (`serialization`).
    pub redis_url: Option<&'a str>,
}

/// The worker executables, found by xtask.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    /// The timing worker: invoked as `<exe> micro-worker <job>`.
    pub timer: Option<PathBuf>,
    /// The allocation worker (`perflab-alloc`); `None`: allocations are not measured.
    pub alloc: Option<PathBuf>,
    /// valgrind, when `--instructions` asked for instruction counts and it is installed.
    pub valgrind: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Time,
    Allocs,
    /// Run the routine `iterations` times, nothing else (under callgrind).
    Instructions,
}

/// One measurement for a worker to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub experiment: String,
    pub variant: String,
    pub point: SweepPoint,
    pub mode: Mode,
    pub quick: bool,
    pub sets: BTreeMap<String, String>,
    pub warmup_ms: u64,
    pub measure_ms: u64,
    pub samples: usize,
    pub resamples: usize,
    /// Instructions mode: iterations to run.
    pub iterations: u64,
    /// Criterion's output directory (time mode), created and removed by the parent.
    pub scratch: PathBuf,
    /// Where the worker writes its `Measurement`.
    pub out: PathBuf,
}

/// What a worker measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measurement {
    /// Items per iteration (`Routine::items`).
    pub items: u64,
    /// Time mode: criterion's estimates of one iteration, nanoseconds.
    pub time: Option<TimeEstimates>,
    /// Allocation mode.
    pub allocs: Option<AllocCounts>,
    /// Instructions mode: instructions executed by the whole worker process (callgrind's
    /// total), filled in by the parent from the profile.
    pub instructions: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimeEstimates {
    pub median_ns: f64,
    pub median_ci_ns: (f64, f64),
    pub mean_ns: f64,
    pub mean_ci_ns: (f64, f64),
    pub std_dev_ns: f64,
    /// Criterion's samples: (iterations, total nanoseconds).
    pub samples: Vec<(u64, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AllocCounts {
    pub iterations: u64,
    /// Allocations (a reallocation counts as one) per iteration.
    pub allocs_per_iter: f64,
    pub bytes_per_iter: f64,
    /// Peak of live heap bytes allocated by the routine (above what was live before it).
    pub peak_bytes: f64,
}

/// The metrics a micro sample carries, for an experiment's `Meta::metrics`.
pub fn metrics(item: &str) -> Vec<MetricInfo> {
    vec![
        time_metric(),
        MetricInfo::new("time_mean_ns", "ns", Better::Lower, "mean time of one call (criterion)"),
        MetricInfo::new("time_per_item_ns", "ns", Better::Lower, format!("median time per {item}")),
        MetricInfo::new(
            "allocs_per_call",
            "allocations",
            Better::Lower,
            "heap allocations per call, reallocations included (dhat)",
        ),
        MetricInfo::new("bytes_per_call", "bytes", Better::Lower, "bytes allocated per call (dhat)"),
        MetricInfo::new("allocs_per_item", "allocations", Better::Lower, format!("heap allocations per {item} (dhat)")),
        MetricInfo::new("bytes_per_item", "bytes", Better::Lower, format!("bytes allocated per {item} (dhat)")),
        MetricInfo::new("peak_heap_bytes", "bytes", Better::Lower, "peak live heap of the calls (dhat)"),
        MetricInfo::new(
            "instructions_per_call",
            "instructions",
            Better::Lower,
            "instructions per call (callgrind, with --instructions)",
        ),
    ]
}

/// The primary metric of most micro experiments.
pub fn time_metric() -> MetricInfo {
    MetricInfo::new("time_ns", "ns", Better::Lower, "median time of one call (criterion)")
}

/// How long criterion warms up and measures, and how many samples it takes.
fn plan(settings: &Settings) -> (u64, u64, usize, usize) {
    if settings.quick {
        // Short enough for the whole catalogue to run in every CI job; criterion's minimum
        // sample count.
        let m = settings.duration.min(Duration::from_millis(150));
        (settings.warmup.min(Duration::from_millis(50)).as_millis() as u64, m.as_millis() as u64, 10, 2_000)
    } else {
        (settings.warmup.as_millis() as u64, settings.duration.as_millis() as u64, 50, 20_000)
    }
}

/// Time (and count allocations and instructions of) `variant` at `point` in the workers:
/// the whole `run` of a typical in-process experiment.
pub async fn measure(ctx: &RunCtx, experiment: &str, variant: &str, point: &SweepPoint) -> anyhow::Result<Sample> {
    let mut sample = Sample::default();
    let timed = run_worker(ctx, experiment, variant, point, Mode::Time, 0).await?;
    let items = timed.items.max(1) as f64;
    if let Some(t) = &timed.time {
        let m = &mut sample.metrics;
        m.insert("time_ns".into(), t.median_ns);
        m.insert("time_ci_low_ns".into(), t.median_ci_ns.0);
        m.insert("time_ci_high_ns".into(), t.median_ci_ns.1);
        m.insert("time_mean_ns".into(), t.mean_ns);
        m.insert("time_std_dev_ns".into(), t.std_dev_ns);
        m.insert("time_per_item_ns".into(), t.median_ns / items);
        m.insert("calls_per_sec".into(), 1e9 / t.median_ns.max(f64::MIN_POSITIVE));
        m.insert("criterion_samples".into(), t.samples.len() as f64);
    }
    allocations_into(ctx, experiment, variant, point, &mut sample).await?;
    instructions_into(ctx, experiment, variant, point, &mut sample).await?;
    Ok(sample)
}

/// Add dhat's allocation counts for `variant` at `point` to `sample`, when the allocation
/// worker is available; for experiments that time in their own way.
pub async fn allocations_into(
    ctx: &RunCtx,
    experiment: &str,
    variant: &str,
    point: &SweepPoint,
    sample: &mut Sample,
) -> anyhow::Result<()> {
    if ctx.micro.alloc.is_none() {
        return Ok(());
    }
    let counted = run_worker(ctx, experiment, variant, point, Mode::Allocs, 0).await?;
    let items = counted.items.max(1) as f64;
    if let Some(a) = counted.allocs {
        let m = &mut sample.metrics;
        m.insert("allocs_per_call".into(), a.allocs_per_iter);
        m.insert("bytes_per_call".into(), a.bytes_per_iter);
        m.insert("allocs_per_item".into(), a.allocs_per_iter / items);
        m.insert("bytes_per_item".into(), a.bytes_per_iter / items);
        m.insert("peak_heap_bytes".into(), a.peak_bytes);
    }
    Ok(())
}

/// Add callgrind's instruction count per call, when `--instructions` found valgrind.
pub async fn instructions_into(
    ctx: &RunCtx,
    experiment: &str,
    variant: &str,
    point: &SweepPoint,
    sample: &mut Sample,
) -> anyhow::Result<()> {
    if ctx.micro.valgrind.is_none() {
        return Ok(());
    }
    // Instruction counts are deterministic: one count per variant and point is enough.
    static COUNTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let key = format!("{experiment}/{variant}/{}", point.label);
    {
        let mut counted = COUNTED.lock().unwrap_or_else(|e| e.into_inner());
        if counted.contains(&key) {
            return Ok(());
        }
        counted.push(key);
    }
    let iterations = if ctx.settings.quick { 20 } else { 200 };
    let count = |n| async move {
        run_worker(ctx, experiment, variant, point, Mode::Instructions, n)
            .await?
            .instructions
            .context("no instruction count")
    };
    let (with, without) = (count(iterations).await?, count(0).await?);
    let per_call = (with as f64 - without as f64) / iterations as f64;
    sample.metrics.insert("instructions_per_call".into(), per_call.max(0.0));
    Ok(())
}

/// The `summary:` (or `totals:`) line of a callgrind profile: instructions executed.
pub fn parse_callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn job(
    ctx: &RunCtx,
    experiment: &str,
    variant: &str,
    point: &SweepPoint,
    mode: Mode,
    iterations: u64,
    scratch: &Path,
) -> Job {
    let (warmup_ms, measure_ms, samples, resamples) = plan(&ctx.settings);
    Job {
        experiment: experiment.to_owned(),
        variant: variant.to_owned(),
        point: point.clone(),
        mode,
        quick: ctx.settings.quick,
        sets: ctx.settings.sets.clone(),
        warmup_ms,
        measure_ms,
        samples,
        resamples,
        iterations,
        scratch: scratch.to_path_buf(),
        out: scratch.join("measurement.json"),
    }
}

fn scratch_dir() -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "perflab-micro-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::provision::track_dir(&dir);
    Ok(dir)
}

async fn run_worker(
    ctx: &RunCtx,
    experiment: &str,
    variant: &str,
    point: &SweepPoint,
    mode: Mode,
    iterations: u64,
) -> anyhow::Result<Measurement> {
    let exe = match mode {
        Mode::Allocs => ctx.micro.alloc.as_ref().context("no allocation worker (perflab-alloc)")?,
        _ => ctx.micro.timer.as_ref().context("no timing worker")?,
    };
    let scratch = scratch_dir()?;
    let result = async {
        let job = job(ctx, experiment, variant, point, mode, iterations, &scratch);
        let profile = scratch.join("callgrind.out");
        let (mut cmd, what) = match mode {
            Mode::Time => (tokio::process::Command::new(exe), "timing worker"),
            Mode::Allocs => (tokio::process::Command::new(exe), "allocation worker"),
            Mode::Instructions => {
                let valgrind = ctx.micro.valgrind.as_ref().context("no valgrind")?;
                let mut cmd = tokio::process::Command::new(valgrind);
                cmd.arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", profile.display()))
                    .arg("--dump-instr=no")
                    .arg(exe);
                (cmd, "callgrind")
            }
        };
        cmd.arg("micro-worker").arg(serde_json::to_string(&job)?);
        spawn_and_wait(ctx, cmd, what).await?;
        let text = std::fs::read_to_string(&job.out).with_context(|| format!("the {what} wrote no measurement"))?;
        let mut m = serde_json::from_str::<Measurement>(&text)
            .with_context(|| format!("the {what} wrote an unreadable measurement"))?;
        if mode == Mode::Instructions {
            let text = std::fs::read_to_string(&profile).context("callgrind wrote no profile")?;
            m.instructions = Some(parse_callgrind_total(&text).context("no instruction total in callgrind's profile")?);
        }
        Ok(m)
    }
    .await;
    crate::provision::remove_tracked_dir(&scratch);
    result
}

/// The run's Redis URL reaches a worker through the environment, not its command line,
/// where `ps` would show a password.
const REDIS_URL_VAR: &str = "PERFLAB_MICRO_REDIS_URL";

/// Run a worker with stdout discarded and stderr kept for its error; it dies with us.
async fn spawn_and_wait(ctx: &RunCtx, mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<()> {
    match ctx.env.redis.as_ref() {
        Some(r) => cmd.env(REDIS_URL_VAR, &r.url),
        None => cmd.env_remove(REDIS_URL_VAR),
    };
    // Without CRITERION_HOME, criterion asks `cargo metadata` for the target directory (a
    // few hundred ms per worker under `cargo xtask`); its output directory is set per job.
    cmd.env("CRITERION_HOME", std::env::temp_dir()).env_remove("CARGO_CRITERION_PORT");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start the {what}"))?;
    let pid = child.id();
    if let Some(pid) = pid {
        crate::provision::track_child(pid);
    }
    let output = child.wait_with_output().await;
    if let Some(pid) = pid {
        crate::provision::untrack_child(pid);
    }
    let output = output.with_context(|| format!("waiting for the {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("error:") || l.contains("panicked"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no message")
            .trim()
            .trim_start_matches("error:")
            .trim()
            .to_owned();
        anyhow::bail!("the {what} failed ({}): {line}", output.status);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Worker side

/// Which allocator the worker executable was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    System,
    /// dhat's counting allocator is the global allocator.
    Dhat,
}

/// The body of `xtask micro-worker <job>` and of `perflab-alloc micro-worker <job>`.
/// Returns the process's exit code; errors are printed as one `error:` line.
pub fn worker_main(
    experiments: &[Box<dyn Experiment>],
    job_json: &str,
    allocator: Allocator,
) -> std::process::ExitCode {
    match worker(experiments, job_json, allocator) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn worker(experiments: &[Box<dyn Experiment>], job_json: &str, allocator: Allocator) -> anyhow::Result<()> {
    let job: Job = serde_json::from_str(job_json).context("malformed micro-worker job")?;
    let exp = experiments
        .iter()
        .find(|e| e.meta().id == job.experiment)
        .with_context(|| format!("no experiment {}", job.experiment))?;
    let settings = Settings {
        quick: job.quick,
        repetitions: 1,
        duration: Duration::from_millis(job.measure_ms),
        warmup: Duration::from_millis(job.warmup_ms),
        concurrency: None,
        sets: job.sets.clone(),
        order_seed: 0,
    };
    let redis_url = std::env::var(REDIS_URL_VAR).ok();
    let input = Input { settings: &settings, redis_url: redis_url.as_deref() };
    let mut routine = exp.routine(&input, &job.variant, &job.point)?;
    let mut out = Measurement { items: routine.items, ..Default::default() };
    match (job.mode, allocator) {
        (Mode::Time, Allocator::System) => out.time = Some(time(&mut routine, &job)?),
        (Mode::Instructions, Allocator::System) => routine.run(job.iterations),
        (Mode::Allocs, Allocator::Dhat) => out.allocs = Some(count_allocs(&mut routine, job.quick)),
        (mode, allocator) => anyhow::bail!("this worker ({allocator:?} allocator) cannot measure {mode:?}"),
    }
    let text = serde_json::to_vec(&out)?;
    crate::results::write_atomic(&job.out, &text).with_context(|| format!("writing {}", job.out.display()))?;
    Ok(())
}

fn time(routine: &mut Routine, job: &Job) -> anyhow::Result<TimeEstimates> {
    use std::cell::RefCell;
    let recorded: RefCell<Vec<(u64, f64)>> = RefCell::new(Vec::new());
    let mut c = criterion::Criterion::default()
        .output_directory(&job.scratch)
        .without_plots()
        .with_output_color(false)
        .warm_up_time(Duration::from_millis(job.warmup_ms.max(1)))
        .measurement_time(Duration::from_millis(job.measure_ms.max(1)))
        .sample_size(job.samples.max(10))
        .nresamples(job.resamples.max(100));
    c.bench_function("routine", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            routine.run(iters);
            let elapsed = start.elapsed();
            recorded.borrow_mut().push((iters, elapsed.as_nanos() as f64));
            elapsed
        })
    });
    let path = job.scratch.join("routine").join("new").join("estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("criterion wrote no estimates ({})", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).context("criterion's estimates.json")?;
    let est = |name: &str| -> anyhow::Result<(f64, f64, f64)> {
        let e = &v[name];
        let ci = &e["confidence_interval"];
        match (e["point_estimate"].as_f64(), ci["lower_bound"].as_f64(), ci["upper_bound"].as_f64()) {
            (Some(p), Some(l), Some(u)) => Ok((p, l, u)),
            _ => anyhow::bail!("criterion's estimates.json has no {name}"),
        }
    };
    let (median, ml, mu) = est("median")?;
    let (mean, al, au) = est("mean")?;
    let (std_dev, _, _) = est("std_dev")?;
    // The last `samples` calls are criterion's measurement; the ones before were its warm-up.
    let rec = recorded.into_inner();
    let samples = rec[rec.len().saturating_sub(job.samples.max(10))..].to_vec();
    Ok(TimeEstimates {
        median_ns: median,
        median_ci_ns: (ml, mu),
        mean_ns: mean,
        mean_ci_ns: (al, au),
        std_dev_ns: std_dev,
        samples,
    })
}

/// Count what the routine allocates, with dhat as the global allocator. One call first,
/// uncounted, so that lazily initialised state (a pool's first objects, a connection's
/// buffers) is not charged to every call.
fn count_allocs(routine: &mut Routine, quick: bool) -> AllocCounts {
    routine.run(1);
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    // dhat records a backtrace per allocation, so calls are slow while it counts: as many as
    // fit in about 200 ms (quick: 50 ms), between 1 and 1000, judged by the first counted call.
    let start = Instant::now();
    routine.run(1);
    let one = start.elapsed().max(Duration::from_nanos(1));
    let budget = Duration::from_millis(if quick { 50 } else { 200 });
    let more = (budget.as_nanos() / one.as_nanos()).min(999) as u64;
    routine.run(more);
    let iterations = more + 1;
    let after = dhat::HeapStats::get();
    AllocCounts {
        iterations,
        allocs_per_iter: (after.total_blocks - before.total_blocks) as f64 / iterations as f64,
        bytes_per_iter: (after.total_bytes - before.total_bytes) as f64 / iterations as f64,
        peak_bytes: after.max_bytes.saturating_sub(before.curr_bytes) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_runs_the_body_n_times_on_its_state() {
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = counter.clone();
        let mut r = Routine::new(0u64, move |s| {
            *s += 1;
            c.store(*s, std::sync::atomic::Ordering::Relaxed);
        })
        .items(10);
        r.run(3);
        r.run(4);
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 7);
        assert_eq!(r.items, 10);
        assert_eq!(Routine::new((), |_| ()).items(0).items, 1);
    }

    #[test]
    fn callgrind_totals_are_parsed() {
        let profile = "version: 1\ncmd: x\nevents: Ir\nfl=(1)\n0 5\nsummary: 123456\ntotals: 123456\n";
        assert_eq!(parse_callgrind_total(profile), Some(123456));
        assert_eq!(parse_callgrind_total("events: Ir\n"), None);
    }

    /// A one-variant in-process experiment whose routine sleeps 1 ms.
    struct Sleeper;

    impl Experiment for Sleeper {
        fn meta(&self) -> crate::Meta {
            crate::Meta {
                id: "sleeper",
                title: "t",
                guide_section: "g",
                claim: "c",
                variants: vec![crate::Variant::new("sleep", "sleeps 1 ms")],
                sweep: crate::Sweep::numeric("n", "", &[1.0], &[1.0]),
                primary_metric: time_metric(),
                metrics: metrics("item"),
                needs: crate::Needs { postgres: false, redis: false, micro: true },
                knobs: Vec::new(),
            }
        }
        fn setup<'a>(&'a self, _ctx: &'a RunCtx) -> crate::BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn routine(&self, _input: &Input<'_>, variant: &str, _point: &SweepPoint) -> anyhow::Result<Routine> {
            anyhow::ensure!(variant == "sleep", "unknown variant {variant}");
            Ok(Routine::new((), |_| std::thread::sleep(Duration::from_millis(1))).items(4))
        }
        fn run<'a>(
            &'a self,
            _c: &'a RunCtx,
            _v: &'a str,
            _p: &'a SweepPoint,
        ) -> crate::BoxFuture<'a, anyhow::Result<Sample>> {
            Box::pin(async { anyhow::bail!("not used") })
        }
    }

    fn sleeper_job(dir: &Path, mode: Mode, variant: &str) -> String {
        let job = Job {
            experiment: "sleeper".into(),
            variant: variant.into(),
            point: SweepPoint { label: "1".into(), value: 1.0 },
            mode,
            quick: true,
            sets: BTreeMap::new(),
            warmup_ms: 10,
            measure_ms: 50,
            samples: 10,
            resamples: 100,
            iterations: 3,
            scratch: dir.to_path_buf(),
            out: dir.join("measurement.json"),
        };
        serde_json::to_string(&job).unwrap()
    }

    /// The worker reads its job, builds the routine, measures and writes the measurement; bad
    /// jobs are errors with a clear message, never a panic.
    #[test]
    fn the_worker_measures_a_job_and_rejects_bad_ones() {
        let dir = std::env::temp_dir().join(format!("perflab-micro-worker-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exps: Vec<Box<dyn Experiment>> = vec![Box::new(Sleeper)];
        let result = (|| {
            worker(&exps, &sleeper_job(&dir, Mode::Time, "sleep"), Allocator::System)?;
            let m: Measurement = serde_json::from_str(&std::fs::read_to_string(dir.join("measurement.json"))?)?;
            let bad_json = worker(&exps, "{ not a job", Allocator::System).unwrap_err();
            let bad_variant = worker(&exps, &sleeper_job(&dir, Mode::Time, "nap"), Allocator::System).unwrap_err();
            let wrong_allocator =
                worker(&exps, &sleeper_job(&dir, Mode::Allocs, "sleep"), Allocator::System).unwrap_err();
            let no_exp = worker(&[], &sleeper_job(&dir, Mode::Time, "sleep"), Allocator::System).unwrap_err();
            anyhow::Ok((m, [bad_json, bad_variant, wrong_allocator, no_exp].map(|e| format!("{e:#}"))))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        let (m, errors) = result.unwrap();
        assert_eq!(m.items, 4);
        let t = m.time.expect("a time measurement");
        assert!(t.median_ns >= 1e6 && t.median_ns < 1e7, "{}", t.median_ns);
        assert!(m.allocs.is_none());
        assert!(errors[0].contains("malformed micro-worker job"), "{}", errors[0]);
        assert!(errors[1].contains("unknown variant nap"), "{}", errors[1]);
        assert!(errors[2].contains("cannot measure Allocs"), "{}", errors[2]);
        assert!(errors[3].contains("no experiment sleeper"), "{}", errors[3]);
    }

    /// Criterion, run as the timing worker runs it, measures a routine of known duration.
    #[test]
    fn criterion_times_a_known_sleep() {
        let dir = std::env::temp_dir().join(format!("perflab-micro-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let job = Job {
            experiment: "x".into(),
            variant: "v".into(),
            point: SweepPoint { label: "1".into(), value: 1.0 },
            mode: Mode::Time,
            quick: true,
            sets: BTreeMap::new(),
            warmup_ms: 20,
            measure_ms: 200,
            samples: 10,
            resamples: 200,
            iterations: 0,
            scratch: dir.clone(),
            out: dir.join("out.json"),
        };
        let mut r = Routine::new((), |_| std::thread::sleep(Duration::from_millis(2)));
        let t = time(&mut r, &job);
        let _ = std::fs::remove_dir_all(&dir);
        let t = t.unwrap();
        // A 2 ms sleep takes at least 2 ms and, even on a busy machine, well under 20.
        assert!(t.median_ns >= 2e6 && t.median_ns < 2e7, "median {} ns", t.median_ns);
        assert!(t.median_ci_ns.0 <= t.median_ns && t.median_ns <= t.median_ci_ns.1);
        assert_eq!(t.samples.len(), 10);
        for (iters, ns) in &t.samples {
            assert!(*ns >= 2e6 * *iters as f64);
        }
    }
}
