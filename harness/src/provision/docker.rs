//! Docker provider: Postgres and Redis in containers, through the Docker Engine API (bollard).
//!
//! Images: pinned official tags by default (what a user whose daemon reaches Docker Hub pulls),
//! `PERFLAB_PG_IMAGE` / `PERFLAB_REDIS_IMAGE` to use others (CI builds two from Debian's
//! packages with `docker/build-local-images.sh`, since no registry is reachable there).
//!
//! Networking: a daemon without a bridge (`dockerd --bridge=none`) runs the containers on the
//! host's network, the server listening on a free loopback port the provider picks; with a
//! bridge, the container's port is published on 127.0.0.1 at a port the daemon picks. Either
//! way every connection stays on loopback.
//!
//! Lifetime: every container carries the label `org.perflab.owner=<host>/<pid>`, is removed
//! (with its anonymous volumes) when the `Env` is dropped (normal end, error, panic) or by
//! `cleanup_all` (Ctrl-C, SIGTERM), and a run sweeps the containers of owners that are gone (a
//! harness killed with SIGKILL cannot clean up after itself).
//!
//! Why bollard (the Engine API client testcontainers is built on) and not testcontainers-rs
//! 0.25 itself: testcontainers publishes a container's ports on every interface (no host
//! address can be given), and perflab's servers take connections without a password, as the
//! local ones do on loopback: with a bridge, a run would open a passwordless Postgres and Redis
//! to the network. bollard binds them to 127.0.0.1. testcontainers also removes a container
//! only from a destructor that needs a Tokio runtime (it panics outside one), and forces
//! bollard's buildkit feature (rustls, ring, tonic, zstd) into the build.

use super::local::free_port;
use super::*;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;

/// Pinned tags: a result must say exactly what it ran against.
pub const POSTGRES_IMAGE: &str = "postgres:15.8-bookworm";
pub const REDIS_IMAGE: &str = "redis:7.0.15-bookworm";
/// Environment variables naming other images (`name:tag`).
pub const PG_IMAGE_ENV: &str = "PERFLAB_PG_IMAGE";
pub const REDIS_IMAGE_ENV: &str = "PERFLAB_REDIS_IMAGE";
/// The label every container of perflab's carries: `<host>/<pid>` of the process that made it.
pub const OWNER_LABEL: &str = "org.perflab.owner";
/// How long a container's server may take to accept connections (initdb runs at first start).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one call to the daemon may take before the provider gives up on it.
const API_TIMEOUT: Duration = Duration::from_secs(20);

/// Containers started by this process and not yet removed: what `cleanup_all` removes.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether a Docker daemon may be reachable: `DOCKER_HOST` is set, or the default socket takes
/// a connection. (A cheap check; `connect` says why when it is not.)
pub fn daemon_reachable() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::os::unix::net::UnixStream::connect("/var/run/docker.sock").is_ok()
}

/// The image to run: the environment variable `var` when set (checked to be `name:tag`), else
/// `default`.
pub fn image_for(var: &str, default: &str) -> Result<String, ProvisionError> {
    image_choice(var, std::env::var(var).ok().as_deref(), default)
}

fn image_choice(var: &str, value: Option<&str>, default: &str) -> Result<String, ProvisionError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default.to_owned());
    };
    let tag = v.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/'));
    match tag {
        Some(t) if !t.is_empty() && t != "latest" => Ok(v.to_owned()),
        _ => Err(ProvisionError::BadRequest(format!(
            "{var}={v} has no pinned tag: give name:tag (not latest), so that a result says exactly what it ran against"
        ))),
    }
}

/// How the containers reach the host's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host's network (a daemon without a bridge): the server binds a loopback port.
    Host,
    /// The daemon's bridge: the container's port is published on 127.0.0.1.
    Bridge,
}

impl Network {
    fn name(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::Bridge => "bridge",
        }
    }
}

/// The containers of one `Env`: removed with it.
#[derive(Debug, Default)]
pub(super) struct Containers {
    ids: Vec<String>,
}

impl Containers {
    fn add(&mut self, id: String) {
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(id.clone());
        self.ids.push(id);
    }

