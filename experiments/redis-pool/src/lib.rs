//! `redis-pool`: the guide's go-redis pool (`PoolSize: 20, MinIdleConns: 5, MaxIdleConns:
//! 10`) against go-redis's own defaults, against other sizes, against one multiplexed
//! connection shared by every client (the redis crate's own answer) and against a new
//! connection per command.
//!
//! The pools are go-redis's `internal/pool` as it works, not a Rust pool's: a request waits
//! for a turn in a FIFO queue of `PoolSize` turns (go-redis's `queue` channel; Go's blocked
//! senders are served in order) for at most `PoolTimeout` (ReadTimeout + 1 s), then takes the
//! most recently returned idle connection (LIFO, go-redis's default) or dials a new one. A
//! returned connection goes back to the idle list unless `MaxIdleConns` are already idle, in
//! which case it is closed; whenever an idle connection is taken or one is closed, dials in
//! the background refill the idle list up to `MinIdleConns`, each holding a turn while it
//! dials (go-redis's `checkMinIdleConns` takes one without waiting, and stops when none is
//! free). No check on checkout (go-redis sends no PING). The MinIdleConns dials go-redis starts at creation are awaited before the
//! clock.
//!
//! Every command is a GET of a cached user (about 200 bytes). The server counts the
//! connections it accepted (`INFO stats`) and a monitor samples how many are open.

use anyhow::Context as _;
use harness::kit::redis_util::{self, info_field};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};

const ID: &str = "redis-pool";
const KEYS: u64 = 10_000;
/// go-redis's PoolTimeout default: ReadTimeout + 1 s, with the guide's ReadTimeout of 3 s
/// (also go-redis's default ReadTimeout).
const POOL_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Default)]
pub struct RedisPool;

impl RedisPool {
    pub fn new() -> Self {
        Self
    }
}

/// go-redis's pool options that shape the pool (`redis.Options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolOptions {
    /// `PoolSize`; `None`: go-redis's default, 10 × GOMAXPROCS.
    size: Option<usize>,
    min_idle: usize,
    /// `MaxIdleConns`; 0: no limit (go-redis's default).
    max_idle: usize,
}

