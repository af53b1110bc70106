//! Where a read goes: go-redis's four read routings, as redis-rs read-routing strategies, and
//! the connections a go-redis `ClusterClient` would hold (a pool per node).

use anyhow::Context as _;
use harness::provision::RedisClusterTarget;
use harness::stats::SplitMix64;
use redis::cluster::NodeAddress;
use redis::cluster_async::ClusterConnection;
use redis::cluster_read_routing::{RandomReplicaStrategy, ReadCandidates, ReadRoutingStrategy};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// PINGs per node in go-redis's latency measurement (`clusterNode.updateLatency`).
const LATENCY_PROBES: u32 = 10;
/// The guide's `PoolSize: 20`: connections a go-redis ClusterClient keeps per node.
pub(crate) const POOL_SIZE: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// go-redis's default (`slotMasterNode`).
    Masters,
    /// `ReadOnly` alone (`slotSlaveNode`): a replica of the slot.
    Replicas,
    /// `ReadOnly` + `RouteByLatency` (`slotClosestNode`), the guide's setting.
    ByLatency,
    /// `ReadOnly` + `RouteRandomly` (`slotRandomNode`): master or replica at random.
    Randomly,
}

/// go-redis's RouteByLatency: the node with the lowest measured latency among the slot's
/// master and replicas, the master first so that a tie (and a client whose measurement has
/// not landed yet, where every node counts as go-redis's `math.MaxUint32`) keeps it.
#[derive(Clone)]
pub(crate) struct ByLatency {
    /// Mean latency in µs, in the order of `RedisClusterTarget::nodes`.
    pub(crate) measured: Arc<OnceLock<Vec<(String, u16, u64)>>>,
}

impl ByLatency {
    pub(crate) fn new() -> Self {
        Self { measured: Arc::new(OnceLock::new()) }
    }

    fn latency(&self, node: &NodeAddress) -> u64 {
        self.measured
            .get()
            .and_then(|m| m.iter().find(|(h, p, _)| *p == node.port() && h == node.host()).map(|n| n.2))
            .unwrap_or(u64::from(u32::MAX))
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

thread_local! {
    static COIN: RefCell<SplitMix64> = RefCell::new(SplitMix64::new(0x5107 ^ thread_seed()));
}

/// A seed that differs between threads (each thread's own stack address).
fn thread_seed() -> u64 {
    let here = 0u8;
    std::ptr::addr_of!(here) as u64
}

/// go-redis's RouteRandomly: any node of the slot, master or replica, with equal chance
/// (`slotRandomNode`, `rand.Perm` over the slot's nodes).
#[derive(Debug, Default)]
pub(crate) struct Randomly;

impl ReadRoutingStrategy for Randomly {
    fn route_read<'a>(&self, candidates: &ReadCandidates<'a>) -> &'a NodeAddress {
        match candidates {
            ReadCandidates::AnyNode(c) => {
                let pick = COIN.with(|r| r.borrow_mut().below(1 + c.replicas().len().get()));
                if pick == 0 {
                    c.primary()
                } else {
                    c.replicas().get(pick - 1).unwrap_or_else(|| c.replicas().first())
                }
            }
            ReadCandidates::ReplicasOnly(c) => c.replicas().choose_random(),
        }
    }
}

/// Measure every node as go-redis does when it meets one: `LATENCY_PROBES` PINGs, each after
/// a 10–20 ms pause, averaged (in µs); all nodes at once. In `cluster.nodes` order.
pub(crate) async fn measure_latencies(cluster: &RedisClusterTarget) -> anyhow::Result<Vec<(String, u16, u64)>> {
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

/// One cluster connection with `route`'s read routing: one connection per node.
pub(crate) async fn connect(
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
        Route::Randomly => builder.read_routing_strategy(Randomly),
    };
    builder.build()?.get_async_connection().await
}

/// The readers' connections, as a go-redis ClusterClient holds them: `POOL_SIZE` per node.
/// redis-rs's cluster connection holds one per node, so the pool is `POOL_SIZE` cluster
/// connections, each opened by the first reader that needs it (before the warm-up) and
/// shared by every `POOL_SIZE`-th reader. All share one latency measurement, as one
/// go-redis client's node objects do.
#[derive(Clone)]
pub(crate) struct Pool {
    cluster: RedisClusterTarget,
    route: Route,
    by_latency: ByLatency,
    slots: Arc<Vec<OnceCell<ClusterConnection>>>,
}

impl Pool {
    pub(crate) fn new(cluster: RedisClusterTarget, route: Route, by_latency: ByLatency) -> Self {
        Self { cluster, route, by_latency, slots: Arc::new((0..POOL_SIZE).map(|_| OnceCell::new()).collect()) }
    }

    /// The connection of reader `i`.
    pub(crate) async fn connection(&self, i: usize) -> redis::RedisResult<ClusterConnection> {
        let cell = &self.slots[i % self.slots.len()];
        Ok(cell.get_or_try_init(|| connect(&self.cluster, self.route, &self.by_latency)).await?.clone())
    }
}
