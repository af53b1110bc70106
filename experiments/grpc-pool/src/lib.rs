//! `grpc-pool`: the guide's gRPC connection pool (gRPC优化, `GRPCConnectionPool`) against one
//! channel multiplexing every call over HTTP/2.
//!
//! A tonic server configured as the guide's `NewOptimizedGRPCServer` (keepalive 60 s / 5 s, no
//! stream limit, as gRPC-Go's default) answers a unary call doing a little work (a digest of a
//! 256-byte payload), on loopback, in this process on a runtime of its own. N concurrent
//! callers, in a closed loop, reach it through one tonic `Channel`, or through the guide's pool
//! of 4 or 16 channels handed out round robin under a mutex, as `GetConnection` does. Every
//! channel is dialled as the guide's `NewOptimizedGRPCClient` dials (keepalive 10 s, timeout
//! 3 s, pings while idle, connected before use). Each sample gets a new server and new
//! channels, so the connections the server accepted are the sample's own.
//!
//! The guide's client pings every 10 s while its server's enforcement policy allows one ping
//! per 30 s: gRPC-Go's server answers that with GOAWAY `too_many_pings`. The checks record
//! what tonic's server does with the same pings.

use futures_util::StreamExt as _;
use harness::kit::http::{Counted, Server, Wire};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::{
    names_of, pick, BoxFuture, Check, Engine, Experiment, Meta, MetricInfo, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

const ID: &str = "grpc-pool";

/// The one method's path: `perflab.Work/Do`.
const PATH: &str = "/perflab.Work/Do";

/// Bytes of payload each request carries.
const PAYLOAD: usize = 256;

/// Times the server digests the payload: a few microseconds of work per call.
const ROUNDS: u32 = 8;

/// Threads of the server's runtime.
const SERVER_THREADS: usize = 2;

/// The guide's client keepalive (`keepalive.ClientParameters`): ping every 10 s, give up on an
/// unanswered ping after 3 s, ping also without active streams.
const CLIENT_KEEPALIVE: Duration = Duration::from_secs(10);
const CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// The guide's server keepalive (`keepalive.ServerParameters`).
const SERVER_KEEPALIVE: Duration = Duration::from_secs(60);
const SERVER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The guide's `EnforcementPolicy.MinTime`: gRPC-Go's server tolerates one ping per 30 s.
const SERVER_MIN_PING_INTERVAL: Duration = Duration::from_secs(30);

/// The request: an id the reply echoes and a payload to digest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkRequest {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Shared, so that a caller sends its payload without copying it per call.
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: bytes::Bytes,
}

/// The reply: the request's id and the digest of its payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkReply {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub digest: u64,
}

/// The server's work: FNV-1a over the payload, `ROUNDS` times, each round seeded by the last.
fn digest(payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..ROUNDS {
        for &b in payload {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// How the callers reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// One channel, cloned into every caller: every call multiplexed on one HTTP/2 connection.
    One,
    /// The guide's pool of this many channels, one per call round robin under a mutex.
    Guide(usize),
}

const VARIANTS: [(Variant, Pooling); 3] = [
    (
        Variant::new("single-channel", "one tonic Channel (one HTTP/2 connection) shared by every caller, the guide's client settings"),
        Pooling::One,
    ),
    (
        Variant::new("guide-pool-4", "the guide's GRPCConnectionPool of 4 channels: GetConnection hands them out round robin under a mutex, one per call")
            .tests_claim()
            .compared_with("single-channel"),
        Pooling::Guide(4),
    ),
    (
        Variant::new("guide-pool-16", "the same pool with 16 channels").compared_with("single-channel"),
        Pooling::Guide(16),
    ),
];

/// The Go originals (go/inproc/grpc_pool.go): grpc-go itself, the guide's
/// NewOptimizedGRPCClient, NewOptimizedGRPCServer and GRPCConnectionPool as printed.
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group(
        "go-single-conn",
        "Go original: one grpc.ClientConn dialled by the guide's NewOptimizedGRPCClient, shared by every caller",
    )
    .in_go("GRPCPool/single-conn"),
    Variant::new(
        "go-guide-pool-4",
        "Go original: the guide's GRPCConnectionPool of 4 ClientConns as printed, GetConnection per call",
    )
    .compared_with("go-single-conn")
    .in_go("GRPCPool/guide-pool-4")
    .tests_claim(),
    Variant::new("go-guide-pool-16", "Go original: the same pool with 16 ClientConns")
        .compared_with("go-single-conn")
        .in_go("GRPCPool/guide-pool-16"),
];

/// The server's `Service`: what tonic's code generator would write for one unary method.
#[derive(Clone)]
struct WorkService;

impl tonic::server::NamedService for WorkService {
    const NAME: &'static str = "perflab.Work";
}

type BoxResponse = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for WorkService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxResponse;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> BoxResponse {
        Box::pin(async move {
            if req.uri().path() != PATH {
                return Ok(tonic::Status::unimplemented(req.uri().path().to_owned()).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<WorkReply, WorkRequest>::default());
            Ok(grpc.unary(Do, req).await)
        })
    }
}

/// The unary method itself.
struct Do;

impl tower::Service<tonic::Request<WorkRequest>> for Do {
    type Response = tonic::Response<WorkReply>;
    type Error = tonic::Status;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<WorkRequest>) -> Self::Future {
        let req = req.into_inner();
        std::future::ready(Ok(tonic::Response::new(WorkReply { id: req.id, digest: digest(&req.payload) })))
    }
}

