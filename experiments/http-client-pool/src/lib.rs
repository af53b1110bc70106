//! `http-client-pool`: the guide's HTTP client (连接池优化, `NewOptimizedHTTPClient`) against a
//! client that opens a connection per request, reqwest's defaults and one HTTP/2 connection.
//!
//! An axum service on loopback (in this process, on a runtime of its own) answers a 512-byte
//! JSON body; the load engine's workers share one client per sample, as a service shares one
//! `http.Client`. Each sample gets a new service on a new port and a new client, so that the
//! connections the server accepted and the sockets left in TIME_WAIT (read from /proc/net/tcp
//! for that port) belong to that sample alone.

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use harness::kit::http::{time_wait_sockets, Server};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::{
    names_of, pick, BoxFuture, Engine, Experiment, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ID: &str = "http-client-pool";

/// The body the service answers: 512 bytes, a small API response.
const BODY_BYTES: usize = 512;

/// The guide's `MaxConnsPerHost`.
const GUIDE_MAX_CONNS_PER_HOST: usize = 50;

/// The guide's `MaxIdleConnsPerHost`.
const GUIDE_MAX_IDLE_CONNS_PER_HOST: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// A new connection for every request (Go's `DisableKeepAlives`).
    NoKeepAlive,
    /// `reqwest::Client` as built by default: idle connections kept without limit for 90 s.
    ReqwestDefault,
    /// The guide's transport: 20 idle per host, 90 s idle timeout, 50 connections per host.
    Guide,
    /// One HTTP/2 connection (prior knowledge), every request multiplexed on it.
    Http2,
}

const VARIANTS: [(Variant, Client); 4] = [
    (
        Variant::new("no-keep-alive", "reqwest with no idle connection kept (pool_max_idle_per_host 0): a new TCP connection for every request, closed after it, as Go's DisableKeepAlives"),
        Client::NoKeepAlive,
    ),
    (
        Variant::new("reqwest-default", "reqwest's defaults: HTTP/1.1 keep-alive, idle connections kept without a limit per host, for 90 s")
            .compared_with("no-keep-alive"),
        Client::ReqwestDefault,
    ),
    (
        Variant::new("guide-pool", "the guide's NewOptimizedHTTPClient: MaxIdleConnsPerHost 20, MaxConnsPerHost 50, IdleConnTimeout 90 s, dial timeout 10 s, TCP keep-alive 30 s, client timeout 30 s, HTTP/1.1; connections managed as Go's http.Transport does (a released connection goes to a waiting request first)")
            .compared_with("no-keep-alive")
            .tests_claim(),
        Client::Guide,
    ),
    (
        Variant::new("pooled-http2", "reqwest with HTTP/2 (prior knowledge, h2c): every request multiplexed on one connection")
            .compared_with("no-keep-alive"),
        Client::Http2,
    ),
];

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

/// A JSON object of exactly `BODY_BYTES` bytes.
fn body() -> String {
    let head = "{\"id\":1,\"name\":\"user 1\",\"email\":\"user1@example.com\",\"bio\":\"";
    let tail = "\"}";
    format!("{head}{}{tail}", "x".repeat(BODY_BYTES - head.len() - tail.len()))
}

/// The client of a variant, new for each sample.
fn build_client(client: Client) -> anyhow::Result<reqwest::Client> {
    // No proxy from the environment: every variant talks to the service directly.
    let b = reqwest::Client::builder().no_proxy();
    let b = match client {
        Client::NoKeepAlive => b.pool_max_idle_per_host(0).http1_only(),
        Client::ReqwestDefault => b.http1_only(),
        // One connection of the guide's transport: a client that keeps at most one.
        Client::Guide => b
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .timeout(Duration::from_secs(30))
            .http1_only(),
        Client::Http2 => b.http2_prior_knowledge(),
    };
    Ok(b.build()?)
}

/// A model of Go's `http.Transport` connection management for one host, over connections of
/// any kind (`T`): what `MaxIdleConnsPerHost` and `MaxConnsPerHost` do.
///
/// - A request takes an idle connection if there is one, else dials a new one if fewer than
///   `max_conns` exist, else waits.
/// - A connection released by a request goes first to a request that is waiting (Go's
///   `tryPutIdleConn` delivers to `idleConnWait` before anything else), then to the idle list
///   if it holds fewer than `max_idle`, else it is closed (`errTooManyIdleHost`).
/// - A connection that failed is closed; a waiting request then gets to dial in its place
///   (Go's `connsPerHostWait`).
///
/// reqwest has no `MaxConnsPerHost` and applies its idle limit when a connection comes back
/// even while requests wait, so a semaphore around reqwest would churn connections where Go
/// does not; this model keeps Go's order.
struct GoTransport<T> {
    max_idle: usize,
    max_conns: usize,
    dial: Box<dyn Fn() -> T + Send + Sync>,
    state: std::sync::Mutex<TransportState<T>>,
}

