//! `pg-prepared`: a statement prepared once per connection and reused against the guide's
//! alternative, `db.QueryContext` on lib/pq, which prepares an unnamed statement and then
//! executes it (two round trips per query), on a primary-key lookup, a 3-way join and an
//! insert. Both claim variants go through sqlx, whose `persistent(false)` sends lib/pq's
//! messages and whose statement cache prepares on a connection's first use, as
//! database/sql's `Stmt` does on each pool connection.
//!
//! Beside them, tokio-postgres's three ways: `query_typed` (an unnamed statement in one round
//! trip, as pgx's exec mode sends it), a statement prepared once, and the simple-query
//! protocol. A check counts the round trips of each variant's query through a proxy that
//! delays every message, so no variant's description of itself goes unverified.
//!
//! Where `pg_stat_statements` is loaded, each sample also records how often the server
//! planned and how long planning took per call: the cost a prepared statement saves.

use anyhow::Context as _;
use harness::kit::fixtures::{load_policies_and_keys, setup_users};
use harness::load::{self, OpError, Worker};
use harness::provision::PgTarget;
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Case, Check, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample,
    Slot, Sweep, Trial, Variant,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const PK_SQL: &str = include_str!("../../../fixtures/sql/pg-prepared/pk_lookup.sql");
const JOIN_SQL: &str = include_str!("../../../fixtures/sql/pg-prepared/join3.sql");
const INSERT_SQL: &str = include_str!("../../../fixtures/sql/pg-prepared/insert.sql");
const SEED: u64 = 20_240_101;
const ID: &str = "pg-prepared";
const ROWS: Knob = Knob::users_rows(ID, 1_000, 100_000);

/// Each worker's inserts get their own range of usernames, across samples and runs.
static NEXT_INSERT_BLOCK: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
pub struct PgPrepared {
    ids: Slot<Arc<Vec<Uuid>>>,
    stat_statements: AtomicBool,
    /// The schema pg_stat_statements was created in (quoted where it must be).
    stat_schema: Slot<String>,
}

impl PgPrepared {
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// tokio-postgres `query_typed`: Parse, Bind, Execute, Sync of an unnamed statement.
    QueryTyped,
    /// tokio-postgres: prepared once per connection, then Bind, Execute, Sync.
    Prepared,
    Simple,
    /// sqlx: `persistent(false)` (true: its statement cache, the default).
    Sqlx {
        persistent: bool,
    },
}

impl Protocol {
    /// Round trips one query takes once the connection is warm: what the variant's description
    /// promises, and what the round-trip check holds it to.
    fn round_trips(self) -> u32 {
        match self {
            // lib/pq's sequence: Parse + Describe + Sync, wait; Bind + Execute + Sync, wait.
            Protocol::Sqlx { persistent: false } => 2,
            Protocol::QueryTyped | Protocol::Prepared | Protocol::Simple | Protocol::Sqlx { persistent: true } => 1,
        }
    }
}

impl Shape {
    /// The statement as its file has it (the leading comment is valid SQL and travels along).
    fn sql(self) -> &'static str {
        match self {
            Shape::PkLookup => PK_SQL,
            Shape::Join => JOIN_SQL,
            Shape::Insert => INSERT_SQL,
        }
    }
}

/// What a client does next, whichever driver sends it: a lookup of a random user, or an
/// insert of a fresh one.
struct Work {
    shape: Shape,
    ids: Arc<Vec<Uuid>>,
    rng: SplitMix64,
    /// Each worker's inserts get their own range of usernames.
    insert_base: u64,
    inserted: u64,
}

enum Op {
    Lookup(Uuid),
    Insert { id: Uuid, username: String, email: String },
}

impl Work {
    fn new(shape: Shape, ids: Arc<Vec<Uuid>>, worker: usize) -> Self {
        // Inserted rows need fresh keys in every sample: a block of names per worker, and a
        // generator seeded by it for the ids.
        let block = NEXT_INSERT_BLOCK.fetch_add(1, Ordering::Relaxed);
        let insert_base = (u64::from(std::process::id()) << 40) + (block << 24);
        let rng = SplitMix64::new(SEED ^ insert_base ^ worker as u64);
        Self { shape, ids, rng, insert_base, inserted: 0 }
    }

