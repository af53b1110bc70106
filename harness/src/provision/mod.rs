//! Where Postgres and Redis come from: explicit URLs, ephemeral local servers started from the
//! machine's binaries (the default), or Docker containers (feature `docker`).
//!
//! Local servers live in one temporary directory per run, listen on free loopback ports, run
//! with durability off, and are stopped and removed when the `Env` is dropped (normal end,
//! error, panic) or by `cleanup_all` (Ctrl-C). As a last resort each server gets
//! `PR_SET_PDEATHSIG`, so even a killed harness does not leave one running.

use crate::redact::{redact, register_url};
use crate::results::{ServerInfo, Servers};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod cluster;
pub mod cpucap;
#[cfg(feature = "docker")]
pub mod docker;
mod external;
mod local;
mod schemas;

use crate::reaper::{hostname, is_zombie};
pub use cluster::{parse_role, ClusterNode, NodeRole, RedisClusterTarget};
use external::{error_chain, external_pg, external_redis, pg_info, redis_info};
pub use local::cache_dir;
pub use local::{find_pg_bin, which};
use local::{local_binaries_missing, make_run_dir, start_postgres, start_redis, LocalServers};
pub use schemas::drop_at_end;
use schemas::{drop_schemas, own_schema_name, SCHEMAS};

/// How long a server may take to accept connections before the start counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an explicit URL may take to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a health check waits for a server that should answer at once.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Settings that make an ephemeral Postgres fast and disposable: nothing it holds outlives the run.
const PG_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "256MB"),
    ("max_connections", "300"),
    ("listen_addresses", "127.0.0.1"),
    ("logging_collector", "off"),
    ("autovacuum", "on"),
    ("password_encryption", "scram-sha-256"),
];

/// A fresh password for a server this run starts: 128 bits from the kernel, in hex, known to
/// the redaction before it is used, so no output can show it.
pub(crate) fn new_password() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the run's password: {e}"))?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::redact::register_secret(&password);
    Ok(password)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// Explicit URLs where given, else local binaries, else Docker (when built in).
    #[default]
    Auto,
    Local,
    Docker,
    External,
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "local" => Ok(Self::Local),
            "docker" => Ok(Self::Docker),
            "external" => Ok(Self::External),
            other => Err(format!("unknown provider {other:?}: expected auto, local, docker or external")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub provider: Provider,
    pub pg_url: Option<String>,
    pub redis_url: Option<String>,
    /// Seed URL(s) of an existing Redis Cluster, comma-separated (`--redis-cluster-url`).
    pub redis_cluster_url: Option<String>,
    pub need_postgres: bool,
    pub need_redis: bool,
    pub need_redis_cluster: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Nothing can provide a server: the message names what to install.
    #[error("{0}")]
    NothingAvailable(String),
    #[error("cannot connect to {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{server} failed to start: {reason}")]
    StartFailed { server: &'static str, reason: String },
    #[error("{0}")]
    BadRequest(String),
}

impl ProvisionError {
    /// Input or environment problems (exit code 2), as opposed to failures mid-run.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::StartFailed { .. })
    }
}

/// A Postgres server to talk to.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    /// Redacted URL, for messages and results.
    pub url: String,
    /// Postmaster pid when this run started the server (for resource accounting).
    pub pid: Option<u32>,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    /// On a server the run did not start: the schema of its own the run works in (every
    /// connection's `search_path`), created at the start and dropped at the end, so the lab
    /// never touches a table it did not create.
    pub schema: Option<String>,
    /// The URL as given, password included: only for a trial server of the same run
    /// (`trial_server`), which gets it through its environment, never its command line.
    pub(crate) secret_url: Secret,
}