impl PoolOptions {
    /// PoolSize as go-redis computes it: GOMAXPROCS is the CPUs the process may use.
    fn pool_size(self) -> usize {
        self.size.unwrap_or_else(|| 10 * std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// The guide's NewOptimizedRedisClient: PoolSize 20, MinIdleConns 5, MaxIdleConns 10.
const GUIDE: PoolOptions = PoolOptions { size: Some(20), min_idle: 5, max_idle: 10 };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NewConnection,
    Multiplexed,
    Pool(PoolOptions),
}

/// The variants, declared once: names, descriptions and what each stands for.
const VARIANTS: [(Variant, Kind); 6] = [
    (
        Variant::new(
            "go-default",
            "go-redis's defaults: PoolSize 10 × GOMAXPROCS, no MinIdleConns, no MaxIdleConns limit",
        ),
        Kind::Pool(PoolOptions { size: None, min_idle: 0, max_idle: 0 }),
    ),
    (
        Variant::new(
            "guide-20",
            "the guide's NewOptimizedRedisClient pool: PoolSize 20, MinIdleConns 5, MaxIdleConns 10",
        )
        .compared_with("go-default")
        .tests_claim(),
        Kind::Pool(GUIDE),
    ),
    (
        Variant::new("pool-5", "the guide's settings with PoolSize 5").compared_with("guide-20"),
        Kind::Pool(PoolOptions { size: Some(5), ..GUIDE }),
    ),
    (
        Variant::new("pool-100", "the guide's settings with PoolSize 100").compared_with("guide-20"),
        Kind::Pool(PoolOptions { size: Some(100), ..GUIDE }),
    ),
    (
        Variant::new(
            "multiplexed",
            "one multiplexed connection shared by every client: the redis crate pipelines concurrent commands on it",
        )
        .compared_with("guide-20"),
        Kind::Multiplexed,
    ),
    (
        Variant::new(
            "new-connection",
            "no pool: open a TCP connection (with the client's handshake), send one GET, close it",
        )
        .compared_with("guide-20"),
        Kind::NewConnection,
    ),
];

/// The Go originals (go/inproc/redis_pool.go): go-redis itself, the guide's
/// NewOptimizedRedisClient as printed beside go-redis's defaults, other sizes and a client per
/// command, where the Rust variants above model its pool.
const GO_VARIANTS: [Variant; 5] = [
    Variant::baseline_of_group("go-redis-default", "Go original: go-redis's own defaults (PoolSize 10 × GOMAXPROCS)").in_go("RedisPool/default"),
    Variant::new("go-redis-guide-20", "Go original: the guide's NewOptimizedRedisClient as printed (PoolSize 20, MinIdleConns 5, MaxIdleConns 10, its timeouts and retries)")
        .compared_with("go-redis-default")
        .in_go("RedisPool/guide-20")
        .tests_claim(),
    Variant::new("go-redis-pool-5", "Go original: the guide's client with PoolSize 5").compared_with("go-redis-guide-20").in_go("RedisPool/pool-5"),
    Variant::new("go-redis-pool-100", "Go original: the guide's client with PoolSize 100").compared_with("go-redis-guide-20").in_go("RedisPool/pool-100"),
    Variant::new("go-redis-new-client", "Go original: no pool, a new go-redis client per GET (dial, handshake, GET, close)")
        .compared_with("go-redis-guide-20")
        .in_go("RedisPool/new-client"),
];

/// go-redis's connection pool (`internal/pool.ConnPool`), its rules as described above.
struct GoRedisPool {
    client: redis::Client,
    options: PoolOptions,
    /// PoolSize, worked out once.
    size: usize,
    /// The turns: PoolSize permits, handed out in the order requests asked (tokio's semaphore
    /// is fair, as Go's channel queue is).
    turns: Arc<Semaphore>,
    state: Mutex<PoolState>,
    opened: AtomicU64,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<MultiplexedConnection>,
    /// Connections open or being dialled (go-redis's `poolSize`).
    size: usize,
    /// Idle connections, those being dialled for the idle list included (`idleConnsLen`).
    idle_len: usize,
    /// The most connections the pool counted at once (`size`'s peak): never above PoolSize.
    peak: usize,
}

impl GoRedisPool {
    /// A pool with its MinIdleConns dialled (go-redis starts these at creation, in the
    /// background; here they are awaited, so that no clock counts them).
    async fn new(client: redis::Client, options: PoolOptions) -> redis::RedisResult<Arc<Self>> {
        let size = options.pool_size();
        let pool = Arc::new(Self {
            client,
            options,
            size,
            turns: Arc::new(Semaphore::new(size)),
            state: Mutex::new(PoolState::default()),
            opened: AtomicU64::new(0),
        });
        let first = options.min_idle.min(size);
        for _ in 0..first {
            let con = pool.dial().await?;
            let mut st = pool.state.lock().expect("not poisoned");
            st.size += 1;
            st.peak = st.peak.max(st.size);
            st.idle_len += 1;
            st.idle.push(con);
        }
        Ok(pool)
    }

    async fn dial(&self) -> redis::RedisResult<MultiplexedConnection> {
        let con = self.client.get_multiplexed_async_connection().await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(con)
    }

    /// go-redis's checkMinIdleConns, under the state's lock: dial in the background until
    /// MinIdleConns are idle (or being dialled), within PoolSize and MaxIdleConns, each dial
    /// holding a turn taken without waiting (none free: no dial).
    fn refill_min_idle(self: &Arc<Self>, st: &mut PoolState) {
        let o = self.options;
        while st.size < self.size && st.idle_len < o.min_idle && (o.max_idle == 0 || st.idle_len < o.max_idle) {
            let Ok(turn) = self.turns.clone().try_acquire_owned() else { break };
            st.size += 1;
            st.peak = st.peak.max(st.size);
            st.idle_len += 1;
            let pool = self.clone();
            tokio::spawn(async move {
                let _turn = turn; // freed once the dial landed
                let dialled = pool.dial().await;
                let mut st = pool.state.lock().expect("not poisoned");
                match dialled {
                    Ok(con) => st.idle.push(con),
                    Err(_) => {
                        st.size -= 1;
                        st.idle_len -= 1;
                    }
                }
            });
        }
    }

    /// Wait for a turn (at most PoolTimeout), then the last idle connection or a new one. A
    /// connection dialled while the pool already counts PoolSize (its background dials
    /// included) is not pooled: it is closed when put back, as go-redis's `newConn` marks it.
    async fn get(self: &Arc<Self>) -> Result<(tokio::sync::SemaphorePermit<'_>, Pooled), OpError> {
        let turn = match tokio::time::timeout(POOL_TIMEOUT, self.turns.acquire()).await {
            Ok(Ok(turn)) => turn,
            Ok(Err(_)) => return Err(OpError::new("redis: client is closed")),
            Err(_) => return Err(OpError::new("redis: connection pool timeout (timed out)")),
        };
        let idle = {
            let mut st = self.state.lock().expect("not poisoned");
            let con = st.idle.pop();
            if con.is_some() {
                st.idle_len -= 1;
                self.refill_min_idle(&mut st);
            }
            con
        };
        if let Some(con) = idle {
            return Ok((turn, Pooled { con, pooled: true }));
        }
        let con = self.dial().await.map_err(|e| OpError::from_error(&e))?;
        let mut st = self.state.lock().expect("not poisoned");
        let pooled = st.size < self.size;
        if pooled {
            st.size += 1;
            st.peak = st.peak.max(st.size);
        }
        Ok((turn, Pooled { con, pooled }))
    }

    /// Give a connection back (the turn is freed when the caller drops it): to the idle list
    /// unless MaxIdleConns are idle, else closed. A connection whose command failed, or one
    /// the pool did not count, is closed.
    fn put(self: &Arc<Self>, c: Pooled, healthy: bool) {
        let mut st = self.state.lock().expect("not poisoned");
        if !c.pooled {
            return; // dropped here, which closes it
        }
        if healthy && (self.options.max_idle == 0 || st.idle_len < self.options.max_idle) {
            st.idle.push(c.con);
            st.idle_len += 1;
        } else {
            st.size -= 1;
            self.refill_min_idle(&mut st);
        } // else dropped here: the last handle, so its connection closes
    }
}

/// A connection out of the pool, and whether the pool counts it.
struct Pooled {
    con: MultiplexedConnection,
    pooled: bool,
}

enum Conn {
    /// Opens (and drops, closing it) a connection for every command.
    New(redis::Client),
    Shared(MultiplexedConnection),
    Pool(Arc<GoRedisPool>),
}

struct Getter {
    conn: Conn,
    keys: Arc<Vec<String>>,
    rng: SplitMix64,
}

impl Getter {
    async fn get(&mut self) -> Result<Option<Vec<u8>>, OpError> {
        let key = &self.keys[self.rng.below(self.keys.len())];
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        let err = |e: redis::RedisError| OpError::from_error(&e);
        match &mut self.conn {
            Conn::New(client) => {
                let mut con = client.get_multiplexed_async_connection().await.map_err(err)?;
                cmd.query_async(&mut con).await.map_err(err)
            }
            Conn::Shared(con) => cmd.query_async(con).await.map_err(err),
            Conn::Pool(pool) => {
                let (turn, mut c) = pool.get().await?;
                let got = cmd.query_async(&mut c.con).await;
                pool.put(c, got.is_ok());
                drop(turn);
                got.map_err(err)
            }
        }
    }
}

impl Worker for Getter {
    async fn call(&mut self) -> Result<(), OpError> {
        match self.get().await? {
            Some(_) => Ok(()),
            None => Err(OpError::new("key missing")),
        }
    }
}

impl Experiment for RedisPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Redis: the guide's go-redis pool vs go-redis's defaults, other sizes, one multiplexed connection, a connection per command",
            guide_section: "Redis优化 → Redis配置优化 (NewOptimizedRedisClient: PoolSize 20, MinIdleConns 5, MaxIdleConns 10)",
            claim: "A sized connection pool (PoolSize 20, MinIdle 5, MaxIdle 10) is the right way to talk to Redis.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            sweep: Sweep::numeric("client concurrency", "clients", &[1.0, 16.0, 128.0], &[1.0, 128.0]),
            primary_metric: load::throughput("GET/s", "commands completed per second by all clients"),
            metrics: vec![
                load::latency_p50("a GET, including getting a connection"),
                load::latency_p99("one operation"),
                MetricInfo::new("connections_opened_per_sec", "conn/s", Better::Lower, "connections the server accepted per second (INFO stats), warm-up included"),
                MetricInfo::new("server_connections_max", "conn", Better::Lower, "most client connections open at once on the server, sampled every 20 ms (the monitor's own excluded)"),
                MetricInfo::new("pool_connections_max", "conn", Better::Lower, "most connections the go-redis pool counted at once (its poolSize), never above PoolSize; the server can see more while closed ones linger"),
                MetricInfo::new("pool_connections_opened", "conn", Better::Lower, "connections the go-redis pool dialled, from its creation before the sample to the sample's end (warm-up included), its MinIdleConns and MaxIdleConns churn included"),
            ],
            needs: Needs::REDIS,
            targets: harness::targets::LOAD,
            capacity: Some(harness::CapacityPlan::guide(128.0, 50.0, "Limits: the guide sets no Redis target; a cache read is held to the database target it stands in for (p95 < 50 ms).")),
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
        harness::notes!(
            keys = KEYS,
            pool_timeout_s = POOL_TIMEOUT.as_secs(),
            default_pool_size = PoolOptions { size: None, min_idle: 0, max_idle: 0 }.pool_size(),
        )
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
            let shared_pool: Arc<OnceCell<Arc<GoRedisPool>>> = Arc::new(OnceCell::new());
            let pool_seen = shared_pool.clone();
            let started = Instant::now();
            let report = load::run(&ctx.settings.load_for(&at, clients), &ctx.probe, move |i| {
                let (client, keys) = (client.clone(), keys.clone());
                let (shared_con, shared_pool) = (shared_con.clone(), shared_pool.clone());
                async move {
                    let conn = match kind {
                        Kind::NewConnection => Conn::New(client),
                        Kind::Multiplexed => Conn::Shared(
                            shared_con.get_or_try_init(|| client.get_multiplexed_async_connection()).await?.clone(),
                        ),
                        Kind::Pool(options) => {
                            Conn::Pool(shared_pool.get_or_try_init(|| GoRedisPool::new(client, options)).await?.clone())
                        }
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
            if let Some(pool) = pool_seen.get() {
                sample.metrics.insert("pool_connections_opened".into(), pool.opened.load(Ordering::Relaxed) as f64);
                let peak = pool.state.lock().expect("not poisoned").peak;
                sample.metrics.insert("pool_connections_max".into(), peak as f64);
                sample.metrics.insert("pool_size".into(), pool.size as f64);
            }
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
        let exp = RedisPool::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        let client = ctx.env.redis().unwrap().client().unwrap();
        let prefix = redis_util::prefix(ID);
        let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("{prefix}user:{i}")).collect());
        let mut seen = Vec::new();
        for v in exp.meta().variants.into_iter().filter(|v| v.go.is_none()) {
            let conn = match pick(&VARIANTS, v.name).unwrap() {
                Kind::NewConnection => Conn::New(client.clone()),
                Kind::Multiplexed => Conn::Shared(client.get_multiplexed_async_connection().await.unwrap()),
                Kind::Pool(options) => Conn::Pool(GoRedisPool::new(client.clone(), options).await.unwrap()),
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

    /// The pool keeps go-redis's rules: MinIdleConns dialled at creation, a returned
    /// connection closed once MaxIdleConns are idle, background dials back up to
    /// MinIdleConns, turns handed out first come first served, a wait cut at PoolTimeout.
    #[tokio::test(flavor = "current_thread")]
    async fn the_pool_follows_go_redis_rules() {
        let ctx = RunCtx::for_tests(false, true, &[]).await.unwrap();
        let client = ctx.env.redis().unwrap().client().unwrap();
        let opts = PoolOptions { size: Some(4), min_idle: 2, max_idle: 2 };
        let pool = GoRedisPool::new(client.clone(), opts).await.unwrap();
        assert_eq!(pool.opened.load(Ordering::Relaxed), 2, "MinIdleConns dialled at creation");
        // Four at once: taking each of the two idle ones dials a replacement in the background
        // (MinIdle 2), each dial holding a turn; the third and fourth requests wait for those
        // turns and take the connections the dials left: four open, none beyond PoolSize.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.get().await.unwrap());
        }
        assert_eq!(pool.opened.load(Ordering::Relaxed), 4, "2 at creation, 2 in the background");
        {
            let st = pool.state.lock().unwrap();
            assert_eq!((st.size, st.idle.len()), (4, 0), "the pool counts PoolSize, none idle");
        }
        assert!(held.iter().all(|(_, c)| c.pooled));
        // Back they come: the two the pool does not count are closed, and the idle list being
        // full (MaxIdleConns 2), so are the other two.
        for (turn, c) in held.drain(..) {
            pool.put(c, true);
            drop(turn);
        }
        {
            let st = pool.state.lock().unwrap();
            assert_eq!((st.idle.len(), st.idle_len, st.size), (2, 2, 2), "MaxIdleConns closes the rest");
        }
        // Taking both idle ones makes the pool dial back up to MinIdleConns in the background.
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.state.lock().unwrap().idle.len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.state.lock().unwrap().idle.len(), 2, "refilled to MinIdleConns");
        assert_eq!(pool.opened.load(Ordering::Relaxed), 6);
        pool.put(a.1, true);
        drop(a.0);
        pool.put(b.1, true);
        drop(b.0);

        // Turns go in the order they were asked for.
        let one = GoRedisPool::new(client, PoolOptions { size: Some(1), min_idle: 0, max_idle: 0 }).await.unwrap();
        let first = one.get().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..3 {
            let (one, order) = (one.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let (turn, c) = one.get().await.unwrap();
                order.lock().unwrap().push(n);
                one.put(c, true);
                drop(turn);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await; // each one queued before the next
        }
        one.put(first.1, true);
        drop(first.0);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2], "first come, first served");
    }

    /// A request that gets no turn within PoolTimeout fails with go-redis's error, counted as
    /// a timeout (so a sample with one is never a measurement).
    #[tokio::test(flavor = "current_thread")]
    async fn a_wait_beyond_pool_timeout_fails_as_a_timeout() {
        let ctx = RunCtx::for_tests(false, true, &[]).await.unwrap();
        let client = ctx.env.redis().unwrap().client().unwrap();
        let pool = GoRedisPool::new(client, PoolOptions { size: Some(1), min_idle: 1, max_idle: 0 }).await.unwrap();
        let _held = pool.get().await.unwrap();
        let err = pool.get().await.err().expect("no turn left");
        assert!(err.kind.contains("pool timeout") && err.kind.contains("timed out"), "{}", err.kind);
    }
}

harness::quick_run_test!(RedisPool::new());
