//! `multi-level-cache`: Postgres alone, Redis in front of it, the guide's `MultiLevelCache`
//! as written (an unbounded in-process map with a TTL whose misses are refilled in the
//! background), and an off-the-shelf L1 (moka, W-TinyLFU) in front of Redis.
//!
//! Like is compared with like, one difference at a time: moka holding the whole key space and
//! refilled in the background as the guide's map is (`moka-l1-full`, against the guide's);
//! then bounded to a tenth of the key space (`moka-l1-tenth`, against full: the key space vs
//! L1 size axis); then with its refills awaited (`moka-l1-tenth-awaited`, against tenth).
//!
//! Keys follow a Zipf distribution, a fresh draw per read (so a client's keys are not all
//! cached after one pass over a fixed sequence). Each sample starts with empty caches; the hit ratio of
//! each level and the database queries cover the whole sample, its warm-up included. The
//! checks measure staleness: after an update through the database, how long each design
//! keeps serving the old value, with the TTLs scaled down (in the guide's 5 : 30 ratio) so
//! that the watch outlasts them. A background refill that fails is counted in the sample's
//! errors by kind (the guide ignores it; a timed-out one makes the sample invalid).

use anyhow::Context as _;
use harness::kit::fixtures::setup_users;
use harness::kit::redis_util::{self};
use harness::load::{self, OpError, Worker};
use harness::results::{Better, Check};
use harness::stats::SplitMix64;
use harness::{
    BoxFuture, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot, Sweep, Trial, Variant,
};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const ID: &str = "multi-level-cache";
const GET_BY_ID_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_id.sql");
const SEED: u64 = 20_240_101;
/// The guide's l1TTL and l2TTL.
const L1_TTL: Duration = Duration::from_secs(5 * 60);
const L2_TTL_SECS: u64 = 30 * 60;
const CLIENTS: u32 = 8;
/// The staleness check's L1 TTL, scaled down from the guide's 5 min; Redis's is 6 times it
/// (the guide's 30 min), and the check watches for the longest a stale value can live (both
/// TTLs), three L1 TTLs and half a second more (a loaded machine's stalls).
const STALENESS_L1_TTL: Knob = Knob::int(
    ID,
    "staleness_l1_ttl_ms",
    10,
    300_000,
    1_000,
    "the staleness check's L1 TTL in ms (Redis's: 6 times it, as the guide's 5 and 30 minutes)",
)
.quick(100.0);
const KEYS: Knob = Knob::int(ID, "keys", 100, 5_000_000, 100_000, "distinct users read").quick(2_500.0);
const L1_CAPACITY: Knob = Knob::int_derived(
    ID,
    "l1_capacity",
    1,
    5_000_000,
    "a tenth of keys",
    "entries of the bounded L1 of the tenth variants",
);
/// Enough users for every key to be a distinct live row (2 % are soft-deleted).
const ROWS: Knob = Knob::int_derived(
    ID,
    "rows",
    1_000,
    20_000_000,
    "1.1 × keys and 1,000 more",
    "rows of the users table the experiment loads",
);

#[derive(Default)]
pub struct MultiLevelCache {
    ids: Slot<Arc<Vec<Uuid>>>,
}

impl MultiLevelCache {
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    PostgresOnly,
    RedisPostgres,
    GuideL1,
    MokaFull,
    MokaTenth,
    MokaTenthAwaited,
}

