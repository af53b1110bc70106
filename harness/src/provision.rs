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
];

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
    pub need_postgres: bool,
    pub need_redis: bool,
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

impl RedisTarget {
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.url.as_str())
    }

    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }
}

/// The servers of a run. Dropping it stops whatever it started and removes its directory.
pub struct Env {
    pub pg: Option<PgTarget>,
    pub redis: Option<RedisTarget>,
    pub servers: Servers,
    local: Option<LocalServers>,
    #[cfg(feature = "docker")]
    _containers: Vec<Box<dyn std::any::Any + Send + Sync>>,
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
    }

    pub fn postgres(&self) -> anyhow::Result<&PgTarget> {
        self.pg.as_ref().ok_or_else(|| anyhow::anyhow!("this run has no Postgres server"))
    }

    pub fn redis(&self) -> anyhow::Result<&RedisTarget> {
        self.redis.as_ref().ok_or_else(|| anyhow::anyhow!("this run has no Redis server"))
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
        crate::resources::Probe {
            postgres_pid: self.pg.as_ref().and_then(|p| p.pid),
            redis_pid: self.redis.as_ref().and_then(|r| r.pid),
        }
    }

    /// Whether this run started its servers itself (so it can start fresh ones).
    pub fn is_local(&self) -> bool {
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
    }
    let mut env = Env {
        pg: None,
        redis: None,
        servers: Servers { provider: "external".into(), postgres: None, redis: None },
        local: None,
        #[cfg(feature = "docker")]
        _containers: Vec::new(),
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
    let want_pg = req.need_postgres && env.pg.is_none();
    let want_redis = req.need_redis && env.redis.is_none();
    if !want_pg && !want_redis {
        return Ok(env);
    }
    let local_ok = local_binaries_missing(want_pg, want_redis);
    match (req.provider, local_ok) {
        (Provider::Auto | Provider::Local, Ok(())) => {
            let dir = make_run_dir().map_err(|e| ProvisionError::StartFailed {
                server: "provisioning",
                reason: format!("cannot create a temporary directory: {e}"),
            })?;
            let mut local = LocalServers { dir, procs: Vec::new() };
            let registered = local.dir.clone();
            register(Registered::Dir(registered));
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
            env.local = Some(local);
            env.servers.provider = "local".into();
            Ok(env)
        }
        (Provider::Docker, _) | (Provider::Auto, Err(_)) if cfg!(feature = "docker") => {
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

async fn external_pg(url: &str) -> Result<(PgTarget, ServerInfo), ProvisionError> {
    register_url(url);
    let redacted = redact(url);
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| ProvisionError::BadRequest(format!("--pg-url {redacted} is not a Postgres URL: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let dbname = config.get_dbname().unwrap_or(&user).to_owned();
    let mut target = PgTarget { config, url: redacted.clone(), pid: None, host, port, user, dbname, schema: None };
    let unreachable = |reason: String| ProvisionError::Unreachable { url: redacted.clone(), reason };
    let client = tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), target.connect())
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(error_chain(&e)))?;
    let mut info = pg_info(&client, &redacted).await.map_err(|e| unreachable(error_chain(&e)))?;
    // Someone else's database: work in a schema of the run's own, and only there.
    let schema = own_schema_name();
    client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await.map_err(|e| {
        ProvisionError::BadRequest(format!(
            "cannot create the schema {schema} to work in on {redacted} (perflab never writes outside a schema of its own): {}",
            error_chain(&e)
        ))
    })?;
    target.config.options(format!("-c search_path={schema}"));
    SCHEMAS.lock().unwrap_or_else(|e| e.into_inner()).push((schema.clone(), target.config.clone()));
    info.settings.insert("schema".into(), format!("{schema} (created for this run, dropped at its end)"));
    target.schema = Some(schema);
    Ok((target, info))
}

async fn pg_info(client: &tokio_postgres::Client, url: &str) -> Result<ServerInfo, tokio_postgres::Error> {
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let mut settings = BTreeMap::new();
    for name in ["fsync", "synchronous_commit", "shared_buffers", "max_connections", "work_mem"] {
        let v: String = client.query_one(&format!("SHOW {name}"), &[]).await?.get(0);
        settings.insert(name.to_owned(), v);
    }
    Ok(ServerInfo { version, url: url.to_owned(), settings })
}

async fn external_redis(url: &str) -> Result<(RedisTarget, ServerInfo), ProvisionError> {
    register_url(url);
    let redacted = redact(url);
    let info = redis::parse_redis_url(url)
        .ok_or_else(|| ProvisionError::BadRequest(format!("--redis-url {redacted} is not a Redis URL")))?;
    let host = info.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = info.port().unwrap_or(6379);
    let target = RedisTarget { url: url.to_owned(), redacted: redacted.clone(), pid: None, host, port };
    let server =
        redis_info(&target).await.map_err(|reason| ProvisionError::Unreachable { url: redacted.clone(), reason })?;
    Ok((target, server))
}

async fn redis_info(target: &RedisTarget) -> Result<ServerInfo, String> {
    let client = target.client().map_err(|e| e.to_string())?;
    let fut = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await?;
        let persistence: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("save").query_async(&mut con).await.unwrap_or_default();
        let aof: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut con).await.unwrap_or_default();
        Ok::<_, redis::RedisError>((info, persistence, aof))
    };
    let (info, save, aof) = tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned();
    let mut settings = BTreeMap::new();
    if let Some(v) = save.get(1) {
        settings.insert("save".to_owned(), v.clone());
    }
    if let Some(v) = aof.get(1) {
        settings.insert("appendonly".to_owned(), v.clone());
    }
    Ok(ServerInfo { version, url: target.redacted.clone(), settings })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let part = inner.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = inner.source();
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Local ephemeral servers

struct ServerProc {
    name: &'static str,
    child: Child,
}

struct LocalServers {
    dir: PathBuf,
    procs: Vec<ServerProc>,
}

impl LocalServers {
    fn stop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            stop_process(&mut p.child, p.name);
            unregister(&Registered::Pid(p.child.id()));
        }
        self.procs.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
        unregister(&Registered::Dir(self.dir.clone()));
    }
}

