//! `pg-pagination`: OFFSET/LIMIT, the guide's cursor as written, and a correct keyset.
//!
//! The guide's `ListUsers` pages with `created_at < $1`, its cursor being the last row's
//! `created_at` formatted as RFC 3339, i.e. truncated to whole seconds. With several rows per
//! second and ties on `created_at`, that skips rows at every page boundary. Besides latency
//! per page, a walk over the pages counts the rows each variant misses and repeats.

use anyhow::Context as _;
use harness::kit::fixtures::load_users;
use harness::load::{self, OpError, Worker};
use harness::results::{Better, Check};
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot, Sweep,
    SweepPoint, Trial, Variant,
};
use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const OFFSET_SQL: &str = include_str!("../../../fixtures/sql/pg-pagination/offset.sql");
const GUIDE_FIRST_SQL: &str = include_str!("../../../fixtures/sql/pg-pagination/guide_first.sql");
const GUIDE_NEXT_SQL: &str = include_str!("../../../fixtures/sql/pg-pagination/guide_next.sql");
const KEYSET_FIRST_SQL: &str = include_str!("../../../fixtures/sql/pg-pagination/keyset_first.sql");
const KEYSET_NEXT_SQL: &str = include_str!("../../../fixtures/sql/pg-pagination/keyset_next.sql");
const KEYSET_INDEX_SQL: &str = include_str!("../../../fixtures/sql/pg-pagination/keyset_index.sql");
const SEED: u64 = 20_240_101;

/// The last row of the previous page: what a client carries to ask for the next one.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    created_at: SystemTime,
    id: Uuid,
}

#[derive(Default)]
pub struct PgPagination {
    /// Cursor before page `depth`, by depth (setup fills it).
    cursors: Slot<HashMap<u64, Cursor>>,
    /// The correctness walk's checks, made in setup (the data never changes after it) and
    /// handed over with the first point's, so that a variant that misses rows is known before
    /// the rounds and the variant standing in for it gets the claim's rounds.
    walk: Slot<Vec<Check>>,
}

impl PgPagination {
    pub fn new() -> Self {
        Self::default()
    }
}

struct Params {
    rows: i64,
    page_size: i64,
    walk_pages: usize,
}

const ID: &str = "pg-pagination";
const ROWS: Knob = Knob::users_rows(ID, 1_000, 1_000_000).quick(100_000.0);
const PAGE_SIZE: Knob = Knob::int(ID, "page_size", 1, 10_000, 20, "rows per page");
const WALK_PAGES: Knob = Knob::int(ID, "walk_pages", 1, 1_000_000, 2_000, "pages of the correctness walk").quick(300.0);

fn params(ctx: &RunCtx) -> anyhow::Result<Params> {
    let s = &ctx.settings;
    Ok(Params { rows: ROWS.int_value(s)?, page_size: PAGE_SIZE.int_value(s)?, walk_pages: WALK_PAGES.count(s)? })
}

/// RFC 3339 with whole seconds, as Go's `time.Format(time.RFC3339)` writes a UTC time.
fn rfc3339_seconds(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    harness::provenance::rfc3339(secs)
}

/// One client paging through `users`: for a variant, its statements and the cursor for the
/// page it fetches.
struct Pager {
    client: Client,
    first: Statement,
    next: Statement,
    variant: Kind,
    page_size: i64,
    depth: u64,
    cursor: Option<Cursor>,
    /// The guide's cursor string, formatted once per page as its client would.
    guide_cursor: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Offset,
    KeysetGuide,
    Keyset,
}

/// The variants, declared once: names, descriptions and what each stands for.
const VARIANTS: [(Variant, Kind); 3] = [
    (Variant::new("offset", "ORDER BY created_at DESC, id DESC LIMIT n OFFSET (depth-1)·n"), Kind::Offset),
    (
        Variant::new(
            "keyset-guide",
            "the guide's code as written: WHERE created_at < cursor, the cursor formatted as RFC 3339 (whole seconds)",
        )
        .tests_claim(),
        Kind::KeysetGuide,
    ),
    (
        Variant::new(
            "keyset",
            "keyset on (created_at, id): WHERE (created_at, id) < (cursor) with an index on (created_at DESC, id DESC)",
        ),
        Kind::Keyset,
    ),
];

