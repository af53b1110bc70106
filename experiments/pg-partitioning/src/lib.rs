//! `pg-partitioning`: the guide's `audit_logs` as one table vs partitioned by month (its
//! `audit_logs_2024_01 PARTITION OF audit_logs …`), with 3, 12 and 36 months of data.
//!
//! Both tables hold the same rows and the guide's three indexes. Measured: a one-week range
//! report, a user's recent activity, inserts, and retiring the oldest month (DELETE from
//! the one table vs DROP TABLE of its partition), with the space each gives back.
//!
//! A variant picks its table with `search_path` (schemas `perflab_single`, `perflab_part`),
//! so both run the same SQL text. The tables are rebuilt when the sweep moves to a new
//! number of months.

use anyhow::Context as _;
use harness::kit::fixtures::copy_rows;
use harness::kit::plan;
use harness::load::{self, OpError, Worker};
use harness::results::{Better, Check, LatencySummary};
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Case, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Sweep,
    SweepPoint, Trial, Variant,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const TABLE_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/audit_logs.sql");
const INDEXES_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/audit_logs_indexes.sql");
const WEEK_RANGE_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/week_range.sql");
const USER_RECENT_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/user_recent.sql");
const USER_RECENT_30D_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/user_recent_30d.sql");
/// How far back the time-bounded activity query looks.
const RECENT_WINDOW_US: i64 = 30 * 86_400_000_000;
const INSERT_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/insert.sql");
const DELETE_MONTH_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/delete_month.sql");
const SEED: u64 = 20_240_101;

/// The one-table layout's schema: named for this process, so that two runs against one
/// external server never share it and a DBA can tell whose it is.
fn single() -> &'static str {
    &schemas().0
}

/// The partitioned layout's schema, named like `single()`.
fn part() -> &'static str {
    &schemas().1
}

fn schemas() -> &'static (String, String) {
    static NAMES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let pid = std::process::id();
        (format!("perflab_single_{pid}"), format!("perflab_part_{pid}"))
    })
}
/// Distinct users writing the log.
const USERS: u64 = 10_000;
/// Ids of inserted rows start here, far above the fixture's.
const INSERT_ID_BASE: i64 = 1 << 40;
const PARAMS_PER_WORKER: usize = 4096;

static NEXT_INSERT_BLOCK: AtomicU64 = AtomicU64::new(0);

mod data;
use data::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    WeekRange,
    UserRecent,
    /// A user's recent activity within the last 30 days: a bound the planner can prune by.
    UserRecent30d,
    Insert,
    Retire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Single,
    Partitioned,
}

impl Layout {
    fn schema(self) -> &'static str {
        match self {
            Layout::Single => single(),
            Layout::Partitioned => part(),
        }
    }
}

/// The cases: the guide's reads, the insert, and retiring the oldest month.
const CASES: [(Case, Op); 5] = [
    (
        Case::new(
            "week-range",
            "one week's entries counted by action (single: index on created_at; partitioned: pruned to the one or two months the week touches)",
        )
        .tests_claim(),
        Op::WeekRange,
    ),
    (
        Case::new(
            "user-recent",
            "a user's 20 newest entries (single: index on user_id, created_at; partitioned: every partition's index probed and merged)",
        ),
        Op::UserRecent,
    ),
    (
        Case::new(
            "user-recent-30d",
            "a user's 20 newest entries of the last 30 days, the bounded form a service would send (partitioned: the bound prunes all but the newest one or two at run time, for the prepared statement's generic plan)",
        ),
        Op::UserRecent30d,
    ),
    (
        Case::new("insert", "INSERT of one entry (partitioned: routed through the parent to the newest month)"),
        Op::Insert,
    ),
    (
        Case::new(
            "retire-month",
            "retiring the oldest month: single DELETEs its rows (VACUUM timed apart: vacuum_ms); partitioned DROPs its partition (what DETACH PARTITION then DROP does in two steps)",
        ),
        Op::Retire,
    ),
];

/// The variants: the same rows in one table and in monthly partitions.
const VARIANTS: [(Variant, Layout); 2] = [
    (Variant::new("single", "one audit_logs table, indexed as the guide indexes it"), Layout::Single),
    (
        Variant::new("partitioned", "the same rows in monthly range partitions of created_at (the guide's 表分区)")
            .compared_with("single")
            .tests_claim(),
        Layout::Partitioned,
    ),
];

impl Layout {
    fn name(self) -> &'static str {
        VARIANTS.iter().find(|(_, l)| *l == self).map_or("?", |(v, _)| v.name)
    }
}