    /// Remove them all now (idempotent).
    pub(super) fn remove(&mut self) {
        let ids = std::mem::take(&mut self.ids);
        if !ids.is_empty() {
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|x| !ids.contains(x));
            remove_blocking(ids);
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Remove every container this process started and has not removed: for `cleanup_all`.
pub(super) fn remove_live() {
    let ids = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    if !ids.is_empty() {
        remove_blocking(ids);
    }
}

/// Remove containers (forced, with their anonymous volumes) from a thread of its own, so that
/// it works from any context: a runtime's worker, a signal handler's task, a destructor.
fn remove_blocking(ids: Vec<String>) {
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let Ok(docker) = connect().await else {
                return;
            };
            for id in &ids {
                let _ = tokio::time::timeout(API_TIMEOUT, remove(&docker, id)).await;
            }
        });
    });
    let _ = worker.join();
}

async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    docker.remove_container(id, Some(RemoveContainerOptionsBuilder::new().force(true).v(true).build())).await
}

/// A client for the daemon (`DOCKER_HOST` or the default socket), once it has answered a ping.
async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_defaults().map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), docker.ping())
        .await
        .map_err(|_| "the Docker daemon gave no answer within 5 s".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(docker)
}

fn owner() -> String {
    format!("{}/{}", hostname(), std::process::id())
}

/// Remove the containers whose owner (on this host) is gone. Returns how many were removed.
pub async fn sweep_leftovers() -> usize {
    let Ok(docker) = connect().await else {
        return 0;
    };
    sweep_with(&docker).await
}

async fn sweep_with(docker: &Docker) -> usize {
    let filters = HashMap::from([("label", vec![OWNER_LABEL])]);
    let list = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    let Ok(Ok(containers)) = tokio::time::timeout(API_TIMEOUT, docker.list_containers(Some(list))).await else {
        return 0;
    };
    let host = hostname();
    let mut removed = 0;
    for c in containers {
        let Some(owner) = c.labels.as_ref().and_then(|l| l.get(OWNER_LABEL)) else {
            continue;
        };
        let Some((h, pid)) = owner.rsplit_once('/') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if h != host || crate::reaper::is_alive(pid) {
            continue;
        }
        if let Some(id) = c.id {
            if let Ok(Ok(())) = tokio::time::timeout(API_TIMEOUT, remove(docker, &id)).await {
                removed += 1;
            }
        }
    }
    removed
}

/// The daemon's network for our containers: the bridge when it has one, else the host's.
async fn network(docker: &Docker) -> Network {
    match docker.inspect_network("bridge", None::<bollard::query_parameters::InspectNetworkOptions>).await {
        Ok(_) => Network::Bridge,
        Err(_) => Network::Host,
    }
}

pub async fn provide(env: &mut Env, want_pg: bool, want_redis: bool) -> Result<(), ProvisionError> {
    // Input first: a bad image name is one line, before anything starts.
    let pg_image = if want_pg { Some(image_for(PG_IMAGE_ENV, POSTGRES_IMAGE)?) } else { None };
    let redis_image = if want_redis { Some(image_for(REDIS_IMAGE_ENV, REDIS_IMAGE)?) } else { None };
    let docker = connect().await.map_err(|e| {
        ProvisionError::NothingAvailable(format!(
            "no Docker daemon answers ({e}): start Docker (dockerd), or install the PostgreSQL and Redis server binaries (Debian/Ubuntu: apt-get install postgresql redis-server) and use --provider local"
        ))
    })?;
    let net = network(&docker).await;
    let containers = env.docker.get_or_insert_with(Containers::default);
    if let Some(image) = &pg_image {
        if let Started::Postgres(target, info) = start(&docker, containers, net, &Server::Postgres, image).await? {
            env.pg = Some(*target);
            env.servers.postgres = Some(info);
        }
    }
    if let Some(image) = &redis_image {
        if let Started::Redis(target, info) = start(&docker, containers, net, &Server::Redis, image).await? {
            env.redis = Some(target);
            env.servers.redis = Some(info);
        }
    }
    Ok(())
}

enum Server {
    Postgres,
    Redis,
}

enum Started {
    Postgres(Box<PgTarget>, ServerInfo),
    Redis(RedisTarget, ServerInfo),
}

