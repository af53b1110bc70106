//! The micro engine's worker side: `xtask micro-worker <job>` (timing, instructions) and
//! `perflab-alloc micro-worker <job>` (allocations) build the job's routine and measure it.

use super::parent::REDIS_URL_VAR;
use super::*;
use std::path::Path;
use std::time::{Duration, Instant};

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
    experiments: &[(&str, &dyn Routines)],
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

fn worker(experiments: &[(&str, &dyn Routines)], job_json: &str, allocator: Allocator) -> anyhow::Result<()> {
    let job: Job = serde_json::from_str(job_json).context("malformed micro-worker job")?;
    let (_, exp) = experiments
        .iter()
        .find(|(id, _)| *id == job.experiment)
        .with_context(|| format!("no in-process experiment {}", job.experiment))?;
    let redis_url = std::env::var(REDIS_URL_VAR).ok();
    let input = Input { settings: &job.settings, redis_url: redis_url.as_deref() };
    let at = Trial { case: &job.case, variant: &job.variant, point: &job.point, offered: None, round: 0 };
    let mut routine = exp.routine(&input, at)?;
    let mut out = Measurement { items: routine.items, ..Default::default() };
    match (job.mode, allocator) {
        (Mode::Time, Allocator::System) => out.time = Some(time(&mut routine, &job)?),
        (Mode::Instructions, Allocator::System) => routine.run(job.iterations),
        (Mode::Allocs, Allocator::Dhat) => {
            out.allocs = Some(count_allocs(&mut routine, job.settings.quick, job.heap_profile.as_deref()))
        }
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
    // `inject_slowdown`: every timed call stretched by a known fraction of its own time.
    let slowdown = crate::inject::for_trial(&job.settings, &job.experiment, &job.variant);
    c.bench_function("routine", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            routine.run(iters);
            let mut end = Instant::now();
            if slowdown > 0.0 {
                end = crate::inject::stretch(start, end, slowdown);
            }
            let elapsed = end - start;
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
/// With `heap_profile`, dhat also writes its heap profile there when the counting ends.
fn count_allocs(routine: &mut Routine, quick: bool, heap_profile: Option<&Path>) -> AllocCounts {
    routine.run(1);
    let _profiler = match heap_profile {
        Some(file) => dhat::Profiler::builder().file_name(file).build(),
        None => dhat::Profiler::builder().testing().build(),
    };
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
    use std::path::Path;

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

    /// An in-process experiment whose one routine sleeps 1 ms.
    struct Sleeper;

    impl Routines for Sleeper {
        fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
            anyhow::ensure!(at.variant == "sleep", "unknown variant {}", at.variant);
            Ok(Routine::new((), |_| std::thread::sleep(Duration::from_millis(1))).items(4))
        }
    }

    fn sleeper_job(dir: &Path, mode: Mode, variant: &str) -> String {
        let job = Job {
            experiment: "sleeper".into(),
            case: String::new(),
            variant: variant.into(),
            point: SweepPoint { label: "1".into(), value: 1.0 },
            mode,
            settings: Settings::quick_for_tests(),
            warmup_ms: 10,
            measure_ms: 50,
            samples: 10,
            resamples: 100,
            iterations: 3,
            scratch: dir.to_path_buf(),
            out: dir.join("measurement.json"),
            heap_profile: None,
        };
        serde_json::to_string(&job).unwrap()
    }

    /// The worker reads its job, builds the routine, measures and writes the measurement; bad
    /// jobs are errors with a clear message, never a panic.
    #[test]
    fn the_worker_measures_a_job_and_rejects_bad_ones() {
        let dir = std::env::temp_dir().join(format!("perflab-micro-worker-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exps: [(&str, &dyn Routines); 1] = [("sleeper", &Sleeper)];
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
        assert!(errors[3].contains("no in-process experiment sleeper"), "{}", errors[3]);
    }

    /// Criterion, run as the timing worker runs it, measures a routine of known duration.
    #[test]
    fn criterion_times_a_known_sleep() {
        let dir = std::env::temp_dir().join(format!("perflab-micro-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let job = Job {
            experiment: "x".into(),
            case: String::new(),
            variant: "v".into(),
            point: SweepPoint { label: "1".into(), value: 1.0 },
            mode: Mode::Time,
            settings: Settings::quick_for_tests(),
            warmup_ms: 20,
            measure_ms: 200,
            samples: 10,
            resamples: 200,
            iterations: 0,
            scratch: dir.clone(),
            out: dir.join("out.json"),
            heap_profile: None,
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