    fn next(&mut self) -> Op {
        match self.shape {
            Shape::PkLookup | Shape::Join => Op::Lookup(self.ids[self.rng.below(self.ids.len())]),
            Shape::Insert => {
                self.inserted += 1;
                let n = self.insert_base + self.inserted;
                let id = Uuid::from_u64_pair(self.rng.next_u64(), self.rng.next_u64());
                Op::Insert { id, username: format!("prep_{n}"), email: format!("prep_{n}@example.com") }
            }
        }
    }
}

struct Client3 {
    client: Client,
    protocol: Protocol,
    sql: &'static str,
    stmt: Option<Statement>,
    work: Work,
}

impl Client3 {
    /// Run the lookup or the join for `id` the variant's way; the rows it returned.
    async fn rows(&self, id: Uuid) -> Result<usize, OpError> {
        let err = |e: tokio_postgres::Error| OpError::from_error(&e);
        Ok(match self.protocol {
            Protocol::Prepared => {
                self.client.query(self.stmt.as_ref().expect("prepared"), &[&id]).await.map_err(err)?.len()
            }
            Protocol::QueryTyped => self.client.query_typed(self.sql, &[(&id, Type::UUID)]).await.map_err(err)?.len(),
            Protocol::Sqlx { .. } => unreachable!("sqlx variants run on SqlxClient"),
            Protocol::Simple => {
                // Only values the lab generates (uuids) are spliced in; never user input.
                let sql = self.sql.replace("$1", &format!("'{id}'"));
                let msgs = self.client.simple_query(&sql).await.map_err(err)?;
                msgs.iter().filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))).count()
            }
        })
    }
}

impl Worker for Client3 {
    async fn call(&mut self) -> Result<(), OpError> {
        let err = |e: tokio_postgres::Error| OpError::from_error(&e);
        match self.work.next() {
            Op::Lookup(id) => {
                if self.rows(id).await? == 0 {
                    return Err(OpError::new("no rows"));
                }
            }
            Op::Insert { id, username, email } => match self.protocol {
                Protocol::Prepared => {
                    let params: [&(dyn ToSql + Sync); 3] = [&id, &username, &email];
                    self.client.execute(self.stmt.as_ref().expect("prepared"), &params).await.map_err(err)?;
                }
                Protocol::QueryTyped => {
                    self.client
                        .query_typed(self.sql, &[(&id, Type::UUID), (&username, Type::TEXT), (&email, Type::TEXT)])
                        .await
                        .map_err(err)?;
                }
                Protocol::Sqlx { .. } => unreachable!("sqlx variants run on SqlxClient"),
                Protocol::Simple => {
                    let sql = self
                        .sql
                        .replace("$1", &format!("'{id}'"))
                        .replace("$2", &format!("'{username}'"))
                        .replace("$3", &format!("'{email}'"));
                    self.client.simple_query(&sql).await.map_err(err)?;
                }
            },
        }
        Ok(())
    }
}

/// A client of the sqlx variants: the same statements through a sqlx `PgConnection`.
struct SqlxClient {
    conn: sqlx::PgConnection,
    persistent: bool,
    work: Work,
}

impl SqlxClient {
    async fn rows(&mut self, id: Uuid) -> Result<usize, OpError> {
        let sql = self.work.shape.sql();
        let rows = sqlx::query(sql).bind(id).persistent(self.persistent).fetch_all(&mut self.conn).await;
        rows.map(|r| r.len()).map_err(|e| OpError::from_error(&e))
    }

    async fn call(&mut self) -> Result<(), OpError> {
        match self.work.next() {
            Op::Lookup(id) => {
                if self.rows(id).await? == 0 {
                    return Err(OpError::new("no rows"));
                }
            }
            Op::Insert { id, username, email } => {
                sqlx::query(INSERT_SQL)
                    .bind(id)
                    .bind(username)
                    .bind(email)
                    .persistent(self.persistent)
                    .execute(&mut self.conn)
                    .await
                    .map_err(|e| OpError::from_error(&e))?;
            }
        }
        Ok(())
    }
}

/// A client of `protocol`'s driver on its own connection, its statement prepared where the
/// protocol prepares up front (setup, outside the clock).
async fn client(pg: &PgTarget, protocol: Protocol, work: Work) -> anyhow::Result<AnyClient> {
    if let Protocol::Sqlx { persistent } = protocol {
        use sqlx::Connection as _;
        let conn = sqlx::PgConnection::connect_with(&pg.sqlx_options()).await?;
        return Ok(AnyClient::Sqlx(SqlxClient { conn, persistent, work }));
    }
    let client = pg.connect().await?;
    let sql = work.shape.sql();
    let stmt = if protocol == Protocol::Prepared { Some(client.prepare(sql).await?) } else { None };
    Ok(AnyClient::TokioPostgres(Client3 { client, protocol, sql, stmt, work }))
}

