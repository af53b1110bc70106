//! `pg-indexes`: the guide's secondary indexes on `users` (unique partial, composite, partial,
//! expression) against plain ones (username and email unique over every row, email as
//! stored, status alone) and against only the primary key, at three table sizes.
//!
//! Both sides of the trade-off: each of the guide's queries with and without the indexes
//! (latency, and the plan the workers' prepared statements run, from `EXPLAIN (ANALYZE,
//! BUFFERS) EXECUTE` after the executions that settle a generic plan), and the price
//! (insert latency and throughput, the indexes' size on disk).
//!
//! The indexed rows are the shared `users` fixture, in the run's schema (`public` on a server
//! the run started, a schema of its own on any other); the copies live in schemas beside it
//! (`perflab_noindex` and `perflab_plainindex`, or `<run schema>_noindex` and
//! `<run schema>_plainindex`), and a variant picks its table
//! with `search_path`, so both run the very same SQL text. The table is (re)built when the
//! sweep moves to a new size.

use anyhow::Context as _;
use harness::kit::fixtures::load_users;
use harness::kit::plan::{self, literal};
use harness::load::{self, OpError, Worker};
use harness::results::Check;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Case, Engine, Experiment, Meta, Needs, Run, RunCtx, Sample, Slot, Sweep, SweepPoint,
    Trial, Variant,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const BY_USERNAME_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/by_username.sql");
const BY_EMAIL_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/by_email_lower.sql");
const STATUS_RECENT_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/status_recent.sql");
const ACTIVE_USERNAMES_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/active_usernames.sql");
const INSERT_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/insert.sql");
const NO_INDEX_COPY_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/no_index_copy.sql");
const PLAIN_INDEX_COPY_SQL: &str = include_str!("../../../fixtures/sql/pg-indexes/plain_index_copy.sql");
const SEED: u64 = 20_240_101;
/// The copies' schemas beside `public`; beside a run schema, `<schema>_noindex` and
/// `<schema>_plainindex`.
const NO_INDEX_SCHEMA: &str = "perflab_noindex";
const PLAIN_INDEX_SCHEMA: &str = "perflab_plainindex";

/// Where the three tables live: the schema of the fixture (the guide's indexes), the one of
/// the copy with only the primary key, and the one of the copy with plain indexes.
#[derive(Debug, Clone)]
struct Schemas {
    guide: String,
    none: String,
    plain: String,
}

impl Schemas {
    /// The schemas for the connection's current schema.
    async fn of(client: &Client) -> anyhow::Result<Schemas> {
        let guide: String = client.query_one("SELECT current_schema()::text", &[]).await?.get(0);
        let beside = |fixed: &str, suffix: &str| {
            if guide == "public" {
                fixed.to_owned()
            } else {
                format!("{guide}_{suffix}")
            }
        };
        let (none, plain) = (beside(NO_INDEX_SCHEMA, "noindex"), beside(PLAIN_INDEX_SCHEMA, "plainindex"));
        Ok(Schemas { guide, none, plain })
    }

    /// The copies' SQL with their schemas put in.
    fn copy_sql(&self) -> String {
        let guide = format!("{}.users", ident(&self.guide));
        [(NO_INDEX_COPY_SQL, NO_INDEX_SCHEMA, &self.none), (PLAIN_INDEX_COPY_SQL, PLAIN_INDEX_SCHEMA, &self.plain)]
            .map(|(sql, fixed, schema)| sql.replace("public.users", &guide).replace(fixed, &ident(schema)))
            .join("\n")
    }

    /// Every copy's schema (the fixture's is the run's own).
    fn copies(&self) -> [&str; 2] {
        [&self.none, &self.plain]
    }
}

/// A quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
/// The indexes the guide's 索引优化 creates on `users` (fixtures/sql/users_indexes.sql).
const GUIDE_INDEXES: [&str; 7] = [
    "users_pkey",
    "users_username_key",
    "users_email_key",
    "users_status_created_at_idx",
    "users_created_at_idx",
    "users_active_username_idx",
    "users_email_lower_idx",
];
/// Parameters each worker draws before it is timed, cycled through while it is.
const PARAMS_PER_WORKER: usize = 4096;
const STATUSES: [&str; 3] = ["active", "inactive", "suspended"];

/// Each worker's inserts get their own block of usernames.
static NEXT_INSERT_BLOCK: AtomicU64 = AtomicU64::new(0);

