//! `http-compression`: the guide's gzip middleware (响应压缩中间件) on trial.
//!
//! An axum service on loopback (in this process, on a runtime of its own) answers `GET /data`
//! with a JSON-like body of the sweep's size, setting its own Content-Length as a Go handler
//! that knows its length does. The variants differ only in the layer around that handler: none;
//! tower-http's compression layer with gzip at its fastest, default and best level, brotli and
//! zstd; and the guide's `CompressionMiddleware` as written, which compresses whatever the
//! client accepts however small, and leaves the handler's Content-Length in place. A reqwest
//! client that decodes gzip, br and zstd (a standard client) drives it in a closed loop.
//!
//! The guide's middleware is tried around two handlers: one that sets its own Content-Length (which
//! the middleware then leaves promising the uncompressed length) and one that only writes, as
//! most Go handlers do (net/http then sets the length of what was written): each its own variant.
//!
//! Measured per sample: requests per second and latency on loopback, the bytes the server wrote
//! per response (headers and framing included: what crosses the wire), the CPU time of the
//! server's threads per response, and the responses that left the server compressed (the
//! technique acted: a compressing variant's sample where one did not is not a measurement of
//! it). This kernel has no netem or tbf qdisc, so no link is shaped: the time a response takes
//! on a real link is a model, labelled as one, computed from each sample's measurements: the CPU
//! both sides spent per response, plus its bytes on the wire at the link's rate, plus one round
//! trip. The claim is decided on a 100 Mbit/s link with a 20 ms round trip (a client over the
//! internet); 1 Gbit/s with 1 ms (within a data centre) and loopback are shown beside it. The
//! checks ask whether a standard client decodes each variant's response, and compute the
//! break-even link speed: below it the bytes saved take longer to send than the server's extra
//! CPU takes to compress them.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use harness::kit::http::{Counted, Server, Wire};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::{
    names_of, pick, BoxFuture, Check, Engine, Experiment, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_http::compression::{CompressionLayer, CompressionLevel};

const ID: &str = "http-compression";

/// Connections driving the service unless `--concurrency` says otherwise.
const CONNECTIONS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Identity,
    Gzip(Level),
    Brotli,
    Zstd,
    /// The guide's CompressionMiddleware, as written, around the handler that sets its own
    /// Content-Length.
    GuideGzip,
    /// The same middleware around a handler that only writes (no Content-Length of its own).
    GuideGzipWriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Fastest,
    Default,
    Best,
}

const VARIANTS: [(Variant, Layer); 8] = [
    (Variant::new("identity", "no compression layer: the handler's bytes as they are"), Layer::Identity),
    (
        Variant::new("gzip-fast", "tower-http's CompressionLayer, gzip only, CompressionLevel::Fastest").compared_with("identity"),
        Layer::Gzip(Level::Fastest),
    ),
    (
        Variant::new("gzip-default", "tower-http's CompressionLayer, gzip only, the default level")
            .compared_with("identity")
            .tests_claim(),
        Layer::Gzip(Level::Default),
    ),
    (
        Variant::new("gzip-best", "tower-http's CompressionLayer, gzip only, CompressionLevel::Best").compared_with("identity"),
        Layer::Gzip(Level::Best),
    ),
    (
        Variant::new("br", "tower-http's CompressionLayer, brotli only, the default level (for comparison)").compared_with("identity"),
        Layer::Brotli,
    ),
    (
        Variant::new("zstd", "tower-http's CompressionLayer, zstd only, the default level (for comparison)").compared_with("identity"),
        Layer::Zstd,
    ),
    (
        Variant::new("guide-gzip", "the guide's CompressionMiddleware as written: gzip (default level) whenever Accept-Encoding mentions gzip, whatever the size, the handler's Content-Length left as it was")
            .compared_with("identity"),
        Layer::GuideGzip,
    ),
    (
        Variant::new("guide-gzip-write-only", "the guide's CompressionMiddleware as written around a handler that only writes its body, as most Go handlers do (no Content-Length of its own: net/http sets the length of what was written); the answer on the wire is the same as identity's but for the encoding")
            .compared_with("identity"),
        Layer::GuideGzipWriteOnly,
    ),
];