/// The variants, declared once: design, name, description, compared with.
const DESIGNS: [(Design, &str, &str, Option<&str>); 6] = [
    (Design::PostgresOnly, "postgres-only", "every read is a query", None),
    (Design::RedisPostgres, "redis-postgres", "cache-aside in Redis (30-minute TTL), then Postgres; refills awaited", Some("postgres-only")),
    (
        Design::GuideL1,
        "guide-l1-redis-postgres",
        "the guide's MultiLevelCache as written: an unbounded map with a 5-minute TTL, Redis, Postgres; a database read refills L1 and Redis in a background task",
        Some("postgres-only"),
    ),
    (
        Design::MokaFull,
        "moka-l1-full",
        "moka (W-TinyLFU, 5-minute TTL) sized to the whole key space, refilled in the background as the guide's map is: the same L1 but for the map",
        Some("guide-l1-redis-postgres"),
    ),
    (
        Design::MokaTenth,
        "moka-l1-tenth",
        "the same moka L1 bounded to a tenth of the key space (L1 size vs key space), refilled in the background",
        Some("moka-l1-full"),
    ),
    (
        Design::MokaTenthAwaited,
        "moka-l1-tenth-awaited",
        "the bounded moka L1 with its refills awaited (the request writes Redis and L1 before it returns)",
        Some("moka-l1-tenth"),
    ),
];

/// The Go originals (go/inproc/multi_level_cache.go): the guide's MultiLevelCache as printed
/// (its sync.Map, go-redis, a goroutine per refill) and the designs without moka, in Go.
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group("go-postgres-only", "Go original: every read a query (database/sql, lib/pq, the guide's prepared getUserByID)")
        .in_go("MultiLevelCache/postgres-only"),
    Variant::new("go-redis-postgres", "Go original: cache-aside in go-redis (30-minute TTL), then Postgres; refills awaited")
        .compared_with("go-postgres-only")
        .in_go("MultiLevelCache/redis-postgres"),
    Variant::new("go-guide-l1-redis-postgres", "Go original: the guide's MultiLevelCache as printed: a sync.Map of *CacheItem (5-minute TTL, expired items deleted on read), go-redis, Postgres, a goroutine per database read refilling L1 and Redis")
        .compared_with("go-postgres-only")
        .in_go("MultiLevelCache/guide-l1-redis-postgres")
        .tests_claim(),
];

impl Design {
    fn name(self) -> &'static str {
        DESIGNS.iter().find(|d| d.0 == self).map(|d| d.1).expect("every design is declared")
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        DESIGNS.iter().find(|d| d.1 == name).map(|d| d.0).with_context(|| format!("unknown variant {name}"))
    }

    /// Whether a database read refills the caches in a task nobody waits for (the guide's
    /// `go func() { c.setL1(...); c.setL2(...) }()`), instead of before returning.
    fn background_refill(self) -> bool {
        matches!(self, Design::GuideL1 | Design::MokaFull | Design::MokaTenth)
    }

    /// The L1's capacity in entries: `None` for no L1 or the guide's unbounded map.
    fn l1_capacity(self, p: &Params) -> Option<u64> {
        match self {
            Design::MokaFull => Some(p.keys as u64),
            Design::MokaTenth | Design::MokaTenthAwaited => Some(p.l1_capacity),
            _ => None,
        }
    }
}

struct Params {
    keys: usize,
    l1_capacity: u64,
}

fn params(ctx: &RunCtx) -> anyhow::Result<Params> {
    let s = &ctx.settings;
    let keys = KEYS.count(s)?;
    let l1_capacity = L1_CAPACITY.set_value(s)?.map_or(keys as u64 / 10, |v| v as u64);
    Ok(Params { keys, l1_capacity })
}

/// A cached user: the decoded value, and the size of its JSON text (for the L1's bytes).
#[derive(Clone)]
struct Cached {
    data: Arc<serde_json::Value>,
    json_bytes: u64,
}

/// The guide's CacheItem: a decoded value and when it expires.
struct Item {
    value: Cached,
    expires_at: Instant,
}

/// The in-process level, shared by every client of a sample. `bytes` is what it holds:
/// keys plus values as JSON text (the payload; the map's own overhead is not counted).
struct L1 {
    kind: L1Kind,
    ttl: Duration,
    bytes: Arc<AtomicU64>,
}

enum L1Kind {
    None,
    /// The guide's `sync.Map`: unbounded; an expired item is deleted when read.
    Guide(RwLock<HashMap<String, Item>>),
    Moka(moka::sync::Cache<String, Cached>),
}

