//! `load-balancing`: the guide's client-side load balancer (负载均衡优化, `LoadBalancer`) when
//! one of three backends goes wrong.
//!
//! Three HTTP backends run on loopback, in this process, each on a runtime of its own; a
//! request costs a backend 1 ms (a timer, not CPU). In the case `slow` the third backend takes
//! ten times as long and passes its health check; in the case `failing` (the claim's) it
//! starts healthy and, at a moment of the sample's first health-check interval, starts
//! answering every request, its health check included, with 503; in `slow-then-failing` it is
//! slow from the start and fails the same way. Clients send requests at a fixed rate (open
//! loop: a request's latency counts from when it should have started), each to the backend a
//! balancer picks: the guide's `RoundRobin`, the guide's `WeightedRoundRobin` (a weighted
//! random pick, equal weights), or the power of two choices (tower's p2c rule) on outstanding
//! requests and on tower's peak-EWMA load. The sweep is the health checking: none, or the
//! guide's `HealthCheck` every 30 s. As the guide's checker starts on a ticker, its first check
//! comes one interval after the balancer starts, and the balancer starts with every backend
//! active.
//!
//! Time is compressed, the same for every policy: the guide's 30 s interval becomes a fifth of
//! the measured window (200 ms in a full run), and peak-EWMA's 10 s decay and the failure's
//! onset shrink by the same factor, so a sample holds several health checks and the balancer
//! meets the failure as it would over minutes. The random choices (the onset, p2c's picks, the
//! weighted pick) take a new seed every round, the same for every variant within a round.

use harness::kit::http::{RawClient, Server};
use harness::load::{self, OpError, Worker};
use harness::results::Better;
use harness::stats::SplitMix64;
use harness::targets::Target;
use harness::{
    names_of, pick, BoxFuture, Case, Check, Engine, Experiment, Knob, Meta, MetricInfo, Run, RunCtx, Sample, Sweep,
    Trial, Variant,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod balancer;
use balancer::{Balancer, Rule, EWMA_DECAY};
#[cfg(test)]
use balancer::{PeakEwma, EWMA_DEFAULT_RTT};

const ID: &str = "load-balancing";

/// Backends behind the balancer; the last one is the one that goes wrong.
const BACKENDS: usize = 3;
const DEGRADED: usize = BACKENDS - 1;

/// What a request costs a healthy backend, and the slow one.
const WORK: Duration = Duration::from_millis(1);
const SLOWDOWN: u32 = 10;

/// A request served worse than this (5× a healthy backend's work) or not at all is served
/// badly: what the primary metric counts.
const SLO: Duration = Duration::from_millis(5);

/// Requests per second offered in all, and the workers that send them, unless set.
const RATE: Knob = Knob::int(ID, "rate", 10, 100_000, 2_000, "requests per second offered in all");
const HEALTH_INTERVAL: Knob = Knob::int_derived(
    ID,
    "health_interval_ms",
    1,
    600_000,
    "a fifth of --duration, at least 10 ms: 200 in a full run, 30 in quick mode",
    "the guide's 30 s health check interval as this run compresses it; peak-EWMA's decay and the failure's onset are compressed by the same factor (30,000 runs the guide's own times)",
);
const WORKERS: u32 = 50;

/// The guide's health check interval and the timeout of one check.
const GUIDE_INTERVAL: Duration = Duration::from_secs(30);
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Slow,
    Failing,
    SlowThenFailing,
}

impl Condition {
    fn slow(self) -> bool {
        matches!(self, Condition::Slow | Condition::SlowThenFailing)
    }

    fn fails(self) -> bool {
        matches!(self, Condition::Failing | Condition::SlowThenFailing)
    }
}

const CASES: [(Case, Condition); 3] = [
    (
        Case::new("failing", "the third backend starts healthy and, at a random moment of the sample's first health-check interval, starts answering every request, its health check included, with HTTP 503: what the guide's health checks are for")
            .tests_claim(),
        Condition::Failing,
    ),
    (
        Case::new(
            "slow",
            "the third backend answers 10× slower than the others (10 ms instead of 1 ms) and passes its health check: health checks cannot act",
        ),
        Condition::Slow,
    ),
    (
        Case::new("slow-then-failing", "the third backend is 10× slower from the start, then fails as in failing"),
        Condition::SlowThenFailing,
    ),
];

