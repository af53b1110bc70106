//! `concurrent-map`: which shared map for a read-mostly in-process cache (the guide's L1 is
//! a map behind a lock; Go offers `sync.Map`). `Mutex<HashMap>`, `RwLock<HashMap>`, a
//! sharded map (dashmap) and a concurrent cache (moka), at 50, 95 and 99 % reads with 1, 2
//! and 4 threads.
//!
//! Each thread runs a closed loop of gets and inserts over 10,000 keys for the sample's
//! duration; throughput counts every operation, latency is timed on every 32nd (timing each
//! one would cost as much as the operation). Allocations per operation come from the
//! micro engine's allocation worker on one thread.

use harness::load::{new_histogram, LoadReport};
use harness::micro::{self, Input, Routine};
use harness::results::{Better, Check};
use harness::stats::SplitMix64;
use harness::{BoxFuture, Engine, Experiment, Meta, MetricInfo, Routines, Run, RunCtx, Sample, Sweep, Trial, Variant};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const ID: &str = "concurrent-map";
const KEYS: u64 = 10_000;
/// Latency is timed on one operation in this many.
const LATENCY_EVERY: u64 = 32;

/// (read share in %, threads) per sweep point.
const POINTS: [(u32, usize); 9] = [(50, 1), (50, 2), (50, 4), (95, 1), (95, 2), (95, 4), (99, 1), (99, 2), (99, 4)];
const LABELS: [&str; 9] = [
    "50% reads, 1 thread",
    "50% reads, 2 threads",
    "50% reads, 4 threads",
    "95% reads, 1 thread",
    "95% reads, 2 threads",
    "95% reads, 4 threads",
    "99% reads, 1 thread",
    "99% reads, 2 threads",
    "99% reads, 4 threads",
];

type Value = Arc<str>;

/// The operations every map offers.
pub trait SharedMap: Send + Sync {
    fn get(&self, k: u64) -> Option<Value>;
    fn insert(&self, k: u64, v: Value);
}

impl SharedMap for Mutex<HashMap<u64, Value>> {
    fn get(&self, k: u64) -> Option<Value> {
        self.lock().unwrap_or_else(|e| e.into_inner()).get(&k).cloned()
    }
    fn insert(&self, k: u64, v: Value) {
        self.lock().unwrap_or_else(|e| e.into_inner()).insert(k, v);
    }
}

impl SharedMap for RwLock<HashMap<u64, Value>> {
    fn get(&self, k: u64) -> Option<Value> {
        self.read().unwrap_or_else(|e| e.into_inner()).get(&k).cloned()
    }
    fn insert(&self, k: u64, v: Value) {
        self.write().unwrap_or_else(|e| e.into_inner()).insert(k, v);
    }
}

impl SharedMap for dashmap::DashMap<u64, Value> {
    fn get(&self, k: u64) -> Option<Value> {
        dashmap::DashMap::get(self, &k).map(|r| r.value().clone())
    }
    fn insert(&self, k: u64, v: Value) {
        dashmap::DashMap::insert(self, k, v);
    }
}

impl SharedMap for moka::sync::Cache<u64, Value> {
    fn get(&self, k: u64) -> Option<Value> {
        moka::sync::Cache::get(self, &k)
    }
    fn insert(&self, k: u64, v: Value) {
        moka::sync::Cache::insert(self, k, v);
    }
}

fn value(k: u64) -> Value {
    Arc::from(harness::kit::redis_util::user_json(k).as_str())
}

/// A map of `variant`, filled with every key.
pub fn new_map(variant: &str) -> anyhow::Result<Arc<dyn SharedMap>> {
    let map: Arc<dyn SharedMap> = match variant {
        "mutex" => Arc::new(Mutex::new(HashMap::new())),
        "rwlock" => Arc::new(RwLock::new(HashMap::new())),
        "dashmap" => Arc::new(dashmap::DashMap::new()),
        // Room for every key: nothing is evicted, so it is a map like the others.
        "moka" => Arc::new(moka::sync::Cache::new(2 * KEYS)),
        other => anyhow::bail!("unknown variant {other}"),
    };
    for k in 0..KEYS {
        map.insert(k, value(k));
    }
    Ok(map)
}

