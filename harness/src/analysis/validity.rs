//! Whether a sample is a measurement: the rules that keep a sample out of every verdict
//! (failed or timed-out operations, a harness that paced late), kept and shown with its
//! reason; and a starved worker, told apart and recorded, not dropped.

use crate::results::{fmt_num, Sample};

/// The largest share of failed operations a sample may have and still be a measurement. Above
/// it the sample is invalid: kept in results.json and shown with its errors, never in a
/// verdict. One failure in a hundred already means the system measured is not the one the
/// technique meant (a dead or overloaded server, exhausted ports), whatever the latencies say.
pub const MAX_ERROR_RATE: f64 = 0.01;

/// Why `sample` must not enter a verdict, if it must not, checked in this order: the harness
/// paced its requests late (`pacing_invalid`); an operation
/// never finished; an operation timed out (however rare: its latency is unknown and large);
/// more failed operations than `MAX_ERROR_RATE` allows (successes counted from its `ok`
/// metric, or else its latency histogram's count). Errors of the kinds in `outcomes` (the
/// experiment's `outcome_errors`) are the technique's result, not the measurement's failure:
/// they count only when the sample has no success at all.
pub fn invalid_reason(sample: &Sample, outcomes: &[String]) -> Option<String> {
    if let Some(why) = pacing_invalid(sample) {
        return Some(why);
    }
    let all: u64 = sample.errors.values().sum();
    if all == 0 {
        return None;
    }
    let errors: u64 =
        sample.errors.iter().filter(|(kind, _)| !outcomes.iter().any(|o| o == *kind)).map(|(_, &n)| n).sum();
    if let Some(n) = sample.errors.get(crate::results::UNFINISHED) {
        return Some(format!(
            "{n} operation(s) never finished: their latency is unknown, so no latency or rate of this sample is one"
        ));
    }
    // A timed-out operation took longer than its client would wait: its latency is unknown and
    // large, so leaving it out would flatter the sample however few there are.
    let timed_out: u64 = sample
        .errors
        .iter()
        .filter(|(kind, _)| !outcomes.iter().any(|o| o == *kind) && is_timeout(kind))
        .map(|(_, &n)| n)
        .sum();
    if timed_out > 0 {
        let kind = sample.errors.keys().find(|k| !outcomes.iter().any(|o| o == *k) && is_timeout(k)).cloned();
        return Some(format!(
            "{timed_out} operation(s) timed out ({}): their latency is unknown, so no latency or rate of this sample is one",
            kind.unwrap_or_default()
        ));
    }
    let ok = sample
        .metrics
        .get("ok")
        .map(|&v| v.max(0.0) as u64)
        .or_else(|| sample.latency.as_ref().map(|l| l.count))
        .unwrap_or(0);
    let most_often = || {
        let (kind, n) = sample.errors.iter().max_by_key(|(_, &n)| n).map(|(k, &n)| (k.as_str(), n)).unwrap_or(("", 0));
        format!("most often ({n}×): {kind}")
    };
    if ok == 0 && errors < all {
        return Some(format!("all {all} operations failed, none succeeded; {}", most_often()));
    }
    let rate = errors as f64 / (ok + errors) as f64;
    if rate <= MAX_ERROR_RATE {
        return None;
    }
    Some(format!(
        "{errors} of {} operations failed ({}%, more than the {}% a measurement allows); {}",
        ok + errors,
        fmt_num(rate * 100.0),
        fmt_num(MAX_ERROR_RATE * 100.0),
        most_often(),
    ))
}