struct Params {
    per_month: i64,
}

const ID: &str = "pg-partitioning";
const ROWS_PER_MONTH: Knob =
    Knob::int(ID, "rows_per_month", 100, 10_000_000, 50_000, "audit_logs entries per month of data").quick(10_000.0);

fn params(ctx: &RunCtx) -> anyhow::Result<Params> {
    Ok(Params { per_month: ROWS_PER_MONTH.int_value(&ctx.settings)? })
}

#[derive(Default)]
pub struct PgPartitioning {
    notes: Mutex<Vec<String>>,
}

impl PgPartitioning {
    pub fn new() -> Self {
        Self::default()
    }

    /// Build both tables with `months` months of data, then record plans and sizes there.
    async fn build_point(&self, ctx: &RunCtx, months: i64, point: &SweepPoint) -> anyhow::Result<Vec<Check>> {
        let per_month = params(ctx)?.per_month;
        let started = Instant::now();
        let client = ctx.env.postgres()?.connect().await?;
        build(&client, months, per_month).await.context("building audit_logs")?;
        let build_s = started.elapsed().as_secs_f64();
        let checks = observe(&client, months, per_month, point).await.context("explaining the queries")?;
        self.notes
            .lock()
            .expect("not poisoned")
            .push(format!("{months} months ({} rows): both tables built in {build_s:.1} s.", months * per_month));
        Ok(checks)
    }
}

/// Both tables with `months` months of `per_month` rows, the guide's indexes, and a stash of
/// the oldest month to put back after each retirement.
async fn build(client: &Client, months: i64, per_month: i64) -> anyhow::Result<()> {
    let (single, part) = (single(), part());
    let mut ddl = format!(
        "DROP SCHEMA IF EXISTS {single} CASCADE; DROP SCHEMA IF EXISTS {part} CASCADE; \
         CREATE SCHEMA {single}; CREATE SCHEMA {part}; SET search_path = {part}; {TABLE_SQL} PARTITION BY RANGE (created_at);"
    );
    for m in 0..months {
        ddl.push_str(&partition_ddl(m));
    }
    client.batch_execute(&ddl).await?;
    let mut gen = AuditGenerator::new(SEED, per_month);
    let copy = format!("COPY {part}.audit_logs (id, user_id, action, resource, details, created_at) FROM STDIN");
    copy_rows(client, &copy, (months * per_month) as u64, |buf| gen.next_row(buf)).await?;
    client
        .batch_execute(&format!(
            "SET search_path = {single}; {TABLE_SQL}; \
             INSERT INTO {single}.audit_logs SELECT * FROM {part}.audit_logs ORDER BY created_at, id; \
             ALTER TABLE {single}.audit_logs ADD PRIMARY KEY (id); {INDEXES_SQL} \
             SET search_path = {part}; ALTER TABLE {part}.audit_logs ADD PRIMARY KEY (id, created_at); {INDEXES_SQL} \
             CREATE TABLE {part}.audit_stash AS SELECT * FROM {part}.{oldest}; \
             RESET search_path;",
            oldest = partition_name(0)
        ))
        .await?;
    for schema in [single, part] {
        client.batch_execute(&format!("VACUUM (ANALYZE) {schema}.audit_logs")).await?;
    }
    Ok(())
}

fn partition_ddl(m: i64) -> String {
    let part = part();
    format!(
        "CREATE TABLE {part}.{} PARTITION OF {part}.audit_logs FOR VALUES FROM ({}) TO ({});",
        partition_name(m),
        literal_ts(month_start_us(m)),
        literal_ts(month_start_us(m + 1))
    )
}

/// Bytes on disk of a layout's table with its indexes (all partitions for the partitioned one).
async fn size_on_disk(client: &Client, layout: Layout) -> Result<f64, tokio_postgres::Error> {
    let table = format!("{}.audit_logs", layout.schema());
    let sql = match layout {
        Layout::Single => format!("SELECT pg_total_relation_size('{table}')::float8"),
        Layout::Partitioned => {
            format!("SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::float8 FROM pg_partition_tree('{table}')")
        }
    };
    Ok(client.query_one(sql.as_str(), &[]).await?.get(0))
}

