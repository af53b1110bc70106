//! The load engine: closed loop (N workers back to back) and open loop (a fixed arrival rate,
//! latency measured from each request's intended start, so a stall is not hidden).
//!
//! The timed section of a worker is the `call` future and two clock reads: no allocation,
//! logging or locking of the engine's own happens there. Each worker records into its own
//! HdrHistogram; the histograms are merged once the run is over.

pub mod capacity;
mod pacer;
mod schedule;

pub use crate::results::{Offered, Overload, Timeline};
use pacer::Pacer;
use schedule::{Schedule, Windows};

use crate::resources::{Probe, Snapshot};
use crate::results::{Better, LatencySummary, MetricInfo, Resources, Sample};
use hdrhistogram::Histogram;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

/// Latencies are recorded in nanoseconds, from 1 ns to one hour, 3 significant digits.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// A failed operation, counted by kind.
#[derive(Debug, Clone)]
pub struct OpError {
    pub kind: Cow<'static, str>,
}

impl OpError {
    pub fn new(kind: impl Into<Cow<'static, str>>) -> Self {
        Self { kind: kind.into() }
    }

    /// Classify any error by its message and its sources' (a driver's "db error" alone says
    /// nothing), with numbers replaced by `N` so that one kind of error with different ids,
    /// ports or pids counts once; an OS error keeps its number (`os error 104`), which is
    /// the kind.
    pub fn from_error(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut msg = e.to_string();
        let mut cur = e.source();
        while let Some(inner) = cur {
            let part = inner.to_string();
            if !msg.contains(&part) {
                msg.push_str(": ");
                msg.push_str(&part);
            }
            cur = inner.source();
        }
        Self::from_message(&msg)
    }

    /// Classify an error known only by its text (a server's error reply), as `from_error` does.
    pub fn from_message(msg: &str) -> Self {
        Self { kind: Cow::Owned(error_kind(msg)) }
    }
}

/// `msg` with every run of digits replaced by `N`, except an OS error's number; at most 160
/// characters.
fn error_kind(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(160));
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            if out.ends_with("os error ") {
                out.push(c);
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    out.push(d);
                    chars.next();
                }
            } else {
                out.push('N');
                while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    chars.next();
                }
            }
        } else {
            out.push(c);
        }
        if out.chars().count() >= 160 {
            break;
        }
    }
    out
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind)
    }
}

impl std::error::Error for OpError {}

/// One client of the system under test: a connection, its prepared statements, its random
/// state. The engine calls `call` over and over.
pub trait Worker: 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), OpError>>;
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each of `concurrency` workers issues its next request when the last one returns.
    Closed { concurrency: u32 },
    /// Requests arrive at `rate_per_sec` in total, spread over `concurrency` workers; a
    /// request's latency counts from when it should have started.
    Open { concurrency: u32, rate_per_sec: f64 },
}

#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    /// Stop after this many measured operations per worker, if reached before `duration`.
    pub max_ops_per_worker: Option<u64>,
    /// OS threads that drive the workers (default: one per core, at most one per worker).
    pub threads: Option<usize>,
    /// How long after the measured window to wait for operations still in flight before
    /// giving up on them (each counts as an `UNFINISHED` error, which invalidates the sample).
    /// Default: warm-up plus duration, at least 30 s.
    pub give_up_after: Option<Duration>,
    /// Open loop only: a higher rate for the start of the measured window (stress), after
    /// which the mode's rate resumes.
    pub overload: Option<Overload>,
    /// Count, per window of the measured time, the requests due and those that failed or
    /// took longer than a limit (`LoadReport::timeline`): how a service recovers.
    pub timeline: Option<Timeline>,
    /// Open loop only: arrivals come in bursts instead of evenly (`LoadConfig::bursts`).
    pub bursts: Option<Bursts>,
}