impl Drop for LocalServers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ask a server to stop (Postgres: fast shutdown; Redis: SIGTERM), then kill its whole
/// process group if it has not gone within 5 s.
fn stop_process(child: &mut Child, name: &str) {
    let pid = child.id() as libc::pid_t;
    let sig = if name == "postgres" { libc::SIGINT } else { libc::SIGTERM };
    // SAFETY: plain syscalls on a pid we started and have not reaped yet.
    unsafe {
        libc::kill(pid, sig);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: as above; the negative pid addresses the server's process group.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Backends left orphaned by a killed postmaster share its process group.
    // SAFETY: signalling a process group we created; ESRCH when it is already empty.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Schemas this process created on external servers, with how to reach them, until dropped.
static SCHEMAS: Mutex<Vec<(String, tokio_postgres::Config)>> = Mutex::new(Vec::new());

/// `perflab_<host>_<pid>_<n>`: unique to this process, and telling a DBA whose it is.
fn own_schema_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(20)
        .collect();
    format!("perflab_{host}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Drop `schema` on `pg`'s server when the run ends (also on Ctrl-C), if `pg` is an external
/// server: for an experiment that needs schemas of its own beside the run's. On a server the
/// run started, nothing to do: the server goes with its data.
pub fn drop_at_end(pg: &PgTarget, schema: &str) {
    if pg.schema.is_none() {
        return;
    }
    let mut all = SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|(s, _)| s == schema) {
        all.push((schema.to_owned(), pg.config.clone()));
    }
}

/// Drop the schemas this process created on external servers. Runs on a thread of its own
/// with its own runtime, so it works from a destructor, a signal handler's task or a plain
/// thread alike; each drop waits at most 10 s.
fn drop_schemas() {
    let todo: Vec<(String, tokio_postgres::Config)> =
        std::mem::take(&mut *SCHEMAS.lock().unwrap_or_else(|e| e.into_inner()));
    if todo.is_empty() {
        return;
    }
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        for (schema, config) in todo {
            // The timer is made inside the runtime: outside it, a timeout has no clock.
            let outcome = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), async {
                    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await
                })
                .await
            });
            let why = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => error_chain(&e),
                Err(_) => "no answer within 10 s".to_owned(),
            };
            eprintln!("perflab: could not drop the schema {schema} it worked in ({}); drop it by hand", redact(&why));
        }
    })
    .join();
}

/// What the Ctrl-C path must clean up: every live server and run directory.
#[derive(Debug, Clone, PartialEq)]
enum Registered {
    Pid(u32),
    Dir(PathBuf),
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

fn register(r: Registered) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).push(r);
}