/// Whether one of a load sample's workers was starved: it measured under `STARVED_SHARE` of the
/// workers' mean, where the mean is large enough (≥ 100 operations) for that to be starvation
/// rather than a few long operations. Not a reason to drop the sample: the engine yields (its
/// tests show a never-waiting worker beside a waiting one both getting turns), so what is left
/// is the technique's own fairness (a pool that serves its waiters out of order: bb8, which
/// redis-pool once used, starved one at 128 clients); the runner records it as an observation
/// beside the sample.
pub fn starvation(sample: &Sample) -> Option<String> {
    use crate::results::WORKER_OPS_MIN_SHARE;
    let share = *sample.metrics.get(WORKER_OPS_MIN_SHARE)?;
    let (min, max) = (sample.metrics.get("worker_ops_min")?, sample.metrics.get("worker_ops_max")?);
    let workers = sample.metrics.get("workers").copied().unwrap_or(1.0).max(1.0);
    let mean = if share > 0.0 { min / share } else { max / workers };
    (mean >= 100.0 && share < STARVED_SHARE).then(|| {
        format!(
            "one worker measured {} operations where the workers' mean was {} (the busiest {})",
            fmt_num(*min),
            fmt_num(mean),
            fmt_num(*max)
        )
    })
}

/// Paced arrivals a sample needs before its 99th percentile of lateness is judged.
pub const MIN_PACED_FOR_P99: f64 = 1000.0;

/// The share of the workers' mean operations under which a worker counts as starved.
pub const STARVED_SHARE: f64 = 0.01;

/// An error kind that says the client gave up waiting: "timed out" (std, redis-rs, reqwest),
/// "deadline exceeded" / "deadline has elapsed" (gRPC, tokio), "timeout expired". A kind
/// that merely names a setting (`statement_timeout`) is not one.
fn is_timeout(kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    ["timed out", "deadline exceeded", "deadline has elapsed", "timeout expired"].iter().any(|t| k.contains(t))
}

