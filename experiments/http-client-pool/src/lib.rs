//! `http-client-pool`: the guide's HTTP client (连接池优化, `NewOptimizedHTTPClient`) against
//! Go's default transport, a client that opens a connection per request, reqwest's defaults
//! and one HTTP/2 connection.
//!
//! An axum service on loopback (in this process, on a runtime of its own) answers a 512-byte
//! JSON body; the load engine's workers share one client per sample, as a service shares one
//! `http.Client`. Each sample gets a new service on a new port and a new client, so that the
//! connections the server accepted and the sockets left in TIME_WAIT (read from /proc/net/tcp
//! for that port) belong to that sample alone.
//!
//! The guide's transport and Go's default one are the same model of Go's `http.Transport`
//! (`GoTransport`) over connections of hyper's HTTP/1.1 client, with their two settings: the
//! guide's MaxIdleConnsPerHost 20 and MaxConnsPerHost 50, Go's default 2 idle per host and no
//! cap. The connection per request is the same hyper connection, asked to close (Go's
//! `DisableKeepAlives`). So the three differ in their pool only; reqwest's own pool and
//! HTTP/2 are other libraries, named as such.

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use harness::kit::http::{time_wait_sockets, HyperConn, Server};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::{
    names_of, pick, BoxFuture, Check, Engine, Experiment, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const ID: &str = "http-client-pool";

/// The body the service answers: 512 bytes, a small API response.
const BODY_BYTES: usize = 512;

/// The guide's `MaxConnsPerHost` and `MaxIdleConnsPerHost`.
const GUIDE_MAX_CONNS_PER_HOST: usize = 50;
const GUIDE_MAX_IDLE_CONNS_PER_HOST: usize = 20;

/// Go's `DefaultMaxIdleConnsPerHost`; `DefaultTransport` sets no `MaxConnsPerHost`.
const GO_DEFAULT_MAX_IDLE_CONNS_PER_HOST: usize = 2;

impl Client {
    /// The model's (MaxIdleConnsPerHost, MaxConnsPerHost), for the variants it manages.
    fn transport(self) -> Option<(usize, usize)> {
        match self {
            Client::GoDefault => Some((GO_DEFAULT_MAX_IDLE_CONNS_PER_HOST, usize::MAX)),
            Client::Guide => Some((GUIDE_MAX_IDLE_CONNS_PER_HOST, GUIDE_MAX_CONNS_PER_HOST)),
            _ => None,
        }
    }
}

harness::table! {
    const VARIANTS: [Variant] = enum Client {
        /// A new connection for every request (Go's `DisableKeepAlives`).
        NoKeepAlive => Variant::new("no-keep-alive", "a new TCP connection of hyper's HTTP/1.1 client for every request, asking the server to close it after the answer, as Go's DisableKeepAlives"),
        /// Go's `http.DefaultTransport`: 2 idle per host, no cap.
        GoDefault => Variant::new("go-default-transport", "Go's http.DefaultTransport as the model of Go's Transport manages it over hyper's HTTP/1.1 connections: MaxIdleConnsPerHost 2 (DefaultMaxIdleConnsPerHost), no MaxConnsPerHost; what the guide's team had before its settings") .compared_with("no-keep-alive"),
        /// The guide's transport: 20 idle per host, 50 connections per host.
        Guide => Variant::new("guide-pool", "the guide's NewOptimizedHTTPClient as the same model manages it: MaxIdleConnsPerHost 20, MaxConnsPerHost 50 (IdleConnTimeout 90 s, dial timeout 10 s, TCP keep-alive 30 s and the client's 30 s timeout never act in a sample)") .compared_with("go-default-transport") .tests_claim(),
        /// `reqwest::Client` as built by default: idle connections kept without limit for 90 s.
        ReqwestDefault => Variant::new("reqwest-default", "reqwest's defaults (another library: reqwest's pool over hyper-util): HTTP/1.1 keep-alive, idle connections kept without a limit per host, for 90 s") .compared_with("go-default-transport"),
        /// One HTTP/2 connection (prior knowledge), every request multiplexed on it.
        Http2 => Variant::new("pooled-http2", "reqwest with HTTP/2 (prior knowledge, h2c): every request multiplexed on one connection") .compared_with("go-default-transport"),
    }
}

/// What the service counts: connections accepted and requests answered.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    answered: AtomicU64,
}

