//! `metrics-overhead`: what the guide's per-request Prometheus middleware (监控和分析, 性能指标
//! 收集) costs a service, and what labelling by the raw URL path does to it.
//!
//! An axum service answers `GET /items/{id}` on loopback, in this process on a runtime of its
//! own, and the harness's HTTP client drives it with N keep-alive connections in a closed loop,
//! each request for the next of D distinct paths. Four services, identical but for the
//! middleware: none; a middleware that does nothing but pass the request on (the layer the
//! instrumented services pay for, without metrics: their baseline); a counter and a histogram
//! (the guide's names, labels and buckets, in prometheus-client) labelled by the route
//! template; and the guide's middleware as written,
//! labelled by `r.URL.Path`, so that every distinct path becomes a series of its own. Each
//! sample gets a new service and a new registry: every sample starts from an empty registry.
//! After the sample the registry is scraped (encoded as Prometheus text, as `/metrics` would
//! serve it): its series, its size, the time to encode it, and how much the process grew.

use anyhow::Context as _;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use harness::kit::http::{RawClient, Server};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::{
    names_of, pick, BoxFuture, Check, Engine, Experiment, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

const ID: &str = "metrics-overhead";

/// Connections driving the service unless `--concurrency` says otherwise.
const CONNECTIONS: u32 = 32;

/// The guide's `http_request_duration_seconds` buckets.
const GUIDE_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

harness::table! {
    const VARIANTS: [Variant] = enum Labelling {
        /// No middleware.
        None => Variant::new("none", "no middleware: the service alone"),
        /// A middleware at the same place that only passes the request on.
        Noop => Variant::new("noop-middleware", "a middleware at the same place as the metrics' (axum's from_fn route layer) that only passes the request on: what the layer costs without metrics") .compared_with("none"),
        /// The endpoint label is the route that matched (`/items/{id}`).
        RouteTemplate => Variant::new("route-template", "the guide's two metrics (http_requests_total{method,endpoint,status}, http_request_duration_seconds{method,endpoint} with its buckets) in prometheus-client, endpoint = the matched route template") .compared_with("noop-middleware"),
        /// The endpoint label is the request's path (`/items/123`), as the guide's middleware has it.
        RawPath => Variant::new("guide-raw-path", "the guide's MetricsMiddleware as written: the same two metrics, endpoint = r.URL.Path, one series per distinct path") .compared_with("noop-middleware") .tests_claim_keeps_up(),
    }
}

/// The Go originals (go/inproc/metrics_overhead.go): client_golang itself, the guide's
/// MetricsMiddleware as printed, each a net/http server the harness's load drives.
const GO_VARIANTS: [(Variant, Labelling); 4] = [
    (
        Variant::baseline_of_group("go-none", "Go original: net/http's ServeMux serving the same service, no middleware")
            .go_server("MetricsServer/none"),
        Labelling::None,
    ),
    (
        Variant::new("go-noop-middleware", "Go original: a middleware wrapping the mux that only passes the request on")
            .compared_with("go-none")
            .go_server("MetricsServer/noop-middleware"),
        Labelling::Noop,
    ),
    (
        Variant::new("go-route-template", "Go original: the guide's two metrics in client_golang, endpoint = the ServeMux pattern that matched")
            .compared_with("go-noop-middleware")
            .go_server("MetricsServer/route-template"),
        Labelling::RouteTemplate,
    ),
    (
        Variant::new("go-guide-raw-path", "Go original: the guide's MetricsMiddleware as printed (client_golang's default registry, endpoint = r.URL.Path)")
            .compared_with("go-noop-middleware")
            .go_server("MetricsServer/guide-raw-path")
            .tests_claim_keeps_up(),
        Labelling::RawPath,
    ),
];

/// Why a sample's labelling did not act as its variant's must, if it did not: without metrics
/// no series; labelled by the route, one; by the raw path, one per distinct path asked for, so
/// more than one wherever the point has several and more than one request succeeded.
fn not_acted(labelling: Labelling, distinct: u64, sample: &Sample) -> Option<String> {
    let series = sample.metrics.get("series").copied().unwrap_or(0.0);
    let ok = sample.metrics.get("ok").copied().unwrap_or(0.0);
    let want = match labelling {
        Labelling::None | Labelling::Noop => series == 0.0,
        Labelling::RouteTemplate => series == 1.0 || ok == 0.0,
        Labelling::RawPath => series > 1.0 || distinct < 2 || ok < 2.0,
    };
    (!want).then(|| {
        format!("{series} series in the registry after the sample: the {labelling:?} labelling did not act as it must")
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: String,
    endpoint: String,
}

fn guide_histogram() -> Histogram {
    Histogram::new(GUIDE_BUCKETS)
}

/// The guide's HTTP metrics in a registry of their own.
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    labelling: Labelling,
}

impl Metrics {
    fn new(labelling: Labelling) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<DurationLabels, Histogram, fn() -> Histogram>::new_with_constructor(guide_histogram);
        // prometheus-client adds the `_total` suffix of a counter itself.
        registry.register("http_requests", "Total number of HTTP requests", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request duration in seconds", duration.clone());
        Arc::new(Metrics { registry, requests, duration, labelling })
    }

    /// Encode the registry as `/metrics` would serve it, into `out`.
    fn encode(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        prometheus_client::encoding::text::encode(out, &self.registry)
    }
}

/// The guide's MetricsMiddleware: time the handler, then count the request and observe its
/// duration, labelled by method, endpoint and status.
async fn record(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let endpoint = match metrics.labelling {
        Labelling::RawPath => req.uri().path().to_owned(),
        _ => req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned()),
    };
    let response = next.run(req).await;
    let seconds = start.elapsed().as_secs_f64();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            endpoint: endpoint.clone(),
            status: response.status().as_u16().to_string(),
        })
        .inc();
    metrics.duration.get_or_create(&DurationLabels { method, endpoint }).observe(seconds);
    response
}

