//! The harness measured by itself, with divan: what the load engine puts around every
//! operation (clock reads, the histogram, the closed and open loops' bookkeeping) and the
//! statistics every comparison computes, at the sample sizes a run uses.
//!
//! `cargo bench -p harness --bench engine`. The loops run a worker whose operation does
//! nothing, so all they measure is the engine: the per-operation overhead is the difference
//! between two operation counts divided by the difference in operations (which removes the
//! run's fixed cost: threads, runtime, the 5 ms start). The allocation profiler's counts are
//! the same at both counts: the measured loop allocates nothing per operation.

use divan::counter::ItemsCount;
use divan::{AllocProfiler, Bencher};
use harness::load::{self, LoadConfig, OpError, Worker};
use harness::resources::Probe;
use std::time::Duration;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// A worker whose operation does nothing: what is measured is the engine's own cost.
struct Noop;

impl Worker for Noop {
    async fn call(&mut self) -> Result<(), OpError> {
        Ok(())
    }
}

/// One worker on one thread doing `ops` operations in `config`'s mode, start to end.
fn engine_run(b: Bencher, config: LoadConfig, ops: u64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let probe = Probe::default();
    b.counter(ItemsCount::new(ops)).bench_local(|| {
        let mut cfg = config;
        cfg.max_ops_per_worker = Some(ops);
        cfg.threads = Some(1);
        let report = rt.block_on(load::run(&cfg, &probe, |_| async { Ok(Noop) })).expect("the run");
        assert_eq!(report.ok, ops);
        report
    });
}

/// The closed loop: clock read, call, clock read, record, per operation.
#[divan::bench(args = [200_000, 2_000_000], sample_count = 10)]
fn closed_loop(b: Bencher, ops: u64) {
    engine_run(b, LoadConfig::closed(1, Duration::ZERO, Duration::from_secs(600)), ops);
}

/// The open loop at a rate no worker can keep (every arrival already due): the schedule's
/// arithmetic, the call, a clock read and the record, per operation.
#[divan::bench(args = [200_000, 2_000_000], sample_count = 10)]
fn open_loop(b: Bencher, ops: u64) {
    engine_run(b, LoadConfig::open(1, 1e12, Duration::ZERO, Duration::from_secs(600)), ops);
}

/// Pieces of the per-operation path, alone.
mod per_operation {
    use super::*;

    #[divan::bench]
    fn clock_read() -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// One latency into the run's histogram (3 significant digits, 1 ns to the engine's cap).
    #[divan::bench]
    fn histogram_record(b: Bencher) {
        let mut h = load::new_histogram();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        b.bench_local(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            h.saturating_record(divan::black_box(20_000 + (x >> 50)));
        });
    }
}

/// The statistics of one comparison, at the repetitions a run takes (quick 4, full 5, and
/// more): the bootstrap CI of a ratio of medians (4000 resamples) and the U test.
mod statistics {
    use super::*;
    use harness::stats;

    fn samples(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = stats::SplitMix64::new(seed);
        (0..n).map(|_| 100.0 + 10.0 * rng.next_f64()).collect()
    }

    #[divan::bench(args = [4, 5, 10, 20])]
    fn bootstrap_ratio_ci(b: Bencher, n: usize) {
        let (a, c) = (samples(n, 1), samples(n, 2));
        b.bench_local(|| stats::bootstrap_ratio_ci(&a, &c, 0.95, 4000, 7));
    }

    #[divan::bench(args = [4, 5, 10, 20])]
    fn mann_whitney_u(b: Bencher, n: usize) {
        let (a, c) = (samples(n, 1), samples(n, 2));
        b.bench_local(|| stats::mann_whitney_u(&a, &c));
    }
}