/// A new service on a new port of 127.0.0.1, on a runtime of two threads.
fn start_service(counters: Arc<Counters>) -> anyhow::Result<Server> {
    Server::start(Ipv4Addr::LOCALHOST, 2, move |listener, shutdown| async move {
        let answered = counters.clone();
        let body = axum::body::Bytes::from(body());
        let app = axum::Router::new().route(
            "/users/{id}",
            axum::routing::get(move || {
                answered.answered.fetch_add(1, Ordering::Relaxed);
                let body = body.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
            }),
        );
        let listener = listener.tap_io(move |tcp| {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    })
}

/// The Go originals (go/inproc/http_client_pool.go): Go's own http.Transport, the one the
/// Rust variants above model, with the guide's NewOptimizedHTTPClient as printed.
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group(
        "go-http-no-keep-alive",
        "Go original: http.Transport with DisableKeepAlives, a connection per request",
    )
    .in_go("HTTPClientPool/no-keep-alive"),
    Variant::new(
        "go-http-default-transport",
        "Go original: http.DefaultTransport's settings (MaxIdleConnsPerHost 2, no MaxConnsPerHost)",
    )
    .compared_with("go-http-no-keep-alive")
    .in_go("HTTPClientPool/default-transport"),
    Variant::new(
        "go-http-guide-pool",
        "Go original: the guide's NewOptimizedHTTPClient as printed (MaxIdleConnsPerHost 20, MaxConnsPerHost 50)",
    )
    .compared_with("go-http-default-transport")
    .in_go("HTTPClientPool/guide-pool")
    .tests_claim(),
];

/// A JSON object of exactly `BODY_BYTES` bytes.
fn body() -> String {
    let head = "{\"id\":1,\"name\":\"user 1\",\"email\":\"user1@example.com\",\"bio\":\"";
    let tail = "\"}";
    format!("{head}{}{tail}", "x".repeat(BODY_BYTES - head.len() - tail.len()))
}

/// reqwest's client of a variant, new for each sample.
fn build_reqwest(client: Client) -> anyhow::Result<reqwest::Client> {
    // No proxy from the environment: every variant talks to the service directly.
    let b = reqwest::Client::builder().no_proxy();
    let b = match client {
        Client::Http2 => b.http2_prior_knowledge(),
        _ => b.http1_only(),
    };
    Ok(b.build()?)
}

/// Dials one connection for the model.
type Dial<T> = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Result<T, OpError>> + Send + Sync>;

/// A model of Go's `http.Transport` connection management for one host, over connections of
/// any kind (`T`): what `MaxIdleConnsPerHost` and `MaxConnsPerHost` do (net/http's
/// `queueForIdleConn`, `queueForDial`, `tryPutIdleConn`).
///
/// - A request takes an idle connection if there is one. Otherwise it waits, and, if fewer
///   than `max_conns` connections exist, a dial starts for it meanwhile; whichever comes first
///   serves it, an idle connection released by another request or the dial. A dial that
///   finishes after its request was served puts its connection in the pool as a release does.
/// - A connection released by a request goes first to a request that is waiting, then to the
///   idle list if it holds fewer than `max_idle`, else it is closed (`errTooManyIdleHost`).
/// - A connection that failed or closed, or a dial that failed (its error goes to the oldest
///   waiting request), frees its slot: a request still waiting without a dial of its own then
///   gets one (`connsPerHostWait`).
///
/// A connection is released only when its answer has been read to the end and it is ready
/// for the next request (`HyperConn`), so what is handed on is a connection, never a handle
/// whose connection is still on its way back (what a reqwest client per connection was).
struct GoTransport<T> {
    max_idle: usize,
    max_conns: usize,
    dial: Dial<T>,
    state: Mutex<TransportState<T>>,
    /// Connections dialled successfully, and closed (by the idle limit or a failure), for the
    /// checks.
    dialled: AtomicU64,
    closed: AtomicU64,
}

struct TransportState<T> {
    idle: Vec<T>,
    /// Connections that exist: idle, in use, or being dialled; and the most there were.
    total: usize,
    peak: usize,
    /// Dials in flight.
    dialing: usize,
    waiting: std::collections::VecDeque<tokio::sync::oneshot::Sender<Result<T, OpError>>>,
}

impl<T: Send + 'static> GoTransport<T> {
    fn new(max_idle: usize, max_conns: usize, dial: Dial<T>) -> Arc<Self> {
        let state = TransportState { idle: Vec::new(), total: 0, peak: 0, dialing: 0, waiting: Default::default() };
        Arc::new(Self {
            max_idle,
            max_conns,
            dial,
            state: Mutex::new(state),
            dialled: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TransportState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn get(self: &Arc<Self>) -> Result<T, OpError> {
        let waiting = {
            let mut s = self.lock();
            if let Some(c) = s.idle.pop() {
                return Ok(c);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.waiting.push_back(tx);
            if s.total < self.max_conns {
                self.start_dial(s);
            }
            rx
        };
        waiting.await.map_err(|_| OpError::new("the transport closed while a request waited"))?
    }

    /// Dial one connection in the background, in a slot counted now (under the lock `s`); it
    /// joins the pool as a released one does, or its error goes to the oldest waiting request.
    fn start_dial(self: &Arc<Self>, mut s: std::sync::MutexGuard<'_, TransportState<T>>) {
        s.total += 1;
        s.peak = s.peak.max(s.total);
        s.dialing += 1;
        drop(s);
        let (this, dial) = (self.clone(), (self.dial)());
        tokio::spawn(async move {
            let dialled = dial.await;
            // The dial ends and its outcome lands under one lock: no other task sees the dial
            // over and its connection not yet in the pool (and dials again for a waiter).
            let mut s = this.lock();
            s.dialing -= 1;
            match dialled {
                Ok(c) => {
                    this.dialled.fetch_add(1, Ordering::Relaxed);
                    this.put_locked(s, c);
                }
                Err(e) => {
                    s.total -= 1;
                    if let Some(w) = s.waiting.pop_front() {
                        let _ = w.send(Err(e));
                    }
                    this.slot_freed(s);
                }
            }
        });
    }

    /// A slot was freed (under the lock `s`): a request still waiting without a dial of its
    /// own gets one, if the cap allows.
    fn slot_freed(self: &Arc<Self>, s: std::sync::MutexGuard<'_, TransportState<T>>) {
        if s.waiting.len() > s.dialing && s.total < self.max_conns {
            self.start_dial(s);
        }
    }

    /// A request is done with `c`, which is ready for the next one.
    fn put(&self, c: T) {
        self.put_locked(self.lock(), c);
    }

    /// `put`, under the lock `s`.
    fn put_locked(&self, mut s: std::sync::MutexGuard<'_, TransportState<T>>, mut c: T) {
        while let Some(w) = s.waiting.pop_front() {
            match w.send(Ok(c)) {
                Ok(()) => return,
                Err(Ok(back)) => c = back,
                Err(Err(_)) => unreachable!("an Ok was sent"),
            }
        }
        if s.idle.len() < self.max_idle {
            s.idle.push(c);
        } else {
            s.total -= 1;
            drop(s);
            self.closed.fetch_add(1, Ordering::Relaxed);
            drop(c);
        }
    }

    /// A connection failed or was closed: drop it, and let a waiting request dial instead.
    fn discard(self: &Arc<Self>, c: T) {
        drop(c);
        self.closed.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        s.total -= 1;
        self.slot_freed(s);
    }
}

/// How a worker gets its connection: a new one per request, reqwest's own pool, or the
/// model of Go's transport.
#[derive(Clone)]
enum Source {
    PerRequest(SocketAddr),
    Reqwest(reqwest::Client, reqwest::Url),
    Go(Arc<GoTransport<HyperConn>>),
}

const PATH: &str = "/users/1";

struct Get {
    source: Source,
}

fn body_checked(len: usize) -> Result<(), OpError> {
    if len != BODY_BYTES {
        return Err(OpError::new("short body"));
    }
    Ok(())
}

async fn fetch_reqwest(client: &reqwest::Client, url: &reqwest::Url) -> Result<(), OpError> {
    let res = client.get(url.clone()).send().await.map_err(|e| OpError::from_error(&e))?;
    if !res.status().is_success() {
        return Err(OpError::new(format!("HTTP {}", res.status().as_u16())));
    }
    let body = res.bytes().await.map_err(|e| OpError::from_error(&e))?;
    body_checked(body.len())
}

impl Worker for Get {
    async fn call(&mut self) -> Result<(), OpError> {
        match &self.source {
            Source::PerRequest(addr) => {
                let mut conn = HyperConn::connect(*addr).await?;
                body_checked(conn.get(PATH, true).await?)
            }
            Source::Reqwest(client, url) => fetch_reqwest(client, url).await,
            Source::Go(transport) => {
                let mut conn = transport.get().await?;
                let r = conn.get(PATH, false).await;
                if r.is_ok() && !conn.is_closed() {
                    transport.put(conn);
                } else {
                    transport.discard(conn);
                }
                body_checked(r?)
            }
        }
    }
}

/// The source of a variant's connections, new for each sample.
fn source(client: Client, addr: SocketAddr) -> anyhow::Result<Source> {
    if let Some((max_idle, max_conns)) = client.transport() {
        let dial: Dial<HyperConn> = Arc::new(move || Box::pin(HyperConn::connect(addr)));
        return Ok(Source::Go(GoTransport::new(max_idle, max_conns, dial)));
    }
    Ok(match client {
        Client::NoKeepAlive => Source::PerRequest(addr),
        _ => Source::Reqwest(
            build_reqwest(client)?,
            reqwest::Url::parse(&format!("http://{addr}{PATH}")).context("the service's URL")?,
        ),
    })
}

/// What the connections of a variant at a point came to, over its samples.
#[derive(Debug, Default, Clone, Copy)]
struct Opened {
    accepted: u64,
    /// Dialled by the model (0 for the other variants).
    dialled: u64,
    /// The most connections the model had at once, over the samples.
    peak: u64,
}

#[derive(Default)]
pub struct HttpClientPool {
    opened: harness::acted::Tally<Opened>,
}

impl HttpClientPool {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Why a sample's connections are not what its client allows: the server accepted another
/// number than the model of Go's transport dialled successfully, by more than `in_flight` (for
/// the model: the dials still in flight when the load ended, which the server may or may not
/// have accepted, and two that finished while it stopped; for a connection per request: the
/// requests in flight), or a connection per request was not one per request. (The model keeps
/// MaxConnsPerHost by construction: `GoTransport::start_dial`.)
fn not_as_modelled(client: Client, accepted: u64, answered: u64, dialled: u64, in_flight: u64) -> Option<String> {
    match client.transport() {
        Some(_) if accepted.abs_diff(dialled) > in_flight => Some(format!(
            "the server accepted {accepted} connections where the model of Go's transport dialled {dialled}: something else opened or lost connections"
        )),
        None if client == Client::NoKeepAlive && accepted.abs_diff(answered) > in_flight => Some(format!(
            "{accepted} connections for {answered} answers: a connection per request was not one per request"
        )),
        _ => None,
    }
}

impl Experiment for HttpClientPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "HTTP client connection pool: keep-alive vs a connection per request",
            guide_section: "HTTP服务优化: 连接池优化 (NewOptimizedHTTPClient)",
            claim: "The guide's client pool (MaxIdleConnsPerHost 20, MaxConnsPerHost 50) beats Go's default transport (2 idle connections per host), and keep-alive beats a connection per request.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            sweep: Sweep::numeric("concurrency", "clients", &[1.0, 16.0, 128.0], &[16.0, 128.0]),
            primary_metric: load::throughput("requests/s", "successful requests per second"),
            metrics: vec![
                load::latency_mean("one request"),
                load::latency_p50("one request"),
                load::latency_p99("one request"),
                MetricInfo::new(
                    "connections_per_1k",
                    "connections",
                    Better::Lower,
                    "connections the server accepted per 1,000 requests it answered (warm-up included)",
                ),
                MetricInfo::new(
                    "connections_accepted",
                    "connections",
                    Better::Lower,
                    "connections the server accepted during the sample (warm-up included)",
                ),
                MetricInfo::new(
                    "time_wait",
                    "sockets",
                    Better::Lower,
                    "sockets in TIME_WAIT on the service's port when the sample ends, client and server side",
                ),
            ],
            targets: harness::targets::SERVICE,
            capacity: Some(harness::CapacityPlan::guide(16.0, 200.0, "Limits: the guide's API target (p95 < 200 ms), at 16 clients.")),
            controls: vec![harness::experiment::Control::new(1.0, "one client holds one connection: neither setting's idle or connection limit can act")],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            Ok(self.opened.checks("connections as the client allows", |_, variant, o| {
                let model = match pick(&VARIANTS, variant).map(Client::transport) {
                    Ok(Some((idle, conns))) => format!(
                        "the model (MaxIdleConnsPerHost {idle}, MaxConnsPerHost {}) dialled {} and had at most {} at once",
                        if conns == usize::MAX { "none".to_owned() } else { conns.to_string() },
                        o.dialled,
                        o.peak
                    ),
                    Ok(None) if variant == "no-keep-alive" => "one per request expected".to_owned(),
                    _ => "another library's pool: not modelled".to_owned(),
                };
                format!("the server accepted {} connections in all; {model}", o.accepted)
            }))
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!(
            body_bytes = BODY_BYTES,
            guide_max_idle_conns_per_host = GUIDE_MAX_IDLE_CONNS_PER_HOST,
            guide_max_conns_per_host = GUIDE_MAX_CONNS_PER_HOST,
            go_default_max_idle_conns_per_host = GO_DEFAULT_MAX_IDLE_CONNS_PER_HOST,
        )
    }
}

impl Run for HttpClientPool {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let variant = pick(&VARIANTS, at.variant)?;
            let concurrency = at.point.value as u32;
            let counters = Arc::new(Counters::default());
            let server = start_service(counters.clone())?;
            let port = server.addr().port();
            let source = source(variant, server.addr())?;
            let model = match &source {
                Source::Go(t) => Some(t.clone()),
                _ => None,
            };
            let cfg = ctx.settings.load_for(&at, concurrency);
            let report = load::run(&cfg, &ctx.probe, move |_| {
                let source = source.clone();
                async move { Ok(Get { source }) }
            })
            .await;
            // Read before anything closes: what the traffic itself left.
            let time_wait = time_wait_sockets(port).ok();
            server.stop().await?;
            let mut sample = report?.into_sample();
            let accepted = counters.accepted.load(Ordering::Relaxed);
            let answered = counters.answered.load(Ordering::Relaxed);
            sample.metrics.insert("connections_accepted".into(), accepted as f64);
            if answered > 0 {
                sample.metrics.insert("connections_per_1k".into(), 1000.0 * accepted as f64 / answered as f64);
            }
            if let Some(tw) = time_wait {
                sample.metrics.insert("time_wait".into(), tw as f64);
            }
            let (dialled, peak, dialing) = model.as_ref().map_or((0, 0, 0), |t| {
                let s = t.lock();
                (t.dialled.load(Ordering::Relaxed), s.peak as u64, s.dialing as u64)
            });
            let in_flight = match model {
                Some(_) => dialing + 2,
                None => u64::from(match cfg.mode {
                    load::Mode::Closed { concurrency } | load::Mode::Open { concurrency, .. } => concurrency,
                }),
            };
            sample.invalid = not_as_modelled(variant, accepted, answered, dialled, in_flight);
            self.opened.record(&at, sample.invalid.is_none(), |o| {
                o.accepted += accepted;
                o.dialled += dialled;
                o.peak = o.peak.max(peak);
            });
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A model whose dials count up and take `delay`.
    fn counting(max_idle: usize, max_conns: usize, delay: Duration) -> Arc<GoTransport<u64>> {
        let n = Arc::new(AtomicU64::new(0));
        GoTransport::new(
            max_idle,
            max_conns,
            Arc::new(move || {
                let i = n.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    Ok(i)
                })
            }),
        )
    }

    /// Go's order: an idle connection first, then a dial up to the cap, then a wait; a
    /// released connection goes to a waiter before the idle list, and past the idle limit it
    /// is closed; a failed one gives its slot to a new dial.
    #[tokio::test]
    async fn the_go_transport_hands_connections_to_waiters_before_closing_them() {
        let t = counting(1, 2, Duration::ZERO);
        let (a, b) = (t.get().await.unwrap(), t.get().await.unwrap());
        assert_eq!((a, b), (0, 1), "two dials up to MaxConnsPerHost");
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.get().await.unwrap() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a third request waits");
        t.put(a);
        assert_eq!(waiter.await.unwrap(), 0, "the released connection went to the waiter");
        t.put(b);
        t.put(0);
        assert_eq!(t.dialled.load(Ordering::Relaxed), 2, "no dial while connections were handed over");
        {
            let s = t.lock();
            assert_eq!(
                (s.idle.len(), s.total, s.peak),
                (1, 1, 2),
                "one idle kept (MaxIdleConnsPerHost 1), the other closed"
            );
        }
        assert_eq!(t.closed.load(Ordering::Relaxed), 1);
        // A failed connection is closed, and its slot goes to the next dial.
        let c = t.get().await.unwrap();
        t.discard(c);
        assert_eq!(t.lock().total, 0);
    }

    /// Without a cap a request that finds no idle connection dials, and takes a connection
    /// released meanwhile if it comes first; the dial's connection then joins the idle list.
    #[tokio::test]
    async fn a_request_takes_a_released_connection_before_its_own_dial() {
        let t = counting(2, usize::MAX, Duration::from_millis(100));
        let a = t.get().await.unwrap();
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.get().await.unwrap() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(t.lock().dialing, 1, "the waiting request started a dial");
        t.put(a);
        assert_eq!(waiter.await.unwrap(), a, "the released connection came first");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(t.dialled.load(Ordering::Relaxed), 2, "both dials succeeded");
        let s = t.lock();
        assert_eq!((s.idle.clone(), s.total, s.peak), (vec![1], 2, 2), "the late dial's connection is idle");
    }

    /// A failed dial's error goes to the oldest waiting request, and its slot to a dial for
    /// the request still waiting behind the cap; only successful dials are counted.
    #[tokio::test]
    async fn a_failed_dial_frees_its_slot_for_the_next_waiter() {
        let n = Arc::new(AtomicU64::new(0));
        let t = GoTransport::new(
            1,
            1,
            Arc::new(move || -> futures_util::future::BoxFuture<'static, Result<u64, OpError>> {
                let i = n.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if i == 0 {
                        Err(OpError::new("refused"))
                    } else {
                        Ok(i)
                    }
                })
            }),
        );
        let (t1, t2) = (t.clone(), t.clone());
        let first = tokio::spawn(async move { t1.get().await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = tokio::spawn(async move { t2.get().await });
        let within = |j| tokio::time::timeout(Duration::from_secs(5), j);
        assert_eq!(within(first).await.expect("answered").unwrap().unwrap_err().kind, "refused");
        let second = within(second).await.expect("the second waiter is not left hanging");
        assert_eq!(second.unwrap().unwrap(), 1, "the freed slot dialled for the waiter");
        assert_eq!(t.dialled.load(Ordering::Relaxed), 1, "successful dials only");
        let s = t.lock();
        assert_eq!((s.total, s.dialing, s.waiting.len()), (1, 0, 0));
    }

    #[test]
    fn the_body_has_its_size() {
        assert_eq!(body().len(), BODY_BYTES);
    }

    /// A sample whose server saw other connections than the client's model allows is not a
    /// measurement of the pool.
    #[test]
    fn connections_beyond_the_model_make_a_sample_invalid() {
        assert!(not_as_modelled(Client::Guide, 50, 9000, 50, 2).is_none());
        assert!(not_as_modelled(Client::Guide, 52, 9000, 50, 2).is_none(), "within the dials a sample's end cuts off");
        assert!(not_as_modelled(Client::Guide, 53, 9000, 50, 2).is_some(), "accepted beyond the dials");
        assert!(not_as_modelled(Client::Guide, 228, 9000, 16, 2).is_some(), "a handle handed on before its connection");
        assert!(not_as_modelled(Client::GoDefault, 300, 9000, 300, 2).is_none(), "no cap");
        assert!(not_as_modelled(Client::GoDefault, 200, 9000, 300, 2).is_some(), "dials lost");
        assert!(not_as_modelled(Client::NoKeepAlive, 9000, 9000, 0, 16).is_none());
        assert!(not_as_modelled(Client::NoKeepAlive, 100, 9000, 0, 16).is_some(), "connections reused");
        assert!(not_as_modelled(Client::ReqwestDefault, 3, 9000, 0, 16).is_none());
    }

    /// Without keep-alive every request is a connection the server accepts and a socket left
    /// in TIME_WAIT; with a pool, one worker's requests share one connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_counted_on_the_server() {
        for (variant, want_accepted) in [
            (Client::NoKeepAlive, 20),
            (Client::GoDefault, 1),
            (Client::Guide, 1),
            (Client::ReqwestDefault, 1),
            (Client::Http2, 1),
        ] {
            let counters = Arc::new(Counters::default());
            let server = start_service(counters.clone()).unwrap();
            let port = server.addr().port();
            let mut get = Get { source: source(variant, server.addr()).unwrap() };
            for _ in 0..20 {
                get.call().await.unwrap();
                if matches!(variant, Client::ReqwestDefault | Client::Http2) {
                    // reqwest hands a connection back to its pool from its own task a moment
                    // after the answer is read; a pause lets it land there, so that what is
                    // counted is reuse, not a race with the quick run sharing the cores.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            assert_eq!(counters.answered.load(Ordering::Relaxed), 20, "{variant:?}");
            // The server counts a connection when it accepts it, which may come just after
            // the client saw its answer.
            for _ in 0..100 {
                if counters.accepted.load(Ordering::Relaxed) >= want_accepted {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let accepted = counters.accepted.load(Ordering::Relaxed);
            if variant.transport().is_some() || variant == Client::NoKeepAlive {
                // The model hands on a connection only once it is ready: exact.
                assert_eq!(accepted, want_accepted, "{variant:?}");
            } else {
                // Even with the pause a loaded machine may dial a second one: shared, not one
                // per request.
                assert!((want_accepted..=3).contains(&accepted), "{variant:?}: {accepted} connections for 20 requests");
            }
            if variant == Client::NoKeepAlive {
                // Whoever closes first keeps the socket in TIME_WAIT: about one per closed
                // connection, client or server side. Not exactly: a close the kernel ends with
                // a reset (a side that closes with bytes unread) leaves none, and CI once saw 18
                // after 20. More than half still shows the connections were closed, one per
                // request (that they were not reused, `accepted` above shows exactly).
                let tw = time_wait_sockets(port).unwrap();
                assert!(tw >= 10, "{tw} sockets in TIME_WAIT after 20 closed connections");
            }
            drop(get);
            server.stop().await.unwrap();
        }
    }
}

harness::quick_run_test!(HttpClientPool::new());
