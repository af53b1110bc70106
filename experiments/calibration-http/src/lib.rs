//! `calibration-http`: the HTTP floor every service-layer experiment is read against, and proof
//! that the harness's HTTP client is not the bottleneck.
//!
//! A minimal axum endpoint (`GET /` answering 2 bytes) runs in this process on a runtime of
//! its own, on loopback. `wrk` (the reference tool) and the load engine drive it in turn,
//! interleaved, at the same number of connections for the same whole seconds (wrk counts in
//! seconds), on connections just opened and without a warm-up (wrk has none). The load engine drives it twice: with the harness's own HTTP/1.1 client
//! (`kit::http::RawClient`, what the service experiments that measure a server drive it with)
//! and with hyper's client (what a Rust service would use), so that the engine's cost and a
//! client library's are told apart. The server is stopped after the checks.

use anyhow::Context as _;
use harness::kit::http::{HyperConn, RawClient, Server};
use harness::load::{self, OpError, Worker};
use harness::provision::which;
use harness::{names_of, pick, BoxFuture, Engine, Experiment, Meta, Run, RunCtx, Sample, Slot, Sweep, Trial, Variant};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ID: &str = "calibration-http";

harness::table! {
    const VARIANTS: [Variant] = enum Client {
        Wrk => Variant::new("wrk", "wrk -t min(N,2) -c N --latency: HTTP/1.1 keep-alive GETs, the reference"),
        Raw => Variant::new("harness-http", "the harness's closed loop, N workers, each with its own keep-alive HTTP/1.1 connection of the harness's client (kit::http::RawClient: the request written from a kept buffer, the answer read by its Content-Length, as wrk does), the same GET") .compared_with("wrk") .tests_claim_keeps_up(),
        Hyper => Variant::new("hyper-client", "the same closed loop with hyper's HTTP/1.1 client (one connection per worker, its state machine polled in the worker's task): the engine plus a client library") .compared_with("wrk"),
    }
}

/// The endpoint: `GET /` answers `ok` from axum, on a runtime of two threads (this machine's
/// cores; the clients share them).
fn endpoint(ip: std::net::Ipv4Addr) -> anyhow::Result<Server> {
    Server::start(ip, 2, |listener, shutdown| async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    })
}

#[derive(Default)]
pub struct CalibrationHttp {
    server: Slot<Option<Server>>,
    /// wrk's executable, found in setup.
    wrk: Slot<Option<PathBuf>>,
}

impl CalibrationHttp {
    pub fn new() -> Self {
        Self::default()
    }

    fn addr(&self) -> anyhow::Result<SocketAddr> {
        self.server.lock().as_ref().map(Server::addr).context("the HTTP server is not running")
    }
}

/// wrk counts whole seconds: both clients get the same whole seconds (at least one).
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// The harness's closed loop on wrk's timing: `n` connections opened before the clock, then
/// the same whole seconds with no warm-up, as wrk runs (a warm-up on the harness's side only
/// was a trial wrk did not get; the server is warm from the rounds before).
fn wrk_timing(n: u32, ctx: &RunCtx) -> harness::LoadConfig {
    harness::LoadConfig::closed(n, Duration::ZERO, Duration::from_secs(whole_seconds(ctx.settings.duration)))
}

