//! A Redis Cluster: six local nodes (three masters, three replicas) started from the
//! machine's `redis-server` and joined with `redis-cli --cluster create`, or an existing
//! cluster named by `--redis-cluster-url`.
//!
//! Local nodes live in the run's temporary directory like every ephemeral server: their
//! processes are registered with the reaper and stopped with the run (end, error, panic,
//! Ctrl-C; `PR_SET_PDEATHSIG` if the harness is killed).

use super::local::{free_port, server_command, tail, wait_ready, LocalServers, Ready, ServerProc};
use super::*;
use redis::aio::MultiplexedConnection;

/// Nodes of a local cluster: three masters, each with one replica.
pub const LOCAL_NODES: usize = 6;
/// How long the cluster may take, after `redis-cli --cluster create`, to agree on its slots
/// and to have every replica in sync.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// One node of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// URL of this node (with the cluster's password, if any: never printed).
    pub url: String,
    pub host: String,
    pub port: u16,
    /// Process id when this run started the node.
    pub pid: Option<u32>,
}

/// A Redis Cluster to talk to.
#[derive(Debug, Clone)]
pub struct RedisClusterTarget {
    /// Every node the cluster reported when the run began, masters and replicas.
    pub nodes: Vec<ClusterNode>,
    /// The seed URLs, redacted, for messages and results.
    redacted: String,
}

impl RedisClusterTarget {
    /// A cluster client builder seeded with every node (the caller chooses read routing).
    pub fn builder(&self) -> redis::cluster::ClusterClientBuilder {
        redis::cluster::ClusterClientBuilder::new(self.nodes.iter().map(|n| n.url.as_str()).collect::<Vec<_>>())
            .tcp_settings(super::nodelay())
    }

    /// A plain client for one node (INFO, CLUSTER commands).
    pub fn node_client(&self, node: &ClusterNode) -> redis::RedisResult<redis::Client> {
        super::redis_client(&node.url)
    }

    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }
}

/// A node's own view: its role and, for a replica, whether its link to the master is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRole {
    pub master: bool,
    pub link_up: bool,
}

/// Parse `INFO replication`: `role:master`, or `role:slave` with `master_link_status:up`.
pub fn parse_role(info: &str) -> NodeRole {
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
    let master = field("role:").as_deref() == Some("master");
    let link_up = master || field("master_link_status:").as_deref() == Some("up");
    NodeRole { master, link_up }
}

/// The `host:port` of every node in a `CLUSTER NODES` answer, with whether it is a master,
/// skipping nodes flagged as failing or without an address.
pub fn parse_cluster_nodes(text: &str) -> Vec<(String, u16, bool)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            continue;
        }
        let flags = fields[2];
        if flags.contains("fail") || flags.contains("noaddr") || flags.contains("handshake") {
            continue;
        }
        // `ip:port@cport[,hostname]`
        let addr = fields[1].split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = addr.rsplit_once(':') else { continue };
        let Ok(port) = port.parse::<u16>() else { continue };
        if port == 0 {
            continue;
        }
        out.push((host.to_owned(), port, flags.contains("master")));
    }
    out
}

/// One connection to a node, within `CONNECT_TIMEOUT`.
async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
    let client = super::redis_client(url).map_err(|e| e.to_string())?;
    tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())
}

/// `cmd`'s answer on `con`, within `CONNECT_TIMEOUT`.
async fn query<T: redis::FromRedisValue>(con: &mut MultiplexedConnection, cmd: &redis::Cmd) -> Result<T, String> {
    tokio::time::timeout(CONNECT_TIMEOUT, cmd.query_async::<T>(con))
        .await
        .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())
}

/// `cmd`'s answer from the node at `url`, on a connection of its own.
async fn query_node<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> Result<T, String> {
    query(&mut connect(url).await?, cmd).await
}

fn info(section: &str) -> redis::Cmd {
    let mut c = redis::cmd("INFO");
    c.arg(section);
    c
}

fn cluster(sub: &str) -> redis::Cmd {
    let mut c = redis::cmd("CLUSTER");
    c.arg(sub);
    c
}

/// Whether every node says the cluster is whole: all slots served (`cluster_state:ok`), every
/// node known to every other, every replica's link to its master up, and a replica listed for
/// every slot range. `cons` holds one connection per node, in the order of `nodes`.
async fn cluster_formed(nodes: &[ClusterNode], cons: &mut [MultiplexedConnection]) -> Result<(), String> {
    for (n, con) in nodes.iter().zip(cons) {
        let ci: String = query(con, &cluster("INFO")).await?;
        if !ci.lines().any(|l| l.trim() == "cluster_state:ok") {
            return Err(format!("node :{} says the cluster is not ok yet", n.port));
        }
        let known = ci.lines().find_map(|l| l.strip_prefix("cluster_known_nodes:")).map(str::trim);
        if known != Some(&nodes.len().to_string()) {
            return Err(format!("node :{} knows {} of {} nodes", n.port, known.unwrap_or("?"), nodes.len()));
        }
        if !parse_role(&query::<String>(con, &info("replication")).await?).link_up {
            return Err(format!("replica :{} is not yet in sync with its master", n.port));
        }
        // A node lists a replica in CLUSTER SLOTS (where clients learn where to read) only
        // once gossip has told it the replica's replication offset.
        let (ranges, with_replica) = slot_ranges(&query(con, &cluster("SLOTS")).await?);
        if ranges == 0 || (nodes.len() > ranges && with_replica < ranges) {
            return Err(format!("node :{} lists replicas for {with_replica} of {ranges} slot ranges", n.port));
        }
    }
    Ok(())
}

