//! `pg-pool`: a connection per query against pools of 1, 5, 25 and 100 connections, and the
//! guide's setting "25 open but only 5 idle" (Go's SetMaxOpenConns(25), SetMaxIdleConns(5)),
//! which closes every connection returned while 5 are already idle, and so opens new ones
//! whenever a burst needs more than 5 after a lull. The pools follow database/sql's rules
//! (`harness::kit::pgpool`).
//!
//! Two loads: a steady closed loop, where a pool at a constant concurrency never has a
//! connection to spare and the idle limit never acts, and bursts (as many lookups as clients
//! arriving at once, then a lull), where every burst above 5 ends with the idle limit closing
//! what the burst opened. Connections opened, requests that waited and connections the idle
//! limit closed are counted per second.
//!
//! The guide's configuration in sqlx, as a Rust service would write it (`PgPoolOptions`: max 25,
//! min 5, idle timeout 5 min, lifetime 30 min) sits beside them: sqlx has no "max idle", so
//! the question is whether it churns where database/sql does. sqlx checks a connection with a
//! ping before handing it out (`test_before_acquire`, on by default); that check is its own
//! variant.
//!
//! Every variant but sqlx's sends the same statement the same way (tokio-postgres's
//! `query_typed`: an unnamed statement, one round trip), so only the connection handling
//! differs; the sqlx pair sends it as sqlx does unprepared (`persistent(false)`: Parse and
//! Describe, then Bind and Execute, two round trips) and is compared within itself. Connections opened are counted where
//! they are opened; the server's backends are sampled while the load runs.

use harness::kit::fixtures::setup_users;
use harness::kit::pgpool::GoSqlPool;
use harness::load::{self, OpError, Worker};
use harness::provision::PgTarget;
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Case, Engine, Experiment, Knob, LoadConfig, Meta, MetricInfo, Needs, Run, RunCtx,
    Sample, Slot, Sweep, Trial, Variant,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::Type;
use uuid::Uuid;

const SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_id.sql");
const SEED: u64 = 20_240_101;
const ID: &str = "pg-pool";
const ROWS: Knob = Knob::users_rows(ID, 1_000, 100_000);

harness::table! {
    /// How the lookups arrive.
    /// The cases: the two loads.
    const CASES: [Case] = enum Load {
        Steady => Case::new("steady", "every client sends its next lookup as soon as the last one returns (closed loop)") .tests_claim(),
        Bursty => Case::new("bursty", "as many lookups as clients arrive at once, then a lull (one burst every 4 ms per client, at least every 10 ms; open loop): the lulls are where MaxIdleConns closes what a burst opened",),
    }
}

/// The time from one burst to the next: long enough for a burst to be served before the next
/// arrives even when every lookup opens a connection (new-connection opened about 350 a
/// second on the 2-core machine, runs/full-7d93b1e): 4 ms per client, 250 lookups a second,
/// and at least 10 ms.
fn burst_period(clients: u32) -> Duration {
    Duration::from_millis(u64::from(clients) * 4).max(Duration::from_millis(10))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    NewConnection,
    Pool {
        max_open: usize,
        max_idle: usize,
    },
    /// sqlx's pool with the guide's settings; `ping`: sqlx's test_before_acquire.
    Sqlx {
        ping: bool,
    },
}

/// The variants, declared once: names, descriptions and the pool each stands for.
const VARIANTS: [(Variant, Kind); 8] = [
    (
        Variant::new("new-connection", "open a TCP connection, start a session, query, close: every time"),
        Kind::NewConnection,
    ),
    (Variant::new("pool-1", "one shared connection"), Kind::Pool { max_open: 1, max_idle: 1 }),
    (Variant::new("pool-5", "a pool of 5 connections, all kept"), Kind::Pool { max_open: 5, max_idle: 5 }),
    (
        Variant::new("pool-25", "a pool of 25 connections, all kept: the guide's pool without its idle limit")
            .compared_with("guide-25-open-5-idle"),
        Kind::Pool { max_open: 25, max_idle: 25 },
    ),
    (Variant::new("pool-100", "a pool of 100 connections, all kept"), Kind::Pool { max_open: 100, max_idle: 100 }),
    (
        Variant::new(
            "guide-25-open-5-idle",
            "the guide's setting: up to 25 open, but a returned connection is closed when 5 are already idle",
        )
        .tests_claim(),
        Kind::Pool { max_open: 25, max_idle: 5 },
    ),
    (
        Variant::baseline_of_group(
            "sqlx-guide",
            "sqlx 0.8's PgPool with the guide's settings (max 25, min 5, idle timeout 5 min, lifetime 30 min) and sqlx's defaults: a ping checks each connection before it is handed out; the lookup unprepared as sqlx sends it (two round trips)",
        ),
        Kind::Sqlx { ping: true },
    ),
    (
        Variant::new("sqlx-guide-no-ping", "the same sqlx pool with test_before_acquire(false): no ping per checkout")
            .compared_with("sqlx-guide"),
        Kind::Sqlx { ping: false },
    ),
];

