//! `worker-pool`: loading a batch of users by id, one lookup per item, five ways: one after
//! another; one task per item (a goroutine each); the guide's ProcessUsersBatch (a pool of 10
//! workers fed through a queue of 100, built for every call); a stream with bounded
//! concurrency (`buffer_unordered(10)`); and for reference one `= ANY($1)` query.
//!
//! The concurrent variants share a pool with the guide's DefaultDBConfig (25 open, 5 idle).

use futures_util::StreamExt;
use harness::fixtures::setup_users;
use harness::load::{self, OpError, Worker};
use harness::pgpool::GoSqlPool;
use harness::provision::PgTarget;
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{BoxFuture, Experiment, Meta, MetricInfo, Needs, RunCtx, Sample, Sweep, SweepPoint, Variant};
use std::sync::{Arc, Mutex};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

const GET_BY_ID_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_id.sql");
const GET_BY_IDS_SQL: &str = include_str!("../../../fixtures/sql/pg-batch/get_by_ids.sql");
const SEED: u64 = 20_240_101;
/// NewWorkerPool(10, 100, …) in the guide's ProcessUsersBatch.
const GUIDE_WORKERS: usize = 10;
const GUIDE_QUEUE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Sequential,
    TaskPerItem,
    GuidePool,
    BufferUnordered,
    Any,
}

fn kind(name: &str) -> anyhow::Result<Kind> {
    Ok(match name {
        "sequential" => Kind::Sequential,
        "task-per-item" => Kind::TaskPerItem,
        "guide-worker-pool" => Kind::GuidePool,
        "buffer-unordered" => Kind::BufferUnordered,
        "any" => Kind::Any,
        other => anyhow::bail!("unknown variant {other}"),
    })
}

struct Loader {
    kind: Kind,
    /// For `sequential` and `any`: one connection and its statement.
    direct: Option<(Client, Statement)>,
    pool: Arc<GoSqlPool>,
    ids: Arc<Vec<Uuid>>,
    items: usize,
    rng: SplitMix64,
}

async fn lookup(pool: &GoSqlPool, id: Uuid) -> Result<usize, OpError> {
    Ok(pool.query_typed(GET_BY_ID_SQL, &[(&id, Type::UUID)]).await?.len())
}