impl Experiment for CalibrationHttp {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Calibration, HTTP: the harness's client against wrk",
            guide_section: "性能测试 (benchmarking): the HTTP floor the service-layer experiments are read against",
            claim: "The lab's HTTP client keeps up with wrk on the same endpoint: at least 0.9× wrk's requests per second at 50 connections.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("connections", "connections", &[1.0, 10.0, 50.0], &[50.0]),
            primary_metric: load::throughput("requests/s", "successful requests per second"),
            metrics: vec![
                load::latency_mean("one request"),
                load::latency_p50("one request"),
                load::latency_p99("one request"),
            ],
            smallest_effect: Some(harness::experiment::SmallestEffect::KEEPS_UP),
            // wrk counts whole seconds, without a warm-up; every variant measures on its timing.
            sample_floor: std::time::Duration::from_secs(1),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            *self.wrk.lock() = Some(which("wrk").context("wrk not found: install it (Debian package wrk)")?);
            let mut server = self.server.lock();
            if server.is_none() {
                *server = Some(endpoint(std::net::Ipv4Addr::LOCALHOST)?);
            }
            Ok(())
        })
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            // The last hook: the endpoint stops listening here.
            let server = self.server.lock().take();
            if let Some(server) = server {
                server.stop().await?;
            }
            Ok(Vec::new())
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        harness::notes!(seconds = whole_seconds(ctx.settings.duration))
    }
}

/// One keep-alive connection of hyper's HTTP/1.1 client (`kit::http::HyperConn`: its state
/// machine polled inside each call, on the worker's own task, so no wake-up crosses tasks per
/// request).
struct Get(HyperConn);

impl Worker for Get {
    async fn call(&mut self) -> Result<(), OpError> {
        self.0.get("/", false).await.map(drop)
    }
}

/// The harness's own HTTP/1.1 client (`kit::http::RawClient`): a request written from a buffer
/// kept between calls, the answer read by its Content-Length, as wrk does.
struct RawGet(RawClient);

impl Worker for RawGet {
    async fn call(&mut self) -> Result<(), OpError> {
        self.0.get_ok("/", "").await.map(drop)
    }
}

impl Run for CalibrationHttp {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let client = pick(&VARIANTS, at.variant)?;
            let n = at.point.value as u32;
            let addr = self.addr()?;
            match client {
                Client::Wrk => {
                    let wrk = self.wrk.get().context("setup has not run")?;
                    run_wrk(ctx, &wrk, addr, n).await
                }
                Client::Hyper => {
                    let cfg = wrk_timing(n, ctx);
                    let report =
                        load::run(&cfg, &ctx.probe, move |_| async move { Ok(Get(HyperConn::connect(addr).await?)) })
                            .await?;
                    Ok(report.into_sample())
                }
                Client::Raw => {
                    let cfg = wrk_timing(n, ctx);
                    let report =
                        load::run(
                            &cfg,
                            &ctx.probe,
                            move |_| async move { Ok(RawGet(RawClient::connect(addr).await?)) },
                        )
                        .await?;
                    Ok(report.into_sample())
                }
            }
        })
    }
}

async fn run_wrk(ctx: &RunCtx, bin: &Path, addr: SocketAddr, connections: u32) -> anyhow::Result<Sample> {
    let (threads, secs) = (connections.min(2), whole_seconds(ctx.settings.duration));
    let mut cmd = Command::new(bin);
    cmd.args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{secs}s"), "--latency"]);
    cmd.arg(format!("http://{addr}/"));
    let probe = ctx.probe.clone();
    let (out, resources) = tokio::task::spawn_blocking(move || harness::resources::run_tool(&probe, cmd)).await?;
    let out = out.with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    let w = parse_wrk(&text).with_context(|| format!("unexpected wrk output: {text}"))?;
    let failed: u64 = w.errors.values().sum();
    let ok = w.requests.saturating_sub(failed);
    let mut metrics = BTreeMap::new();
    metrics.insert("ops_per_sec".into(), ok as f64 / w.seconds);
    metrics.insert("ok".into(), ok as f64);
    metrics.insert("errors".into(), failed as f64);
    metrics.insert("error_rate".into(), if w.requests > 0 { failed as f64 / w.requests as f64 } else { 0.0 });
    metrics.insert("latency_mean_us".into(), w.mean_us);
    metrics.insert("latency_p50_us".into(), w.p50_us);
    metrics.insert("latency_p99_us".into(), w.p99_us);
    Ok(Sample { metrics, errors: w.errors, resources: Some(resources), ..Sample::default() })
}

