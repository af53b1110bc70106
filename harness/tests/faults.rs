//! Faults between the load engine and real servers: through the fault proxy (latency, a
//! stall, a reset) and by killing the run's own Redis in the middle of a sample. A failed
//! operation never becomes a measurement, a stall never hangs a run, and a dead server ends
//! its experiment with the cause and no verdict.

use harness::analysis;
use harness::faultproxy::FaultProxy;
use harness::load::{self, LoadConfig, OpError, Worker, UNFINISHED};
use harness::provision::{provision, PgTarget, Provider, Request};
use harness::resources::Probe;
use harness::results::{ExperimentStatus, VerdictKind};
use harness::{
    runner, BoxFuture, Engine, Experiment, Meta, MetricInfo, Needs, Run, RunCtx, Sample, Sweep, Trial, Variant,
};
use std::time::Duration;

/// One SELECT per call on its own connection.
struct Select(tokio_postgres::Client);

impl Worker for Select {
    async fn call(&mut self) -> Result<(), OpError> {
        self.0.simple_query("SELECT 1").await.map(|_| ()).map_err(|e| OpError::from_error(&e))
    }
}

/// `pg`, reached through `proxy`.
fn via(pg: &PgTarget, proxy: &FaultProxy) -> PgTarget {
    let mut t = pg.clone();
    // Config::port adds a port: build the configuration anew for the proxy's.
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(proxy.addr().port()).user(&pg.user).dbname(&pg.dbname);
    if let Some(pw) = pg.config.get_password() {
        config.password(pw);
    }
    t.config = config;
    t.port = proxy.addr().port();
    t
}

async fn load_through(target: PgTarget, cfg: LoadConfig) -> load::LoadReport {
    load::run(&cfg, &Probe::default(), move |_| {
        let t = target.clone();
        async move { Ok(Select(t.connect().await?)) }
    })
    .await
    .expect("workers connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_stall_and_reset_through_the_proxy() {
    let env = provision(&Request { provider: Provider::Local, need_postgres: true, ..Request::default() })
        .await
        .expect("postgres starts");
    let pg = env.pg.clone().unwrap();
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", pg.port).parse().unwrap()).await.unwrap();
    let target = via(&pg, &proxy);

    // Latency: 5 ms each way is measured as at least 10 ms a query.
    proxy.set_latency(Duration::from_millis(5));
    let cfg = LoadConfig::closed(2, Duration::from_millis(50), Duration::from_millis(300));
    let r = load_through(target.clone(), cfg).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.histogram.value_at_quantile(0.5) >= 10_000_000, "p50 {} ns", r.histogram.value_at_quantile(0.5));
    assert!(analysis::invalid_reason(&r.into_sample(), &[]).is_none(), "a slow server is still a measurement");
    proxy.set_latency(Duration::ZERO);

    // A stall in the middle of the window: the run gives up on the stuck queries instead of
    // hanging, keeps what came before, and the sample is not a measurement.
    let mut cfg = LoadConfig::closed(2, Duration::from_millis(50), Duration::from_millis(600));
    cfg.give_up_after = Some(Duration::from_millis(300));
    let p = std::sync::Arc::new(proxy);
    let stall = {
        let p = p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            p.set_stalled(true);
        })
    };
    let started = std::time::Instant::now();
    let r = load_through(target.clone(), cfg).await;
    stall.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "a stall must not hang the run");
    assert_eq!(r.errors.get(UNFINISHED), Some(&2), "{:?}", r.errors);
    assert!(r.ok > 0, "what was measured before the stall is kept");
    let why = analysis::invalid_reason(&r.into_sample(), &[]).expect("a stalled sample is invalid");
    assert!(why.contains("never finished"), "{why}");
    p.set_stalled(false);

    // A reset in the middle of the window: every later call fails at once; those failures
    // are counted by kind, never timed, and the sample is invalid.
    let cfg = LoadConfig::closed(2, Duration::from_millis(50), Duration::from_millis(500));
    let reset = {
        let p = p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            p.reset_all();
        })
    };
    let r = load_through(target, cfg).await;
    reset.await.unwrap();
    let errors: u64 = r.errors.values().sum();
    assert!(errors > 0, "the reset is seen: {:?}", r.errors);
    assert_eq!(r.histogram.len(), r.ok, "failures have no latency");
    assert!(analysis::invalid_reason(&r.into_sample(), &[]).is_some());
}

/// A Redis experiment: GET in a closed loop, two variants that do the same thing.
struct Gets;

impl Experiment for Gets {
    fn meta(&self) -> Meta {
        Meta {
            id: "gets",
            title: "GET",
            guide_section: "-",
            claim: "-",
            variants: vec![Variant::new("a", "GET"), Variant::new("b", "GET").tests_claim()],
            sweep: Sweep::numeric("clients", "", &[1.0], &[1.0]),
            primary_metric: MetricInfo::new("ops_per_sec", "ops/s", harness::Better::Higher, ""),
            needs: Needs::REDIS,
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }
}

impl Run for Gets {
    fn run<'a>(&'a self, ctx: &'a RunCtx, _at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            struct Get(redis::aio::MultiplexedConnection);
            impl Worker for Get {
                async fn call(&mut self) -> Result<(), OpError> {
                    redis::cmd("GET")
                        .arg("k")
                        .query_async::<Option<String>>(&mut self.0)
                        .await
                        .map(|_| ())
                        .map_err(|e| OpError::from_error(&e))
                }
            }
            let client = ctx.env.redis()?.client()?;
            let report = load::run(&ctx.settings.closed_loop(2), &ctx.probe, move |_| {
                let c = client.clone();
                async move { Ok(Get(c.get_multiplexed_async_connection().await?)) }
            })
            .await?;
            Ok(report.into_sample())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_mid_sample_fails_the_experiment_with_the_cause() {
    let mut ctx = RunCtx::for_tests(false, true, &[]).await.expect("redis starts");
    ctx.settings.repetitions = 4;
    ctx.settings.duration = Duration::from_millis(400);
    ctx.settings.warmup = Duration::from_millis(50);
    let redis_pid = ctx.env.redis.as_ref().and_then(|r| r.pid).expect("a local redis");
    // Two repetitions in (4 samples of ~0.45 s), kill the server.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1100));
        // SAFETY: killing the redis-server this test's provisioning started.
        unsafe {
            libc::kill(redis_pid as libc::pid_t, libc::SIGKILL);
        }
    });
    let result = runner::run_experiment(&Gets, &ctx, &|_| {}).await;
    killer.join().unwrap();
    let ExperimentStatus::Failed { error } = &result.status else {
        panic!("the experiment should have failed: {:?}", result.status);
    };
    assert!(error.contains("redis"), "the cause names the server: {error}");
    // Samples before the kill are measurements; the one it hit is kept, invalid; no verdict
    // rests on it.
    assert!(result.samples.iter().any(|s| s.invalid.is_none()), "earlier samples are kept");
    for p in &result.analysis {
        for v in &p.variants {
            let valid = result.samples.iter().filter(|s| s.variant == v.variant && s.invalid.is_none()).count();
            assert_eq!(v.n, valid);
        }
        for c in &p.comparisons {
            assert!(matches!(c.verdict, VerdictKind::Inconclusive | VerdictKind::Missing), "{}", c.sentence);
        }
    }
    assert!(ctx.env.health().await.is_err(), "the health check sees the dead server");
}
