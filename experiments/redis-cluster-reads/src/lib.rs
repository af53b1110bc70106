//! `redis-cluster-reads`: the guide's cluster client reads from replicas (`ReadOnly: true,
//! RouteByLatency: true`) to spread the read load. Three ways to route a read, on a real
//! cluster of three masters with one replica each:
//!
//! - `masters`: the cluster client's default, every read to the slot's master;
//! - `replicas`: `ReadOnly` alone, as go-redis does it (`slotSlaveNode`): a random replica of
//!   the slot (redis-rs's `RandomReplicaStrategy`);
//! - `route-by-latency`: the guide's setting, as go-redis does it (`slotClosestNode`): each
//!   node's latency is measured once when the client meets it (10 PINGs, 10–20 ms apart,
//!   averaged) and every read of a slot goes to whichever of its master and replicas measured
//!   lowest.
//!
//! The price of reading from a replica is staleness: replication is asynchronous, so a replica
//! may answer with a value older than a write the client has already seen acknowledged. While
//! the readers run, writers update the same keys at the sweep's write rate with versioned
//! values; a read that returns a version older than the last one acknowledged before the read
//! was sent is a stale read, counted (not an error: the read succeeded, with old data).
//!
//! The load per node is read from each node's own counters (`INFO commandstats`, `INFO cpu`)
//! before and after each sample.

use anyhow::Context as _;
use harness::kit::redis_util;
use harness::load::{self, OpError, Worker};
use harness::provision::{parse_role, RedisClusterTarget};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Sweep, Trial,
    Variant,
};
use redis::cluster::NodeAddress;
use redis::cluster_async::ClusterConnection;
use redis::cluster_read_routing::{RandomReplicaStrategy, ReadCandidates, ReadRoutingStrategy};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const ID: &str = "redis-cluster-reads";
/// Keys read and written: every slot range (so every shard) holds some.
const KEYS: usize = 1_000;
/// Bytes of each value: a 20-digit version, a separator and padding (a cached object's size).
const VALUE_BYTES: usize = 200;
const VERSION_DIGITS: usize = 20;
/// Writer tasks; each owns the keys `k % WRITERS == w`, so a key's versions only grow.
const WRITERS: usize = 4;
const CLIENTS: Knob =
    Knob::int(ID, "clients", 1, 10_000, 32, "concurrent readers, sharing one cluster connection per variant");
/// PINGs per node in go-redis's latency measurement (`clusterNode.updateLatency`).
const LATENCY_PROBES: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Masters,
    Replicas,
    ByLatency,
}

/// The variants, declared once.
const VARIANTS: [(Variant, Route); 3] = [
    (Variant::new("masters", "the cluster client's default: every read goes to the master of the key's slot"), Route::Masters),
    (Variant::new("replicas", "the guide's ReadOnly alone: every read goes to a random replica of the slot (go-redis slotSlaveNode; redis-rs RandomReplicaStrategy)"), Route::Replicas),
    (Variant::new("route-by-latency", "the guide's ReadOnly + RouteByLatency as go-redis does it: each node's latency measured once (10 PINGs 10-20 ms apart, averaged), every read of a slot to whichever of its master and replica measured lowest").tests_claim(), Route::ByLatency),
];

/// What every sample of a run shares: the keys, the last version acknowledged per key, and the
/// next version to write (versions grow over the whole run, so a value left from an earlier
/// sample is never newer than a later sample's writes).
struct Keys {
    names: Vec<String>,
    acked: Vec<AtomicU64>,
    next_version: AtomicU64,
}

impl Keys {
    fn new() -> Self {
        let prefix = redis_util::prefix(ID);
        Self {
            names: (0..KEYS).map(|i| format!("{prefix}k:{i}")).collect(),
            acked: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            next_version: AtomicU64::new(1),
        }
    }
}

/// A value holding `version`: its 20 digits, `|`, padding to `VALUE_BYTES`.
fn value(version: u64) -> Vec<u8> {
    let mut v = format!("{version:0width$}|", width = VERSION_DIGITS).into_bytes();
    v.resize(VALUE_BYTES, b'x');
    v
}

