//! `concurrent-map`: which shared map for a read-mostly in-process cache. The guide's L1 is a
//! `sync.Map`; its alternative in Go is a map behind a `sync.RWMutex`, the baseline here.
//! Beside them: `Mutex<HashMap>`, a sharded map (dashmap) and a concurrent cache (moka), at
//! 50, 95 and 99 % reads, with 1 thread and as many threads as this machine's 2 cores
//! (oversubscribed threads measure the scheduler, not the map), over uniform keys and over
//! Zipf-distributed keys (a cache's hot keys).
//!
//! `sync-map` stands in for `sync.Map` on this workload: every key is present (the map is
//! filled before the clock starts, and writes replace existing keys), so only sync.Map's fast
//! paths act: a read loads the read-only map and the entry's pointer with no lock, and a
//! Store to an existing key swaps the entry's pointer. The stand-in is a read-only HashMap of
//! `ArcSwap` entries (arc-swap: lock-free loads, an atomic swap on store); a key not yet
//! present goes to a dirty map behind a Mutex, which is never promoted (sync.Map promotes it
//! after enough misses; the workload never reaches that path). Neither `RwLock<HashMap>` nor
//! dashmap reads without taking a lock, which is what sync.Map is for. A read looks at the
//! value in place (its length) rather than taking a reference count, as a Go read copies an
//! interface value and writes nothing shared (moka alone hands out clones). The model is
//! sync.Map up to Go 1.23; since 1.24 sync.Map is a hash-trie whose reads are still lock-free
//! but whose store to an existing key locks the key's node: the Go originals (`go-…`, the same
//! keys, operations and timing in Go, go/inproc/concurrent_map.go) say which matters.
//!
//! Each thread runs a closed loop of gets and inserts over 10,000 keys for the sample's
//! duration; throughput counts every operation, latency is timed on every 32nd (timing each
//! one would cost as much as the operation). Keys come from a table drawn before the clock
//! starts, the same for every variant. Allocations per operation come from the micro
//! engine's allocation worker on one thread.

use arc_swap::ArcSwapOption;
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
/// Keys drawn per thread before the clock starts, used in turn (a power of two).
const KEY_TABLE: usize = 1 << 16;
/// The Zipf exponent of the skewed key distribution (YCSB's default).
const ZIPF_S: f64 = 0.99;

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Uniform,
    Zipf,
}

/// (read share in %, threads, keys) per sweep point. The headline is the last point: reads of
/// hot keys on as many threads as the machine's 2 cores.
const POINTS: [(u32, usize, Keys); 9] = [
    (50, 1, Keys::Uniform),
    (50, 2, Keys::Uniform),
    (95, 1, Keys::Uniform),
    (95, 2, Keys::Uniform),
    (99, 1, Keys::Uniform),
    (99, 2, Keys::Uniform),
    (50, 2, Keys::Zipf),
    (95, 2, Keys::Zipf),
    (99, 2, Keys::Zipf),
];
const LABELS: [&str; 9] = [
    "50% reads, 1 thread",
    "50% reads, 2 threads",
    "95% reads, 1 thread",
    "95% reads, 2 threads",
    "99% reads, 1 thread",
    "99% reads, 2 threads",
    "50% reads, 2 threads, Zipf keys",
    "95% reads, 2 threads, Zipf keys",
    "99% reads, 2 threads, Zipf keys",
];

type Value = Arc<str>;

/// The operations every map offers.
pub trait SharedMap: Send + Sync {
    fn get(&self, k: u64) -> Option<Value>;
    /// A read as the workload makes it: the value's length, read in place (no reference
    /// count taken, as a Go map or sync.Map read takes none), where the map allows it.
    fn read_len(&self, k: u64) -> Option<usize>;
    fn insert(&self, k: u64, v: Value);
}

impl SharedMap for Mutex<HashMap<u64, Value>> {
    fn get(&self, k: u64) -> Option<Value> {
        self.lock().unwrap_or_else(|e| e.into_inner()).get(&k).cloned()
    }
    fn read_len(&self, k: u64) -> Option<usize> {
        self.lock().unwrap_or_else(|e| e.into_inner()).get(&k).map(|v| v.len())
    }
    fn insert(&self, k: u64, v: Value) {
        self.lock().unwrap_or_else(|e| e.into_inner()).insert(k, v);
    }
}