/// Bursty arrivals: `size` requests due at the same instant, once every `period`, and none
/// between (a lull in which a pool's idle connections sit idle).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bursts {
    pub size: u32,
    pub period: Duration,
}

impl LoadConfig {
    pub fn closed(concurrency: u32, warmup: Duration, duration: Duration) -> Self {
        Self {
            mode: Mode::Closed { concurrency },
            warmup,
            duration,
            max_ops_per_worker: None,
            threads: None,
            give_up_after: None,
            overload: None,
            timeline: None,
            bursts: None,
        }
    }

    pub fn open(concurrency: u32, rate_per_sec: f64, warmup: Duration, duration: Duration) -> Self {
        Self {
            mode: Mode::Open { concurrency, rate_per_sec },
            warmup,
            duration,
            max_ops_per_worker: None,
            threads: None,
            give_up_after: None,
            overload: None,
            timeline: None,
            bursts: None,
        }
    }

    /// An open loop whose arrivals come in bursts of `size` every `period` (mean rate
    /// size / period), served by `concurrency` workers; latency counts from each request's
    /// due time, as in any open loop.
    pub fn bursts(concurrency: u32, size: u32, period: Duration, warmup: Duration, duration: Duration) -> Self {
        let size = size.max(1);
        let rate = f64::from(size) / period.as_secs_f64().max(1e-9);
        Self { bursts: Some(Bursts { size, period }), ..Self::open(concurrency, rate, warmup, duration) }
    }