/// The Go originals (go/inproc/pg_pool_test.go): database/sql itself, the pool the Rust
/// variants above model, with the guide's NewOptimizedDB and DefaultDBConfig.
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group("go-new-connection", "Go original: a new *sql.DB per lookup (lib/pq opens a connection, the lookup, Close)")
        .in_go("PgPool/new-connection"),
    Variant::new("go-guide-25-open-5-idle", "Go original: the guide's NewOptimizedDB with DefaultDBConfig (SetMaxOpenConns 25, SetMaxIdleConns 5, its lifetimes, one Ping)")
        .compared_with("go-new-connection")
        .in_go("PgPool/guide-25-open-5-idle")
        .tests_claim(),
    Variant::new("go-pool-25", "Go original: the same database/sql pool keeping all 25 (SetMaxIdleConns 25)")
        .compared_with("go-guide-25-open-5-idle")
        .in_go("PgPool/pool-25"),
];

enum Conn {
    /// Open, query, close: the full TCP and startup handshake every time (pgbench -C).
    PerQuery {
        target: Box<PgTarget>,
        opened: Arc<AtomicU64>,
    },
    Pooled(Arc<GoSqlPool>),
    Sqlx(sqlx::PgPool),
}

struct PoolClient {
    conn: Conn,
    ids: Arc<Vec<Uuid>>,
    rng: SplitMix64,
}

impl PoolClient {
    /// Look `id` up through this client's connection strategy; the rows found.
    async fn lookup(&self, id: Uuid) -> Result<usize, OpError> {
        Ok(match &self.conn {
            Conn::PerQuery { target, opened } => {
                opened.fetch_add(1, Ordering::Relaxed);
                let client = target.connect().await.map_err(|e| OpError::from_error(&e))?;
                let rows = client.query_typed(SQL, &[(&id, Type::UUID)]).await.map_err(|e| OpError::from_error(&e))?;
                drop(client); // sends Terminate; the backend exits
                rows.len()
            }
            Conn::Pooled(pool) => pool.query_typed(SQL, &[(&id, Type::UUID)]).await?.len(),
            // Unprepared as sqlx sends it (two round trips): compared only with the other sqlx
            // variant, whose pool is the difference.
            Conn::Sqlx(pool) => sqlx::query(SQL)
                .bind(id)
                .persistent(false)
                .fetch_all(pool)
                .await
                .map_err(|e| OpError::from_error(&e))?
                .len(),
        })
    }
}

impl Worker for PoolClient {
    async fn call(&mut self) -> Result<(), OpError> {
        let id = self.ids[self.rng.below(self.ids.len())];
        if self.lookup(id).await? == 1 {
            Ok(())
        } else {
            Err(OpError::new("user not found"))
        }
    }
}

#[derive(Default)]
pub struct PgPool {
    ids: Slot<Arc<Vec<Uuid>>>,
}