impl L1 {
    fn new(capacity: Option<u64>, design: Design, ttl: Duration) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let kind = match (design, capacity) {
            (Design::GuideL1, _) => L1Kind::Guide(RwLock::new(HashMap::new())),
            (_, Some(capacity)) => {
                let counter = bytes.clone();
                L1Kind::Moka(
                    moka::sync::Cache::builder()
                        .max_capacity(capacity)
                        .time_to_live(ttl)
                        .eviction_listener(move |k: Arc<String>, v: Cached, _| {
                            counter.fetch_sub(k.len() as u64 + v.json_bytes, Ordering::Relaxed);
                        })
                        .build(),
                )
            }
            _ => L1Kind::None,
        };
        Self { kind, ttl, bytes }
    }

    fn get(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        match &self.kind {
            L1Kind::None => None,
            L1Kind::Guide(map) => {
                let now = Instant::now();
                {
                    let m = map.read().expect("not poisoned");
                    match m.get(key) {
                        Some(item) if now < item.expires_at => return Some(item.value.data.clone()),
                        Some(_) => {}
                        None => return None,
                    }
                }
                if let Some(old) = map.write().expect("not poisoned").remove(key) {
                    self.bytes.fetch_sub(key.len() as u64 + old.value.json_bytes, Ordering::Relaxed);
                }
                None
            }
            L1Kind::Moka(cache) => cache.get(key).map(|c| c.data),
        }
    }

    fn set(&self, key: &str, value: Cached) {
        let size = key.len() as u64 + value.json_bytes;
        match &self.kind {
            L1Kind::None => {}
            L1Kind::Guide(map) => {
                let item = Item { value, expires_at: Instant::now() + self.ttl };
                self.bytes.fetch_add(size, Ordering::Relaxed);
                if let Some(old) = map.write().expect("not poisoned").insert(key.to_owned(), item) {
                    self.bytes.fetch_sub(key.len() as u64 + old.value.json_bytes, Ordering::Relaxed);
                }
            }
            L1Kind::Moka(cache) => {
                // A replaced entry is reported to the eviction listener, which subtracts it.
                self.bytes.fetch_add(size, Ordering::Relaxed);
                cache.insert(key.to_owned(), value);
            }
        }
    }

    fn len(&self) -> u64 {
        match &self.kind {
            L1Kind::None => 0,
            L1Kind::Guide(map) => map.read().expect("not poisoned").len() as u64,
            L1Kind::Moka(cache) => {
                cache.run_pending_tasks();
                cache.entry_count()
            }
        }
    }

    /// Payload bytes held now (pending evictions applied first).
    fn bytes(&self) -> u64 {
        self.len();
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Counts of where reads were served from, added up when each client is dropped.
#[derive(Default)]
struct Tally {
    l1: AtomicU64,
    l2: AtomicU64,
    l3: AtomicU64,
    /// Background refills (the guide's `go func()`) that failed, by error kind: the guide
    /// ignores them, the sample does not (a timed-out one makes it invalid).
    refill_errors: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// One client of the service: reads users through the design's levels.
struct Reader {
    design: Design,
    l1: Arc<L1>,
    redis: MultiplexedConnection,
    db: Client,
    stmt: Statement,
    keys: Arc<Vec<String>>,
    ids: Arc<Vec<Uuid>>,
    /// The Zipf distribution: every operation draws a fresh key.
    zipf: Arc<Zipf>,
    rng: SplitMix64,
    counts: [u64; 3],
    tally: Arc<Tally>,
    /// Redis's TTL in milliseconds (the guide's 30 minutes, or the staleness check's scale).
    l2_ttl_ms: u64,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.tally.l1.fetch_add(self.counts[0], Ordering::Relaxed);
        self.tally.l2.fetch_add(self.counts[1], Ordering::Relaxed);
        self.tally.l3.fetch_add(self.counts[2], Ordering::Relaxed);
    }
}

impl Reader {
    /// The guide's MultiLevelCache.Get (or the design's share of it) for key number `i`.
    async fn get(&mut self, i: usize) -> Result<Arc<serde_json::Value>, OpError> {
        let key = &self.keys[i];
        if let Some(v) = self.l1.get(key) {
            self.counts[0] += 1;
            return Ok(v);
        }
        if self.design != Design::PostgresOnly {
            let cached: Option<Vec<u8>> =
                redis::cmd("GET").arg(key).query_async(&mut self.redis).await.map_err(|e| OpError::from_error(&e))?;
            if let Some(bytes) = cached {
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    self.counts[1] += 1;
                    let value = Arc::new(value);
                    self.l1.set(key, Cached { data: value.clone(), json_bytes: bytes.len() as u64 });
                    return Ok(value);
                }
            }
        }
        self.counts[2] += 1;
        let rows = self.db.query(&self.stmt, &[&self.ids[i]]).await.map_err(|e| OpError::from_error(&e))?;
        let row = rows.first().ok_or_else(|| OpError::new("user missing"))?;
        let json = harness::kit::fixtures::cached_user_json(row);
        let value = Arc::new(serde_json::from_str::<serde_json::Value>(&json).map_err(|e| OpError::from_error(&e))?);
        let cached = Cached { data: value.clone(), json_bytes: json.len() as u64 };
        if self.design == Design::PostgresOnly {
            return Ok(value);
        }
        let ttl_ms = self.l2_ttl_ms;
        if self.design.background_refill() {
            // The guide: `go func() { c.setL1(key, value); c.setL2(ctx, key, value) }()`.
            let (l1, mut redis, key, tally) = (self.l1.clone(), self.redis.clone(), key.clone(), self.tally.clone());
            tokio::spawn(async move {
                l1.set(&key, cached);
                let set =
                    redis::cmd("SET").arg(&key).arg(json).arg("PX").arg(ttl_ms).query_async::<()>(&mut redis).await;
                if let Err(e) = set {
                    let kind = OpError::from_error(&e).kind.into_owned();
                    *tally
                        .refill_errors
                        .lock()
                        .expect("not poisoned")
                        .entry(format!("background refill: {kind}"))
                        .or_default() += 1;
                }
            });
        } else {
            redis::cmd("SET")
                .arg(key)
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut self.redis)
                .await
                .map_err(|e| OpError::from_error(&e))?;
            self.l1.set(key, cached);
        }
        Ok(value)
    }
}