    fn concurrency(&self) -> u32 {
        match self.mode {
            Mode::Closed { concurrency } | Mode::Open { concurrency, .. } => concurrency.max(1),
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub histogram: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// From the start of the measured window to the end of its last operation.
    pub measured: Duration,
    pub resources: Resources,
    /// With `LoadConfig::timeline`: per window, [requests due, failed or over the limit].
    pub timeline: Vec<[u64; 2]>,
    /// Open loop only: how late the harness itself sent each measured request whose worker
    /// was waiting for it (nanoseconds from the intended start to the call). Requests due
    /// while their worker was still busy are not in it: that wait is the service's backlog,
    /// which the latency (counted from the intended start) already shows.
    pub pacing: Option<Histogram<u64>>,
    /// Measured operations (successes and failures) of each worker, in worker order.
    pub worker_ops: Vec<u64>,
}

impl LoadReport {
    /// Successful operations per second: a failed operation is not throughput.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    pub fn latency_summary(&self) -> Option<LatencySummary> {
        summarize(&self.histogram)
    }

    /// A sample with the standard load metrics: `ops_per_sec`, `ok`, `errors`, `error_rate`
    /// and `latency_{mean,p50,p90,p95,p99,max}_us`. Latency and throughput are those of the
    /// successful operations; a sample with no success has no latency at all.
    pub fn into_sample(self) -> Sample {
        let mut metrics = BTreeMap::new();
        let errors: u64 = self.errors.values().sum();
        metrics.insert("ops_per_sec".into(), self.ops_per_sec());
        metrics.insert("ok".into(), self.ok as f64);
        metrics.insert("errors".into(), errors as f64);
        let total = self.ok + errors;
        metrics.insert("error_rate".into(), if total > 0 { errors as f64 / total as f64 } else { 0.0 });
        let latency = self.latency_summary();
        if let Some(l) = &latency {
            metrics.insert("latency_mean_us".into(), l.mean_us);
            metrics.insert("latency_max_us".into(), l.max_us);
            for (p, name) in [(50.0, "p50"), (90.0, "p90"), (95.0, "p95"), (99.0, "p99")] {
                metrics.insert(format!("latency_{name}_us"), us(self.histogram.value_at_quantile(p / 100.0)));
            }
        }
        if let Some(p) = self.pacing.as_ref().filter(|p| !p.is_empty()) {
            metrics.insert(PACING_P50.into(), us(p.value_at_quantile(0.50)));
            metrics.insert(PACING_P99.into(), us(p.value_at_quantile(0.99)));
            metrics.insert("pacing_lateness_max_us".into(), us(p.max()));
            metrics.insert("pacing_paced".into(), p.len() as f64);
        }
        if let (Some(&min), Some(&max)) = (self.worker_ops.iter().min(), self.worker_ops.iter().max()) {
            let mean = self.worker_ops.iter().sum::<u64>() as f64 / self.worker_ops.len() as f64;
            metrics.insert("workers".into(), self.worker_ops.len() as f64);
            metrics.insert("worker_ops_min".into(), min as f64);
            metrics.insert("worker_ops_max".into(), max as f64);
            metrics.insert(WORKER_OPS_MIN_SHARE.into(), if mean > 0.0 { min as f64 / mean } else { 1.0 });
        }
        Sample {
            metrics,
            latency,
            errors: self.errors,
            resources: Some(self.resources),
            timeline: self.timeline,
            ..Sample::default()
        }
    }
}

pub use crate::results::{PACING_FLOOR_US, PACING_MAX_SHARE, PACING_P50, PACING_P99, WORKER_OPS_MIN_SHARE};

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The median latency of one operation, the primary metric of most load experiments; `what`
/// says what one operation is ("one statement", "a GET").
pub fn latency_p50(what: &str) -> MetricInfo {
    MetricInfo::new("latency_p50_us", "us", Better::Lower, format!("median latency of {what}"))
}

/// The mean latency of one operation (successful ones: a failure has no latency).
pub fn latency_mean(what: &str) -> MetricInfo {
    MetricInfo::new("latency_mean_us", "us", Better::Lower, format!("mean latency of {what}"))
}

/// The 99th percentile latency of one operation.
pub fn latency_p99(what: &str) -> MetricInfo {
    MetricInfo::new("latency_p99_us", "us", Better::Lower, format!("99th percentile latency of {what}"))
}

/// Successful operations per second (`ops_per_sec`), in `unit` ("queries/s").
pub fn throughput(unit: &str, what: &str) -> MetricInfo {
    MetricInfo::new("ops_per_sec", unit, Better::Higher, what.to_owned())
}

/// Percentile summary of a nanosecond histogram, in microseconds.
pub fn summarize(h: &Histogram<u64>) -> Option<LatencySummary> {
    if h.is_empty() {
        return None;
    }
    Some(LatencySummary {
        count: h.len(),
        min_us: us(h.min()),
        mean_us: h.mean() / 1000.0,
        max_us: us(h.max()),
        percentiles_us: [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999]
            .iter()
            .map(|&p| (p, us(h.value_at_quantile(p / 100.0))))
            .collect(),
    })
}

/// A fresh latency histogram (allocated before any timing starts).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// What one worker measured.
struct WorkerResult {
    histogram: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    last_end: Instant,
    /// The worker's loop ended (false: it was still waiting for an operation when the run
    /// gave up on it).
    done: bool,
    /// Per window of the measured time (empty without `LoadConfig::timeline`).
    windows: Windows,
    /// Open loop: the harness's lateness per paced request (`LoadReport::pacing`).
    pacing: Option<Histogram<u64>>,
    /// Measured operations, successes and failures.
    ops: u64,
}

impl WorkerResult {
    /// Count one measured operation; allocates only for an error kind seen for the first time.
    /// Only a success has a latency: a failure (often instant, like a refused connection) is
    /// counted by kind and kept out of the histogram.
    #[inline]
    fn record(&mut self, from: Instant, end: Instant, r: Result<(), OpError>) {
        self.windows.record(from, end, r.is_ok());
        match r {
            Ok(()) => {
                self.histogram.saturating_record(end.duration_since(from).as_nanos() as u64);
                self.ok += 1;
            }
            Err(e) => match self.errors.get_mut(e.kind.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    self.errors.insert(e.kind.into_owned(), 1);
                }
            },
        }
        self.ops += 1;
        self.last_end = end;
    }
}