/// Plans of both queries on both tables, and their sizes, at `months` months.
async fn observe(client: &Client, months: i64, per_month: i64, point: &SweepPoint) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let label = Some(point.label.as_str());
    // A week in the middle of the data, and a user who wrote entries.
    let week = literal_ts(month_start_us(months / 2) + 10 * 86_400_000_000);
    let user = format!("'{}'::uuid", user_id(USERS / 2));
    let since = format!("{}::timestamptz", literal_ts(month_start_us(months) - RECENT_WINDOW_US));
    let week = format!("{week}::timestamptz");
    for layout in [Layout::Single, Layout::Partitioned] {
        let variant = layout.name();
        client.batch_execute(&format!("SET search_path = {}", layout.schema())).await?;
        for (name, sql, params) in [
            ("week-range", WEEK_RANGE_SQL, vec![week.clone()]),
            ("user-recent", USER_RECENT_SQL, vec![user.clone()]),
            ("user-recent-30d", USER_RECENT_30D_SQL, vec![user.clone(), since.clone()]),
        ] {
            // The plan of the prepared statement as the workers time it, not a custom plan
            // for literals (which would prune partitions at planning time instead).
            let p = plan::explain_prepared(client, sql, &params).await?;
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "plan",
                    p.execution_ms,
                    "the plan Postgres runs for the prepared statement, as timed: EXPLAIN ANALYZE EXECUTE after five executions (when Postgres settles on a custom or generic plan), one representative parameter",
                )
                .with_text(p.nodes)
                .in_case(name),
            );
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "tables scanned",
                    p.relations_scanned as f64,
                    "tables or partitions the executor actually scanned for one query",
                )
                .in_case(name),
            );
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "rows scanned",
                    p.rows_scanned,
                    "rows the executor read for one query (rows out of scan nodes plus rows removed by filters)",
                )
                .in_case(name),
            );
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "buffers",
                    p.buffers,
                    "8 kB shared buffers hit or read for one query (EXPLAIN BUFFERS)",
                )
                .in_case(name),
            );
        }
        let bytes = size_on_disk(client, layout).await?;
        checks.push(
            Check::observation(
                variant,
                label,
                "on disk (MB)",
                bytes / 1e6,
                format!("table, partitions and indexes ({} rows)", months * per_month),
            )
            .in_case("insert"),
        );
    }
    client.batch_execute("RESET search_path").await?;
    Ok(checks)
}

/// One client sending one statement over and over to one layout.
struct Logger {
    client: Client,
    stmt: Statement,
    op: Op,
    weeks: Vec<SystemTime>,
    users: Vec<Uuid>,
    next: usize,
    rng: SplitMix64,
    id_base: i64,
    inserted: i64,
    newest_month: (i64, i64),
    /// The lower time bound of `UserRecent30d`: 30 days before the data ends.
    since: SystemTime,
}

impl Worker for Logger {
    async fn call(&mut self) -> Result<(), OpError> {
        let err = |e: tokio_postgres::Error| OpError::from_error(&e);
        let i = self.next;
        self.next = (self.next + 1) % PARAMS_PER_WORKER;
        match self.op {
            Op::WeekRange => {
                self.client.query(&self.stmt, &[&self.weeks[i]]).await.map_err(err)?;
            }
            Op::UserRecent => {
                self.client.query(&self.stmt, &[&self.users[i]]).await.map_err(err)?;
            }
            Op::UserRecent30d => {
                self.client.query(&self.stmt, &[&self.users[i], &self.since]).await.map_err(err)?;
            }
            Op::Insert => {
                self.inserted += 1;
                let id = self.id_base + self.inserted;
                let (start, end) = self.newest_month;
                let at = system_time(start + (self.rng.next_u64() % (end - start) as u64) as i64);
                let user = self.users[i];
                let action = action(self.rng.next_f64());
                let resource = "policy/1";
                let details = "{\"ip\":\"10.0.0.1\",\"agent\":\"svc/1.4\"}";
                let params: [&(dyn ToSql + Sync); 6] = [&id, &user, &action, &resource, &details, &at];
                self.client.execute(&self.stmt, &params).await.map_err(err)?;
            }
            Op::Retire => return Err(OpError::new("retirement is not a load")),
        }
        Ok(())
    }
}

