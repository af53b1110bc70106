//! `redis-cluster-reads`: the guide's cluster client reads from replicas (`ReadOnly: true,
//! RouteByLatency: true`) to spread the read load. Four ways to route a read, on a real
//! cluster of three masters with one replica each, as go-redis routes them:
//!
//! - `masters`: the cluster client's default, every read to the slot's master;
//! - `replicas`: `ReadOnly` alone (`slotSlaveNode`): a replica of the slot;
//! - `route-by-latency`: the guide's setting (`slotClosestNode`): each node's latency is
//!   measured once when the client meets it (10 PINGs, 10–20 ms apart, averaged) and every
//!   read of a slot goes to whichever of its master and replica measured lowest;
//! - `route-randomly`: `ReadOnly` + `RouteRandomly` (`slotRandomNode`), the setting that does
//!   spread reads: master or replica at random.
//!
//! A fair trial of "spreads the load" needs nodes that cannot borrow each other's CPU: the six
//! nodes and the client share two cores, so an idle replica's CPU would simply be the
//! client's. Each node therefore runs under the same CPU cap (a cgroup of its own, `node_cpu_pct`
//! of a core), the three masters' read capacity is measured once (a closed loop, reads from
//! masters only), and every variant is offered the same fixed rate (an open loop), a share of
//! that capacity: the sweep. The primary metric is the read latency at that rate; where the
//! reads went is read from each node's own counters (`INFO commandstats`, `INFO cpu`).
//!
//! The price of reading from a replica is staleness: replication is asynchronous, so a replica
//! may answer with a value older than a write the client has already seen acknowledged. While
//! the readers run, writers update the same keys at `write_rate` with versioned values; a read
//! that returns a version older than the last one acknowledged before the read was sent is a
//! stale read, counted (not an error: the read succeeded, with old data).

mod nodes;
mod routing;
mod writers;

