//! The open loop's arrival schedule, with an optional overload at the start of the measured
//! window, and the per-window tally that shows how a service recovers from it.

use super::Bursts;
use crate::results::{Overload, Timeline};
use std::time::Duration;
use tokio::time::Instant;

/// When arrival `k` of one global schedule is due: at the base rate from `t0`, at the
/// overload's rate from the start of the measured window for its duration, then at the base
/// rate again. Computed from `k`, never accumulated, so it does not drift.
pub(super) struct Schedule {
    t0: Instant,
    gap: Duration,
    /// (start, first arrival of the overload, its gap, how many arrivals it has)
    overload: Option<(Instant, u64, Duration, u64)>,
    bursts: Option<Bursts>,
}

impl Schedule {
    pub(super) fn new(
        t0: Instant,
        measure_start: Instant,
        rate_per_sec: f64,
        overload: Option<Overload>,
        bursts: Option<Bursts>,
    ) -> Self {
        let gap = Duration::from_secs_f64(1.0 / rate_per_sec.max(1e-9));
        let overload = overload.map(|o| {
            let before = (measure_start.saturating_duration_since(t0).as_secs_f64() / gap.as_secs_f64()).ceil() as u64;
            let count = (o.duration.as_secs_f64() * o.rate_per_sec).ceil() as u64;
            (measure_start, before, Duration::from_secs_f64(1.0 / o.rate_per_sec.max(1e-9)), count)
        });
        Self { t0, gap, overload, bursts }
    }

    pub(super) fn at(&self, k: u64) -> Instant {
        if let Some(b) = self.bursts {
            // Burst number k / size, all of its arrivals at its start.
            return self.t0 + b.period.mul_f64((k / u64::from(b.size)) as f64);
        }
        match self.overload {
            Some((start, first, ogap, count)) if k >= first => {
                if k < first + count {
                    start + ogap.mul_f64((k - first) as f64)
                } else {
                    start + ogap.mul_f64(count as f64) + self.gap.mul_f64((k - first - count) as f64)
                }
            }
            _ => self.t0 + self.gap.mul_f64(k as f64),
        }
    }
}

/// One worker's tally per window: [due, failed or over the limit]. Allocated before the clock
/// starts; empty without a timeline, when recording is one branch.
pub(super) struct Windows {
    origin: Instant,
    window_ns: u128,
    limit: Duration,
    counts: Vec<[u64; 2]>,
}

impl Windows {
    pub(super) fn new(spec: Option<Timeline>, origin: Instant, measured: Duration) -> Self {
        match spec {
            Some(t) if !t.window.is_zero() => Self {
                origin,
                window_ns: t.window.as_nanos(),
                limit: t.limit,
                counts: vec![[0, 0]; measured.as_nanos().div_ceil(t.window.as_nanos()) as usize],
            },
            _ => Self { origin, window_ns: 1, limit: Duration::ZERO, counts: Vec::new() },
        }
    }

    #[inline]
    pub(super) fn record(&mut self, due: Instant, end: Instant, ok: bool) {
        if self.counts.is_empty() {
            return;
        }
        let i = (due.saturating_duration_since(self.origin).as_nanos() / self.window_ns) as usize;
        if let Some(c) = self.counts.get_mut(i) {
            c[0] += 1;
            if !ok || end.saturating_duration_since(due) > self.limit {
                c[1] += 1;
            }
        }
    }

    /// Add this worker's tally to the run's.
    pub(super) fn add_to(&self, total: &mut Vec<[u64; 2]>) {
        if total.len() < self.counts.len() {
            total.resize(self.counts.len(), [0, 0]);
        }
        for (t, c) in total.iter_mut().zip(&self.counts) {
            t[0] += c[0];
            t[1] += c[1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_the_overload_then_the_base_rate_again() {
        let t0 = Instant::now();
        let start = t0 + Duration::from_secs(1);
        let plain = Schedule::new(t0, start, 100.0, None, None);
        assert_eq!(plain.at(250), t0 + Duration::from_millis(2500));
        let o = Overload { rate_per_sec: 1000.0, duration: Duration::from_secs(1) };
        let s = Schedule::new(t0, start, 100.0, Some(o), None);
        // 100 arrivals of warm-up at 100/s, 1000 in the overload's second, then 100/s again.
        assert_eq!(s.at(99), t0 + Duration::from_millis(990));
        assert_eq!(s.at(100), start);
        assert_eq!(s.at(600), start + Duration::from_millis(500));
        assert_eq!(s.at(1100), start + Duration::from_secs(1));
        assert_eq!(s.at(1150), start + Duration::from_millis(1500));
        let due: Vec<Instant> = (0..2000).map(|k| s.at(k)).collect();
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "arrivals in order");
    }

    #[test]
    fn bursts_put_each_bursts_arrivals_at_its_start() {
        let t0 = Instant::now();
        let b = Bursts { size: 4, period: Duration::from_millis(50) };
        let s = Schedule::new(t0, t0, 80.0, None, Some(b));
        let due: Vec<Duration> = (0..9).map(|k| s.at(k) - t0).collect();
        let ms = Duration::from_millis;
        assert_eq!(due, [ms(0), ms(0), ms(0), ms(0), ms(50), ms(50), ms(50), ms(50), ms(100)]);
    }

    #[test]
    fn windows_count_the_due_and_the_late_or_failed() {
        let origin = Instant::now();
        let spec = Timeline { window: Duration::from_millis(100), limit: Duration::from_millis(10) };
        let mut w = Windows::new(Some(spec), origin, Duration::from_millis(300));
        let at = |ms: u64| origin + Duration::from_millis(ms);
        w.record(at(5), at(6), true); // window 0, fast
        w.record(at(50), at(70), true); // window 0, late
        w.record(at(150), at(151), false); // window 1, failed
        w.record(at(250), at(251), true); // window 2
        w.record(at(350), at(351), true); // past the window: not counted
        let mut total = Vec::new();
        w.add_to(&mut total);
        w.add_to(&mut total);
        assert_eq!(total, vec![[4, 2], [2, 2], [2, 0]]);
        let mut none = Windows::new(None, origin, Duration::from_millis(300));
        none.record(at(5), at(6), true);
        let mut total = Vec::new();
        none.add_to(&mut total);
        assert!(total.is_empty());
    }
}