impl Worker for Reader {
    async fn call(&mut self) -> Result<(), OpError> {
        let i = self.zipf.draw(&mut self.rng) as usize;
        self.get(i).await.map(|_| ())
    }
}

/// Zipf(s) over ranks 1..=n as Walker's alias table (Vose's construction): a draw is one
/// uniform index and one coin, so it costs every variant the same few nanoseconds however
/// many keys there are (a binary search over 100,000 weights would cost a visible share of
/// an L1 hit).
struct Zipf {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let (mut prob, mut alias) = (vec![1.0; n], vec![0u32; n]);
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(&l), Some(&g)) = (small.last(), large.last()) {
            small.pop();
            prob[l] = scaled[l];
            alias[l] = g as u32;
            scaled[g] -= 1.0 - scaled[l];
            if scaled[g] < 1.0 {
                large.pop();
                small.push(g);
            }
        }
        // What is left holds probability one (up to rounding).
        for i in large.into_iter().chain(small) {
            prob[i] = 1.0;
        }
        Self { prob, alias }
    }

    /// A rank, 0-based.
    fn draw(&self, rng: &mut SplitMix64) -> u32 {
        let i = rng.below(self.prob.len());
        if rng.next_f64() < self.prob[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

impl Experiment for MultiLevelCache {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Multi-level cache: Postgres, + Redis, + the guide's unbounded L1, + a bounded L1",
            guide_section: "缓存优化 → MultiLevelCache (L1 sync.Map, L2 Redis, L3 database)",
            claim: "L1 in-process + L2 Redis + L3 Postgres cuts latency and database load.",
            variants: DESIGNS
                .iter()
                .map(|&(design, name, description, baseline)| Variant {
                    baseline,
                    tests_claim: design == Design::GuideL1,
                    ..Variant::new(name, description)
                })
                .chain(GO_VARIANTS.iter().cloned())
                .collect(),
            sweep: Sweep::numeric("Zipf skew", "s", &[0.6, 0.99, 1.2], &[0.6, 1.2]),
            // The mean, not the median: a read's latency is a mixture of L1 hits (about a
            // microsecond) and misses (a round trip or two), and where the hit ratio is near one
            // half the median jumps from one to the other between runs (1.5 µs in one, 178 µs
            // in the next, in the A/A study); the mean moves with the hit ratio, smoothly.
            primary_metric: MetricInfo::new("latency_mean_us", "us", Better::Lower, "mean latency of one read (hits and misses together)"),
            metrics: vec![
                load::latency_p50("one read"),
                load::latency_p99("one read"),
                load::throughput("reads/s", "reads served per second"),
                MetricInfo::new("db_queries_per_sec", "queries/s", Better::Lower, "reads that reached Postgres, per second of the sample"),
                MetricInfo::new("l1_hit_ratio", "", Better::Higher, "share of reads served by the in-process level"),
                MetricInfo::new("l2_hit_ratio", "", Better::Higher, "share of reads served by Redis"),
                MetricInfo::new("l1_entries", "entries", Better::Lower, "entries in the in-process level at the end of the sample"),
                MetricInfo::new("l1_bytes", "bytes", Better::Lower, "what the in-process level holds at the end of the sample: keys plus values as JSON text (the map's own overhead not counted)"),
            ],
            needs: Needs::BOTH,
            targets: harness::targets::SERVICE,
            knobs: vec![ROWS, KEYS, L1_CAPACITY, STALENESS_L1_TTL],
            capacity: Some(harness::CapacityPlan::guide(0.99, 200.0, "Limits: the guide's API target (p95 < 200 ms): the cache answers a service's request.")),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let p = params(ctx)?;
            let keys = p.keys as i64;
            let rows = ROWS.set_value(&ctx.settings)?.map_or(keys + keys / 10 + 1_000, |v| v as i64);
            let users = setup_users(ctx, rows, SEED, keys).await?;
            anyhow::ensure!(
                users.ids.len() == p.keys,
                "only {} live users for {} keys: raise --set {ID}.rows",
                users.ids.len(),
                p.keys
            );
            self.ids.set(users.ids);
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut con, &redis_util::prefix(ID)).await?;
            Ok(())
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let p = params(ctx)?;
            let ids = self.ids.get();
            let prefix = redis_util::prefix(ID);
            let redis_client = ctx.env.redis()?.client()?;
            let pg = ctx.env.postgres()?.clone();
            let mut checks = Vec::new();
            let l1_ttl_ms = STALENESS_L1_TTL.int_value(&ctx.settings)? as u64;
            let (l2_ttl_ms, watch_ms) = (6 * l1_ttl_ms, 10 * l1_ttl_ms + 500);
            let window = Duration::from_millis(watch_ms);
            // Staleness: read a user (caching it), update its e-mail in the database, then read
            // it again and again until the new address shows or the window closes.
            for (n, design) in DESIGNS.iter().map(|d| d.0).enumerate() {
                let db = pg.connect().await?;
                let stmt = db.prepare(GET_BY_ID_SQL).await?;
                let mut admin = redis_client.get_multiplexed_async_connection().await?;
                redis_util::clear_prefix(&mut admin, &prefix).await?;
                let i = n; // a different user for each design
                let mut reader = Reader {
                    design,
                    l1: Arc::new(L1::new(design.l1_capacity(&p), design, Duration::from_millis(l1_ttl_ms))),
                    redis: redis_client.get_multiplexed_async_connection().await?,
                    db,
                    stmt,
                    keys: Arc::new(ids.iter().map(|id| format!("{prefix}user:{id}")).collect()),
                    ids: ids.clone(),
                    zipf: Arc::new(Zipf::new(1, 0.0)),
                    rng: SplitMix64::new(0),
                    counts: [0; 3],
                    tally: Arc::new(Tally::default()),
                    l2_ttl_ms,
                };
                let stale_s = async {
                    reader.get(i).await.map_err(|e| anyhow::anyhow!("{}", e.kind))?;
                    // Let a background refill land, as it would between two requests.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    reader.get(i).await.map_err(|e| anyhow::anyhow!("{}", e.kind))?;
                    let fresh = format!("updated-{n}@example.com");
                    let admin_db = pg.connect().await?;
                    let old: String =
                        admin_db.query_one("SELECT email FROM users WHERE id = $1", &[&ids[i]]).await?.get(0);
                    admin_db.execute("UPDATE users SET email = $2 WHERE id = $1", &[&ids[i], &fresh]).await?;
                    let updated = Instant::now();
                    let mut stale = window.as_secs_f64();
                    while updated.elapsed() < window {
                        let v = reader.get(i).await.map_err(|e| anyhow::anyhow!("{}", e.kind))?;
                        if v.get("email").and_then(|e| e.as_str()) == Some(fresh.as_str()) {
                            stale = updated.elapsed().as_secs_f64();
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    // The fixture is shared: put the address back.
                    admin_db.execute("UPDATE users SET email = $2 WHERE id = $1", &[&ids[i], &old]).await?;
                    anyhow::Ok(stale)
                }
                .await?;
                let still = stale_s >= window.as_secs_f64();
                let text = if still {
                    format!("still stale after {:.1} s", window.as_secs_f64())
                } else {
                    format!("fresh after {stale_s:.3} s")
                };
                let l2_s = l2_ttl_ms as f64 / 1000.0;
                checks.push(
                    Check::observation(design.name(), None, "staleness (s)", stale_s, format!("after an UPDATE through the database, how long a reader kept getting the old value, with the TTLs scaled down to L1 {:.1} s and Redis {l2_s:.1} s (the guide's 5 min : 30 min), watched for {:.0} s; nothing in the guide's design invalidates a cached value, so a stale read lasts up to the Redis TTL, plus an L1 TTL when L1 is refilled from Redis just before Redis expires", l1_ttl_ms as f64 / 1000.0, window.as_secs_f64()))
                        .with_text(text),
                );
            }
            redis_util::clear_prefix(&mut redis_client.get_multiplexed_async_connection().await?, &prefix).await?;
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let p = params(ctx).ok();
        harness::notes!(
            clients = ctx.settings.concurrency.unwrap_or(CLIENTS),
            keys = p.as_ref().map(|p| p.keys).unwrap_or(0),
            l1_capacity = p.as_ref().map(|p| p.l1_capacity).unwrap_or(0),
        )
    }
}

impl Run for MultiLevelCache {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let design = Design::parse(variant)?;
            let p = params(ctx)?;
            let skew = point.value;
            anyhow::ensure!(skew > 0.0 && skew < 10.0, "Zipf skew must be within (0, 10)");
            let ids = self.ids.get();
            let prefix = redis_util::prefix(ID);
            let redis_client = ctx.env.redis()?.client()?;
            let mut admin = redis_client.get_multiplexed_async_connection().await?;
            // Every sample starts with empty caches.
            redis_util::clear_prefix(&mut admin, &prefix).await?;
            let keys: Arc<Vec<String>> = Arc::new(ids.iter().map(|id| format!("{prefix}user:{id}")).collect());
            let zipf = Arc::new(Zipf::new(ids.len(), skew));
            let l1 = Arc::new(L1::new(design.l1_capacity(&p), design, L1_TTL));
            let tally = Arc::new(Tally::default());
            let pg = ctx.env.postgres()?.clone();
            let clients = ctx.settings.concurrency.unwrap_or(CLIENTS);
            let (l1_run, tally_run) = (l1.clone(), tally.clone());
            let report = load::run(&ctx.settings.load_for(&at, clients), &ctx.probe, move |i| {
                let (redis_client, pg, keys, ids, zipf) =
                    (redis_client.clone(), pg.clone(), keys.clone(), ids.clone(), zipf.clone());
                let (l1, tally) = (l1_run.clone(), tally_run.clone());
                async move {
                    let db = pg.connect().await?;
                    let stmt = db.prepare(GET_BY_ID_SQL).await?;
                    let mut redis = redis_client.get_multiplexed_async_connection().await?;
                    // The guide's client waits up to its ReadTimeout, 3 s (redis-rs: 500 ms).
                    redis.set_response_timeout(Duration::from_secs(3));
                    let rng = SplitMix64::new(SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let l2_ttl_ms = L2_TTL_SECS * 1000;
                    let prewarm = keys.len() / clients as usize;
                    let mut reader =
                        Reader { design, l1, redis, db, stmt, keys, ids, zipf, rng, counts: [0; 3], tally, l2_ttl_ms };
                    // A defined starting state: before the clock, every client reads the first
                    // keys/clients draws of its own seeded sequence, so the caches hold the same
                    // users whatever the speed of the timed warm-up that follows (which depends
                    // on the machine and the variant).
                    for _ in 0..prewarm {
                        reader.call().await.map_err(|e| anyhow::anyhow!("pre-warming the caches: {}", e.kind))?;
                    }
                    reader.counts = [0; 3];
                    Ok(reader)
                }
            })
            .await?;
            // The counted window: the timed warm-up and the measured time (each client's
            // pre-warm, before it, is not counted; timing it in read about 2-3 times too few
            // queries per second in a full run).
            let elapsed = (ctx.settings.warmup + report.measured).as_secs_f64();
            let (h1, h2, h3) =
                (tally.l1.load(Ordering::Relaxed), tally.l2.load(Ordering::Relaxed), tally.l3.load(Ordering::Relaxed));
            let total = (h1 + h2 + h3).max(1) as f64;
            let mut sample = report.into_sample();
            for (kind, n) in std::mem::take(&mut *tally.refill_errors.lock().expect("not poisoned")) {
                *sample.errors.entry(kind).or_default() += n;
            }
            let m = &mut sample.metrics;
            m.insert("db_queries_per_sec".into(), h3 as f64 / elapsed);
            m.insert("l1_hit_ratio".into(), h1 as f64 / total);
            m.insert("l2_hit_ratio".into(), h2 as f64 / total);
            m.insert("l3_ratio".into(), h3 as f64 / total);
            m.insert("l1_entries".into(), l1.len() as f64);
            m.insert("l1_bytes".into(), l1.bytes() as f64);
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No design wins by doing less: each returns the same user for the same key, whether it
    /// comes from Postgres, Redis or L1 (the second read of each key is a cache hit where
    /// there is a cache).
    #[tokio::test(flavor = "current_thread")]
    async fn every_design_returns_the_same_users() {
        let exp = MultiLevelCache::new();
        let ctx = harness::testing::set_up(&exp, &[("multi-level-cache.keys", "200")]).await;
        let ids = exp.ids.get();
        let p = params(&ctx).unwrap();
        let prefix = redis_util::prefix(ID);
        let keys: Arc<Vec<String>> = Arc::new(ids.iter().map(|id| format!("{prefix}user:{id}")).collect());
        let redis_client = ctx.env.redis().unwrap().client().unwrap();
        let mut seen: Vec<Vec<serde_json::Value>> = Vec::new();
        for &(design, name, _, _) in &DESIGNS {
            let mut admin = redis_client.get_multiplexed_async_connection().await.unwrap();
            redis_util::clear_prefix(&mut admin, &prefix).await.unwrap();
            let db = ctx.env.postgres().unwrap().connect().await.unwrap();
            let stmt = db.prepare(GET_BY_ID_SQL).await.unwrap();
            let tally = Arc::new(Tally::default());
            let mut reader = Reader {
                design,
                l1: Arc::new(L1::new(design.l1_capacity(&p), design, L1_TTL)),
                redis: redis_client.get_multiplexed_async_connection().await.unwrap(),
                db,
                stmt,
                keys: keys.clone(),
                ids: ids.clone(),
                zipf: Arc::new(Zipf::new(1, 0.0)),
                rng: SplitMix64::new(0),
                counts: [0; 3],
                tally: tally.clone(),
                l2_ttl_ms: L2_TTL_SECS * 1000,
            };
            let mut values = Vec::new();
            for i in 0..20 {
                let first = reader.get(i).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await; // a background refill lands
                let again = reader.get(i).await.unwrap();
                assert_eq!(first, again, "{name}: key {i} read twice");
                values.push((*first).clone());
            }
            drop(reader);
            let cached = tally.l1.load(Ordering::Relaxed) + tally.l2.load(Ordering::Relaxed);
            if design == Design::PostgresOnly {
                assert_eq!(cached, 0, "{name} has no cache");
            } else {
                assert!(cached >= 20, "{name}: the second reads came from a cache ({cached})");
            }
            seen.push(values);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "every design returns the same users");
    }

    #[test]
    fn zipf_draws_follow_the_skew() {
        let zipf = Zipf::new(1000, 1.2);
        let mut rng = SplitMix64::new(1);
        let draws: Vec<u32> = (0..100_000).map(|_| zipf.draw(&mut rng)).collect();
        let top = draws.iter().filter(|&&d| d == 0).count() as f64 / draws.len() as f64;
        // P(rank 1) = 1 / H(1000, 1.2).
        let h: f64 = (1..=1000).map(|k| 1.0 / (k as f64).powf(1.2)).sum();
        assert!((top - 1.0 / h).abs() < 0.01, "{top} vs {}", 1.0 / h);
        assert!(draws.iter().all(|&d| d < 1000));
        // Rank 10's share too, and a flat distribution draws every rank alike.
        let tenth = draws.iter().filter(|&&d| d == 9).count() as f64 / draws.len() as f64;
        let want = 1.0 / (10f64.powf(1.2) * h);
        assert!((tenth - want).abs() < 0.004, "{tenth} vs {want}");
        // go/inproc/multi_level_cache_test.go pins the same draws: Go draws the port's keys.
        let mut rng7 = SplitMix64::new(7);
        let first: Vec<u32> = (0..12).map(|_| zipf.draw(&mut rng7)).collect();
        assert_eq!(first, [487, 0, 3, 8, 54, 82, 61, 0, 0, 8, 6, 9]);
        let flat = Zipf::new(10, 0.0);
        let draws: Vec<u32> = (0..100_000).map(|_| flat.draw(&mut rng)).collect();
        for r in 0..10 {
            let share = draws.iter().filter(|&&d| d == r).count() as f64 / draws.len() as f64;
            assert!((share - 0.1).abs() < 0.01, "rank {r}: {share}");
        }
    }

    #[test]
    fn guide_l1_expires_and_bounded_l1_is_bounded() {
        let c = |v: i64| Cached { data: Arc::new(serde_json::json!(v)), json_bytes: 10 };
        let guide = L1::new(None, Design::GuideL1, L1_TTL);
        guide.set("a", c(1));
        assert_eq!(guide.bytes(), 11, "key and value");
        guide.set("a", c(2));
        assert_eq!(guide.bytes(), 11, "a replaced value is not counted twice");
        assert!(guide.get("a").is_some());
        if let L1Kind::Guide(map) = &guide.kind {
            map.write().unwrap().get_mut("a").unwrap().expires_at = Instant::now() - Duration::from_secs(1);
        }
        assert!(guide.get("a").is_none());
        assert_eq!(guide.len(), 0, "an expired item is deleted when read");
        assert_eq!(guide.bytes(), 0);
        let bounded = L1::new(Some(10), Design::MokaTenth, L1_TTL);
        for i in 0..1000 {
            bounded.set(&format!("k{i:03}"), c(i));
        }
        let n = bounded.len();
        assert!(n <= 10, "{n}");
        assert_eq!(bounded.bytes(), n * 14, "evicted entries leave the byte count");
    }
}

harness::quick_run_test!(MultiLevelCache::new(), "multi-level-cache.rows" = "4000", "multi-level-cache.keys" = "3000");
