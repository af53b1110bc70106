//! `http-timeouts`: the guide's server timeouts (`NewOptimizedHTTPServer`: ReadHeaderTimeout
//! 5 s, ReadTimeout 10 s, WriteTimeout 10 s, IdleTimeout 120 s) against slow clients.
//!
//! A hyper HTTP/1.1 service on loopback (in this process, on a runtime of its own, a new one per
//! sample) answers `GET /`. While normal clients (the harness's HTTP client, a closed loop on
//! keep-alive connections, sending a request again on a new connection when the server closed
//! its own, as Go's Transport does) measure it, the harness
//! holds N slow clients open against it: real TCP connections that send a request line and then
//! one byte of a header every so often and never finish (slowloris); when the server closes
//! one, it comes back. They arrive spread over the first timeout and come back after a random
//! pause, so they are not cut and do not reconnect in lock-step.
//!
//! Three servers: without timeouts (Go's `http.Server{}` zero values, where a header may take
//! forever); with the guide's timeouts as Go's server applies them (`GoDeadlines`: a request's
//! header must be complete one ReadHeaderTimeout after its first byte, or after the accept for
//! a connection's first request; a keep-alive connection may wait IdleTimeout for its next
//! request); and with hyper's own `header_read_timeout` at the same value, whose clock also
//! runs while a keep-alive connection waits for its next request (a different rule: its own
//! named variant).
//!
//! The guide's 5 s is scaled to a fifth of the measured window (200 ms in a full run, 30 ms in
//! quick mode; `--set http-timeouts.header_timeout_ms=5000` for the guide's own) so that it
//! fires within a sample, and IdleTimeout with it (24× the header timeout, the guide's 120 s /
//! 5 s); the slow clients' own timings scale with it: a byte every half of it (so only a
//! timeout on the whole header cuts them, as in a real slowloris) and a new connection about
//! one timeout after being cut. Measured: the normal clients' latency, requests per second and
//! failures (a normal connection the server closed is counted by kind, the technique's
//! outcome), the connections the server holds open at the end, the slow and the normal
//! connections each timeout cut (every sample of a timeout variant with slow clients must show
//! its timeout cutting, or it is not a measurement of it), and the process's memory growth.

use bytes::Bytes;
use harness::kit::http::{RawClient, Server};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::{
    names_of, pick, BoxFuture, Check, Engine, Experiment, Knob, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial,
    Variant,
};
use http_body_util::Full;
use std::future::Future as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::{Instant, Sleep};

const ID: &str = "http-timeouts";

/// Normal clients unless `--concurrency` says otherwise.
const CLIENTS: u32 = 16;

/// The guide's ReadHeaderTimeout and IdleTimeout.
const GUIDE_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const GUIDE_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The kind of a normal request that failed because the server closed its connection: the
/// technique's outcome (a timeout cutting a client it should not), counted, never a reason to
/// drop the sample.
const NORMAL_CUT: &str = "the server closed a normal client's connection";

harness::table! {
    const VARIANTS: [Variant] = enum Timeouts {
        None => Variant::new("no-timeouts", "hyper's HTTP/1.1 server with no header timeout: Go's http.Server{} with its zero values, where a client may take forever to send its headers"),
        /// Go's deadlines at the guide's values (`GoDeadlines`).
        Guide => Variant::new("guide-timeouts", "the same server with the guide's ReadHeaderTimeout and IdleTimeout applied as Go's server applies them, scaled to the sample: a request's header must be complete one ReadHeaderTimeout after its first byte (after the accept for a connection's first request), and a keep-alive connection may wait IdleTimeout for its next request") .compared_with("no-timeouts") .tests_claim(),
        /// hyper's `header_read_timeout` at the guide's ReadHeaderTimeout.
        Hyper => Variant::new("hyper-header-timeout", "the same server with hyper's own header_read_timeout at the guide's ReadHeaderTimeout: its clock starts whenever hyper waits for a request head, so it also bounds the wait of an idle keep-alive connection (no separate IdleTimeout)") .compared_with("no-timeouts"),
    }
}