impl SharedMap for RwLock<HashMap<u64, Value>> {
    fn get(&self, k: u64) -> Option<Value> {
        self.read().unwrap_or_else(|e| e.into_inner()).get(&k).cloned()
    }
    fn read_len(&self, k: u64) -> Option<usize> {
        self.read().unwrap_or_else(|e| e.into_inner()).get(&k).map(|v| v.len())
    }
    fn insert(&self, k: u64, v: Value) {
        self.write().unwrap_or_else(|e| e.into_inner()).insert(k, v);
    }
}

impl SharedMap for dashmap::DashMap<u64, Value> {
    fn get(&self, k: u64) -> Option<Value> {
        dashmap::DashMap::get(self, &k).map(|r| r.value().clone())
    }
    fn read_len(&self, k: u64) -> Option<usize> {
        dashmap::DashMap::get(self, &k).map(|r| r.value().len())
    }
    fn insert(&self, k: u64, v: Value) {
        dashmap::DashMap::insert(self, k, v);
    }
}

impl SharedMap for moka::sync::Cache<u64, Value> {
    fn get(&self, k: u64) -> Option<Value> {
        moka::sync::Cache::get(self, &k)
    }
    /// moka hands out a clone only: its reads take a reference count.
    fn read_len(&self, k: u64) -> Option<usize> {
        moka::sync::Cache::get(self, &k).map(|v| v.len())
    }
    fn insert(&self, k: u64, v: Value) {
        moka::sync::Cache::insert(self, k, v);
    }
}

/// The `sync.Map` stand-in (see the module's doc): lock-free reads and stores for keys
/// present when it was built, a locked dirty map for any other.
pub struct SyncMapLike {
    read: HashMap<u64, ArcSwapOption<Value>>,
    dirty: Mutex<HashMap<u64, Value>>,
}

impl SyncMapLike {
    /// A map whose read-only part has entries for `keys`, empty (nil, in sync.Map's terms)
    /// until a value is stored.
    pub fn with_keys(keys: impl IntoIterator<Item = u64>) -> Self {
        Self {
            read: keys.into_iter().map(|k| (k, ArcSwapOption::empty())).collect(),
            dirty: Mutex::new(HashMap::new()),
        }
    }
}

impl SharedMap for SyncMapLike {
    fn get(&self, k: u64) -> Option<Value> {
        match self.read.get(&k) {
            Some(e) => e.load().as_deref().cloned(),
            None => self.dirty.lock().unwrap_or_else(|e| e.into_inner()).get(&k).cloned(),
        }
    }
    fn read_len(&self, k: u64) -> Option<usize> {
        match self.read.get(&k) {
            // arc-swap's load writes only its own thread's debt slot, no shared count.
            Some(e) => e.load().as_deref().map(|v| v.len()),
            None => self.dirty.lock().unwrap_or_else(|e| e.into_inner()).get(&k).map(|v| v.len()),
        }
    }
    fn insert(&self, k: u64, v: Value) {
        match self.read.get(&k) {
            // sync.Map's Store on an existing entry: one new boxed value, swapped in.
            Some(e) => e.store(Some(Arc::new(v))),
            None => {
                self.dirty.lock().unwrap_or_else(|e| e.into_inner()).insert(k, v);
            }
        }
    }
}

/// `KEY_TABLE` keys drawn with `seed`: uniform over `KEYS`, or Zipf with exponent `ZIPF_S`
/// (key 0 the hottest) by inverting the cumulative distribution.
pub fn key_table(keys: Keys, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64::new(seed);
    match keys {
        Keys::Uniform => (0..KEY_TABLE).map(|_| (rng.next_u64() >> 32) % KEYS).collect(),
        Keys::Zipf => {
            let mut cdf: Vec<f64> = (1..=KEYS).map(|r| (r as f64).powf(-ZIPF_S)).collect();
            let mut total = 0.0;
            for w in &mut cdf {
                total += *w;
                *w = total;
            }
            (0..KEY_TABLE)
                .map(|_| {
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
                    cdf.partition_point(|&c| c < u).min(KEYS as usize - 1) as u64
                })
                .collect()
        }
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
        "sync-map" => Arc::new(SyncMapLike::with_keys(0..KEYS)),
        other => anyhow::bail!("unknown variant {other}"),
    };
    for k in 0..KEYS {
        map.insert(k, value(k));
    }
    Ok(map)
}

