//! How long a fresh ephemeral Postgres + Redis pair takes to start (and to stop), a few times
//! over: the first start may build the cached initdb template, the later ones copy it.
//!
//! `cargo run --release -p harness --example start_time [N] [local|docker]` (docker: the images
//! of `PERFLAB_PG_IMAGE` / `PERFLAB_REDIS_IMAGE`, else the pinned official tags)

use harness::provision::{provision, Provider, Request};
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let provider: Provider =
        std::env::args().nth(2).as_deref().unwrap_or("local").parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let mut starts = Vec::new();
    for i in 0..n {
        for (label, pg, redis) in [("postgres", true, false), ("redis", false, true)] {
            let req = Request { provider, need_postgres: pg, need_redis: redis, ..Request::default() };
            let t = Instant::now();
            let env = provision(&req).await?;
            let started = t.elapsed();
            let t = Instant::now();
            drop(env);
            let stopped = t.elapsed();
            println!(
                "run {}: {label:<8} ready in {:>6.0} ms, stopped and removed in {:>5.0} ms",
                i + 1,
                started.as_secs_f64() * 1e3,
                stopped.as_secs_f64() * 1e3
            );
            if i > 0 {
                starts.push((label, started.as_secs_f64()));
            }
        }
    }
    for label in ["postgres", "redis"] {
        let v: Vec<f64> = starts.iter().filter(|s| s.0 == label).map(|s| s.1 * 1e3).collect();
        if let Some(max) = v.iter().cloned().reduce(f64::max) {
            println!(
                "{label}: after the first start, median {:.0} ms, max {:.0} ms",
                harness::stats::median(&v).unwrap(),
                max
            );
        }
    }
    Ok(())
}