impl PgPool {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Experiment for PgPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Connection pools: a connection per query vs pools, and the guide's 25 open / 5 idle, steady and in bursts",
            guide_section: "数据库优化 → 连接池配置 (DefaultDBConfig: MaxOpenConns 25, MaxIdleConns 5)",
            claim: "A connection pool (MaxOpen 25, MaxIdle 5) beats a connection per query.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            cases: names_of(&CASES),
            sweep: Sweep::numeric("client concurrency", "clients", &[1.0, 8.0, 64.0], &[1.0, 8.0]),
            // The mean, from each lookup's due time in the bursts: in the steady closed loop it
            // is the clients over the throughput (Little's law), so both loads are judged on
            // one metric.
            primary_metric: load::latency_mean("a primary-key lookup, including any wait for a connection"),
            metrics: vec![
                load::throughput("queries/s", "primary-key lookups completed per second"),
                MetricInfo::new(
                    "latency_p99_us",
                    "us",
                    Better::Lower,
                    "99th percentile latency, including any wait for a pooled connection",
                ),
                MetricInfo::new(
                    "connections_opened_per_sec",
                    "conn/s",
                    Better::Lower,
                    "new server sessions per second (warm-up included)",
                ),
                MetricInfo::new(
                    "pool_waits_per_sec",
                    "waits/s",
                    Better::Lower,
                    "lookups that found no idle connection and no room to open one, and waited (database/sql's WaitCount), per second",
                ),
                MetricInfo::new(
                    "idle_closed_per_sec",
                    "conn/s",
                    Better::Lower,
                    "connections closed on return because MaxIdleConns were idle (database/sql's MaxIdleClosed), per second",
                ),
                MetricInfo::new(
                    "server_backends_max",
                    "backends",
                    Better::Lower,
                    "most client backends seen on the server while the load ran (sampled every 50 ms)",
                ),
            ],
            needs: Needs::POSTGRES,
            targets: harness::targets::DB_QUERY,
            knobs: vec![ROWS],
            capacity: Some(
                harness::CapacityPlan::guide(64.0, 50.0, "Limits: the guide's database target (DB p95 < 50 ms), at 64 clients, where the pools differ most.").in_case("steady"),
            ),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let users = setup_users(ctx, ROWS.int_value(&ctx.settings)?, SEED, 50_000).await?;
            self.ids.set(users.ids);
            Ok(())
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!()
    }
}

impl Run for PgPool {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let (kind, load_shape) = (pick(&VARIANTS, variant)?, pick(&CASES, at.case)?);
            let clients = point.value as u32;
            let ids = self.ids.get();
            let target = ctx.env.postgres()?.clone();
            let opened = Arc::new(AtomicU64::new(0));
            let pool = match kind {
                Kind::Pool { max_open, max_idle } => Some(Arc::new(GoSqlPool::new(target.clone(), max_open, max_idle))),
                Kind::NewConnection | Kind::Sqlx { .. } => None,
            };
            let sqlx_pool = match kind {
                Kind::Sqlx { ping } => Some(guide_sqlx_pool(target.sqlx_options(), ping, opened.clone())?),
                _ => None,
            };
            // Watch the server's client backends while the load runs.
            let monitor_client = target.connect().await?;
            let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
            let monitor = tokio::spawn(async move {
                let mut max = 0i64;
                loop {
                    if let Ok(row) = monitor_client
                        .query_one("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'", &[])
                        .await
                    {
                        max = max.max(row.get::<_, i64>(0) - 1); // not counting this monitor
                    }
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                max
            });
            let started = std::time::Instant::now();
            let (pool2, opened2, sqlx2) = (pool.clone(), opened.clone(), sqlx_pool.clone());
            let config = match load_shape {
                Load::Steady => ctx.settings.load_for(&at, clients),
                Load::Bursty => LoadConfig::bursts(
                    clients,
                    clients,
                    burst_period(clients),
                    ctx.settings.warmup,
                    ctx.settings.duration,
                ),
            };
            let report = load::run(&config, &ctx.probe, move |i| {
                let conn = match (&pool2, &sqlx2) {
                    (Some(p), _) => Conn::Pooled(p.clone()),
                    (None, Some(p)) => Conn::Sqlx(p.clone()),
                    (None, None) => Conn::PerQuery { target: Box::new(target.clone()), opened: opened2.clone() },
                };
                let ids = ids.clone();
                async move { Ok(PoolClient { conn, ids, rng: SplitMix64::new(SEED + i as u64) }) }
            })
            .await;
            let elapsed = started.elapsed().as_secs_f64();
            let _ = stop_tx.send(());
            let backends = monitor.await.unwrap_or(0);
            if let Some(p) = sqlx_pool {
                p.close().await;
            }
            let mut sample = report?.into_sample();
            let total_opened = opened.load(Ordering::Relaxed) + pool.as_ref().map(|p| p.opened()).unwrap_or(0);
            sample.metrics.insert("connections_opened_per_sec".into(), total_opened as f64 / elapsed);
            sample.metrics.insert("connections_opened".into(), total_opened as f64);
            sample.metrics.insert("server_backends_max".into(), backends as f64);
            if let Some(p) = &pool {
                let stats = p.stats();
                sample.metrics.insert("pool_waits_per_sec".into(), stats.waits as f64 / elapsed);
                sample.metrics.insert("idle_closed_per_sec".into(), stats.idle_closed as f64 / elapsed);
            }
            Ok(sample)
        })
    }
}

