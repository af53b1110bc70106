//! `redis-batch`: GET per key vs MGET (the guide's `GetUsers`), and SET per key vs a pipeline
//! of SETs (the guide's `SetUsers`), per batch size.
//!
//! The time of a batch is mostly round trips. Besides time, the checks count from the server
//! what one batch of each variant costs it: commands executed and socket reads (each read
//! is one arrival of requests from the client: a round trip, or a part of a large one).
//! And a pipelining calibration puts the harness's pipelined/unpipelined GET ratio beside
//! `redis-benchmark -P 20` / `-P 1` on the same server.

use anyhow::Context as _;
use harness::kit::redis_util::{self, info};
use harness::load::{self, LoadConfig, OpError, Worker};
use harness::results::{Better, Check};
use harness::stats::SplitMix64;
use harness::{
    BoxFuture, Engine, Experiment, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot, Sweep, Trial, Variant,
};
use redis::aio::MultiplexedConnection;
use std::sync::Arc;

const ID: &str = "redis-batch";
const KEYS: usize = 10_000;
/// The guide's SetUsers TTL: 30 minutes.
const TTL_SECS: u64 = 1800;
/// Pipeline depth of the calibration, as `redis-benchmark -P 20`.
const CALIBRATION_DEPTH: usize = 20;

#[derive(Default)]
pub struct RedisBatch {
    notes: Slot<Vec<String>>,
}

impl RedisBatch {
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GetPerKey,
    Mget,
    SetPerKey,
    PipelineSet,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::GetPerKey, Kind::Mget, Kind::SetPerKey, Kind::PipelineSet];

    fn name(self) -> &'static str {
        match self {
            Kind::GetPerKey => "get-per-key",
            Kind::Mget => "mget",
            Kind::SetPerKey => "set-per-key",
            Kind::PipelineSet => "pipeline-set",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        Kind::ALL.into_iter().find(|k| k.name() == name).with_context(|| format!("unknown variant {name}"))
    }
}

#[cfg(test)]
#[test]
fn every_declared_variant_is_a_kind() {
    for v in RedisBatch::new().meta().variants.into_iter().filter(|v| v.go.is_none()) {
        assert_eq!(Kind::parse(v.name).unwrap().name(), v.name);
    }
}

fn keys() -> Vec<String> {
    let prefix = redis_util::prefix(ID);
    (0..KEYS).map(|i| format!("{prefix}user:{i}")).collect()
}

fn values() -> Vec<String> {
    (0..KEYS as u64).map(redis_util::user_json).collect()
}

struct Batcher {
    con: MultiplexedConnection,
    kind: Kind,
    batch: usize,
    keys: Arc<Vec<String>>,
    values: Arc<Vec<String>>,
    rng: SplitMix64,
}

impl Batcher {
    /// One batch of `batch` consecutive keys from a random start; the values read back count.
    async fn batch_once(&mut self) -> redis::RedisResult<usize> {
        let start = self.rng.below(KEYS - self.batch + 1);
        let keys = &self.keys[start..start + self.batch];
        let con = &mut self.con;
        match self.kind {
            Kind::GetPerKey => {
                let mut found = 0;
                for k in keys {
                    let v: Option<Vec<u8>> = redis::cmd("GET").arg(k).query_async(con).await?;
                    found += usize::from(v.is_some());
                }
                Ok(found)
            }
            Kind::Mget => {
                let vs: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(keys).query_async(con).await?;
                Ok(vs.iter().filter(|v| v.is_some()).count())
            }
            Kind::SetPerKey => {
                for (k, v) in keys.iter().zip(&self.values[start..]) {
                    redis::cmd("SET").arg(k).arg(v).arg("EX").arg(TTL_SECS).query_async::<()>(con).await?;
                }
                Ok(keys.len())
            }
            Kind::PipelineSet => {
                let mut pipe = redis::pipe();
                for (k, v) in keys.iter().zip(&self.values[start..]) {
                    pipe.cmd("SET").arg(k).arg(v).arg("EX").arg(TTL_SECS).ignore();
                }
                pipe.query_async::<()>(con).await?;
                Ok(keys.len())
            }
        }
    }
}