/// The Go originals (go/inproc/http_timeouts.go): net/http's own server, the guide's
/// NewOptimizedHTTPServer as printed, its timeouts scaled as the port's.
const GO_VARIANTS: [(Variant, Timeouts); 2] = [
    (
        Variant::baseline_of_group("go-no-timeouts", "Go original: net/http's http.Server{} with its zero values (no timeouts)")
            .go_server("TimeoutsServer/no-timeouts"),
        Timeouts::None,
    ),
    (
        Variant::new("go-guide-timeouts", "Go original: the guide's NewOptimizedHTTPServer as printed, every timeout scaled by the port's header timeout over the guide's 5 s")
            .compared_with("go-no-timeouts")
            .go_server("TimeoutsServer/guide-timeouts")
            .tests_claim(),
        Timeouts::Guide,
    ),
];

/// What the server counts.
#[derive(Default)]
struct Counters {
    /// Connections open now.
    open: AtomicI64,
    /// Connections closed because a header did not arrive in time.
    header_cut: AtomicU64,
    /// Connections closed because they waited too long for their next request (IdleTimeout).
    idle_cut: AtomicU64,
}

/// Go's server-side read deadlines for requests without a body, around a connection: the
/// first request's header must be complete `header` after the accept; after an answer, the
/// connection may wait `idle` for the next request's first byte, and from that byte its header
/// must be complete within `header` (net/http's conn.serve: SetReadDeadline(idle) before the
/// Peek, then ReadHeaderTimeout from t0). The end of a header is its blank line; an answer is
/// any write. A deadline that passes fails the read with `TimedOut`, and hyper closes the
/// connection, as Go's server does after a read timeout.
struct GoDeadlines {
    inner: tokio::net::TcpStream,
    header: Duration,
    idle: Duration,
    phase: Phase,
    /// The running deadline (reset, not reallocated, per request, as Go resets one).
    deadline: Pin<Box<Sleep>>,
    /// The last bytes read, to find a blank line split across reads.
    tail: [u8; 3],
    counters: Arc<Counters>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's header, under ReadHeaderTimeout.
    Header,
    /// The header is in; the answer is being written (no read deadline).
    Answering,
    /// Waiting for the next request's first byte, under IdleTimeout.
    Idle,
}

impl GoDeadlines {
    fn new(inner: tokio::net::TcpStream, header: Duration, idle: Duration, counters: Arc<Counters>) -> Self {
        Self {
            inner,
            header,
            idle,
            phase: Phase::Header,
            deadline: Box::pin(tokio::time::sleep(header)),
            tail: [0; 3],
            counters,
        }
    }

    /// Move the header phase on over `bytes`: the blank line ends the header.
    fn scan(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Idle && !bytes.is_empty() {
            self.phase = Phase::Header;
            self.deadline.as_mut().reset(Instant::now() + self.header);
        }
        if self.phase != Phase::Header {
            return;
        }
        let mut window = u32::from_be_bytes([0, self.tail[0], self.tail[1], self.tail[2]]);
        for &b in bytes {
            window = (window << 8) | u32::from(b);
            if window == u32::from_be_bytes(*b"\r\n\r\n") {
                self.phase = Phase::Answering;
                break;
            }
        }
        let [_, t0, t1, t2] = window.to_be_bytes();
        self.tail = [t0, t1, t2];
    }

    /// An answer is being written: the idle deadline runs from here.
    fn answered(&mut self) {
        if self.phase == Phase::Answering {
            self.phase = Phase::Idle;
            self.tail = [0; 3];
            self.deadline.as_mut().reset(Instant::now() + self.idle);
        }
    }
}

