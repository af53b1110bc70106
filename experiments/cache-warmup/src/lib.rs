//! `cache-warmup`: serving from a cold Redis cache vs warming it first, four ways: one key at
//! a time, the guide's `MultiLevelCache.Warmup` as written (a goroutine per key, 10 in
//! flight, each a cache `Get` whose refill runs in the background), unbounded concurrency,
//! and the guide's `WarmupUsers` (one MGET, one `= ANY` query for the misses, one pipeline).
//!
//! Each sample empties the cache, warms it (timed: `warm_ms`, with the queries it sent and
//! when its last write landed), then measures the first seconds of cache-aside traffic.

use anyhow::Context as _;
use harness::kit::fixtures::setup_users;
use harness::kit::pgpool::GoSqlPool;
use harness::kit::redis_util::{self, info_field};
use harness::load::{self, LoadConfig, OpError, Worker};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot, Sweep,
    Trial, Variant,
};
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const ID: &str = "cache-warmup";
const GET_BY_ID_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_id.sql");
const GET_BY_IDS_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_ids.sql");
const SEED: u64 = 20_240_101;
/// The guide's l2TTL and WarmupUsers TTL: 30 minutes.
const TTL_SECS: u64 = 1800;
/// The guide's Warmup semaphore.
const GUIDE_IN_FLIGHT: usize = 10;
/// The database the warm-up loads from: a pool of 25 connections, all kept idle.
const DB_POOL: usize = 25;
/// Clients of the traffic after the warm-up.
const TRAFFIC_CLIENTS: u32 = 16;

#[derive(Default)]
pub struct CacheWarmup {
    ids: Slot<Arc<Vec<Uuid>>>,
}

impl CacheWarmup {
    pub fn new() -> Self {
        Self::default()
    }
}

harness::table! {
    /// The variants, declared once: names, descriptions and what each stands for.
    const VARIANTS: [Variant] = enum Kind {
        Cold => Variant::new("cold", "no warm-up: traffic starts on an empty cache and fills it on misses"),
        Sequential => Variant::new("one-at-a-time", "warm each key in turn: query, then SET, awaited"),
        Guide10 => Variant::new("guide-warmup-10", "the guide's Warmup as written: a task per key, 10 in flight, each a cache Get whose refill runs in the background and is not waited for").tests_claim(),
        Unbounded => Variant::new("unbounded", "a task per key, all at once (the database pool of 25 is the only bound), query then SET awaited"),
        MgetPipeline => Variant::new("guide-mget-pipeline", "the guide's WarmupUsers: one MGET, one = ANY query for the misses, one pipeline of SETs"),
    }
}

fn key(prefix: &str, id: &Uuid) -> String {
    format!("{prefix}user:{id}")
}

/// What warming shares: the database pool, one Redis connection, and counters.
struct Warmer {
    pool: GoSqlPool,
    redis: MultiplexedConnection,
    prefix: String,
    queries: AtomicU64,
}

impl Warmer {
    /// The database pool (every connection opened, none counted in a warm-up's time) and one
    /// Redis connection with go-redis's ReadTimeout in the guide's client: 3 s (redis-rs
    /// defaults to 500 ms).
    async fn new(pg: &harness::provision::PgTarget, redis: &redis::Client, prefix: &str) -> anyhow::Result<Self> {
        let pool = GoSqlPool::new(pg.clone(), DB_POOL, DB_POOL);
        // Each connection's first statements (catalog lookups on a fresh backend) run here too.
        pool.warm(DB_POOL, &[GET_BY_ID_SQL, GET_BY_IDS_SQL])
            .await
            .map_err(|e| anyhow::anyhow!("opening the warm-up's database pool: {e}"))?;
        let mut con = redis.get_multiplexed_async_connection().await?;
        con.set_response_timeout(Duration::from_secs(3));
        Ok(Self { pool, redis: con, prefix: prefix.to_owned(), queries: AtomicU64::new(0) })
    }

    async fn load_one(&self, id: &Uuid) -> Result<Option<String>, OpError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let rows = self.pool.query_typed(GET_BY_ID_SQL, &[(id, Type::UUID)]).await?;
        Ok(rows.first().map(harness::kit::fixtures::cached_user_json))
    }

    async fn set(&self, key: &str, value: &str) -> Result<(), OpError> {
        let mut con = self.redis.clone();
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(TTL_SECS)
            .query_async::<()>(&mut con)
            .await
            .map_err(|e| OpError::from_error(&e))
    }

    /// Load one key from the database and write it to the cache, both awaited.
    async fn warm_one(&self, id: &Uuid) -> Result<(), OpError> {
        if let Some(v) = self.load_one(id).await? {
            self.set(&key(&self.prefix, id), &v).await?;
        }
        Ok(())
    }
}