const VARIANTS: [(Variant, Rule); 5] = [
    (
        Variant::new("p2c-peak-ewma", "power of two choices on tower's PeakEwma load with linkerd's defaults: two active backends at random, the one whose peak-sensitive moving average of round trips (first estimate 30 ms, decay 10 s, compressed with the run's time) times its outstanding requests plus one is lower"),
        Rule::P2cPeakEwma,
    ),
    (
        Variant::new("p2c-peak-ewma-tuned", "the same with its first estimate tuned to a healthy backend's round trip (1 ms), as a user who knows the service would set it: a slower round trip is then a peak that counts at once")
            .compared_with("p2c-peak-ewma"),
        Rule::P2cPeakEwmaTuned,
    ),
    (
        Variant::new("p2c", "the same two choices on outstanding requests only (tower's PendingRequests load)")
            .compared_with("p2c-peak-ewma"),
        Rule::P2c,
    ),
    (
        Variant::new("guide-round-robin", "the guide's LoadBalancer.RoundRobin: the next active backend in turn, under its mutex")
            .tests_claim_keeps_up()
            .compared_with("p2c-peak-ewma"),
        Rule::RoundRobin,
    ),
    (
        Variant::new("guide-weighted-random", "the guide's LoadBalancer.WeightedRoundRobin as written: rand.Intn over the active backends' weights (all 1), under its mutex")
            .compared_with("p2c-peak-ewma"),
        Rule::WeightedRandom,
    ),
];

/// The sweep's points: how the balancer learns which backends are up.
const HEALTH: [&str; 2] = ["none", "every 30 s (guide, compressed)"];

/// What each backend counts: requests answered.
#[derive(Default)]
struct Counts {
    answered: [AtomicU64; BACKENDS],
}

/// When the degraded backend starts failing: never until set, then the latest moment any
/// client asked for (each sets it once connected, so the onset falls in the measured window).
struct FailAt {
    base: std::time::Instant,
    /// Nanoseconds after `base`; `u64::MAX` until set.
    at_ns: AtomicU64,
}

impl Default for FailAt {
    fn default() -> Self {
        Self { base: std::time::Instant::now(), at_ns: AtomicU64::new(u64::MAX) }
    }
}

impl FailAt {
    fn no_earlier_than(&self, t: std::time::Instant) {
        let ns = t.saturating_duration_since(self.base).as_nanos() as u64;
        let _ = self
            .at_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| (cur == u64::MAX || ns > cur).then_some(ns));
    }

    fn passed(&self) -> bool {
        let at = self.at_ns.load(Ordering::Relaxed);
        at != u64::MAX && self.base.elapsed().as_nanos() as u64 >= at
    }
}

/// One backend: `GET /work` answers after its delay (or 503), `GET /health` 200 (or 503); the
/// degraded one is slow from the start where its condition says so, and fails from `fail_at`.
fn start_backend(
    index: usize,
    condition: Condition,
    fail_at: Arc<FailAt>,
    counts: Arc<Counts>,
) -> anyhow::Result<Server> {
    use axum::http::StatusCode;
    let degraded = index == DEGRADED;
    let fails = degraded && condition.fails();
    let delay = if degraded && condition.slow() { WORK * SLOWDOWN } else { WORK };
    let failing = move || fails && fail_at.passed();
    let health_failing = failing.clone();
    let app = axum::Router::new()
        .route(
            "/work",
            axum::routing::get(move || async move {
                counts.answered[index].fetch_add(1, Ordering::Relaxed);
                if failing() {
                    return (StatusCode::SERVICE_UNAVAILABLE, "done");
                }
                tokio::time::sleep(delay).await;
                (StatusCode::OK, "done")
            }),
        )
        .route(
            "/health",
            axum::routing::get(move || async move {
                (if health_failing() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, "health")
            }),
        );
    Server::start(Ipv4Addr::LOCALHOST, 1, |listener, shutdown| async move {
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    })
}

/// The guide's `HealthCheck`: every `interval` (the first one interval after it starts), every
/// backend's `/health` asked at once, each marked active when it answers 200 within 5 s. The
/// guide's Go client reuses connections (http.DefaultTransport), as this one does.
async fn health_check(balancer: Arc<Balancer>, addrs: Vec<SocketAddr>, interval: Duration, checks: Arc<AtomicU64>) {
    let mut clients: Vec<Option<RawClient>> = addrs.iter().map(|_| None).collect();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        ticker.tick().await;
        let rounds = clients.iter_mut().zip(&addrs).map(|(client, &addr)| async move {
            let asked = tokio::time::timeout(CHECK_TIMEOUT, async {
                if client.is_none() {
                    *client = RawClient::connect(addr).await.ok();
                }
                match client.as_mut() {
                    Some(c) => c.get("/health", "").await.map(|a| a.status == 200).unwrap_or(false),
                    None => false,
                }
            })
            .await;
            let up = asked.unwrap_or(false);
            if !up {
                *client = None;
            }
            up
        });
        let found = futures_util::future::join_all(rounds).await;
        for (i, up) in found.into_iter().enumerate() {
            balancer.set_active(i, up);
        }
        checks.fetch_add(1, Ordering::Relaxed);
    }
}