/// Run `config` with workers made by `make_worker(index)`.
///
/// Like `pgbench -j`, the workers are spread over a few OS threads (one per core by default),
/// each with its own single-threaded tokio runtime: a worker, its connection's driver task and
/// the socket stay on one thread, so no request pays for a cross-thread wake-up. Workers are
/// all built (connections opened, statements prepared) on their thread before the clock
/// starts; a failure to build one fails the run.
pub async fn run<W, F, Fut>(config: &LoadConfig, probe: &Probe, make_worker: F) -> anyhow::Result<LoadReport>
where
    W: Worker,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<W>> + 'static,
{
    let n = config.concurrency() as usize;
    let cores = std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1);
    let threads = config.threads.unwrap_or(cores).clamp(1, n);
    let make_worker = std::sync::Arc::new(make_worker);
    let slowdown = crate::inject::active();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<anyhow::Result<()>>();
    let mut starts = Vec::with_capacity(threads);
    let mut dones = Vec::with_capacity(threads);
    let mut releases = Vec::with_capacity(threads);
    for t in 0..threads {
        let (start_tx, start_rx) = tokio::sync::oneshot::channel::<Option<(Instant, Instant, Instant)>>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Vec<WorkerResult>>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        starts.push(start_tx);
        dones.push(done_rx);
        releases.push(release_tx);
        let make_worker = make_worker.clone();
        let ready_tx = ready_tx.clone();
        let cfg = *config;
        std::thread::Builder::new().name(format!("perflab-load-{t}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let mut workers = Vec::new();
                for i in (t..n).step_by(threads) {
                    match make_worker(i).await {
                        Ok(w) => workers.push((i, w)),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = ready_tx.send(Ok(()));
                let Ok(Some((t0, measure_start, measure_end))) = start_rx.await else {
                    return;
                };
                // Each worker's tally lives outside its loop, so that what it measured survives
                // when an operation never returns (a stalled server) and the run gives up on it.
                let tallies: Vec<Rc<RefCell<WorkerResult>>> = workers
                    .iter()
                    .map(|_| {
                        Rc::new(RefCell::new(WorkerResult {
                            histogram: new_histogram(),
                            ok: 0,
                            errors: BTreeMap::new(),
                            last_end: measure_start,
                            done: false,
                            windows: Windows::new(cfg.timeline, measure_start, cfg.duration),
                            // Not for bursts: the arrivals a thread serves after its other workers'
                            // are late by design (the burst's own queueing, in the latency).
                            pacing: (matches!(cfg.mode, Mode::Open { .. }) && cfg.bursts.is_none())
                                .then(new_pacing_histogram),
                            ops: 0,
                        }))
                    })
                    .collect();
                // Each worker is a task of its own on this thread's runtime, not a future inside
                // `block_on`'s: a connection's driver task that wakes its worker then queues it
                // and the scheduler runs it at once, where waking the `block_on` future makes
                // the scheduler poll the I/O driver first (an extra `epoll_wait` per request,
                // strace-counted by `examples/syscalls_per_op.rs`).
                let mut tasks = tokio::task::JoinSet::new();
                for ((i, w), tally) in workers.into_iter().zip(&tallies) {
                    let run = drive(w, cfg, i, n, (t0, measure_start, measure_end), slowdown, tally.clone());
                    tasks.spawn(ThreadBound::new(run));
                }
                let give_up = measure_end + cfg.give_up_after.unwrap_or_else(|| default_give_up(&cfg));
                // A worker that panicked fails the run (the thread unwinds: "a load thread
                // panicked"), also one cancelled at the give-up that panics while dropped.
                async fn join_all(tasks: &mut tokio::task::JoinSet<()>) {
                    while let Some(r) = tasks.join_next().await {
                        if let Err(e) = r {
                            if e.is_panic() {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                    }
                }
                if tokio::time::timeout_at(give_up, join_all(&mut tasks)).await.is_err() {
                    // Operations still in flight at the give-up: their workers are dropped here,
                    // on this thread, and counted unfinished below.
                    tasks.abort_all();
                    join_all(&mut tasks).await;
                }
                let results: Vec<WorkerResult> = tallies
                    .into_iter()
                    .map(|t| {
                        // Every task is done or dropped: the tallies are this thread's alone.
                        let mut r = Rc::into_inner(t).expect("every worker task dropped").into_inner();
                        if !r.done {
                            *r.errors.entry(UNFINISHED.to_owned()).or_default() += 1;
                        }
                        r
                    })
                    .collect();
                let _ = done_tx.send(results);
                // Keep this runtime, and the connections it drives, alive until every thread
                // is done: workers on other threads may be using them (a shared pool).
                let _ = release_rx.await;
            });
        })?;
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..threads {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                failure.get_or_insert(e);
            }
            None => {
                failure.get_or_insert(anyhow::anyhow!("a load thread died while building its workers"));
            }
        }
    }
    if let Some(e) = failure {
        for s in starts {
            let _ = s.send(None);
        }
        return Err(e);
    }
    // Everyone starts together a moment from now.
    let t0 = Instant::now() + Duration::from_millis(5);
    let measure_start = t0 + config.warmup;
    let measure_end = measure_start + config.duration;
    for s in starts {
        let _ = s.send(Some((t0, measure_start, measure_end)));
    }
    // The resource window starts with the measured window.
    tokio::time::sleep_until(measure_start).await;
    let start: Snapshot = probe.begin();
    let mut histogram = new_histogram();
    let mut ok = 0;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_end = measure_start;
    let mut timeline: Vec<[u64; 2]> = Vec::new();
    let mut pacing = (matches!(config.mode, Mode::Open { .. }) && config.bursts.is_none()).then(new_pacing_histogram);
    let mut worker_ops = vec![0; n];
    for (t, d) in dones.into_iter().enumerate() {
        let rs = d.await.map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
        // Thread t built workers t, t + threads, … in that order.
        for (r, i) in rs.into_iter().zip((t..n).step_by(threads)) {
            histogram.add(&r.histogram).map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))?;
            if let (Some(all), Some(p)) = (pacing.as_mut(), r.pacing.as_ref()) {
                all.add(p).map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))?;
            }
            worker_ops[i] = r.ops;
            ok += r.ok;
            for (k, v) in r.errors {
                *errors.entry(k).or_default() += v;
            }
            last_end = last_end.max(r.last_end);
            r.windows.add_to(&mut timeline);
        }
    }
    let resources = probe.end(&start);
    drop(releases);
    Ok(LoadReport {
        histogram,
        ok,
        errors,
        measured: last_end.saturating_duration_since(measure_start),
        resources,
        timeline,
        pacing,
        worker_ops,
    })
}