/// What a warm-up left: the background refills still running (the guide's
/// `go func() { setL1; setL2 }`, which its Warmup does not wait for), and the keys it failed
/// to cache (the guide ignores each error and goes on; so does this, counting them).
struct Warmed {
    background: Vec<tokio::task::JoinHandle<Result<(), OpError>>>,
    failed: u64,
}

/// Warm `ids` as `kind` does.
async fn warm(kind: Kind, warmer: &Arc<Warmer>, ids: &Arc<Vec<Uuid>>) -> anyhow::Result<Warmed> {
    let mut out = Warmed { background: Vec::new(), failed: 0 };
    match kind {
        Kind::Cold => {}
        Kind::Sequential => {
            for id in ids.iter() {
                if warmer.warm_one(id).await.is_err() {
                    out.failed += 1;
                }
            }
        }
        Kind::Unbounded => {
            let tasks: Vec<_> = (0..ids.len())
                .map(|i| {
                    let (w, ids) = (warmer.clone(), ids.clone());
                    tokio::spawn(async move { w.warm_one(&ids[i]).await })
                })
                .collect();
            for t in tasks {
                if t.await?.is_err() {
                    out.failed += 1;
                }
            }
        }
        Kind::Guide10 => {
            // A goroutine per key; at most 10 run Get at once; Get = Redis GET, on a miss the
            // database, then the refill in a goroutine of its own that nobody waits for.
            let sem = Arc::new(Semaphore::new(GUIDE_IN_FLIGHT));
            let fills = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..ids.len())
                .map(|i| {
                    let (w, ids, sem, fills) = (warmer.clone(), ids.clone(), sem.clone(), fills.clone());
                    tokio::spawn(async move {
                        let _permit = sem.acquire().await.map_err(|_| OpError::new("semaphore closed"))?;
                        let k = key(&w.prefix, &ids[i]);
                        let mut con = w.redis.clone();
                        let cached: Option<Vec<u8>> = redis::cmd("GET")
                            .arg(&k)
                            .query_async(&mut con)
                            .await
                            .map_err(|e| OpError::from_error(&e))?;
                        if cached.is_none() {
                            if let Some(v) = w.load_one(&ids[i]).await? {
                                let w2 = w.clone();
                                let fill = tokio::spawn(async move { w2.set(&k, &v).await });
                                fills.lock().expect("not poisoned").push(fill);
                            }
                        }
                        Ok::<(), OpError>(())
                    })
                })
                .collect();
            for t in tasks {
                if t.await?.is_err() {
                    out.failed += 1;
                }
            }
            out.background = std::mem::take(&mut *fills.lock().expect("not poisoned"));
        }
        Kind::MgetPipeline => {
            let keys: Vec<String> = ids.iter().map(|id| key(&warmer.prefix, id)).collect();
            let mut con = warmer.redis.clone();
            let cached: Vec<Option<Vec<u8>>> = match redis::cmd("MGET").arg(&keys).query_async(&mut con).await {
                Ok(c) => c,
                Err(_) => {
                    out.failed = ids.len() as u64;
                    return Ok(out);
                }
            };
            let missing: Vec<Uuid> = ids.iter().zip(&cached).filter(|(_, c)| c.is_none()).map(|(id, _)| *id).collect();
            if !missing.is_empty() {
                warmer.queries.fetch_add(1, Ordering::Relaxed);
                let rows = match warmer.pool.query_typed(GET_BY_IDS_SQL, &[(&missing, Type::UUID_ARRAY)]).await {
                    Ok(rows) => rows,
                    Err(_) => {
                        out.failed = missing.len() as u64;
                        return Ok(out);
                    }
                };
                let mut pipe = redis::pipe();
                for row in &rows {
                    let id: Uuid = row.get(0);
                    pipe.cmd("SET")
                        .arg(key(&warmer.prefix, &id))
                        .arg(harness::kit::fixtures::cached_user_json(row))
                        .arg("EX")
                        .arg(TTL_SECS)
                        .ignore();
                }
                if pipe.query_async::<()>(&mut con).await.is_err() {
                    out.failed = rows.len() as u64;
                }
            }
        }
    }
    Ok(out)
}

