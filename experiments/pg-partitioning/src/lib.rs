//! `pg-partitioning`: the guide's `audit_logs` as one table vs partitioned by month (its
//! `audit_logs_2024_01 PARTITION OF audit_logs …`), with 3, 12 and 36 months of data.
//!
//! Both tables hold the same rows (a check compares them at every size and after every
//! retired month is put back) and the guide's three indexes. Measured: a month's report (the
//! claim: one partition read whole against the rows of one table found through its index), a
//! one-week range report, a user's recent activity, inserts, and retiring the oldest month
//! (DELETE from the one table vs DROP TABLE of its partition), with the space each gives back.
//! Range bounds are parameters, both ends; the partitioned table runs with Postgres's own
//! choice of plan and, as variants of their own, with a custom plan forced (partitions
//! pruned when planning) and a generic plan forced (pruned when the executor starts).
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
    names_of, pick, BoxFuture, Case, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot,
    Sweep, SweepPoint, Trial, Variant,
};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const TABLE_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/audit_logs.sql");
const INDEXES_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/audit_logs_indexes.sql");
const WEEK_RANGE_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/week_range.sql");
const MONTH_REPORT_SQL: &str = include_str!("../../../fixtures/sql/pg-partitioning/month_report.sql");
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

/// A variant: a layout, and the plan_cache_mode its sessions run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    layout: Layout,
    /// `None`: Postgres's default (`auto`: custom plans for five executions, then a generic
    /// one if it costs no more).
    plan_cache_mode: Option<&'static str>,
}

impl Setup {
    /// What a session of this variant runs first: its table's schema, its plan mode.
    fn session_sql(self) -> String {
        let mode = self.plan_cache_mode.map_or(String::new(), |m| format!("; SET plan_cache_mode = {m}"));
        format!("SET search_path = {}{mode}", self.layout.schema())
    }
}

harness::table! {
    /// The cases: the month's report (the claim), the guide's reads, the insert, and retiring
    /// the oldest month.
    const CASES: [Case] = enum Op {
        MonthReport => Case::new("month-report", "one calendar month's entries counted by action and resource (single: the month's rows through the created_at index; partitioned: the one partition the bounds select, read whole)",) .tests_claim(),
        WeekRange => Case::new("week-range", "one week's entries counted by action (single: index on created_at; partitioned: pruned to the one or two months the week touches)",),
        UserRecent => Case::new("user-recent", "a user's 20 newest entries (single: index on user_id, created_at; partitioned: every partition's index probed and merged)",),
        /// A user's recent activity within the last 30 days: a bound the planner can prune by.
        UserRecent30d => Case::new("user-recent-30d", "a user's 20 newest entries of the last 30 days, the bounded form a service would send (partitioned: the bound prunes all but the newest one or two at run time, for the prepared statement's generic plan)",),
        Insert => Case::new("insert", "INSERT of one entry (partitioned: routed through the parent to the newest month)"),
        Retire => Case::new("retire-month", "retiring the oldest month: single DELETEs its rows (VACUUM timed apart: vacuum_ms); partitioned DROPs its partition (what DETACH PARTITION then DROP does in two steps)",),
    }
}

/// The variants: the same rows in one table and in monthly partitions, the partitions also
/// with each kind of plan forced.
const VARIANTS: [(Variant, Setup); 4] = [
    (
        Variant::new("single", "one audit_logs table, indexed as the guide indexes it"),
        Setup { layout: Layout::Single, plan_cache_mode: None },
    ),
    (
        Variant::new(
            "partitioned",
            "the same rows in monthly range partitions of created_at (the guide's 表分区), Postgres choosing custom or generic plans (plan_cache_mode auto)",
        )
        .compared_with("single")
        .tests_claim(),
        Setup { layout: Layout::Partitioned, plan_cache_mode: None },
    ),
    (
        Variant::new(
            "partitioned-custom",
            "the partitions with plan_cache_mode = force_custom_plan: planned for each statement's bounds, partitions pruned when planning (what lib/pq's unnamed statements get every time)",
        )
        .compared_with("single"),
        Setup { layout: Layout::Partitioned, plan_cache_mode: Some("force_custom_plan") },
    ),
    (
        Variant::new(
            "partitioned-generic",
            "the partitions with plan_cache_mode = force_generic_plan: one plan for every bound, partitions pruned when the executor starts (which locks every partition and its indexes per execution)",
        )
        .compared_with("single"),
        Setup { layout: Layout::Partitioned, plan_cache_mode: Some("force_generic_plan") },
    ),
];

