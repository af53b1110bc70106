//! The load engine's tests: synthetic workers with known service times, stalls, errors,
//! starvation and lateness, run through `run` as the experiments run.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A synthetic service: each call takes `service`; the call that starts after `stall_at`
/// first (once) stalls for `stall`.
struct Synthetic {
    service: Duration,
    stall: Duration,
    stall_at: Instant,
    stalled: Arc<AtomicU64>,
}

impl Worker for Synthetic {
    async fn call(&mut self) -> Result<(), OpError> {
        if Instant::now() >= self.stall_at && self.stalled.fetch_add(1, Ordering::SeqCst) == 0 {
            tokio::time::sleep(self.stall).await;
        }
        tokio::time::sleep(self.service).await;
        Ok(())
    }
}

fn synthetic(stall_at: Instant) -> Synthetic {
    Synthetic {
        service: Duration::from_millis(2),
        stall: Duration::from_secs(1),
        stall_at,
        stalled: Arc::new(AtomicU64::new(0)),
    }
}

struct Slow(Duration);

impl Worker for Slow {
    async fn call(&mut self) -> Result<(), OpError> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

#[test]
fn an_operation_longer_than_the_window_is_still_measured() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = LoadConfig::closed(2, Duration::from_millis(50), Duration::from_millis(50));
    let report = rt.block_on(run(&cfg, &Probe::default(), |_| async { Ok(Slow(Duration::from_millis(120))) })).unwrap();
    // The first call spans warm-up and window (not measured); the second one is.
    assert_eq!(report.ok, 2, "one measured call per worker");
    assert!(report.measured >= Duration::from_millis(100), "{:?}", report.measured);
}