/// The Go originals (go/inproc/http_compression.go): Go's compress/gzip and net/http, the
/// guide's CompressionMiddleware as printed, each a server the harness's load drives.
const GO_VARIANTS: [(Variant, Layer); 4] = [
    (
        Variant::baseline_of_group("go-identity", "Go original: net/http serving the body, its Content-Length set, no middleware")
            .go_server("CompressionServer/identity"),
        Layer::Identity,
    ),
    (
        Variant::new("go-gzip-default", "Go original: the guide's middleware fixed (compress/gzip at its default level, the handler's Content-Length dropped before the header goes out)")
            .compared_with("go-identity")
            .go_server("CompressionServer/gzip-default"),
        Layer::Gzip(Level::Default),
    ),
    (
        Variant::new("go-guide-gzip", "Go original: the guide's CompressionMiddleware as printed around the handler that sets its own Content-Length (the uncompressed length stays in the header)")
            .compared_with("go-identity")
            .go_server("CompressionServer/guide-gzip"),
        Layer::GuideGzip,
    ),
    (
        Variant::new("go-guide-gzip-write-only", "Go original: the guide's CompressionMiddleware as printed around a handler that only writes, as most Go handlers do")
            .compared_with("go-identity")
            .go_server("CompressionServer/guide-gzip-write-only")
            .tests_claim(),
        Layer::GuideGzipWriteOnly,
    ),
];

/// The links a response's time is modelled on: metric key, label, bits per second, round trip.
const LINKS: [(&str, &str, f64, Duration); 2] = [
    ("link_100mbit_ms", "100 Mbit/s, 20 ms round trip", 100e6, Duration::from_millis(20)),
    ("link_1gbit_ms", "1 Gbit/s, 1 ms round trip", 1e9, Duration::from_millis(1)),
];

/// The modelled time of one response on a link of `bits_per_s` and `rtt`, in ms: the CPU both
/// sides spent on it (`cpu_us`), its bytes at the link's rate, one round trip. No slow start,
/// no loss: a keep-alive connection whose window is open.
fn link_ms(cpu_us: f64, wire_bytes: f64, bits_per_s: f64, rtt: Duration) -> f64 {
    (cpu_us + wire_bytes * 8.0 / bits_per_s * 1e6 + rtt.as_secs_f64() * 1e6) / 1e3
}

/// A JSON-like body of exactly `size` bytes: user records, cut at `size`, compressible as an
/// API's JSON is.
fn body_of(size: usize) -> axum::body::Bytes {
    let mut s = String::with_capacity(size + 200);
    s.push('[');
    let mut i = 0u64;
    while s.len() < size {
        use std::fmt::Write as _;
        let _ = write!(
            s,
            "{{\"id\":{i},\"name\":\"user {i}\",\"email\":\"user{i}@example.com\",\"status\":\"{}\",\"created_at\":\"2024-{:02}-{:02}T{:02}:{:02}:00Z\",\"score\":{}}},",
            if i % 7 == 0 { "inactive" } else { "active" },
            1 + i % 12,
            1 + i % 28,
            i % 24,
            (i * 7) % 60,
            (i * 7919) % 1000
        );
        i += 1;
    }
    s.truncate(size);
    axum::body::Bytes::from(s)
}

/// The handler: the body, with its Content-Length set by the handler itself.
async fn data(State(body): State<axum::body::Bytes>) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CONTENT_LENGTH, &body.len().to_string())], body.clone())
        .into_response()
}