/// One connection per node, in order.
async fn connect_all(nodes: &[ClusterNode]) -> Result<Vec<MultiplexedConnection>, String> {
    let mut cons = Vec::with_capacity(nodes.len());
    for n in nodes {
        cons.push(connect(&n.url).await.map_err(|e| format!("node :{}: {e}", n.port))?);
    }
    Ok(cons)
}

/// In a `CLUSTER SLOTS` answer: how many slot ranges, and how many list at least one replica.
pub fn slot_ranges(slots: &redis::Value) -> (usize, usize) {
    let redis::Value::Array(ranges) = slots else { return (0, 0) };
    let with_replica = ranges.iter().filter(|r| matches!(r, redis::Value::Array(fields) if fields.len() >= 4)).count();
    (ranges.len(), with_replica)
}

fn server_info(nodes: &[ClusterNode], version: String, redacted: String, provider: &str) -> ServerInfo {
    let mut settings = BTreeMap::new();
    settings.insert("nodes".to_owned(), nodes.len().to_string());
    settings.insert("provider".to_owned(), provider.to_owned());
    ServerInfo { version, url: redacted, settings }
}

async fn version_of(node: &ClusterNode) -> String {
    query_node::<String>(&node.url, &info("server"))
        .await
        .ok()
        .and_then(|i| i.lines().find_map(|l| l.strip_prefix("redis_version:")).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into())
}

