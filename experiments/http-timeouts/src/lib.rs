//! `http-timeouts`: the guide's server timeouts (`NewOptimizedHTTPServer`: ReadHeaderTimeout
//! 5 s, ReadTimeout 10 s, WriteTimeout 10 s, IdleTimeout 120 s) against slow clients.
//!
//! A hyper HTTP/1.1 service on loopback (in this process, on a runtime of its own, a new one per
//! sample) answers `GET /`. While normal clients (the harness's HTTP client, a closed loop)
//! measure it, the harness holds N slow clients open against it: real TCP connections that send
//! a request line and then one byte of a header every so often and never finish (slowloris);
//! when the server closes one, it reconnects, so N stay open or trying. Two servers: without
//! timeouts (Go's `http.Server{}` zero values, where a header may take forever), and with the
//! guide's ReadHeaderTimeout, the one a slow header meets (hyper's `header_read_timeout`).
//!
//! The guide's 5 s is scaled to a fifth of the measured window (200 ms in a full run, 30 ms in
//! quick mode; `--set http-timeouts.header_timeout_ms=5000` for the guide's own), so that it
//! fires within a sample; the slow clients' own timings scale with it: a byte every half of
//! it (so only a timeout on the whole header cuts them, as in a real slowloris) and a new
//! connection one timeout after being cut. Scaling keeps the ratios of the guide's setting;
//! it multiplies every rate (bytes, reconnections) by the same factor, which is why quick mode
//! (a 30 ms timeout) stops at 100 slow clients. Measured: the normal clients'
//! requests per second, latency and errors, the connections the server holds open at the end,
//! how many slow connections it cut, and the process's memory growth.

use bytes::Bytes;
use harness::kit::http::{RawClient, Server};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Knob, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use http_body_util::Full;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ID: &str = "http-timeouts";

/// Normal clients unless `--concurrency` says otherwise.
const CLIENTS: u32 = 16;

/// The guide's ReadHeaderTimeout.
const GUIDE_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeouts {
    None,
    Guide,
}

const VARIANTS: [(Variant, Timeouts); 2] = [
    (
        Variant::new("no-timeouts", "hyper's HTTP/1.1 server with no header timeout: Go's http.Server{} with its zero values, where a client may take forever to send its headers"),
        Timeouts::None,
    ),
    (
        Variant::new("guide-timeouts", "the same server with the guide's ReadHeaderTimeout (hyper's header_read_timeout), scaled to the sample: a connection whose headers are not complete in time is closed")
            .compared_with("no-timeouts")
            .tests_claim(),
        Timeouts::Guide,
    ),
];

/// What the server counts.
#[derive(Default)]
struct Counters {
    /// Connections open now.
    open: AtomicI64,
    /// Connections closed because their headers did not arrive in time.
    timed_out: AtomicU64,
}

/// A new server, on a runtime of two threads, with or without the header timeout.
fn start_service(header_timeout: Option<Duration>, counters: Arc<Counters>) -> anyhow::Result<Server> {
    Server::start(Ipv4Addr::LOCALHOST, 2, move |listener, shutdown| async move {
        let mut shutdown = shutdown;
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    // Out of descriptors: wait and go on, as a server does.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let counters = counters.clone();
            counters.open.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                if let Err(e) = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await {
                    if e.is_timeout() {
                        counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    }
                }
                counters.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    })
}

/// What the slow clients did.
#[derive(Default)]
struct SlowTally {
    /// Connections opened (first ones and reconnections).
    connected: AtomicU64,
    /// Connections the server closed on them.
    cut: AtomicU64,
    /// Connections that could not be opened (by kind, only the count is kept).
    failed: AtomicU64,
}