/// A handler that only writes its body, as Go's `w.Write(body)`: the server sets the length.
async fn data_write_only(State(body): State<axum::body::Bytes>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

/// The guide's CompressionMiddleware: if Accept-Encoding contains "gzip", set Content-Encoding
/// and Vary, and write the handler's output through a gzip writer at the default level. The
/// handler's headers, its Content-Length among them, pass through untouched, as in Go, where the
/// wrapper only replaces Write.
async fn guide_gzip(req: Request, next: Next) -> Response {
    let accepts =
        req.headers().get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"));
    if !accepts {
        return next.run(req).await;
    }
    let response = next.run(req).await;
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    parts.headers.insert(header::VARY, header::HeaderValue::from_static("Accept-Encoding"));
    let Ok(plain) = axum::body::to_bytes(body, usize::MAX).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut gz =
        flate2::write::GzEncoder::new(Vec::with_capacity(plain.len() / 2 + 64), flate2::Compression::default());
    let Ok(compressed) = std::io::Write::write_all(&mut gz, &plain).and_then(|()| gz.finish()) else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    Response::from_parts(parts, go_body(compressed, declared))
}

/// The body Go's net/http sends when a handler declared `declared` bytes and wrote `written`:
/// the bytes beyond the declared length are refused (`http: wrote more than the declared
/// Content-Length`), and a body shorter than declared ends with the connection closed. hyper
/// left to itself would hang such a connection (release builds) or panic (debug builds), which
/// is hyper's behaviour, not the guide's; the port reproduces what the guide's code does on
/// the server it was written for.
fn go_body(written: Vec<u8>, declared: Option<usize>) -> axum::body::Body {
    match declared {
        Some(n) if written.len() >= n => axum::body::Body::from(axum::body::Bytes::from(written).slice(..n)),
        Some(_) => {
            // A stream with no length of its own that fails after the bytes: hyper then closes
            // the connection mid-body, as Go does after a short write. The failure comes one
            // scheduling step later, so that hyper has flushed the bytes, as Go has sent them.
            use futures_util::StreamExt as _;
            let bytes = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(written))]);
            let close = futures_util::stream::once(async {
                tokio::task::yield_now().await;
                Err(std::io::Error::other("the handler wrote less than its Content-Length"))
            });
            axum::body::Body::from_stream(bytes.chain(close))
        }
        None => axum::body::Body::from(written),
    }
}

/// What the service counts: its connections' bytes, requests answered, and answers that left
/// with a Content-Encoding.
#[derive(Default)]
struct Counters {
    wire: Arc<Wire>,
    answered: AtomicU64,
    encoded: AtomicU64,
}

/// A listener whose connections count their bytes.
struct CountingListener {
    inner: tokio::net::TcpListener,
    wire: Arc<Wire>,
}

impl axum::serve::Listener for CountingListener {
    type Io = Counted<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (Counted::new(stream, self.wire.clone()), addr);
                }
                // As axum's own listener does: a failed accept (out of descriptors) is retried.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A new service with `layer` around the handler, on a runtime of two threads.
fn start_service(layer: Layer, body: axum::body::Bytes, counters: Arc<Counters>) -> anyhow::Result<Server> {
    Server::start(Ipv4Addr::LOCALHOST, 2, move |listener, shutdown| async move {
        let counted = counters.clone();
        let handler = if layer == Layer::GuideGzipWriteOnly {
            axum::routing::get(data_write_only)
        } else {
            axum::routing::get(data)
        };
        let app = axum::Router::new().route("/data", handler).with_state(body);
        let tower = |gzip: bool, br: bool, zstd: bool| CompressionLayer::new().gzip(gzip).br(br).zstd(zstd);
        let app = match layer {
            Layer::Identity => app,
            Layer::Gzip(level) => app.layer(tower(true, false, false).quality(match level {
                Level::Fastest => CompressionLevel::Fastest,
                Level::Default => CompressionLevel::Default,
                Level::Best => CompressionLevel::Best,
            })),
            Layer::Brotli => app.layer(tower(false, true, false)),
            Layer::Zstd => app.layer(tower(false, false, true)),
            Layer::GuideGzip | Layer::GuideGzipWriteOnly => app.layer(axum::middleware::from_fn(guide_gzip)),
        };
        // Outermost, one layer for every variant: the answers, and those that left the
        // server compressed, whichever layer compressed them.
        let app = app.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let counted = counted.clone();
            async move {
                let response = next.run(req).await;
                counted.answered.fetch_add(1, Ordering::Relaxed);
                if response.headers().contains_key(header::CONTENT_ENCODING) {
                    counted.encoded.fetch_add(1, Ordering::Relaxed);
                }
                response
            }
        }));
        let listener = CountingListener { inner: listener, wire: counters.wire.clone() };
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    })
}