/// The version a value holds, if it is one of ours.
fn version_of(value: &[u8]) -> Option<u64> {
    let digits = value.get(..VERSION_DIGITS)?;
    let mut v = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

/// Reads checked for staleness: how many, how many were stale, and the most versions one
/// stale read was behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Staleness {
    reads: u64,
    stale: u64,
    max_lag: u64,
}

impl Staleness {
    /// Count one read: `floor` is the version acknowledged before it was sent, `got` the
    /// version it returned. Returns whether it was stale.
    fn count(&mut self, floor: u64, got: u64) -> bool {
        self.reads += 1;
        let stale = got < floor;
        if stale {
            self.stale += 1;
            self.max_lag = self.max_lag.max(floor - got);
        }
        stale
    }

    fn merge(&mut self, other: Staleness) {
        self.reads += other.reads;
        self.stale += other.stale;
        self.max_lag = self.max_lag.max(other.max_lag);
    }
}

/// go-redis's RouteByLatency: the node with the lowest measured latency among the slot's
/// master and replicas; a node not measured counts as 0 (go-redis's zero value), so before
/// the measurement lands the master (first in go-redis's list) is chosen.
#[derive(Clone)]
struct ByLatency {
    /// `(host, port, mean latency µs)` per node.
    measured: Arc<OnceLock<Vec<(String, u16, u64)>>>,
}

impl ByLatency {
    fn latency(&self, node: &NodeAddress) -> u64 {
        self.measured
            .get()
            .and_then(|m| m.iter().find(|(h, p, _)| *p == node.port() && h == node.host()).map(|n| n.2))
            .unwrap_or(0)
    }
}

impl ReadRoutingStrategy for ByLatency {
    fn route_read<'a>(&self, candidates: &ReadCandidates<'a>) -> &'a NodeAddress {
        match candidates {
            ReadCandidates::AnyNode(c) => {
                let mut best = c.primary();
                let mut best_latency = self.latency(best);
                for r in c.replicas().iter() {
                    let l = self.latency(r);
                    if l < best_latency {
                        (best, best_latency) = (r, l);
                    }
                }
                best
            }
            ReadCandidates::ReplicasOnly(c) => {
                c.replicas().iter().min_by_key(|r| self.latency(r)).unwrap_or_else(|| c.replicas().first())
            }
        }
    }
}

impl redis::cluster_read_routing::ReadRoutingStrategyFactory for ByLatency {
    fn create_strategy(&self) -> Box<dyn ReadRoutingStrategy> {
        Box::new(self.clone())
    }
}