/// One client: a keep-alive connection to each backend, the shared balancer, its own random
/// source (for p2c's two choices).
struct Client {
    backends: Vec<RawClient>,
    balancer: Arc<Balancer>,
    rng: SplitMix64,
}

impl Worker for Client {
    async fn call(&mut self) -> Result<(), OpError> {
        let i = self.balancer.pick(&mut self.rng).ok_or_else(|| OpError::new("no backend available"))?;
        let sent = self.balancer.sent(i);
        let r = self.backends[i].get_ok("/work", "").await;
        self.balancer.done(i, sent);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                // A broken connection is replaced for the next request (the error still counts).
                if !e.kind.starts_with("HTTP ") {
                    let addr = self.backends[i].peer();
                    if let Ok(c) = RawClient::connect(addr).await {
                        self.backends[i] = c;
                    }
                }
                Err(e)
            }
        }
    }
}

/// The guide's 30 s interval as the run compresses it: a fifth of a sample (200 ms at a full
/// run's 1 s), so that it fires within every sample, or the `health_interval_ms` knob; and the
/// factor by which every time of the experiment is compressed.
fn compressed_interval(ctx: &RunCtx) -> anyhow::Result<(Duration, f64)> {
    let interval = ctx.settings.fifth_of_sample(&HEALTH_INTERVAL, Duration::from_millis(10))?;
    Ok((interval, interval.as_secs_f64() / GUIDE_INTERVAL.as_secs_f64()))
}

/// The seed of a round: the same for every variant of a case and point in the same round
/// (`Trial::round`), another in the next round.
fn round_seed(case: &str, point: &str, round: u64) -> u64 {
    let mut h = SplitMix64::new(round.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut seed = h.next_u64();
    for b in case.bytes().chain(point.bytes()) {
        seed = SplitMix64::new(seed ^ u64::from(b)).next_u64();
    }
    seed
}

/// Why a sample does not measure its health checking: checks were set but none ran, or the
/// backend that failed was never marked down.
fn not_acted(checking: bool, condition: Condition, rounds: u64, marked_down: u64) -> Option<String> {
    if !checking {
        return None;
    }
    if rounds == 0 {
        return Some("no health check ran in this sample: it does not measure health checking".into());
    }
    (condition.fails() && marked_down == 0).then(|| {
        format!("{rounds} health check round(s) ran but none marked the failing backend down: this sample does not measure health checking")
    })
}

/// The share of requests served badly: successes slower than the SLO (from the run's
/// histogram, in nanoseconds) plus failures, over all requests.
fn bad_pct(report: &load::LoadReport) -> Option<f64> {
    let slo_ns = SLO.as_nanos() as u64;
    let slow = report.histogram.len().saturating_sub(report.histogram.count_between(0, slo_ns));
    let failed: u64 = report.errors.values().sum();
    let total = report.ok + failed;
    (total > 0).then(|| 100.0 * (slow + failed) as f64 / total as f64)
}

/// What health checking did, per case, variant and point, over the samples.
#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    rounds: u64,
    marked_down: u64,
}

#[derive(Default)]
pub struct LoadBalancing {
    checked: harness::acted::Tally<Checked>,
}

