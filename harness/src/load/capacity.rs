//! Capacity search and stress (the guide's test pyramid past its first level): the highest
//! arrival rate a variant sustains within a target, found by an open-loop step-up from a low
//! rate until a limit breaks, then a bisection between the last rate that held and the first
//! that broke; then what happens beyond it (1.5× and 2× the capacity).
//!
//! A rate holds when its sample's successes keep up with the arrivals (at least
//! `Limits::keep_up` of them), its p95 latency (from each request's intended start, so a queue
//! shows) stays under the limit, and its errors under `Limits::max_error_rate`. The search is
//! generic over how a rate is measured: the runner measures an experiment's trial at that
//! rate, the tests a synthetic service.

pub use crate::results::capacity::{CapacityResult, Limits, Phase, Recovery, Step};
use crate::results::Sample;

/// How to search.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub limits: Limits,
    /// The first rate tried.
    pub start: f64,
    /// Step-up (and step-down, when the start already breaks) factor.
    pub growth: f64,
    /// The bisection stops when the rate that broke is within this fraction of the rate
    /// that held (0.05: the capacity is known within 5 %).
    pub precision: f64,
    /// The lowest and highest rates tried.
    pub floor: f64,
    pub ceiling: f64,
    /// At most this many search steps (stress steps come on top).
    pub max_steps: usize,
    /// Stress: rates tried beyond the capacity, as multiples of it.
    pub stress: &'static [f64],
}

impl Search {
    pub fn new(limits: Limits, start: f64) -> Self {
        Self {
            limits,
            start: start.max(1.0),
            growth: 2.0,
            precision: 0.05,
            floor: 1.0,
            ceiling: 1e7,
            max_steps: 14,
            stress: &[1.5, 2.0],
        }
    }
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The highest rate that held; none: even the lowest rate tried broke.
    pub capacity: Option<f64>,
    /// In the order tried.
    pub steps: Vec<Step>,
}

/// The search as a state machine: ask `next` for the rate to measure, hand its sample to
/// `record`, until `next` says none. (The runner measures through a side it holds mutably,
/// which a closure could not lend to the future it returns.)
#[derive(Debug, Clone)]
pub struct Searcher {
    s: Search,
    steps: Vec<Step>,
    held: Option<f64>,
    broke: Option<f64>,
    next: Option<(Phase, f64)>,
    /// Stress rates still to try, in reverse order.
    stress: Vec<f64>,
}

impl Searcher {
    pub fn new(s: Search) -> Self {
        let first = s.start.clamp(s.floor, s.ceiling);
        Self { s, steps: Vec::new(), held: None, broke: None, next: Some((Phase::Search, first)), stress: Vec::new() }
    }

    /// The phase and rate to measure next; none: the search is over.
    pub fn next(&self) -> Option<(Phase, f64)> {
        self.next
    }

    /// The sample measured at the rate `next` gave.
    pub fn record(&mut self, sample: &Sample) {
        let Some((phase, rate)) = self.next else { return };
        let step = Step::judge(phase, rate, sample, &self.s.limits);
        let held = step.held();
        self.steps.push(step);
        if phase == Phase::Stress {
            if held && rate > self.held.unwrap_or(0.0) && self.steps.len() < self.s.max_steps {
                // A rate above the capacity found held: a step that broke below it broke by
                // chance (a noisy machine). This step was a search step after all, and the
                // search goes on upwards from it.
                if let Some(last) = self.steps.last_mut() {
                    last.phase = Phase::Search;
                }
                self.held = Some(rate);
                self.broke = None;
                self.stress.clear();
                self.next = Some((Phase::Search, (rate * self.s.growth).min(self.s.ceiling)));
                return;
            }
            self.next = self.stress.pop().map(|r| (Phase::Stress, r));
            return;
        }
        if held {
            self.held = Some(rate);
        } else {
            self.broke = Some(rate);
        }
        let search_next = match (self.held, self.broke) {
            _ if self.steps.len() >= self.s.max_steps => None,
            // Bisect (geometrically: the rates span orders of magnitude) to the precision.
            (Some(lo), Some(hi)) => (hi / lo > 1.0 + self.s.precision).then(|| (lo * hi).sqrt()),
            // Bracket: step up while the rate holds, down while it breaks.
            (Some(_), None) => (rate < self.s.ceiling).then(|| (rate * self.s.growth).min(self.s.ceiling)),
            (None, _) => (rate > self.s.floor).then(|| (rate / self.s.growth).max(self.s.floor)),
        };
        self.next = match search_next {
            Some(r) => Some((Phase::Search, r)),
            None => {
                let capacity = self.held.unwrap_or(0.0);
                self.stress = self.s.stress.iter().rev().map(|f| capacity * f).filter(|_| capacity > 0.0).collect();
                self.stress.pop().map(|r| (Phase::Stress, r))
            }
        };
    }

    /// The highest rate that held so far.
    pub fn capacity(&self) -> Option<f64> {
        self.held
    }