/// One operation: a get with probability `read_pct` %, else an insert of a prepared value.
#[inline]
fn op(map: &dyn SharedMap, rng: &mut SplitMix64, read_pct: u64, values: &[Value]) -> bool {
    let r = rng.next_u64();
    let k = (r >> 32) % KEYS;
    if r % 100 < read_pct {
        map.get(k).is_some()
    } else {
        map.insert(k, values[k as usize].clone());
        true
    }
}

struct ThreadResult {
    ops: u64,
    misses: u64,
    histogram: hdrhistogram::Histogram<u64>,
}

fn worker(
    map: Arc<dyn SharedMap>,
    values: Arc<Vec<Value>>,
    seed: u64,
    read_pct: u64,
    warmup: Duration,
    duration: Duration,
) -> ThreadResult {
    let mut rng = SplitMix64::new(seed);
    let mut histogram = new_histogram();
    let warm_until = Instant::now() + warmup;
    while Instant::now() < warm_until {
        for _ in 0..256 {
            op(&*map, &mut rng, read_pct, &values);
        }
    }
    let (mut ops, mut misses) = (0u64, 0u64);
    let end = Instant::now() + duration;
    'outer: loop {
        for _ in 0..LATENCY_EVERY - 1 {
            misses += u64::from(!op(&*map, &mut rng, read_pct, &values));
        }
        let t = Instant::now();
        misses += u64::from(!op(&*map, &mut rng, read_pct, &values));
        let now = Instant::now();
        let _ = histogram.record((now - t).as_nanos().max(1) as u64);
        ops += LATENCY_EVERY;
        if now >= end {
            break 'outer;
        }
    }
    ThreadResult { ops, misses, histogram }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The sweep axis names the machine's cores, so the chart shows where threads outnumber them.
fn axis() -> &'static str {
    static AXIS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AXIS.get_or_init(|| format!("read share and threads (this machine: {} cores)", cores()))
}

#[derive(Default)]
pub struct ConcurrentMap;

impl ConcurrentMap {
    pub fn new() -> Self {
        Self
    }
}

fn point_of(label: &str) -> anyhow::Result<(u64, usize)> {
    LABELS
        .iter()
        .position(|l| *l == label)
        .map(|i| (u64::from(POINTS[i].0), POINTS[i].1))
        .ok_or_else(|| anyhow::anyhow!("unknown point {label}"))
}

impl Experiment for ConcurrentMap {
    fn meta(&self) -> Meta {
        let m = MetricInfo::new;
        let mut metrics = vec![
            m("ops_per_sec", "ops/s", Better::Higher, "operations per second, all threads"),
            m("latency_p50_us", "us", Better::Lower, "median latency of an operation (one in 32 timed)"),
            m("latency_p99_us", "us", Better::Lower, "99th percentile latency of an operation (one in 32 timed)"),
            m("threads", "threads", Better::Higher, "threads running operations"),
        ];
        metrics.extend(
            micro::metrics("operation")
                .into_iter()
                .filter(|m| m.name.starts_with("allocs") || m.name.starts_with("bytes")),
        );
        Meta {
            id: ID,
            title: "Shared maps for a read-mostly cache",
            guide_section: "缓存优化 › 多级缓存 (the L1 map and its lock); Go语言优化",
            claim: "A read-mostly in-process cache needs the right shared map: a lock around a map, a read-write lock, a sharded map or a concurrent cache.",
            variants: vec![
                Variant::new("mutex", "Mutex<HashMap>: one lock for reads and writes"),
                Variant::new("rwlock", "RwLock<HashMap>: readers share the lock (Go's sync.RWMutex around a map)"),
                Variant::new("dashmap", "DashMap: a map sharded into independently locked parts (the nearest Rust kin of the sync.Map the guide's L1 uses)").tests_claim(),
                Variant::new("moka", "moka::sync::Cache: a concurrent cache (W-TinyLFU), sized to hold every key"),
            ],
            // Quick mode: contention at 50% reads on both cores, and oversubscribed at 95%.
            sweep: Sweep { quick: vec![1.0, 5.0], ..Sweep::categories(axis(), &LABELS) },
            primary_metric: m("ops_per_sec", "ops/s", Better::Higher, "operations per second, all threads"),
            metrics,
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: Some(self) }
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let cores = cores();
            Ok(vec![Check::observation(
                "mutex",
                None,
                "cores available",
                cores as f64,
                "threads beyond this number take turns on the cores: more threads cannot add throughput",
            )])
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        let cores = cores();
        vec![
            format!("This machine has {cores} cores available. With more threads than cores, the threads time-share the cores; throughput at 4 threads then measures contention plus scheduling, not parallel speed-up."),
            "Throughput counts every operation; latency is timed on one operation in 32, so the clock is not the bottleneck.".to_owned(),
        ]
    }
}