/// Retire the oldest month once, timed, then put it back (untimed) so the next samples see
/// the same data.
async fn retire(ctx: &RunCtx, layout: Layout) -> anyhow::Result<Sample> {
    let (single, part) = (single(), part());
    let client = ctx.env.postgres()?.connect().await?;
    let (from, to) = (system_time(month_start_us(0)), system_time(month_start_us(1)));
    let before = size_on_disk(&client, layout).await?;
    let delete = if layout == Layout::Single {
        client.batch_execute(&format!("SET search_path = {single}")).await?;
        Some(client.prepare(DELETE_MONTH_SQL).await?)
    } else {
        None
    };
    let drop_sql = format!("DROP TABLE {part}.{}", partition_name(0));
    let snapshot = ctx.probe.begin();
    let started = Instant::now();
    let rows = match &delete {
        Some(stmt) => client.execute(stmt, &[&from, &to]).await?,
        None => {
            client.batch_execute(&drop_sql).await?;
            0
        }
    };
    let elapsed = started.elapsed();
    let resources = ctx.probe.end(&snapshot);
    let after = size_on_disk(&client, layout).await?;
    let mut vacuum_ms = 0.0;
    let mut after_vacuum = after;
    if layout == Layout::Single {
        let started = Instant::now();
        client.batch_execute(&format!("VACUUM {single}.audit_logs")).await?;
        vacuum_ms = started.elapsed().as_secs_f64() * 1000.0;
        after_vacuum = size_on_disk(&client, layout).await?;
    }
    // Put the month back.
    let restore = match layout {
        Layout::Single => {
            format!("INSERT INTO {single}.audit_logs SELECT * FROM {part}.audit_stash; ANALYZE {single}.audit_logs;")
        }
        // As the month was first made: rows loaded, then indexed, then attached (the parent's
        // indexes adopt the partition's matching ones instead of building them anew).
        Layout::Partitioned => format!(
            "SET search_path = {part}; CREATE TABLE {month} (LIKE audit_logs); \
             INSERT INTO {month} SELECT * FROM audit_stash ORDER BY created_at, id; \
             ALTER TABLE {month} ADD PRIMARY KEY (id, created_at); {indexes} \
             ALTER TABLE audit_logs ATTACH PARTITION {month} FOR VALUES FROM ({from}) TO ({to}); \
             ANALYZE {month}; RESET search_path;",
            month = partition_name(0),
            indexes = INDEXES_SQL
                .replace("ON audit_logs", &format!("ON {}", partition_name(0)))
                .replace("INDEX audit_logs_", &format!("INDEX {}_", partition_name(0))),
            from = literal_ts(month_start_us(0)),
            to = literal_ts(month_start_us(1)),
        ),
    };
    client.batch_execute(&restore).await.context("restoring the retired month")?;
    let us = elapsed.as_secs_f64() * 1e6;
    let mut sample = Sample::default();
    for (k, v) in [
        ("latency_p50_us", us),
        ("latency_p99_us", us),
        ("latency_mean_us", us),
        ("ops_per_sec", 1.0 / elapsed.as_secs_f64().max(1e-9)),
        ("ok", 1.0),
        ("errors", 0.0),
        ("error_rate", 0.0),
        ("rows_deleted", rows as f64),
        ("space_freed_mb", (before - after) / 1e6),
        ("vacuum_ms", vacuum_ms),
        ("space_freed_after_vacuum_mb", (before - after_vacuum) / 1e6),
    ] {
        sample.metrics.insert(k.into(), v);
    }
    sample.latency = Some(LatencySummary {
        count: 1,
        min_us: us,
        mean_us: us,
        max_us: us,
        percentiles_us: [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99].iter().map(|&p| (p, us)).collect(),
    });
    sample.resources = Some(resources);
    Ok(sample)
}

