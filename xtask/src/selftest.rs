//! The gate's own trial: an in-process experiment whose answer is known, for `cargo xtask
//! selftest`. Variant `a-again` is the very routine `a` is (A/A: any verdict is a false
//! positive); `plus-5pct` and `plus-10pct` do 5 % and 10 % more of the same work inside the
//! timed call (a known slowdown the verdicts should find). Each sweep point is one independent
//! comparison, so 20 points give the false-positive and detection rates of 20 trials.

use harness::{names_of, pick, Engine, Experiment, Input, Meta, Needs, Routine, Routines, Sweep, Trial, Variant};

/// Words of the buffer one call of `a` hashes.
const WORDS: usize = 2048;

/// The variants and the extra work each does, per mille.
const VARIANTS: [(Variant, usize); 4] = [
    (Variant::new("a", "the reference routine: hashing a buffer of 2048 words"), 0),
    (
        Variant::new("a-again", "the very same routine: A/A, any verdict is a false positive")
            .compared_with("a")
            .tests_claim(),
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
            cases: Vec::new(),
            sweep: Sweep::numeric("comparison", "", &points, &points),
            primary_metric: harness::micro::time_metric(),
            metrics: Vec::new(),
            needs: Needs::NONE,
            knobs: Vec::new(),
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