struct TransportState<T> {
    idle: Vec<T>,
    /// Connections that exist: idle, in use, or being dialled.
    total: usize,
    waiting: std::collections::VecDeque<tokio::sync::oneshot::Sender<T>>,
}

impl<T> GoTransport<T> {
    fn new(max_idle: usize, max_conns: usize, dial: impl Fn() -> T + Send + Sync + 'static) -> Self {
        let state = TransportState { idle: Vec::new(), total: 0, waiting: Default::default() };
        Self { max_idle, max_conns, dial: Box::new(dial), state: std::sync::Mutex::new(state) }
    }

    async fn get(&self) -> Result<T, OpError> {
        let waiting = {
            let mut s = self.state.lock().expect("not poisoned");
            if let Some(c) = s.idle.pop() {
                return Ok(c);
            }
            if s.total < self.max_conns {
                s.total += 1;
                drop(s);
                return Ok((self.dial)());
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.waiting.push_back(tx);
            rx
        };
        waiting.await.map_err(|_| OpError::new("the transport closed while a request waited"))
    }

    /// A request is done with `c`.
    fn put(&self, mut c: T) {
        let mut s = self.state.lock().expect("not poisoned");
        while let Some(w) = s.waiting.pop_front() {
            match w.send(c) {
                Ok(()) => return,
                Err(back) => c = back,
            }
        }
        if s.idle.len() < self.max_idle {
            s.idle.push(c);
        } else {
            s.total -= 1;
            drop(s);
            drop(c);
        }
    }

    /// `c` failed: close it, and let a waiting request dial instead.
    fn discard(&self, c: T) {
        drop(c);
        let mut s = self.state.lock().expect("not poisoned");
        while let Some(w) = s.waiting.pop_front() {
            if w.send((self.dial)()).is_ok() {
                return;
            }
        }
        s.total -= 1;
    }
}

/// How a worker gets its client: shared (reqwest's own pool), or a connection at a time from
/// the model of Go's transport.
#[derive(Clone)]
enum Source {
    Shared(reqwest::Client),
    Go(Arc<GoTransport<reqwest::Client>>),
}

struct Get {
    source: Source,
    url: reqwest::Url,
}

async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<(), OpError> {
    let res = client.get(url.clone()).send().await.map_err(|e| OpError::from_error(&e))?;
    if !res.status().is_success() {
        return Err(OpError::new(format!("HTTP {}", res.status().as_u16())));
    }
    let body = res.bytes().await.map_err(|e| OpError::from_error(&e))?;
    if body.len() != BODY_BYTES {
        return Err(OpError::new("short body"));
    }
    Ok(())
}

impl Worker for Get {
    async fn call(&mut self) -> Result<(), OpError> {
        match &self.source {
            Source::Shared(client) => fetch(client, &self.url).await,
            Source::Go(transport) => {
                let conn = transport.get().await?;
                let r = fetch(&conn, &self.url).await;
                if r.is_ok() {
                    transport.put(conn);
                } else {
                    transport.discard(conn);
                }
                r
            }
        }
    }
}

/// The source of a variant's clients, new for each sample.
fn source(client: Client) -> anyhow::Result<Source> {
    Ok(match client {
        Client::Guide => {
            // Fail now on a builder error rather than at the first dial.
            build_client(client)?;
            Source::Go(Arc::new(GoTransport::new(GUIDE_MAX_IDLE_CONNS_PER_HOST, GUIDE_MAX_CONNS_PER_HOST, move || {
                build_client(client).expect("built once already")
            })))
        }
        _ => Source::Shared(build_client(client)?),
    })
}

#[derive(Default)]
pub struct HttpClientPool;

impl HttpClientPool {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for HttpClientPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "HTTP client connection pool: keep-alive vs a connection per request",
            guide_section: "HTTP服务优化: 连接池优化 (NewOptimizedHTTPClient)",
            claim:
                "A client with a keep-alive pool (MaxIdleConnsPerHost 20) beats opening a new connection per request.",
            variants: names_of(&VARIANTS),
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
            capacity: Some(harness::CapacityPlan {
                case: "",
                point: 16.0,
                limits: harness::load::capacity::Limits::guide(200.0),
                why: "Limits: the guide's API target (p95 < 200 ms), at 16 clients.",
            }),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        vec![
            format!("The service answers GET /users/{{id}} with {BODY_BYTES} bytes of JSON from axum (HTTP/1.1 and h2c) on a runtime of 2 threads in the harness's process, on loopback; the clients share this machine's 2 cores with it. calibration-http gives the floor: what the harness's own client reaches on the same kind of endpoint."),
            "Each sample starts a new service on a new port and builds a new client, so connections accepted and TIME_WAIT sockets are that sample's; the warm-up fills the pool before the measured window.".into(),
            "guide-pool manages its connections as Go's http.Transport does (a model in this crate: idle first, then a dial up to MaxConnsPerHost 50, then a wait; a released connection goes to a waiting request before the idle list, and beyond MaxIdleConnsPerHost 20 it is closed), each connection a reqwest client holding one; reqwest alone has no MaxConnsPerHost and would apply its idle limit while requests wait, which churns connections where Go does not. MaxIdleConns 100 (across hosts) does not matter with one host; ExpectContinueTimeout and TLS settings do not apply to plain GETs.".into(),
            "Linux reuses loopback TIME_WAIT sockets for new outgoing connections (net.ipv4.tcp_tw_reuse = 2, the default), so a connection per request runs out of ephemeral ports later here than between two machines; errors of that kind are counted by kind, never as requests.".into(),
        ]
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
            let url = reqwest::Url::parse(&format!("http://{}/users/1", server.addr())).context("the service's URL")?;
            let source = source(variant)?;
            let cfg = ctx.settings.load_for(&at, concurrency);
            let report = load::run(&cfg, &ctx.probe, move |_| {
                let (source, url) = (source.clone(), url.clone());
                async move { Ok(Get { source, url }) }
            })
            .await;
            // Read before anything closes: what the traffic itself left.
            let time_wait = time_wait_sockets(port).ok();
            server.stop().await?;
            let mut sample = report?.into_sample();
            let accepted = counters.accepted.load(Ordering::Relaxed) as f64;
            let answered = counters.answered.load(Ordering::Relaxed) as f64;
            sample.metrics.insert("connections_accepted".into(), accepted);
            if answered > 0.0 {
                sample.metrics.insert("connections_per_1k".into(), 1000.0 * accepted / answered);
            }
            if let Some(tw) = time_wait {
                sample.metrics.insert("time_wait".into(), tw as f64);
            }
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's order: an idle connection first, then a dial up to the cap, then a wait; a
    /// released connection goes to a waiter before the idle list, and past the idle limit it
    /// is closed.
    #[tokio::test]
    async fn the_go_transport_hands_connections_to_waiters_before_closing_them() {
        let dials = Arc::new(AtomicU64::new(0));
        let d = dials.clone();
        let t = Arc::new(GoTransport::new(1, 2, move || d.fetch_add(1, Ordering::Relaxed)));
        let (a, b) = (t.get().await.unwrap(), t.get().await.unwrap());
        assert_eq!((a, b), (0, 1), "two dials up to MaxConnsPerHost");
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.get().await.unwrap() });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a third request waits");
        t.put(a);
        assert_eq!(waiter.await.unwrap(), 0, "the released connection went to the waiter");
        t.put(b);
        t.put(0);
        assert_eq!(dials.load(Ordering::Relaxed), 2, "no dial while connections were handed over");
        {
            let s = t.state.lock().unwrap();
            assert_eq!((s.idle.len(), s.total), (1, 1), "one idle kept (MaxIdleConnsPerHost 1), the other closed");
        }
        // A failed connection is closed, and its slot goes to the next dial.
        let c = t.get().await.unwrap();
        t.discard(c);
        assert_eq!(t.state.lock().unwrap().total, 0);
    }

    #[test]
    fn the_body_has_its_size() {
        assert_eq!(body().len(), BODY_BYTES);
    }

    /// Without keep-alive every request is a connection the server accepts and a socket left
    /// in TIME_WAIT; with a pool, one worker's requests share one connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_counted_on_the_server() {
        for (variant, want_accepted) in
            [(Client::NoKeepAlive, 20), (Client::ReqwestDefault, 1), (Client::Http2, 1), (Client::Guide, 1)]
        {
            let counters = Arc::new(Counters::default());
            let server = start_service(counters.clone()).unwrap();
            let port = server.addr().port();
            let mut get = Get {
                source: source(variant).unwrap(),
                url: reqwest::Url::parse(&format!("http://{}/users/1", server.addr())).unwrap(),
            };
            for _ in 0..20 {
                get.call().await.unwrap();
                // reqwest hands a connection back to its pool from its own task a moment after
                // the answer is read; a pause lets it land there, so that what is counted is
                // reuse, not a race with the quick run that shares this test binary's cores.
                tokio::time::sleep(Duration::from_millis(5)).await;
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
            if variant == Client::NoKeepAlive {
                assert_eq!(accepted, want_accepted, "{variant:?}");
            } else {
                // Even with the pause a loaded machine may dial a second one: shared, not one
                // per request.
                assert!((want_accepted..=3).contains(&accepted), "{variant:?}: {accepted} connections for 20 requests");
            }
            if variant == Client::NoKeepAlive {
                // The client closes first, so at least the closed connections but the last
                // wait in TIME_WAIT.
                let tw = time_wait_sockets(port).unwrap();
                assert!(tw >= 19, "{tw} sockets in TIME_WAIT after 20 closed connections");
            }
            drop(get);
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
        let exp = super::HttpClientPool::new();
        let result = harness::testing::run_quick(&exp, &[]).await.unwrap();
        harness::testing::assert_complete(&exp.meta(), &result);
    }
}