impl Experiment for PgPartitioning {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Monthly partitions of audit_logs vs one table",
            guide_section: "数据库优化 → 索引优化 (分区表: audit_logs_2024_01 PARTITION OF audit_logs)",
            claim: "Monthly partitions of audit_logs help time-series queries.",
            variants: names_of(&VARIANTS),
            cases: names_of(&CASES),
            sweep: Sweep::numeric("months of data", "months", &[3.0, 12.0, 36.0], &[12.0]),
            primary_metric: load::latency_p50("one statement (for retire-month: the time of the one DELETE or DROP)"),
            metrics: vec![
                load::latency_p99("one operation"),
                load::throughput("statements/s", "statements completed per second (for insert: the insert throughput)"),
                MetricInfo::new(
                    "space_freed_mb",
                    "MB",
                    Better::Higher,
                    "retire-month: disk space given back by the statement itself",
                ),
                MetricInfo::new(
                    "space_freed_after_vacuum_mb",
                    "MB",
                    Better::Higher,
                    "retire-month: disk space given back once VACUUM has run",
                ),
                MetricInfo::new(
                    "vacuum_ms",
                    "ms",
                    Better::Lower,
                    "retire-month: the VACUUM a DELETE leaves to do (0 for DROP)",
                ),
            ],
            needs: Needs::POSTGRES,
            targets: harness::targets::DB_QUERY,
            knobs: vec![ROWS_PER_MONTH],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            params(ctx)?;
            self.notes.lock().expect("not poisoned").clear();
            let pg = ctx.env.postgres()?;
            pg.connect().await?;
            // On an external server these two schemas sit beside the run's own: the run drops
            // them with its own when it ends, however it ends.
            harness::provision::drop_at_end(pg, single());
            harness::provision::drop_at_end(pg, part());
            Ok(())
        })
    }

    fn setup_point<'a>(&'a self, ctx: &'a RunCtx, point: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let months = point.value as i64;
            anyhow::ensure!((2..=240).contains(&months), "months of data must be within 2..=240, not {months}");
            self.build_point(ctx, months, point).await
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let client = ctx.env.postgres()?.connect().await?;
            let (single, part) = (single(), part());
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {single} CASCADE; DROP SCHEMA IF EXISTS {part} CASCADE"))
                .await?;
            Ok(Vec::new())
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let per_month = params(ctx).map(|p| p.per_month).unwrap_or(0);
        let mut notes = vec![
            format!(
                "Data: {per_month} entries per month from January 2024, spread evenly in time, by {USERS} users (seed {SEED}); both tables carry the guide's three indexes and a primary key — (id) on the one table, (id, created_at) on the partitioned one, since a unique key there must include the partition key."
            ),
            format!(
                "{} client(s), each with its own connection and its statement prepared once; weeks and users are drawn from a fixed seed, the same sequence for both layouts.",
                ctx.settings.concurrency.unwrap_or(1)
            ),
            "retire-month runs once per sample: the DELETE or DROP is timed alone; the DELETE's VACUUM is timed apart (vacuum_ms), and the month is put back afterwards, untimed. Space freed is measured on the table with its indexes (pg_total_relation_size).".into(),
            "Inserted rows are deleted and the table vacuumed after each insert sample.".into(),
            "user-recent has no time bound, as the guide's query has none: on the partitioned table every month's index is probed and the results merged. user-recent-30d adds the bound a service would send (the last 30 days), which lets Postgres skip the older partitions; for the prepared statement's generic plan it does so when the statement runs (the plan observation shows what ran).".into(),
        ];
        notes.extend(self.notes.lock().expect("not poisoned").iter().cloned());
        notes
    }
}