/// A string that never prints: `Debug` shows a placeholder.
#[derive(Clone, Default)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl PgTarget {
    /// Open one connection; its driver task runs on the current tokio runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// The same server reached at `addr` instead (a proxy in front of it): same user,
    /// password, database and schema.
    pub fn via(&self, addr: std::net::SocketAddr) -> PgTarget {
        let mut config = tokio_postgres::Config::new();
        config.host(addr.ip().to_string()).port(addr.port()).dbname(self.dbname.as_str()).user(self.user.as_str());
        if let Some(pw) = self.config.get_password() {
            config.password(pw);
        }
        if let Some(options) = self.config.get_options() {
            config.options(options);
        }
        if let Some(t) = self.config.get_connect_timeout() {
            config.connect_timeout(*t);
        }
        PgTarget { config, host: addr.ip().to_string(), port: addr.port(), pid: None, ..self.clone() }
    }

    /// Environment for Postgres's own tools (pgbench, psql): the run's schema (`PGOPTIONS`)
    /// and the password, which never goes on a command line.
    pub fn tool_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(schema) = &self.schema {
            env.push(("PGOPTIONS", format!("-c search_path={schema}")));
        }
        if let Some(pw) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        env
    }

    /// Environment for a Go original (lib/pq reads libpq's variables): host, port, user,
    /// database, no TLS, the password, and the run's schema in `PERFLAB_PG_SCHEMA`. Never a
    /// command line.
    pub fn go_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGSSLMODE", "disable".to_owned()),
        ];
        if let Some(pw) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        if let Some(schema) = &self.schema {
            env.push(("PERFLAB_PG_SCHEMA", schema.clone()));
        }
        env
    }

    /// Connect options for sqlx to reach this server as tokio-postgres does: the same host,
    /// port, user, password and database, no TLS, and the run's schema (on a server the run
    /// did not start) as every connection's `search_path`. Never a URL: the one in `url` is
    /// redacted, and a URL would carry the password into whatever prints it.
    pub fn sqlx_options(&self) -> sqlx::postgres::PgConnectOptions {
        let mut o = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .database(&self.dbname)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        if let Some(pw) = self.config.get_password() {
            o = o.password(&String::from_utf8_lossy(pw));
        }
        if let Some(schema) = &self.schema {
            o = o.options([("search_path", schema.as_str())]);
        }
        o
    }

    /// Arguments for Postgres's own tools (pgbench, psql) to reach this server.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.host.clone(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            self.user.clone(),
            self.dbname.clone(),
        ]
    }
}

/// A Redis server to talk to.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub url: String,
    redacted: String,
    pub pid: Option<u32>,
    pub host: String,
    pub port: u16,
}

/// The environment variable that tells a trial server which side it serves (`trial_server`).
pub const SIDE_VAR: &str = "PERFLAB_TRIAL_SIDE";

/// The tag of the side this process serves, when it is a trial server.
pub fn side_tag() -> Option<String> {
    std::env::var(SIDE_VAR).ok().filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The prefix of every Redis key `experiment` writes: its own, and under `--against` its
/// side's, so the two builds never share a key.
pub fn redis_prefix(experiment: &str) -> String {
    match side_tag() {
        Some(side) => format!("perflab:{side}:{experiment}:"),
        None => format!("perflab:{experiment}:"),
    }
}

/// A Redis client for `url` whose connections set TCP_NODELAY, as Go's net package does on
/// every TCP connection (so go-redis does): the redis crate leaves Nagle's algorithm on, which
/// can hold a small write back until the previous one is acknowledged.
pub fn redis_client(url: &str) -> redis::RedisResult<redis::Client> {
    redis::Client::open(redis::IntoConnectionInfo::into_connection_info(url)?.set_tcp_settings(nodelay()))
}

/// TCP settings with TCP_NODELAY on (`redis_client`).
pub fn nodelay() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

impl RedisTarget {
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis_client(&self.url)
    }

    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// Arguments for Redis's own tools (redis-benchmark) to reach this server: host, port and,
    /// where it has one, the password (`-a`: redis-benchmark reads none from its environment,
    /// so while it runs its command line shows it to a local user who lists processes).
    pub fn tool_args(&self) -> Vec<String> {
        let mut args = vec!["-h".to_owned(), self.host.clone(), "-p".to_owned(), self.port.to_string()];
        let info = redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).ok();
        if let Some(pw) = info.as_ref().and_then(|i| i.redis_settings().password()) {
            args.extend(["-a".to_owned(), pw.to_owned()]);
        }
        args
    }
}

/// The servers of a run. Dropping it stops whatever it started and removes its directory.
pub struct Env {
    pub pg: Option<PgTarget>,
    pub redis: Option<RedisTarget>,
    pub redis_cluster: Option<RedisClusterTarget>,
    pub servers: Servers,
    local: Option<LocalServers>,
    /// Containers this run started (`--provider docker`), removed with it.
    #[cfg(feature = "docker")]
    docker: Option<docker::Containers>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("pg", &self.pg).field("redis", &self.redis).finish()
    }
}