harness::table! {
    /// The cases: the guide's queries, and the insert that pays for the indexes.
    const CASES: [Case] = enum Query {
        ByUsername => Case::new("by-username", "username = $1 (the guide's unique partial index users_username_key)").tests_claim(),
        ByEmailLower => Case::new("by-email-lower", "LOWER(email) = LOWER($1) (expression index users_email_lower_idx)"),
        StatusRecent => Case::new("status-recent", "the 20 newest users with a status (composite users_status_created_at_idx)"),
        ActiveUsernames => Case::new("active-usernames", "a page of 20 active usernames after a given one (partial users_active_username_idx)",),
        Insert => Case::new("insert", "INSERT of one user: every index of the table is updated too"),
    }
}

harness::table! {
    /// The variants: the same rows with only the primary key, with plain indexes, and with the
    /// guide's; the claim is the guide's refinements (partial, composite, expression) against
    /// plain indexes on the same columns.
    const VARIANTS: [Variant] = enum Table {
        NoIndex => Variant::new("none", "the table with only its primary key, which Postgres always creates"),
        Plain => Variant::new("plain", "the same rows with plain indexes: username and email unique over every row, email as stored (no LOWER), status alone (no composite, no separate created_at)",) .compared_with("none"),
        Guide => Variant::new("guide", "the same rows with the guide's seven indexes (unique partial, composite, partial, expression)") .compared_with("plain") .tests_claim(),
    }
}

impl Query {
    fn name(self) -> &'static str {
        CASES.iter().find(|(_, q)| *q == self).map_or("?", |(c, _)| c.name)
    }

    fn sql(self) -> &'static str {
        match self {
            Query::ByUsername => BY_USERNAME_SQL,
            Query::ByEmailLower => BY_EMAIL_SQL,
            Query::StatusRecent => STATUS_RECENT_SQL,
            Query::ActiveUsernames => ACTIVE_USERNAMES_SQL,
            Query::Insert => INSERT_SQL,
        }
    }

    /// The parameter of lookup number `i` in a table of `rows` fixture users (generator index
    /// `n`): existing names and addresses, the address in other capitals than stored.
    fn param(self, n: u64) -> String {
        match self {
            Query::ByUsername | Query::ActiveUsernames => format!("user_{n:08}"),
            Query::ByEmailLower => format!("USER{n}@EXAMPLE.COM"),
            Query::StatusRecent => STATUSES[(n % 3) as usize].to_owned(),
            Query::Insert => String::new(),
        }
    }
}

const TABLES: [Table; 3] = [Table::NoIndex, Table::Plain, Table::Guide];

impl Table {
    fn name(self) -> &'static str {
        VARIANTS.iter().find(|(_, t)| *t == self).map_or("?", |(v, _)| v.name)
    }

    fn search_path(self, s: &Schemas) -> String {
        ident(match self {
            Table::NoIndex => &s.none,
            Table::Plain => &s.plain,
            Table::Guide => &s.guide,
        })
    }

    fn qualified(self, s: &Schemas) -> String {
        format!("{}.users", self.search_path(s))
    }
}

#[derive(Default)]
pub struct PgIndexes {
    notes: Slot<Vec<String>>,
    /// Found in setup.
    schemas: Slot<Option<Schemas>>,
}

impl PgIndexes {
    pub fn new() -> Self {
        Self::default()
    }

    fn schemas(&self) -> anyhow::Result<Schemas> {
        self.schemas.get().context("setup has not run")
    }

    /// Make both tables hold exactly `rows` fixture users, then record plans and sizes there.
    async fn build(&self, ctx: &RunCtx, rows: i64, point: &SweepPoint) -> anyhow::Result<Vec<Check>> {
        let started = Instant::now();
        let client = ctx.env.postgres()?.connect().await?;
        let s = self.schemas()?;
        load_users(&client, rows, SEED).await.context("loading users")?;
        // The fixture may be shared: leave exactly the generator's rows and the guide's indexes.
        let guide = Table::Guide.qualified(&s);
        let foreign = client.execute(&format!("DELETE FROM {guide} WHERE username NOT LIKE 'user\\_%'"), &[]).await?;
        for row in client
            .query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $2 AND tablename = 'users' AND NOT indexname = ANY($1)",
                &[&GUIDE_INDEXES.as_slice(), &s.guide],
            )
            .await?
        {
            let index: String = row.get(0);
            client.batch_execute(&format!("DROP INDEX {}.{}", ident(&s.guide), ident(&index))).await?;
        }
        if foreign > 0 {
            client.batch_execute(&format!("VACUUM {guide}")).await?;
        }
        // The fixture is shared (other experiments insert into it and delete from it, which
        // VACUUM does not shrink out of its indexes): rebuilt, its indexes are as fresh as
        // the copies' are.
        client.batch_execute(&format!("REINDEX TABLE {guide}")).await?;
        client.batch_execute(&s.copy_sql()).await.context("copying users without indexes and with plain ones")?;
        for table in TABLES {
            client.batch_execute(&format!("VACUUM (ANALYZE) {}", table.qualified(&s))).await?;
        }
        let build_s = started.elapsed().as_secs_f64();
        let (checks, note) = observe(&client, &s, rows, point).await.context("explaining the queries")?;
        self.notes.push(format!("{rows} rows: tables built in {build_s:.1} s. {note}"));
        Ok(checks)
    }
}

