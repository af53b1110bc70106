//! `calibration`: the floor of the machine, and proof that the harness is not the bottleneck.
//!
//! The same work as `pgbench -S -M prepared` (a primary-key SELECT on pgbench's 1M-row
//! accounts table, prepared once per connection) and `redis-benchmark -t get` (GET of a
//! 3-byte value), run by the reference tools themselves and by the harness's load engine,
//! side by side on the same servers. Every other experiment is read against these numbers.

use anyhow::Context as _;
use harness::load::{self, OpError, Worker};
use harness::provision::{find_pg_bin, which};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    BoxFuture, Engine, Experiment, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Slot, Sweep, Trial, Variant,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;

/// pgbench scale 10: 1,000,000 rows in pgbench_accounts.
const SCALE: i32 = 10;
const ACCOUNTS: i32 = SCALE * 100_000;
/// The key redis-benchmark GETs when not given `-r`: the literal placeholder.
const REDIS_KEY: &str = "key:__rand_int__";
const SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

#[derive(Default)]
pub struct Calibration {
    /// Requests per second redis-benchmark reached last time at each concurrency, to size its
    /// next run (it counts requests, not seconds).
    redis_rate: Slot<HashMap<u32, f64>>,
}

impl Calibration {
    pub fn new() -> Self {
        Self::default()
    }
}

fn pgbench() -> Option<PathBuf> {
    find_pg_bin().map(|d| d.join("pgbench")).filter(|p| p.is_file()).or_else(|| which("pgbench"))
}

impl Experiment for Calibration {
    fn meta(&self) -> Meta {
        Meta {
            id: "calibration",
            title: "Calibration: the harness against pgbench and redis-benchmark",
            guide_section: "性能测试 (benchmarking): the floor every other experiment is read against",
            claim: "The lab measures the techniques, not itself: on the same work and servers its load engine keeps up with pgbench and redis-benchmark.",
            variants: vec![
                Variant::baseline_of_group("pgbench", "pgbench -S -M prepared -c N -j min(N,2): primary-key SELECT on pgbench_accounts (1M rows)"),
                Variant::new("harness-pg", "the harness's closed loop, N connections (tokio-postgres), the same prepared SELECT with a random aid").compared_with("pgbench").tests_claim_keeps_up(),
                Variant::new("harness-pg-inline", "harness-pg with tokio-postgres's connection driven inside the worker's own task instead of a task of its own: the same driver and statement, without the hand-off between two tasks on every query").compared_with("pgbench"),
                Variant::new("harness-sqlx", "the same closed loop through sqlx: a PgConnection per worker, query_scalar on the same SELECT, prepared once per connection by sqlx's statement cache (its default): the floor every sqlx number is read against").compared_with("pgbench"),
                Variant::baseline_of_group("redis-benchmark", "redis-benchmark -t get -c N: GET of a 3-byte value"),
                Variant::new("harness-redis", "the harness's closed loop, N connections (redis crate, one multiplexed connection per worker), GET of the same key").compared_with("redis-benchmark"),
                Variant::new("harness-redis-raw", "the same closed loop with a minimal client instead of the redis crate: RESP written and read by hand on a TCP connection per worker, in the worker's own task (no driver task, no channel): what the load engine costs without a driver, so that harness-redis's shortfall, where it has one, is the redis crate's").compared_with("redis-benchmark"),
            ],
            sweep: Sweep::numeric("concurrency", "clients", &[1.0, 8.0, 50.0], &[8.0]),
            primary_metric: load::throughput("ops/s", "requests completed per second"),
            metrics: vec![
                MetricInfo::new("latency_mean_us", "us", Better::Lower, "mean latency (the reference tools report means; the harness also has percentiles)"),
                MetricInfo::new("client_cpu_us_per_op", "us", Better::Lower, "CPU time of the client (the harness, or the reference tool's process) per request: on a machine the client shares with the server, CPU the server does not get"),
            ],
            needs: Needs::BOTH,
            smallest_effect: Some(harness::experiment::SmallestEffect::KEEPS_UP),
            // pgbench counts whole seconds: every Postgres variant measures on its timing
            // (`pg_seconds`), without a warm-up: the budget counts that second for every variant
            // (the Redis ones measure the settings' duration, so calibration is weighed high).
            sample_floor: std::time::Duration::from_secs(1),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let pg = ctx.env.postgres()?;
            let client = pg.connect().await?;
            let have: Option<i64> = match client.query_one("SELECT count(*) FROM pgbench_accounts", &[]).await {
                Ok(r) => Some(r.get(0)),
                Err(_) => None,
            };
            if have != Some(i64::from(ACCOUNTS)) {
                let bin = pgbench().context(
                    "pgbench not found: install postgresql-contrib (or the postgresql package that ships it)",
                )?;
                // dtGvp: drop, create tables, generate the rows server-side, vacuum, primary keys.
                let out = Command::new(&bin)
                    .args(["-i", "-q", "-I", "dtGvp", "-s", &SCALE.to_string()])
                    .args(pg.cli_args())
                    .envs(pg.tool_env())
                    .output()
                    .with_context(|| format!("running {}", bin.display()))?;
                anyhow::ensure!(
                    out.status.success(),
                    "pgbench -i failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let redis = ctx.env.redis()?;
            let mut con = redis.client()?.get_multiplexed_async_connection().await?;
            redis::cmd("SET").arg(REDIS_KEY).arg("xxx").query_async::<()>(&mut con).await?;
            Ok(())
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!()
    }
}

/// The client's CPU time per request of a sample: its CPU over the sample's window, divided by
/// the requests it completed in that window at the measured rate.
fn client_cpu_per_op(sample: &Sample) -> Option<f64> {
    let r = sample.resources.as_ref()?;
    let ops = sample.metrics.get("ops_per_sec")? * r.wall_s;
    (ops > 0.0).then(|| r.harness_cpu_s / ops * 1e6)
}

impl Run for Calibration {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let mut sample = self.measure(ctx, at).await?;
            if let Some(cpu) = client_cpu_per_op(&sample) {
                sample.metrics.insert("client_cpu_us_per_op".into(), cpu);
            }
            Ok(sample)
        })
    }
}