/// `n` slow clients against `addr`, each sending a byte of a header every `every` until `stop`
/// says so, and connecting again `2 × every` after the server closed on it.
fn start_slow_clients(
    addr: SocketAddr,
    n: u32,
    every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    tally: Arc<SlowTally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (mut stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                while !*stop.borrow() {
                    let mut s = match tokio::net::TcpStream::connect(addr).await {
                        Ok(s) => s,
                        Err(_) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::select! {
                                _ = stop.changed() => return,
                                _ = tokio::time::sleep(every) => continue,
                            }
                        }
                    };
                    tally.connected.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(b"GET / HTTP/1.1\r\nHost: perflab\r\nX-Slow: ").await.is_err() {
                        tally.cut.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut buf = [0u8; 512];
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            r = s.read(&mut buf) => match r {
                                // The server answered (a 408) or closed: either way it let go.
                                Ok(0) | Err(_) => break,
                                Ok(_) => continue,
                            },
                            _ = tokio::time::sleep(every) => {
                                if s.write_all(b"a").await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    tally.cut.fetch_add(1, Ordering::Relaxed);
                    // An attacker comes back, after a pause of the same scale as its sending.
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(every * 2) => {}
                    }
                }
            })
        })
        .collect()
}

/// The header timeout of the guide's server in this run: a fifth of the measured window (at
/// least 20 ms), unless set.
const HEADER_TIMEOUT: Knob = Knob::int_derived(
    ID,
    "header_timeout_ms",
    1,
    600_000,
    "a fifth of the measured window, at least 20 ms: 200 in a full run, 30 in quick mode",
    "the guide's ReadHeaderTimeout as the run uses it (the guide's own is 5,000)",
);

fn header_timeout(ctx: &RunCtx) -> anyhow::Result<Duration> {
    ctx.settings.fifth_of_sample(&HEADER_TIMEOUT, Duration::from_millis(20))
}

struct Get(RawClient);

impl Worker for Get {
    async fn call(&mut self) -> Result<(), OpError> {
        self.0.get_ok("/", "").await.map(drop)
    }
}

#[derive(Default)]
pub struct HttpTimeouts;

impl HttpTimeouts {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for HttpTimeouts {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Server timeouts against slow clients (slowloris)",
            guide_section: "HTTP服务优化: NewOptimizedHTTPServer (ReadHeaderTimeout 5 s, ReadTimeout 10 s, WriteTimeout 10 s, IdleTimeout 120 s)",
            claim: "Server timeouts (ReadHeaderTimeout 5 s etc.) protect the service from clients that hold connections open.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("slow clients", "connections", &[0.0, 100.0, 1000.0], &[0.0, 100.0]),
            primary_metric: load::latency_p99("one request of a normal client"),
            metrics: vec![
                load::throughput("requests/s", "normal clients' successful requests per second"),
                load::latency_mean("a normal client's request"),
                load::latency_p50("one request of a normal client"),
                MetricInfo::new("open_connections", "connections", Better::Lower, "connections the server holds open when the sample ends (normal and slow)"),
                MetricInfo::new("slow_cut_per_s", "connections/s", Better::Higher, "slow connections the server closed per second"),
                MetricInfo::new("rss_growth_mb", "MiB", Better::Lower, "growth of the process's resident memory from before the server started to the end of the sample")
                    .negligible_below(2.0),
            ],
            targets: harness::targets::SERVICE,
            knobs: vec![HEADER_TIMEOUT],
            capacity: Some(harness::CapacityPlan {
                case: "",
                point: 100.0,
                limits: harness::load::capacity::Limits::guide(200.0),
                why: "Limits: the guide's API target (p95 < 200 ms), with 100 slow clients holding connections.",
            }),
            controls: vec![harness::experiment::Control {
                value: 0.0,
                why: "no slow client holds a connection, so the timeouts have nothing to cut",
            }],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let timeout = header_timeout(ctx).map(|d| format!("{} ms", d.as_millis())).unwrap_or_else(|e| e.to_string());
        vec![
            format!(
                "The guide's ReadHeaderTimeout ({} s) is {timeout} in this run, so that it fires within a sample; slow clients send one byte of a header every half of it (never idle long enough for anything but a timeout on the whole header to cut them) and connect again one timeout after being cut: the guide's ratios, every rate multiplied by the scale. {} normal clients use the harness's HTTP client in a closed loop.",
                GUIDE_READ_HEADER_TIMEOUT.as_secs(),
                ctx.settings.concurrency.unwrap_or(CLIENTS)
            ),
            "The guide's ReadTimeout (10 s) covers the same header here (GETs have no body), WriteTimeout (10 s) never meets an answer of 2 bytes, and IdleTimeout (120 s) concerns finished requests, which slow clients never have: the header timeout is the one slowloris meets.".into(),
            "hyper's own default is a 30 s header timeout once a timer is set; Go's zero-value http.Server and hyper without a timer have none, which is the no-timeouts variant.".into(),
            "A task per connection costs the server little memory in tokio (as a goroutine does in Go), so what slow clients take is mostly connections and descriptors: see open connections and memory beside the normal clients' latency.".into(),
        ]
    }
}