/// Measure every node as go-redis does when it meets one: `LATENCY_PROBES` PINGs, each after
/// a 10–20 ms pause, averaged (in µs); all nodes at once.
async fn measure_latencies(cluster: &RedisClusterTarget) -> anyhow::Result<Vec<(String, u16, u64)>> {
    let mut probes = tokio::task::JoinSet::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let (client, host, port) = (cluster.node_client(node)?, node.host.clone(), node.port);
        probes.spawn(async move {
            let mut con = client.get_multiplexed_async_connection().await?;
            let mut rng = SplitMix64::new(0x5EED ^ i as u64);
            let mut total = Duration::ZERO;
            for _ in 0..LATENCY_PROBES {
                tokio::time::sleep(Duration::from_millis(10 + rng.below(10) as u64)).await;
                let t = Instant::now();
                redis::cmd("PING").query_async::<String>(&mut con).await?;
                total += t.elapsed();
            }
            Ok::<_, redis::RedisError>((i, host, port, (total / LATENCY_PROBES).as_micros() as u64))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = probes.join_next().await {
        out.push(r.context("a latency probe panicked")?.context("measuring a node's latency")?);
    }
    out.sort_by_key(|m| m.0);
    Ok(out.into_iter().map(|(_, h, p, l)| (h, p, l)).collect())
}

async fn connect(
    cluster: &RedisClusterTarget,
    route: Route,
    by_latency: &ByLatency,
) -> redis::RedisResult<ClusterConnection> {
    // The guide's DialTimeout 5 s, ReadTimeout 3 s and MaxRedirects 8 (redis-rs retries a
    // MOVED or ASK like any other retry).
    let builder = cluster
        .builder()
        .connection_timeout(Duration::from_secs(5))
        .response_timeout(Duration::from_secs(3))
        .retries(8);
    let builder = match route {
        Route::Masters => builder,
        Route::Replicas => builder.read_routing_strategy(RandomReplicaStrategy),
        Route::ByLatency => builder.read_routing_strategy(by_latency.clone()),
    };
    builder.build()?.get_async_connection().await
}

struct Reader {
    con: ClusterConnection,
    keys: Arc<Keys>,
    rng: SplitMix64,
    /// What this reader saw, merged into `tally` when the load engine drops it (outside the
    /// measured window).
    seen: Staleness,
    tally: Arc<Mutex<Staleness>>,
}

impl Worker for Reader {
    async fn call(&mut self) -> Result<(), OpError> {
        let k = self.rng.below(KEYS);
        let floor = self.keys.acked[k].load(Ordering::Acquire);
        let got: Option<Vec<u8>> = match redis::cmd("GET").arg(&self.keys.names[k]).query_async(&mut self.con).await {
            Ok(v) => v,
            Err(e) => return Err(OpError::from_error(&e)),
        };
        let Some(got) = got else { return Err(OpError::new("key missing")) };
        let Some(version) = version_of(&got) else { return Err(OpError::new("not a versioned value")) };
        self.seen.count(floor, version);
        Ok(())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).merge(self.seen);
    }
}

/// What one writer did.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    acked: u64,
    failed: u64,
    /// Reads of a key right after one's own acknowledged write to it (read-your-writes).
    read_backs: Staleness,
}

impl Written {
    fn merge(&mut self, other: Written) {
        self.acked += other.acked;
        self.failed += other.failed;
        self.read_backs.merge(other.read_backs);
    }
}

/// One writer: SETs its own keys in turn at `rate` per second until `stop`; each acknowledged
/// write raises its key's floor, and is read back at once through the same connection (so
/// through the variant's read routing: the checker of read-your-writes).
async fn write_loop(
    mut con: ClusterConnection,
    keys: Arc<Keys>,
    me: usize,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> Written {
    let mut w = Written::default();
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    let mut k = me;
    while !stop.load(Ordering::Relaxed) {
        next += period;
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        } else if now - next > Duration::from_millis(100) {
            // Behind by more than a moment: do not burst to catch up.
            next = now;
        }
        let version = keys.next_version.fetch_add(1, Ordering::Relaxed);
        let set: redis::RedisResult<()> =
            redis::cmd("SET").arg(&keys.names[k]).arg(value(version)).query_async(&mut con).await;
        match set {
            Ok(()) => {
                keys.acked[k].fetch_max(version, Ordering::Release);
                w.acked += 1;
                let back: redis::RedisResult<Option<Vec<u8>>> =
                    redis::cmd("GET").arg(&keys.names[k]).query_async(&mut con).await;
                if let Ok(Some(v)) = back {
                    w.read_backs.count(version, version_of(&v).unwrap_or(0));
                }
            }
            Err(_) => w.failed += 1,
        }
        k += WRITERS;
        if k >= KEYS {
            k = me;
        }
    }
    w
}

/// One node's counters: GETs served, CPU seconds used, whether it is a master.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NodeLoad {
    gets: f64,
    cpu_s: f64,
    master: bool,
}