impl Server {
    fn name(&self) -> &'static str {
        match self {
            Server::Postgres => "postgres",
            Server::Redis => "redis",
        }
    }

    fn container_port(&self) -> u16 {
        match self {
            Server::Postgres => 5432,
            Server::Redis => 6379,
        }
    }

    /// The container's command and environment, as the official images take them. `port` is
    /// the loopback port to bind on the host's network (`None` on a bridge); `password` the
    /// run's, which every client must give (Postgres: scram-sha-256 from the image's
    /// initialisation; Redis: `requirepass`, on the command line, which Redis replaces with its
    /// own process title once it starts).
    fn command(&self, port: Option<u16>, password: &str) -> (Vec<String>, Vec<String>) {
        match self {
            Server::Postgres => {
                let mut cmd = Vec::new();
                for (k, v) in PG_SETTINGS {
                    let v = if *k == "listen_addresses" && port.is_none() { "*" } else { v };
                    cmd.extend(["-c".to_owned(), format!("{k}={v}")]);
                }
                if let Some(p) = port {
                    cmd.extend(["-c".to_owned(), format!("port={p}")]);
                }
                // Both the official image and Debian's postgresql-15 ship pg_stat_statements.
                cmd.extend(
                    ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track_planning=on"]
                        .map(str::to_owned),
                );
                (
                    cmd,
                    vec![format!("POSTGRES_PASSWORD={password}"), "POSTGRES_HOST_AUTH_METHOD=scram-sha-256".to_owned()],
                )
            }
            Server::Redis => {
                let mut cmd: Vec<String> =
                    ["redis-server", "--save", "", "--appendonly", "no", "--requirepass", password]
                        .map(str::to_owned)
                        .to_vec();
                match port {
                    Some(p) => {
                        cmd.extend(["--port".to_owned(), p.to_string(), "--bind".to_owned(), "127.0.0.1".to_owned()])
                    }
                    // Connections come through the bridge's gateway, not loopback.
                    None => cmd.extend(["--protected-mode".to_owned(), "no".to_owned()]),
                }
                (cmd, Vec::new())
            }
        }
    }
}

/// Start `server` from `image` and wait until it answers. On the host's network a port taken
/// between our probe and the server's bind makes the server exit: a few attempts.
async fn start(
    docker: &Docker,
    containers: &mut Containers,
    net: Network,
    server: &Server,
    image: &str,
) -> Result<Started, ProvisionError> {
    let fail = |reason: String| ProvisionError::StartFailed { server: server.name(), reason: redact(&reason) };
    let image_id = ensure_image(docker, image).await.map_err(fail)?;
    let password = super::new_password().map_err(fail)?;
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let started = Instant::now();
        let port = match net {
            Network::Host => Some(free_port().map_err(|e| fail(e.to_string()))?),
            Network::Bridge => None,
        };
        let (cmd, env_vars) = server.command(port, &password);
        let inner = format!("{}/tcp", server.container_port());
        let host_config = match net {
            Network::Host => HostConfig { network_mode: Some("host".into()), ..Default::default() },
            Network::Bridge => HostConfig {
                port_bindings: Some(HashMap::from([(
                    inner.clone(),
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
                )])),
                ..Default::default()
            },
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(cmd),
            env: Some(env_vars),
            labels: Some(HashMap::from([(OWNER_LABEL.to_owned(), owner())])),
            exposed_ports: (net == Network::Bridge).then(|| HashMap::from([(inner.clone(), HashMap::new())])),
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = format!("perflab-{}-{}-{}", std::process::id(), containers.ids.len(), server.name());
        let created =
            api(docker.create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body))
                .await
                .map_err(|e| fail(format!("docker: cannot create a container from {image}: {e}")))?;
        let id = created.id;
        containers.add(id.clone());
        api(docker.start_container(&id, None::<bollard::query_parameters::StartContainerOptions>))
            .await
            .map_err(|e| fail(format!("docker: cannot start {name} ({image}): {e}")))?;
        let inspect = api(docker.inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>))
            .await
            .map_err(|e| fail(format!("docker: {e}")))?;
        let host_port = match port {
            Some(p) => p,
            None => published_port(&inspect, &inner)
                .ok_or_else(|| fail(format!("docker: {inner} of {name} is not published")))?,
        };
        // The server's pid as the host sees it, for the resource probe (a daemon on this host).
        let pid = inspect
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0 && Path::new(&format!("/proc/{p}")).exists());
        let describe = |mut info: ServerInfo| {
            info.settings.insert("provider".into(), "docker".into());
            info.settings.insert("image".into(), image.to_owned());
            info.settings.insert("image_id".into(), image_id.clone());
            info.settings.insert("docker_network".into(), net.name().into());
            info.settings.insert("ready_in".into(), format!("{:.2} s", started.elapsed().as_secs_f64()));
            info
        };
        let ready = match server {
            Server::Postgres => {
                let target = pg_target(host_port, pid, &password);
                let url = target.url.clone();
                wait_ready(docker, &id, || async {
                    let client = target.connect().await.ok()?;
                    pg_info(&client, &url).await.ok()
                })
                .await
                .map(|info| {
                    let mut info = describe(info);
                    info.settings.insert("shared_preload_libraries".into(), "pg_stat_statements".into());
                    Started::Postgres(Box::new(target.clone()), info)
                })
            }
            Server::Redis => {
                let target = RedisTarget {
                    url: format!("redis://:{password}@127.0.0.1:{host_port}"),
                    redacted: format!("redis://127.0.0.1:{host_port}"),
                    pid,
                    host: "127.0.0.1".into(),
                    port: host_port,
                };
                wait_ready(docker, &id, || async { redis_info(&target).await.ok() })
                    .await
                    .map(|info| Started::Redis(target.clone(), describe(info)))
            }
        };
        match ready {
            Ok(started) => return Ok(started),
            Err(Exited(why)) if net == Network::Host => last_err = why,
            Err(Exited(why)) => return Err(fail(why)),
        }
    }
    Err(fail(last_err))
}

