//! The open loop's own lateness: a worker whose operation does nothing, paced at a fixed
//! arrival rate, so every microsecond of latency recorded is the harness's (the timer's
//! wake-up, the runtime, the clock reads). The recorded p50 must stay far below what the lab
//! measures (a loopback Redis GET ≈ 55 µs; the target is ≤ 50 µs at 10 000 arrivals/s).
//!
//! `cargo run --release -p harness --example pacing [RATE] [WORKERS] [SECONDS]`
//! (defaults 10000, 1 and 5; three runs through the engine, one line each, then three of the
//! same schedule on tokio's timer, as the engine paced before, for comparison)

use harness::load::{self, LoadConfig, OpError, Worker, PACING_P50, PACING_P99};
use harness::resources::Probe;
use std::time::Duration;

struct Noop;

impl Worker for Noop {
    async fn call(&mut self) -> Result<(), OpError> {
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: f64| -> anyhow::Result<f64> {
        Ok(std::env::args().nth(i).map(|s| s.parse()).transpose()?.unwrap_or(default))
    };
    let (rate, workers, secs) = (arg(1, 10_000.0)?, arg(2, 1.0)? as u32, arg(3, 5.0)?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let probe = Probe::default();
    println!("open loop, a no-op operation, {rate} arrivals/s over {workers} worker(s), {secs} s per run");
    for run in 1..=3 {
        let cfg = LoadConfig::open(workers, rate, Duration::from_millis(500), Duration::from_secs_f64(secs));
        let report = rt.block_on(load::run(&cfg, &probe, |_| async { Ok(Noop) }))?;
        let h = &report.histogram;
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        let cpu = report.resources.harness_cpu_s / report.resources.wall_s.max(1e-9);
        let sample = report.clone().into_sample();
        println!(
            "run {run}: {} arrivals; recorded latency p50 {:.1} µs, p90 {:.1}, p99 {:.1}, max {:.1}; \
             pacing lateness p50 {:.1} µs, p99 {:.1}; harness CPU {:.0} % of a core",
            h.len(),
            q(0.50),
            q(0.90),
            q(0.99),
            h.max() as f64 / 1000.0,
            sample.metrics.get(PACING_P50).copied().unwrap_or(f64::NAN),
            sample.metrics.get(PACING_P99).copied().unwrap_or(f64::NAN),
            cpu * 100.0,
        );
    }
    // What the engine did before: tokio's timer (millisecond ticks), the same schedule.
    for run in 1..=3 {
        let (lateness, n) = rt.block_on(async {
            let gap = Duration::from_secs_f64(1.0 / rate);
            let start = tokio::time::Instant::now() + Duration::from_millis(5);
            let mut h = load::new_histogram();
            let n = (secs * rate) as u64;
            for k in 0..n {
                let due = start + gap.mul_f64(k as f64);
                if due > tokio::time::Instant::now() {
                    tokio::time::sleep_until(due).await;
                }
                h.saturating_record(tokio::time::Instant::now().duration_since(due).as_nanos() as u64);
            }
            (h, n)
        });
        let q = |p: f64| lateness.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "tokio timer, run {run}: {n} arrivals; recorded latency of a no-op p50 {:.1} µs, p90 {:.1}, p99 {:.1}",
            q(0.5),
            q(0.9),
            q(0.99)
        );
    }
    Ok(())
}