/// A standard client: reqwest, decoding gzip, br and zstd (and saying so in Accept-Encoding).
/// A request still unanswered after this long on loopback is stuck: it ends as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build()?)
}

struct Get {
    client: reqwest::Client,
    url: reqwest::Url,
    size: usize,
}

impl Get {
    /// One request: the decoded body, or what went wrong.
    async fn fetch(&self) -> Result<axum::body::Bytes, OpError> {
        let res = self.client.get(self.url.clone()).send().await.map_err(|e| OpError::from_error(&e))?;
        if !res.status().is_success() {
            return Err(OpError::new(format!("HTTP {}", res.status().as_u16())));
        }
        res.bytes().await.map_err(|e| OpError::from_error(&e))
    }
}

impl Worker for Get {
    async fn call(&mut self) -> Result<(), OpError> {
        let body = self.fetch().await?;
        if body.len() != self.size {
            return Err(OpError::new("decoded body of the wrong length"));
        }
        Ok(())
    }
}

/// What the answers of a variant at a point came to: bytes on the wire per answer (summed over
/// samples) and the body's size.
#[derive(Default, Clone, Copy)]
struct Wired {
    wire_bytes: f64,
    samples: u64,
    size: usize,
}

#[derive(Default)]
pub struct HttpCompression {
    compressed: harness::acted::Tally<Wired>,
}