impl Worker for Loader {
    async fn call(&mut self) -> Result<(), OpError> {
        let start = self.rng.below(self.ids.len() - self.items);
        let (ids, n) = (&self.ids, self.items);
        let found = match self.kind {
            Kind::Sequential => {
                let (client, stmt) = self.direct.as_ref().expect("direct connection");
                let mut found = 0;
                for id in &ids[start..start + n] {
                    found += client.query(stmt, &[id]).await.map_err(|e| OpError::from_error(&e))?.len();
                }
                found
            }
            Kind::Any => {
                let (client, stmt) = self.direct.as_ref().expect("direct connection");
                client.query(stmt, &[&&ids[start..start + n]]).await.map_err(|e| OpError::from_error(&e))?.len()
            }
            Kind::TaskPerItem => {
                let handles: Vec<_> = (start..start + n)
                    .map(|i| {
                        let (pool, id) = (self.pool.clone(), ids[i]);
                        tokio::spawn(async move { lookup(&pool, id).await })
                    })
                    .collect();
                let mut found = 0;
                for h in handles {
                    found += h.await.map_err(|_| OpError::new("task panicked"))??;
                }
                found
            }
            Kind::GuidePool => {
                // As ProcessUsersBatch does: a pool built for the call, jobs through a bounded
                // queue, one result channel per job read in order, the pool stopped at the end.
                type Job = (Uuid, tokio::sync::oneshot::Sender<Result<usize, OpError>>);
                let (tx, rx) = tokio::sync::mpsc::channel::<Job>(GUIDE_QUEUE);
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                let workers: Vec<_> = (0..GUIDE_WORKERS)
                    .map(|_| {
                        let (rx, pool) = (rx.clone(), self.pool.clone());
                        tokio::spawn(async move {
                            loop {
                                let job = rx.lock().await.recv().await;
                                let Some((id, done)) = job else { break };
                                let _ = done.send(lookup(&pool, id).await);
                            }
                        })
                    })
                    .collect();
                let mut results = Vec::with_capacity(n);
                let mut found = 0;
                let mut failure = None;
                // Submitting blocks when the queue is full, so results are drained as we go
                // only through the workers; the guide's code does the same.
                let submit = async {
                    for &id in &ids[start..start + n] {
                        let (done, result) = tokio::sync::oneshot::channel();
                        if tx.send((id, done)).await.is_err() {
                            break;
                        }
                        results.push(result);
                    }
                    drop(tx);
                };
                submit.await;
                for r in results {
                    match r.await {
                        Ok(Ok(k)) => found += k,
                        Ok(Err(e)) => failure = Some(e),
                        Err(_) => failure = Some(OpError::new("worker stopped")),
                    }
                }
                for w in workers {
                    let _ = w.await;
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                found
            }
            Kind::BufferUnordered => {
                let pool = &self.pool;
                let mut stream = futures_util::stream::iter(ids[start..start + n].iter().copied())
                    .map(|id| lookup(pool, id))
                    .buffer_unordered(GUIDE_WORKERS);
                let mut found = 0;
                while let Some(r) = stream.next().await {
                    found += r?;
                }
                found
            }
        };
        if found == n {
            Ok(())
        } else {
            Err(OpError::new("wrong number of users returned"))
        }
    }
}

#[derive(Default)]
pub struct WorkerPool {
    ids: Mutex<Arc<Vec<Uuid>>>,
}

impl WorkerPool {
    pub fn new() -> Self {
        Self::default()
    }
}

async fn loader(
    pg: PgTarget,
    kind: Kind,
    pool: Arc<GoSqlPool>,
    ids: Arc<Vec<Uuid>>,
    items: usize,
    seed: u64,
) -> anyhow::Result<Loader> {
    let direct = match kind {
        Kind::Sequential | Kind::Any => {
            let client = pg.connect().await?;
            let stmt = client.prepare(if kind == Kind::Any { GET_BY_IDS_SQL } else { GET_BY_ID_SQL }).await?;
            Some((client, stmt))
        }
        _ => None,
    };
    anyhow::ensure!(ids.len() > items, "only {} user ids for batches of {items}", ids.len());
    Ok(Loader { kind, direct, pool, ids, items, rng: SplitMix64::new(seed) })
}

impl Experiment for WorkerPool {
    fn meta(&self) -> Meta {
        Meta {
            id: "worker-pool",
            title: "Batch loads: sequential vs a task per item vs the guide's worker pool vs a bounded stream",
            guide_section: "应用层优化 → 并发优化 (WorkerPool, ProcessUsersBatch)",
            claim: "A fixed worker pool (10 workers, queue 100) beats unbounded goroutines for batch loads.",
            variants: vec![
                Variant::new("sequential", "one lookup after another on one connection (prepared)"),
                Variant::new("task-per-item", "a task per item (a goroutine each), all sharing the guide's DB pool (25 open, 5 idle)"),
                Variant::new("guide-worker-pool", "the guide's ProcessUsersBatch: 10 workers and a queue of 100, built for each call, one result channel per job"),
                Variant::new("buffer-unordered", "a stream of lookups with at most 10 in flight (buffer_unordered), same DB pool"),
                Variant::new("any", "for reference: one WHERE id = ANY($1) query"),
            ],
            sweep: Sweep::numeric("items", "users per batch", &[100.0, 1000.0, 10000.0], &[100.0, 1000.0]),
            primary_metric: MetricInfo { name: "latency_p50_us".into(), unit: "us".into(), better: Better::Lower, description: "median time to load one whole batch".into() },
            metrics: vec![
                MetricInfo { name: "connections_used".into(), unit: "connections".into(), better: Better::Lower, description: "connections opened by the client (pool or direct), warm-up included".into() },
                MetricInfo { name: "harness_peak_rss_bytes".into(), unit: "bytes".into(), better: Better::Lower, description: "peak resident memory of the harness while measuring".into() },
            ],
            needs: Needs { postgres: true, redis: false, micro: false },
        }
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // Batches go up to 10,000 users.
            let users = setup_users(ctx, "worker-pool", 100_000, 12_000, SEED, 50_000).await?;
            *self.ids.lock().expect("not poisoned") = users.ids;
            Ok(())
        })
    }

    fn run<'a>(
        &'a self,
        ctx: &'a RunCtx,
        variant: &'a str,
        point: &'a SweepPoint,
    ) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let kind = kind(variant)?;
            let items = point.value as usize;
            let ids = self.ids.lock().expect("not poisoned").clone();
            let pg = ctx.env.postgres()?.clone();
            let max_idle = ctx.settings.get::<usize>("worker-pool", "max_idle")?.unwrap_or(5);
            anyhow::ensure!((1..=25).contains(&max_idle), "--set worker-pool.max_idle must be within 1..=25");
            let pool = Arc::new(GoSqlPool::new(pg.clone(), 25, max_idle));
            let clients = ctx.settings.concurrency.unwrap_or(1);
            let pool2 = pool.clone();
            let report = load::run(&ctx.settings.closed_loop(clients), &ctx.probe, move |i| {
                let (pg, pool, ids) = (pg.clone(), pool2.clone(), ids.clone());
                async move { loader(pg, kind, pool, ids, items, SEED + i as u64).await }
            })
            .await?;
            let mut sample = report.into_sample();
            let direct = if matches!(kind, Kind::Sequential | Kind::Any) { f64::from(clients) } else { 0.0 };
            sample.metrics.insert("connections_used".into(), pool.opened() as f64 + direct);
            if let Some(rss) = sample.resources.as_ref().and_then(|r| r.harness_peak_rss_bytes) {
                sample.metrics.insert("harness_peak_rss_bytes".into(), rss as f64);
            }
            Ok(sample)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let max_idle = ctx.settings.get::<usize>("worker-pool", "max_idle").ok().flatten().unwrap_or(5);
        vec![
            format!("The concurrent variants share a pool of 25 open, {max_idle} idle{}. With more than {max_idle} lookups in flight, connections returned beyond the idle limit are closed and reopened: connections_used shows that churn. `--set worker-pool.max_idle=25` runs the same variants without it.", if max_idle == 5 { " (the guide's DefaultDBConfig)" } else { "" }),
            format!("{} client(s), each loading batches back to back; the pooled variants of one client share one pool.", ctx.settings.concurrency.unwrap_or(1)),
            "Tasks here are tokio tasks on a single-threaded runtime per load thread, cheaper than goroutines on Go's scheduler; what stays the same is that every task waits for one of 25 connections.".into(),
        ]
    }
}
