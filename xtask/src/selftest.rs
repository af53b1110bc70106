//! The gate's own trial: two experiments whose answers are known, for `cargo xtask selftest`.
//! `selftest` runs through the micro engine: variant `a-again` is the very routine `a` is
//! (A/A: any verdict is a false positive); `plus-5pct` and `plus-10pct` do 5 % and 10 % more
//! of the same work inside the timed call (a known slowdown the verdicts should find).
//! `selftest-load` runs through the load engine: a Redis GET in a closed loop, the slower
//! variants stretched by 5 % to 80 % of each GET's own time with `harness::inject` (the
//! `inject_slowdown` knob's machinery), so the smallest slowdown found 80 % of the time, the
//! load engine's minimum detectable effect on this machine, can be read off. Each sweep point
//! is one independent comparison, so 20 points give the rates of 20 trials.

use harness::experiment::{BoxFuture, Run, RunCtx};
use harness::results::Sample;
use harness::{load, names_of, pick, Engine, Experiment, Input, Meta, Needs, Routine, Routines, Sweep, Trial, Variant};

/// Words of the buffer one call of `a` hashes.
const WORDS: usize = 2048;

/// The variants and the extra work each does, per mille.
const VARIANTS: [(Variant, usize); 4] = [
    (Variant::new("a", "the reference routine: hashing a buffer of 2048 words"), 0),
    (
        Variant::new("a-again", "the very same routine: A/A, any verdict is a false positive")
            .compared_with("a")
            .tests_claim_keeps_up(),
        0,
    ),
    (Variant::new("plus-5pct", "the same routine with 5 % more of the same work").compared_with("a"), 50),
    (Variant::new("plus-10pct", "the same routine with 10 % more of the same work").compared_with("a"), 100),
];

/// Independent comparisons, one per sweep point.
pub const COMPARISONS: usize = 20;

pub struct SelfTest;

impl Experiment for SelfTest {
    fn meta(&self) -> Meta {
        let points: Vec<f64> = (1..=COMPARISONS).map(|i| i as f64).collect();
        Meta {
            id: "selftest",
            title: "The gate's own trial: false positives and detected slowdowns",
            guide_section: "-",
            claim: "A verdict of the micro engine is a false positive at most 5 % of the time and finds a 5 % slowdown at least 80 % of the time.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("comparison", "", &points, &points),
            primary_metric: harness::micro::time_metric(),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }
}

impl Routines for SelfTest {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let extra = pick(&VARIANTS, at.variant)?;
        let words = WORDS * (1000 + extra) / 1000;
        let buf: Vec<u64> = (0..words as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        Ok(Routine::new(buf, |buf| buf.iter().fold(0u64, |h, w| (h ^ w).wrapping_mul(0x0100_0000_01B3))))
    }
}

/// The load engine's variants and the slowdown each gets, per mille of a GET's own time.
pub const LOAD_VARIANTS: [(Variant, u32); 7] = [
    (Variant::new("a", "a Redis GET of a 200-byte value, one client, closed loop"), 0),
    (
        Variant::new("a-again", "the very same GET: A/A, any verdict is a false positive")
            .compared_with("a")
            .tests_claim_keeps_up(),
        0,
    ),
    (Variant::new("plus-5pct", "each GET stretched by 5 % of its own time (busy work)").compared_with("a"), 50),
    (Variant::new("plus-10pct", "each GET stretched by 10 %").compared_with("a"), 100),
    (Variant::new("plus-20pct", "each GET stretched by 20 %").compared_with("a"), 200),
    (Variant::new("plus-40pct", "each GET stretched by 40 %").compared_with("a"), 400),
    (Variant::new("plus-80pct", "each GET stretched by 80 %").compared_with("a"), 800),
];

const LOAD_ID: &str = "selftest-load";

pub struct SelfTestLoad;

fn load_key() -> String {
    format!("{}value", harness::kit::redis_util::prefix(LOAD_ID))
}

impl Experiment for SelfTestLoad {
    fn meta(&self) -> Meta {
        let points: Vec<f64> = (1..=COMPARISONS).map(|i| i as f64).collect();
        Meta {
            id: LOAD_ID,
            title: "The gate's own trial, load engine: false positives and the smallest slowdown found",
            guide_section: "-",
            claim: "A verdict of the load engine is a false positive at most 5 % of the time; the smallest slowdown it finds 80 % of the time is its minimum detectable effect.",
            variants: names_of(&LOAD_VARIANTS),
            sweep: Sweep::numeric("comparison", "", &points, &points),
            primary_metric: load::latency_p50("a GET"),
            metrics: vec![load::throughput("GETs/s", "GETs per second")],
            needs: Needs::REDIS,
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Load(self)
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis::cmd("SET").arg(load_key()).arg("x".repeat(200)).query_async::<()>(&mut con).await?;
            Ok(())
        })
    }
}

impl Run for SelfTestLoad {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let extra = f64::from(pick(&LOAD_VARIANTS, at.variant)?) / 1000.0;
            let client = ctx.env.redis()?.client()?;
            // The known slowdown, through the same machinery as `--set …inject_slowdown`.
            harness::inject::activate(extra);
            let report = load::run(&ctx.settings.closed_loop(1), &ctx.probe, move |_| {
                let client = client.clone();
                async move { Ok(harness::kit::redis_util::GetWorker::connect(&client, &load_key()).await?) }
            })
            .await;
            harness::inject::deactivate();
            Ok(report?.into_sample())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routine_builds_and_the_slow_ones_do_more_of_the_same_work() {
        assert_eq!(harness::testing::routines_build(&SelfTest).unwrap(), 4 * COMPARISONS * 2);
        assert_eq!(pick(&VARIANTS, "a").unwrap(), pick(&VARIANTS, "a-again").unwrap());
        assert_eq!(WORDS * (1000 + pick(&VARIANTS, "plus-5pct").unwrap()) / 1000, WORDS * 105 / 100);
        assert_eq!(WORDS * (1000 + pick(&VARIANTS, "plus-10pct").unwrap()) / 1000, WORDS * 110 / 100);
    }
}