impl HttpCompression {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Why a sample does not measure its layer: a compressing layer whose answers did not all leave
/// compressed (every size here is above tower-http's 32-byte minimum), or no compression
/// where none was asked for that left compressed.
fn not_acted(layer: Layer, answered: u64, encoded: u64) -> Option<String> {
    match layer {
        Layer::Identity if encoded > 0 => {
            Some(format!("{encoded} answers left compressed without a compression layer"))
        }
        Layer::Identity => None,
        _ if encoded < answered => Some(format!(
            "{} of {answered} answers left the server uncompressed: this sample does not measure compression",
            answered - encoded
        )),
        _ => None,
    }
}

/// A service for `layer` serving `size` bytes, with its counters and the URL to ask.
fn serve(layer: Layer, size: usize) -> anyhow::Result<(Server, Arc<Counters>, reqwest::Url)> {
    let counters = Arc::new(Counters::default());
    let server = start_service(layer, body_of(size), counters.clone())?;
    let url = reqwest::Url::parse(&format!("http://{}/data", server.addr()))?;
    Ok((server, counters, url))
}

/// Bytes written and server CPU per response over `n` sequential requests of one client, and
/// whether the first answer decoded to the body served (or what went wrong).
struct Probe {
    wire_bytes: f64,
    cpu_us: f64,
    decoded: Result<bool, String>,
    /// Share of the answers that left the server with a Content-Encoding.
    compressed: f64,
}

async fn probe(layer: Layer, size: usize, n: u32) -> anyhow::Result<Probe> {
    let (server, counters, url) = serve(layer, size)?;
    let get = Get { client: client()?, url, size };
    let decoded = match get.fetch().await {
        Ok(b) => Ok(b == body_of(size)),
        Err(e) => Err(e.kind.into_owned()),
    };
    // The first request opened the connection: CPU time counts from here. Bytes count over
    // every answer (each carries the same headers): a snapshot here could catch the first
    // answer's write still unreturned, and charge its bytes to the next twenty (CI saw it).
    let c0 = server.cpu_time();
    for _ in 0..n {
        let _ = get.fetch().await;
    }
    let c1 = server.cpu_time();
    drop(get);
    // The server counts a write when its syscall returns, which can be after the client has
    // read the bytes: the counts are read once the server has stopped (its thread joined), so
    // the last answer's bytes are in them (read before, CI saw 9,605 bytes per 10,000-byte body).
    server.stop().await?;
    let (w1, a1) = (counters.wire.written.load(Ordering::Relaxed), counters.answered.load(Ordering::Relaxed));
    Ok(Probe {
        compressed: counters.encoded.load(Ordering::Relaxed) as f64 / a1.max(1) as f64,
        wire_bytes: w1 as f64 / a1.max(1) as f64,
        cpu_us: c1.saturating_sub(c0).as_secs_f64() * 1e6 / a1.saturating_sub(1).max(1) as f64,
        decoded,
    })
}

/// The link speed (Mbit/s) below which sending `saved` fewer bytes gains more time than
/// `extra_cpu_us` of compression costs; `None` when nothing is saved.
fn break_even_mbit_s(saved_bytes: f64, extra_cpu_us: f64) -> Option<f64> {
    if saved_bytes <= 0.0 {
        return None;
    }
    // bits per microsecond are megabits per second.
    Some(if extra_cpu_us <= 0.0 { f64::INFINITY } else { saved_bytes * 8.0 / extra_cpu_us })
}

impl Experiment for HttpCompression {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Response compression: gzip levels, brotli, zstd and the guide's middleware",
            guide_section: "HTTP服务优化: 响应压缩中间件 (CompressionMiddleware)",
            claim: "A gzip middleware speeds up responses.",
            variants: [names_of(&VARIANTS), names_of(&GO_VARIANTS)].concat(),
            sweep: Sweep::numeric("response size", "bytes", &[100.0, 10_000.0, 1_000_000.0], &[100.0, 1_000_000.0]),
            primary_metric: MetricInfo::new("link_100mbit_ms", "ms", Better::Lower, "modelled time of one response on a 100 Mbit/s link with a 20 ms round trip: a model, from this sample's measurements (CPU of both sides per response + bytes on the wire at 100 Mbit/s + one round trip)"),
            metrics: vec![
                MetricInfo::new("link_1gbit_ms", "ms", Better::Lower, "modelled time of one response on a 1 Gbit/s link with a 1 ms round trip (the same model)"),
                load::throughput("requests/s", "successful requests per second, on loopback"),
                MetricInfo::new("cpu_per_response_us", "us", Better::Lower, "CPU time of the whole process (client and server) per response, on loopback: the model's CPU term"),
                MetricInfo::new("compressed_pct", "%", Better::Higher, "answers that left the server with a Content-Encoding"),
                load::latency_mean("one request, on loopback"),
                load::latency_p50("one request"),
                load::latency_p99("one request"),
                MetricInfo::new("wire_bytes", "bytes", Better::Lower, "bytes the server wrote per response: headers, framing and the (compressed) body"),
                MetricInfo::new("server_cpu_us", "us", Better::Lower, "CPU time of the server's threads per response (compression included; the client's decoding is not)"),
            ],
            targets: harness::targets::SERVICE,
            capacity: Some(harness::CapacityPlan::guide(10_000.0, 200.0, "Limits: the guide's API target (p95 < 200 ms), at 10 kB responses: what compression costs in requests per second on a fast network.")),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let mut checks = self.compressed.checks("compression applied as set", |_, variant, w| {
                let per = w.wire_bytes / w.samples.max(1) as f64;
                let what = if variant == "identity" { "no answer compressed" } else { "every answer compressed" };
                format!("{what}; {per:.0} bytes on the wire per answer for a {}-byte body", w.size)
            });
            for at in ctx.settings.points(&self.meta().sweep) {
                let point = at.label;
                let size = at.value as usize;
                // Enough requests for the CPU clock to see them, fewer for big bodies.
                let n = (1_000_000 / size.max(1)).clamp(10, 100) as u32;
                let base = probe(Layer::Identity, size, n).await?;
                for (variant, layer) in VARIANTS {
                    let p = if layer == Layer::Identity { None } else { Some(probe(layer, size, n).await?) };
                    let p = p.as_ref().unwrap_or(&base);
                    let (ok, detail) = match &p.decoded {
                        Ok(true) => (
                            true,
                            format!(
                                "reqwest (decoding gzip, br, zstd) got the body the handler wrote ({:.0} % of the answers left compressed)",
                                p.compressed * 100.0
                            ),
                        ),
                        Ok(false) => {
                            (false, "reqwest decoded a body that differs from what the handler wrote".to_owned())
                        }
                        Err(kind) => (false, format!("reqwest could not read the response: {kind}")),
                    };
                    checks.push(Check::verdict(
                        variant.name,
                        Some(&point),
                        "a standard client decodes it",
                        f64::from(u8::from(ok)),
                        ok,
                        detail,
                    ));
                    if layer == Layer::Identity {
                        continue;
                    }
                    if !ok {
                        checks.push(
                            Check::observation(
                                variant.name,
                                Some(&point),
                                "compression wins on links slower than (Mbit/s)",
                                0.0,
                                "no break-even: a client cannot read the answer, so nothing it saves counts",
                            )
                            .with_text("never: the answer cannot be read"),
                        );
                        continue;
                    }
                    let saved = base.wire_bytes - p.wire_bytes;
                    let extra = p.cpu_us - base.cpu_us;
                    let (value, text) = match break_even_mbit_s(saved, extra) {
                        None => (0.0, format!("never: the response grew by {:.0} bytes", -saved)),
                        Some(v) if v.is_infinite() => {
                            (f64::INFINITY, "at any speed: no extra server CPU measured".to_owned())
                        }
                        Some(v) => (v, format!("below {v:.1} Mbit/s")),
                    };
                    checks.push(
                        Check::observation(
                            variant.name,
                            Some(&point),
                            "compression wins on links slower than (Mbit/s)",
                            value,
                            format!(
                                "{text}: {saved:.0} bytes saved per response ({:.0} → {:.0} on the wire) for {extra:.1} µs more server CPU ({:.1} → {:.1} µs), over {n} sequential requests",
                                base.wire_bytes, p.wire_bytes, base.cpu_us, p.cpu_us
                            ),
                        )
                        .with_text(text),
                    );
                }
            }
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        harness::notes!(
            connections = ctx.settings.concurrency.unwrap_or(CONNECTIONS),
            first_link = LINKS[0].1,
            second_link = LINKS[1].1,
        )
    }
}