/// A variant's statements: for its first page and for the pages after a cursor (the same
/// one for OFFSET).
async fn statements(client: &Client, kind: Kind) -> Result<(Statement, Statement), tokio_postgres::Error> {
    let (first, next) = match kind {
        Kind::Offset => (OFFSET_SQL, OFFSET_SQL),
        Kind::KeysetGuide => (GUIDE_FIRST_SQL, GUIDE_NEXT_SQL),
        Kind::Keyset => (KEYSET_FIRST_SQL, KEYSET_NEXT_SQL),
    };
    let first = client.prepare(first).await?;
    let next = if kind == Kind::Offset { first.clone() } else { client.prepare(next).await? };
    Ok((first, next))
}

impl Pager {
    async fn new(
        client: Client,
        variant: Kind,
        page_size: i64,
        depth: u64,
        cursor: Option<Cursor>,
    ) -> anyhow::Result<Self> {
        let (first, next) = statements(&client, variant).await?;
        let guide_cursor = cursor.map(|c| rfc3339_seconds(c.created_at)).unwrap_or_default();
        Ok(Self { client, first, next, variant, page_size, depth, cursor, guide_cursor })
    }

    /// Fetch the page after `cursor` (or page `depth` for OFFSET).
    async fn page(&self) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        match (self.variant, &self.cursor) {
            (Kind::Offset, _) => {
                let offset = (self.depth as i64 - 1) * self.page_size;
                self.client.query(&self.first, &[&self.page_size, &offset]).await
            }
            (_, None) => self.client.query(&self.first, &[&self.page_size]).await,
            (Kind::KeysetGuide, Some(_)) => self.client.query(&self.next, &[&self.guide_cursor, &self.page_size]).await,
            (Kind::Keyset, Some(c)) => self.client.query(&self.next, &[&c.created_at, &c.id, &self.page_size]).await,
        }
    }
}

impl Worker for Pager {
    async fn call(&mut self) -> Result<(), OpError> {
        match self.page().await {
            Ok(rows) if rows.is_empty() => Err(OpError::new("empty page")),
            Ok(_) => Ok(()),
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

impl Experiment for PgPagination {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Pagination: OFFSET vs the guide's cursor vs keyset",
            guide_section: "数据库优化 → 查询优化 (ListUsers: 使用游标分页而不是OFFSET)",
            claim: "Cursor (keyset) pagination beats OFFSET/LIMIT.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("page depth", "", &[1.0, 10.0, 100.0, 1000.0, 10000.0], &[1.0, 100.0, 1000.0]),
            primary_metric: load::latency_p50("fetching one page at that depth"),
            metrics: vec![
                MetricInfo::new("latency_p99_us", "us", Better::Lower, "99th percentile page latency"),
                load::throughput("pages/s", "pages fetched per second"),
            ],
            needs: Needs::POSTGRES,
            targets: harness::targets::DB_QUERY,
            knobs: vec![ROWS, PAGE_SIZE, WALK_PAGES],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let p = params(ctx)?;
            let client = ctx.env.postgres()?.connect().await?;
            load_users(&client, p.rows, SEED).await.context("loading users")?;
            client.batch_execute(KEYSET_INDEX_SQL).await?;
            client.batch_execute("ANALYZE users").await?;
            let live: i64 = client.query_one("SELECT count(*) FROM users WHERE deleted_at IS NULL", &[]).await?.get(0);
            let meta = self.meta();
            let depths = ctx.settings.points(&meta.sweep);
            let mut cursors = HashMap::new();
            for d in depths {
                let depth = d.value as u64;
                if depth <= 1 {
                    continue;
                }
                let before = (depth as i64 - 1) * p.page_size;
                anyhow::ensure!(
                    before < live,
                    "page depth {depth} × page size {} needs more than the {live} live rows: raise --set pg-pagination.rows",
                    p.page_size
                );
                let row = client
                    .query_one(
                        "SELECT created_at, id FROM users WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
                        &[&(before - 1)],
                    )
                    .await?;
                cursors.insert(depth, Cursor { created_at: row.get(0), id: row.get(1) });
            }
            self.cursors.set(cursors);
            self.walk.set(correctness_walk(&client, p.page_size, p.walk_pages).await?);
            Ok(())
        })
    }

