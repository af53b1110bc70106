//! `pg-batch`: N+1 single-row queries, the same N queries through the guide's worker pool
//! (ProcessUsersBatch: 10 workers, a queue of 100; the one model in `harness::kit::workerpool` that
//! worker-pool also runs), and one `WHERE id = ANY($1)` query.
//!
//! Every variant runs on the same kind of connection pool (25 open, 25 idle, filled and with
//! its statements prepared before the clock), so they differ in round trips and concurrency
//! alone. The time of a batch is mostly round trips: the first two send N queries, the last
//! one. The metrics say so beside the time (`queries_per_batch`), so a reader sees why.

use harness::kit::fixtures::setup_users;
use harness::kit::pgpool::GoSqlPool;
use harness::kit::workerpool::{process_batch, GUIDE_QUEUE, GUIDE_WORKERS};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot, Sweep,
    Trial, Variant,
};
use std::sync::Arc;
use uuid::Uuid;

const GET_BY_ID_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_id.sql");
const GET_BY_IDS_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_ids.sql");
const SEED: u64 = 20_240_101;
const ID_POOL: i64 = 100_000;
const ID: &str = "pg-batch";
const ROWS: Knob = Knob::users_rows(ID, 2_000, 1_000_000).quick(100_000.0);
/// The pool every variant runs on: the guide's MaxOpenConns, with every connection kept.
const POOL_SIZE: usize = 25;

#[derive(Default)]
pub struct PgBatch {
    ids: Slot<Arc<Vec<Uuid>>>,
}

impl PgBatch {
    pub fn new() -> Self {
        Self::default()
    }
}

harness::table! {
    /// The variants, declared once: names, descriptions and what each stands for.
    const VARIANTS: [Variant] = enum Kind {
        NPlusOne => Variant::new("n-plus-one", "N prepared single-row queries (the guide's GetByID), one after another on one connection"),
        Concurrent => Variant::new("worker-pool", "the same N queries through the guide's ProcessUsersBatch: 10 workers fed by a queue of 100, on the shared pool"),
        Any => Variant::new("any", "one prepared query: WHERE id = ANY($1) (the guide's GetUsersByIDs)").tests_claim(),
    }
}

/// The Go originals (go/inproc/worker_pool.go, pg_batch_test.go): the guide's GetByID through
/// its prepared statement N times, the guide's ProcessUsersBatch, and the guide's
/// GetUsersByIDs as printed (db.QueryContext with pq.Array: unprepared), on database/sql and
/// lib/pq, a pool of 25 filled before the clock.
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group("go-n-plus-one", "Go original: N lookups through the guide's prepared getUserByID (*sql.Stmt), one after another")
        .in_go("PgBatch/n-plus-one"),
    Variant::new("go-guide-worker-pool", "Go original: the same N lookups through the guide's ProcessUsersBatch (10 workers, a queue of 100)")
        .compared_with("go-n-plus-one")
        .in_go("PgBatch/guide-worker-pool"),
    Variant::new("go-guide-any", "Go original: the guide's GetUsersByIDs as printed: db.QueryContext(… = ANY($1) …, pq.Array(ids)), unprepared, as lib/pq sends it")
        .compared_with("go-n-plus-one")
        .in_go("PgBatch/guide-any")
        .tests_claim(),
];

impl Kind {
    /// Connections a batch uses at once.
    fn connections(self) -> usize {
        if self == Kind::Concurrent {
            GUIDE_WORKERS
        } else {
            1
        }
    }
}

struct Batcher {
    kind: Kind,
    pool: Arc<GoSqlPool>,
    ids: Arc<Vec<Uuid>>,
    batch: usize,
    rng: SplitMix64,
}

impl Batcher {
    async fn new(
        pg: harness::provision::PgTarget,
        kind: Kind,
        ids: Arc<Vec<Uuid>>,
        batch: usize,
        seed: u64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(ids.len() > batch, "only {} user ids for batches of {batch}", ids.len());
        let pool = Arc::new(GoSqlPool::new(pg, POOL_SIZE, POOL_SIZE));
        pool.warm(kind.connections(), &[GET_BY_ID_SQL, GET_BY_IDS_SQL]).await?;
        Ok(Self { kind, pool, ids, batch, rng: SplitMix64::new(seed) })
    }
}

async fn get_by_id(pool: &GoSqlPool, id: Uuid) -> Result<usize, OpError> {
    Ok(pool.query(GET_BY_ID_SQL, &[&id]).await?.len())
}