/// `calls` of `cmdstat_get` in an `INFO commandstats` answer (0 before the first GET).
fn get_calls(commandstats: &str) -> f64 {
    commandstats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:"))
        .and_then(|rest| rest.split(',').find_map(|f| f.strip_prefix("calls=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn node_loads(cluster: &RedisClusterTarget) -> anyhow::Result<Vec<NodeLoad>> {
    let mut out = Vec::new();
    for node in &cluster.nodes {
        let mut con = cluster.node_client(node)?.get_multiplexed_async_connection().await?;
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut con).await?;
        let cpu_s = redis_util::info(&mut con, "cpu")
            .await?
            .into_iter()
            .filter(|(k, _)| k == "used_cpu_sys" || k == "used_cpu_user")
            .map(|(_, v)| v)
            .sum();
        let repl: String = redis::cmd("INFO").arg("replication").query_async(&mut con).await?;
        out.push(NodeLoad { gets: get_calls(&stats), cpu_s, master: parse_role(&repl).master });
    }
    Ok(out)
}

/// What the nodes did between two snapshots over `secs`: (% of GETs served by replicas,
/// % of GETs served by the busiest node, % of a core used by the busiest node).
fn spread(before: &[NodeLoad], after: &[NodeLoad], secs: f64) -> (f64, f64, f64) {
    let deltas: Vec<(f64, f64, bool)> = before
        .iter()
        .zip(after)
        .map(|(b, a)| ((a.gets - b.gets).max(0.0), (a.cpu_s - b.cpu_s).max(0.0), a.master))
        .collect();
    let total: f64 = deltas.iter().map(|d| d.0).sum();
    if total <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let on_replicas: f64 = deltas.iter().filter(|d| !d.2).map(|d| d.0).sum();
    let busiest = deltas.iter().map(|d| d.0).fold(0.0, f64::max);
    let busiest_cpu = deltas.iter().map(|d| d.1).fold(0.0, f64::max);
    (100.0 * on_replicas / total, 100.0 * busiest / total, 100.0 * busiest_cpu / secs.max(1e-9))
}

pub struct RedisClusterReads {
    keys: OnceLock<Arc<Keys>>,
}

impl Default for RedisClusterReads {
    fn default() -> Self {
        Self::new()
    }
}

/// Readers: the `clients` knob (its range is checked with every `--set`, before any server
/// starts).
fn clients(ctx: &RunCtx) -> anyhow::Result<u32> {
    Ok(CLIENTS.int_value(&ctx.settings)? as u32)
}

impl RedisClusterReads {
    pub fn new() -> Self {
        Self { keys: OnceLock::new() }
    }

    fn keys(&self) -> Arc<Keys> {
        self.keys.get_or_init(|| Arc::new(Keys::new())).clone()
    }
}

/// Delete the experiment's keys (setup, after a failed run; checks, at the end).
async fn clear(con: &mut ClusterConnection, keys: &Keys) -> redis::RedisResult<()> {
    for k in &keys.names {
        redis::cmd("DEL").arg(k).query_async::<()>(con).await?;
    }
    Ok(())
}

impl Experiment for RedisClusterReads {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Redis Cluster: reads from masters vs from replicas vs routed by latency, with the stale reads they cost",
            guide_section: "Redis优化 → Redis集群配置 (NewClusterClient: ReadOnly true, RouteByLatency true)",
            claim: "Reading from replicas (ReadOnly, RouteByLatency) spreads the read load over the cluster and makes reads faster.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("write rate", "writes/s", &[0.0, 1_000.0, 5_000.0], &[5_000.0]),
            primary_metric: load::throughput("GET/s", "reads completed per second by all readers, while writers update the same keys"),
            metrics: vec![
                load::latency_p50("a read"),
                load::latency_p99("a read"),
                MetricInfo::new("stale_reads_per_10k", "per 10k", Better::Lower, "reads that returned a version older than one acknowledged before the read was sent, per 10,000 reads (warm-up included)"),
                MetricInfo::new("stale_read_backs_pct", "%", Better::Lower, "of the reads a writer makes of a key right after its own acknowledged write (read-your-writes), the share that returned an older version"),
                MetricInfo::new("read_backs", "reads", Better::Higher, "read-backs checked in the sample (how many chances a stale read-back had)"),
                MetricInfo::new("reads_checked", "reads", Better::Higher, "readers' reads checked for staleness in the sample, warm-up included"),
                MetricInfo::new("stale_lag_max", "versions", Better::Lower, "the most versions one stale read was behind"),
                MetricInfo::new("reads_on_replicas_pct", "%", Better::Higher, "share of the GETs the nodes served that replicas served (INFO commandstats)"),
                MetricInfo::new("busiest_node_reads_pct", "%", Better::Lower, "share of the GETs served by the busiest node: 33 % is an even spread over three masters, 17 % over all six nodes"),
                MetricInfo::new("busiest_node_cpu_pct", "% of a core", Better::Lower, "CPU used by the busiest node over the sample (INFO cpu)"),
                MetricInfo::new("writes_per_sec", "SET/s", Better::Higher, "writes acknowledged per second (the sweep's rate, if the writers kept up)"),
            ],
            needs: Needs::REDIS_CLUSTER,
            targets: harness::targets::LOAD,
            knobs: vec![CLIENTS],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let cluster = ctx.env.redis_cluster()?;
            let keys = self.keys();
            let mut con = cluster.builder().build()?.get_async_connection().await?;
            clear(&mut con, &keys).await?;
            for (k, name) in keys.names.iter().enumerate() {
                let version = keys.next_version.fetch_add(1, Ordering::Relaxed);
                redis::cmd("SET")
                    .arg(name)
                    .arg(value(version))
                    .query_async::<()>(&mut con)
                    .await
                    .context("loading the keys")?;
                keys.acked[k].fetch_max(version, Ordering::Release);
            }
            // Every replica holds the keys before the first read: WAIT on each master.
            for node in &cluster.nodes {
                let mut c = cluster.node_client(node)?.get_multiplexed_async_connection().await?;
                let repl: String = redis::cmd("INFO").arg("replication").query_async(&mut c).await?;
                if parse_role(&repl).master {
                    redis::cmd("WAIT").arg(1).arg(5_000).query_async::<i64>(&mut c).await?;
                }
            }
            Ok(())
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            let cluster = ctx.env.redis_cluster()?;
            let mut con = cluster.builder().build()?.get_async_connection().await?;
            clear(&mut con, &self.keys()).await?;
            Ok(Vec::new())
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let clients = clients(ctx).unwrap_or(0);
        vec![
            format!("{clients} readers GET random keys out of {KEYS} ({VALUE_BYTES} bytes each) in a closed loop through one cluster connection per variant (redis-rs multiplexes one connection per node); {WRITERS} writers SET the same keys in turn at the sweep's rate (writes always go to masters) and read each key back at once, on a connection of their own with the variant's routing: read-your-writes, the pattern replica reads break first."),
            "A stale read returned a version older than the last one acknowledged before the read was sent: Redis replicates asynchronously, and a master acknowledges a write before its replicas apply it. A read-back is stale when it returns an older version than the write just acknowledged. Reads from masters can be neither, which checks the checker.".into(),
            "go-redis measures a node's latency when it first meets it (and again when it reloads the cluster state); here it is measured once per sample, before the warm-up. On loopback every node answers in about the same time, so which node of a shard wins is decided by noise, and that node then takes all of the shard's reads.".into(),
            "All six nodes and the harness share this machine's cores: a replica's CPU is not free capacity as it would be on a host of its own.".into(),
            "The guide's ClusterOptions also set PoolSize 20 and MinIdleConns 5 per node; redis-rs's cluster client multiplexes one connection per node instead (redis-pool measures a multiplexed connection against a pool of 20). Its DialTimeout, ReadTimeout and MaxRedirects are set alike.".into(),
        ]
    }
}

impl Run for RedisClusterReads {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let route = pick(&VARIANTS, at.variant)?;
            let write_rate = at.point.value;
            let clients = clients(ctx)?;
            let cluster = ctx.env.redis_cluster()?.clone();
            let keys = self.keys();
            // Set up outside the clock: route-by-latency's measurement (as a go-redis client
            // makes it when it meets the nodes), the writers' connection and the writers
            // themselves, running through the warm-up as through the measured window.
            let by_latency = ByLatency { measured: Arc::new(OnceLock::new()) };
            if route == Route::ByLatency {
                let _ = by_latency.measured.set(measure_latencies(&cluster).await?);
            }
            let stop = Arc::new(AtomicBool::new(false));
            let mut writers = Vec::new();
            if write_rate > 0.0 {
                let con = connect(&cluster, route, &by_latency).await?;
                for w in 0..WRITERS {
                    let task = write_loop(con.clone(), keys.clone(), w, write_rate / WRITERS as f64, stop.clone());
                    writers.push(tokio::spawn(task));
                }
            }
            let before = node_loads(&cluster).await?;
            let tally = Arc::new(Mutex::new(Staleness::default()));
            let shared: Arc<OnceCell<ClusterConnection>> = Arc::new(OnceCell::new());
            let started = Instant::now();
            let report = {
                let (cluster, tally) = (cluster.clone(), tally.clone());
                load::run(&ctx.settings.load_for(&at, clients), &ctx.probe, move |i| {
                    let (cluster, keys, tally, shared, by_latency) =
                        (cluster.clone(), keys.clone(), tally.clone(), shared.clone(), by_latency.clone());
                    async move {
                        let con = shared.get_or_try_init(|| connect(&cluster, route, &by_latency)).await?.clone();
                        let rng = SplitMix64::new(0xC1u64 << 32 ^ i as u64);
                        Ok(Reader { con, keys, rng, seen: Staleness::default(), tally })
                    }
                })
                .await
            };
            let elapsed = started.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            let mut written = Written::default();
            for w in writers {
                written.merge(w.await.context("a writer panicked")?);
            }
            let report = report?;
            let after = node_loads(&cluster).await?;
            let (on_replicas, busiest, busiest_cpu) = spread(&before, &after, elapsed);
            let seen = *tally.lock().unwrap_or_else(|e| e.into_inner());
            let per = |n: u64, of: u64, scale: f64| if of == 0 { 0.0 } else { scale * n as f64 / of as f64 };
            let mut sample = report.into_sample();
            let m = &mut sample.metrics;
            m.insert("stale_reads_per_10k".into(), per(seen.stale, seen.reads, 1e4));
            m.insert("stale_lag_max".into(), seen.max_lag as f64);
            m.insert("reads_checked".into(), seen.reads as f64);
            m.insert("reads_on_replicas_pct".into(), on_replicas);
            m.insert("busiest_node_reads_pct".into(), busiest);
            m.insert("busiest_node_cpu_pct".into(), busiest_cpu);
            m.insert("writes_per_sec".into(), written.acked as f64 / elapsed);
            m.insert("stale_read_backs_pct".into(), per(written.read_backs.stale, written.read_backs.reads, 100.0));
            m.insert("read_backs".into(), written.read_backs.reads as f64);
            if written.failed > 0 {
                *sample.errors.entry("write failed".into()).or_default() += written.failed;
            }
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_through_values() {
        for v in [0, 1, 42, u64::MAX / 10, 98_765_432_101] {
            let val = value(v);
            assert_eq!(val.len(), VALUE_BYTES);
            assert_eq!(version_of(&val), Some(v));
        }
        assert_eq!(version_of(b"short"), None);
        assert_eq!(version_of(&[b'x'; VALUE_BYTES]), None);
    }

    /// The checker counts exactly the reads older than the floor, and the largest lag.
    #[test]
    fn the_checker_counts_what_is_older_than_the_acknowledged_version() {
        let mut counted = Staleness::default();
        let seen = [(5, 5), (5, 7), (5, 4), (10, 3), (0, 0), (9, 8)];
        let flagged: Vec<bool> = seen.iter().map(|&(floor, got)| counted.count(floor, got)).collect();
        assert_eq!(flagged, [false, false, true, true, false, true]);
        assert_eq!(counted, Staleness { reads: 6, stale: 3, max_lag: 7 });
        let mut merged = Staleness { reads: 4, stale: 1, max_lag: 9 };
        merged.merge(counted);
        assert_eq!(merged, Staleness { reads: 10, stale: 4, max_lag: 9 });
    }

    #[test]
    fn reads_node_counters() {
        let stats = "# Commandstats\r\ncmdstat_set:calls=3,usec=9,usec_per_call=3.00\r\ncmdstat_get:calls=1234,usec=2000,usec_per_call=1.62,rejected_calls=0,failed_calls=0\r\n";
        assert_eq!(get_calls(stats), 1234.0);
        assert_eq!(get_calls("# Commandstats\r\n"), 0.0);
        let node = |gets, cpu_s, master| NodeLoad { gets, cpu_s, master };
        let before = [node(100.0, 1.0, true), node(0.0, 1.0, false), node(50.0, 0.0, true)];
        let after = [node(400.0, 1.5, true), node(100.0, 1.2, false), node(150.0, 0.1, true)];
        let (on_replicas, busiest, cpu) = spread(&before, &after, 2.0);
        assert!((on_replicas - 20.0).abs() < 1e-9, "{on_replicas}");
        assert!((busiest - 60.0).abs() < 1e-9, "{busiest}");
        assert!((cpu - 25.0).abs() < 1e-9, "{cpu}");
    }

    /// Each routing sends reads where it says, on a real cluster: masters only to masters,
    /// replicas only to replicas, route-by-latency to one node per shard; and reads from
    /// masters are never stale, which checks the checker against Redis's own guarantee.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_routing_reads_where_it_says() {
        let ctx = RunCtx::for_tests_needing(Needs::REDIS_CLUSTER, &[]).await.unwrap();
        let exp = RedisClusterReads::new();
        exp.setup(&ctx).await.unwrap();
        let cluster = ctx.env.redis_cluster().unwrap().clone();
        let keys = exp.keys();
        let by_latency = ByLatency { measured: Arc::new(OnceLock::new()) };
        by_latency.measured.set(measure_latencies(&cluster).await.unwrap()).unwrap();
        for route in [Route::Masters, Route::Replicas, Route::ByLatency] {
            let before = node_loads(&cluster).await.unwrap();
            let con = connect(&cluster, route, &by_latency).await.unwrap();
            let tally = Arc::new(Mutex::new(Staleness::default()));
            let mut r = Reader {
                con,
                keys: keys.clone(),
                rng: SplitMix64::new(3),
                seen: Staleness::default(),
                tally: tally.clone(),
            };
            for _ in 0..600 {
                r.call().await.unwrap();
            }
            drop(r);
            let after = node_loads(&cluster).await.unwrap();
            let served: Vec<(f64, bool)> =
                before.iter().zip(&after).map(|(b, a)| (a.gets - b.gets, a.master)).collect();
            assert_eq!(served.iter().map(|s| s.0).sum::<f64>(), 600.0, "{route:?}: {served:?}");
            let (on_replicas, _, _) = spread(&before, &after, 1.0);
            let serving = served.iter().filter(|s| s.0 > 0.0).count();
            match route {
                Route::Masters => {
                    assert_eq!(on_replicas, 0.0, "{served:?}");
                    assert_eq!(tally.lock().unwrap().stale, 0);
                }
                Route::Replicas => assert_eq!(on_replicas, 100.0, "{served:?}"),
                Route::ByLatency => assert_eq!(serving, 3, "one node per shard: {served:?}"),
            }
            assert_eq!(tally.lock().unwrap().reads, 600);
            // The writer's checker reads back every acknowledged write.
            let stop = Arc::new(AtomicBool::new(false));
            let con = connect(&cluster, route, &by_latency).await.unwrap();
            let writer = tokio::spawn(write_loop(con, keys.clone(), 0, 500.0, stop.clone()));
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::Relaxed);
            let w = writer.await.unwrap();
            assert!(w.acked >= 50 && w.failed == 0, "{route:?}: {w:?}");
            assert_eq!(w.read_backs.reads, w.acked, "{route:?}");
            if route == Route::Masters {
                assert_eq!(w.read_backs.stale, 0, "a master returned an older version than it acknowledged");
            }
        }
        exp.checks(&ctx).await.unwrap();
    }
}

#[cfg(test)]
mod quick_run {
    use harness::Experiment as _;

    /// The experiment runs end to end as `bench --quick` runs it, on a cluster the harness
    /// starts and removes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_end_to_end_in_quick_mode() {
        let exp = super::RedisClusterReads::new();
        let result = harness::testing::run_quick(&exp, &[("clients", "8")]).await.unwrap();
        harness::testing::assert_complete(&exp.meta(), &result);
    }
}