/// A call to the daemon, bounded by `API_TIMEOUT`.
async fn api<T>(call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>) -> Result<T, String> {
    tokio::time::timeout(API_TIMEOUT, call)
        .await
        .map_err(|_| format!("the Docker daemon gave no answer within {} s", API_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())
}

fn pg_target(port: u16, pid: Option<u32>, password: &str) -> PgTarget {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2));
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    PgTarget {
        config,
        secret_url: Secret(format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres")),
        url,
        pid,
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        dbname: "postgres".into(),
        schema: None,
    }
}

fn published_port(inspect: &bollard::models::ContainerInspectResponse, inner: &str) -> Option<u16> {
    let ports = inspect.network_settings.as_ref()?.ports.as_ref()?;
    ports.get(inner)?.as_ref()?.iter().find_map(|b| b.host_port.as_deref()?.parse().ok())
}

/// The image's id, pulling the image first when the daemon does not have it.
async fn ensure_image(docker: &Docker, image: &str) -> Result<String, String> {
    if let Ok(found) = api(docker.inspect_image(image)).await {
        return Ok(found.id.unwrap_or_default());
    }
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let mut pull =
        docker.create_image(Some(CreateImageOptionsBuilder::new().from_image(name).tag(tag).build()), None, None);
    while let Some(step) = pull.next().await {
        if let Err(e) = step {
            return Err(format!(
                "docker: {image} is not on this machine and cannot be pulled ({e}); without a registry, build local images with docker/build-local-images.sh and set {PG_IMAGE_ENV} / {REDIS_IMAGE_ENV} as it prints"
            ));
        }
    }
    let found = api(docker.inspect_image(image)).await.map_err(|e| format!("docker: {image}: {e}"))?;
    Ok(found.id.unwrap_or_default())
}

/// The container stopped before its server answered, or never answered: why, with its log.
struct Exited(String);