impl Env {
    /// The temporary directory of locally started servers, if any.
    pub fn run_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir.as_path())
    }

    /// Pids of the server processes this run started.
    pub fn server_pids(&self) -> Vec<u32> {
        self.local.as_ref().map(|l| l.procs.iter().map(|p| p.child.id()).collect()).unwrap_or_default()
    }

    /// Stop everything now (also done on drop): the servers this run started, and the schema
    /// it worked in on an external Postgres.
    pub fn shutdown(&mut self) {
        if self.pg.as_mut().and_then(|pg| pg.schema.take()).is_some() {
            // The run's schema and any an experiment asked to be dropped with it.
            drop_schemas();
        }
        if let Some(mut local) = self.local.take() {
            local.stop();
        }
        #[cfg(feature = "docker")]
        if let Some(mut containers) = self.docker.take() {
            containers.remove();
        }
    }

    pub fn postgres(&self) -> anyhow::Result<&PgTarget> {
        self.pg.as_ref().ok_or_else(|| anyhow::anyhow!("this run has no Postgres server"))
    }

    pub fn redis(&self) -> anyhow::Result<&RedisTarget> {
        self.redis.as_ref().ok_or_else(|| anyhow::anyhow!("this run has no Redis server"))
    }

    pub fn redis_cluster(&self) -> anyhow::Result<&RedisClusterTarget> {
        self.redis_cluster.as_ref().ok_or_else(|| anyhow::anyhow!("this run has no Redis Cluster"))
    }

    /// Whether the servers still serve: every process this run started is alive, and each
    /// server takes a new connection and answers a trivial request within `HEALTH_TIMEOUT`.
    /// The error names the server and what is wrong with it.
    pub async fn health(&self) -> Result<(), String> {
        if let Some(local) = &self.local {
            for p in &local.procs {
                let pid = p.child.id();
                if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
                    return Err(format!("the run's {} server (pid {pid}) has died", p.name));
                }
            }
        }
        if let Some(pg) = &self.pg {
            answers("Postgres", &pg.url, async {
                let client = pg.connect().await.map_err(|e| error_chain(&e))?;
                client.simple_query("SELECT 1").await.map_err(|e| error_chain(&e))?;
                Ok(())
            })
            .await?;
        }
        for n in self.redis_cluster.iter().flat_map(|c| &c.nodes) {
            answers("Redis Cluster node", &redact(&n.url), async {
                let client = redis_client(&n.url).map_err(|e| e.to_string())?;
                let mut con = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
                redis::cmd("PING").query_async::<String>(&mut con).await.map_err(|e| e.to_string())?;
                Ok(())
            })
            .await?;
        }
        if let Some(r) = &self.redis {
            answers("Redis", r.redacted_url(), async {
                let client = r.client().map_err(|e| e.to_string())?;
                let mut con = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
                redis::cmd("PING").query_async::<String>(&mut con).await.map_err(|e| e.to_string())?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// What the resource probe watches: the server processes this run started.
    pub fn probe(&self) -> crate::resources::Probe {
        let nodes = self.redis_cluster.iter().flat_map(|c| &c.nodes);
        crate::resources::Probe {
            postgres_pid: self.pg.as_ref().and_then(|p| p.pid),
            redis_pid: self.redis.as_ref().and_then(|r| r.pid),
            other_pids: nodes.clone().filter_map(|n| n.pid).collect(),
            blind: self.pg.as_ref().is_some_and(|p| p.pid.is_none())
                || self.redis.as_ref().is_some_and(|r| r.pid.is_none())
                || nodes.clone().any(|n| n.pid.is_none()),
        }
    }

    /// Whether this run started its servers itself, from local binaries or as containers (so
    /// it can start fresh ones); an external server is someone else's.
    pub fn owns_servers(&self) -> bool {
        #[cfg(feature = "docker")]
        if self.docker.is_some() {
            return true;
        }
        self.local.is_some()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether `server` at `url` answers `probe` within `HEALTH_TIMEOUT`; the error says how not.
async fn answers(
    server: &str,
    url: &str,
    probe: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{server} at {url} does not answer: {e}")),
        Err(_) => Err(format!("{server} at {url} gave no answer within {} s", HEALTH_TIMEOUT.as_secs())),
    }
}

/// Provide the servers `req` asks for.
pub async fn provision(req: &Request) -> Result<Env, ProvisionError> {
    let external_only = req.provider == Provider::External;
    if external_only {
        if req.need_postgres && req.pg_url.is_none() {
            return Err(ProvisionError::BadRequest(
                "--provider external needs --pg-url (or PERFLAB_PG_URL) for the Postgres experiments".into(),
            ));
        }
        if req.need_redis && req.redis_url.is_none() {
            return Err(ProvisionError::BadRequest(
                "--provider external needs --redis-url (or PERFLAB_REDIS_URL) for the Redis experiments".into(),
            ));
        }
        if req.need_redis_cluster && req.redis_cluster_url.is_none() {
            return Err(ProvisionError::BadRequest(
                "--provider external needs --redis-cluster-url (or PERFLAB_REDIS_CLUSTER_URL) for the Redis Cluster experiment".into(),
            ));
        }
    }
    let mut env = Env {
        pg: None,
        redis: None,
        redis_cluster: None,
        servers: Servers { provider: "external".into(), postgres: None, redis: None, redis_cluster: None },
        local: None,
        #[cfg(feature = "docker")]
        docker: None,
    };
    // Explicit URLs first: they are used whatever the provider.
    if req.need_postgres {
        if let Some(url) = &req.pg_url {
            let (target, info) = external_pg(url).await?;
            env.pg = Some(target);
            env.servers.postgres = Some(info);
        }
    }
    if req.need_redis {
        if let Some(url) = &req.redis_url {
            let (target, info) = external_redis(url).await?;
            env.redis = Some(target);
            env.servers.redis = Some(info);
        }
    }
    if req.need_redis_cluster {
        if let Some(urls) = &req.redis_cluster_url {
            let (target, info) = cluster::external_redis_cluster(urls).await?;
            env.redis_cluster = Some(target);
            env.servers.redis_cluster = Some(info);
        }
    }
    let want_pg = req.need_postgres && env.pg.is_none();
    let want_redis = req.need_redis && env.redis.is_none();
    let want_cluster = req.need_redis_cluster && env.redis_cluster.is_none();
    if !want_pg && !want_redis && !want_cluster {
        return Ok(env);
    }
    let local_ok = local_binaries_missing(want_pg, want_redis, want_cluster);
    match (req.provider, local_ok) {
        (Provider::Auto | Provider::Local, Ok(())) => {
            let dir = make_run_dir().map_err(|e| ProvisionError::StartFailed {
                server: "provisioning",
                reason: format!("cannot create a temporary directory: {e}"),
            })?;
            let mut local = LocalServers { dir, procs: Vec::new() };
            let registered = local.dir.clone();
            crate::reaper::register(crate::reaper::Registered::Dir(registered));
            if want_pg {
                let (target, info) = start_postgres(&mut local).await?;
                env.pg = Some(target);
                env.servers.postgres = Some(info);
            }
            if want_redis {
                let (target, info) = start_redis(&mut local).await?;
                env.redis = Some(target);
                env.servers.redis = Some(info);
            }
            if want_cluster {
                let (target, info) = cluster::start_redis_cluster(&mut local).await?;
                env.redis_cluster = Some(target);
                env.servers.redis_cluster = Some(info);
            }
            env.local = Some(local);
            env.servers.provider = "local".into();
            Ok(env)
        }
        (Provider::Docker, _) if want_cluster => Err(ProvisionError::NothingAvailable(
            "the docker provider does not start a Redis Cluster: use --provider local (six redis-server nodes on loopback) or --redis-cluster-url"
                .into(),
        )),
        (Provider::Docker, _) | (Provider::Auto, Err(_)) if cfg!(feature = "docker") && !want_cluster => {
            #[cfg(feature = "docker")]
            {
                docker::provide(&mut env, want_pg, want_redis).await?;
                env.servers.provider = "docker".into();
                Ok(env)
            }
            #[cfg(not(feature = "docker"))]
            unreachable!()
        }
        (Provider::Docker, _) => Err(ProvisionError::NothingAvailable(
            "this perflab was built without Docker support: build with `--features docker` or use --provider local"
                .into(),
        )),
        (_, Err(missing)) => Err(ProvisionError::NothingAvailable(missing)),
        (Provider::External, Ok(())) => unreachable!("checked above"),
    }
}

/// Stop every server and remove every directory this process started, and drop the schemas
/// it worked in on external servers, from any thread. For signal handlers: the owning `Env`
/// may never get to run its destructor.
pub fn cleanup_all() {
    schemas::drop_schemas();
    crate::reaper::kill_all();
    cpucap::sweep_own_empty();
    #[cfg(feature = "docker")]
    docker::remove_live();
}

/// Remove the containers of perflab runs that were killed (their owner is gone), when a Docker
/// daemon is reachable: returns how many. Without the `docker` feature, 0.
pub async fn sweep_containers() -> usize {
    #[cfg(feature = "docker")]
    if docker::daemon_reachable() {
        return docker::sweep_leftovers().await;
    }
    0
}