/// Why an open-loop sample measured the harness's own pacing rather than the service: its
/// lateness (`PACING_P50`, `PACING_P99`) beyond `PACING_MAX_SHARE` of the latency at the same
/// percentile and beyond that percentile's floor (`PACING_FLOOR_US`, `PACING_P99_FLOOR_US`).
fn pacing_invalid(sample: &Sample) -> Option<String> {
    use crate::results::{PACING_FLOOR_US, PACING_MAX_SHARE, PACING_P50, PACING_P99, PACING_P99_FLOOR_US};
    for (pacing, latency, what, floor) in [
        (PACING_P50, "latency_p50_us", "median", PACING_FLOOR_US),
        (PACING_P99, "latency_p99_us", "99th percentile", PACING_P99_FLOOR_US),
    ] {
        let (Some(&late), Some(&lat)) = (sample.metrics.get(pacing), sample.metrics.get(latency)) else {
            continue;
        };
        // A 99th percentile of a few hundred arrivals is their third-worst: judged from 1000.
        if pacing == PACING_P99 && sample.metrics.get("pacing_paced").is_some_and(|&n| n < MIN_PACED_FOR_P99) {
            continue;
        }
        let limit = (PACING_MAX_SHARE * lat).max(floor);
        if late > limit {
            return Some(format!(
                "the harness sent requests late: pacing lateness at the {what} {} µs, over the {} µs allowed \
                 ({}% of the {} µs latency, at least {} µs): this sample measured the harness, not the service",
                fmt_num(late),
                fmt_num(limit),
                fmt_num(PACING_MAX_SHARE * 100.0),
                fmt_num(lat),
                fmt_num(floor),
            ));
        }
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A load sample of `variant` with a p50 of `v`, `ok` successes and `errors` failures.
    pub(crate) fn sample(variant: &str, rep: u32, v: f64, ok: f64, errors: u64) -> Sample {
        let mut s = Sample { variant: variant.into(), point: "1".into(), repetition: rep, ..Sample::default() };
        s.metrics.insert("latency_p50_us".into(), v);
        s.metrics.insert("ok".into(), ok);
        if errors > 0 {
            s.errors.insert("connection closed".into(), errors);
        }
        s
    }

    #[test]
    fn error_rate_threshold_decides_validity() {
        assert_eq!(invalid_reason(&sample("a", 0, 1.0, 1000.0, 0), &[]), None);
        assert_eq!(invalid_reason(&sample("a", 0, 1.0, 990.0, 10), &[]), None, "exactly 1 % is still a measurement");
        let why = invalid_reason(&sample("a", 0, 1.0, 980.0, 20), &[]).expect("2 % is not");
        assert!(why.contains("20 of 1000") && why.contains("connection closed"), "{why}");
        assert!(invalid_reason(&sample("a", 0, 1.0, 0.0, 271_674), &[]).is_some());
        // Errors that are the technique's outcome leave a sample with successes valid, not
        // one made of them alone.
        let outcome = vec!["connection closed".to_owned()];
        assert_eq!(invalid_reason(&sample("a", 0, 1.0, 600.0, 400), &outcome), None);
        let why = invalid_reason(&sample("a", 0, 1.0, 0.0, 400), &outcome).expect("no success at all");
        assert!(why.contains("none succeeded"), "{why}");
        assert!(invalid_reason(&sample("a", 0, 1.0, 600.0, 400), &["other".to_owned()]).is_some());
    }

    #[test]
    fn a_timeout_invalidates_a_sample_however_rare() {
        let mut s = sample("a", 0, 1.0, 100_000.0, 0);
        s.errors.insert("Response was of incompatible type: timed out".into(), 1);
        let why = invalid_reason(&s, &[]).expect("one timeout in 100 000 is enough");
        assert!(why.contains("timed out"), "{why}");
        // Unless a timeout is what the technique produces.
        assert_eq!(invalid_reason(&s, &["Response was of incompatible type: timed out".to_owned()]), None);
        let mut s = sample("a", 0, 1.0, 100_000.0, 0);
        s.errors.insert("connection reset".into(), 1);
        assert_eq!(invalid_reason(&s, &[]), None, "another rare error stays under the 1 % rule");
    }

    #[test]
    fn a_starved_worker_is_told_apart_but_keeps_its_sample() {
        use crate::results::WORKER_OPS_MIN_SHARE;
        let spread = |min: f64, max: f64, workers: f64| {
            let mut s = sample("a", 0, 1.0, 1000.0, 0);
            let mean = (min + max) / 2.0 + (workers - 2.0) * max / workers;
            s.metrics.insert("workers".into(), workers);
            s.metrics.insert("worker_ops_min".into(), min);
            s.metrics.insert("worker_ops_max".into(), max);
            s.metrics.insert(WORKER_OPS_MIN_SHARE.into(), min / mean);
            assert_eq!(invalid_reason(&s, &[]), None, "kept");
            starvation(&s)
        };
        let why = spread(1.0, 1_901_770.0, 2.0).expect("1 operation beside 1.9 million");
        assert!(why.contains("one worker measured 1.00 operations"), "{why}");
        assert_eq!(spread(900.0, 1100.0, 2.0), None, "an ordinary spread");
        assert_eq!(spread(1.0, 3.0, 2.0), None, "a few long operations are not starvation");
    }

    #[test]
    fn a_sample_paced_late_is_invalid() {
        use crate::results::{PACING_P50, PACING_P99};
        let paced = |late50: f64, lat50: f64, late99: f64, lat99: f64| {
            let mut s = sample("a", 0, lat50, 1000.0, 0);
            s.metrics.insert("latency_p50_us".into(), lat50);
            s.metrics.insert("latency_p99_us".into(), lat99);
            s.metrics.insert(PACING_P50.into(), late50);
            s.metrics.insert(PACING_P99.into(), late99);
            invalid_reason(&s, &[])
        };
        assert_eq!(paced(8.0, 200.0, 30.0, 900.0), None, "under the floor");
        assert_eq!(paced(90.0, 1000.0, 300.0, 5000.0), None, "under 10 % of the latency");
        assert_eq!(paced(36.0, 120.0, 170.0, 300.0), None, "the timer's own wake-up on an idle machine");
        let why = paced(800.0, 1500.0, 900.0, 2000.0).expect("the timer's millisecond is not the service's");
        assert!(why.contains("median") && why.contains("harness"), "{why}");
        let why = paced(10.0, 1500.0, 900.0, 2000.0).expect("a late tail too");
        assert!(why.contains("99th"), "{why}");
        // A closed-loop sample has no pacing and is never judged on it.
        assert_eq!(invalid_reason(&sample("a", 0, 1.0, 1000.0, 0), &[]), None);
    }
}