/// A client of the service after the warm-up: cache-aside reads of random users.
struct Reader {
    redis: MultiplexedConnection,
    db: Client,
    stmt: Statement,
    ids: Arc<Vec<Uuid>>,
    keys: Arc<Vec<String>>,
    rng: SplitMix64,
}

impl Worker for Reader {
    async fn call(&mut self) -> Result<(), OpError> {
        let i = self.rng.below(self.ids.len());
        let err = |e: redis::RedisError| OpError::from_error(&e);
        let cached: Option<Vec<u8>> =
            redis::cmd("GET").arg(&self.keys[i]).query_async(&mut self.redis).await.map_err(err)?;
        if cached.is_none() {
            let rows = self.db.query(&self.stmt, &[&self.ids[i]]).await.map_err(|e| OpError::from_error(&e))?;
            let row = rows.first().ok_or_else(|| OpError::new("user missing"))?;
            redis::cmd("SET")
                .arg(&self.keys[i])
                .arg(harness::kit::fixtures::cached_user_json(row))
                .arg("EX")
                .arg(TTL_SECS)
                .query_async::<()>(&mut self.redis)
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

/// Requests per second of the traffic after the warm-up: by default well below what a warm
/// cache serves on this machine, so that latency, not the arrival rate, is what differs.
const RATE: Knob = Knob::real(
    ID,
    "rate",
    1.0,
    1_000_000.0,
    2000.0,
    "requests per second of the traffic after the warm-up (open loop)",
);
/// Enough users that every point's keys are distinct live rows (2 % are soft-deleted).
const ROWS: Knob = Knob::int_derived(
    ID,
    "rows",
    4_400,
    20_000_000,
    "1.1 × the most keys warmed and 1,000 more",
    "rows of the users table the experiment loads",
);

impl Experiment for CacheWarmup {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Cache warm-up: cold start vs four ways of warming Redis",
            guide_section: "缓存优化 → MultiLevelCache.Warmup; Redis优化 → WarmupUsers",
            claim: "Warming the cache (concurrency 10) before serving avoids a cold start.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("keys warmed", "keys", &[1_000.0, 10_000.0, 100_000.0], &[1_000.0, 4_000.0]),
            primary_metric: load::latency_p99("the first seconds of traffic once the warm-up returned"),
            metrics: vec![
                MetricInfo::new("warm_ms", "ms", Better::Lower, "time until the warm-up returned").negligible_below(1.0),
                MetricInfo::new("filled_ms", "ms", Better::Lower, "time until the warm-up's last cache write landed (later than warm_ms only when refills run in the background)").negligible_below(1.0),
                MetricInfo::new("warm_queries", "queries", Better::Lower, "database queries the warm-up sent"),
                MetricInfo::new("warm_queries_per_sec", "queries/s", Better::Lower, "database load while warming"),
                MetricInfo::new("warm_failures", "keys", Better::Lower, "keys the warm-up failed to cache (timeouts, errors; the guide ignores them and goes on)"),
                MetricInfo::new("traffic_hit_ratio", "", Better::Higher, "share of the traffic's GETs that hit (INFO stats keyspace_hits/misses)"),
                load::latency_p50("the first seconds of traffic"),
            ],
            needs: Needs::BOTH,
            targets: harness::targets::LOAD,
            knobs: vec![ROWS, RATE],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let max_keys = ctx.settings.points(&self.meta().sweep).iter().map(|p| p.value as i64).max().unwrap_or(0);
            let rows = ROWS.set_value(&ctx.settings)?.map_or(max_keys + max_keys / 10 + 1_000, |v| v as i64);
            let users = setup_users(ctx, rows, SEED, max_keys).await?;
            anyhow::ensure!(
                users.ids.len() as i64 >= max_keys,
                "only {} live users for {max_keys} keys: raise --set {ID}.rows",
                users.ids.len()
            );
            self.ids.set(users.ids);
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut con, &redis_util::prefix(ID)).await?;
            Ok(())
        })
    }

    /// Every warm-up caches every key: each variant warms the smallest point's keys once, out
    /// of any sample, and the keys present in Redis are counted when the warm-up returned and
    /// once its background refills (the guide's) finished.
    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            let prefix = redis_util::prefix(ID);
            let client = ctx.env.redis()?.client()?;
            let mut con = client.get_multiplexed_async_connection().await?;
            let point = ctx.settings.points(&self.meta().sweep).into_iter().next().context("no sweep point")?;
            let n = point.value as usize;
            let ids: Arc<Vec<Uuid>> = Arc::new(self.ids.lock()[..n].to_vec());
            let keys: Vec<String> = ids.iter().map(|id| key(&prefix, id)).collect();
            let cached = |con: &mut MultiplexedConnection| {
                let mut con = con.clone();
                let keys = keys.clone();
                async move {
                    let mut present = 0usize;
                    for chunk in keys.chunks(1000) {
                        let n: usize = redis::cmd("EXISTS").arg(chunk).query_async(&mut con).await?;
                        present += n;
                    }
                    anyhow::Ok(present as f64 / keys.len() as f64)
                }
            };
            let mut checks = Vec::new();
            for (variant, kind) in VARIANTS.iter().filter(|(_, k)| *k != Kind::Cold) {
                redis_util::clear_prefix(&mut con, &prefix).await?;
                let warmer = Arc::new(Warmer::new(ctx.env.postgres()?, &client, &prefix).await?);
                let warmed = warm(*kind, &warmer, &ids).await.context("warming")?;
                let at_return = cached(&mut con).await?;
                let mut failed = warmed.failed;
                for b in warmed.background {
                    if !matches!(b.await, Ok(Ok(()))) {
                        failed += 1;
                    }
                }
                let after = cached(&mut con).await?;
                checks.push(harness::Check::observation(
                    variant.name,
                    Some(&point.label),
                    "keys_cached_at_return",
                    at_return,
                    "share of the keys in Redis when the warm-up returned (below 1 where refills run in the background)",
                ));
                checks.push(harness::Check::verdict(
                    variant.name,
                    Some(&point.label),
                    "keys_cached",
                    after,
                    after == 1.0 && failed == 0,
                    format!(
                        "share of the keys in Redis once the warm-up and its refills finished ({failed} keys failed)"
                    ),
                ));
            }
            // Leave nothing behind on the server (setup clears the prefix too, after a failed run).
            redis_util::clear_prefix(&mut con, &prefix).await?;
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        harness::notes!(
            rate = format!("{:.0}", RATE.value(&ctx.settings).unwrap_or(f64::NAN)),
            clients = ctx.settings.concurrency.unwrap_or(TRAFFIC_CLIENTS),
            seconds = format!("{:.1}", ctx.settings.duration.as_secs_f64()),
            db_pool = DB_POOL,
        )
    }
}

