//! `redis-pool`: a new connection per command, one multiplexed connection shared by every
//! client (the redis crate's own answer), and a pool sized like the guide's go-redis client
//! (`PoolSize: 20, MinIdleConns: 5`, here bb8 with `max_size(20).min_idle(5)`).
//!
//! go-redis does not check a connection when it takes one from its pool; bb8 by default
//! does (`test_on_check_out`: bb8-redis sends a PING, a second round trip per command). The
//! guide's pool is modelled without the check (`pool-20`); the check is its own variant
//! (`pool-20-ping`), so its price is measured instead of hidden in the pool's.
//!
//! Every command is a GET of a cached user (about 200 bytes). The server counts the
//! connections it accepted (`INFO stats`) and a monitor samples how many are open.

use anyhow::Context as _;
use bb8_redis::RedisConnectionManager;
use harness::kit::redis_util::{self, info_field};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const ID: &str = "redis-pool";
const KEYS: u64 = 10_000;
/// The guide's NewOptimizedRedisClient: PoolSize 20, MinIdleConns 5.
const POOL_SIZE: u32 = 20;
const POOL_MIN_IDLE: u32 = 5;

#[derive(Default)]
pub struct RedisPool;

impl RedisPool {
    pub fn new() -> Self {
        Self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NewConnection,
    Multiplexed,
    Pool { ping_on_checkout: bool },
}

/// The variants, declared once: names, descriptions and what each stands for.
const VARIANTS: [(Variant, Kind); 4] = [
    (Variant::new("new-connection", "open a TCP connection (with the client's handshake), send one GET, close it"), Kind::NewConnection),
    (Variant::new("multiplexed", "one multiplexed connection shared by every client: the redis crate pipelines concurrent commands on it"), Kind::Multiplexed),
    (Variant::new("pool-20", "bb8 pool sized like the guide (max 20, min idle 5): check out a connection per command, unchecked as go-redis does").tests_claim(), Kind::Pool { ping_on_checkout: false }),
    (Variant::new("pool-20-ping", "the same pool with bb8's default check on checkout: a PING before every command").compared_with("pool-20"), Kind::Pool { ping_on_checkout: true }),
];

enum Conn {
    /// Opens (and drops, closing it) a connection for every command.
    New(redis::Client),
    Shared(MultiplexedConnection),
    Pool(bb8::Pool<RedisConnectionManager>),
}

struct Getter {
    conn: Conn,
    keys: Arc<Vec<String>>,
    rng: SplitMix64,
}

impl Getter {
    async fn get(&mut self) -> redis::RedisResult<Option<Vec<u8>>> {
        let key = &self.keys[self.rng.below(self.keys.len())];
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match &mut self.conn {
            Conn::New(client) => {
                let mut con = client.get_multiplexed_async_connection().await?;
                cmd.query_async(&mut con).await
            }
            Conn::Shared(con) => cmd.query_async(con).await,
            Conn::Pool(pool) => {
                let mut con = pool.get().await.map_err(|e| match e {
                    bb8::RunError::User(e) => e,
                    bb8::RunError::TimedOut => {
                        redis::RedisError::from((redis::ErrorKind::Io, "timed out waiting for a pooled connection"))
                    }
                })?;
                cmd.query_async(&mut *con).await
            }
        }
    }
}

impl Worker for Getter {
    async fn call(&mut self) -> Result<(), OpError> {
        match self.get().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(OpError::new("key missing")),
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

impl Experiment for RedisPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Redis: a connection per command vs one multiplexed connection vs a pool of 20",
            guide_section: "Redis优化 → Redis配置优化 (NewOptimizedRedisClient: PoolSize 20, MinIdleConns 5)",
            claim: "A sized connection pool (PoolSize 20, MinIdle 5) is the right way to talk to Redis.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("client concurrency", "clients", &[1.0, 16.0, 128.0], &[1.0, 128.0]),
            primary_metric: load::throughput("GET/s", "commands completed per second by all clients"),
            metrics: vec![
                load::latency_p50("a GET, including getting a connection"),
                load::latency_p99("one operation"),
                MetricInfo::new("connections_opened_per_sec", "conn/s", Better::Lower, "connections the server accepted per second (INFO stats), warm-up included"),
                MetricInfo::new("server_connections_max", "conn", Better::Lower, "most client connections open at once on the server, sampled every 20 ms (the monitor's own excluded)"),
            ],
            needs: Needs::REDIS,
            targets: harness::targets::LOAD,
            capacity: Some(harness::CapacityPlan {
                case: "",
                point: 128.0,
                limits: harness::load::capacity::Limits::guide(50.0),
                why: "Limits: the guide sets no Redis target; a cache read is held to the database target it stands in for (p95 < 50 ms).",
            }),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            let prefix = redis_util::prefix(ID);
            redis_util::clear_prefix(&mut con, &prefix).await?;
            let mut pipe = redis::pipe();
            for i in 0..KEYS {
                pipe.set(format!("{prefix}user:{i}"), redis_util::user_json(i)).ignore();
            }
            pipe.query_async::<()>(&mut con).await.context("loading the cached users")?;
            Ok(())
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            // Leave nothing behind on the server (setup clears the prefix too, after a failed run).
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut con, &redis_util::prefix(ID)).await?;
            Ok(Vec::new())
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        vec![
            format!("Each client GETs random keys out of {KEYS} cached users (about 200 bytes of JSON each) in a closed loop."),
            "The guide's go-redis options also set MaxIdleConns 10, ConnMaxIdleTime and ConnMaxLifetime; bb8 has no cap on idle connections, so the churn go-redis would cause with more than 10 busy connections is not modelled (pg-pool models the same setting for Postgres).".into(),
            "redis-rs opens a connection with a handshake (HELLO/CLIENT SETINFO where the server supports them); new-connection pays it on every command, as a client without a pool would.".into(),
        ]
    }
}