#[test]
fn a_sample_of_errors_has_no_latency_and_no_throughput() {
    struct Refused;
    impl Worker for Refused {
        async fn call(&mut self) -> Result<(), OpError> {
            tokio::task::yield_now().await;
            Err(OpError::new("connection refused"))
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = LoadConfig::closed(2, Duration::from_millis(20), Duration::from_millis(100));
    let report = rt.block_on(run(&cfg, &Probe::default(), |_| async { Ok(Refused) })).unwrap();
    assert_eq!(report.ok, 0);
    assert!(report.errors["connection refused"] > 100, "{:?}", report.errors);
    assert!(report.histogram.is_empty());
    let sample = report.into_sample();
    assert_eq!(sample.metrics["ops_per_sec"], 0.0);
    assert_eq!(sample.metrics["error_rate"], 1.0);
    assert!(sample.latency.is_none());
    assert!(!sample.metrics.contains_key("latency_p50_us"), "{:?}", sample.metrics);
}

/// Worker 0's operation completes without ever waiting (an in-process cache hit); worker 1's
/// waits on a timer, as a network call waits on its socket.
enum Mixed {
    Instant,
    Waits,
}

impl Worker for Mixed {
    async fn call(&mut self) -> Result<(), OpError> {
        match self {
            Mixed::Instant => std::hint::black_box(()),
            Mixed::Waits => tokio::time::sleep(Duration::from_micros(200)).await,
        }
        Ok(())
    }
}

#[test]
fn a_worker_that_never_waits_does_not_starve_the_others() {
    for mode in [Mode::Closed { concurrency: 2 }, Mode::Open { concurrency: 2, rate_per_sec: 1e9 }] {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // No warm-up: at this rate an open loop's worker that sleeps would spend the run on
        // warm-up arrivals.
        let mut cfg = LoadConfig::closed(2, Duration::ZERO, Duration::from_millis(300));
        cfg.mode = mode;
        // The open loop's instant worker is always behind a rate of 10⁹/s and would take
        // minutes to work off its arrivals: the run gives up on it soon after the window.
        cfg.give_up_after = Some(Duration::from_millis(200));
        cfg.threads = Some(1);
        // A background task on the load thread, as a connection's driver or a cache's
        // refill is: it must get turns too.
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let report = rt
            .block_on(run(&cfg, &Probe::default(), move |i| {
                let t = t.clone();
                async move {
                    if i == 0 {
                        tokio::spawn(async move {
                            loop {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                t.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                        Ok(Mixed::Instant)
                    } else {
                        Ok(Mixed::Waits)
                    }
                }
            }))
            .unwrap();
        // The waiting worker sleeps ≥ 1 ms per call (tokio's timer): ~300 calls in 300 ms
        // if it gets its turns, 1 if the other worker never hands the thread back.
        assert!(report.worker_ops[1] >= 50, "{mode:?}: the waiting worker got {:?}", report.worker_ops);
        assert!(report.worker_ops[0] > report.worker_ops[1], "{mode:?}: {:?}", report.worker_ops);
        assert!(ticks.load(Ordering::Relaxed) >= 50, "{mode:?}: background ticks {}", ticks.load(Ordering::Relaxed));
        let sample = report.into_sample();
        assert_eq!(sample.metrics["workers"], 2.0);
        assert!(sample.metrics[WORKER_OPS_MIN_SHARE] < 0.5, "the spread is recorded: {:?}", sample.metrics);
    }
}

#[test]
fn the_open_loop_records_its_own_lateness_and_a_late_sample_is_invalid() {
    // On time: a no-op worker paced at 2000/s. Lateness is recorded for the paced arrivals.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = LoadConfig::open(1, 2000.0, Duration::from_millis(20), Duration::from_millis(300));
    struct Noop;
    impl Worker for Noop {
        async fn call(&mut self) -> Result<(), OpError> {
            Ok(())
        }
    }
    let report = rt.block_on(run(&cfg, &Probe::default(), |_| async { Ok(Noop) })).unwrap();
    let paced = report.pacing.as_ref().expect("the open loop records pacing").len();
    assert!(paced > 300, "most of ~600 arrivals were waited for: {paced}");
    let sample = report.into_sample();
    assert!(sample.metrics[PACING_P50] >= 0.0 && sample.metrics.contains_key(PACING_P99), "{:?}", sample.metrics);

    // Late by construction: at 100 arrivals/s over four workers on one thread, each worker's
    // arrivals are 40 ms apart, 10 ms after the previous worker's. Worker 1 blocks the thread
    // for 35 ms per call (never behind itself), so the next arrivals of workers 2, 3 and 0 are
    // sent about 25, 15 and 5 ms late: three in four paced arrivals. Their calls are instant,
    // so their latency is the lateness.
    struct Blocks(bool);
    impl Worker for Blocks {
        async fn call(&mut self) -> Result<(), OpError> {
            if self.0 {
                std::thread::sleep(Duration::from_millis(35));
            }
            Ok(())
        }
    }
    let mut cfg = LoadConfig::open(4, 100.0, Duration::from_millis(20), Duration::from_millis(600));
    cfg.threads = Some(1);
    let report = rt.block_on(run(&cfg, &Probe::default(), |i| async move { Ok(Blocks(i == 1)) })).unwrap();
    let sample = report.into_sample();
    assert!(sample.metrics[PACING_P50] >= 2000.0, "lateness recorded: {:?}", sample.metrics);
    let why = crate::analysis::invalid_reason(&sample, &[]).expect("a sample paced ms late is invalid");
    assert!(why.contains("late") && why.contains("median"), "{why}");
}

#[test]
fn error_kinds_fold_ids_but_keep_os_error_numbers() {
    assert_eq!(error_kind("Connection reset by peer (os error 104)"), "Connection reset by peer (os error 104)");
    assert_eq!(error_kind("duplicate key 12345 for user 77"), "duplicate key N for user N");
    assert_eq!(error_kind(&"x".repeat(500)).len(), 160);
}

#[test]
fn an_operation_that_never_returns_is_given_up_on_and_counted() {
    struct Stuck(u32);
    impl Worker for Stuck {
        async fn call(&mut self) -> Result<(), OpError> {
            self.0 += 1;
            if self.0 == 50 {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut cfg = LoadConfig::closed(2, Duration::from_millis(10), Duration::from_millis(200));
    cfg.give_up_after = Some(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let report = rt.block_on(run(&cfg, &Probe::default(), |_| async { Ok(Stuck(0)) })).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "the run did not hang");
    assert_eq!(report.errors.get(UNFINISHED), Some(&2), "{:?}", report.errors);
    assert!(report.ok > 20, "what came before the stall is kept: {}", report.ok);
    let sample = report.into_sample();
    assert!(crate::analysis::invalid_reason(&sample, &[]).unwrap().contains("never finished"));
}

#[test]
fn histograms_merge_counts_and_extremes() {
    let mut a = new_histogram();
    let mut b = new_histogram();
    for v in 1..=100u64 {
        a.record(v * 1000).unwrap();
    }
    b.record(5_000_000).unwrap();
    a.add(&b).unwrap();
    assert_eq!(a.len(), 101);
    assert_eq!(a.max(), b.max());
    assert_eq!(a.min(), 1000);
    let s = summarize(&a).unwrap();
    assert!((s.percentiles_us[0].1 - 51.0).abs() <= 1.0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_shows_a_stall_that_the_closed_loop_hides() {
    let warmup = Duration::from_millis(200);
    let duration = Duration::from_secs(3);
    let probe = Probe::default();

    // Closed loop: one slow request among ~1000 fast ones; p99 stays near the service time.
    let stall_at = Instant::now() + warmup + Duration::from_millis(800);
    let shared = Arc::new(AtomicU64::new(0));
    let cfg = LoadConfig::closed(1, warmup, duration);
    let closed = run(&cfg, &probe, move |_| {
        let mut s = synthetic(stall_at);
        s.stalled = shared.clone();
        async move { Ok(s) }
    })
    .await
    .unwrap();
    let p99_closed = closed.histogram.value_at_quantile(0.99);
    assert!(closed.histogram.max() >= 1_000_000_000, "the stall happened: max {}", closed.histogram.max());
    assert!(p99_closed < 100_000_000, "closed loop p99 {p99_closed} ns should not show the stall");

    // Open loop at 100/s: the requests due during the stall queue up behind it, and their
    // latency counts from when they were due.
    let stall_at = Instant::now() + warmup + Duration::from_millis(800);
    let shared = Arc::new(AtomicU64::new(0));
    let cfg = LoadConfig::open(1, 100.0, warmup, duration);
    let open = run(&cfg, &probe, move |_| {
        let mut s = synthetic(stall_at);
        s.stalled = shared.clone();
        async move { Ok(s) }
    })
    .await
    .unwrap();
    let p99_open = open.histogram.value_at_quantile(0.99);
    assert!(p99_open >= 500_000_000, "open loop p99 {p99_open} ns must show the 1 s stall");
    // About 300 arrivals in 3 s, each counted once.
    assert!((250..=310).contains(&open.ok), "{} arrivals", open.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_ops_and_errors_by_kind() {
    struct Flaky(u64);
    impl Worker for Flaky {
        async fn call(&mut self) -> Result<(), OpError> {
            self.0 += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.0 % 4 == 0 {
                Err(OpError::new("timeout"))
            } else {
                Ok(())
            }
        }
    }
    let cfg = LoadConfig::closed(4, Duration::from_millis(50), Duration::from_millis(400));
    let r = run(&cfg, &Probe::default(), |_| async { Ok(Flaky(0)) }).await.unwrap();
    let errs = r.errors.get("timeout").copied().unwrap_or(0);
    let total = r.ok + errs;
    assert!(total > 100, "{total}");
    let share = errs as f64 / total as f64;
    assert!((share - 0.25).abs() < 0.05, "error share {share}");
    assert_eq!(r.histogram.len(), r.ok, "only successes have a latency");
    let ops = r.ok as f64 / r.measured.as_secs_f64();
    let sample = r.into_sample();
    assert!((sample.metrics["ops_per_sec"] - ops).abs() < 1e-6, "throughput counts successes only");
    assert!((sample.metrics["error_rate"] - share).abs() < 1e-9);
}