/// One client sending one of the queries over and over to one of the tables.
struct Client1 {
    client: Client,
    stmt: Statement,
    query: Query,
    params: Vec<String>,
    next: usize,
    rng: SplitMix64,
    insert_base: u64,
    inserted: u64,
}

impl Worker for Client1 {
    async fn call(&mut self) -> Result<(), OpError> {
        let err = |e: tokio_postgres::Error| OpError::from_error(&e);
        if self.query == Query::Insert {
            self.inserted += 1;
            let n = self.insert_base + self.inserted;
            let id = Uuid::from_u64_pair(self.rng.next_u64(), self.rng.next_u64());
            let username = format!("ixins_{n}");
            let email = format!("ixins_{n}@example.com");
            let params: [&(dyn ToSql + Sync); 3] = [&id, &username, &email];
            self.client.execute(&self.stmt, &params).await.map_err(err)?;
        } else {
            let param = &self.params[self.next];
            self.next = (self.next + 1) % self.params.len();
            // A lookup of a soft-deleted user rightly finds nothing; every query is counted.
            self.client.query(&self.stmt, &[param]).await.map_err(err)?;
        }
        Ok(())
    }
}

/// The indexes a plan's node chain names (`… using <index>`), in order, or "none".
fn indexes_used(nodes: &str) -> String {
    let used: Vec<&str> =
        nodes.split(" › ").filter_map(|n| n.split_once(" using ").map(|(_, index)| index.trim())).collect();
    if used.is_empty() {
        "none".to_owned()
    } else {
        used.join(", ")
    }
}

/// Plans of every query on every table, and the sizes on disk, at `rows` rows.
async fn observe(client: &Client, s: &Schemas, rows: i64, point: &SweepPoint) -> anyhow::Result<(Vec<Check>, String)> {
    let mut checks = Vec::new();
    let label = Some(point.label.as_str());
    let middle = (rows / 2).max(0) as u64;
    for table in TABLES {
        client.batch_execute(&format!("SET search_path = {}", table.search_path(s))).await?;
        for query in CASES.map(|(_, q)| q).into_iter().filter(|q| *q != Query::Insert) {
            let param = if query == Query::StatusRecent { "inactive".to_owned() } else { query.param(middle) };
            // The plan the workers run: their statements are prepared once and executed over
            // and over, so Postgres may have settled on a generic plan.
            let p = plan::explain_prepared(client, query.sql(), &[literal(&param)]).await?;
            let variant = table.name();
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "plan",
                    p.execution_ms,
                    "the plan the workers' prepared statement runs, from the top (EXPLAIN ANALYZE EXECUTE after five executions, one representative parameter)",
                )
                .with_text(p.nodes.clone())
                .in_case(query.name()),
            );
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "index used",
                    p.relations_scanned as f64,
                    "the indexes that plan reads, along its first children (the value: the scan nodes it ran)",
                )
                .with_text(indexes_used(&p.nodes))
                .in_case(query.name()),
            );
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "rows scanned",
                    p.rows_scanned,
                    "rows the executor read for one query (rows out of scan nodes plus rows removed by filters)",
                )
                .in_case(query.name()),
            );
            checks.push(
                Check::observation(
                    variant,
                    label,
                    "buffers",
                    p.buffers,
                    "8 kB shared buffers hit or read for one query (EXPLAIN BUFFERS)",
                )
                .in_case(query.name()),
            );
        }
    }
    client.batch_execute("RESET search_path").await?;
    let mut note = String::new();
    for table in TABLES {
        let q = table.qualified(s);
        let r = client
            .query_one(
                "SELECT pg_table_size($1::text::regclass)::float8, pg_indexes_size($1::text::regclass)::float8",
                &[&q],
            )
            .await?;
        let (table_bytes, index_bytes): (f64, f64) = (r.get(0), r.get(1));
        let variant = table.name();
        let insert = Query::Insert.name();
        checks.push(
            Check::observation(
                variant,
                label,
                "indexes on disk (MB)",
                index_bytes / 1e6,
                "all indexes of the table the variant writes to (pg_indexes_size), before the inserts",
            )
            .in_case(insert),
        );
        checks.push(
            Check::observation(
                variant,
                label,
                "table on disk (MB)",
                table_bytes / 1e6,
                "the table itself (pg_table_size), before the inserts",
            )
            .in_case(insert),
        );
        if table == Table::Guide {
            let sizes = client
                .query(
                    "SELECT indexrelname::text, pg_relation_size(indexrelid)::float8 FROM pg_stat_user_indexes \
                     WHERE relid = $1::text::regclass ORDER BY indexrelname",
                    &[&q],
                )
                .await?;
            let each: Vec<String> =
                sizes.iter().map(|r| format!("{} {:.2} MB", r.get::<_, String>(0), r.get::<_, f64>(1) / 1e6)).collect();
            note = format!(
                "The guide's indexes take {:.2} MB beside a {:.2} MB table: {}.",
                index_bytes / 1e6,
                table_bytes / 1e6,
                each.join(", ")
            );
        }
    }
    Ok((checks, note))
}