/// Poll `ready` every 20 ms until it answers, the container stops, or `READY_TIMEOUT` passes.
async fn wait_ready<T, Fut: std::future::Future<Output = Option<T>>>(
    docker: &Docker,
    id: &str,
    mut ready: impl FnMut() -> Fut,
) -> Result<T, Exited> {
    let started = Instant::now();
    let mut polls = 0u32;
    loop {
        if let Some(v) = ready().await {
            return Ok(v);
        }
        polls += 1;
        if polls % 10 == 0 {
            let running = api(docker.inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>))
                .await
                .ok()
                .and_then(|i| i.state?.running)
                .unwrap_or(false);
            if !running {
                return Err(Exited(format!("the container stopped: {}", log_tail(docker, id).await)));
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(Exited(format!(
                "not ready after {} s: {}",
                READY_TIMEOUT.as_secs(),
                log_tail(docker, id).await
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The container's last log lines, on one line.
async fn log_tail(docker: &Docker, id: &str) -> String {
    let opts = LogsOptionsBuilder::new().stdout(true).stderr(true).tail("5").build();
    let mut logs = docker.logs(id, Some(opts));
    let mut out = String::new();
    let collect = async {
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&chunk.to_string());
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), collect).await;
    let lines: Vec<&str> = out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        "(no log)".into()
    } else {
        lines.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pinned() {
        for image in [POSTGRES_IMAGE, REDIS_IMAGE] {
            let (name, tag) = image.rsplit_once(':').expect("name:tag");
            assert!(!name.is_empty() && tag != "latest", "{image} must be a pinned tag");
            assert!(tag.chars().next().unwrap().is_ascii_digit(), "{image} starts with a version");
        }
    }

    #[test]
    fn an_image_from_the_environment_must_be_pinned() {
        let var = PG_IMAGE_ENV;
        for (value, ok) in [
            ("perflab-local/postgres:15-bookworm", true),
            ("registry.example:5000/pg:15.8", true),
            (" postgres:15.8 ", true),
            ("postgres", false),
            ("postgres:latest", false),
            ("registry.example:5000/pg", false),
            ("postgres:", false),
        ] {
            let got = image_choice(var, Some(value), POSTGRES_IMAGE);
            assert_eq!(got.is_ok(), ok, "{value}: {got:?}");
            if ok {
                assert_eq!(got.unwrap(), value.trim());
            } else {
                let err = got.unwrap_err();
                assert!(err.is_user_error() && err.to_string().contains(var), "{err}");
            }
        }
        assert_eq!(image_choice(var, None, POSTGRES_IMAGE).unwrap(), POSTGRES_IMAGE);
        assert_eq!(image_choice(var, Some("  "), POSTGRES_IMAGE).unwrap(), POSTGRES_IMAGE);
    }

    #[test]
    fn commands_bind_loopback_on_the_hosts_network_and_everything_on_a_bridge() {
        let (pg, env) = Server::Postgres.command(Some(41234), "pw0");
        assert!(
            pg.contains(&"listen_addresses=127.0.0.1".to_owned()) && pg.contains(&"port=41234".to_owned()),
            "{pg:?}"
        );
        assert_eq!(
            env,
            ["POSTGRES_PASSWORD=pw0", "POSTGRES_HOST_AUTH_METHOD=scram-sha-256"],
            "a password, never trust"
        );
        let (pg, _) = Server::Postgres.command(None, "pw0");
        assert!(pg.contains(&"listen_addresses=*".to_owned()) && !pg.iter().any(|a| a.starts_with("port=")), "{pg:?}");
        let (redis, _) = Server::Redis.command(Some(41235), "pw1");
        assert_eq!(redis[0], "redis-server");
        assert!(redis.windows(2).any(|w| w == ["--requirepass", "pw1"]), "{redis:?}");
        assert!(
            redis.windows(2).any(|w| w == ["--port", "41235"])
                && redis.windows(2).any(|w| w == ["--bind", "127.0.0.1"])
        );
        let (redis, _) = Server::Redis.command(None, "pw1");
        assert!(redis.windows(2).any(|w| w == ["--protected-mode", "no"]) && !redis.contains(&"--port".to_owned()));
    }

    #[tokio::test]
    async fn without_a_daemon_docker_says_what_to_do() {
        if daemon_reachable() {
            return; // a machine with Docker runs the real thing (tests/docker.rs)
        }
        let req = Request { provider: Provider::Docker, need_postgres: true, ..Request::default() };
        let err = provision(&req).await.expect_err("no daemon");
        assert!(matches!(err, ProvisionError::NothingAvailable(_)), "{err}");
        assert!(err.is_user_error());
    }
}