impl Run for CacheWarmup {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let kind = pick(&VARIANTS, variant)?;
            let n = point.value as usize;
            let all = self.ids.get();
            anyhow::ensure!(n >= 1 && n <= all.len(), "{n} keys asked, {} users loaded", all.len());
            let ids: Arc<Vec<Uuid>> = Arc::new(all[..n].to_vec());
            let prefix = redis_util::prefix(ID);
            let redis_client = ctx.env.redis()?.client()?;
            let mut admin = redis_client.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut admin, &prefix).await?;
            let pg = ctx.env.postgres()?.clone();
            let warmer = Arc::new(Warmer::new(&pg, &redis_client, &prefix).await?);
            // Warm.
            let started = Instant::now();
            let warmed = warm(kind, &warmer, &ids).await.context("warming")?;
            let (background, warm_failed) = (warmed.background, warmed.failed);
            let warm_s = started.elapsed().as_secs_f64();
            let fills = tokio::spawn(async move {
                let mut failed = 0u64;
                for b in background {
                    if !matches!(b.await, Ok(Ok(()))) {
                        failed += 1;
                    }
                }
                (started.elapsed().as_secs_f64(), failed)
            });
            let queries = warmer.queries.load(Ordering::Relaxed) as f64;
            // The first seconds of traffic, right away (no warm-up of the load itself).
            let hits0 = info_field(&mut admin, "stats", "keyspace_hits").await?;
            let misses0 = info_field(&mut admin, "stats", "keyspace_misses").await?;
            let keys: Arc<Vec<String>> = Arc::new(ids.iter().map(|id| key(&prefix, id)).collect());
            let clients = ctx.settings.concurrency.unwrap_or(TRAFFIC_CLIENTS);
            // Open loop: requests arrive at a fixed rate whatever the cache's state, and each
            // one's latency counts from when it arrived, so a stall while the cache is cold
            // shows in p99 instead of slowing the arrivals down (coordinated omission).
            let rate = RATE.value(&ctx.settings)?;
            let cfg = LoadConfig::open(clients, rate, Duration::ZERO, ctx.settings.duration);
            let report = load::run(&cfg, &ctx.probe, move |i| {
                let (redis_client, pg, ids, keys) = (redis_client.clone(), pg.clone(), ids.clone(), keys.clone());
                async move {
                    let db = pg.connect().await?;
                    let stmt = db.prepare(GET_BY_ID_SQL).await?;
                    let redis = redis_client.get_multiplexed_async_connection().await?;
                    Ok(Reader { redis, db, stmt, ids, keys, rng: SplitMix64::new(SEED ^ i as u64) })
                }
            })
            .await?;
            let hits = info_field(&mut admin, "stats", "keyspace_hits").await? - hits0;
            let misses = info_field(&mut admin, "stats", "keyspace_misses").await? - misses0;
            let (filled_s, failed_fills) = fills.await?;
            let mut sample = report.into_sample();
            let m = &mut sample.metrics;
            m.insert("offered_rate_per_sec".into(), rate);
            m.insert("warm_ms".into(), warm_s * 1000.0);
            m.insert("filled_ms".into(), if kind == Kind::Cold { 0.0 } else { filled_s.max(warm_s) * 1000.0 });
            m.insert("warm_queries".into(), queries);
            m.insert("warm_failures".into(), (warm_failed + failed_fills) as f64);
            m.insert("warm_queries_per_sec".into(), if warm_s > 0.0 { queries / warm_s } else { 0.0 });
            // The hit ratio counts the traffic's GETs and the (few) GETs of in-flight refills alike.
            m.insert("traffic_hit_ratio".into(), if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 });
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod same_work_tests {
    use super::*;

    /// No warm-up wins by doing less: each leaves every key in Redis, with the same values.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_warm_up_caches_the_same_values() {
        let exp = CacheWarmup::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        let ids: Arc<Vec<Uuid>> = Arc::new(exp.ids.lock()[..300].to_vec());
        let prefix = redis_util::prefix(ID);
        let client = ctx.env.redis().unwrap().client().unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = ids.iter().map(|id| key(&prefix, id)).collect();
        let mut seen: Vec<(&str, Vec<Option<String>>)> = Vec::new();
        for v in exp.meta().variants {
            let k = pick(&VARIANTS, v.name).unwrap();
            if k == Kind::Cold {
                continue;
            }
            redis_util::clear_prefix(&mut admin, &prefix).await.unwrap();
            let warmer = Arc::new(Warmer::new(ctx.env.postgres().unwrap(), &client, &prefix).await.unwrap());
            let warmed = warm(k, &warmer, &ids).await.unwrap();
            for b in warmed.background {
                b.await.unwrap().unwrap();
            }
            assert_eq!(warmed.failed, 0, "{}", v.name);
            let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut admin).await.unwrap();
            assert!(values.iter().all(Option::is_some), "{}: every key is warm", v.name);
            seen.push((v.name, values));
        }
        assert!(seen.len() >= 4);
        for w in seen.windows(2) {
            assert_eq!(w[0].1, w[1].1, "{} and {} cache the same values", w[0].0, w[1].0);
        }
        redis_util::clear_prefix(&mut admin, &prefix).await.unwrap();
    }

    /// The run's own check finds every key cached after each warm-up, and sees the guide's
    /// background refills (a variant that cached nothing would read 0 here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_check_finds_every_key_cached_after_each_warm_up() {
        let exp = CacheWarmup::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        let checks = exp.checks(&ctx).await.unwrap();
        let cached: Vec<_> = checks.iter().filter(|c| c.name == "keys_cached").collect();
        assert_eq!(cached.len(), VARIANTS.len() - 1, "{checks:?}");
        for c in cached {
            assert_eq!((c.value, c.ok), (1.0, Some(true)), "{c:?}");
        }
        let keys: Vec<String> = {
            let client = ctx.env.redis().unwrap().client().unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("KEYS").arg(format!("{}*", redis_util::prefix(ID))).query_async(&mut con).await.unwrap()
        };
        assert!(keys.is_empty(), "the check leaves no key behind: {}", keys.len());
    }
}

harness::quick_run_test!(CacheWarmup::new(), "cache-warmup.rows" = "11000");