/// The service: `GET /items/{id}` answers a small JSON object.
async fn item(Path(id): Path<u64>) -> String {
    format!("{{\"id\":{id},\"name\":\"item {id}\"}}")
}

/// A new service with a new registry (none without middleware), on a runtime of two threads.
fn start_service(labelling: Labelling) -> anyhow::Result<(Server, Option<Arc<Metrics>>)> {
    let mut app = axum::Router::new().route("/items/{id}", axum::routing::get(item));
    let metrics = matches!(labelling, Labelling::RouteTemplate | Labelling::RawPath).then(|| Metrics::new(labelling));
    if labelling == Labelling::Noop {
        app = app.route_layer(axum::middleware::from_fn(|req: Request, next: Next| next.run(req)));
    }
    if let Some(m) = &metrics {
        // route_layer: the middleware runs once a route matched, where the template is known
        // (both labellings sit at the same place, so only the label differs).
        app = app.route_layer(axum::middleware::from_fn_with_state(m.clone(), record));
    }
    let server = Server::start(Ipv4Addr::LOCALHOST, 2, |listener, shutdown| async move {
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    })?;
    Ok((server, metrics))
}

/// Counts what is written: bytes and lines.
#[derive(Default)]
struct Tally {
    bytes: u64,
    lines: u64,
}

impl std::fmt::Write for Tally {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes += s.len() as u64;
        self.lines += s.bytes().filter(|&b| b == b'\n').count() as u64;
        Ok(())
    }
}

/// The lines a scrape has besides its series, and the lines each endpoint's series add:
/// measured, not assumed, by encoding registries with one and with two endpoints (a family
/// without series prints no header, so an empty registry would not do).
fn scrape_shape() -> (u64, u64) {
    let lines = |series: usize| {
        let m = Metrics::new(Labelling::RawPath);
        for i in 0..series {
            let endpoint = format!("/items/{i}");
            let status = "200".to_owned();
            m.requests.get_or_create(&RequestLabels { method: "GET".into(), endpoint: endpoint.clone(), status }).inc();
            m.duration.get_or_create(&DurationLabels { method: "GET".into(), endpoint }).observe(0.001);
        }
        let mut t = Tally::default();
        let _ = m.encode(&mut t);
        t.lines
    };
    let per = lines(2) - lines(1);
    (lines(1) - per, per)
}

/// One connection asking for paths `/items/k` with k = i, i + n, i + 2n, … modulo `distinct`.
struct Client {
    http: RawClient,
    path: String,
    next: u64,
    step: u64,
    distinct: u64,
}

impl Worker for Client {
    async fn call(&mut self) -> Result<(), OpError> {
        use std::fmt::Write as _;
        self.path.clear();
        let _ = write!(self.path, "/items/{}", self.next % self.distinct);
        self.next += self.step;
        self.http.get_ok(&self.path, "").await.map(drop)
    }
}

#[derive(Default)]
pub struct MetricsOverhead;