/// Added to every message each way by the round-trip check's proxy: a round trip costs twice
/// this, far above a loopback query's own time.
const PROXY_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// Round trips per query of `protocol` on `shape`, counted through a proxy that delays every
/// message by [`PROXY_DELAY`]: the shortest time of a few warm queries over the shortest time
/// of a simple-query `SELECT 1` through the same proxy (one round trip by definition, so the
/// timer's own overshoot cancels; noise only ever adds time, hence the minimum), unrounded
/// (a rounding error shows as a fraction).
async fn round_trips(pg: &PgTarget, protocol: Protocol, shape: Shape, ids: Arc<Vec<Uuid>>) -> anyhow::Result<f64> {
    let addr = tokio::net::lookup_host((pg.host.as_str(), pg.port))
        .await?
        .next()
        .context("the Postgres server's address does not resolve")?;
    let proxy = harness::faultproxy::FaultProxy::start(addr).await?;
    let via = pg.via(proxy.addr());
    let unit = via.connect().await?;
    let mut c = client(&via, protocol, Work::new(shape, ids, 0)).await?;
    // Warm: sqlx's statement cache prepares on first use, as database/sql's Stmt does.
    for _ in 0..2 {
        c.call().await.map_err(|e| anyhow::anyhow!("{protocol:?}: {e}"))?;
    }
    proxy.set_latency(PROXY_DELAY);
    let (mut one, mut times) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = std::time::Instant::now();
        unit.simple_query("SELECT 1").await?;
        one.push(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        c.call().await.map_err(|e| anyhow::anyhow!("{protocol:?}: {e}"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    let least = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(least(&times) / least(&one))
}

/// One client of either driver.
enum AnyClient {
    TokioPostgres(Client3),
    Sqlx(SqlxClient),
}

impl Worker for AnyClient {
    async fn call(&mut self) -> Result<(), OpError> {
        match self {
            AnyClient::TokioPostgres(c) => c.call().await,
            AnyClient::Sqlx(c) => c.call().await,
        }
    }
}

harness::table! {
    /// The cases: three query shapes.
    const CASES: [Case] = enum Shape {
        PkLookup => Case::new("pk-lookup", "SELECT of one user by primary key").tests_claim(),
        Join => Case::new("join-3", "a 3-way join: a user, their policies and access keys"),
        Insert => Case::new("insert", "INSERT of one user"),
    }
}

/// The variants: the claim's pair through sqlx (lib/pq's unprepared sequence, and a statement
/// prepared per connection as database/sql's `Stmt` is), then tokio-postgres's three ways.
const VARIANTS: [(Variant, Protocol); 5] = [
    (
        Variant::new(
            "unprepared",
            "the guide's alternative, db.QueryContext on lib/pq: Parse and Describe of the unnamed statement, Sync, wait; then Bind, Execute, Sync: two round trips per query (sqlx 0.8 with persistent(false) sends these messages)",
        ),
        Protocol::Sqlx { persistent: false },
    ),
    (
        Variant::new(
            "prepared",
            "the guide's db.Prepare: prepared on a connection's first use and reused there, one round trip per query (database/sql's Stmt prepares lazily on each pool connection; sqlx 0.8's statement cache, its default, does the same)",
        )
        .tests_claim(),
        Protocol::Sqlx { persistent: true },
    ),
    (
        Variant::baseline_of_group(
            "query-typed",
            "tokio-postgres query_typed: Parse, Bind, Execute and Sync of an unnamed statement with its parameter types given, one round trip and no Describe (lib/pq has no such path; pgx's exec mode has)",
        ),
        Protocol::QueryTyped,
    ),
    (
        Variant::new("tp-prepared", "tokio-postgres: prepared once per connection and reused, one round trip per query")
            .compared_with("query-typed"),
        Protocol::Prepared,
    ),
    (
        Variant::new(
            "simple",
            "tokio-postgres's simple-query protocol: the values spliced into the SQL text as literals, one round trip, no parameters",
        )
        .compared_with("query-typed"),
        Protocol::Simple,
    ),
];

/// The Go originals (go/inproc/pg_prepared_test.go): lib/pq itself through database/sql, the
/// claim's pair the sqlx variants above stand in for.
const GO_VARIANTS: [Variant; 2] = [
    Variant::baseline_of_group("go-unprepared", "Go original: db.QueryContext / db.ExecContext on lib/pq, which prepares an unnamed statement and then executes it")
        .in_go("PgPrepared/unprepared"),
    Variant::new("go-guide-prepared", "Go original: the guide's db.Prepare'd *sql.Stmt (prepared on every connection it runs on, before the clock for lookups)")
        .compared_with("go-unprepared")
        .in_go("PgPrepared/guide-prepared")
        .tests_claim(),
];

/// (plans, total planning ms, calls) of the lab's statements since the last reset.
/// `schema` holds the extension (on a server the run did not start, the run's own schema,
/// which is not on another build's search_path).
async fn planning(client: &Client, schema: &str) -> Result<(f64, f64, f64), tokio_postgres::Error> {
    let r = client
        .query_one(
            &format!("SELECT coalesce(sum(plans), 0)::float8, coalesce(sum(total_plan_time), 0)::float8, coalesce(sum(calls), 0)::float8 \
             FROM {schema}.pg_stat_statements WHERE query ILIKE '%users%' AND query NOT ILIKE '%pg_stat_statements%'"),
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

impl Experiment for PgPrepared {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Prepared statements vs unprepared vs the simple-query protocol",
            guide_section: "数据库优化 → 预编译语句优化 (NewPreparedStatements)",
            claim: "Prepared statements beat unprepared ones.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            cases: names_of(&CASES),
            // With more clients than cores the server's CPU is the limit: where the planning a
            // prepared statement saves counts most.
            sweep: Sweep::numeric("clients", "connections", &[1.0, 8.0], &[1.0]),
            primary_metric: load::throughput("queries/s", "statements completed per second"),
            metrics: vec![
                MetricInfo::new("latency_p50_us", "us", Better::Lower, "median latency"),
                MetricInfo::new(
                    "plans_per_call",
                    "plans",
                    Better::Lower,
                    "times the server planned per statement executed (pg_stat_statements)",
                ),
                MetricInfo::new(
                    "plan_time_us_per_call",
                    "us",
                    Better::Lower,
                    "server planning time per statement executed (pg_stat_statements)",
                ),
            ],
            needs: Needs::POSTGRES,
            targets: harness::targets::DB_QUERY,
            knobs: vec![ROWS],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let users = setup_users(ctx, ROWS.int_value(&ctx.settings)?, SEED, 50_000).await?;
            let client = users.client;
            client.batch_execute("DELETE FROM users WHERE username LIKE 'prep\\_%'").await?;
            load_policies_and_keys(&client, &users.info).await.context("loading policies and access keys")?;
            self.ids.set(users.ids);
            let preloaded: String =
                client.query_one("SELECT current_setting('shared_preload_libraries')", &[]).await?.get(0);
            let available = preloaded.contains("pg_stat_statements")
                && client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await.is_ok();
            if available {
                let schema: String = client
                    .query_one(
                        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'",
                        &[],
                    )
                    .await?
                    .get(0);
                self.stat_schema.set(schema);
            }
            self.stat_statements.store(available, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Round trips per query of every variant in every case: the claim's baseline must take
    /// lib/pq's two, every other variant one.
    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let pg = ctx.env.postgres()?;
            let ids = self.ids.get();
            let mut checks = Vec::new();
            for (case, shape) in &CASES {
                for (variant, protocol) in &VARIANTS {
                    let measured = round_trips(pg, *protocol, *shape, ids.clone()).await?;
                    let expected = protocol.round_trips();
                    let ok = (measured - f64::from(expected)).abs() < 0.3;
                    checks.push(
                        Check::verdict(
                            variant.name,
                            None,
                            "round_trips_per_query",
                            (measured * 100.0).round() / 100.0,
                            ok,
                            format!(
                                "round trips per warm query: its time through a proxy that delays each message by {} ms each way, over a simple-query SELECT 1's (expected {expected})",
                                PROXY_DELAY.as_millis()
                            ),
                        )
                        .in_case(case.name),
                    );
                }
            }
            {
                let admin = pg.connect().await?;
                admin.execute("DELETE FROM users WHERE username LIKE 'prep\\_%'", &[]).await?;
            }
            Ok(checks)
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        let mut notes = harness::notes!();
        if !self.stat_statements.load(Ordering::Relaxed) {
            notes.push("pg_stat_statements is not loaded on this server (it ships with postgresql-contrib and must be in shared_preload_libraries), so planning time was not recorded.".into());
        }
        notes
    }
}

impl Run for PgPrepared {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (protocol, shape) = (pick(&VARIANTS, at.variant)?, pick(&CASES, at.case)?);
            let ids = self.ids.get();
            let pg = ctx.env.postgres()?.clone();
            let stats = self.stat_statements.load(Ordering::Relaxed);
            let stat_schema = self.stat_schema.get();
            let admin = pg.connect().await?;
            if stats {
                admin.batch_execute(&format!("SELECT {stat_schema}.pg_stat_statements_reset()")).await?;
            }
            let clients = at.point.value as u32;
            let report = load::run(&ctx.settings.closed_loop(clients), &ctx.probe, move |i| {
                let (pg, ids) = (pg.clone(), ids.clone());
                async move { client(&pg, protocol, Work::new(shape, ids, i)).await }
            })
            .await?;
            let mut sample = report.into_sample();
            if stats {
                let (plans, plan_ms, calls) = planning(&admin, &stat_schema).await?;
                if calls > 0.0 {
                    sample.metrics.insert("plans_per_call".into(), plans / calls);
                    sample.metrics.insert("plan_time_us_per_call".into(), plan_ms * 1000.0 / calls);
                }
            }
            if shape == Shape::Insert {
                // Every insert sample starts from the same table: the rows a sample added go
                // before the next one, whichever variant runs next (VACUUM keeps the heap and
                // indexes from growing with dead rows either).
                let deleted = admin.execute("DELETE FROM users WHERE username LIKE 'prep\\_%'", &[]).await?;
                admin.batch_execute("VACUUM users").await?;
                sample.metrics.insert("rows_removed_after".into(), deleted as f64);
            }
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No protocol wins by doing less: for the same ids each returns the same rows, through
    /// tokio-postgres and through sqlx.
    #[tokio::test(flavor = "current_thread")]
    async fn every_protocol_returns_the_same_rows() {
        let exp = PgPrepared::new();
        let ctx = harness::testing::set_up(&exp, &[("pg-prepared.rows", "2000")]).await;
        let ids = exp.ids.get();
        for shape in [Shape::PkLookup, Shape::Join] {
            let mut counts = Vec::new();
            for protocol in [Protocol::QueryTyped, Protocol::Prepared, Protocol::Simple] {
                let client = ctx.env.postgres().unwrap().connect().await.unwrap();
                let stmt = if protocol == Protocol::Prepared {
                    Some(client.prepare(shape.sql()).await.unwrap())
                } else {
                    None
                };
                let c = Client3 { client, protocol, sql: shape.sql(), stmt, work: Work::new(shape, ids.clone(), 0) };
                let mut n = Vec::new();
                for &id in ids.iter().take(30) {
                    n.push(c.rows(id).await.unwrap());
                }
                counts.push(n);
            }
            for persistent in [false, true] {
                use sqlx::Connection as _;
                let conn = sqlx::PgConnection::connect_with(&ctx.env.postgres().unwrap().sqlx_options()).await.unwrap();
                let mut c = SqlxClient { conn, persistent, work: Work::new(shape, ids.clone(), 0) };
                let mut n = Vec::new();
                for &id in ids.iter().take(30) {
                    n.push(c.rows(id).await.unwrap());
                }
                counts.push(n);
            }
            assert!(counts[0].iter().sum::<usize>() > 0, "{shape:?} returns rows");
            assert!(counts.windows(2).all(|w| w[0] == w[1]), "{shape:?}: {counts:?}");
        }
    }

    /// Each variant takes the round trips its description promises (the claim's baseline
    /// lib/pq's two, every other one), on the lookup and on the insert: the check's numbers
    /// come from timing through the delaying proxy, so a variant that changed its messages
    /// would fail here.
    #[tokio::test(flavor = "current_thread")]
    async fn every_variant_takes_the_round_trips_it_names() {
        let exp = PgPrepared::new();
        let ctx = harness::testing::set_up(&exp, &[("pg-prepared.rows", "2000")]).await;
        let checks = exp.checks(&ctx).await.unwrap();
        assert_eq!(checks.len(), CASES.len() * VARIANTS.len(), "{checks:?}");
        for c in &checks {
            assert_eq!(c.ok, Some(true), "{c:?}");
        }
        let baseline = checks.iter().find(|c| c.variant == "unprepared").unwrap();
        assert!((baseline.value - 2.0).abs() < 0.3, "{baseline:?}");
    }
}

harness::quick_run_test!(PgPrepared::new(), "pg-prepared.rows" = "2000");