impl Calibration {
    async fn measure(&self, ctx: &RunCtx, at: Trial<'_>) -> anyhow::Result<Sample> {
        let n = at.point.value as u32;
        let s = &ctx.settings;
        match at.variant {
            "pgbench" => run_pgbench(ctx, n).await,
            "redis-benchmark" => self.run_redis_benchmark(ctx, n).await,
            "harness-pg" => {
                let pg = ctx.env.postgres()?.clone();
                let report = load::run(&pg_loop(s, n), &ctx.probe, move |i| {
                    let pg = pg.clone();
                    async move {
                        let client = pg.connect().await?;
                        Ok(PgSelect { client, stmt: None, rng: SplitMix64::new(0x5eed + i as u64) })
                    }
                })
                .await?;
                Ok(report.into_sample())
            }
            "harness-pg-inline" => {
                let pg = ctx.env.postgres()?.clone();
                let report = load::run(&pg_loop(s, n), &ctx.probe, move |i| {
                    let pg = pg.clone();
                    async move {
                        let (client, conn) = pg.config.connect(tokio_postgres::NoTls).await?;
                        let conn = Some(Box::pin(conn));
                        Ok(PgInline { client, conn, stmt: None, rng: SplitMix64::new(0x5eed + i as u64) })
                    }
                })
                .await?;
                Ok(report.into_sample())
            }
            "harness-sqlx" => {
                let options = ctx.env.postgres()?.sqlx_options();
                let report = load::run(&pg_loop(s, n), &ctx.probe, move |i| {
                    let options = options.clone();
                    async move {
                        use sqlx::Connection as _;
                        let conn = sqlx::PgConnection::connect_with(&options).await?;
                        Ok(SqlxSelect { conn, rng: SplitMix64::new(0x5eed + i as u64) })
                    }
                })
                .await?;
                Ok(report.into_sample())
            }
            "harness-redis" => {
                let redis = ctx.env.redis()?;
                let client = redis.client()?;
                let report = load::run(&s.closed_loop(n), &ctx.probe, move |_| {
                    let client = client.clone();
                    async move { Ok(harness::kit::redis_util::GetWorker::connect(&client, REDIS_KEY).await?) }
                })
                .await?;
                Ok(report.into_sample())
            }
            "harness-redis-raw" => {
                let redis = ctx.env.redis()?.clone();
                let report = load::run(&s.closed_loop(n), &ctx.probe, move |_| {
                    let redis = redis.clone();
                    async move { RawGet::connect(&redis).await }
                })
                .await?;
                Ok(report.into_sample())
            }
            other => anyhow::bail!("unknown variant {other}"),
        }
    }
}