/// A histogram of the pacing lateness: 1 ns to 100 s, 2 significant digits (a 1 % bucket is
/// plenty for an error, and it is 30 times smaller than a latency histogram).
fn new_pacing_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("valid histogram bounds")
}

pub use crate::results::UNFINISHED;

/// How long after the window a run waits for operations in flight: long enough for any one
/// operation the lab measures (a closed-loop worker always measures at least one), not forever.
fn default_give_up(config: &LoadConfig) -> Duration {
    (config.warmup + config.duration).max(Duration::from_secs(30))
}

/// A future that stays on the thread that spawned it. The load threads' runtimes are
/// current-thread runtimes owned and dropped by their thread, which polls and drops their
/// tasks on itself alone, so a worker that is not `Send` (an `Rc`, a thread's own pool) may
/// run as a task of its own there.
struct ThreadBound<F> {
    future: F,
    thread: std::thread::ThreadId,
}

impl<F> ThreadBound<F> {
    fn new(future: F) -> Self {
        Self { future, thread: std::thread::current().id() }
    }
}

// SAFETY: only spawned on a load thread's current-thread runtime (above), whose tasks are
// polled and dropped by that thread only; `poll` checks it in debug builds.
unsafe impl<F> Send for ThreadBound<F> {}

impl<F: Future> Future for ThreadBound<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        debug_assert_eq!(std::thread::current().id(), self.thread, "a load task left its thread");
        // SAFETY: structural pinning of `future`; `ThreadBound` never moves it.
        unsafe { self.map_unchecked_mut(|s| &mut s.future) }.poll(cx)
    }
}