impl Run for ConcurrentMap {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let (read_pct, threads) = point_of(&point.label)?;
            let map = new_map(variant)?;
            let values: Arc<Vec<Value>> = Arc::new((0..KEYS).map(value).collect());
            let (warmup, duration) = (ctx.settings.warmup, ctx.settings.duration);
            let snapshot = ctx.probe.begin();
            let started = Instant::now();
            let results = tokio::task::spawn_blocking(move || {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (map, values) = (map.clone(), values.clone());
                        std::thread::spawn(move || worker(map, values, 1 + t as u64, read_pct, warmup, duration))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
            })
            .await?
            .map_err(|_| anyhow::anyhow!("a map thread panicked"))?;
            let measured = started.elapsed().saturating_sub(warmup).max(Duration::from_nanos(1));
            let mut histogram = new_histogram();
            let (mut ops, mut misses) = (0, 0);
            for r in &results {
                histogram.add(&r.histogram)?;
                ops += r.ops;
                misses += r.misses;
            }
            let mut errors = BTreeMap::new();
            if misses > 0 {
                errors.insert("key missing".to_owned(), misses);
            }
            let report = LoadReport {
                histogram,
                ok: ops - misses,
                errors,
                measured,
                resources: ctx.probe.end(&snapshot),
                timeline: Vec::new(),
                pacing: None,
                worker_ops: results.iter().map(|r| r.ops).collect(),
            };
            let mut sample = report.into_sample();
            sample.metrics.insert("threads".into(), threads as f64);
            micro::allocations_into(&ctx.bench(), ID, at, &mut sample).await?;
            Ok(sample)
        })
    }
}

impl Routines for ConcurrentMap {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let (variant, point) = (at.variant, at.point);
        // One thread, 1000 operations per call: what an operation allocates.
        let (read_pct, _) = point_of(&point.label)?;
        let map = new_map(variant)?;
        let values: Vec<Value> = (0..KEYS).map(value).collect();
        let rng = SplitMix64::new(11);
        Ok(Routine::new((map, rng, values), move |(map, rng, values)| {
            (0..1000).filter(|_| op(&**map, rng, read_pct, values)).count()
        })
        .items(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_reads_back_what_was_inserted_from_many_threads() {
        for v in ["mutex", "rwlock", "dashmap", "moka"] {
            let map = new_map(v).unwrap();
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let map = map.clone();
                    s.spawn(move || {
                        for k in (t..KEYS).step_by(4) {
                            map.insert(k, Arc::from(format!("v{k}").as_str()));
                        }
                    });
                }
            });
            for k in [0, 1, 4999, KEYS - 1] {
                assert_eq!(map.get(k).as_deref(), Some(format!("v{k}").as_str()), "{v}");
            }
            assert!(map.get(KEYS).is_none(), "{v}");
        }
    }

    #[test]
    fn a_worker_counts_operations_and_times_one_in_32() {
        let map = new_map("mutex").unwrap();
        let values = Arc::new((0..KEYS).map(value).collect::<Vec<_>>());
        let r = worker(map, values, 1, 95, Duration::ZERO, Duration::from_millis(50));
        assert!(r.ops > 0 && r.ops % LATENCY_EVERY == 0);
        assert_eq!(r.histogram.len(), r.ops / LATENCY_EVERY);
        assert_eq!(r.misses, 0);
    }
}
