//! The lab's own trial: experiments whose answers are known, for `cargo xtask selftest`.
//! Each experiment is one kind of comparison on one engine, repeated: every sweep point is an
//! independent comparison of variant `a` with a second variant, run in rounds and stopped by
//! the same sequential rule as any experiment, so the share of comparisons that reach each
//! verdict is the method's error rate or power at the user's settings.
//! - *A/A* (`selftest-<engine>-aa`): the second variant is the very same work, so any verdict
//!   of a difference is a false positive.
//! - *+2 %, +5 %, +10 %* (`selftest-<engine>-plus2`, …): the second variant does that much more
//!   of the same work inside the timed section, so a verdict "worse" is a detection.
//!
//! The micro engine hashes a buffer (the slower variants hash a longer one); the load engine
//! runs a Redis GET in a closed loop, the slower variants stretched by that share of each GET's
//! own time with `harness::inject` (the `inject_slowdown` knob's machinery).

use harness::experiment::{BoxFuture, Run, RunCtx};
use harness::results::Sample;
use harness::{load, Engine, Experiment, Input, Meta, Needs, Routine, Routines, Sweep, Trial, Variant};

/// Words of the buffer one call of the micro engine's `a` hashes.
const WORDS: usize = 2048;

/// The engines a selftest runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Micro,
    Load,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Micro => "micro",
            Kind::Load => "load",
        }
    }
}

/// The slowdowns whose detection is measured, per mille; 0 is the A/A comparison.
pub const SIZES: [u32; 4] = [0, 20, 50, 100];

/// One kind of comparison on one engine, `comparisons` times (one per sweep point).
pub struct SelfTest {
    kind: Kind,
    /// The second variant's extra work, per mille (0: A/A).
    extra: u32,
    id: &'static str,
    comparisons: usize,
}

impl SelfTest {
    pub fn new(kind: Kind, extra: u32, comparisons: usize) -> Self {
        let id = match (kind, extra) {
            (Kind::Micro, 0) => "selftest-micro-aa",
            (Kind::Micro, 20) => "selftest-micro-plus2",
            (Kind::Micro, 50) => "selftest-micro-plus5",
            (Kind::Micro, _) => "selftest-micro-plus10",
            (Kind::Load, 0) => "selftest-load-aa",
            (Kind::Load, 20) => "selftest-load-plus2",
            (Kind::Load, 50) => "selftest-load-plus5",
            (Kind::Load, _) => "selftest-load-plus10",
        };
        Self { kind, extra, id, comparisons: comparisons.max(1) }
    }

    /// The second variant's name: `a-again`, or `plus-5pct`.
    pub fn second(&self) -> &'static str {
        match self.extra {
            0 => "a-again",
            20 => "plus-2pct",
            50 => "plus-5pct",
            _ => "plus-10pct",
        }
    }

    /// The slowdown, per mille (0: A/A).
    pub fn extra(&self) -> u32 {
        self.extra
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn extra_of(&self, variant: &str) -> anyhow::Result<u32> {
        match variant {
            "a" => Ok(0),
            v if v == self.second() => Ok(self.extra),
            v => anyhow::bail!("{}: no variant {v:?}", self.id),
        }
    }
}

/// Every selftest of `kind`, the A/A one first, each with `comparisons` points.
pub fn family(kind: Kind, comparisons: usize) -> Vec<SelfTest> {
    SIZES.iter().map(|&extra| SelfTest::new(kind, extra, comparisons)).collect()
}

