//! The balancer: the guide's `LoadBalancer` rules (round robin, weighted random, under its
//! mutex) and tower's power of two choices on outstanding requests and on peak-EWMA load, over
//! the backends' shared view (active flags, load counters, round-trip estimates).

use crate::{BACKENDS, DEGRADED, WORK};
use harness::stats::SplitMix64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// The guide's `RoundRobin`: the next active backend in turn, under the balancer's mutex.
    RoundRobin,
    /// The guide's `WeightedRoundRobin`: a random pick weighted by `Weight` among the active
    /// backends, under the balancer's mutex (equal weights: the backends are alike).
    WeightedRandom,
    /// Two distinct active backends at random, the one with fewer requests outstanding.
    P2c,
    /// The same two choices, the one with the lower peak-EWMA cost: its round-trip estimate
    /// (peak, decaying) times its outstanding requests plus one, as tower's `PeakEwma` load,
    /// starting from linkerd's default estimate (30 ms).
    P2cPeakEwma,
    /// The same with its first estimate tuned to a healthy backend's round trip (1 ms).
    P2cPeakEwmaTuned,
}

/// The balancer's view of the backends, shared by every client and the health checker.
pub(crate) struct Balancer {
    pub(crate) rule: Rule,
    /// The guide's `lb.mu` with what it guards: `current` and each backend's `Active`.
    pub(crate) guarded: Mutex<Guarded>,
    /// Requests sent to each backend and not yet answered (p2c's load).
    pub(crate) outstanding: [AtomicU64; BACKENDS],
    /// Each backend's `Active` as p2c reads it (no lock: tower keeps its ready set apart).
    pub(crate) active: [AtomicBool; BACKENDS],
    /// Each backend's round-trip estimate (p2c-peak-ewma's load).
    pub(crate) ewma: [Mutex<PeakEwma>; BACKENDS],
    /// The peak-EWMA decay, compressed with the run's time.
    pub(crate) decay_ns: f64,
    /// Times a health check marked the degraded backend down while it was up.
    pub(crate) marked_down: AtomicU64,
}

/// tower's `PeakEwma` estimate of a backend's round trip: a new round trip above the estimate
/// replaces it (the peak), one below is averaged in with a weight that grows with the time
/// since the last update; read, the estimate decays toward zero with the time it went unused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    pub(crate) rtt_ns: f64,
    pub(crate) at: std::time::Instant,
}

/// tower asks for a first estimate and a decay; linkerd's defaults are 30 ms and 10 s, made
/// for services it knows nothing of (p2c-peak-ewma). The tuned variant starts from a healthy
/// backend's round trip (the work's 1 ms). The decay is a time and is compressed with the
/// run's; the estimates are round trips and are not.
pub(crate) const EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);
pub(crate) const EWMA_TUNED_RTT: Duration = WORK;
pub(crate) const EWMA_DECAY: Duration = Duration::from_secs(10);

impl PeakEwma {
    pub(crate) fn new(first: Duration, now: std::time::Instant) -> Self {
        PeakEwma { rtt_ns: first.as_nanos() as f64, at: now }
    }

    pub(crate) fn decayed(&self, now: std::time::Instant, decay_ns: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_nanos() as f64;
        self.rtt_ns * (-elapsed / decay_ns).exp()
    }

    pub(crate) fn observe(&mut self, rtt: Duration, now: std::time::Instant, decay_ns: f64) {
        let rtt = rtt.as_nanos() as f64;
        if rtt > self.rtt_ns {
            self.rtt_ns = rtt;
        } else {
            let elapsed = now.saturating_duration_since(self.at).as_nanos() as f64;
            let decay = (-elapsed / decay_ns).exp();
            self.rtt_ns = self.rtt_ns * decay + rtt * (1.0 - decay);
        }
        self.at = now;
    }
}

pub(crate) struct Guarded {
    pub(crate) current: usize,
    pub(crate) active: [bool; BACKENDS],
    pub(crate) weight: [u64; BACKENDS],
    /// Go's global `rand` source, used under the balancer's lock.
    pub(crate) rng: SplitMix64,
}