impl Experiment for PgIndexes {
    fn meta(&self) -> Meta {
        Meta {
            id: "pg-indexes",
            title: "The guide's indexes: faster queries, slower inserts, space on disk",
            guide_section: "数据库优化 → 索引优化 (users: unique, composite, partial and expression indexes)",
            claim: "The guide's partial, composite and expression indexes speed up its queries.",
            variants: names_of(&VARIANTS),
            cases: names_of(&CASES),
            sweep: Sweep::numeric("table size", "rows", &[10_000.0, 100_000.0, 1_000_000.0], &[50_000.0]),
            primary_metric: load::latency_p50("one statement"),
            metrics: vec![
                load::latency_p99("one operation"),
                load::throughput("statements/s", "statements completed per second (for insert: the insert throughput)"),
            ],
            needs: Needs::POSTGRES,
            targets: harness::targets::DB_QUERY,
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // The tables are built per table size, when the sweep reaches it.
            self.notes.set(Vec::new());
            let pg = ctx.env.postgres()?;
            let s = Schemas::of(&pg.connect().await?).await?;
            for copy in s.copies() {
                harness::provision::drop_at_end(pg, copy);
            }
            self.schemas.set(Some(s));
            Ok(())
        })
    }

    fn setup_point<'a>(&'a self, ctx: &'a RunCtx, point: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let rows = point.value as i64;
            anyhow::ensure!(rows >= 100, "table size {rows} is too small: at least 100 rows");
            self.build(ctx, rows, point).await
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let client = pg_client(ctx).await?;
            for copy in self.schemas()?.copies() {
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(copy))).await?;
            }
            Ok(Vec::new())
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let mut notes = harness::notes!(seed = SEED, clients = ctx.settings.concurrency.unwrap_or(1));
        notes.extend(self.notes.get());
        notes
    }
}

impl Run for PgIndexes {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (query, table) = (pick(&CASES, at.case)?, pick(&VARIANTS, at.variant)?);
            let point = at.point;
            let rows = point.value as i64;
            let pg = ctx.env.postgres()?.clone();
            let s = self.schemas()?;
            let clients = ctx.settings.concurrency.unwrap_or(1);
            let search_path = table.search_path(&s);
            let report = load::run(&ctx.settings.closed_loop(clients), &ctx.probe, move |i| {
                let (pg, search_path) = (pg.clone(), search_path.clone());
                async move {
                    let client = pg.connect().await?;
                    client.batch_execute(&format!("SET search_path = {search_path}")).await?;
                    let stmt = client.prepare(query.sql()).await?;
                    let block = NEXT_INSERT_BLOCK.fetch_add(1, Ordering::Relaxed);
                    let insert_base = (u64::from(std::process::id()) << 40) + (block << 24);
                    // The same parameter sequence for both tables: worker i draws the same lookups.
                    let mut rng = SplitMix64::new(SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let params = if query == Query::Insert {
                        Vec::new()
                    } else {
                        (0..PARAMS_PER_WORKER).map(|_| query.param(rng.below(rows as usize) as u64)).collect()
                    };
                    Ok(Client1 { client, stmt, query, params, next: 0, rng, insert_base, inserted: 0 })
                }
            })
            .await?;
            if query == Query::Insert {
                // Back to the fixture's rows, so every sample sees the table size it is labelled with.
                let client = pg_client(ctx).await?;
                let table = table.qualified(&s);
                client.execute(&format!("DELETE FROM {table} WHERE username LIKE 'ixins\\_%'"), &[]).await?;
                client.batch_execute(&format!("VACUUM {table}")).await?;
            }
            Ok(report.into_sample())
        })
    }
}