impl MetricsOverhead {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for MetricsOverhead {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Per-request Prometheus metrics: the cost, and labelling by raw path",
            guide_section: "监控和分析: 性能指标收集 (MetricsMiddleware)",
            claim: "Per-request Prometheus metrics (a counter and a histogram per request, the guide's MetricsMiddleware) are cheap.",
            variants: [names_of(&VARIANTS), names_of(&GO_VARIANTS)].concat(),
            sweep: Sweep::numeric("distinct paths", "paths", &[10.0, 10_000.0, 1_000_000.0], &[10.0, 1_000_000.0]),
            primary_metric: load::throughput("requests/s", "successful requests per second"),
            metrics: vec![
                load::latency_mean("one request"),
                load::latency_p50("one request"),
                load::latency_p99("one request"),
                MetricInfo::new("series", "series", Better::Lower, "label sets in the registry after the sample (warm-up included): one per endpoint label value"),
                MetricInfo::new("scrape_kb", "KiB", Better::Lower, "size of one scrape of the registry after the sample, Prometheus text format")
                    .negligible_below(1.0),
                MetricInfo::new("scrape_ms", "ms", Better::Lower, "time to encode that scrape into a text buffer, what every Prometheus scrape costs the service")
                    .negligible_below(0.1),
                MetricInfo::new("rss_growth_mb", "MiB", Better::Lower, "growth of the process's resident memory from before the service started to after the sample: the registry, plus the service's own buffers")
                    .negligible_below(2.0),
            ],
            targets: harness::targets::SERVICE,
            capacity: Some(harness::CapacityPlan::guide(10_000.0, 200.0, "Limits: the guide's API target (p95 < 200 ms), at 10,000 distinct paths: what the instrumentation costs in requests per second.")),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let mut checks = Vec::new();
            for (variant, labelling) in VARIANTS {
                if matches!(labelling, Labelling::None | Labelling::Noop) {
                    continue;
                }
                let (series, total) = count_after_requests(labelling, 10, 10).await?;
                let (want_series, why) = match labelling {
                    Labelling::RawPath => (10, "one series per distinct path"),
                    _ => (1, "one series for the one route"),
                };
                checks.push(Check::verdict(
                    variant.name,
                    None,
                    "series after 10 paths × 10 requests",
                    series as f64,
                    series == want_series && total == 100,
                    format!("{why}: expected {want_series} series counting 100 requests in all; the scrape had {series} http_requests_total series counting {total}"),
                ));
            }
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        harness::notes!(connections = ctx.settings.concurrency.unwrap_or(CONNECTIONS))
    }
}

/// Start a service, send `per_path` requests to each of `paths` paths, and read back how many
/// `http_requests_total` series the registry holds and what they count.
async fn count_after_requests(labelling: Labelling, paths: u64, per_path: u64) -> anyhow::Result<(usize, u64)> {
    let (server, metrics) = start_service(labelling)?;
    let mut client = RawClient::connect(server.addr()).await?;
    for i in 0..paths * per_path {
        let answer =
            client.get(&format!("/items/{}", i % paths), "").await.map_err(|e| anyhow::anyhow!("{}", e.kind))?;
        anyhow::ensure!(answer.status == 200, "the service answered HTTP {}", answer.status);
    }
    drop(client);
    server.stop().await?;
    let metrics = metrics.context("a service with metrics")?;
    let mut text = String::new();
    metrics.encode(&mut text)?;
    let counts: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    Ok((counts.len(), counts.iter().sum()))
}

impl Run for MetricsOverhead {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            if let Some((bench, labelling)) = harness::go_served(&GO_VARIANTS, at.variant) {
                let mut sample = run_go(ctx, at, bench).await?;
                if sample.invalid.is_none() {
                    sample.invalid = not_acted(labelling, at.point.value.max(1.0) as u64, &sample);
                }
                return Ok(sample);
            }
            let labelling = pick(&VARIANTS, at.variant)?;
            harness::resources::trim_heap();
            let before = harness::resources::rss_bytes();
            let (server, metrics) = start_service(labelling)?;
            let addr: SocketAddr = server.addr();
            let report = drive(ctx, at, addr).await;
            let after = harness::resources::rss_bytes();
            // The registry is read once the load is over (a scrape racing the load would be a
            // different experiment), then the service stops.
            // The scrape is timed as a service serves it, encoded into a text buffer; its lines
            // are counted afterwards, outside the timed section.
            let scrape = metrics.as_ref().map(|m| {
                let mut text = String::new();
                let started = Instant::now();
                let _ = m.encode(&mut text);
                let took = started.elapsed();
                let mut t = Tally::default();
                let _ = std::fmt::Write::write_str(&mut t, &text);
                (t, took)
            });
            server.stop().await?;
            drop(metrics);
            let mut sample = report?.into_sample();
            static SHAPE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
            let (empty_lines, lines_per_series) = *SHAPE.get_or_init(scrape_shape);
            let (series, kb, ms) = match scrape {
                Some((t, took)) => (
                    (t.lines.saturating_sub(empty_lines) / lines_per_series.max(1)) as f64,
                    t.bytes as f64 / 1024.0,
                    took.as_secs_f64() * 1e3,
                ),
                None => (0.0, 0.0, 0.0),
            };
            sample.metrics.insert("series".into(), series);
            sample.metrics.insert("scrape_kb".into(), kb);
            sample.metrics.insert("scrape_ms".into(), ms);
            if let (Some(b), Some(a)) = (before, after) {
                sample.metrics.insert("rss_growth_mb".into(), a.saturating_sub(b) as f64 / (1024.0 * 1024.0));
            }
            if sample.invalid.is_none() {
                sample.invalid = not_acted(labelling, at.point.value.max(1.0) as u64, &sample);
            }
            Ok(sample)
        })
    }
}