impl Run for HttpCompression {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            if let Some((bench, layer)) = harness::go_served(&GO_VARIANTS, at.variant) {
                return run_go(ctx, at, bench, layer).await;
            }
            let layer = pick(&VARIANTS, at.variant)?;
            let size = at.point.value as usize;
            let (server, counters, url) = serve(layer, size)?;
            let cpu0 = server.cpu_time();
            let report = drive(ctx, at, url).await;
            let cpu = server.cpu_time().saturating_sub(cpu0);
            server.stop().await?;
            let mut sample = report?.into_sample();
            let answered = counters.answered.load(Ordering::Relaxed);
            let encoded = counters.encoded.load(Ordering::Relaxed);
            let wire = counters.wire.written.load(Ordering::Relaxed);
            // The server runs in this process: its CPU is in the harness's.
            if let Some(wire) = per_response(&mut sample, answered, encoded, wire, cpu.as_secs_f64(), 0.0) {
                self.compressed.record(&at, not_acted(layer, answered, encoded).is_none(), |w| {
                    w.wire_bytes += wire;
                    w.samples += 1;
                    w.size = size;
                });
            }
            if sample.invalid.is_none() {
                sample.invalid = not_acted(layer, answered, encoded);
            }
            Ok(sample)
        })
    }
}

/// The load every variant gets: `CONNECTIONS` clients (a standard client that decodes what it
/// accepts) in a closed loop on `url`.
async fn drive(ctx: &RunCtx, at: Trial<'_>, url: reqwest::Url) -> anyhow::Result<load::LoadReport> {
    let size = at.point.value as usize;
    let connections = ctx.settings.concurrency.unwrap_or(CONNECTIONS);
    let client = client()?;
    let cfg = ctx.settings.load_for(&at, connections);
    load::run(&cfg, &ctx.probe, move |_| {
        let (client, url) = (client.clone(), url.clone());
        async move { Ok(Get { client, url, size }) }
    })
    .await
}