/// The SELECT prepared on a worker's first call, inside the clock, as pgbench `-M prepared`
/// and sqlx's statement cache prepare on a connection's first execution.
struct PgSelect {
    client: tokio_postgres::Client,
    stmt: Option<tokio_postgres::Statement>,
    rng: SplitMix64,
}

impl Worker for PgSelect {
    async fn call(&mut self) -> Result<(), OpError> {
        let aid = (self.rng.next_u64() % ACCOUNTS as u64) as i32 + 1;
        if self.stmt.is_none() {
            self.stmt = Some(self.client.prepare(SELECT).await.map_err(|e| OpError::from_error(&e))?);
        }
        let stmt = self.stmt.as_ref().expect("prepared above");
        match self.client.query_one(stmt, &[&aid]).await {
            Ok(row) => {
                let _balance: i32 = row.get(0);
                Ok(())
            }
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

type PgConnection = tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// Run `request` while polling the connection in the same task: the connection writes what
/// the request queued and reads its answer, and the request completes in the same poll.
/// `Ok(Err(_))` is the request's own error; `Err(_)` the connection's (closed or failed), after
/// which the worker's connection is done.
async fn drive<T>(
    request: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    conn: &mut Option<std::pin::Pin<Box<PgConnection>>>,
) -> Result<Result<T, tokio_postgres::Error>, OpError> {
    use std::future::Future as _;
    use std::task::Poll;
    let mut request = std::pin::pin!(request);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = request.as_mut().poll(cx) {
            return Poll::Ready(Ok(r));
        }
        let Some(c) = conn.as_mut() else { return Poll::Ready(Err(OpError::new("connection closed"))) };
        match c.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => {
                *conn = None;
                return Poll::Ready(Err(OpError::new("connection closed")));
            }
            Poll::Ready(Err(e)) => {
                *conn = None;
                return Poll::Ready(Err(OpError::from_error(&e)));
            }
            Poll::Pending => {}
        }
        request.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// As `PgSelect`, the connection driven in the worker's task.
struct PgInline {
    client: tokio_postgres::Client,
    conn: Option<std::pin::Pin<Box<PgConnection>>>,
    stmt: Option<tokio_postgres::Statement>,
    rng: SplitMix64,
}

impl Worker for PgInline {
    async fn call(&mut self) -> Result<(), OpError> {
        let aid = (self.rng.next_u64() % ACCOUNTS as u64) as i32 + 1;
        if self.stmt.is_none() {
            let prepared = drive(self.client.prepare(SELECT), &mut self.conn).await?;
            self.stmt = Some(prepared.map_err(|e| OpError::from_error(&e))?);
        }
        let stmt = self.stmt.as_ref().expect("prepared above");
        match drive(self.client.query_one(stmt, &[&aid]), &mut self.conn).await? {
            Ok(row) => {
                let _balance: i32 = row.get(0);
                Ok(())
            }
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

/// GET of `REDIS_KEY` in RESP written and read by hand, as redis-benchmark's hiredis does: one
/// write and one read per request on the worker's own connection, the reply parsed in place.
/// After an error that may leave a reply half read, the connection is not used again.
struct RawGet {
    stream: tokio::net::TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
    broken: bool,
}

impl RawGet {
    async fn connect(redis: &harness::provision::RedisTarget) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect((redis.host.as_str(), redis.port)).await?;
        stream.set_nodelay(true)?;
        let mut worker =
            RawGet { stream, request: resp(&["GET", REDIS_KEY]), buf: Vec::with_capacity(4096), broken: false };
        let info = redis::IntoConnectionInfo::into_connection_info(redis.url.as_str())?;
        let settings = info.redis_settings();
        if let Some(pw) = settings.password() {
            match settings.username() {
                Some(user) => worker.command(&["AUTH", user, pw]).await,
                None => worker.command(&["AUTH", pw]).await,
            }
            .context("AUTH")?;
        }
        if settings.db() != 0 {
            worker.command(&["SELECT", &settings.db().to_string()]).await.context("SELECT")?;
        }
        Ok(worker)
    }

    /// A command outside the timed section whose reply must be `+OK`.
    async fn command(&mut self, args: &[&str]) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(&resp(args)).await?;
        let reply = self.reply().await.map_err(|e| anyhow::anyhow!("{}", e.kind))?;
        anyhow::ensure!(reply.starts_with(b"+OK"), "refused");
        Ok(())
    }

    /// Read one whole reply (a simple string or a bulk string) into `buf`.
    async fn reply(&mut self) -> Result<&[u8], OpError> {
        use tokio::io::AsyncReadExt as _;
        self.buf.clear();
        loop {
            match reply_len(&self.buf) {
                Ok(Some(len)) => return Ok(&self.buf[..len]),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
            if self.buf.capacity() - self.buf.len() < 512 {
                self.buf.reserve(4096);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(n) if n > 0 => {}
                closed_or_failed => {
                    self.broken = true;
                    return Err(closed_or_failed
                        .map_or_else(|e| OpError::from_error(&e), |_| OpError::new("connection closed")));
                }
            }
        }
    }
}

/// A command in RESP: an array of bulk strings.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The length of the whole reply at the start of `buf`, none while it is incomplete; an error
/// reply (its text, digits folded as every error kind is) or a type this client does not read
/// is an error.
fn reply_len(buf: &[u8]) -> Result<Option<usize>, OpError> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    match buf.first() {
        Some(b'+') => Ok(Some(eol + 2)),
        Some(b'-') => Err(OpError::from_message(&String::from_utf8_lossy(&buf[1..eol]))),
        Some(b'$') => {
            let n: i64 = std::str::from_utf8(&buf[1..eol])
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| OpError::new("bad bulk length"))?;
            if n < 0 {
                return Err(OpError::new("key missing"));
            }
            let end = eol + 2 + n as usize + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        _ => Err(OpError::new("unexpected reply type")),
    }
}

impl Worker for RawGet {
    async fn call(&mut self) -> Result<(), OpError> {
        use tokio::io::AsyncWriteExt as _;
        if self.broken {
            return Err(OpError::new("connection broken"));
        }
        if let Err(e) = self.stream.write_all(&self.request).await {
            self.broken = true;
            return Err(OpError::from_error(&e));
        }
        self.reply().await.map(|_| ())
    }
}

struct SqlxSelect {
    conn: sqlx::PgConnection,
    rng: SplitMix64,
}

impl Worker for SqlxSelect {
    async fn call(&mut self) -> Result<(), OpError> {
        let aid = (self.rng.next_u64() % ACCOUNTS as u64) as i32 + 1;
        match sqlx::query_scalar::<_, i32>(SELECT).bind(aid).fetch_one(&mut self.conn).await {
            Ok(_balance) => Ok(()),
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

fn sample_from(ops_per_sec: f64, mean_latency_us: f64, extra: BTreeMap<String, f64>) -> Sample {
    let mut metrics = extra;
    metrics.insert("ops_per_sec".into(), ops_per_sec);
    metrics.insert("latency_mean_us".into(), mean_latency_us);
    Sample { metrics, ..Sample::default() }
}

/// The measured seconds of every Postgres variant, pgbench's and the harness's alike. pgbench
/// runs whole seconds (at least one), reports its rate over them less its connections' opening,
/// prepares on each connection's first execution and has no warm-up of its own (a run before
/// it would open other connections). So the harness's Postgres variants measure the same whole
/// seconds on connections just opened, without a warm-up, preparing on their first call. In
/// 150 ms quick samples after a 50 ms warm-up, against pgbench's one second, harness-pg read
/// 1.12-1.17x slower than pgbench at 8 clients, where 1 s samples of both read 0.98-1.08: a
/// short sample weighs its new backends' first queries more. The server itself is warm from
/// the rounds before.
fn pg_seconds(s: &harness::Settings) -> u64 {
    s.duration.as_secs_f64().ceil().max(1.0) as u64
}

/// The harness's closed loop on the Postgres variants' timing (`pg_seconds`).
fn pg_loop(s: &harness::Settings, clients: u32) -> load::LoadConfig {
    load::LoadConfig::closed(clients, std::time::Duration::ZERO, std::time::Duration::from_secs(pg_seconds(s)))
}

async fn run_pgbench(ctx: &RunCtx, clients: u32) -> anyhow::Result<Sample> {
    let pg = ctx.env.postgres()?;
    let bin = pgbench().context("pgbench not found: install postgresql-contrib")?;
    let s = &ctx.settings;
    let threads = clients.min(2).to_string();
    let mut base = Command::new(&bin);
    base.args(["-n", "-S", "-M", "prepared", "-c", &clients.to_string(), "-j", &threads]);
    base.args(["-T", &pg_seconds(s).to_string()]).args(pg.cli_args()).envs(pg.tool_env());
    let probe = ctx.probe.clone();
    let (out, resources) = tokio::task::spawn_blocking(move || harness::resources::run_tool(&probe, base)).await?;
    let out = out.with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    let (tps, latency_ms) = parse_pgbench(&stdout).with_context(|| format!("unexpected pgbench output: {stdout}"))?;
    let mut sample = sample_from(tps, latency_ms * 1000.0, BTreeMap::new());
    sample.resources = Some(resources);
    Ok(sample)
}

/// `(tps, mean latency in ms)` from pgbench's summary.
pub fn parse_pgbench(out: &str) -> Option<(f64, f64)> {
    let tps = out
        .lines()
        .find(|l| l.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let latency = out
        .lines()
        .find_map(|l| l.strip_prefix("latency average = "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Some((tps, latency))
}

impl Calibration {
    async fn run_redis_benchmark(&self, ctx: &RunCtx, clients: u32) -> anyhow::Result<Sample> {
        let redis = ctx.env.redis()?;
        let bin = which("redis-benchmark").context("redis-benchmark not found: install redis-tools")?;
        let s = &ctx.settings;
        let guess = self.redis_rate.lock().get(&clients).copied().unwrap_or(30_000.0);
        let requests = ((guess * s.duration.as_secs_f64()) as u64).max(5_000);
        let warm_requests = ((guess * s.warmup.as_secs_f64()) as u64).max(1_000);
        let make = |n: u64| {
            let mut c = Command::new(&bin);
            c.args(redis.tool_args()).args(["-c", &clients.to_string()]).args([
                "-n",
                &n.to_string(),
                "-t",
                "get",
                "-d",
                "3",
                "--csv",
            ]);
            c
        };
        if !s.warmup.is_zero() {
            let mut warm = make(warm_requests);
            let _ = tokio::task::spawn_blocking(move || warm.output()).await?;
        }
        let cmd = make(requests);
        let probe = ctx.probe.clone();
        let (out, resources) = tokio::task::spawn_blocking(move || harness::resources::run_tool(&probe, cmd)).await?;
        let out = out.with_context(|| format!("running {}", bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let (rps, avg_ms, pcts) = harness::kit::redis_util::parse_redis_benchmark_csv(&stdout)
            .with_context(|| format!("unexpected redis-benchmark output: {stdout}"))?;
        self.redis_rate.lock().insert(clients, rps);
        let mut extra = BTreeMap::new();
        for (name, v) in ["latency_p50_us", "latency_p95_us", "latency_p99_us"].iter().zip(pcts) {
            extra.insert((*name).to_owned(), v * 1000.0);
        }
        let mut sample = sample_from(rps, avg_ms * 1000.0, extra);
        sample.resources = Some(resources);
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_cpu_per_request_is_cpu_over_requests_in_the_window() {
        let mut sample = sample_from(10_000.0, 100.0, BTreeMap::new());
        assert_eq!(client_cpu_per_op(&sample), None, "no resources, no figure");
        sample.resources = Some(harness::results::Resources { harness_cpu_s: 0.5, wall_s: 5.0, ..Default::default() });
        // 50,000 requests in 5 s for 0.5 s of CPU: 10 µs each.
        assert!((client_cpu_per_op(&sample).unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn parses_pgbench_summary() {
        let out = "transaction type: <builtin: select only>\nscaling factor: 10\nlatency average = 0.162 ms\ninitial connection time = 10.1 ms\ntps = 49277.403412 (without initial connection time)\n";
        assert_eq!(parse_pgbench(out), Some((49277.403412, 0.162)));
        assert_eq!(parse_pgbench("garbage"), None);
    }

    #[test]
    fn resp_commands_and_replies() {
        assert_eq!(resp(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let len = |b: &[u8]| reply_len(b).map_err(|e| e.kind.into_owned());
        assert_eq!(len(b"$3\r\nxxx\r\n"), Ok(Some(9)));
        // Incomplete: the length line, or the value, not all there yet.
        assert_eq!(len(b"$3\r\nxx"), Ok(None));
        assert_eq!(len(b"$3"), Ok(None));
        assert_eq!(len(b"+OK\r\n"), Ok(Some(5)));
        assert_eq!(len(b"$-1\r\n"), Err("key missing".into()));
        assert_eq!(len(b"-ERR no such key 42\r\n"), Err("ERR no such key N".into()));
        assert_eq!(len(b":1\r\n"), Err("unexpected reply type".into()));
    }
}

harness::quick_run_test!(Calibration::new());