/// Start six nodes in the run's directory, join them into a cluster of three masters with one
/// replica each, and wait until every slot is served and every replica is in sync.
pub(super) async fn start_redis_cluster(
    local: &mut LocalServers,
) -> Result<(RedisClusterTarget, ServerInfo), ProvisionError> {
    let fail = |reason: String| ProvisionError::StartFailed { server: "redis cluster", reason };
    let program = which("redis-server").ok_or_else(|| fail("redis-server vanished".into()))?;
    let cli = which("redis-cli").ok_or_else(|| fail("redis-cli vanished".into()))?;
    let mut nodes = Vec::with_capacity(LOCAL_NODES);
    // One password for the cluster: every node requires it of clients and gives it to its
    // master (`masterauth`); redis-cli gets it through its environment.
    let password = super::new_password().map_err(fail)?;
    for i in 0..LOCAL_NODES {
        let dir = local.dir.join(format!("cluster-{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let conf = super::local::redis_auth_conf(&dir, &password, true).map_err(fail)?;
        let log = dir.join("redis.log");
        let mut last_err = String::new();
        let mut started = None;
        for _attempt in 0..3 {
            let (port, bus) =
                (free_port().map_err(|e| fail(e.to_string()))?, free_port().map_err(|e| fail(e.to_string()))?);
            let mut cmd = server_command(&program, None, &log).map_err(|e| fail(e.to_string()))?;
            cmd.arg(&conf)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--protected-mode", "yes"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .args(["--cluster-port", &bus.to_string(), "--cluster-node-timeout", "5000"])
                // A replica's first sync starts at once, not after the default 5 s wait for
                // more replicas to share a diskless transfer.
                .args(["--repl-diskless-sync-delay", "0"])
                // A replica's offset moves (and clients learn of the replica) once its master
                // sends something: a ping every second instead of every 10.
                .args(["--repl-ping-replica-period", "1"])
                .arg("--dir")
                .arg(&dir);
            let child = cmd.spawn().map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
            let pid = child.id();
            crate::reaper::register(crate::reaper::Registered::Pid(pid));
            local.procs.push(ServerProc { name: "redis-cluster", child });
            let url = format!("redis://:{password}@127.0.0.1:{port}");
            let ping = redis::cmd("PING");
            match wait_ready(local, &log, || async { query_node::<String>(&url, &ping).await.ok() })
                .await
                .map_err(fail)?
            {
                Ready::Up(_) => {
                    started = Some(ClusterNode { url, host: "127.0.0.1".into(), port, pid: Some(pid) });
                    break;
                }
                Ready::Exited(why) => last_err = why,
            }
        }
        nodes.push(started.ok_or_else(|| fail(format!("node {i}: {last_err}")))?);
    }
    // Join them: slots over the first three, one replica each for the others.
    let log = local.dir.join("cluster-create.log");
    let addrs: Vec<String> = nodes.iter().map(|n| format!("{}:{}", n.host, n.port)).collect();
    let out = tokio::process::Command::new(&cli)
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .env("REDISCLI_AUTH", &password)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(FORM_TIMEOUT, out)
        .await
        .map_err(|_| fail(format!("redis-cli --cluster create gave no answer within {}s", FORM_TIMEOUT.as_secs())))?
        .map_err(|e| fail(format!("cannot run {}: {e}", cli.display())))?;
    let _ = std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat());
    if !out.status.success() {
        return Err(fail(format!("redis-cli --cluster create exited with {}: {}", out.status, tail(&log, 3))));
    }
    let mut cons = connect_all(&nodes).await.map_err(fail)?;
    let started = Instant::now();
    loop {
        match cluster_formed(&nodes, &mut cons).await {
            Ok(()) => break,
            Err(why) if started.elapsed() > FORM_TIMEOUT => {
                return Err(fail(format!("not formed after {}s: {why}", FORM_TIMEOUT.as_secs())))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let redacted = nodes.iter().map(|n| redact(&n.url)).collect::<Vec<_>>().join(",");
    let version = version_of(&nodes[0]).await;
    let info = server_info(&nodes, version, redacted.clone(), "local ephemeral");
    Ok((RedisClusterTarget { nodes, redacted }, info))
}

/// An existing cluster: `urls` is one or more seed URLs, comma-separated; every node is found
/// through `CLUSTER NODES` and reached with the first seed's credentials.
pub(super) async fn external_redis_cluster(urls: &str) -> Result<(RedisClusterTarget, ServerInfo), ProvisionError> {
    let seeds: Vec<&str> = urls.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for s in &seeds {
        register_url(s);
    }
    let redacted = seeds.iter().map(|s| redact(s)).collect::<Vec<_>>().join(",");
    let bad = |why: String| ProvisionError::BadRequest(format!("--redis-cluster-url {redacted}: {why}"));
    let seed = *seeds.first().ok_or_else(|| bad("no URL given".into()))?;
    let parsed = redis::parse_redis_url(seed).ok_or_else(|| bad("not a Redis URL".into()))?;
    let unreachable = |reason: String| ProvisionError::Unreachable { url: redacted.clone(), reason };
    let text: String = query_node(seed, &cluster("NODES")).await.map_err(unreachable)?;
    let mut nodes = Vec::new();
    for (host, port, _master) in parse_cluster_nodes(&text) {
        let mut u = parsed.clone();
        u.set_host(Some(&host)).map_err(|e| bad(e.to_string()))?;
        u.set_port(Some(port)).map_err(|_| bad("cannot set a node's port".into()))?;
        nodes.push(ClusterNode { url: u.to_string(), host, port, pid: None });
    }
    if nodes.is_empty() {
        return Err(bad("CLUSTER NODES lists no node that answers".into()));
    }
    let whole = match connect_all(&nodes).await {
        Ok(mut cons) => cluster_formed(&nodes, &mut cons).await,
        Err(e) => Err(e),
    };
    whole.map_err(|why| unreachable(format!("the cluster is not whole: {why}")))?;
    let version = version_of(&nodes[0]).await;
    let info = server_info(&nodes, version, redacted.clone(), "external");
    Ok((RedisClusterTarget { nodes, redacted }, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_roles_and_nodes() {
        assert_eq!(
            parse_role("# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"),
            NodeRole { master: true, link_up: true }
        );
        assert_eq!(parse_role("role:slave\r\nmaster_link_status:down\r\n"), NodeRole { master: false, link_up: false });
        assert_eq!(parse_role("role:slave\r\nmaster_link_status:up\r\n"), NodeRole { master: false, link_up: true });
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host-b master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
aaaa :0@0 master,noaddr - 0 0 0 disconnected";
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                ("127.0.0.1".into(), 30004, false),
                ("127.0.0.1".into(), 30002, true),
                ("127.0.0.1".into(), 30001, true)
            ]
        );
    }

    /// The harness starts a cluster, every node knows its role, and stopping the run leaves no
    /// process and no directory behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_local_cluster_starts_whole_and_leaves_nothing() {
        if which("redis-server").is_none() || which("redis-cli").is_none() {
            eprintln!("skipped: redis-server or redis-cli is not installed");
            return;
        }
        let started = Instant::now();
        let mut env = provision(&Request { provider: Provider::Local, need_redis_cluster: true, ..Request::default() })
            .await
            .unwrap();
        eprintln!("a cluster of {LOCAL_NODES} nodes was ready in {:?}", started.elapsed());
        let cluster = env.redis_cluster.clone().unwrap();
        assert_eq!(cluster.nodes.len(), LOCAL_NODES);
        let mut masters = 0;
        for n in &cluster.nodes {
            let role = parse_role(&query_node::<String>(&n.url, &info("replication")).await.unwrap());
            assert!(role.link_up, "node :{}", n.port);
            masters += usize::from(role.master);
        }
        assert_eq!(masters, 3);
        env.health().await.unwrap();
        let dir = env.run_dir().unwrap().to_owned();
        let pids: Vec<u32> = cluster.nodes.iter().filter_map(|n| n.pid).collect();
        assert_eq!(pids.len(), LOCAL_NODES);
        env.shutdown();
        assert!(!dir.exists(), "{} is left behind", dir.display());
        for pid in pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "node {pid} still runs");
        }
    }
}