/// The per-response metrics of a sample from its server's counts: bytes on the wire, the
/// server's CPU (`server_cpu_s` over the sample), the share compressed, and the modelled link
/// times from the CPU both sides spent per response (the harness's CPU rate, plus
/// `other_cpu_rate` for a server outside this process). The bytes per answer, if any.
fn per_response(
    sample: &mut Sample,
    answered: u64,
    encoded: u64,
    written: u64,
    server_cpu_s: f64,
    other_cpu_rate: f64,
) -> Option<f64> {
    if answered == 0 {
        return None;
    }
    let wire = written as f64 / answered as f64;
    // A sample whose every request failed (the guide's stale Content-Length) measures no
    // response: its server's counts describe broken answers, so no metric is made of them.
    if sample.metrics.get("ok").is_some_and(|&ok| ok == 0.0) {
        return Some(wire);
    }
    sample.metrics.insert("wire_bytes".into(), wire);
    sample.metrics.insert("server_cpu_us".into(), server_cpu_s * 1e6 / answered as f64);
    sample.metrics.insert("compressed_pct".into(), 100.0 * encoded as f64 / answered as f64);
    // CPU of both sides per response: the CPU rate over the throughput. A sample without a
    // success has no response time to model.
    let rate = sample.metrics.get("ops_per_sec").copied().unwrap_or(0.0);
    let cpu_rate = sample.resources.as_ref().map(|r| r.harness_cpu_s / r.wall_s.max(1e-9) + other_cpu_rate);
    if let (true, Some(cpu_rate)) = (rate > 0.0, cpu_rate) {
        let cpu_us = cpu_rate / rate * 1e6;
        sample.metrics.insert("cpu_per_response_us".into(), cpu_us);
        for (key, _, bits, rtt) in LINKS {
            sample.metrics.insert(key.into(), link_ms(cpu_us, wire, bits, rtt));
        }
    }
    Some(wire)
}