impl LoadBalancing {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Experiment for LoadBalancing {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Client-side load balancing when one backend of three is slow or failing",
            guide_section: "网络优化: 负载均衡优化 (LoadBalancer: RoundRobin, WeightedRoundRobin, HealthCheck)",
            claim: "Round robin or weighted random with health checks spreads load well across backends.",
            variants: names_of(&VARIANTS),
            cases: names_of(&CASES),
            sweep: Sweep { quick: vec![1.0], ..Sweep::categories("health checks", &HEALTH) },
            // The share of requests served badly: failed, or slower than 5 ms. A p99 cannot say
            // it (failed requests have no latency, and any rule that sends more than 1 % to the
            // slow backend has the slow backend's p99).
            primary_metric: MetricInfo::new("bad_pct", "%", Better::Lower, "requests that failed or took longer than 5 ms (5× a healthy backend's work), over all requests sent")
                .negligible_below(0.5),
            metrics: vec![
                load::latency_p99("one request (successful ones)"),
                load::latency_p50("one request (successful ones)"),
                load::latency_mean("one successful request"),
                MetricInfo::new("error_rate", "fraction", Better::Lower, "requests that failed (HTTP 503, no backend) over all requests sent"),
                MetricInfo::new("degraded_share", "%", Better::Lower, "share of the requests the backends answered that went to the slow or failing backend (a third is an even spread)"),
                MetricInfo::new("health_checks", "rounds", Better::Higher, "health check rounds completed during the sample (warm-up included)"),
                MetricInfo::new("marked_down", "times", Better::Higher, "times a health check marked the failing (or slow) backend down during the sample"),
            ],
            // What the balancer does when it sends a request to the failing backend, or has no
            // backend left: the finding, counted in error_rate, not a broken measurement.
            outcome_errors: &["HTTP 503", "no backend available"],
            targets: &[Target::ApiP95, Target::ApiThroughput, Target::Errors, Target::Memory, Target::Cpu],
            knobs: vec![
                RATE, HEALTH_INTERVAL,
            ],
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn checks<'a>(&'a self, _ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let mut checks = Vec::new();
            // Each rule's spread over three healthy-looking backends, and that none picks a
            // backend marked inactive.
            for (variant, rule) in VARIANTS {
                let b = Balancer::new(rule, 1.0, 0);
                let mut rng = SplitMix64::new(1);
                let mut seen = [0u64; BACKENDS];
                for _ in 0..3000 {
                    seen[b.pick(&mut rng).expect("all active")] += 1;
                }
                b.set_active(DEGRADED, false);
                let skipped = (0..300).all(|_| b.pick(&mut rng) != Some(DEGRADED));
                let even = seen.iter().all(|&n| (800..=1200).contains(&n));
                checks.push(Check::verdict(
                    variant.name,
                    None,
                    "spreads evenly and skips an inactive backend",
                    f64::from(u8::from(even && skipped)),
                    even && skipped,
                    format!("3,000 picks over three active backends with no load: {seen:?}; with the third marked inactive it was {}picked in 300 more", if skipped { "never " } else { "still " }),
                ));
            }
            // That the health checks acted in every sample that had them.
            checks.extend(self.checked.checks("health checks acted", |case, _, c| {
                let what = match pick(&CASES, case) {
                    Ok(condition) if condition.fails() => "checks set ran and marked the failing backend down",
                    _ => "checks set ran",
                };
                format!("{what}; {} check rounds and {} backends marked down in all", c.rounds, c.marked_down)
            }));
            Ok(checks)
        })
    }

    fn notes(&self, ctx: &RunCtx) -> Vec<String> {
        let mut notes = harness::notes!(workers = WORKERS, rate = RATE.value(&ctx.settings).unwrap_or(f64::NAN));
        let compressed = match compressed_interval(ctx) {
            Ok((interval, scale)) => format!("Time is compressed {:.0}×, the same for every policy: the guide's 30 s health check interval is {} ms, peak-EWMA's 10 s decay {} ms, and the backend fails at a random moment of the measured window's first interval (a new moment every round, the same for every variant in the round), so the guide's checker meets the failure within a sample as it would within minutes. The check's own 5 s timeout is not compressed: no backend here hangs, and a timeout of milliseconds on two busy cores would mark healthy backends down. The guide's HealthCheck starts with a ticker: its first check comes one interval after it starts, and the balancer starts with every backend active.", 1.0 / scale, interval.as_millis(), (EWMA_DECAY.as_secs_f64() * scale * 1e3).round()),
            Err(e) => e.to_string(),
        };
        notes.insert(1.min(notes.len()), compressed);
        notes
    }
}