/// The keys of one thread and where it is in them.
pub struct KeyStream {
    keys: Vec<u64>,
    at: usize,
}

impl KeyStream {
    pub fn new(keys: Keys, seed: u64) -> Self {
        Self { keys: key_table(keys, seed), at: 0 }
    }

    #[inline]
    fn next(&mut self) -> u64 {
        self.at = (self.at + 1) & (KEY_TABLE - 1);
        self.keys[self.at]
    }
}

/// One operation: a get with probability `read_pct` %, else an insert of a prepared value.
#[inline]
fn op(map: &dyn SharedMap, rng: &mut SplitMix64, keys: &mut KeyStream, read_pct: u64, values: &[Value]) -> bool {
    let k = keys.next();
    if rng.next_u64() % 100 < read_pct {
        map.read_len(k).is_some()
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
    mut keys: KeyStream,
    read_pct: u64,
    warmup: Duration,
    duration: Duration,
) -> ThreadResult {
    let mut rng = SplitMix64::new(seed);
    let mut histogram = new_histogram();
    let warm_until = Instant::now() + warmup;
    while Instant::now() < warm_until {
        for _ in 0..256 {
            op(&*map, &mut rng, &mut keys, read_pct, &values);
        }
    }
    let (mut ops, mut misses) = (0u64, 0u64);
    let end = Instant::now() + duration;
    'outer: loop {
        for _ in 0..LATENCY_EVERY - 1 {
            misses += u64::from(!op(&*map, &mut rng, &mut keys, read_pct, &values));
        }
        let t = Instant::now();
        misses += u64::from(!op(&*map, &mut rng, &mut keys, read_pct, &values));
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

fn point_of(label: &str) -> anyhow::Result<(u64, usize, Keys)> {
    LABELS
        .iter()
        .position(|l| *l == label)
        .map(|i| (u64::from(POINTS[i].0), POINTS[i].1, POINTS[i].2))
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
            claim: "A read-mostly in-process cache (the guide's L1) is served better by a sync.Map than by a map behind a read-write lock.",
            variants: vec![
                Variant::new("rwlock", "RwLock<HashMap>: readers share the lock (Go's map + sync.RWMutex, the guide's alternative to sync.Map)"),
                Variant::new("mutex", "Mutex<HashMap>: one lock for reads and writes").compared_with("rwlock"),
                Variant::new(
                    "sync-map",
                    "sync.Map's fast paths for present keys: a read-only map of atomically swapped entries (arc-swap), reads and stores without a lock",
                )
                .compared_with("rwlock")
                .tests_claim(),
                Variant::new("dashmap", "DashMap: a map sharded into independently locked parts").compared_with("rwlock"),
                Variant::new("moka", "moka::sync::Cache: a concurrent cache (W-TinyLFU), sized to hold every key").compared_with("rwlock"),
                Variant::baseline_of_group("go-rwmutex", "Go original: map[uint64]string behind a sync.RWMutex (go/inproc/concurrent_map.go)")
                    .in_go("ConcurrentMap/rwmutex"),
                Variant::new("go-mutex", "Go original: map[uint64]string behind a sync.Mutex").compared_with("go-rwmutex").in_go("ConcurrentMap/mutex"),
                Variant::new("go-guide-sync-map", "Go original: the guide's L1 map, Go's own sync.Map (a hash-trie since Go 1.24), keys and values boxed as interfaces; the port's uint64 keys and string values, where the guide stores string keys and a *CacheItem checked for expiry (left out, as in the port)")
                    .compared_with("go-rwmutex")
                    .in_go("ConcurrentMap/guide-sync-map")
                    .tests_claim(),
                Variant::new("go-sharded", "Go original: 32 maps, each behind its own sync.RWMutex, padded to a cache line").compared_with("go-rwmutex").in_go("ConcurrentMap/sharded"),
            ],
            // Quick mode: uniform keys at 50% reads, hot keys at 99%, both on 2 threads.
            sweep: Sweep { quick: vec![1.0, 8.0], ..Sweep::categories(axis(), &LABELS) },
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
                "rwlock",
                None,
                "cores available",
                cores as f64,
                "threads beyond this number take turns on the cores: more threads cannot add throughput",
            )])
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!(cores = cores(), zipf_s = ZIPF_S)
    }
}