/// The load every variant gets: keep-alive connections in a closed loop, each asking for the
/// next of the point's distinct paths.
async fn drive(ctx: &RunCtx, at: Trial<'_>, addr: SocketAddr) -> anyhow::Result<load::LoadReport> {
    let distinct = at.point.value.max(1.0) as u64;
    let connections = ctx.settings.concurrency.unwrap_or(CONNECTIONS);
    let cfg = ctx.settings.load_for(&at, connections);
    load::run(&cfg, &ctx.probe, move |i| async move {
        Ok(Client {
            http: RawClient::connect(addr).await?,
            path: String::with_capacity(32),
            next: i as u64,
            step: connections as u64,
            distinct,
        })
    })
    .await
}

/// A sample of a Go original: its server started, driven exactly as the Rust services are,
/// then stopped; its own scrape and memory growth read.
async fn run_go(ctx: &RunCtx, at: Trial<'_>, bench: &'static str) -> anyhow::Result<Sample> {
    let server = harness::micro::go_server::GoServer::start(bench, at, &[]).await?;
    let report = drive(ctx, at, server.addr()).await;
    let own = server.stop().await?;
    let mut sample = report?.into_sample();
    sample.metrics.extend(own);
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample acts as its labelling must: no series without metrics, one by route, more
    /// than one by raw path where several paths were asked for; otherwise it says why.
    #[test]
    fn a_labelling_that_did_not_act_makes_the_sample_invalid() {
        let sample = |series: f64, ok: f64| {
            let mut s = Sample::default();
            s.metrics.insert("series".into(), series);
            s.metrics.insert("ok".into(), ok);
            s
        };
        assert_eq!(not_acted(Labelling::None, 10, &sample(0.0, 100.0)), None);
        assert!(not_acted(Labelling::Noop, 10, &sample(1.0, 100.0)).is_some());
        assert_eq!(not_acted(Labelling::RouteTemplate, 10, &sample(1.0, 100.0)), None);
        assert!(not_acted(Labelling::RouteTemplate, 10, &sample(10.0, 100.0)).is_some());
        assert_eq!(not_acted(Labelling::RawPath, 10, &sample(10.0, 100.0)), None);
        assert!(not_acted(Labelling::RawPath, 10, &sample(1.0, 100.0)).is_some(), "one series for ten paths");
        assert_eq!(not_acted(Labelling::RawPath, 1, &sample(1.0, 100.0)), None, "one path, one series");
    }

    /// The scrape's shape is what the series count relies on: an empty registry has some
    /// header lines, each endpoint adds the same number of lines.
    #[test]
    fn each_series_adds_the_same_lines_to_a_scrape() {
        let (empty, per) = scrape_shape();
        assert!(empty > 0 && per >= 2, "empty {empty}, per series {per}");
        let m = Metrics::new(Labelling::RawPath);
        for i in 0..7 {
            let endpoint = format!("/p/{i}");
            m.requests
                .get_or_create(&RequestLabels {
                    method: "GET".into(),
                    endpoint: endpoint.clone(),
                    status: "200".into(),
                })
                .inc();
            m.duration.get_or_create(&DurationLabels { method: "GET".into(), endpoint }).observe(0.02);
        }
        let mut t = Tally::default();
        m.encode(&mut t).unwrap();
        assert_eq!((t.lines - empty) / per, 7);
        assert_eq!((t.lines - empty) % per, 0);
    }

    /// The middleware counts every request once, under the label its variant says.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_middleware_labels_by_template_or_by_path() {
        assert_eq!(count_after_requests(Labelling::RouteTemplate, 5, 3).await.unwrap(), (1, 15));
        assert_eq!(count_after_requests(Labelling::RawPath, 5, 3).await.unwrap(), (5, 15));
    }
}

harness::quick_run_test!(MetricsOverhead::new());