impl Balancer {
    /// A balancer with every backend active; `scale` compresses peak-EWMA's decay, `seed`
    /// seeds the weighted pick's source.
    pub(crate) fn new(rule: Rule, scale: f64, seed: u64) -> Self {
        let first = if rule == Rule::P2cPeakEwmaTuned { EWMA_TUNED_RTT } else { EWMA_DEFAULT_RTT };
        Balancer {
            rule,
            guarded: Mutex::new(Guarded {
                current: 0,
                active: [true; BACKENDS],
                weight: [1; BACKENDS],
                rng: SplitMix64::new(0x5eed ^ seed),
            }),
            outstanding: Default::default(),
            active: std::array::from_fn(|_| AtomicBool::new(true)),
            ewma: {
                let now = std::time::Instant::now();
                std::array::from_fn(|_| Mutex::new(PeakEwma::new(first, now)))
            },
            decay_ns: EWMA_DECAY.as_nanos() as f64 * scale,
            marked_down: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Guarded> {
        self.guarded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The backend for the next request, or none when no backend is active.
    pub(crate) fn pick(&self, rng: &mut SplitMix64) -> Option<usize> {
        match self.rule {
            Rule::RoundRobin => {
                let mut g = self.lock();
                for _ in 0..BACKENDS {
                    let i = g.current;
                    g.current = (g.current + 1) % BACKENDS;
                    if g.active[i] {
                        return Some(i);
                    }
                }
                None
            }
            Rule::WeightedRandom => {
                let mut g = self.lock();
                let total: u64 = (0..BACKENDS).filter(|&i| g.active[i]).map(|i| g.weight[i]).sum();
                if total == 0 {
                    return None;
                }
                let target = g.rng.next_u64() % total;
                let mut current = 0;
                for i in 0..BACKENDS {
                    if !g.active[i] {
                        continue;
                    }
                    current += g.weight[i];
                    if current > target {
                        return Some(i);
                    }
                }
                None
            }
            Rule::P2c | Rule::P2cPeakEwma | Rule::P2cPeakEwmaTuned => {
                let mut up = [0usize; BACKENDS];
                let mut n = 0;
                for (i, a) in self.active.iter().enumerate() {
                    if a.load(Ordering::Relaxed) {
                        up[n] = i;
                        n += 1;
                    }
                }
                match n {
                    0 => None,
                    1 => Some(up[0]),
                    _ => {
                        let a = (rng.next_u64() % n as u64) as usize;
                        let b = (a + 1 + (rng.next_u64() % (n as u64 - 1)) as usize) % n;
                        let (a, b) = (up[a], up[b]);
                        Some(if self.load(b) < self.load(a) { b } else { a })
                    }
                }
            }
        }
    }

    /// p2c's load of backend `i`: its outstanding requests, or its peak-EWMA cost.
    pub(crate) fn load(&self, i: usize) -> f64 {
        let pending = self.outstanding[i].load(Ordering::Relaxed) as f64;
        match self.rule {
            Rule::P2cPeakEwma | Rule::P2cPeakEwmaTuned => {
                let estimate = self.ewma[i]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .decayed(std::time::Instant::now(), self.decay_ns);
                estimate * (pending + 1.0)
            }
            _ => pending,
        }
    }

    /// A request goes to backend `i`: the p2c rules count it outstanding (tower's load
    /// handle), and the peak-EWMA rule notes when it left. The guide's rules keep no load, so
    /// they pay for none of this.
    pub(crate) fn sent(&self, i: usize) -> Option<std::time::Instant> {
        match self.rule {
            Rule::RoundRobin | Rule::WeightedRandom => None,
            Rule::P2c => {
                self.outstanding[i].fetch_add(1, Ordering::Relaxed);
                None
            }
            Rule::P2cPeakEwma | Rule::P2cPeakEwmaTuned => {
                self.outstanding[i].fetch_add(1, Ordering::Relaxed);
                Some(std::time::Instant::now())
            }
        }
    }

    /// The request `sent` to backend `i` ended, answered or not (tower's handle drops either
    /// way): no longer outstanding, and the peak-EWMA rule learns its round trip.
    pub(crate) fn done(&self, i: usize, sent: Option<std::time::Instant>) {
        if self.rule != Rule::RoundRobin && self.rule != Rule::WeightedRandom {
            self.outstanding[i].fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(sent) = sent {
            let now = std::time::Instant::now();
            self.ewma[i].lock().unwrap_or_else(|e| e.into_inner()).observe(now - sent, now, self.decay_ns);
        }
    }

    /// What a health check found: as the guide's `checkServers`, under the lock.
    pub(crate) fn set_active(&self, i: usize, up: bool) {
        let was = std::mem::replace(&mut self.lock().active[i], up);
        self.active[i].store(up, Ordering::Relaxed);
        if was && !up && i == DEGRADED {
            self.marked_down.fetch_add(1, Ordering::Relaxed);
        }
    }
}