impl Run for HttpTimeouts {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let timeouts = pick(&VARIANTS, at.variant)?;
            let slow = at.point.value as u32;
            let timeout = header_timeout(ctx)?;
            let clients = ctx.settings.concurrency.unwrap_or(CLIENTS);
            harness::resources::trim_heap();
            let rss_before = harness::resources::rss_bytes();
            let counters = Arc::new(Counters::default());
            let server = start_service((timeouts == Timeouts::Guide).then_some(timeout), counters.clone())?;
            let addr = server.addr();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let tally = Arc::new(SlowTally::default());
            let slow_clients = start_slow_clients(addr, slow, timeout / 2, stop_rx, tally.clone());
            let cut_before = tally.cut.load(Ordering::Relaxed);
            let cfg = ctx.settings.load_for(&at, clients);
            let started = std::time::Instant::now();
            let report =
                load::run(&cfg, &ctx.probe, move |_| async move { Ok(Get(RawClient::connect(addr).await?)) }).await;
            let elapsed = started.elapsed().as_secs_f64();
            let open = counters.open.load(Ordering::Relaxed);
            let cut = tally.cut.load(Ordering::Relaxed) - cut_before;
            let rss_after = harness::resources::rss_bytes();
            let _ = stop_tx.send(true);
            for c in slow_clients {
                let _ = c.await;
            }
            server.stop().await?;
            let mut sample = report?.into_sample();
            sample.metrics.insert("open_connections".into(), open.max(0) as f64);
            sample.metrics.insert("slow_cut_per_s".into(), cut as f64 / elapsed.max(1e-9));
            if let (Some(b), Some(a)) = (rss_before, rss_after) {
                sample.metrics.insert("rss_growth_mb".into(), a.saturating_sub(b) as f64 / (1024.0 * 1024.0));
            }
            let failed = tally.failed.load(Ordering::Relaxed);
            if failed > 0 {
                // Not the normal clients' errors: reported beside them, by kind.
                sample.errors.insert("slow client could not connect".into(), failed);
            }
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the header timeout, a slow client is cut and reconnects; without, it is held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_header_timeout_cuts_slow_clients_and_only_it() {
        for (timeout, expect_cut) in [(Some(Duration::from_millis(40)), true), (None, false)] {
            let counters = Arc::new(Counters::default());
            let server = start_service(timeout, counters.clone()).unwrap();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let tally = Arc::new(SlowTally::default());
            let slow = start_slow_clients(server.addr(), 3, Duration::from_millis(5), stop_rx, tally.clone());
            // A normal client is answered meanwhile.
            let mut normal = RawClient::connect(server.addr()).await.unwrap();
            assert_eq!(normal.get("/", "").await.unwrap().status, 200);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let cut = tally.cut.load(Ordering::Relaxed);
            if expect_cut {
                assert!(cut >= 6, "slow clients are cut every 40 ms: {cut} cuts in 300 ms");
                assert!(counters.timed_out.load(Ordering::Relaxed) >= 6);
            } else {
                assert_eq!(cut, 0, "without a timeout nothing cuts a client that keeps sending");
                assert_eq!(counters.open.load(Ordering::Relaxed), 4, "3 slow and 1 normal connection held");
            }
            let _ = stop_tx.send(true);
            for c in slow {
                c.await.unwrap();
            }
            drop(normal);
            server.stop().await.unwrap();
        }
    }
}

#[cfg(test)]
mod quick_run {
    use harness::Experiment as _;

    /// The experiment runs end to end as `bench --quick` runs it (every variant and point).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_end_to_end_in_quick_mode() {
        let exp = super::HttpTimeouts::new();
        let result = harness::testing::run_quick(&exp, &[]).await.unwrap();
        harness::testing::assert_complete(&exp.meta(), &result);
    }
}