/// What wrk printed.
#[derive(Debug, PartialEq)]
pub struct WrkSummary {
    pub requests: u64,
    pub seconds: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Non-2xx answers and socket errors, by kind.
    pub errors: BTreeMap<String, u64>,
}

/// `123.45us`, `1.20ms`, `2.00s` in microseconds.
fn duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60e6)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// Parse wrk's report (with `--latency`).
pub fn parse_wrk(out: &str) -> Option<WrkSummary> {
    let mut requests = None;
    let mut seconds = None;
    let mut mean_us = None;
    let (mut p50_us, mut p99_us) = (None, None);
    let mut errors = BTreeMap::new();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", mean, ..] if mean_us.is_none() => mean_us = duration_us(mean),
            ["50%", v] => p50_us = duration_us(v),
            ["99%", v] => p99_us = duration_us(v),
            [n, "requests", "in", t, ..] => {
                requests = n.parse::<u64>().ok();
                seconds = duration_us(t.trim_end_matches(',')).map(|us| us / 1e6);
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                errors.insert("non-2xx answer".to_owned(), n.parse().ok()?);
            }
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                for pair in rest.join(" ").split(',') {
                    let mut it = pair.split_whitespace();
                    if let (Some(kind), Some(n)) = (it.next(), it.next().and_then(|n| n.parse::<u64>().ok())) {
                        if n > 0 {
                            errors.insert(format!("socket {kind} error"), n);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(WrkSummary {
        requests: requests?,
        seconds: seconds.filter(|s| *s > 0.0)?,
        mean_us: mean_us?,
        p50_us: p50_us?,
        p99_us: p99_us?,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 1s test @ http://127.0.0.1:4000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   845.32us  412.10us   9.87ms   80.12%
    Req/Sec    29.12k     1.20k   31.00k    70.00%
  Latency Distribution
     50%  790.00us
     75%    1.01ms
     90%    1.30ms
     99%    2.10ms
  57960 requests in 1.00s, 6.80MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  57903.21
Transfer/sec:      6.79MB
";

    #[test]
    fn wrk_output_is_parsed_with_errors_by_kind() {
        let w = parse_wrk(WRK).unwrap();
        assert_eq!(w.requests, 57960);
        assert_eq!(w.seconds, 1.0);
        assert!((w.mean_us - 845.32).abs() < 1e-9);
        assert!((w.p50_us - 790.0).abs() < 1e-9);
        assert!((w.p99_us - 2100.0).abs() < 1e-9);
        assert_eq!(w.errors.get("socket read error"), Some(&2));
        assert_eq!(w.errors.get("socket timeout error"), Some(&1));
        assert_eq!(w.errors.get("non-2xx answer"), Some(&5));
        assert!(!w.errors.contains_key("socket connect error"), "zero counts are not errors");
        assert!(parse_wrk("wrk: command not understood").is_none());
    }

    #[test]
    fn durations_in_wrk_units() {
        assert_eq!(duration_us("12.5us"), Some(12.5));
        assert_eq!(duration_us("1.5ms"), Some(1500.0));
        assert_eq!(duration_us("2.00s"), Some(2e6));
        assert_eq!(duration_us("1.00m"), Some(60e6));
        assert_eq!(duration_us("fast"), None);
    }

    /// The server answers, and stops listening when dropped. It listens on 127.0.0.2, where no
    /// other test's server or client socket can take its port once it is free (tests run in
    /// parallel: on 127.0.0.1 the quick run's server once got the same port right after).
    #[test]
    fn the_endpoint_answers_and_stops() {
        let server = endpoint(std::net::Ipv4Addr::new(127, 0, 0, 2)).unwrap();
        let addr = server.addr();
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("ok"), "{text}");
        drop(server);
        assert!(std::net::TcpStream::connect(addr).is_err(), "nothing listens after the server stopped");
    }
}

harness::quick_run_test!(CalibrationHttp::new());
