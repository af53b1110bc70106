//! The nodes' own counters: GETs served and CPU used per node (`INFO commandstats`, `INFO
//! cpu`), and which replica serves which master.

use anyhow::Context as _;
use harness::kit::redis_util;
use harness::provision::{parse_role, RedisClusterTarget};

/// One node's counters: GETs served, CPU seconds used, whether it is a master.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NodeLoad {
    pub(crate) gets: f64,
    pub(crate) cpu_s: f64,
    pub(crate) master: bool,
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

pub(crate) async fn node_loads(cluster: &RedisClusterTarget) -> anyhow::Result<Vec<NodeLoad>> {
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
pub(crate) fn spread(before: &[NodeLoad], after: &[NodeLoad], secs: f64) -> (f64, f64, f64) {
    let gets = served(before, after);
    let busiest_cpu = before.iter().zip(after).map(|(b, a)| (a.cpu_s - b.cpu_s).max(0.0)).fold(0.0, f64::max);
    let total: f64 = gets.iter().map(|g| g.0).sum();
    if total <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let on_replicas: f64 = gets.iter().filter(|g| !g.1).map(|g| g.0).sum();
    let busiest = gets.iter().map(|g| g.0).fold(0.0, f64::max);
    (100.0 * on_replicas / total, 100.0 * busiest / total, 100.0 * busiest_cpu / secs.max(1e-9))
}

/// GETs each node served between two snapshots, with whether it is a master.
pub(crate) fn served(before: &[NodeLoad], after: &[NodeLoad]) -> Vec<(f64, bool)> {
    before.iter().zip(after).map(|(b, a)| ((a.gets - b.gets).max(0.0), a.master)).collect()
}

/// Per shard, its master and its replica, as indexes into `RedisClusterTarget::nodes` (each
/// replica's `INFO replication` names its master's port).
pub(crate) async fn shards(cluster: &RedisClusterTarget) -> anyhow::Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut con = cluster.node_client(node)?.get_multiplexed_async_connection().await?;
        let repl: String = redis::cmd("INFO").arg("replication").query_async(&mut con).await?;
        if parse_role(&repl).master {
            continue;
        }
        let port = repl.lines().find_map(|l| l.strip_prefix("master_port:")?.trim().parse::<u16>().ok());
        let master = cluster.nodes.iter().position(|n| Some(n.port) == port && n.host == node.host);
        out.push((master.with_context(|| format!("replica :{} names no master of this cluster", node.port))?, i));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