/// Every layout (the plan modes share their layout's table).
const LAYOUTS: [Layout; 2] = [Layout::Single, Layout::Partitioned];

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
    notes: Slot<Vec<String>>,
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
        let mut checks = observe(&client, months, per_month, point).await.context("explaining the queries")?;
        let (one, parts) = (
            fingerprint(&client, &format!("{}.audit_logs", single()), None).await?,
            fingerprint(&client, &format!("{}.audit_logs", part()), None).await?,
        );
        checks.push(
            Check::verdict(
                "partitioned",
                Some(&point.label),
                "same rows as single",
                f64::from(u8::from(one == parts)),
                one == parts,
                format!("row count, id sum and row-hash sum of both tables after loading (single {one}, partitioned {parts}); retire-month checks the restored month the same way after every sample"),
            )
            .in_case("month-report"),
        );
        self.notes.push(format!("{months} months ({} rows): both tables built in {build_s:.1} s.", months * per_month));
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

/// A fingerprint of `table`'s rows (all, or those of the `[from, to)` microsecond range):
/// their count, the sum of their ids and the sum of a hash of every column, so that two tables
/// holding the same rows match and a lost, doubled or altered row shows.
async fn fingerprint(client: &Client, table: &str, range: Option<(i64, i64)>) -> anyhow::Result<String> {
    let filter = range.map_or(String::new(), |(from, to)| {
        format!(" WHERE created_at >= {} AND created_at < {}", literal_ts(from), literal_ts(to))
    });
    let sql = format!(
        "SELECT count(*)::text || '/' || coalesce(sum(id), 0)::text || '/' \
         || coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {table} t{filter}"
    );
    Ok(client.query_one(sql.as_str(), &[]).await?.get(0))
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

/// Plans of the reads for every variant (its table and plan mode), and the tables' sizes, at
/// `months` months.
async fn observe(client: &Client, months: i64, per_month: i64, point: &SweepPoint) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let label = Some(point.label.as_str());
    // A month and a week in the middle of the data, and a user who wrote entries.
    let ts = |us: i64| format!("{}::timestamptz", literal_ts(us));
    let middle = month_start_us(months / 2);
    let month = vec![ts(middle), ts(month_start_us(months / 2 + 1))];
    let week_start = middle + 10 * 86_400_000_000;
    let week = vec![ts(week_start), ts(week_start + 7 * 86_400_000_000)];
    let user = format!("'{}'::uuid", user_id(USERS / 2));
    let since = ts(month_start_us(months) - RECENT_WINDOW_US);
    for (v, setup) in &VARIANTS {
        let variant = v.name;
        client.batch_execute(&setup.session_sql()).await?;
        for (name, sql, params) in [
            ("month-report", MONTH_REPORT_SQL, month.clone()),
            ("week-range", WEEK_RANGE_SQL, week.clone()),
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
        client.batch_execute("RESET plan_cache_mode").await?;
    }
    for layout in LAYOUTS {
        let bytes = size_on_disk(client, layout).await?;
        let variant = if layout == Layout::Single { "single" } else { "partitioned" };
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
    /// The `[from, to)` bounds of the month or week reports, drawn before the clock.
    ranges: Vec<(SystemTime, SystemTime)>,
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
            Op::MonthReport | Op::WeekRange => {
                let (from, to) = &self.ranges[i];
                self.client.query(&self.stmt, &[from, to]).await.map_err(err)?;
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
    let stash = fingerprint(&ctx.env.postgres()?.connect().await?, &format!("{}.audit_stash", part()), None).await?;
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
    // Put the month back the same way in both layouts: its rows inserted, in time order,
    // through the table's existing indexes (the partitioned one gets its empty partition back
    // first, which inherits the parent's indexes), then what was inserted into vacuumed and
    // analysed (so that no autovacuum of it lands in a later sample of one layout only).
    let restore = match layout {
        Layout::Single => (
            format!("INSERT INTO {single}.audit_logs SELECT * FROM {part}.audit_stash ORDER BY created_at, id"),
            format!("VACUUM (ANALYZE) {single}.audit_logs"),
        ),
        Layout::Partitioned => (
            format!(
                "CREATE TABLE {part}.{month} PARTITION OF {part}.audit_logs FOR VALUES FROM ({from}) TO ({to}); \
                 INSERT INTO {part}.audit_logs SELECT * FROM {part}.audit_stash ORDER BY created_at, id",
                month = partition_name(0),
                from = literal_ts(month_start_us(0)),
                to = literal_ts(month_start_us(1)),
            ),
            format!("VACUUM (ANALYZE) {part}.{}", partition_name(0)),
        ),
    };
    // VACUUM cannot run inside the implicit transaction of a multi-statement batch.
    client.batch_execute(&restore.0).await.context("restoring the retired month")?;
    client.batch_execute(&restore.1).await.context("vacuuming the restored month")?;
    let restored =
        fingerprint(&client, &format!("{}.audit_logs", layout.schema()), Some((month_start_us(0), month_start_us(1))))
            .await?;
    anyhow::ensure!(
        restored == stash,
        "restoring the retired month into {} left other rows ({restored}) than were retired ({stash})",
        layout.schema()
    );
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
            self.notes.set(Vec::new());
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
        let mut notes = harness::notes!(
            per_month = params(ctx).map(|p| p.per_month).unwrap_or(0),
            users = USERS,
            seed = SEED,
            clients = ctx.settings.concurrency.unwrap_or(1),
        );
        notes.extend(self.notes.get());
        notes
    }
}

impl Run for PgPartitioning {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (op, setup) = (pick(&CASES, at.case)?, pick(&VARIANTS, at.variant)?);
            let layout = setup.layout;
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
                    client.batch_execute(&setup.session_sql()).await?;
                    let sql = match op {
                        Op::MonthReport => MONTH_REPORT_SQL,
                        Op::WeekRange => WEEK_RANGE_SQL,
                        Op::UserRecent => USER_RECENT_SQL,
                        Op::UserRecent30d => USER_RECENT_30D_SQL,
                        _ => INSERT_SQL,
                    };
                    let stmt = client.prepare(sql).await?;
                    // The same parameters for both layouts: worker i draws the same sequence.
                    let mut rng = SplitMix64::new(SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let ranges = (0..PARAMS_PER_WORKER)
                        .map(|_| match op {
                            Op::MonthReport => {
                                let m = rng.below(months as usize) as i64;
                                (system_time(month_start_us(m)), system_time(month_start_us(m + 1)))
                            }
                            _ => {
                                let from = first + (rng.next_u64() % (last - first) as u64) as i64;
                                (system_time(from), system_time(from + 7 * 86_400_000_000))
                            }
                        })
                        .collect();
                    let users = (0..PARAMS_PER_WORKER).map(|_| user_id(rng.below(USERS as usize) as u64)).collect();
                    let block = NEXT_INSERT_BLOCK.fetch_add(1, Ordering::Relaxed) as i64;
                    let id_base = INSERT_ID_BASE + (block << 24);
                    Ok(Logger {
                        client,
                        stmt,
                        op,
                        ranges,
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
mod tests;

harness::quick_run_test!(PgPartitioning::new(), "pg-partitioning.rows_per_month" = "500");