/// Run one worker's loop from `t0`, measuring from `measure_start` to `measure_end`.
/// `slowdown` (0 unless `inject_slowdown` is set) stretches every operation inside its timed
/// section.
async fn drive<W: Worker>(
    mut worker: W,
    config: LoadConfig,
    index: usize,
    workers: usize,
    (t0, measure_start, measure_end): (Instant, Instant, Instant),
    slowdown: f64,
    tally: Rc<RefCell<WorkerResult>>,
) {
    let max_ops = config.max_ops_per_worker.unwrap_or(u64::MAX);
    let mut measured_ops = 0u64;
    tokio::time::sleep_until(t0).await;
    match config.mode {
        Mode::Closed { .. } => loop {
            let start = Instant::now();
            let r = worker.call().await;
            let mut end = Instant::now();
            if slowdown > 0.0 {
                end = Instant::from_std(crate::inject::stretch(start.into_std(), end.into_std(), slowdown));
            }
            if start >= measure_start {
                tally.borrow_mut().record(start, end, r);
                measured_ops += 1;
            }
            // A closed-loop worker measures at least one operation, however long it takes:
            // a batch slower than the window would otherwise leave the sample empty.
            if (end >= measure_end && measured_ops > 0) || measured_ops >= max_ops {
                break;
            }
            // An operation that completes without waiting (an in-process cache hit) would never
            // hand the thread back: the other workers and the background tasks on this thread
            // (connection drivers, refills) would starve. Tokio's cooperative budget yields
            // once every 128 units of work a task did without waiting (outside the timed
            // section; one thread-local counter otherwise).
            tokio::task::consume_budget().await;
        },
        Mode::Open { rate_per_sec, .. } => {
            // Worker i serves arrivals i, i + n, i + 2n, … of one global schedule.
            let schedule = Schedule::new(t0, measure_start, rate_per_sec, config.overload, config.bursts);
            let mut pacer = Pacer::new();
            let mut k = index as u64;
            loop {
                let intended = schedule.at(k);
                if intended >= measure_end || measured_ops >= max_ops {
                    break;
                }
                let mut sent = intended;
                let mut paced = false;
                if intended > Instant::now() {
                    pacer.wait_until(intended).await;
                    sent = Instant::now();
                    paced = true;
                } else {
                    // Due already (the worker is behind): it never waited, so it must yield
                    // now and then, as the closed loop does.
                    tokio::task::consume_budget().await;
                    if slowdown > 0.0 {
                        sent = Instant::now();
                    }
                }
                let r = worker.call().await;
                let mut end = Instant::now();
                if slowdown > 0.0 {
                    end = Instant::from_std(crate::inject::stretch(sent.into_std(), end.into_std(), slowdown));
                }
                if intended >= measure_start {
                    // Latency counts from when the request was due, not from when it went out.
                    let mut tally = tally.borrow_mut();
                    tally.record(intended, end, r);
                    if let Some(p) = tally.pacing.as_mut().filter(|_| paced) {
                        p.saturating_record(sent.duration_since(intended).as_nanos() as u64);
                    }
                    measured_ops += 1;
                }
                k += workers as u64;
            }
        }
    }
    if slowdown > 0.0 {
        crate::inject::applied(measured_ops);
    }
    tally.borrow_mut().done = true;
}

#[cfg(test)]
mod tests;