    pub fn finish(self) -> Outcome {
        Outcome { capacity: self.held, steps: self.steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// Search with `measure(rate)` measuring one open-loop sample at `rate` arrivals per second.
    async fn search<F, Fut>(s: &Search, mut measure: F) -> anyhow::Result<Outcome>
    where
        F: FnMut(f64) -> Fut,
        Fut: Future<Output = anyhow::Result<Sample>>,
    {
        let mut searcher = Searcher::new(*s);
        while let Some((_, rate)) = searcher.next() {
            let sample = measure(rate).await?;
            searcher.record(&sample);
        }
        Ok(searcher.finish())
    }
    use crate::load::{self, LoadConfig, OpError, Worker};
    use crate::resources::Probe;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::time::Instant;

    /// A service that serves exactly `per_sec` requests per second: one server, a FIFO queue,
    /// each request taking 1/`per_sec` of it (a D/D/1 queue, shared by every worker).
    #[derive(Clone)]
    struct Server {
        next_free: Arc<Mutex<Option<Instant>>>,
        service: Duration,
    }

    impl Worker for Server {
        async fn call(&mut self) -> Result<(), OpError> {
            let done = {
                let mut next = self.next_free.lock().unwrap();
                let now = Instant::now();
                let start = next.filter(|t| *t > now).unwrap_or(now);
                let done = start + self.service;
                *next = Some(done);
                done
            };
            tokio::time::sleep_until(done).await;
            Ok(())
        }
    }

    fn sample(ok: f64, secs: f64, p95_ms: Option<f64>, errors: u64) -> Sample {
        let mut s = Sample::default();
        s.metrics.insert("ok".into(), ok);
        s.metrics.insert("ops_per_sec".into(), ok / secs);
        if let Some(p) = p95_ms {
            for k in ["latency_p50_us", "latency_p95_us", "latency_p99_us"] {
                s.metrics.insert(k.into(), p * 1000.0);
            }
        }
        if errors > 0 {
            s.errors.insert("refused".into(), errors);
        }
        s
    }

    #[test]
    fn recovery_is_the_first_window_from_which_on_every_window_is_good() {
        let limits = Limits::guide(50.0);
        let offered = Recovery::trial(1000.0, Duration::from_secs(2), &limits);
        let t = offered.timeline.unwrap();
        assert_eq!(t.window, Duration::from_millis(100));
        assert_eq!(offered.overload.unwrap().duration, Duration::from_secs(1));
        // 10 overloaded windows, 5 bad ones after, one good, one bad, then good to the end.
        let mut s = Sample {
            timeline: [vec![[200, 150]; 10], vec![[50, 40]; 5], vec![[50, 0]], vec![[50, 10]], vec![[50, 2]; 33]]
                .concat(),
            ..Sample::default()
        };
        let r = Recovery::from_sample(&offered, &s).unwrap();
        assert_eq!(r.recovered_after_ms, Some(700));
        assert_eq!(r.after_ms, 4000);
        // Still bad in the last window: not recovered.
        s.timeline.last_mut().unwrap()[1] = 30;
        assert_eq!(Recovery::from_sample(&offered, &s).unwrap().recovered_after_ms, None);
        // Never hurt: recovered at once.
        s.timeline = vec![[50, 0]; 50];
        assert_eq!(Recovery::from_sample(&offered, &s).unwrap().recovered_after_ms, Some(0));
    }

    #[test]
    fn each_limit_breaks_a_step_and_says_which() {
        let l = Limits::guide(50.0);
        assert!(Step::judge(Phase::Search, 100.0, &sample(100.0, 1.0, Some(10.0), 0), &l).held());
        let slow = Step::judge(Phase::Search, 100.0, &sample(100.0, 1.0, Some(60.0), 0), &l);
        assert_eq!(slow.broke.as_deref(), Some("p95 60.0 ms > 50 ms"));
        let errs = Step::judge(Phase::Search, 100.0, &sample(100.0, 1.0, Some(1.0), 1), &l);
        assert!(errs.broke.as_deref().unwrap().starts_with("errors 0.99 %"), "{errs:?}");
        let behind = Step::judge(Phase::Search, 100.0, &sample(90.0, 1.0, Some(1.0), 0), &l);
        assert_eq!(behind.broke.as_deref(), Some("served 90/s of 100/s offered"));
        let none = Step::judge(Phase::Search, 100.0, &sample(0.0, 1.0, None, 5), &l);
        assert_eq!(none.broke.as_deref(), Some("no operation succeeded"));
    }

    /// The search over a pure function of the rate: the capacity is bracketed, bisected to
    /// the precision asked, and stressed at 1.5× and 2×.
    #[test]
    fn the_search_brackets_then_bisects_to_the_precision() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for (true_capacity, start) in [(1234.0, 100.0), (1234.0, 50_000.0), (37.0, 1.0)] {
            let s = Search::new(Limits::guide(50.0), start);
            let out = rt
                .block_on(search(&s, |rate: f64| async move {
                    let p95 = if rate <= true_capacity { 1.0 } else { 500.0 };
                    Ok(sample(rate.min(true_capacity), 1.0, Some(p95), 0))
                }))
                .unwrap();
            let cap = out.capacity.expect("a capacity");
            assert!(cap <= true_capacity && cap >= true_capacity / 1.05, "{cap} for {true_capacity}");
            let stress: Vec<f64> =
                out.steps.iter().filter(|s| s.phase == Phase::Stress).map(|s| s.offered_per_sec / cap).collect();
            assert_eq!(stress, vec![1.5, 2.0]);
            assert!(out.steps.len() <= s.max_steps + 2);
        }
        // A step that broke by chance below the capacity: the stress finds a higher rate that
        // holds, and the search goes on from there.
        let s = Search::new(Limits::guide(50.0), 100.0);
        let calls = std::cell::Cell::new(0);
        let out = rt
            .block_on(search(&s, |rate: f64| {
                calls.set(calls.get() + 1);
                let noisy = calls.get() == 4; // 100, 200, 400 held; 800 breaks by chance
                async move {
                    let p95 = if rate <= 1234.0 && !noisy { 1.0 } else { 500.0 };
                    Ok(sample(rate.min(1234.0), 1.0, Some(p95), 0))
                }
            }))
            .unwrap();
        let cap = out.capacity.unwrap();
        assert!((1234.0 / 1.05..=1234.0).contains(&cap), "{cap}: {:#?}", out.steps);
        let stress: Vec<f64> =
            out.steps.iter().filter(|s| s.phase == Phase::Stress).map(|s| s.offered_per_sec / cap).collect();
        assert_eq!(stress, vec![1.5, 2.0], "only the final capacity's stress steps stay stress");

        // Nothing holds: no capacity, and no stress.
        let s = Search::new(Limits::guide(50.0), 8.0);
        let out = rt.block_on(search(&s, |_| async { Ok(sample(0.0, 1.0, None, 3)) })).unwrap();
        assert_eq!(out.capacity, None);
        assert!(out.steps.iter().all(|s| s.phase == Phase::Search && !s.held()));
    }

    /// The whole procedure on the load engine: a service that serves 1000 requests per second
    /// is found to serve 1000 within ±10 %, and recovers from an overload as a queue drains.
    #[test]
    fn finds_a_synthetic_services_known_capacity() {
        const PER_SEC: f64 = 1000.0;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let server = Server { next_free: Arc::new(Mutex::new(None)), service: Duration::from_secs_f64(1.0 / PER_SEC) };
        let mut s = Search::new(Limits::guide(50.0), 100.0);
        s.stress = &[2.0];
        let out = rt
            .block_on(search(&s, |rate| {
                let server = server.clone();
                async move {
                    *server.next_free.lock().unwrap() = None;
                    let cfg = LoadConfig::open(64, rate, Duration::from_millis(100), Duration::from_millis(600));
                    let report = load::run(&cfg, &Probe::default(), move |_| {
                        let server = server.clone();
                        async move { Ok(server) }
                    })
                    .await?;
                    Ok(report.into_sample())
                }
            }))
            .unwrap();
        let cap = out.capacity.expect("a capacity");
        assert!((cap / PER_SEC - 1.0).abs() <= 0.10, "found {cap:.0}/s for {PER_SEC}/s: {:#?}", out.steps);
        let stressed = out.steps.last().unwrap();
        assert_eq!(stressed.phase, Phase::Stress);
        assert!(!stressed.held(), "2× the capacity breaks: {stressed:?}");
        assert!(stressed.achieved_per_sec < PER_SEC * 1.1, "{stressed:?}");

        // Recovery: 2× the capacity C for T = 300 ms leaves a backlog of about C·T requests,
        // which drains at C − C/2 once the rate drops to C/2: about 2T = 600 ms.
        let offered = Recovery::trial(cap, Duration::from_millis(600), &s.limits);
        *server.next_free.lock().unwrap() = None;
        let cfg = LoadConfig {
            overload: offered.overload,
            timeline: offered.timeline,
            ..LoadConfig::open(64, offered.rate_per_sec, Duration::from_millis(100), offered.window)
        };
        let sample = rt
            .block_on(load::run(&cfg, &Probe::default(), move |_| {
                let server = server.clone();
                async move { Ok(server) }
            }))
            .unwrap()
            .into_sample();
        let r = Recovery::from_sample(&offered, &sample).unwrap();
        let ms = r.recovered_after_ms.unwrap_or_else(|| panic!("did not recover: {r:?}"));
        assert!((400..=800).contains(&ms), "recovered after {ms} ms, expected about 600: {:?}", r.windows);
        println!("synthetic service of {PER_SEC}/s: capacity found {cap:.0}/s in {} steps; recovered {ms} ms after 300 ms at 2×", out.steps.len());
    }
}
