//! The micro engine's parent side: a job per measurement, a worker process per job (killed
//! with the run), the measurement read back into a sample.

use super::*;
use crate::results::Sample;
use std::path::Path;
use std::time::Duration;

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
pub async fn measure(bench: &Bench<'_>, experiment: &str, at: Trial<'_>) -> anyhow::Result<Sample> {
    let mut sample = Sample::default();
    let timed = run_worker(bench, experiment, at, Mode::Time, 0, None).await?;
    if crate::inject::active() > 0.0 {
        // The timing worker stretched every call it timed (it reads the same setting).
        crate::inject::applied(timed.time.as_ref().map_or(0, |t| t.samples.len() as u64));
    }
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
    allocations_into(bench, experiment, at, &mut sample).await?;
    instructions_into(bench, experiment, at, &mut sample).await?;
    Ok(sample)
}

/// Add dhat's allocation counts for `variant` at `point` to `sample`, when the allocation
/// worker is available; for experiments that time in their own way.
pub async fn allocations_into(
    bench: &Bench<'_>,
    experiment: &str,
    at: Trial<'_>,
    sample: &mut Sample,
) -> anyhow::Result<()> {
    if bench.workers.alloc.is_none() {
        return Ok(());
    }
    let counted = run_worker(bench, experiment, at, Mode::Allocs, 0, None).await?;
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
    bench: &Bench<'_>,
    experiment: &str,
    at: Trial<'_>,
    sample: &mut Sample,
) -> anyhow::Result<()> {
    if bench.workers.valgrind.is_none() {
        return Ok(());
    }
    // Instruction counts are deterministic: one count per variant and point is enough.
    static COUNTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let key = format!("{experiment}/{}/{}/{}", at.case, at.variant, at.point.label);
    {
        let mut counted = COUNTED.lock().unwrap_or_else(|e| e.into_inner());
        if counted.contains(&key) {
            return Ok(());
        }
        counted.push(key);
    }
    let iterations = if bench.settings.quick { 20 } else { 200 };
    let count = |n| async move {
        run_worker(bench, experiment, at, Mode::Instructions, n, None)
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

fn job(bench: &Bench<'_>, experiment: &str, at: Trial<'_>, mode: Mode, iterations: u64, scratch: &Path) -> Job {
    let (warmup_ms, measure_ms, samples, resamples) = plan(bench.settings);
    Job {
        experiment: experiment.to_owned(),
        case: at.case.to_owned(),
        variant: at.variant.to_owned(),
        point: at.point.clone(),
        mode,
        settings: bench.settings.clone(),
        warmup_ms,
        measure_ms,
        samples,
        resamples,
        iterations,
        scratch: scratch.to_path_buf(),
        out: scratch.join("measurement.json"),
        heap_profile: None,
    }
}

fn scratch_dir() -> anyhow::Result<PathBuf> {
    let dir = crate::reaper::new_temp_dir("perflab-micro-").context("cannot create a scratch directory")?;
    crate::reaper::track_dir(&dir);
    Ok(dir)
}

/// `bench --profile` for an in-process experiment: run the allocation worker once more on
/// `at`, with dhat writing its heap profile (every allocation site, with its stack) to
/// `file`. False when there is no allocation worker.
pub async fn heap_profile(bench: &Bench<'_>, experiment: &str, at: Trial<'_>, file: &Path) -> anyhow::Result<bool> {
    if bench.workers.alloc.is_none() {
        return Ok(false);
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    run_worker(bench, experiment, at, Mode::Allocs, 0, Some(file)).await?;
    // dhat records the worker's command line (the job): through the one redaction, like
    // every file a run writes.
    let text = std::fs::read_to_string(file).context("the allocation worker wrote no heap profile")?;
    crate::results::write_atomic(file, crate::redact::redact(&text).as_bytes())?;
    Ok(true)
}

/// Run a worker on `at`; `heap_profile`: the allocation worker also writes dhat's profile.
async fn run_worker(
    bench: &Bench<'_>,
    experiment: &str,
    at: Trial<'_>,
    mode: Mode,
    iterations: u64,
    heap_profile: Option<&Path>,
) -> anyhow::Result<Measurement> {
    let exe = match mode {
        Mode::Allocs => bench.workers.alloc.as_ref().context("no allocation worker (perflab-alloc)")?,
        _ => bench.workers.timer.as_ref().context("no timing worker")?,
    };
    let scratch = scratch_dir()?;
    let result = async {
        let mut job = job(bench, experiment, at, mode, iterations, &scratch);
        job.heap_profile = heap_profile.map(Path::to_path_buf);
        let profile = scratch.join("callgrind.out");
        let (mut cmd, what) = match mode {
            Mode::Time => (tokio::process::Command::new(exe), "timing worker"),
            Mode::Allocs => (tokio::process::Command::new(exe), "allocation worker"),
            Mode::Instructions => {
                let valgrind = bench.workers.valgrind.as_ref().context("no valgrind")?;
                let mut cmd = tokio::process::Command::new(valgrind);
                cmd.arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", profile.display()))
                    .arg("--dump-instr=no")
                    .arg(exe);
                (cmd, "callgrind")
            }
        };
        cmd.arg("micro-worker").arg(serde_json::to_string(&job)?);
        spawn_and_wait(bench, cmd, what).await?;
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
    crate::reaper::remove_tracked_dir(&scratch);
    result
}

/// The run's Redis URL reaches a worker through the environment, not its command line,
/// where `ps` would show a password.
pub(super) const REDIS_URL_VAR: &str = "PERFLAB_MICRO_REDIS_URL";

/// Run a worker with stdout discarded and stderr kept for its error; it dies with us.
async fn spawn_and_wait(bench: &Bench<'_>, mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<()> {
    match bench.redis_url {
        Some(url) => cmd.env(REDIS_URL_VAR, url),
        None => cmd.env_remove(REDIS_URL_VAR),
    };
    // Without CRITERION_HOME, criterion asks `cargo metadata` for the target directory (a
    // few hundred ms per worker under `cargo xtask`); its output directory is set per job.
    cmd.env("CRITERION_HOME", std::env::temp_dir()).env_remove("CARGO_CRITERION_PORT");
    cmd.stdout(std::process::Stdio::null());
    run_child(cmd, what, false).await.map(drop)
}

/// Run a Go process (the build, a benchmark) to its end as the workers are run, in a process
/// group of its own that the reaper kills whole (the go command's compilers and linker too);
/// its stdout.
pub(super) async fn run_capturing(mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<String> {
    cmd.stdout(std::process::Stdio::piped());
    let out = run_child(cmd, what, true).await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Start `cmd` (killed if this process dies or the future is dropped, tracked by the reaper
/// meanwhile) and wait for it; a failure says the line that says why.
async fn run_child(
    mut cmd: tokio::process::Command,
    what: &str,
    own_group: bool,
) -> anyhow::Result<std::process::Output> {
    cmd.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    // SAFETY: prctl and setpgid are async-signal-safe and touch only the child being set up.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if own_group {
                libc::setpgid(0, 0);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start the {what}"))?;
    let pid = child.id();
    if let Some(pid) = pid {
        crate::reaper::track_child(pid);
    }
    let output = child.wait_with_output().await;
    if let Some(pid) = pid {
        crate::reaper::untrack_child(pid);
    }
    let output = output.with_context(|| format!("waiting for the {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        // Go says why at a `file.go:line:` (a failing benchmark on stdout, a compile error on
        // stderr).
        // A Go panic or fatal error says what went wrong on its first line, before the frames.
        let go_panic =
            stderr.lines().chain(stdout.lines()).find(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "));
        let line = go_panic
            .or_else(|| stderr.lines().rev().find(|l| l.starts_with("error:") || l.contains("panicked")))
            .or_else(|| stdout.lines().chain(stderr.lines()).find(|l| l.contains(".go:")))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .or_else(|| stdout.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no message")
            .trim()
            .trim_start_matches("error:")
            .trim()
            .to_owned();
        anyhow::bail!("the {what} failed ({}): {}", output.status, crate::redact::redact(&line));
    }
    Ok(output)
}

// ---------------------------------------------------------------------------------------------

impl Workers {
    /// Find the worker executables: the timing worker is this executable (it must answer
    /// `micro-worker <job>`); the allocation worker is `perflab-alloc` beside it. Under cargo
    /// (`CARGO` is set) perflab-alloc is built first, so that it is never older than the
    /// experiments it measures; `PERFLAB_ALLOC_EXE` names one outright. What is missing is
    /// skipped, and `notes` says why.
    pub fn discover(instructions: bool, notes: &mut Vec<String>) -> Workers {
        let timer = std::env::current_exe().ok();
        let alloc = match std::env::var_os("PERFLAB_ALLOC_EXE") {
            Some(p) => Some(PathBuf::from(p)),
            None => {
                let sibling = timer.as_ref().map(|t| t.with_file_name("perflab-alloc"));
                if let (Some(cargo), Some(t)) = (std::env::var_os("CARGO"), timer.as_ref()) {
                    let release = t.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "release");
                    let mut cmd = std::process::Command::new(cargo);
                    cmd.args(["build", "--package", "xtask", "--bin", "perflab-alloc"]);
                    if release {
                        cmd.arg("--release");
                    }
                    match crate::build::cargo_build_with_progress(cmd, "building the allocation worker (perflab-alloc)")
                    {
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
            let v = crate::provision::which("valgrind");
            if v.is_none() {
                eprintln!("perflab: --instructions: valgrind is not installed; instruction counts are skipped");
                notes.push(
                    "Instruction counts were asked for (--instructions) but valgrind is not installed.".to_owned(),
                );
            }
            v
        } else {
            None
        };
        Workers { timer, alloc, valgrind }
    }
}