impl Worker for Batcher {
    async fn call(&mut self) -> Result<(), OpError> {
        match self.batch_once().await {
            Ok(n) if n == self.batch => Ok(()),
            Ok(n) => Err(OpError::new(format!("{n} of {} keys found", self.batch))),
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

/// GETs one at a time or `depth` at a time in one pipeline, for the calibration.
struct PipelinedGets {
    con: MultiplexedConnection,
    depth: usize,
    keys: Arc<Vec<String>>,
    next: usize,
}

impl Worker for PipelinedGets {
    async fn call(&mut self) -> Result<(), OpError> {
        let mut pipe = redis::pipe();
        for _ in 0..self.depth {
            pipe.cmd("GET").arg(&self.keys[self.next]);
            self.next = (self.next + 1) % self.keys.len();
        }
        match pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut self.con).await {
            Ok(v) if v.len() == self.depth => Ok(()),
            Ok(_) => Err(OpError::new("short reply")),
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

fn stat(fields: &[(String, f64)], name: &str) -> f64 {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v).unwrap_or(f64::NAN)
}

impl Experiment for RedisBatch {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Redis: GET per key vs MGET, SET per key vs a pipeline",
            guide_section: "Redis优化 → 缓存策略优化 (GetUsers: MGet; SetUsers: Pipeline)",
            claim: "MGET and pipelines beat one command at a time.",
            variants: vec![
                Variant::baseline_of_group("get-per-key", "one GET per key, each awaited before the next"),
                Variant::new("mget", "one MGET of all the batch's keys (the guide's GetUsers)")
                    .compared_with("get-per-key")
                    .tests_claim(),
                Variant::baseline_of_group("set-per-key", "one SET … EX 1800 per key, each awaited before the next"),
                Variant::new("pipeline-set", "all the batch's SET … EX 1800 in one pipeline (the guide's SetUsers)")
                    .compared_with("set-per-key"),
                Variant::baseline_of_group(
                    "go-get-per-key",
                    "Go original: one go-redis Get per key, each awaited (go/inproc/redis_batch.go)",
                )
                .in_go("RedisBatch/get-per-key"),
                Variant::new("go-guide-mget", "Go original: the guide's GetUsers read, client.MGet(ctx, keys...)")
                    .compared_with("go-get-per-key")
                    .in_go("RedisBatch/guide-mget")
                    .tests_claim(),
                Variant::baseline_of_group(
                    "go-set-per-key",
                    "Go original: one go-redis Set with the 30-minute TTL per key, each awaited",
                )
                .in_go("RedisBatch/set-per-key"),
                Variant::new(
                    "go-guide-pipeline-set",
                    "Go original: the guide's SetUsers write, client.Pipeline(), a Set per key, Exec",
                )
                .compared_with("go-set-per-key")
                .in_go("RedisBatch/guide-pipeline-set"),
            ],
            sweep: Sweep::numeric("batch size", "keys", &[1.0, 10.0, 100.0, 1000.0], &[10.0, 1000.0]),
            primary_metric: MetricInfo::new("latency_p50_us", "us", Better::Lower, "median time of one batch"),
            metrics: vec![
                MetricInfo::new("latency_p99_us", "us", Better::Lower, "99th percentile time of one batch"),
                MetricInfo::new("keys_per_sec", "keys/s", Better::Higher, "keys read or written per second"),
                load::throughput("batches/s", "batches completed per second"),
            ],
            needs: Needs::REDIS,
            targets: harness::targets::LOAD,
            controls: vec![harness::experiment::Control::new(
                1.0,
                "a batch of one key: MGET of one key is a GET, a pipeline of one command one round trip",
            )],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.notes.set(Vec::new());
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut con, &redis_util::prefix(ID)).await?;
            let mut pipe = redis::pipe();
            for (k, v) in keys().iter().zip(values()) {
                pipe.cmd("SET").arg(k).arg(v).arg("EX").arg(TTL_SECS).ignore();
            }
            pipe.query_async::<()>(&mut con).await.context("loading the cached users")?;
            Ok(())
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let target = ctx.env.redis()?.clone();
            let client = target.client()?;
            let (keys, values) = (Arc::new(keys()), Arc::new(values()));
            let mut checks = Vec::new();
            // What one batch costs the server, counted by the server: commands and socket reads.
            let mut admin = client.get_multiplexed_async_connection().await?;
            let before_after = |a: &[(String, f64)], b: &[(String, f64)], name: &str| stat(b, name) - stat(a, name);
            for point in ctx.settings.points(&self.meta().sweep) {
                let batch = point.value as usize;
                for kind in Kind::ALL {
                    let con = client.get_multiplexed_async_connection().await?;
                    let mut b = Batcher {
                        con,
                        kind,
                        batch,
                        keys: keys.clone(),
                        values: values.clone(),
                        rng: SplitMix64::new(7),
                    };
                    // INFO itself is one command and one read on the admin connection.
                    let s0 = info(&mut admin, "stats").await?;
                    let found = b.batch_once().await?;
                    let s1 = info(&mut admin, "stats").await?;
                    let commands = before_after(&s0, &s1, "total_commands_processed") - 1.0;
                    let reads = before_after(&s0, &s1, "total_reads_processed") - 1.0;
                    let label = Some(point.label.as_str());
                    checks.push(Check::observation(
                        kind.name(),
                        label,
                        "commands per batch",
                        commands,
                        "commands the server executed for one batch (INFO stats: total_commands_processed)",
                    ));
                    checks.push(Check::observation(kind.name(), label, "server reads per batch", reads, "socket reads the server made for one batch (INFO stats: total_reads_processed): about one per round trip, more when a large pipeline arrives in pieces"));
                    checks.push(Check::verdict(
                        kind.name(),
                        label,
                        "keys found",
                        found as f64,
                        found == batch,
                        format!("keys read back or written by one batch of {batch}"),
                    ));
                }
            }
            // Pipelining calibration: the harness and redis-benchmark, one connection each, both
            // GETting a key that does not exist (redis-benchmark's default key is not set here).
            let absent = Arc::new(vec![format!("{}absent", redis_util::prefix(ID))]);
            let mut cfg = LoadConfig::closed(1, ctx.settings.warmup, ctx.settings.duration);
            cfg.threads = Some(1);
            let mut harness_rps = Vec::new();
            for depth in [1, CALIBRATION_DEPTH] {
                let (client, keys) = (client.clone(), absent.clone());
                let report = load::run(&cfg, &ctx.probe, move |_| {
                    let (client, keys) = (client.clone(), keys.clone());
                    async move {
                        Ok(PipelinedGets {
                            con: client.get_multiplexed_async_connection().await?,
                            depth,
                            keys,
                            next: 0,
                        })
                    }
                })
                .await?;
                harness_rps.push(report.into_sample().metrics["ops_per_sec"] * depth as f64);
            }
            let note = match tokio::task::spawn_blocking(move || {
                let single = redis_util::redis_benchmark_get_rps(&target, &["-c", "1", "-n", "30000"])?;
                let piped = redis_util::redis_benchmark_get_rps(&target, &["-c", "1", "-n", "300000", "-P", "20"])?;
                anyhow::Ok((single, piped))
            })
            .await?
            {
                Ok((single, piped)) => format!(
                    "Pipelining calibration, one connection, GET: redis-benchmark -P 20 reached {piped:.0}/s vs {single:.0}/s with -P 1 ({:.1}×); the harness, 20 GETs per pipeline vs one at a time, {:.0}/s vs {:.0}/s ({:.1}×).",
                    piped / single,
                    harness_rps[1],
                    harness_rps[0],
                    harness_rps[1] / harness_rps[0]
                ),
                Err(e) => format!(
                    "Pipelining calibration: the harness reached {:.0} GET/s in pipelines of 20 vs {:.0}/s one at a time ({:.1}×); redis-benchmark could not be run: {e:#}.",
                    harness_rps[1],
                    harness_rps[0],
                    harness_rps[1] / harness_rps[0]
                ),
            };
            self.notes.push(note);
            // Leave nothing behind on the server (setup clears the prefix too, after a failed run).
            redis_util::clear_prefix(&mut admin, &redis_util::prefix(ID)).await?;
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let mut notes = harness::notes!(clients = ctx.settings.concurrency.unwrap_or(1), keys = KEYS);
        notes.extend(self.notes.get());
        notes
    }
}

impl Run for RedisBatch {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let (variant, point) = (at.variant, at.point);
            let kind = Kind::parse(variant)?;
            let batch = point.value as usize;
            anyhow::ensure!((1..=KEYS).contains(&batch), "batch size must be within 1..={KEYS}");
            let client = ctx.env.redis()?.client()?;
            let (keys, values) = (Arc::new(keys()), Arc::new(values()));
            let clients = ctx.settings.concurrency.unwrap_or(1);
            let report = load::run(&ctx.settings.closed_loop(clients), &ctx.probe, move |i| {
                let (client, keys, values) = (client.clone(), keys.clone(), values.clone());
                async move {
                    let con = client.get_multiplexed_async_connection().await?;
                    Ok(Batcher { con, kind, batch, keys, values, rng: SplitMix64::new(0xBA7C ^ i as u64) })
                }
            })
            .await?;
            let mut sample = report.into_sample();
            let per_sec = sample.metrics.get("ops_per_sec").copied().unwrap_or(0.0);
            sample.metrics.insert("keys_per_sec".into(), per_sec * batch as f64);
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No variant wins by doing less: GET per key and MGET read the same keys back; SET per
    /// key and the pipeline leave the same values behind.
    #[tokio::test(flavor = "current_thread")]
    async fn reads_find_the_same_keys_and_writes_leave_the_same_values() {
        let exp = RedisBatch::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        let client = ctx.env.redis().unwrap().client().unwrap();
        let mut admin = client.get_multiplexed_async_connection().await.unwrap();
        let (keys, values) = (Arc::new(keys()), Arc::new(values()));
        let batcher = |kind, con| Batcher {
            con,
            kind,
            batch: 100,
            keys: keys.clone(),
            values: values.clone(),
            rng: SplitMix64::new(5),
        };
        for kind in [Kind::GetPerKey, Kind::Mget] {
            let mut b = batcher(kind, client.get_multiplexed_async_connection().await.unwrap());
            assert_eq!(b.batch_once().await.unwrap(), 100, "{kind:?} finds every key of its batch");
        }
        let mut written = Vec::new();
        for kind in [Kind::SetPerKey, Kind::PipelineSet] {
            redis_util::clear_prefix(&mut admin, &redis_util::prefix(ID)).await.unwrap();
            let mut b = batcher(kind, client.get_multiplexed_async_connection().await.unwrap());
            b.batch_once().await.unwrap();
            let all: Vec<Option<String>> =
                redis::cmd("MGET").arg(keys.as_slice()).query_async(&mut admin).await.unwrap();
            assert_eq!(all.iter().flatten().count(), 100, "{kind:?} writes its batch");
            written.push(all);
        }
        assert_eq!(written[0], written[1], "both writes leave the same keys and values");
        redis_util::clear_prefix(&mut admin, &redis_util::prefix(ID)).await.unwrap();
    }
}

harness::quick_run_test!(RedisBatch::new());