impl Run for PgPartitioning {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (op, layout) = (pick(&CASES, at.case)?, pick(&VARIANTS, at.variant)?);
            let point = at.point;
            let months = point.value as i64;
            if op == Op::Retire {
                return retire(ctx, layout).await;
            }
            let pg = ctx.env.postgres()?.clone();
            let clients = ctx.settings.concurrency.unwrap_or(1);
            let (first, last) = (month_start_us(0), month_start_us(months) - 7 * 86_400_000_000);
            let newest_month = (month_start_us(months - 1), month_start_us(months));
            let since = system_time(month_start_us(months) - RECENT_WINDOW_US);
            let report = load::run(&ctx.settings.closed_loop(clients), &ctx.probe, move |i| {
                let pg = pg.clone();
                async move {
                    let client = pg.connect().await?;
                    client.batch_execute(&format!("SET search_path = {}", layout.schema())).await?;
                    let sql = match op {
                        Op::WeekRange => WEEK_RANGE_SQL,
                        Op::UserRecent => USER_RECENT_SQL,
                        Op::UserRecent30d => USER_RECENT_30D_SQL,
                        _ => INSERT_SQL,
                    };
                    let stmt = client.prepare(sql).await?;
                    // The same parameters for both layouts: worker i draws the same sequence.
                    let mut rng = SplitMix64::new(SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let weeks = (0..PARAMS_PER_WORKER)
                        .map(|_| system_time(first + (rng.next_u64() % (last - first) as u64) as i64))
                        .collect();
                    let users = (0..PARAMS_PER_WORKER).map(|_| user_id(rng.below(USERS as usize) as u64)).collect();
                    let block = NEXT_INSERT_BLOCK.fetch_add(1, Ordering::Relaxed) as i64;
                    let id_base = INSERT_ID_BASE + (block << 24);
                    Ok(Logger {
                        client,
                        stmt,
                        op,
                        weeks,
                        users,
                        next: 0,
                        rng,
                        id_base,
                        inserted: 0,
                        newest_month,
                        since,
                    })
                }
            })
            .await?;
            if op == Op::Insert {
                // Back to the fixture's rows, so every sample sees the data it is labelled with.
                let client = ctx.env.postgres()?.connect().await?;
                let table = format!("{}.audit_logs", layout.schema());
                client.execute(&format!("DELETE FROM {table} WHERE id >= {INSERT_ID_BASE}"), &[]).await?;
                client.batch_execute(&format!("VACUUM {table}")).await?;
            }
            Ok(report.into_sample())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No layout wins by doing less: the one table and the partitions answer every query
    /// with the same rows.
    #[tokio::test(flavor = "current_thread")]
    async fn both_layouts_return_the_same_rows() {
        let ctx = RunCtx::for_tests(true, false, &[("pg-partitioning.rows_per_month", "400")]).await.unwrap();
        let exp = PgPartitioning::new();
        exp.setup(&ctx).await.unwrap();
        let months = 4;
        exp.setup_point(&ctx, &SweepPoint { label: months.to_string(), value: months as f64 }).await.unwrap();
        let client = ctx.env.postgres().unwrap().connect().await.unwrap();
        let (single, part) = (single(), part());
        let users: Vec<String> = client
            .query(&format!("SELECT DISTINCT user_id::text FROM {single}.audit_logs ORDER BY 1 LIMIT 5"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| format!("'{}'::uuid", r.get::<_, String>(0)))
            .collect();
        assert_eq!(users.len(), 5);
        let since = format!("{}::timestamptz", literal_ts(month_start_us(months) - RECENT_WINDOW_US));
        let mut nonempty = 0;
        for (u, user) in users.iter().enumerate() {
            let week = format!("{}::timestamptz", literal_ts(month_start_us(1) + u as i64 * 86_400_000_000));
            for (name, sql, params) in [
                ("week-range", WEEK_RANGE_SQL, vec![week]),
                ("user-recent", USER_RECENT_SQL, vec![user.clone()]),
                ("user-recent-30d", USER_RECENT_30D_SQL, vec![user.clone(), since.clone()]),
            ] {
                client.batch_execute(&format!("SET search_path = {single}")).await.unwrap();
                let single = plan::text_rows(&client, sql, &params).await.unwrap();
                client.batch_execute(&format!("SET search_path = {part}")).await.unwrap();
                let partitioned = plan::text_rows(&client, sql, &params).await.unwrap();
                assert_eq!(single, partitioned, "{name} for user {user}");
                nonempty += usize::from(!single.is_empty());
            }
        }
        assert!(nonempty >= 10, "the queries found rows ({nonempty} of 15 non-empty)");
        exp.checks(&ctx).await.unwrap();
    }

    #[test]
    fn month_boundaries_are_calendar_months() {
        assert_eq!(literal_ts(month_start_us(0)), "'2024-01-01 00:00:00.000000+00'");
        assert_eq!(literal_ts(month_start_us(2)), "'2024-03-01 00:00:00.000000+00'");
        assert_eq!(literal_ts(month_start_us(14)), "'2025-03-01 00:00:00.000000+00'");
        assert_eq!(partition_name(13), "audit_logs_2025_02");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn generator_stays_in_its_months_and_in_time_order() {
        let mut gen = AuditGenerator::new(SEED, 500);
        let mut out = String::new();
        for _ in 0..1500 {
            gen.next_row(&mut out);
        }
        let stamps: Vec<&str> = out.lines().map(|l| l.split('\t').nth(5).unwrap()).collect();
        assert_eq!(stamps.len(), 1500);
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
        assert!(stamps[0].starts_with("2024-01") && stamps[499].starts_with("2024-01"));
        assert!(stamps[500].starts_with("2024-02") && stamps[1499].starts_with("2024-03"));
        assert!(out.lines().all(|l| l.split('\t').count() == 6));
    }

    #[test]
    fn actions_cover_every_draw() {
        let total: f64 = ACTIONS.iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(action(0.0), "login");
        assert_eq!(action(0.999_999), "delete_key");
    }
}

#[cfg(test)]
mod quick_run {
    use harness::Experiment as _;

    /// The experiment runs end to end as `bench --quick` runs it (every case, variant and
    /// point, on servers of its own), with small data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_end_to_end_in_quick_mode() {
        let exp = super::PgPartitioning::new();
        let result = harness::testing::run_quick(&exp, &[("pg-partitioning.rows_per_month", "500")]).await.unwrap();
        harness::testing::assert_complete(&exp.meta(), &result);
    }
}