impl Experiment for SelfTest {
    fn meta(&self) -> Meta {
        let points: Vec<f64> = (1..=self.comparisons).map(|i| i as f64).collect();
        let reference = match self.kind {
            Kind::Micro => "the reference work: hashing a buffer of 2048 words",
            Kind::Load => "the reference work: a Redis GET of a 200-byte value, one client, closed loop",
        };
        let second = match (self.kind, self.extra) {
            (_, 0) => "the very same work: A/A, a verdict of a difference is a false positive",
            (Kind::Micro, 20) => "the same hashing over a 2 % longer buffer",
            (Kind::Micro, 50) => "the same hashing over a 5 % longer buffer",
            (Kind::Micro, _) => "the same hashing over a 10 % longer buffer",
            (Kind::Load, 20) => "each GET stretched by 2 % of its own time (busy work)",
            (Kind::Load, 50) => "each GET stretched by 5 % of its own time (busy work)",
            (Kind::Load, _) => "each GET stretched by 10 % of its own time (busy work)",
        };
        Meta {
            id: self.id,
            title: if self.extra == 0 {
                "The lab's own trial: false positives (A/A)"
            } else {
                "The lab's own trial: a known slowdown found"
            },
            guide_section: "-",
            claim: if self.extra == 0 {
                "A comparison of the same work with itself is called different at most 5 % of the time."
            } else {
                "A known slowdown is found (called worse) in at least 80 % of the comparisons."
            },
            variants: vec![
                Variant::new("a", reference),
                Variant::new(self.second(), second).compared_with("a").tests_claim(),
            ],
            sweep: Sweep::numeric("comparison", "", &points, &points),
            primary_metric: match self.kind {
                Kind::Micro => harness::micro::time_metric(),
                Kind::Load => load::latency_p50("a GET"),
            },
            metrics: match self.kind {
                Kind::Micro => Vec::new(),
                Kind::Load => vec![load::throughput("GETs/s", "GETs per second")],
            },
            needs: match self.kind {
                Kind::Micro => Needs::NONE,
                Kind::Load => Needs::REDIS,
            },
            independent_points: true,
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        match self.kind {
            Kind::Micro => Engine::Micro { routines: self, run: None },
            Kind::Load => Engine::Load(self),
        }
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if self.kind == Kind::Load {
                let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
                redis::cmd("SET").arg(load_key(self.id)).arg("x".repeat(200)).query_async::<()>(&mut con).await?;
            }
            Ok(())
        })
    }
}

impl Routines for SelfTest {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let extra = self.extra_of(at.variant)? as usize;
        let words = WORDS * (1000 + extra) / 1000;
        let buf: Vec<u64> = (0..words as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        Ok(Routine::new(buf, |buf| buf.iter().fold(0u64, |h, w| (h ^ w).wrapping_mul(0x0100_0000_01B3))))
    }
}

fn load_key(id: &str) -> String {
    format!("{}value", harness::kit::redis_util::prefix(id))
}

impl Run for SelfTest {
    fn run<'a>(&'a self, ctx: &'a RunCtx, at: Trial<'a>) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let extra = f64::from(self.extra_of(at.variant)?) / 1000.0;
            let client = ctx.env.redis()?.client()?;
            let key = load_key(self.id);
            // The known slowdown, through the same machinery as `--set …inject_slowdown`.
            harness::inject::activate(extra);
            let report = load::run(&ctx.settings.closed_loop(1), &ctx.probe, move |_| {
                let (client, key) = (client.clone(), key.clone());
                async move { Ok(harness::kit::redis_util::GetWorker::connect(&client, &key).await?) }
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
        for t in family(Kind::Micro, 3) {
            assert_eq!(harness::testing::routines_build(&t).unwrap(), 2 * 3 * 2, "{}", t.id);
            assert_eq!(t.extra_of("a").unwrap(), 0);
            assert_eq!(t.extra_of(t.second()).unwrap(), t.extra);
            assert!(t.extra_of("b").is_err());
        }
        let ids: Vec<&str> = family(Kind::Load, 1).iter().map(|t| t.id).collect();
        assert_eq!(ids, ["selftest-load-aa", "selftest-load-plus2", "selftest-load-plus5", "selftest-load-plus10"]);
        assert_eq!(WORDS * (1000 + 50) / 1000, WORDS * 105 / 100);
    }
}