/// The guide's DefaultDBConfig in sqlx: MaxOpenConns 25 → max_connections, MaxIdleConns 5 →
/// min_connections (sqlx has no cap on idle connections: it keeps what it opened until the
/// idle timeout), ConnMaxIdleTime 5 min → idle_timeout, ConnMaxLifetime 30 min →
/// max_lifetime. Every connection sqlx opens is counted in `opened`.
fn guide_sqlx_pool(
    options: sqlx::postgres::PgConnectOptions,
    ping: bool,
    opened: Arc<AtomicU64>,
) -> anyhow::Result<sqlx::PgPool> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(25)
        .min_connections(5)
        .idle_timeout(Duration::from_secs(5 * 60))
        .max_lifetime(Duration::from_secs(30 * 60))
        .test_before_acquire(ping)
        .after_connect(move |_conn, _meta| {
            let opened = opened.clone();
            Box::pin(async move {
                opened.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
        })
        .connect_lazy_with(options);
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No strategy wins by doing less: a connection per query, a pool and sqlx's pool find the
    /// same users.
    #[tokio::test(flavor = "current_thread")]
    async fn every_strategy_finds_the_same_users() {
        let exp = PgPool::new();
        let ctx = harness::testing::set_up(&exp, &[("pg-pool.rows", "1500")]).await;
        let ids = exp.ids.get();
        let target = ctx.env.postgres().unwrap().clone();
        let sqlx_opened = Arc::new(AtomicU64::new(0));
        let strategies = [
            Conn::PerQuery { target: Box::new(target.clone()), opened: Arc::new(AtomicU64::new(0)) },
            Conn::Pooled(Arc::new(GoSqlPool::new(target.clone(), 5, 5))),
            Conn::Sqlx(guide_sqlx_pool(target.sqlx_options(), true, sqlx_opened.clone()).unwrap()),
        ];
        let mut found = Vec::new();
        for conn in strategies {
            let c = PoolClient { conn, ids: ids.clone(), rng: SplitMix64::new(1) };
            let mut n = Vec::new();
            for &id in ids.iter().take(25).chain([Uuid::nil()].iter()) {
                n.push(c.lookup(id).await.unwrap());
            }
            found.push(n);
        }
        assert_eq!(found[0], found[1]);
        assert_eq!(found[0], found[2]);
        assert_eq!(found[0].iter().sum::<usize>(), 25, "every live user once, the nil id never");
        assert!(sqlx_opened.load(Ordering::Relaxed) >= 1, "sqlx's connections are counted");
    }

    /// A lookup that takes 5 ms, so that every lookup of a burst overlaps the others.
    struct Slow(Arc<GoSqlPool>);

    impl Worker for Slow {
        async fn call(&mut self) -> Result<(), OpError> {
            self.0.query_typed("SELECT pg_sleep(0.005)", &[]).await.map(|_| ())
        }
    }

    /// Under the bursty load (12 lookups at once every 40 ms) a pool of 25 with all kept opens
    /// 12 connections once, while the guide's idle limit of 5 closes up to 7 after every burst
    /// and opens them again at the next: the counts the experiment reports, on a known input.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bursty_load_makes_the_idle_limit_act_and_the_counts_show_it() {
        let ctx = RunCtx::for_tests(true, false, &[]).await.unwrap();
        let target = ctx.env.postgres().unwrap().clone();
        let mut seen = Vec::new();
        for max_idle in [25, 5] {
            let pool = Arc::new(GoSqlPool::new(target.clone(), 25, max_idle));
            let config =
                LoadConfig::bursts(12, 12, Duration::from_millis(40), Duration::ZERO, Duration::from_millis(400));
            let p = pool.clone();
            let report = load::run(&config, &harness::resources::Probe::default(), move |_| {
                let p = p.clone();
                async move { Ok(Slow(p)) }
            })
            .await
            .unwrap();
            let ops = report.into_sample().latency.map_or(0, |l| l.count);
            assert!(ops >= 100, "about ten bursts of 12 measured: {ops}");
            seen.push(pool.stats());
        }
        assert_eq!((seen[0].opened, seen[0].idle_closed), (12, 0), "all kept: {:?}", seen[0]);
        let (opened, closed) = (seen[1].opened, seen[1].idle_closed);
        // Up to 7 a burst over about ten bursts; on a loaded machine a late burst's lookups may
        // not all overlap, so at least five bursts' worth.
        assert!(closed >= 7 * 5 && opened >= 12 + 7 * 5, "the idle limit closes up to 7 a burst: {:?}", seen[1]);
        assert_eq!(opened - closed, 5, "five stay open: {:?}", seen[1]);
    }
}

harness::quick_run_test!(PgPool::new(), "pg-pool.rows" = "2000");