use anyhow::Context as _;
use harness::acted::Tally;
use harness::kit::redis_util;
use harness::load::{self, LoadConfig, OpError, Worker};
use harness::provision::cpucap::{CpuCaps, Throttling};
use harness::provision::RedisClusterTarget;
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Check, Engine, Experiment, Knob, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Sweep,
    Trial, Variant,
};
use nodes::{node_loads, served, shards, spread};
use redis::cluster_async::ClusterConnection;
use routing::{measure_latencies, ByLatency, Pool, Route, POOL_SIZE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use writers::Writers;

const ID: &str = "redis-cluster-reads";
/// Keys read and written: every slot range (so every shard) holds some.
const KEYS: usize = 1_000;
/// Bytes of each value: a 20-digit version, a separator and padding (a cached object's size).
const VALUE_BYTES: usize = 200;
const VERSION_DIGITS: usize = 20;
/// Writer tasks; each owns the keys `k % WRITERS == w`, so a key's versions only grow. Each
/// writes and reads back in turn, so many of them hold the rate when a capped node stalls.
const WRITERS: usize = 16;
const CLIENTS: Knob = Knob::int(
    ID,
    "clients",
    1,
    10_000,
    256,
    "open-loop workers sending the reads (each takes one of the pool's connections per node)",
);
const WRITE_RATE: Knob =
    Knob::int(ID, "write_rate", 0, 100_000, 1_000, "writes per second to the same keys while the readers run");
const NODE_CPU: Knob = Knob::int(
    ID,
    "node_cpu_pct",
    1,
    100,
    10,
    "CPU cap of every node, in % of one core (a cgroup per node; local clusters only)",
);
/// How the masters' read capacity is measured once per run: a closed loop of `clients`
/// readers (masters routing), after a warm-up, over a window.
const CAPACITY_WARMUP: Duration = Duration::from_millis(300);
const CAPACITY_WINDOW: Duration = Duration::from_secs(1);

/// The variants, declared once.
const VARIANTS: [(Variant, Route); 4] = [
    (Variant::new("masters", "the cluster client's default: every read goes to the master of the key's slot"), Route::Masters),
    (Variant::new("replicas", "the guide's ReadOnly alone: every read goes to a replica of the slot (go-redis slotSlaveNode)"), Route::Replicas),
    (Variant::new("route-by-latency", "the guide's ReadOnly + RouteByLatency as go-redis does it: each node's latency measured once (10 PINGs 10-20 ms apart, averaged), every read of a slot to whichever of its master and replica measured lowest").tests_claim(), Route::ByLatency),
    (Variant::new("route-randomly", "ReadOnly + RouteRandomly (not the guide's setting; go-redis slotRandomNode): every read to the slot's master or replica at random, the routing that spreads reads over all six nodes"), Route::Randomly),
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

/// Writers' read-backs routed before route-by-latency's measurement landed may reach a node
/// after the sample's first snapshot: at most one per writer.
const STRAY_READ_BACKS: f64 = WRITERS as f64;

/// Why a sample's reads did not go where its routing sends them (the technique did not act),
/// from the GETs each node served (`served`, in node order), the shards, the latencies the
/// sample measured (route-by-latency) and the stale answers seen.
fn not_acted(
    route: Route,
    served: &[(f64, bool)],
    shards: &[(usize, usize)],
    latency: &[u64],
    stale: u64,
) -> Option<String> {
    let total: f64 = served.iter().map(|s| s.0).sum();
    if total <= 0.0 {
        return Some("no GET reached the nodes".into());
    }
    let on = |master: bool| served.iter().filter(|s| s.1 == master).map(|s| s.0).sum::<f64>();
    match route {
        Route::Masters if on(false) > 0.0 => Some(format!("reads from masters sent {} GET(s) to replicas", on(false))),
        Route::Masters if stale > 0 => Some(format!(
            "a master answered {stale} read(s) with a version older than one it had acknowledged: the staleness checker is wrong, not the routing"
        )),
        Route::Replicas if on(true) > 0.0 => Some(format!("replica reads sent {} GET(s) to masters", on(true))),
        Route::ByLatency => shards.iter().find_map(|&(m, r)| {
            let (lm, lr) = (latency.get(m).copied().unwrap_or(u64::MAX), latency.get(r).copied().unwrap_or(u64::MAX));
            let (fast, slow) = if lr < lm { (r, m) } else { (m, r) };
            (served[slow].0 > STRAY_READ_BACKS).then(|| {
                format!("route-by-latency sent {} GET(s) to node {slow}, measured slower than node {fast} of its shard", served[slow].0)
            })
        }),
        Route::Randomly => shards.iter().find_map(|&(m, r)| {
            let share = served[r].0 / (served[m].0 + served[r].0).max(1.0);
            (!(0.3..=0.7).contains(&share)).then(|| {
                format!("random routing sent {:.0} % of a shard's GETs to its replica, not about half", share * 100.0)
            })
        }),
        _ => None,
    }
}

/// What setup prepared for every sample.
struct Prepared {
    /// Each node's CPU cap, released by `checks` (or why the nodes run uncapped).
    caps: Result<CpuCaps, String>,
    /// Reads per second the three masters served at most (closed loop, masters routing).
    capacity: f64,
    /// Per shard: (master, replica), indexes into `RedisClusterTarget::nodes`.
    shards: Vec<(usize, usize)>,
}

/// A sample's view of `Prepared`.
struct Found {
    capacity: f64,
    shards: Vec<(usize, usize)>,
    /// Each node's throttling so far (empty when uncapped), in node order.
    throttling: Vec<Throttling>,
}

/// Per case, variant and point: the range of the replicas' share of reads over the samples,
/// each node's mean share, and the stale reads and read-backs seen.
#[derive(Debug, Default, Clone)]
struct Routed {
    on_replicas: Option<(f64, f64)>,
    stale_reads: u64,
    stale_read_backs: u64,
    /// Per shard, the sums over the samples of the shares of all reads its master and its
    /// replica served (%).
    shares: Vec<(f64, f64)>,
    samples: u64,
}

#[derive(Default)]
pub struct RedisClusterReads {
    keys: OnceLock<Arc<Keys>>,
    prepared: Mutex<Option<Prepared>>,
    /// What setup found (the caps, the capacity), as notes and as checks.
    found: Mutex<(Vec<String>, Vec<harness::Check>)>,
    routed: Tally<Routed>,
}

/// Readers: the `clients` knob (its range is checked with every `--set`, before any server
/// starts).
fn clients(ctx: &RunCtx) -> anyhow::Result<u32> {
    Ok(CLIENTS.int_value(&ctx.settings)? as u32)
}

impl RedisClusterReads {
    pub fn new() -> Self {
        Self::default()
    }

    fn keys(&self) -> Arc<Keys> {
        self.keys.get_or_init(|| Arc::new(Keys::new())).clone()
    }

    /// What setup found, and how often the caps have held each node back so far.
    fn prepared(&self) -> anyhow::Result<Found> {
        let p = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        let p = p.as_ref().context("redis-cluster-reads ran a sample before its setup")?;
        Ok(Found {
            capacity: p.capacity,
            shards: p.shards.clone(),
            throttling: p.caps.as_ref().map(CpuCaps::throttling).unwrap_or_default(),
        })
    }
}

/// Delete the experiment's keys (setup, after a failed run; checks, at the end).
async fn clear(con: &mut ClusterConnection, keys: &Keys) -> redis::RedisResult<()> {
    for k in &keys.names {
        redis::cmd("DEL").arg(k).query_async::<()>(con).await?;
    }
    Ok(())
}

/// The load engine's readers: reader `i` on connection `i % POOL_SIZE` of `pool`.
fn readers(
    pool: Pool,
    keys: Arc<Keys>,
    tally: Arc<Mutex<Staleness>>,
) -> impl Fn(usize) -> BoxFuture<'static, anyhow::Result<Reader>> + Send + Sync + 'static {
    move |i| {
        let (pool, keys, tally) = (pool.clone(), keys.clone(), tally.clone());
        Box::pin(async move {
            let con = pool.connection(i).await?;
            let rng = SplitMix64::new(0xC1u64 << 32 ^ i as u64);
            Ok(Reader { con, keys, rng, seen: Staleness::default(), tally })
        })
    }
}

/// What the capacity measurement found.
struct Capacity {
    /// Reads per second a closed loop of `clients` readers got from the masters.
    per_s: f64,
    /// The least share of the scheduler periods in which a master's cap held it back
    /// (None when uncapped).
    held: Option<f64>,
    /// Cores the harness used meanwhile.
    client_cores: f64,
}

/// The three masters' read capacity: a closed loop of `readers_n` readers (masters routing,
/// the pool every variant has) while the writers write at `write_rate`.
async fn measure_capacity(
    ctx: &RunCtx,
    cluster: &RedisClusterTarget,
    keys: Arc<Keys>,
    readers_n: u32,
    write_rate: f64,
    caps: Option<&CpuCaps>,
) -> anyhow::Result<Capacity> {
    let (route, by_latency) = (Route::Masters, ByLatency::new());
    let writers = Writers::start(cluster, route, &by_latency, &keys, write_rate).await?;
    let pool = Pool::new(cluster.clone(), route, by_latency);
    let tally = Arc::new(Mutex::new(Staleness::default()));
    let before = caps.map(CpuCaps::throttling);
    let cfg = LoadConfig::closed(readers_n, CAPACITY_WARMUP, CAPACITY_WINDOW);
    let report = load::run(&cfg, &ctx.probe, readers(pool, keys, tally)).await;
    let after = caps.map(CpuCaps::throttling);
    writers.finish().await?;
    let report = report?;
    if !report.errors.is_empty() || report.ok == 0 {
        anyhow::bail!("measuring the masters' read capacity failed: {:?}", report.errors);
    }
    let masters = node_loads(cluster).await?.iter().map(|n| n.master).collect::<Vec<_>>();
    let held = before.zip(after).and_then(|(b, a)| {
        (0..masters.len()).filter(|&i| masters[i]).map(|i| a[i].share_since(&b[i])).reduce(f64::min)
    });
    let r = &report.resources;
    let client_cores = r.harness_cpu_s / r.wall_s.max(1e-9);
    Ok(Capacity { per_s: report.ops_per_sec(), held, client_cores })
}

/// Wait until every replica has applied everything its master has (replication offsets):
/// the first reads of a run must find the keys on every node. At most 5 s.
async fn replicas_caught_up(cluster: &RedisClusterTarget, shards: &[(usize, usize)]) -> anyhow::Result<()> {
    let offset = |i: usize, field: &'static str| {
        let node = &cluster.nodes[i];
        async move {
            let mut con = cluster.node_client(node)?.get_multiplexed_async_connection().await?;
            redis_util::info_field(&mut con, "replication", field).await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    for &(m, r) in shards {
        let written = offset(m, "master_repl_offset").await?;
        while offset(r, "slave_repl_offset").await? < written {
            if Instant::now() > deadline {
                anyhow::bail!("replica :{} has not caught up with its master in 5 s", cluster.nodes[r].port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

impl Experiment for RedisClusterReads {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Redis Cluster: reads from masters, from replicas, routed by latency or at random, on capped nodes at a fixed rate",
            guide_section: "Redis优化 → Redis集群配置 (NewClusterClient: ReadOnly true, RouteByLatency true)",
            claim: "Reading from replicas (ReadOnly, RouteByLatency) spreads the read load over the cluster and makes reads faster.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("offered reads", "% of the masters' capacity", &[50.0, 90.0, 130.0], &[90.0]),
            primary_metric: load::latency_p99("a read at the offered rate"),
            metrics: vec![
                load::latency_p50("a read"),
                load::throughput("GET/s", "reads completed per second (the offered rate, where the nodes keep up)"),
                MetricInfo::new("offered_per_s", "GET/s", Better::Higher, "reads offered per second: the point's share of the masters' capacity"),
                MetricInfo::new("masters_capacity_per_s", "GET/s", Better::Higher, "reads per second the three capped masters served at most while the writers wrote, measured once per run (closed loop, reads from masters)"),
                MetricInfo::new("reads_on_replicas_pct", "%", Better::Higher, "share of the GETs the nodes served that replicas served (INFO commandstats)"),
                MetricInfo::new("busiest_node_reads_pct", "%", Better::Lower, "share of the GETs served by the busiest node: 33 % is an even spread over three nodes, 17 % over all six"),
                MetricInfo::new("busiest_node_cpu_pct", "% of a core", Better::Lower, "CPU used by the busiest node over the sample (INFO cpu); its cap bounds it"),
                MetricInfo::new("busiest_node_throttled_pct", "%", Better::Lower, "of the scheduler periods in the sample, the share in which the most held-back node had used up its CPU cap and waited"),
                MetricInfo::new("stale_reads_per_10k", "per 10k", Better::Lower, "reads that returned a version older than one acknowledged before the read was sent, per 10,000 reads (warm-up included)"),
                MetricInfo::new("stale_read_backs_pct", "%", Better::Lower, "of the reads a writer makes of a key right after its own acknowledged write (read-your-writes), the share that returned an older version"),
                MetricInfo::new("read_backs", "reads", Better::Higher, "read-backs checked in the sample (how many chances a stale read-back had)"),
                MetricInfo::new("reads_checked", "reads", Better::Higher, "readers' reads checked for staleness in the sample, warm-up included"),
                MetricInfo::new("stale_lag_max", "versions", Better::Lower, "the most versions one stale read was behind"),
                MetricInfo::new("writes_per_sec", "SET/s", Better::Higher, "writes acknowledged per second (write_rate, if the writers kept up)"),
            ],
            needs: Needs::REDIS_CLUSTER,
            targets: harness::targets::LOAD,
            knobs: vec![CLIENTS, WRITE_RATE, NODE_CPU],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // An earlier setup's caps go first: the new ones must see each node back home.
            drop(self.prepared.lock().unwrap_or_else(|e| e.into_inner()).take());
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
            let shards = shards(cluster).await?;
            replicas_caught_up(cluster, &shards).await?;
            let cores = NODE_CPU.value(&ctx.settings)? / 100.0;
            let pids: Option<Vec<u32>> = cluster.nodes.iter().map(|n| n.pid).collect();
            let caps = match pids {
                Some(pids) => CpuCaps::each(&pids, cores),
                None => Err("the cluster's nodes are not processes this run started (a --redis-cluster-url cluster, or the other build of --against)".into()),
            };
            let write_rate = WRITE_RATE.value(&ctx.settings)?;
            let readers_n = clients(ctx)?;
            let Capacity { per_s: capacity, held, client_cores } =
                measure_capacity(ctx, cluster, keys, readers_n, write_rate, caps.as_ref().ok()).await?;
            let capped = Check::verdict(
                "",
                None,
                "every node under the same CPU cap",
                cores * 100.0,
                caps.is_ok(),
                match &caps {
                    Ok(_) => format!("{:.0} % of one core each, a cgroup per node", cores * 100.0),
                    Err(why) => format!("uncapped: {why}. An idle replica's CPU was then the client's, so replica reads could not add capacity as on hosts of their own"),
                },
            );
            // The client must not be what limits the capacity: it had CPU to spare, beyond
            // what the capped nodes may take.
            let machine = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
            let left = machine - if caps.is_ok() { cores * cluster.nodes.len() as f64 } else { 0.0 };
            let spare = client_cores < 0.85 * left;
            let headroom = Check::verdict(
                "",
                None,
                "the client had CPU to spare while the capacity was measured",
                client_cores,
                spare,
                format!(
                    "{capacity:.0} GET/s from the three masters (a closed loop of {readers_n} readers, reads from masters, the writers writing); the harness used {client_cores:.2} of the {left:.2} cores the nodes left it{}{}",
                    held.map(|h| format!("; each master's cap held it back in at least {:.0} % of the periods", h * 100.0)).unwrap_or_default(),
                    if spare { "" } else { ": the client, not the nodes, may have set this capacity" }
                ),
            );
            let notes = vec![format!(
                "The three masters' read capacity, measured once before the trials: {capacity:.0} GET/s (a closed loop of {readers_n} readers over the pool every variant has, reads from masters, the writers writing). Each point offers every variant the same share of it in an open loop."
            )];
            *self.found.lock().unwrap_or_else(|e| e.into_inner()) = (notes, vec![capped, headroom]);
            *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = Some(Prepared { caps, capacity, shards });
            Ok(())
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            drop(self.prepared.lock().unwrap_or_else(|e| e.into_inner()).take());
            let cluster = ctx.env.redis_cluster()?;
            let mut con = cluster.builder().build()?.get_async_connection().await?;
            clear(&mut con, &self.keys()).await?;
            let mut checks = self.found.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
            checks.extend(self.routed.checks("reads went where the routing sends them", |_, _, r| {
                let share = match r.on_replicas {
                    Some((lo, hi)) if (hi - lo) < 0.5 => format!("{lo:.0} % of reads on replicas"),
                    Some((lo, hi)) => format!("{lo:.0}–{hi:.0} % of reads on replicas from sample to sample"),
                    None => "no sample".into(),
                };
                let n = r.samples.max(1) as f64;
                let nodes: Vec<String> = r.shares.iter().map(|(m, p)| format!("{:.0}/{:.0}", m / n, p / n)).collect();
                format!(
                    "{share}; mean share of all reads by shard, master/replica: {} %; {} stale read(s), {} stale read-back(s)",
                    nodes.join(", "),
                    r.stale_reads,
                    r.stale_read_backs
                )
            }));
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let mut notes = self.found.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
        notes.extend(harness::notes!(
            clients = clients(ctx).unwrap_or(0),
            keys = KEYS,
            value_bytes = VALUE_BYTES,
            pool_size = POOL_SIZE,
            writers = WRITERS,
            writes = format!("{:.0}", WRITE_RATE.value(&ctx.settings).unwrap_or(0.0)),
            cap = format!("{:.0}", NODE_CPU.value(&ctx.settings).unwrap_or(0.0)),
        ));
        notes
    }
}

impl Run for RedisClusterReads {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let route = pick(&VARIANTS, at.variant)?;
            let Found { capacity, shards, .. } = self.prepared()?;
            let rate = capacity * at.point.value / 100.0;
            let write_rate = WRITE_RATE.value(&ctx.settings)?;
            let clients = clients(ctx)?;
            let cluster = ctx.env.redis_cluster()?.clone();
            let keys = self.keys();
            // Set up outside the clock, the same for every variant: the writers, running
            // through the warm-up as through the measured window, then the nodes' latency
            // measured as a go-redis client measures it when it meets the nodes of a cluster in
            // use (only route-by-latency reads it; every variant pays its PINGs and pause).
            let by_latency = ByLatency::new();
            let writers = Writers::start(&cluster, route, &by_latency, &keys, write_rate).await?;
            let measured = measure_latencies(&cluster).await?;
            let latency: Vec<u64> = measured.iter().map(|n| n.2).collect();
            if route == Route::ByLatency {
                let _ = by_latency.measured.set(measured);
            }
            let before = node_loads(&cluster).await?;
            let (throttling_before, written_before) = (self.prepared()?.throttling, writers.read());
            let tally = Arc::new(Mutex::new(Staleness::default()));
            let started = Instant::now();
            let pool = Pool::new(cluster.clone(), route, by_latency);
            let cfg = LoadConfig::open(clients, rate, ctx.settings.warmup, ctx.settings.duration);
            let report = load::run(&cfg, &ctx.probe, readers(pool, keys, tally.clone())).await;
            let elapsed = started.elapsed().as_secs_f64();
            let (throttling_after, written) = (self.prepared()?.throttling, writers.read().since(&written_before));
            writers.finish().await?;
            let report = report?;
            let after = node_loads(&cluster).await?;
            let (on_replicas, busiest, busiest_cpu) = spread(&before, &after, elapsed);
            let served = served(&before, &after);
            let seen = *tally.lock().unwrap_or_else(|e| e.into_inner());
            let per = |n: u64, of: u64, scale: f64| if of == 0 { 0.0 } else { scale * n as f64 / of as f64 };
            let mut sample = report.into_sample();
            let m = &mut sample.metrics;
            m.insert("offered_per_s".into(), rate);
            m.insert("masters_capacity_per_s".into(), capacity);
            m.insert("stale_reads_per_10k".into(), per(seen.stale, seen.reads, 1e4));
            m.insert("stale_lag_max".into(), seen.max_lag as f64);
            m.insert("reads_checked".into(), seen.reads as f64);
            m.insert("reads_on_replicas_pct".into(), on_replicas);
            m.insert("busiest_node_reads_pct".into(), busiest);
            m.insert("busiest_node_cpu_pct".into(), busiest_cpu);
            let total: f64 = served.iter().map(|n| n.0).sum::<f64>().max(1.0);
            let shares: Vec<(f64, f64)> =
                shards.iter().map(|&(m, r)| (100.0 * served[m].0 / total, 100.0 * served[r].0 / total)).collect();
            if throttling_before.len() == throttling_after.len() && !throttling_after.is_empty() {
                let held = throttling_after.iter().zip(&throttling_before).map(|(a, b)| a.share_since(b));
                m.insert("busiest_node_throttled_pct".into(), 100.0 * held.fold(0.0, f64::max));
            }
            m.insert("writes_per_sec".into(), written.acked as f64 / elapsed);
            m.insert("stale_read_backs_pct".into(), per(written.stale_read_backs, written.read_backs, 100.0));
            m.insert("read_backs".into(), written.read_backs as f64);
            for (kind, n) in [("write failed", written.failed), ("read-back failed", written.read_backs_failed)] {
                if n > 0 {
                    *sample.errors.entry(kind.into()).or_default() += n;
                }
            }
            let stale = seen.stale + written.stale_read_backs;
            sample.invalid = not_acted(route, &served, &shards, &latency, stale);
            self.routed.record(&at, sample.invalid.is_none(), |r| {
                let (lo, hi) = r.on_replicas.unwrap_or((on_replicas, on_replicas));
                r.on_replicas = Some((lo.min(on_replicas), hi.max(on_replicas)));
                r.stale_reads += seen.stale;
                r.stale_read_backs += written.stale_read_backs;
                r.shares.resize(shares.len(), (0.0, 0.0));
                for (sum, share) in r.shares.iter_mut().zip(&shares) {
                    (sum.0, sum.1) = (sum.0 + share.0, sum.1 + share.1);
                }
                r.samples += 1;
            });
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

    /// Each routing's check fires on reads that went elsewhere (nodes 0-2 masters, 3-5 their
    /// replicas; node 4 measured fastest of its shard).
    #[test]
    fn a_routing_that_did_not_act_is_named() {
        let shards = [(0, 3), (1, 4), (2, 5)];
        let latency = [50, 50, 50, 60, 40, 60];
        // (counts well above the stray read-backs a writer may leave: one per writer)
        let at = |gets: [f64; 6]| -> Vec<(f64, bool)> { gets.iter().enumerate().map(|(i, &g)| (g, i < 3)).collect() };
        let masters = at([1000.0, 1000.0, 1000.0, 0.0, 0.0, 0.0]);
        let replicas = at([0.0, 0.0, 0.0, 1000.0, 1000.0, 1000.0]);
        let fastest = at([1000.0, 0.0, 1000.0, 0.0, 1000.0, 0.0]);
        let halves = at([1000.0, 1000.0, 1000.0, 900.0, 1100.0, 1000.0]);
        let ok = |route, served: &[(f64, bool)]| not_acted(route, served, &shards, &latency, 0).is_none();
        assert!(ok(Route::Masters, &masters) && !ok(Route::Masters, &replicas) && !ok(Route::Masters, &halves));
        assert!(not_acted(Route::Masters, &masters, &shards, &latency, 1).is_some(), "a stale read from a master");
        assert!(ok(Route::Replicas, &replicas) && !ok(Route::Replicas, &fastest));
        assert!(ok(Route::ByLatency, &fastest) && !ok(Route::ByLatency, &masters) && !ok(Route::ByLatency, &replicas));
        assert!(ok(Route::ByLatency, &at([1000.0, 10.0, 1000.0, 0.0, 1000.0, 0.0])), "a writer's stray read-backs");
        assert!(ok(Route::Randomly, &halves) && !ok(Route::Randomly, &masters) && !ok(Route::Randomly, &fastest));
        assert!(!ok(Route::Masters, &at([0.0; 6])), "no GET at all");
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
        let shards = shards(&cluster).await.unwrap();
        assert_eq!(shards.len(), 3, "three shards of a master and a replica: {shards:?}");
        // Made-up latencies, so that route-by-latency must pick shard 1's replica and the
        // other shards' masters: a routing that ignored them would read elsewhere.
        let mut latency = vec![100u64; cluster.nodes.len()];
        let expected = [shards[0].1, shards[1].0, shards[2].0];
        for &i in &expected {
            latency[i] = 10;
        }
        let by_latency = ByLatency::new();
        let made_up = cluster.nodes.iter().zip(&latency).map(|(n, &l)| (n.host.clone(), n.port, l)).collect();
        by_latency.measured.set(made_up).unwrap();
        for route in [Route::Masters, Route::Replicas, Route::ByLatency, Route::Randomly] {
            let before = node_loads(&cluster).await.unwrap();
            let con = routing::connect(&cluster, route, &by_latency).await.unwrap();
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
                Route::ByLatency => {
                    let chosen: Vec<usize> = (0..served.len()).filter(|&i| served[i].0 > 0.0).collect();
                    let mut want = expected.to_vec();
                    want.sort();
                    assert_eq!(chosen, want, "the fastest-measured node of each shard: {served:?}");
                }
                Route::Randomly => assert_eq!(serving, 6, "every node: {served:?}"),
            }
            let stale = tally.lock().unwrap().stale;
            assert_eq!(not_acted(route, &served, &shards, &latency, stale), None, "{route:?}: {served:?}");
            assert_eq!(tally.lock().unwrap().reads, 600);
            // The writers' checker reads back every acknowledged write.
            let writers = Writers::start(&cluster, route, &by_latency, &keys, 500.0).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let w = writers.read();
            writers.finish().await.unwrap();
            assert!(w.acked >= 50 && w.failed == 0 && w.read_backs_failed == 0, "{route:?}: {w:?}");
            assert!(w.read_backs + WRITERS as u64 >= w.acked && w.read_backs <= w.acked, "{route:?}: {w:?}");
            if route == Route::Masters {
                assert_eq!(w.stale_read_backs, 0, "a master returned an older version than it acknowledged");
            }
        }
        exp.checks(&ctx).await.unwrap();
    }
}

#[cfg(test)]
mod quick_run {
    use harness::Experiment as _;

    /// The experiment runs end to end as `bench --quick` runs it, on a cluster the harness
    /// starts and removes, and in every sample each routing read where it says.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_end_to_end_in_quick_mode() {
        let exp = super::RedisClusterReads::new();
        let result = harness::testing::run_quick(&exp, &[]).await.unwrap();
        harness::testing::assert_complete(&exp.meta(), &result);
        let routed: Vec<_> = result.checks.iter().filter(|c| c.name.starts_with("reads went where")).collect();
        assert_eq!(routed.len(), 4, "one routing check per variant: {:?}", result.checks);
        for c in routed {
            assert_eq!(c.ok, Some(true), "{}: {}", c.variant, c.detail);
        }
    }
}