/// The guide's server (`NewOptimizedGRPCServer`) in tonic, counting the connections it accepts.
/// tonic's server has no ping enforcement policy, so `MinTime` has no equivalent here.
fn start_server(accepted: Arc<AtomicU64>) -> anyhow::Result<Server> {
    Server::start(Ipv4Addr::LOCALHOST, SERVER_THREADS, move |listener, shutdown| async move {
        let incoming = futures_util::stream::unfold((listener, accepted), |(listener, accepted)| async move {
            let next = listener.accept().await.map(|(stream, _)| {
                // Go's net package sets TCP_NODELAY on every connection.
                let _ = stream.set_nodelay(true);
                accepted.fetch_add(1, Ordering::Relaxed);
                stream
            });
            Some((next, (listener, accepted)))
        })
        .boxed();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(SERVER_KEEPALIVE))
            .http2_keepalive_timeout(Some(SERVER_KEEPALIVE_TIMEOUT))
            // gRPC-Go's default: no limit on concurrent streams per connection.
            .max_concurrent_streams(None)
            .add_service(WorkService)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(std::io::Error::other)
    })
}

/// The guide's client settings (`NewOptimizedGRPCClient`) for a channel to `addr`, with the
/// keepalive interval given (the guide's is 10 s).
fn endpoint(addr: SocketAddr, keepalive: Duration) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .http2_keep_alive_interval(keepalive)
        .keep_alive_timeout(CLIENT_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10)))
}

/// Dial `n` channels, each connected before use (`grpc.WithBlock()`).
async fn dial(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = endpoint(addr, CLIENT_KEEPALIVE)?;
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(endpoint.connect().await?);
    }
    Ok(channels)
}

/// The guide's `GetConnection`: the next channel's index, round robin, under a mutex.
struct GuidePool {
    size: usize,
    current: Mutex<usize>,
}

impl GuidePool {
    fn get(&self) -> usize {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let i = *current;
        *current = (i + 1) % self.size;
        i
    }
}

/// One caller: a client per channel (made once, as a Go caller keeps the `*grpc.ClientConn`
/// the pool returns), the pool that picks one per call (none for a single channel), and the
/// payload it sends.
struct Caller {
    clients: Vec<tonic::client::Grpc<Channel>>,
    pool: Option<Arc<GuidePool>>,
    payload: bytes::Bytes,
    path: http::uri::PathAndQuery,
    next: u64,
}

impl Caller {
    fn new(channels: &[Channel], pool: Option<Arc<GuidePool>>, first: u64) -> Self {
        Caller {
            clients: channels.iter().cloned().map(tonic::client::Grpc::new).collect(),
            pool,
            payload: (0..PAYLOAD).map(|i| (i * 31 + 7) as u8).collect(),
            path: http::uri::PathAndQuery::from_static(PATH),
            next: first,
        }
    }

    async fn work(&mut self) -> Result<WorkReply, OpError> {
        let i = match &self.pool {
            Some(pool) => pool.get(),
            None => 0,
        };
        self.next += 1;
        let request = WorkRequest { id: self.next, payload: self.payload.clone() };
        let client = &mut self.clients[i];
        client.ready().await.map_err(|e| OpError::from_error(&e))?;
        let path = self.path.clone();
        let codec = tonic_prost::ProstCodec::<WorkRequest, WorkReply>::default();
        let reply = client
            .unary(tonic::Request::new(request), path, codec)
            .await
            .map_err(|status| OpError::new(format!("gRPC {:?}", status.code())))?
            .into_inner();
        if reply.id != self.next {
            return Err(OpError::new("reply to another call"));
        }
        Ok(reply)
    }
}

impl Worker for Caller {
    async fn call(&mut self) -> Result<(), OpError> {
        self.work().await.map(drop)
    }
}