    fn setup_point<'a>(
        &'a self,
        _ctx: &'a RunCtx,
        _point: &'a SweepPoint,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move { Ok(self.walk.take()) })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let p = params(ctx)?;
            let client = ctx.env.postgres()?.connect().await?;
            let mut checks = Vec::new();
            // Plans: rows the executor touched and buffers read per page, once per variant and depth.
            let cursors = self.cursors.get();
            for point in ctx.settings.points(&self.meta().sweep) {
                let depth = point.value as u64;
                for kind in [Kind::Offset, Kind::KeysetGuide, Kind::Keyset] {
                    let (sql, params): (&str, Vec<String>) =
                        explain_query(kind, depth, p.page_size, cursors.get(&depth));
                    let plan = harness::kit::plan::explain(&client, sql, &params).await?;
                    let (name, label) = (variant_name(kind), Some(point.label.as_str()));
                    checks.push(Check::observation(name, label, "rows scanned", plan.rows_scanned, "rows the executor read to return one page (EXPLAIN ANALYZE: rows out of scan nodes plus rows removed by filters)"));
                    checks.push(Check::observation(
                        name,
                        label,
                        "buffers",
                        plan.buffers,
                        "8 kB shared buffers hit or read to return one page (EXPLAIN BUFFERS)",
                    ));
                    checks.push(
                        Check::observation(
                            name,
                            label,
                            "plan",
                            plan.execution_ms,
                            "the plan's nodes from the top (EXPLAIN ANALYZE)",
                        )
                        .with_text(plan.nodes),
                    );
                }
            }
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let p = params(ctx).ok();
        harness::notes!(
            rows = p.as_ref().map(|p| p.rows).unwrap_or(0),
            seed = SEED,
            page_size = p.as_ref().map(|p| p.page_size).unwrap_or(20),
            clients = ctx.settings.concurrency.unwrap_or(1),
        )
    }
}

impl Run for PgPagination {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let p = params(ctx)?;
            let kind = pick(&VARIANTS, variant)?;
            let depth = point.value as u64;
            let cursor = self.cursors.lock().get(&depth).copied();
            let pg = ctx.env.postgres()?.clone();
            let concurrency = ctx.settings.concurrency.unwrap_or(1);
            let page_size = p.page_size;
            let report = load::run(&ctx.settings.closed_loop(concurrency), &ctx.probe, move |_| {
                let pg = pg.clone();
                async move { Pager::new(pg.connect().await?, kind, page_size, depth, cursor).await }
            })
            .await?;
            Ok(report.into_sample())
        })
    }
}

fn variant_name(kind: Kind) -> &'static str {
    VARIANTS.iter().find(|(_, k)| *k == kind).map_or("?", |(v, _)| v.name)
}

/// The query a variant sends for page `depth`, with its parameters as SQL literals (for EXPLAIN).
fn explain_query(kind: Kind, depth: u64, page_size: i64, cursor: Option<&Cursor>) -> (&'static str, Vec<String>) {
    let ts = |c: &Cursor| {
        let d = c.created_at.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("to_timestamp({}.{:06})", d.as_secs(), d.subsec_micros())
    };
    match (kind, cursor) {
        (Kind::Offset, _) => (OFFSET_SQL, vec![page_size.to_string(), ((depth as i64 - 1) * page_size).to_string()]),
        (Kind::KeysetGuide, None) => (GUIDE_FIRST_SQL, vec![page_size.to_string()]),
        (Kind::Keyset, None) => (KEYSET_FIRST_SQL, vec![page_size.to_string()]),
        (Kind::KeysetGuide, Some(c)) => {
            (GUIDE_NEXT_SQL, vec![format!("'{}'", rfc3339_seconds(c.created_at)), page_size.to_string()])
        }
        (Kind::Keyset, Some(c)) => (KEYSET_NEXT_SQL, vec![ts(c), format!("'{}'::uuid", c.id), page_size.to_string()]),
    }
}