impl Run for ConcurrentMap {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let (read_pct, threads, keys) = point_of(&point.label)?;
            let map = new_map(variant)?;
            let values: Arc<Vec<Value>> = Arc::new((0..KEYS).map(value).collect());
            // The same key tables for every variant, drawn before the clock starts.
            let streams: Vec<KeyStream> = (0..threads).map(|t| KeyStream::new(keys, 1 + t as u64)).collect();
            let (warmup, duration) = (ctx.settings.warmup, ctx.settings.duration);
            let snapshot = ctx.probe.begin();
            let started = Instant::now();
            let results = tokio::task::spawn_blocking(move || {
                let handles: Vec<_> = streams
                    .into_iter()
                    .enumerate()
                    .map(|(t, keys)| {
                        let (map, values) = (map.clone(), values.clone());
                        std::thread::spawn(move || worker(map, values, 1 + t as u64, keys, read_pct, warmup, duration))
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
        let (read_pct, _, keys) = point_of(&point.label)?;
        let map = new_map(variant)?;
        let values: Vec<Value> = (0..KEYS).map(value).collect();
        let (rng, keys) = (SplitMix64::new(11), KeyStream::new(keys, 11));
        Ok(Routine::new((map, rng, keys, values), move |(map, rng, keys, values)| {
            (0..1000).filter(|_| op(&**map, rng, keys, read_pct, values)).count()
        })
        .items(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_reads_back_what_was_inserted_from_many_threads() {
        for v in ["mutex", "rwlock", "dashmap", "moka", "sync-map"] {
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
            assert_eq!(map.read_len(1), Some(2), "{v}");
            assert_eq!(map.read_len(KEYS), None, "{v}");
        }
    }

    #[test]
    fn a_worker_counts_operations_and_times_one_in_32() {
        let map = new_map("mutex").unwrap();
        let values = Arc::new((0..KEYS).map(value).collect::<Vec<_>>());
        let r = worker(map, values, 1, KeyStream::new(Keys::Uniform, 1), 95, Duration::ZERO, Duration::from_millis(50));
        assert!(r.ops > 0 && r.ops % LATENCY_EVERY == 0);
        assert_eq!(r.histogram.len(), r.ops / LATENCY_EVERY);
        assert_eq!(r.misses, 0);
    }

    #[test]
    fn the_key_tables_are_pinned_as_the_go_originals_pin_them() {
        // go/inproc/concurrent_map_test.go pins the same entries: Go draws the port's keys.
        let (u, z) = (key_table(Keys::Uniform, 1), key_table(Keys::Zipf, 1));
        assert_eq!([u[0], u[1], u[2], u[3], u[4], u[65535]], [3436, 8257, 5070, 8304, 2360, 7652]);
        assert_eq!(
            [z[0], z[1], z[2], z[3], z[4], z[5], z[6], z[7], z[65535]],
            [161, 907, 7627, 48, 48, 1068, 3165, 105, 0]
        );
    }

    #[test]
    fn zipf_keys_are_skewed_and_uniform_keys_are_not() {
        let share_of_top_10 = |t: &[u64]| t.iter().filter(|&&k| k < 10).count() as f64 / t.len() as f64;
        let zipf = key_table(Keys::Zipf, 3);
        let uniform = key_table(Keys::Uniform, 3);
        assert!(zipf.iter().chain(&uniform).all(|&k| k < KEYS));
        // With s = 0.99 over 10 000 keys the 10 hottest draw about 30 % of the operations;
        // uniformly they draw 0.1 %.
        assert!((0.2..0.4).contains(&share_of_top_10(&zipf)), "{}", share_of_top_10(&zipf));
        assert!(share_of_top_10(&uniform) < 0.01, "{}", share_of_top_10(&uniform));
    }

    #[test]
    fn the_sync_map_stand_in_keeps_keys_it_did_not_start_with() {
        let m = SyncMapLike::with_keys(0..4);
        m.insert(2, Arc::from("two"));
        m.insert(9, Arc::from("nine"));
        assert_eq!(m.get(2).as_deref(), Some("two"));
        assert_eq!(m.get(9).as_deref(), Some("nine"));
        assert_eq!(m.get(0), None, "an entry never stored is no value");
        assert_eq!(m.get(10), None);
    }
}