/// A new server and the channels `pooling` dials to it.
async fn setup(pooling: Pooling) -> anyhow::Result<(Server, Arc<AtomicU64>, Vec<Channel>, Option<Arc<GuidePool>>)> {
    let accepted = Arc::new(AtomicU64::new(0));
    let server = start_server(accepted.clone())?;
    let (n, pool) = match pooling {
        Pooling::One => (1, None),
        Pooling::Guide(n) => (n, Some(Arc::new(GuidePool { size: n, current: Mutex::new(0) }))),
    };
    let channels = match dial(server.addr(), n).await {
        Ok(c) => c,
        Err(e) => {
            server.stop().await?;
            return Err(e);
        }
    };
    Ok((server, accepted, channels, pool))
}

#[derive(Default)]
pub struct GrpcPool;

impl GrpcPool {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for GrpcPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "gRPC connection pool: one HTTP/2 channel vs the guide's round-robin pool",
            guide_section: "网络优化: gRPC优化 (GRPCConnectionPool)",
            claim: "A pool of gRPC connections with keep-alive (round robin over several channels) beats one channel.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            sweep: Sweep::numeric("concurrency", "callers", &[1.0, 64.0, 512.0], &[64.0, 512.0]),
            primary_metric: load::throughput("calls/s", "successful unary calls per second"),
            metrics: vec![
                load::latency_mean("one call"),
                load::latency_p50("one call"),
                load::latency_p99("one call"),
                MetricInfo::new(
                    "connections",
                    "connections",
                    Better::Lower,
                    "connections the server accepted during the sample (a re-dial after a GOAWAY would show here)",
                ),
                MetricInfo::new(
                    "process_cores",
                    "cores",
                    Better::Lower,
                    "CPU the process (callers and server) used during the sample, in cores: near the machine's cores, the throughput measures contention for them",
                ),
            ],
            targets: harness::targets::SERVICE,
            capacity: Some(harness::CapacityPlan::guide(64.0, 200.0, "Limits: the guide's API target (p95 < 200 ms), at 64 callers.")),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let mut checks = Vec::new();
            for (variant, pooling) in VARIANTS {
                let (ok, detail, wrong) = serves_correctly(pooling).await?;
                checks.push(Check::verdict(
                    variant.name,
                    None,
                    "replies with the server's digest",
                    wrong as f64,
                    ok,
                    detail,
                ));
            }
            let pings = keepalive_pings(Duration::from_millis(100), Duration::from_millis(1200)).await?;
            let kept = pings.connections == 1 && pings.call_after_ok;
            checks.push(Check::observation(
                "single-channel",
                None,
                "keepalive pings answered without GOAWAY",
                pings.pings as f64,
                format!(
                    "The guide's client pings every {} s while its server's EnforcementPolicy.MinTime is {} s: gRPC-Go's server counts each early ping as a strike and, past two, closes the connection with GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\" (the client then doubles its interval). tonic's server (hyper's h2) has no ping policy, so that mismatch cannot be reproduced in Rust. Measured: a channel pinging every 100 ms sent {} pings in 1.2 s of idleness; the server {} ({} connection(s) accepted, a call afterwards {}).",
                    CLIENT_KEEPALIVE.as_secs(),
                    SERVER_MIN_PING_INTERVAL.as_secs(),
                    pings.pings,
                    if kept { "answered them all and kept the connection" } else { "did not keep the connection" },
                    pings.connections,
                    if pings.call_after_ok { "succeeded" } else { "failed" },
                ),
            ));
            Ok(checks)
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!(
            server_threads = SERVER_THREADS,
            payload = PAYLOAD,
            rounds = ROUNDS,
            grpc_go = GRPC_GO,
            client_keepalive_s = CLIENT_KEEPALIVE.as_secs(),
            server_min_ping_s = SERVER_MIN_PING_INTERVAL.as_secs(),
        )
    }
}

/// Dial `pooling`'s channels, make two calls per channel and check every reply: (all right,
/// what was seen, how many replies were wrong).
async fn serves_correctly(pooling: Pooling) -> anyhow::Result<(bool, String, u64)> {
    let (server, accepted, channels, pool) = setup(pooling).await?;
    let mut caller = Caller::new(&channels, pool, 0);
    let calls = 2 * channels.len();
    let mut wrong = 0u64;
    let mut failed = Vec::new();
    for _ in 0..calls {
        match caller.work().await {
            Ok(reply) if reply.digest == digest(&caller.payload) => {}
            Ok(_) => wrong += 1,
            Err(e) => failed.push(e.kind.into_owned()),
        }
    }
    drop((caller, channels));
    let connections = accepted.load(Ordering::Relaxed);
    server.stop().await?;
    let want = match pooling {
        Pooling::One => 1,
        Pooling::Guide(n) => n as u64,
    };
    let ok = wrong == 0 && failed.is_empty() && connections == want;
    Ok((
        ok,
        format!(
            "{calls} calls: {} right, {wrong} with a wrong digest, {} failed{}; the server accepted {connections} connection(s), {want} expected",
            calls as u64 - wrong - failed.len() as u64,
            failed.len(),
            failed.first().map(|k| format!(" ({k})")).unwrap_or_default(),
        ),
        wrong + failed.len() as u64,
    ))
}

