//! `--set EXP.inject_slowdown=P%` (or `VARIANT:P%`): a known slowdown, for proving that the
//! lab's comparisons see one. Calibrated busy work is added inside the timed section of every
//! measured operation (the load engine's) or call (the micro engine's timing worker): each
//! takes P % longer than it took by itself. Off by default; a knob of every experiment; the
//! run's notes say where it was applied.

use crate::results::Settings;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The knob's name, valid for every experiment.
pub const KNOB: &str = "inject_slowdown";

/// What the knob's help says.
pub const DOC: &str = "adds busy work inside the timed section: P% (every variant) or VARIANT:P% (one); off by default";

/// A parsed `inject_slowdown` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Slowdown {
    /// Only this variant is slowed; `None`: every variant.
    pub variant: Option<String>,
    /// Extra time as a fraction of the operation's own time (0.2 for `20%`).
    pub fraction: f64,
}

/// Parse `P%` or `VARIANT:P%`, with 0 < P ≤ 1000; the error is one line for the user.
pub fn parse(experiment: &str, raw: &str) -> Result<Slowdown, String> {
    let bad = |why: &str| format!("--set {experiment}.{KNOB}={raw}: {why} (e.g. 20% or guide:20%)");
    let (variant, pct) = match raw.rsplit_once(':') {
        Some((v, p)) if !v.trim().is_empty() => (Some(v.trim().to_owned()), p),
        Some(_) => return Err(bad("the variant before ':' is empty")),
        None => (None, raw),
    };
    let number = pct.trim().strip_suffix('%').ok_or_else(|| bad("expected a percentage"))?;
    let p: f64 = number.trim().parse().map_err(|_| bad("expected a percentage"))?;
    if !(p.is_finite() && p > 0.0 && p <= 1000.0) {
        return Err(bad("the percentage must be above 0 and at most 1000"));
    }
    Ok(Slowdown { variant, fraction: p / 100.0 })
}

/// The slowdown `settings` ask for in `experiment`, as a fraction, for `variant` (0: none).
pub fn for_trial(settings: &Settings, experiment: &str, variant: &str) -> f64 {
    let specific = format!("{experiment}.{KNOB}");
    let Some(raw) = settings.sets.get(&specific).or_else(|| settings.sets.get(KNOB)) else {
        return 0.0;
    };
    match parse(experiment, raw) {
        Ok(s) if s.variant.as_deref().is_none_or(|v| v == variant) => s.fraction,
        _ => 0.0,
    }
}

/// The slowdown of the trial running in this process (f64 bits; one trial runs at a time), and
/// how many operations it was applied to.
static ACTIVE: AtomicU64 = AtomicU64::new(0);
static APPLIED: AtomicU64 = AtomicU64::new(0);

/// Make `fraction` the slowdown of the trial about to run (0: none); resets the count.
pub fn activate(fraction: f64) {
    ACTIVE.store(fraction.max(0.0).to_bits(), Ordering::SeqCst);
    APPLIED.store(0, Ordering::SeqCst);
}

/// The trial is over: nothing more is slowed (the count stays readable until the next one).
pub fn deactivate() {
    ACTIVE.store(0f64.to_bits(), Ordering::SeqCst);
}

/// The slowdown of the running trial (read once, before a timed loop starts).
pub fn active() -> f64 {
    f64::from_bits(ACTIVE.load(Ordering::SeqCst))
}

/// Count `n` operations slowed (once per loop, outside its timed section).
pub fn applied(n: u64) {
    APPLIED.fetch_add(n, Ordering::Relaxed);
}

/// How many operations the running trial slowed so far.
pub fn applied_count() -> u64 {
    APPLIED.load(Ordering::SeqCst)
}

/// Spin until `end + fraction × (end − start)`: the operation that ran from `start` to `end`
/// now took `1 + fraction` times as long. Returns the new end. Busy work, not a sleep: it
/// holds the CPU as slower code would.
#[inline]
pub fn stretch(start: Instant, end: Instant, fraction: f64) -> Instant {
    let until = end + end.saturating_duration_since(start).mul_f64(fraction);
    let mut now = Instant::now();
    while now < until {
        std::hint::spin_loop();
        now = Instant::now();
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn values_parse_or_say_what_is_wrong() {
        assert_eq!(parse("x", "20%").unwrap(), Slowdown { variant: None, fraction: 0.2 });
        assert_eq!(parse("x", " guide : 5.5% ").unwrap(), Slowdown { variant: Some("guide".into()), fraction: 0.055 });
        for bad in ["20", "abc%", "0%", "-5%", "2000%", ":20%", "nan%"] {
            let e = parse("x", bad).unwrap_err();
            assert!(e.starts_with("--set x.inject_slowdown="), "{bad}: {e}");
        }
    }

    #[test]
    fn a_trial_gets_the_slowdown_meant_for_it() {
        let mut s = Settings::quick_for_tests();
        assert_eq!(for_trial(&s, "e", "a"), 0.0);
        s.sets.insert("e.inject_slowdown".into(), "b:10%".into());
        assert_eq!(for_trial(&s, "e", "a"), 0.0);
        assert_eq!(for_trial(&s, "e", "b"), 0.1);
        assert_eq!(for_trial(&s, "f", "b"), 0.0);
        s.sets.insert("inject_slowdown".into(), "30%".into());
        assert_eq!(for_trial(&s, "f", "b"), 0.3, "a bare key applies to every experiment");
        assert_eq!(for_trial(&s, "e", "a"), 0.0, "the experiment's own key wins");
    }

    #[test]
    fn stretch_adds_the_fraction_of_the_operations_own_time() {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let end = Instant::now();
        let stretched = stretch(start, end, 0.5);
        let own = end - start;
        let added = stretched - end;
        assert!(added >= own.mul_f64(0.5), "{added:?} of {own:?}");
        assert!(added < own.mul_f64(0.5) + Duration::from_millis(50), "{added:?} of {own:?}");
    }
}