fn unregister(r: &Registered) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).retain(|x| x != r);
}

/// Track a child process (a measurement worker) so that `cleanup_all` kills it.
pub fn track_child(pid: u32) {
    register(Registered::Pid(pid));
}

/// The child has exited and been reaped.
pub fn untrack_child(pid: u32) {
    unregister(&Registered::Pid(pid));
}

/// Track a temporary directory so that `cleanup_all` removes it.
pub fn track_dir(dir: &Path) {
    register(Registered::Dir(dir.to_path_buf()));
}

/// Remove a tracked temporary directory now.
pub fn remove_tracked_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    unregister(&Registered::Dir(dir.to_path_buf()));
}

/// Stop every server and remove every directory this process started, from any thread.
/// For signal handlers: the owning `Env` may never get to run its destructor.
pub fn cleanup_all() {
    drop_schemas();
    let items: Vec<Registered> = std::mem::take(&mut *REGISTRY.lock().unwrap_or_else(|e| e.into_inner()));
    for item in &items {
        if let Registered::Pid(pid) = item {
            // SAFETY: signalling processes (and their groups) that this process started.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for item in &items {
        if let Registered::Pid(pid) = item {
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(*pid) {
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: as above; waitpid reaps our own child so no zombie stays in the table.
            unsafe {
                libc::kill(-(*pid as libc::pid_t), libc::SIGKILL);
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
    for item in &items {
        if let Registered::Dir(d) = item {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z')).unwrap_or(false))
        .unwrap_or(true)
}

/// The prefixes of the temporary directories perflab makes, each followed by the owning
/// process's pid and a counter: `perflab-<pid>-<n>` (servers), `perflab-micro-<pid>-<n>`.
const TEMP_PREFIXES: &[&str] = &["perflab-micro-", "perflab-"];

/// The pid in a perflab temporary directory's name, if the name is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    TEMP_PREFIXES.iter().find_map(|prefix| {
        let rest = name.strip_prefix(prefix)?;
        let (pid, n) = rest.split_once('-')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        pid.parse().ok()
    })
}

/// Remove the temporary directories left by perflab processes that are gone (a harness
/// killed with SIGKILL cannot clean up after itself; its servers die with it, their data
/// directories do not). Returns what was removed. Directories of live processes, and
/// anything not named like ours, are left alone.
pub fn sweep_leftovers() -> Vec<PathBuf> {
    sweep_leftovers_in(&std::env::temp_dir())
}

fn sweep_leftovers_in(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
        if alive || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // Servers die with their harness, but a backend may still be finishing (and writing)
        // when the sweep comes: stop whatever still runs from the directory, then remove it.
        kill_processes_using(&e.path());
        for attempt in 0..20 {
            if std::fs::remove_dir_all(e.path()).is_ok() || !e.path().exists() {
                removed.push(e.path());
                break;
            }
            std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
        }
    }
    removed
}

/// SIGKILL every process whose command line names `dir` or whose working directory is in it.
fn kill_processes_using(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(p.path().join("cwd")).ok();
        if String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.is_some_and(|c| c.starts_with(dir)) {
            // SAFETY: a plain signal to a leftover server of a perflab run that is gone.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn make_run_dir() -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    let dir = base.join(format!("perflab-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir)?;
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Where to find the Postgres server binaries: `PERFLAB_PG_BIN`, then the directory of an
/// `initdb` on PATH (symlinks resolved), then the newest `/usr/lib/postgresql/*/bin`.
pub fn find_pg_bin() -> Option<PathBuf> {
    let ok = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("PERFLAB_PG_BIN").map(PathBuf::from) {
        return ok(&d).then_some(d);
    }
    if let Some(initdb) = which("initdb") {
        if let Some(dir) = std::fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_owned)) {
            if ok(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ok(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// The first `name` on PATH, or in the Postgres bin directory for Postgres tools.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn local_binaries_missing(want_pg: bool, want_redis: bool) -> Result<(), String> {
    let mut missing = Vec::new();
    if want_pg && find_pg_bin().is_none() {
        missing.push("PostgreSQL server binaries (initdb, postgres) not found: install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql), set PERFLAB_PG_BIN, pass --pg-url, or build with --features docker and use --provider docker");
    }
    if want_redis && which("redis-server").is_none() {
        missing.push("redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; macOS: brew install redis), pass --redis-url, or build with --features docker and use --provider docker");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// The unprivileged account to run Postgres as when we are root.
struct RunAs {
    uid: u32,
    gid: u32,
}

fn unprivileged_user() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let cname = std::ffi::CString::new(name).expect("no NUL");
        // SAFETY: getpwnam returns a pointer to static storage or null; we copy out at once.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null result of getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Ok(Some(RunAs { uid, gid }));
        }
    }
    Err("running as root, and neither a `postgres` nor a `nobody` account exists to run Postgres as".into())
}

fn chown_recursive(path: &Path, who: &RunAs) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path)? {
            chown_recursive(&entry?.path(), who)?;
        }
    }
    Ok(())
}

/// Configure a server command: its own process group (a terminal's Ctrl-C reaches only the
/// harness, which then stops the server in order), the unprivileged user, and death with the
/// harness as a last resort.
fn server_command(program: &Path, run_as: Option<&RunAs>, log: &Path) -> std::io::Result<Command> {
    let log_file = std::fs::File::create(log)?;
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file).process_group(0);
    // The unprivileged user may not be able to enter the caller's working directory.
    if let Some(dir) = log.parent() {
        cmd.current_dir(dir);
    }
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(cmd)
}

fn tail(path: &Path, lines: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PERFLAB_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("perflab");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/perflab");
    }
    std::env::temp_dir().join("perflab-cache")
}

fn command_output(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A data directory made by `initdb` once per Postgres version and user, copied for every
/// start: `initdb` takes seconds, a copy a fraction of one.
fn pg_template(bin: &Path, version: &str, run_as: Option<&RunAs>, scratch: &Path) -> Result<PathBuf, String> {
    let owner = run_as.map(|r| r.uid).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    });
    let slug: String = version.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let cache = cache_dir();
    let template = cache.join(format!("pg-template-{slug}-uid{owner}"));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create cache directory {}: {e}", cache.display()))?;
    // initdb runs as the unprivileged user, which may not reach the cache (root's home), so it
    // writes into the run's scratch directory, and the result is copied into the cache.
    let fresh = scratch.join("initdb");
    std::fs::create_dir_all(&fresh).map_err(|e| e.to_string())?;
    if let Some(who) = run_as {
        chown_recursive(&fresh, who).map_err(|e| format!("chown {}: {e}", fresh.display()))?;
    }
    let log = scratch.join("initdb.log");
    let status = server_command(&bin.join("initdb"), run_as, &log)
        .and_then(|mut c| {
            c.args(["-D"])
                .arg(&fresh)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
                .status()
        })
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !status.success() {
        return Err(format!("initdb failed: {}", tail(&log, 5)));
    }
    let staging = cache.join(format!(".pg-template-{slug}-uid{owner}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(&fresh, &staging)?;
    let _ = std::fs::remove_dir_all(&fresh);
    // Another run may have finished first; either copy is as good.
    if std::fs::rename(&staging, &template).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(template)
}

/// `cp -a`: keeps owners and modes (Postgres insists its data directory is 0700 and its own).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().map_err(|e| format!("cannot run cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("cp -a {} {}: {}", from.display(), to.display(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

enum Ready<T> {
    Up(T),
    /// The server exited (a port taken since we probed it, say): the reason, from its log.
    Exited(String),
}

/// Poll `ready` every 10 ms until it answers, the server started last exits, or
/// `START_TIMEOUT` passes (an error naming the log's last lines).
async fn wait_ready<T, Fut: std::future::Future<Output = Option<T>>>(
    local: &mut LocalServers,
    log: &Path,
    mut ready: impl FnMut() -> Fut,
) -> Result<Ready<T>, String> {
    let started = Instant::now();
    loop {
        if let Some(v) = ready().await {
            return Ok(Ready::Up(v));
        }
        let proc = local.procs.last_mut().expect("a server was just started");
        if let Ok(Some(status)) = proc.child.try_wait() {
            unregister(&Registered::Pid(proc.child.id()));
            local.procs.pop();
            return Ok(Ready::Exited(format!("exited with {status}: {}", tail(log, 5))));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!("not ready after {}s: {}", START_TIMEOUT.as_secs(), tail(log, 5)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start_postgres(local: &mut LocalServers) -> Result<(PgTarget, ServerInfo), ProvisionError> {
    let fail = |reason: String| ProvisionError::StartFailed { server: "postgres", reason };
    let bin = find_pg_bin().ok_or_else(|| fail("binaries vanished".into()))?;
    let version_line = command_output(&bin.join("postgres"), &["--version"]).unwrap_or_else(|| "unknown".into());
    let version = version_line.rsplit(' ').next().unwrap_or("unknown").to_owned();
    let run_as = unprivileged_user().map_err(fail)?;
    let template = pg_template(&bin, &version, run_as.as_ref(), &local.dir).map_err(fail)?;
    let data = local.dir.join("pgdata");
    copy_tree(&template, &data).map_err(fail)?;
    let sock = local.dir.join("pgsock");
    std::fs::create_dir_all(&sock).map_err(|e| fail(e.to_string()))?;
    if let Some(who) = &run_as {
        chown_recursive(&data, who).and_then(|_| chown_recursive(&sock, who)).map_err(|e| fail(e.to_string()))?;
    }
    set_mode(&data, 0o700).map_err(|e| fail(e.to_string()))?;
    let log = local.dir.join("postgres.log");
    let stat_statements = bin.parent().map(|p| p.join("lib/pg_stat_statements.so").is_file()).unwrap_or(false);
    // A free port can be taken between our probe and the server's bind: try a few.
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port().map_err(|e| fail(e.to_string()))?;
        let mut cmd = server_command(&bin.join("postgres"), run_as.as_ref(), &log).map_err(|e| fail(e.to_string()))?;
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string()).arg("-k").arg(&sock);
        for (k, v) in PG_SETTINGS {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        // Planning statistics for the experiments that need them, where contrib is installed.
        if stat_statements {
            cmd.args([
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.track_planning=on",
            ]);
        }
        let child = cmd.spawn().map_err(|e| fail(format!("cannot run {}: {e}", bin.join("postgres").display())))?;
        let pid = child.id();
        register(Registered::Pid(pid));
        local.procs.push(ServerProc { name: "postgres", child });
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(port).user("postgres").dbname("postgres").connect_timeout(Duration::from_secs(2));
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let target = PgTarget {
            config,
            url: url.clone(),
            pid: Some(pid),
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            dbname: "postgres".into(),
            schema: None,
        };
        let probe = || async {
            let client = target.connect().await.ok()?;
            pg_info(&client, &url).await.ok()
        };
        match wait_ready(local, &log, probe).await.map_err(fail)? {
            Ready::Up(mut info) => {
                info.settings.insert("provider".into(), "local ephemeral".into());
                if stat_statements {
                    info.settings.insert("shared_preload_libraries".into(), "pg_stat_statements".into());
                }
                return Ok((target, info));
            }
            Ready::Exited(why) => last_err = why,
        }
    }
    Err(fail(last_err))
}

async fn start_redis(local: &mut LocalServers) -> Result<(RedisTarget, ServerInfo), ProvisionError> {
    let fail = |reason: String| ProvisionError::StartFailed { server: "redis", reason };
    let program = which("redis-server").ok_or_else(|| fail("redis-server vanished".into()))?;
    let dir = local.dir.join("redis");
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let log = local.dir.join("redis.log");
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port().map_err(|e| fail(e.to_string()))?;
        let mut cmd = server_command(&program, None, &log).map_err(|e| fail(e.to_string()))?;
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes", "--dir"])
            .arg(&dir);
        let child = cmd.spawn().map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
        let pid = child.id();
        register(Registered::Pid(pid));
        local.procs.push(ServerProc { name: "redis", child });
        let url = format!("redis://127.0.0.1:{port}");
        let target =
            RedisTarget { url: url.clone(), redacted: url.clone(), pid: Some(pid), host: "127.0.0.1".into(), port };
        match wait_ready(local, &log, || async { redis_info(&target).await.ok() }).await.map_err(fail)? {
            Ready::Up(mut info) => {
                info.settings.insert("provider".into(), "local ephemeral".into());
                return Ok((target, info));
            }
            Ready::Exited(why) => last_err = why,
        }
    }
    Err(fail(last_err))
}

#[cfg(feature = "docker")]
mod docker {
    //! Postgres and Redis in containers, for machines with Docker but without the binaries.
    use super::*;
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};

    /// Pinned tags: a result must say exactly what it ran against.
    pub const POSTGRES_IMAGE: (&str, &str) = ("postgres", "15.8-bookworm");
    pub const REDIS_IMAGE: (&str, &str) = ("redis", "7.0.15-bookworm");

    /// Whether a Docker daemon can be reached: `DOCKER_HOST`, or the default socket.
    pub fn daemon_reachable() -> bool {
        std::env::var_os("DOCKER_HOST").is_some()
            || std::os::unix::net::UnixStream::connect("/var/run/docker.sock").is_ok()
    }

    pub async fn provide(env: &mut Env, want_pg: bool, want_redis: bool) -> Result<(), ProvisionError> {
        if !daemon_reachable() {
            return Err(ProvisionError::NothingAvailable(
                "no Docker daemon is reachable (DOCKER_HOST unset, /var/run/docker.sock refuses): start Docker, or install the PostgreSQL and Redis server binaries (Debian/Ubuntu: apt-get install postgresql redis-server) and use --provider local".into(),
            ));
        }
        let fail = |server: &'static str, e: &dyn std::fmt::Display| ProvisionError::StartFailed {
            server,
            reason: format!("docker: {e}"),
        };
        if want_pg {
            let container = GenericImage::new(POSTGRES_IMAGE.0, POSTGRES_IMAGE.1)
                .with_exposed_port(5432.tcp())
                .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
                .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
                .with_cmd(PG_SETTINGS.iter().flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]).map(|s| {
                    if s == "listen_addresses=127.0.0.1" {
                        "listen_addresses=*".to_owned()
                    } else {
                        s
                    }
                }))
                .start()
                .await
                .map_err(|e| fail("postgres", &e))?;
            let port = container.get_host_port_ipv4(5432.tcp()).await.map_err(|e| fail("postgres", &e))?;
            let (target, mut info) = external_pg(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).await?;
            info.settings.insert("image".into(), format!("{}:{}", POSTGRES_IMAGE.0, POSTGRES_IMAGE.1));
            env.pg = Some(target);
            env.servers.postgres = Some(info);
            env._containers.push(Box::new(container));
        }
        if want_redis {
            let container = GenericImage::new(REDIS_IMAGE.0, REDIS_IMAGE.1)
                .with_exposed_port(6379.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
                .with_cmd(["redis-server", "--save", "", "--appendonly", "no"])
                .start()
                .await
                .map_err(|e| fail("redis", &e))?;
            let port = container.get_host_port_ipv4(6379.tcp()).await.map_err(|e| fail("redis", &e))?;
            let (target, mut info) = external_redis(&format!("redis://127.0.0.1:{port}")).await?;
            info.settings.insert("image".into(), format!("{}:{}", REDIS_IMAGE.0, REDIS_IMAGE.1));
            env.redis = Some(target);
            env.servers.redis = Some(info);
            env._containers.push(Box::new(container));
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn images_are_pinned() {
            for (name, tag) in [POSTGRES_IMAGE, REDIS_IMAGE] {
                assert!(!tag.is_empty() && tag != "latest", "{name}:{tag} must be a pinned tag");
                assert!(tag.chars().next().unwrap().is_ascii_digit(), "{name}:{tag} starts with a version");
            }
        }

        #[tokio::test]
        async fn without_a_daemon_docker_says_what_to_do() {
            if daemon_reachable() {
                return; // a machine with Docker runs the real thing instead
            }
            let req = Request { provider: Provider::Docker, need_postgres: true, ..Request::default() };
            let err = provision(&req).await.expect_err("no daemon");
            assert!(matches!(err, ProvisionError::NothingAvailable(_)), "{err}");
            assert!(err.is_user_error());
        }
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn only_directories_of_dead_perflab_processes_are_swept() {
        let base = std::env::temp_dir().join(format!("perflab-sweep-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // No pid is ever above 2^22 on Linux: these owners are certainly gone.
        let dead = [base.join("perflab-999999999-0"), base.join("perflab-micro-999999998-3")];
        let mine = base.join(format!("perflab-{}-0", std::process::id()));
        let other = [base.join("perflab-cache"), base.join("perflab-e2e-bench-999999999"), base.join("perflab-x-1")];
        for d in dead.iter().chain([&mine]).chain(other.iter()) {
            std::fs::create_dir_all(d.join("pgdata")).unwrap();
        }
        let mut removed = sweep_leftovers_in(&base);
        removed.sort();
        let mut want = dead.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(mine.exists(), "a live process's directory stays");
        assert!(other.iter().all(|d| d.exists()), "directories not named perflab-<pid>-<n> stay");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