struct Pings {
    /// HTTP/2 PING frames the client wrote while idle.
    pings: u64,
    /// Connections the server accepted over the whole check.
    connections: u64,
    call_after_ok: bool,
}

/// One channel with a keepalive of `interval`, idle for `idle`: the pings it wrote (bytes
/// written while idle over a PING frame's 17 bytes), whether the server kept the connection,
/// and whether a call afterwards succeeds.
async fn keepalive_pings(interval: Duration, idle: Duration) -> anyhow::Result<Pings> {
    let accepted = Arc::new(AtomicU64::new(0));
    let server = start_server(accepted.clone())?;
    let addr = server.addr();
    let wire = Arc::new(Wire::default());
    let w = wire.clone();
    let connector = tower::service_fn(move |_: http::Uri| {
        let w = w.clone();
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(Counted::new(stream, w)))
        }
    });
    let result = async {
        let channel = endpoint(addr, interval)?.connect_with_connector(connector).await?;
        let mut caller = Caller::new(std::slice::from_ref(&channel), None, 0);
        caller.work().await.map_err(|e| anyhow::anyhow!("the first call failed: {}", e.kind))?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, _, before) = wire.totals();
        tokio::time::sleep(idle).await;
        let (_, _, after) = wire.totals();
        let call_after_ok = caller.work().await.is_ok();
        Ok::<_, anyhow::Error>(Pings {
            pings: (after - before) / PING_FRAME_BYTES,
            connections: accepted.load(Ordering::Relaxed),
            call_after_ok,
        })
    }
    .await;
    server.stop().await?;
    result
}

/// The grpc-go version the Go originals pin (go/go.mod).
const GRPC_GO: &str = "v1.85.0";

/// An HTTP/2 PING frame on the wire: a 9-byte frame header and 8 bytes of opaque data.
const PING_FRAME_BYTES: u64 = 17;

impl Run for GrpcPool {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let pooling = pick(&VARIANTS, at.variant)?;
            let concurrency = at.point.value as u32;
            let (server, accepted, channels, pool) = setup(pooling).await?;
            let cfg = ctx.settings.load_for(&at, concurrency);
            let shared = (Arc::new(channels), pool);
            let report = load::run(&cfg, &ctx.probe, move |i| {
                let (channels, pool) = shared.clone();
                async move { Ok(Caller::new(&channels, pool, (i as u64) << 40)) }
            })
            .await;
            let connections = accepted.load(Ordering::Relaxed);
            server.stop().await?;
            let mut sample = report?.into_sample();
            sample.metrics.insert("connections".into(), connections as f64);
            if let Some(r) = &sample.resources {
                sample.metrics.insert("process_cores".into(), r.harness_cpu_s / r.wall_s.max(1e-9));
            }
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's GetConnection visits every channel in turn.
    #[test]
    fn the_guide_pool_hands_out_channels_round_robin() {
        let pool = GuidePool { size: 3, current: Mutex::new(0) };
        let got: Vec<usize> = (0..7).map(|_| pool.get()).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }

    /// The messages survive prost's encoding as declared, and the digest depends on every byte.
    #[test]
    fn messages_round_trip_and_the_digest_sees_the_payload() {
        use prost::Message as _;
        let req = WorkRequest { id: 42, payload: vec![1, 2, 3].into() };
        assert_eq!(WorkRequest::decode(req.encode_to_vec().as_slice()).unwrap(), req);
        assert_ne!(digest(&[1, 2, 3]), digest(&[1, 2, 4]));
        // The Go originals' test pins the same value (go/inproc/grpc_pool_test.go).
        let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 31 + 7) as u8).collect();
        assert_eq!(digest(&payload), 7_234_460_078_483_587_877);
    }

    /// A pool of n channels is n connections, and every call through it gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_pool_opens_its_connections_and_serves_correct_replies() {
        for (_, pooling) in VARIANTS {
            let (ok, detail, wrong) = serves_correctly(pooling).await.unwrap();
            assert!(ok && wrong == 0, "{pooling:?}: {detail}");
        }
    }

    /// The ping counter sees a channel's keepalive pings, and the connection survives them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keepalive_pings_are_counted() {
        let p = keepalive_pings(Duration::from_millis(50), Duration::from_millis(500)).await.unwrap();
        assert!(p.pings >= 3 && p.pings <= 12, "{} pings in 500 ms at 50 ms", p.pings);
        assert_eq!(p.connections, 1);
        assert!(p.call_after_ok);
    }

    /// The server stops listening when stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_stops() {
        let server = start_server(Arc::new(AtomicU64::new(0))).unwrap();
        let addr = server.addr();
        server.stop().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}

harness::quick_run_test!(GrpcPool::new());