impl Run for LoadBalancing {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let rule = pick(&VARIANTS, at.variant)?;
            let condition = pick(&CASES, at.case)?;
            let (every, scale) = compressed_interval(ctx)?;
            let checking = at.point.value as usize >= 1;
            let seed = round_seed(at.case, &at.point.label, u64::from(at.round));
            let rate = RATE.value(&ctx.settings)?;
            // The failure's onset: a random moment of the measured window's first interval,
            // counted from when the last client has connected (the load engine starts its
            // warm-up then, and its measured window after the warm-up and a 5 ms common start).
            let onset = every.mul_f64(SplitMix64::new(seed).next_f64());
            let from_connected = ctx.settings.warmup + Duration::from_millis(5) + onset;
            let fail_at = Arc::new(FailAt::default());
            let counts = Arc::new(Counts::default());
            let mut servers = Vec::with_capacity(BACKENDS);
            for i in 0..BACKENDS {
                servers.push(start_backend(i, condition, fail_at.clone(), counts.clone())?);
            }
            let addrs: Vec<SocketAddr> = servers.iter().map(Server::addr).collect();
            let balancer = Arc::new(Balancer::new(rule, scale, seed));
            let rounds = Arc::new(AtomicU64::new(0));
            let checker =
                checking.then(|| tokio::spawn(health_check(balancer.clone(), addrs.clone(), every, rounds.clone())));
            let cfg = harness::LoadConfig::open(WORKERS, rate, ctx.settings.warmup, ctx.settings.duration);
            let (b, a, f) = (balancer.clone(), addrs.clone(), fail_at.clone());
            let report = load::run(&cfg, &ctx.probe, move |i| {
                let (balancer, addrs, fail_at) = (b.clone(), a.clone(), f.clone());
                async move {
                    let mut backends = Vec::with_capacity(addrs.len());
                    for addr in addrs {
                        backends.push(RawClient::connect(addr).await?);
                    }
                    fail_at.no_earlier_than(std::time::Instant::now() + from_connected);
                    Ok(Client { backends, balancer, rng: SplitMix64::new(seed ^ (0x9e37_79b9 + i as u64)) })
                }
            })
            .await;
            if let Some(c) = checker {
                c.abort();
            }
            for s in servers {
                s.stop().await?;
            }
            let report = report?;
            let bad = bad_pct(&report);
            let mut sample = report.into_sample();
            if let Some(bad) = bad {
                sample.metrics.insert("bad_pct".into(), bad);
            }
            let answered: Vec<u64> = counts.answered.iter().map(|n| n.load(Ordering::Relaxed)).collect();
            let total: u64 = answered.iter().sum();
            if total > 0 {
                sample.metrics.insert("degraded_share".into(), 100.0 * answered[DEGRADED] as f64 / total as f64);
            }
            let (rounds, marked_down) = (rounds.load(Ordering::Relaxed), balancer.marked_down.load(Ordering::Relaxed));
            sample.metrics.insert("health_checks".into(), rounds as f64);
            sample.metrics.insert("marked_down".into(), marked_down as f64);
            sample.invalid = not_acted(checking, condition, rounds, marked_down);
            self.checked.record(&at, sample.invalid.is_none(), |c| {
                c.rounds += rounds;
                c.marked_down += marked_down;
            });
            Ok(sample)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's round robin takes the backends in turn and steps over an inactive one.
    #[test]
    fn round_robin_takes_turns_and_skips_the_inactive() {
        let b = Balancer::new(Rule::RoundRobin, 1.0, 0);
        let mut rng = SplitMix64::new(1);
        let got: Vec<_> = (0..4).map(|_| b.pick(&mut rng).unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 0]);
        b.set_active(2, false);
        let got: Vec<_> = (0..4).map(|_| b.pick(&mut rng).unwrap()).collect();
        assert_eq!(got, [1, 0, 1, 0]);
        for i in 0..BACKENDS {
            b.set_active(i, false);
        }
        assert_eq!(b.pick(&mut rng), None);
    }

    /// p2c never picks the more loaded of its two choices: with one backend loaded, it gets
    /// only the picks where both choices fell on it, which two distinct choices never do.
    #[test]
    fn p2c_avoids_the_loaded_backend() {
        let b = Balancer::new(Rule::P2c, 1.0, 0);
        b.outstanding[DEGRADED].store(5, Ordering::Relaxed);
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).all(|_| b.pick(&mut rng) != Some(DEGRADED)));
        b.set_active(0, false);
        b.set_active(1, false);
        assert_eq!(b.pick(&mut rng), Some(DEGRADED), "the only active backend, however loaded");
    }

    /// The peak-EWMA estimate jumps to a slower round trip at once and comes down slowly, and
    /// p2c on it avoids the backend whose round trips are slow even with nothing outstanding.
    #[test]
    fn peak_ewma_takes_peaks_and_steers_away_from_slow_backends() {
        let t0 = std::time::Instant::now();
        let decay = EWMA_DECAY.as_nanos() as f64;
        let mut e = PeakEwma::new(EWMA_DEFAULT_RTT, t0);
        e.observe(Duration::from_millis(100), t0, decay);
        assert_eq!(e.rtt_ns, 100e6, "a peak replaces the estimate");
        e.observe(Duration::from_millis(1), t0 + Duration::from_secs(1), decay);
        assert!(e.rtt_ns > 80e6 && e.rtt_ns < 100e6, "one second of a 10 s decay: {}", e.rtt_ns);
        let mut fast = e;
        fast.observe(Duration::from_millis(1), t0 + Duration::from_secs(2), decay / 100.0);
        assert!(fast.rtt_ns < 2e6, "compressed 100×, one second is ten decays: {}", fast.rtt_ns);
        let b = Balancer::new(Rule::P2cPeakEwma, 1.0, 0);
        let now = std::time::Instant::now();
        for (i, ms) in [1, 1, 10].into_iter().enumerate() {
            *b.ewma[i].lock().unwrap() = PeakEwma { rtt_ns: ms as f64 * 1e6, at: now };
        }
        let mut rng = SplitMix64::new(9);
        assert!((0..1000).all(|_| b.pick(&mut rng) != Some(DEGRADED)));
    }

    /// Served badly: slower than the SLO or failed, over every request.
    #[test]
    fn bad_requests_are_the_slow_and_the_failed() {
        let mut histogram = load::new_histogram();
        for ms in [1, 2, 3, 4, 12, 15] {
            histogram.record(ms * 1_000_000).unwrap();
        }
        let report = load::LoadReport {
            histogram,
            ok: 6,
            errors: [("HTTP 503".to_owned(), 2)].into_iter().collect(),
            measured: Duration::from_secs(1),
            resources: Default::default(),
            timeline: Vec::new(),
            pacing: None,
            worker_ops: Vec::new(),
        };
        assert_eq!(bad_pct(&report), Some(50.0), "2 slow + 2 failed of 8");
    }

    /// Weighted random follows the weights.
    #[test]
    fn weighted_random_follows_weights() {
        let b = Balancer::new(Rule::WeightedRandom, 1.0, 0);
        b.lock().weight = [1, 1, 2];
        let mut rng = SplitMix64::new(3);
        let mut seen = [0u64; BACKENDS];
        for _ in 0..8000 {
            seen[b.pick(&mut rng).unwrap()] += 1;
        }
        assert!((3600..=4400).contains(&seen[2]), "{seen:?}");
    }

    /// The health checker marks the failing backend inactive at its first round after the
    /// failure's onset, not before; a slow backend passes. A sample in which checks were set and
    /// none ran, or none marked a failed backend down, is not a measurement of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_checks_mark_the_failing_backend_after_its_onset() {
        let counts = Arc::new(Counts::default());
        let fail_at = Arc::new(FailAt::default());
        assert!(!fail_at.passed(), "never until set");
        fail_at.no_earlier_than(std::time::Instant::now() + Duration::from_millis(200));
        fail_at.no_earlier_than(std::time::Instant::now() + Duration::from_millis(100));
        let servers: Vec<Server> = (0..BACKENDS)
            .map(|i| start_backend(i, Condition::Failing, fail_at.clone(), counts.clone()).unwrap())
            .collect();
        let addrs: Vec<SocketAddr> = servers.iter().map(Server::addr).collect();
        let b = Arc::new(Balancer::new(Rule::RoundRobin, 1.0, 0));
        let rounds = Arc::new(AtomicU64::new(0));
        let checker = tokio::spawn(health_check(b.clone(), addrs, Duration::from_millis(60), rounds.clone()));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(rounds.load(Ordering::Relaxed) >= 1, "checks ran before the onset");
        assert!(b.lock().active[DEGRADED], "and found every backend up");
        tokio::time::sleep(Duration::from_millis(250)).await;
        checker.abort();
        assert_eq!(b.lock().active, [true, true, false]);
        assert_eq!(b.marked_down.load(Ordering::Relaxed), 1);
        assert!(not_acted(true, Condition::Failing, rounds.load(Ordering::Relaxed), 1).is_none());
        assert!(not_acted(true, Condition::Failing, 3, 0).is_some(), "checks that never marked it down");
        assert!(not_acted(true, Condition::Slow, 0, 0).is_some(), "no check ran");
        assert!(not_acted(true, Condition::Slow, 3, 0).is_none(), "a slow backend passes");
        assert!(not_acted(false, Condition::Failing, 0, 0).is_none(), "no checks set");
        for s in servers {
            s.stop().await.unwrap();
        }
    }
}

harness::quick_run_test!(LoadBalancing::new());