impl Run for RedisPool {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let kind = pick(&VARIANTS, variant)?;
            let clients = point.value as u32;
            anyhow::ensure!((1..=10_000).contains(&clients), "client concurrency must be within 1..=10000");
            let client = ctx.env.redis()?.client()?;
            let prefix = redis_util::prefix(ID);
            let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("{prefix}user:{i}")).collect());
            let mut admin = client.get_multiplexed_async_connection().await?;
            let accepted_before = info_field(&mut admin, "stats", "total_connections_received").await?;
            // A monitor samples the open connections on its own connection.
            let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
            let mut monitor_con = client.get_multiplexed_async_connection().await?;
            let monitor = tokio::spawn(async move {
                let mut max = 0.0f64;
                loop {
                    if let Ok(n) = info_field(&mut monitor_con, "clients", "connected_clients").await {
                        max = max.max(n);
                    }
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
                max
            });
            // What the clients share is made once, on the first load thread, and kept alive
            // with it until every thread is done.
            let shared_con: Arc<OnceCell<MultiplexedConnection>> = Arc::new(OnceCell::new());
            let shared_pool: Arc<OnceCell<bb8::Pool<RedisConnectionManager>>> = Arc::new(OnceCell::new());
            let url = ctx.env.redis()?.url.clone();
            let started = Instant::now();
            let report = load::run(&ctx.settings.load_for(&at, clients), &ctx.probe, move |i| {
                let (client, keys, url) = (client.clone(), keys.clone(), url.clone());
                let (shared_con, shared_pool) = (shared_con.clone(), shared_pool.clone());
                async move {
                    let conn = match kind {
                        Kind::NewConnection => Conn::New(client),
                        Kind::Multiplexed => Conn::Shared(
                            shared_con.get_or_try_init(|| client.get_multiplexed_async_connection()).await?.clone(),
                        ),
                        Kind::Pool { ping_on_checkout } => Conn::Pool(
                            shared_pool
                                .get_or_try_init(|| async {
                                    let manager = RedisConnectionManager::new(url.as_str())?;
                                    bb8::Pool::builder()
                                        .max_size(POOL_SIZE)
                                        .min_idle(Some(POOL_MIN_IDLE))
                                        .test_on_check_out(ping_on_checkout)
                                        .connection_timeout(Duration::from_secs(5))
                                        .build(manager)
                                        .await
                                })
                                .await?
                                .clone(),
                        ),
                    };
                    Ok(Getter { conn, keys, rng: SplitMix64::new(0x9E37_79B9 ^ i as u64) })
                }
            })
            .await?;
            let elapsed = started.elapsed().as_secs_f64();
            let _ = stop_tx.send(());
            let max_open = monitor.await.unwrap_or(0.0);
            let accepted = info_field(&mut admin, "stats", "total_connections_received").await? - accepted_before;
            let mut sample = report.into_sample();
            // Not counting the admin connection and the monitor's.
            sample.metrics.insert("connections_opened_per_sec".into(), (accepted - 1.0).max(0.0) / elapsed);
            sample.metrics.insert("server_connections_max".into(), (max_open - 2.0).max(0.0));
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No variant wins by doing less: with the same draws every one reads the same values.
    #[tokio::test(flavor = "current_thread")]
    async fn every_variant_reads_the_same_values() {
        let ctx = RunCtx::for_tests(false, true, &[]).await.unwrap();
        let exp = RedisPool::new();
        exp.setup(&ctx).await.unwrap();
        let client = ctx.env.redis().unwrap().client().unwrap();
        let prefix = redis_util::prefix(ID);
        let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("{prefix}user:{i}")).collect());
        let url = ctx.env.redis().unwrap().url.clone();
        let mut seen = Vec::new();
        for v in exp.meta().variants {
            let conn = match pick(&VARIANTS, v.name).unwrap() {
                Kind::NewConnection => Conn::New(client.clone()),
                Kind::Multiplexed => Conn::Shared(client.get_multiplexed_async_connection().await.unwrap()),
                Kind::Pool { ping_on_checkout } => Conn::Pool(
                    bb8::Pool::builder()
                        .max_size(2)
                        .test_on_check_out(ping_on_checkout)
                        .build(RedisConnectionManager::new(url.as_str()).unwrap())
                        .await
                        .unwrap(),
                ),
            };
            let mut g = Getter { conn, keys: keys.clone(), rng: SplitMix64::new(9) };
            let mut values = Vec::new();
            for _ in 0..30 {
                values.push(g.get().await.unwrap().expect("every key is cached"));
            }
            seen.push(values);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "every variant reads the same values");
    }
}

#[cfg(test)]
mod quick_run {
    use harness::Experiment as _;

    /// The experiment runs end to end as `bench --quick` runs it (every case, variant and
    /// point, on servers of its own), with small data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_end_to_end_in_quick_mode() {
        let exp = super::RedisPool::new();
        let result = harness::testing::run_quick(&exp, &[]).await.unwrap();
        harness::testing::assert_complete(&exp.meta(), &result);
    }
}