impl AsyncRead for GoDeadlines {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.phase != Phase::Answering && this.deadline.as_mut().poll(cx).is_ready() {
            let which = if this.phase == Phase::Idle { &this.counters.idle_cut } else { &this.counters.header_cut };
            which.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.scan(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GoDeadlines {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        this.answered();
        Poll::Ready(Ok(n))
    }

    // Vectored writes pass through as the bare stream takes them, so hyper writes the same way
    // for every variant (without this it would flatten each answer into one buffer first).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.answered();
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The server's timeouts in a run: ReadHeaderTimeout and IdleTimeout, scaled together.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header: Duration,
    idle: Duration,
}

impl Limits {
    fn scaled(header: Duration) -> Self {
        let ratio = GUIDE_IDLE_TIMEOUT.as_secs_f64() / GUIDE_READ_HEADER_TIMEOUT.as_secs_f64();
        Self { header, idle: header.mul_f64(ratio) }
    }
}

/// Serve one connection with hyper; count a timeout hyper itself reports (its own
/// header_read_timeout) as a header cut.
async fn serve<S>(io: S, hyper_timeout: Option<Duration>, counters: &Counters)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(hyper_timeout);
    let service = hyper::service::service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    if let Err(e) = http.serve_connection(hyper_util::rt::TokioIo::new(io), service).await {
        if e.is_timeout() {
            counters.header_cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A new server, on a runtime of two threads, with the given timeouts.
fn start_service(timeouts: Timeouts, limits: Limits, counters: Arc<Counters>) -> anyhow::Result<Server> {
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
                match timeouts {
                    Timeouts::None => serve(stream, None, &counters).await,
                    Timeouts::Hyper => serve(stream, Some(limits.header), &counters).await,
                    Timeouts::Guide => {
                        let io = GoDeadlines::new(stream, limits.header, limits.idle, counters.clone());
                        serve(io, None, &counters).await;
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

/// `n` slow clients against `addr`, each starting at a random moment within the first
/// `timeout`, sending a byte of a header every `timeout / 2` until `stop` says so, and
/// connecting again after a random pause of 0.5–1.5 `timeout` once the server closed on it.
/// The randomness is seeded by the client's number, the same for every variant.
fn start_slow_clients(
    addr: SocketAddr,
    n: u32,
    timeout: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
    tally: Arc<SlowTally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let every = timeout / 2;
    (0..n)
        .map(|i| {
            let (mut stop, tally) = (stop.clone(), tally.clone());
            let mut rng = SplitMix64::new(0x5105_1015 ^ u64::from(i));
            tokio::spawn(async move {
                let mut pause = timeout.mul_f64(rng.next_f64());
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = timeout.mul_f64(0.5 + rng.next_f64());
                    if *stop.borrow() {
                        return;
                    }
                    let mut s = match tokio::net::TcpStream::connect(addr).await {
                        Ok(s) => s,
                        Err(_) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            continue;
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
    "the guide's ReadHeaderTimeout as the run uses it (the guide's own is 5,000); IdleTimeout is 24 times it, the guide's ratio",
);

fn header_timeout(ctx: &RunCtx) -> anyhow::Result<Duration> {
    ctx.settings.fifth_of_sample(&HEADER_TIMEOUT, Duration::from_millis(20))
}

/// Whether a failed request's error says the server closed the connection.
fn closed_by_server(kind: &str) -> bool {
    ["connection closed", "os error 32", "os error 104"].iter().any(|k| kind.contains(k))
}

/// A normal client: one keep-alive connection. When the server closed it, the request is
/// sent again once on a new connection, inside the same request's time, as Go's Transport
/// retries an idempotent request whose reused connection was closed (`shouldRetryRequest`);
/// a request that fails again counts as failed (`NORMAL_CUT`).
struct Get {
    addr: SocketAddr,
    conn: Option<RawClient>,
    retried: Arc<AtomicU64>,
}

impl Get {
    async fn once(&mut self) -> Result<(), OpError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self
                .conn
                .insert(RawClient::connect(self.addr).await.map_err(|e| OpError::new(format!("connect: {e}")))?),
        };
        let r = conn.get_ok("/", "").await.map(drop);
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}

impl Worker for Get {
    async fn call(&mut self) -> Result<(), OpError> {
        match self.once().await {
            Err(e) if closed_by_server(&e.kind) => {
                self.retried.fetch_add(1, Ordering::Relaxed);
                self.once().await.map_err(|e| if closed_by_server(&e.kind) { OpError::new(NORMAL_CUT) } else { e })
            }
            r => r,
        }
    }
}

/// The connections each variant's server cut at each point, over its samples: for a header
/// timeout, for an idle one.
#[derive(Default, Clone, Copy)]
struct Cuts {
    header: u64,
    idle: u64,
}

#[derive(Default)]
pub struct HttpTimeouts {
    cuts: harness::acted::Tally<Cuts>,
}

impl HttpTimeouts {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Why a sample does not measure its variant's timeouts: a server with timeouts that cut none
/// of the slow clients while they were there (`slow_cut`: as the slow clients saw it), or one
/// without timeouts that closed a connection for one (`server_cut`: as the server counted).
fn not_acted(timeouts: Timeouts, slow: u32, slow_cut: u64, server_cut: u64) -> Option<String> {
    match timeouts {
        Timeouts::None if server_cut > 0 => {
            Some(format!("the server without timeouts closed {server_cut} connection(s) for a timeout"))
        }
        Timeouts::Guide | Timeouts::Hyper if slow > 0 && slow_cut == 0 => Some(format!(
            "the header timeout cut none of the {slow} slow clients: this sample does not measure the timeout"
        )),
        _ => None,
    }
}

impl Experiment for HttpTimeouts {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Server timeouts against slow clients (slowloris)",
            guide_section: "HTTP服务优化: NewOptimizedHTTPServer (ReadHeaderTimeout 5 s, ReadTimeout 10 s, WriteTimeout 10 s, IdleTimeout 120 s)",
            claim: "Server timeouts (ReadHeaderTimeout 5 s etc.) protect the service from clients that hold connections open.",
            variants: [names_of(&VARIANTS), names_of(&GO_VARIANTS)].concat(),
            sweep: Sweep::numeric("slow clients", "connections", &[0.0, 100.0, 1000.0], &[0.0, 100.0]),
            primary_metric: load::latency_p99("one request of a normal client"),
            metrics: vec![
                load::throughput("requests/s", "normal clients' successful requests per second"),
                load::latency_mean("a normal client's request"),
                load::latency_p50("one request of a normal client"),
                MetricInfo::new("open_connections", "connections", Better::Lower, "connections the server holds open when the sample ends (normal and slow)"),
                MetricInfo::new("header_cut_per_s", "connections/s", Better::Higher, "connections the server closed per second because a request's header was not complete in time (the slow clients' cuts)"),
                MetricInfo::new("idle_cut_per_s", "connections/s", Better::Lower, "keep-alive connections the server closed per second because they waited too long for their next request (normal clients the timeouts cut)"),
                MetricInfo::new("normal_retried_per_s", "requests/s", Better::Lower, "normal requests per second sent again on a new connection because the server had closed theirs (as Go's Transport retries them)"),
                MetricInfo::new("rss_growth_mb", "MiB", Better::Lower, "growth of the process's resident memory from before the server started to the end of the sample")
                    .negligible_below(2.0),
            ],
            outcome_errors: &[NORMAL_CUT],
            targets: harness::targets::SERVICE,
            knobs: vec![HEADER_TIMEOUT],
            capacity: Some(harness::CapacityPlan::guide(100.0, 200.0, "Limits: the guide's API target (p95 < 200 ms), with 100 slow clients holding connections.")),
            controls: vec![harness::experiment::Control::new(0.0, "no slow client holds a connection, so the timeouts have nothing to cut")],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            Ok(self.cuts.checks("timeouts acted as set", |_, variant, c| {
                let expect = match pick(&VARIANTS, variant) {
                    Ok(Timeouts::None) => "a server without timeouts cuts nothing",
                    _ => "with slow clients, the header timeout cuts some in every sample",
                };
                format!(
                    "{expect}; {} connection(s) cut for their header and {} idle keep-alive connection(s) cut in all",
                    c.header, c.idle
                )
            }))
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let limits = header_timeout(ctx).map(Limits::scaled);
        let shown = |f: fn(&Limits) -> Duration| {
            limits.as_ref().map(|l| format!("{} ms", f(l).as_millis())).unwrap_or_else(|e| e.to_string())
        };
        harness::notes!(
            guide_header_s = GUIDE_READ_HEADER_TIMEOUT.as_secs(),
            header = shown(|l| l.header),
            guide_idle_s = GUIDE_IDLE_TIMEOUT.as_secs(),
            idle = shown(|l| l.idle),
            clients = ctx.settings.concurrency.unwrap_or(CLIENTS),
        )
    }
}

impl Run for HttpTimeouts {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            if let Some((bench, timeouts)) = harness::go_served(&GO_VARIANTS, at.variant) {
                return run_go(ctx, at, bench, timeouts).await;
            }
            let timeouts = pick(&VARIANTS, at.variant)?;
            let limits = Limits::scaled(header_timeout(ctx)?);
            harness::resources::trim_heap();
            let rss_before = harness::resources::rss_bytes();
            let counters = Arc::new(Counters::default());
            let server = start_service(timeouts, limits, counters.clone())?;
            let driven = drive(ctx, at, server.addr(), limits).await;
            let open = counters.open.load(Ordering::Relaxed);
            let header_cut = counters.header_cut.load(Ordering::Relaxed);
            let idle_cut = counters.idle_cut.load(Ordering::Relaxed);
            let rss_after = harness::resources::rss_bytes();
            let (report, slow) = driven.stop().await;
            server.stop().await?;
            let mut sample = report?.into_sample();
            slow.record(&mut sample, open.max(0) as u64, header_cut, idle_cut);
            if let (Some(b), Some(a)) = (rss_before, rss_after) {
                sample.metrics.insert("rss_growth_mb".into(), a.saturating_sub(b) as f64 / (1024.0 * 1024.0));
            }
            sample.invalid = not_acted(timeouts, at.point.value as u32, slow.cut, header_cut + idle_cut);
            self.cuts.record(&at, sample.invalid.is_none(), |c| {
                c.header += header_cut;
                c.idle += idle_cut;
            });
            Ok(sample)
        })
    }
}

/// A sample's load while it runs: the normal clients' closed loop against the server at `addr`
/// while the point's slow clients hold connections to it.
struct Driven {
    report: anyhow::Result<load::LoadReport>,
    elapsed: f64,
    retried: Arc<AtomicU64>,
    tally: Arc<SlowTally>,
    stop: tokio::sync::watch::Sender<bool>,
    slow_clients: Vec<tokio::task::JoinHandle<()>>,
}

/// What the slow and the retried normal clients came to over a sample of `elapsed` seconds.
struct SlowCounts {
    cut: u64,
    failed: u64,
    retried: u64,
    elapsed: f64,
}

/// Every variant's load: the normal clients' closed loop (returns when it is over, the slow
/// clients still connected: `Driven::stop`).
async fn drive(ctx: &RunCtx, at: Trial<'_>, addr: SocketAddr, limits: Limits) -> Driven {
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let tally = Arc::new(SlowTally::default());
    let slow_clients = start_slow_clients(addr, at.point.value as u32, limits.header, stop_rx, tally.clone());
    let cfg = ctx.settings.load_for(&at, ctx.settings.concurrency.unwrap_or(CLIENTS));
    let started = std::time::Instant::now();
    let retried = Arc::new(AtomicU64::new(0));
    let r = retried.clone();
    let report = load::run(&cfg, &ctx.probe, move |_| {
        let retried = r.clone();
        async move { Ok(Get { addr, conn: Some(RawClient::connect(addr).await?), retried }) }
    })
    .await;
    Driven { report, elapsed: started.elapsed().as_secs_f64().max(1e-9), retried, tally, stop, slow_clients }
}

impl Driven {
    /// Stop the slow clients; the load's report and what they came to.
    async fn stop(self) -> (anyhow::Result<load::LoadReport>, SlowCounts) {
        let counts = SlowCounts {
            cut: self.tally.cut.load(Ordering::Relaxed),
            failed: self.tally.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            elapsed: self.elapsed,
        };
        let _ = self.stop.send(true);
        for c in self.slow_clients {
            let _ = c.await;
        }
        (self.report, counts)
    }
}

impl SlowCounts {
    /// The sample's connection metrics: the server's connections open when the load ended and
    /// the cuts its timeouts made, per second.
    fn record(&self, sample: &mut Sample, open: u64, header_cut: u64, idle_cut: u64) {
        sample.metrics.insert("open_connections".into(), open as f64);
        sample.metrics.insert("header_cut_per_s".into(), header_cut as f64 / self.elapsed);
        sample.metrics.insert("idle_cut_per_s".into(), idle_cut as f64 / self.elapsed);
        sample.metrics.insert("normal_retried_per_s".into(), self.retried as f64 / self.elapsed);
        if self.failed > 0 {
            // Not the normal clients' errors: reported beside them, by kind.
            sample.errors.insert("slow client could not connect".into(), self.failed);
        }
    }
}

/// A sample of a Go original: its server (net/http with the variant's settings, the header
/// timeout scaled as the port's) started, driven by the same normal and slow clients, then
/// stopped while the slow clients still hold their connections, as the port's counters are
/// read; its open connections, cuts (told from net/http's ConnState by how long a closed
/// connection had waited) and memory growth from the Go process.
async fn run_go(ctx: &RunCtx, at: Trial<'_>, bench: &'static str, timeouts: Timeouts) -> anyhow::Result<Sample> {
    let limits = Limits::scaled(header_timeout(ctx)?);
    let env = [("PERFLAB_HEADER_TIMEOUT_NS", limits.header.as_nanos().to_string())];
    let server = harness::micro::go_server::GoServer::start(bench, at, &env).await?;
    let driven = drive(ctx, at, server.addr(), limits).await;
    let own = server.stop().await;
    let (report, slow) = driven.stop().await;
    let own = own?;
    let mut sample = report?.into_sample();
    let count = |k: &str| own.get(k).copied().unwrap_or(0.0) as u64;
    let (header_cut, idle_cut) = (count("header_cut"), count("idle_cut"));
    slow.record(&mut sample, count("open_connections"), header_cut, idle_cut);
    if let Some(mb) = own.get("rss_growth_mb") {
        sample.metrics.insert("rss_growth_mb".into(), *mb);
    }
    sample.invalid = not_acted(timeouts, at.point.value as u32, slow.cut, header_cut + idle_cut);
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// With either timeout, slow clients are cut and come back; without, they are held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_header_timeout_cuts_slow_clients_and_only_it() {
        for (timeouts, expect_cut) in [(Timeouts::Guide, true), (Timeouts::Hyper, true), (Timeouts::None, false)] {
            let counters = Arc::new(Counters::default());
            let server = start_service(timeouts, Limits { header: MS(40), idle: MS(2000) }, counters.clone()).unwrap();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let tally = Arc::new(SlowTally::default());
            let slow = start_slow_clients(server.addr(), 3, MS(40), stop_rx, tally.clone());
            // A normal client is answered meanwhile.
            let mut normal = RawClient::connect(server.addr()).await.unwrap();
            assert_eq!(normal.get("/", "").await.unwrap().status, 200);
            tokio::time::sleep(MS(400)).await;
            let cut = tally.cut.load(Ordering::Relaxed);
            let counted = counters.header_cut.load(Ordering::Relaxed);
            if expect_cut {
                assert!(cut >= 6, "{timeouts:?}: slow clients are cut 40 ms after connecting: {cut} cuts in 400 ms");
                assert!(counted >= 6, "{timeouts:?}: the server counts its cuts: {counted}");
                assert!(not_acted(timeouts, 3, cut, 0).is_none());
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

    /// Go's rule: a keep-alive connection may wait IdleTimeout for its next request, longer
    /// than ReadHeaderTimeout, and is closed after it; hyper's header_read_timeout closes it
    /// after the header timeout already. A request whose connection was closed is sent again
    /// on a new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn go_waits_idle_timeout_between_requests_hyper_the_header_timeout() {
        let limits = Limits { header: MS(40), idle: MS(400) };
        for (timeouts, pause, cut) in [
            (Timeouts::Guide, 120, false),
            (Timeouts::Hyper, 120, true),
            (Timeouts::Guide, 700, true),
            (Timeouts::None, 700, false),
        ] {
            let counters = Arc::new(Counters::default());
            let server = start_service(timeouts, limits, counters.clone()).unwrap();
            let addr = server.addr();
            let retried = Arc::new(AtomicU64::new(0));
            let mut get = Get { addr, conn: Some(RawClient::connect(addr).await.unwrap()), retried: retried.clone() };
            get.call().await.unwrap();
            tokio::time::sleep(MS(pause)).await;
            let second = get.call().await;
            let what = format!("{timeouts:?} after {pause} ms idle");
            // A cut connection is retried once on a new one, as Go's Transport does: the request
            // succeeds, and the retry is counted.
            second.unwrap_or_else(|e| panic!("{what}: {}", e.kind));
            assert_eq!(retried.load(Ordering::Relaxed), u64::from(cut), "{what}: retries");
            let (header, idle) =
                (counters.header_cut.load(Ordering::Relaxed), counters.idle_cut.load(Ordering::Relaxed));
            match (timeouts, cut) {
                (Timeouts::Guide, true) => assert_eq!((header, idle), (0, 1), "{what}"),
                (Timeouts::Hyper, true) => assert_eq!((header, idle), (1, 0), "{what}"),
                _ => assert_eq!((header, idle), (0, 0), "{what}"),
            }
            server.stop().await.unwrap();
        }
    }

    /// A header's blank line is found however the reads split it, and only a blank line
    /// ends the header.
    #[tokio::test]
    async fn the_end_of_a_header_is_found_across_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut io = GoDeadlines::new(stream, MS(50), MS(500), Arc::default());
        for split in 1..20 {
            let request = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
            io.phase = Phase::Header;
            io.tail = [0; 3];
            let (a, b) = request.split_at(split);
            io.scan(a);
            assert_eq!(io.phase, Phase::Header, "split at {split}: not complete yet");
            io.scan(b);
            assert_eq!(io.phase, Phase::Answering, "split at {split}");
        }
        io.phase = Phase::Header;
        io.scan(b"GET / HTTP/1.1\r\nA: b\r\n\rX\n\r\n");
        assert_eq!(io.phase, Phase::Header, "no blank line");
    }

    /// A sample of a timeout variant in which nothing was cut despite slow clients is not a
    /// measurement of the timeout; a server without timeouts must cut nothing.
    #[test]
    fn a_sample_where_the_timeout_did_not_act_is_invalid() {
        assert!(not_acted(Timeouts::Guide, 100, 0, 0).is_some());
        assert!(not_acted(Timeouts::Hyper, 100, 0, 3).is_some(), "cuts of normal clients are not slow clients cut");
        assert!(not_acted(Timeouts::Guide, 0, 0, 0).is_none());
        assert!(not_acted(Timeouts::Guide, 100, 5, 5).is_none());
        assert!(not_acted(Timeouts::None, 100, 0, 0).is_none());
        assert!(not_acted(Timeouts::None, 100, 0, 1).is_some());
    }
}

harness::quick_run_test!(HttpTimeouts::new());