/// Walk `pages` pages from the start with each variant, as a client following its cursors
/// would, and count the rows missed and repeated against the true order.
async fn correctness_walk(client: &Client, page_size: i64, pages: usize) -> anyhow::Result<Vec<Check>> {
    // The true order, long enough to cover what a variant that skips rows walks past.
    let horizon = (pages as i64 * page_size * 3).max(page_size);
    let truth: Vec<Uuid> = client
        .query("SELECT id FROM users WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $1", &[&horizon])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let position: HashMap<Uuid, usize> = truth.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut checks = Vec::new();
    for kind in [Kind::Offset, Kind::KeysetGuide, Kind::Keyset] {
        let conn = client; // one connection walks all variants in turn
        let (first, next) = statements(conn, kind).await?;
        let mut seen: Vec<Uuid> = Vec::with_capacity(pages * page_size as usize);
        let mut cursor: Option<Cursor> = None;
        let mut walked = 0;
        for page in 0..pages {
            let rows = match (kind, &cursor) {
                (Kind::Offset, _) => conn.query(&first, &[&page_size, &(page as i64 * page_size)]).await?,
                (_, None) => conn.query(&first, &[&page_size]).await?,
                (Kind::KeysetGuide, Some(c)) => {
                    conn.query(&next, &[&rfc3339_seconds(c.created_at), &page_size]).await?
                }
                (Kind::Keyset, Some(c)) => conn.query(&next, &[&c.created_at, &c.id, &page_size]).await?,
            };
            walked += 1;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                seen.push(r.get(0));
            }
            let last = rows.last().expect("non-empty");
            cursor = Some(Cursor { created_at: last.get(3), id: last.get(0) });
            // The guide's client stops when a page is short; so does everyone here.
            if (rows.len() as i64) < page_size {
                break;
            }
        }
        let distinct: HashSet<Uuid> = seen.iter().copied().collect();
        let duplicated = seen.len() - distinct.len();
        let reached = seen.iter().filter_map(|id| position.get(id)).max().map(|p| p + 1).unwrap_or(0);
        let missed = truth[..reached.min(truth.len())].iter().filter(|id| !distinct.contains(id)).count();
        let name = variant_name(kind);
        checks.push(Check::verdict(
            name,
            None,
            "rows missed",
            missed as f64,
            missed == 0,
            format!(
                "walking {walked} pages of {page_size} from the start returned {} rows; {missed} of the first {reached} rows in (created_at, id) order never appeared",
                seen.len()
            ),
        ));
        checks.push(Check::verdict(
            name,
            None,
            "rows duplicated",
            duplicated as f64,
            duplicated == 0,
            format!("rows returned more than once over the same {walked} pages"),
        ));
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every variant returns a full page at every depth, and the two correct ones the same
    /// rows (the guide's cursor is the flaw on trial: its pages are checked by the walk).
    #[tokio::test(flavor = "current_thread")]
    async fn every_variant_returns_a_full_page_and_the_correct_ones_the_same_rows() {
        let exp = PgPagination::new();
        let ctx = harness::testing::set_up(&exp, &[("pg-pagination.rows", "30000")]).await;
        let p = params(&ctx).unwrap();
        let mut depths: Vec<(u64, Option<Cursor>)> = exp.cursors.lock().iter().map(|(&d, &c)| (d, Some(c))).collect();
        depths.push((1, None));
        assert!(depths.len() >= 2);
        for (depth, cursor) in depths {
            let mut pages: HashMap<Kind, Vec<Uuid>> = HashMap::new();
            for kind in [Kind::Offset, Kind::KeysetGuide, Kind::Keyset] {
                let client = ctx.env.postgres().unwrap().connect().await.unwrap();
                let pager = Pager::new(client, kind, p.page_size, depth, cursor).await.unwrap();
                let ids: Vec<Uuid> = pager.page().await.unwrap().iter().map(|r| r.get(0)).collect();
                assert_eq!(ids.len() as i64, p.page_size, "{kind:?} at depth {depth}");
                pages.insert(kind, ids);
            }
            assert_eq!(pages[&Kind::Offset], pages[&Kind::Keyset], "offset and keyset at depth {depth}");
        }
    }

    #[test]
    fn guide_cursor_truncates_to_whole_seconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_704_067_205_750_000);
        assert_eq!(rfc3339_seconds(t), "2024-01-01T00:00:05Z");
    }
}

harness::quick_run_test!(PgPagination::new(), "pg-pagination.rows" = "30000", "pg-pagination.walk_pages" = "50");