/// A sample of a Go original: its server started, driven by the same client and load as the
/// Rust services, then stopped; its answers, compressed answers and bytes written counted by
/// the Go server, its CPU read from /proc around the load (a process of its own, so added to
/// the harness's for the CPU per response).
async fn run_go(ctx: &RunCtx, at: Trial<'_>, bench: &'static str, layer: Layer) -> anyhow::Result<Sample> {
    let server = harness::micro::go_server::GoServer::start(bench, at, &[]).await?;
    let url = reqwest::Url::parse(&format!("http://{}/data", server.addr()))?;
    let (cpu0, started) = (server.cpu_s(), std::time::Instant::now());
    let report = drive(ctx, at, url).await;
    let (cpu1, elapsed) = (server.cpu_s(), started.elapsed().as_secs_f64());
    let own = server.stop().await?;
    let mut sample = report?.into_sample();
    let count = |k: &str| own.get(k).copied().unwrap_or(0.0) as u64;
    let (answered, encoded) = (count("answered"), count("encoded"));
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a).max(0.0),
        _ => anyhow::bail!("the Go server's CPU time cannot be read from /proc"),
    };
    per_response(&mut sample, answered, encoded, count("written_bytes"), cpu, cpu / elapsed.max(1e-9));
    if sample.invalid.is_none() {
        sample.invalid = not_acted(layer, answered, encoded);
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_their_size_and_compress() {
        for size in [100, 10_000, 1_000_000] {
            assert_eq!(body_of(size).len(), size);
        }
        // The Go originals' test pins the same length and FNV-1a digest
        // (go/inproc/http_compression_test.go).
        let fnv = body_of(10_000)
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        assert_eq!(fnv, 0x5faa_65ab_836a_6d88);
        let big = body_of(100_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &big).unwrap();
        let packed = gz.finish().unwrap().len();
        assert!(packed < big.len() / 3, "JSON-like records compress ({packed} of {})", big.len());
    }

    #[test]
    fn break_even_is_bytes_saved_over_cpu_spent() {
        // 1,000 bytes saved for 80 µs: 8,000 bits per 80 µs is 100 Mbit/s.
        assert_eq!(break_even_mbit_s(1000.0, 80.0), Some(100.0));
        assert_eq!(break_even_mbit_s(-20.0, 5.0), None, "a response that grew never pays");
        assert_eq!(break_even_mbit_s(10.0, 0.0), Some(f64::INFINITY));
    }

    /// Bytes are counted as written, compression shrinks them, and the server's CPU is seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probes_count_bytes_and_cpu() {
        let plain = probe(Layer::Identity, 10_000, 20).await.unwrap();
        assert!(plain.wire_bytes > 10_000.0 && plain.wire_bytes < 10_400.0, "{}", plain.wire_bytes);
        assert_eq!(plain.decoded, Ok(true));
        assert!(plain.cpu_us > 0.0);
        assert_eq!(plain.compressed, 0.0);
        for layer in [Layer::Gzip(Level::Default), Layer::GuideGzipWriteOnly] {
            let gz = probe(layer, 10_000, 20).await.unwrap();
            assert_eq!(gz.decoded, Ok(true), "{layer:?}");
            assert!(gz.wire_bytes < plain.wire_bytes / 2.0, "{layer:?}: {} vs {}", gz.wire_bytes, plain.wire_bytes);
            assert_eq!(gz.compressed, 1.0, "{layer:?}: every answer left compressed");
        }
    }

    /// A compressing layer's sample where an answer left uncompressed, or an identity sample
    /// with a compressed one, is not a measurement of compression.
    #[test]
    fn a_sample_where_compression_was_skipped_is_invalid() {
        assert!(not_acted(Layer::Gzip(Level::Fastest), 100, 99).is_some());
        assert!(not_acted(Layer::Brotli, 100, 100).is_none());
        assert!(not_acted(Layer::Identity, 100, 1).is_some());
        assert!(not_acted(Layer::Identity, 100, 0).is_none());
    }

    /// The link model: CPU, plus the bytes at the link's rate, plus one round trip.
    #[test]
    fn a_response_on_a_link_is_cpu_bytes_and_a_round_trip() {
        // 100 µs of CPU, 12,500 bytes at 100 Mbit/s (1 ms), 20 ms round trip.
        let ms = link_ms(100.0, 12_500.0, 100e6, Duration::from_millis(20));
        assert!((ms - 21.1).abs() < 1e-9, "{ms}");
        assert!((link_ms(0.0, 125.0, 1e9, Duration::ZERO) - 0.001).abs() < 1e-12);
    }

    /// A body against its declared length, as Go's net/http sends it.
    #[tokio::test]
    async fn go_refuses_bytes_beyond_the_declared_length_and_closes_after_too_few() {
        let long = axum::body::to_bytes(go_body(vec![7; 120], Some(100)), usize::MAX).await.unwrap();
        assert_eq!(long.len(), 100, "the bytes beyond Content-Length are not sent");
        let exact = axum::body::to_bytes(go_body(vec![7; 100], Some(100)), usize::MAX).await.unwrap();
        assert_eq!(exact.len(), 100);
        assert!(
            axum::body::to_bytes(go_body(vec![7; 60], Some(100)), usize::MAX).await.is_err(),
            "a short body ends in an error"
        );
        assert_eq!(axum::body::to_bytes(go_body(vec![7; 60], None), usize::MAX).await.unwrap().len(), 60);
    }

    /// What a standard client makes of the guide's middleware: at every size the answer is
    /// refused, and quickly (no request waits for bytes that never come).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_guides_answers_fail_fast() {
        for size in [100, 10_000] {
            let started = std::time::Instant::now();
            let p = probe(Layer::GuideGzip, size, 3).await.unwrap();
            assert!(p.decoded.is_err() || p.decoded == Ok(false), "{size}: {:?}", p.decoded);
            assert!(started.elapsed() < REQUEST_TIMEOUT, "{size}: no request waited for the timeout");
            if size == 10_000 {
                // Compressed to about 1.5 KB against a declared 10,000: the bytes go out, then
                // the connection closes.
                assert!(p.wire_bytes > 1_000.0, "the short body was sent before the close ({} bytes)", p.wire_bytes);
            }
        }
    }
}

harness::quick_run_test!(HttpCompression::new());