async fn pg_client(ctx: &RunCtx) -> anyhow::Result<Client> {
    Ok(ctx.env.postgres()?.connect().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No table wins by doing less: with the guide's indexes, plain ones and none, every query
    /// returns the same rows.
    #[tokio::test(flavor = "current_thread")]
    async fn both_tables_return_the_same_rows() {
        let exp = PgIndexes::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        exp.setup_point(&ctx, &SweepPoint { label: "2000".into(), value: 2000.0 }).await.unwrap();
        let client = pg_client(&ctx).await.unwrap();
        let mut nonempty = 0;
        for query in CASES.map(|(_, q)| q).into_iter().filter(|q| *q != Query::Insert) {
            for n in [0u64, 3, 17, 250, 1999] {
                let literal = harness::kit::plan::literal(&query.param(n));
                let mut results = Vec::new();
                for table in TABLES {
                    let s = exp.schemas().unwrap();
                    client.batch_execute(&format!("SET search_path = {}", table.search_path(&s))).await.unwrap();
                    let rows = harness::kit::plan::text_rows(&client, query.sql(), std::slice::from_ref(&literal))
                        .await
                        .unwrap();
                    results.push(rows);
                }
                assert!(results.windows(2).all(|w| w[0] == w[1]), "{} with {}", query.name(), query.param(n));
                nonempty += usize::from(!results[0].is_empty());
            }
        }
        assert!(nonempty >= 12, "the lookups found rows ({nonempty} of 20 non-empty)");
    }

    /// The index-used check reads the plan the prepared statement runs and names only indexes
    /// of the variant's own table: none on the bare copy; a unique lookup by username uses an
    /// index on both indexed tables; the plain email index cannot serve LOWER(email).
    #[tokio::test(flavor = "current_thread")]
    async fn the_index_check_names_indexes_of_the_variants_own_table() {
        let exp = PgIndexes::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        let checks = exp.setup_point(&ctx, &SweepPoint { label: "3000".into(), value: 3000.0 }).await.unwrap();
        let used = |variant: &str, case: &str| {
            let c = checks.iter().find(|c| c.name == "index used" && c.variant == variant && c.case == case);
            c.and_then(|c| c.text.clone()).unwrap_or_else(|| panic!("{variant}/{case}: {checks:?}"))
        };
        const PLAIN: [&str; 4] = ["users_pkey", "users_username_plain", "users_email_plain", "users_status_plain"];
        for (case, q) in CASES.iter().filter(|(_, q)| *q != Query::Insert) {
            assert_eq!(used("none", case.name), "none", "{q:?}");
            for (variant, own) in [("plain", &PLAIN[..]), ("guide", &GUIDE_INDEXES[..])] {
                let u = used(variant, case.name);
                assert!(u == "none" || u.split(", ").all(|i| own.contains(&i)), "{variant}/{q:?}: {u}");
            }
        }
        assert_ne!(used("guide", "by-username"), "none");
        assert_ne!(used("plain", "by-username"), "none");
        assert_eq!(used("plain", "by-email-lower"), "none");
    }

    #[test]
    fn indexes_used_reads_the_node_chain() {
        assert_eq!(indexes_used("Limit › Index Scan using a_idx"), "a_idx");
        assert_eq!(indexes_used("Bitmap Heap Scan on users › Bitmap Index Scan using b"), "b");
        assert_eq!(indexes_used("Seq Scan on users"), "none");
    }

    #[test]
    fn lookups_ask_for_rows_the_generator_writes() {
        let mut out = String::new();
        let mut gen = harness::kit::fixtures::UsersGenerator::new(SEED);
        for _ in 0..4 {
            gen.next_row(&mut out);
        }
        let row3: Vec<&str> = out.lines().nth(3).unwrap().split('\t').collect();
        assert_eq!(row3[1], Query::ByUsername.param(3));
        assert_eq!(row3[2].to_lowercase(), Query::ByEmailLower.param(3).to_lowercase());
    }
}

harness::quick_run_test!(PgIndexes::new());