impl Batcher {
    /// Look `batch` up the variant's way; the number of users found.
    async fn load(&self, batch: &[Uuid]) -> Result<usize, OpError> {
        Ok(match self.kind {
            Kind::NPlusOne => {
                let mut found = 0;
                for &id in batch {
                    found += get_by_id(&self.pool, id).await?;
                }
                found
            }
            Kind::Concurrent => {
                let pool = self.pool.clone();
                process_batch(batch, GUIDE_WORKERS, GUIDE_QUEUE, move |id| {
                    let pool = pool.clone();
                    async move { get_by_id(&pool, id).await }
                })
                .await?
            }
            Kind::Any => self.pool.query(GET_BY_IDS_SQL, &[&batch]).await?.len(),
        })
    }
}

impl Worker for Batcher {
    async fn call(&mut self) -> Result<(), OpError> {
        let start = self.rng.below(self.ids.len() - self.batch);
        let found = self.load(&self.ids[start..start + self.batch]).await?;
        if found == self.batch {
            Ok(())
        } else {
            Err(OpError::new("wrong number of users returned"))
        }
    }
}

impl Experiment for PgBatch {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Batching: N+1 queries vs a worker pool vs one = ANY($1)",
            guide_section:
                "数据库优化 → 查询优化 (GetUsersByIDs: 使用ANY操作符进行批量查询); 应用层优化 (ProcessUsersBatch)",
            claim: "One WHERE id = ANY($1) query beats N single-row queries.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            sweep: Sweep::numeric("batch size", "users", &[1.0, 10.0, 100.0, 1000.0], &[1.0, 10.0, 100.0]),
            primary_metric: MetricInfo::new(
                "latency_p50_us",
                "us",
                Better::Lower,
                "median time to fetch one whole batch",
            ),
            metrics: vec![
                MetricInfo::new(
                    "queries_per_batch",
                    "queries",
                    Better::Lower,
                    "statements sent per batch (each a round trip, but go-guide-any's: lib/pq's unprepared statement takes two)",
                ),
                MetricInfo::new("rows_per_sec", "rows/s", Better::Higher, "users fetched per second"),
                MetricInfo::new("connections", "connections", Better::Lower, "connections one client holds"),
            ],
            needs: Needs::POSTGRES,
            targets: harness::targets::DB_QUERY,
            knobs: vec![ROWS],
            controls: vec![harness::experiment::Control::new(
                1.0,
                "a batch of one user is one query either way: there is no N+1 to remove",
            )],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let users = setup_users(ctx, ROWS.int_value(&ctx.settings)?, SEED, ID_POOL).await?;
            self.ids.set(users.ids);
            Ok(())
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        harness::notes!(clients = ctx.settings.concurrency.unwrap_or(1), id_pool = ID_POOL)
    }
}

impl Run for PgBatch {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let kind = pick(&VARIANTS, variant)?;
            let batch = point.value as usize;
            let ids = self.ids.get();
            let pg = ctx.env.postgres()?.clone();
            let clients = ctx.settings.concurrency.unwrap_or(1);
            let report = load::run(&ctx.settings.closed_loop(clients), &ctx.probe, move |i| {
                let (pg, ids) = (pg.clone(), ids.clone());
                async move { Batcher::new(pg, kind, ids, batch, SEED + i as u64).await }
            })
            .await?;
            let mut sample = report.into_sample();
            let batches_per_sec = sample.metrics["ops_per_sec"];
            let queries = if kind == Kind::Any { 1.0 } else { batch as f64 };
            sample.metrics.insert("queries_per_batch".into(), queries);
            sample.metrics.insert("rows_per_sec".into(), batches_per_sec * batch as f64);
            sample.metrics.insert("connections".into(), kind.connections() as f64);
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No variant wins by doing less: for the same ids every one finds the same users.
    #[tokio::test(flavor = "current_thread")]
    async fn every_variant_finds_the_same_users() {
        let exp = PgBatch::new();
        let ctx = harness::testing::set_up(&exp, &[("pg-batch.rows", "3000")]).await;
        let ids = exp.ids.get();
        let mut batch: Vec<Uuid> = ids[..150].to_vec();
        batch.push(Uuid::nil()); // an id no user has
        for v in exp.meta().variants.into_iter().filter(|v| v.go.is_none()) {
            let kind = pick(&VARIANTS, v.name).unwrap();
            let pg = ctx.env.postgres().unwrap().clone();
            let b = Batcher::new(pg, kind, ids.clone(), batch.len(), 1).await.unwrap();
            assert_eq!(b.load(&batch).await.unwrap(), 150, "{}", v.name);
        }
    }
}

harness::quick_run_test!(PgBatch::new(), "pg-batch.rows" = "3000");
