//! Paired comparisons: per-round log-ratios of two series measured in the same rounds, a
//! Student t on their mean (honest at small n, exact when every ratio is the same), and the
//! group-sequential looks that let a comparison stop once decided with its error rate kept.
//!
//! Pairing removes what a round shares (the machine's state, a neighbour's load, drift over
//! the run) from the comparison: only the difference between the two sides within a round
//! is left. Log-ratios make the effect multiplicative (a 10 % slowdown is the same at 50 µs
//! and at 5 ms) and symmetric (2× faster and 2× slower are ± ln 2).

/// A ratio estimated from paired rounds, with its confidence interval at `level` and the
/// two-sided p of the t test that the ratio is 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedRatio {
    /// Pairs used.
    pub n: usize,
    /// exp(mean log-ratio): the geometric mean of the per-round ratios a/b.
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
    pub p: f64,
    pub level: f64,
}

/// The paired log-ratio of `a` over `b` (`a[i]` and `b[i]` measured in round `i`), from at
/// least 2 pairs of positive values; none otherwise. The CI is exp(mean ± t·sd/√n) with
/// n − 1 degrees of freedom; when every ratio is the same (a deterministic metric) the
/// interval is that ratio and p is 0 unless it is 1 (p = 1).
pub fn paired_log_ratio(a: &[f64], b: &[f64], level: f64) -> Option<PairedRatio> {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x / y).ln()).collect();
    let n = d.len();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    // Ratios equal to the last bits (a count divided by the same count) are no spread.
    if se <= 1e-12 * mean.abs().max(1.0) {
        let r = mean.exp();
        let p = if mean.abs() < 1e-12 { 1.0 } else { 0.0 };
        return Some(PairedRatio { n, ratio: r, low: r, high: r, p, level });
    }
    let df = (n - 1) as f64;
    let t = mean / se;
    let p = (2.0 * student_t_sf(t.abs(), df)).min(1.0);
    let q = student_t_quantile(0.5 + level / 2.0, df);
    Some(PairedRatio { n, ratio: mean.exp(), low: (mean - q * se).exp(), high: (mean + q * se).exp(), p, level })
}

/// P(T > t) for Student's t with `df` degrees of freedom (t ≥ 0).
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if t.is_infinite() {
        return 0.0;
    }
    0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// The `p` quantile of Student's t with `df` degrees of freedom (0.5 < p < 1), by bisection
/// on the distribution function (60 halvings: far below any precision a verdict needs).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let tail = 1.0 - p;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while student_t_sf(hi, df) > tail {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if student_t_sf(mid, df) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz), the
/// standard way (Numerical Recipes §6.4).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    // Lentz's method divides by these terms: keep them away from zero.
    let nonzero = |v: f64| if v.abs() < 1e-300 { 1e-300 } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let mut del = 1.0;
        // The even and the odd step of the fraction.
        for aa in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 / nonzero(1.0 + aa * d);
            c = nonzero(1.0 + aa / c);
            del = d * c;
            h *= del;
        }
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut s = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        s += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// A group-sequential plan: the rounds after which a comparison is looked at, and the
/// significance level of each look. The family's α is split evenly over the looks
/// (Bonferroni over looks), so the chance that any look calls a difference where there is
/// none stays at most α however the comparison stops; the last look is the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Looks {
    pub rounds: Vec<u32>,
    pub alpha_per_look: f64,
}

impl Looks {
    /// Looks from `min` rounds, each about 1.5 times the one before, up to and including
    /// `cap`: 3, 5, 8 for (3, 8); 4, 6, 9, 14, 20 for (4, 20).
    pub fn geometric(min: u32, cap: u32, alpha: f64) -> Self {
        let (min, cap) = (min.max(2), cap.max(min.max(2)));
        let mut rounds = vec![min];
        loop {
            let last = *rounds.last().unwrap();
            if last >= cap {
                break;
            }
            let next = ((f64::from(last) * 1.5).round() as u32).max(last + 1).min(cap);
            // A look only one round before the cap is merged into the cap.
            if next < cap && next + 1 >= cap {
                rounds.push(cap);
                break;
            }
            rounds.push(next);
        }
        let alpha_per_look = alpha / rounds.len() as f64;
        Self { rounds, alpha_per_look }
    }

    /// Whether the comparison is looked at after `round` rounds (counted from 1).
    pub fn is_look(&self, round: u32) -> bool {
        self.rounds.contains(&round)
    }

    /// The confidence level of every look's interval.
    pub fn level(&self) -> f64 {
        1.0 - self.alpha_per_look
    }

    pub fn cap(&self) -> u32 {
        *self.rounds.last().unwrap_or(&0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SplitMix64;

    #[test]
    fn t_distribution_matches_tables() {
        // Two-sided 95 % critical values: df 1 12.706, 2 4.303, 4 2.776, 9 2.262, 30 2.042.
        for (df, q) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (9.0, 2.262), (30.0, 2.042)] {
            let got = student_t_quantile(0.975, df);
            assert!((got - q).abs() < 2e-3, "df {df}: {got} vs {q}");
        }
        assert!((student_t_sf(0.0, 5.0) - 0.5).abs() < 1e-12);
        // P(T > 2.015) = 0.05 at df 5.
        assert!((student_t_sf(2.015, 5.0) - 0.05).abs() < 5e-4);
    }

    #[test]
    fn a_known_shift_is_found_with_its_interval() {
        let a = [110.0, 220.0, 330.0, 440.0, 550.0];
        let b = [100.0, 200.0, 300.0, 400.0, 500.0];
        let r = paired_log_ratio(&a, &b, 0.95).unwrap();
        assert!((r.ratio - 1.1).abs() < 1e-12 && r.low == r.high && r.p == 0.0, "{r:?}");
        let same = paired_log_ratio(&b, &b, 0.95).unwrap();
        assert_eq!((same.ratio, same.p), (1.0, 1.0));
        assert!(paired_log_ratio(&[1.0], &[1.0], 0.95).is_none(), "one pair is no comparison");
        assert!(paired_log_ratio(&[1.0, 0.0], &[1.0, 1.0], 0.95).is_none(), "a zero has no log");
    }

    /// Drift between rounds (the machine slowing down 5× over the run) hits both sides of a
    /// round alike: pairing cancels it, and a 3 % effect stands out.
    #[test]
    fn pairing_cancels_drift_between_rounds() {
        let mut rng = SplitMix64::new(11);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..8 {
            let drift = 1.0 + 0.5 * i as f64;
            let mut noise = || 1.0 + 0.004 * (rng.next_f64() - 0.5);
            let base = 100.0 * drift;
            b.push(base * noise());
            a.push(base * 1.03 * noise());
        }
        let r = paired_log_ratio(&a, &b, 0.95).unwrap();
        assert!(r.p < 0.001 && r.low > 1.02 && r.high < 1.04, "{r:?}");
        // Unpaired, the drift swamps it: the medians' U test cannot tell.
        let u = crate::stats::mann_whitney_u(&a, &b).unwrap();
        assert!(u.p_value > 0.05, "{u:?}");
    }

    #[test]
    fn looks_grow_geometrically_to_the_cap() {
        assert_eq!(Looks::geometric(3, 8, 0.05).rounds, vec![3, 5, 8]);
        assert_eq!(Looks::geometric(4, 20, 0.05).rounds, vec![4, 6, 9, 14, 20]);
        assert_eq!(Looks::geometric(5, 5, 0.05).rounds, vec![5]);
        let l = Looks::geometric(4, 20, 0.05);
        assert!((l.alpha_per_look - 0.01).abs() < 1e-12 && l.is_look(9) && !l.is_look(10));
    }

    /// Optional stopping under the null: an A/A comparison looked at after every planned look,
    /// stopped at the first significant one. Its false-positive rate must stay at or below α
    /// (with simulation error), where stopping at a plain 5 % at each look would not.
    #[test]
    fn optional_stopping_keeps_the_false_positive_rate() {
        let looks = Looks::geometric(3, 12, 0.05);
        let mut rng = SplitMix64::new(2026);
        let gauss = |rng: &mut SplitMix64| {
            // Box-Muller.
            let (u, v) = (rng.next_f64().max(1e-300), rng.next_f64());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        };
        let trials = 4000;
        let (mut planned, mut naive) = (0, 0);
        for _ in 0..trials {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (mut hit_planned, mut hit_naive) = (false, false);
            for round in 1..=looks.cap() {
                a.push((0.05 * gauss(&mut rng)).exp() * 100.0);
                b.push((0.05 * gauss(&mut rng)).exp() * 100.0);
                if looks.is_look(round) {
                    let r = paired_log_ratio(&a, &b, looks.level()).unwrap();
                    hit_planned |= r.p <= looks.alpha_per_look;
                    hit_naive |= r.p <= 0.05;
                }
            }
            planned += usize::from(hit_planned);
            naive += usize::from(hit_naive);
        }
        let (fp, naive_fp) = (planned as f64 / trials as f64, naive as f64 / trials as f64);
        // 4000 trials: the binomial's standard error at 5 % is 0.34 %.
        assert!(fp <= 0.05 + 0.01, "planned looks: false-positive rate {fp}");
        assert!(naive_fp > 0.07, "peeking at 5 % each time inflates it ({naive_fp}): the test can tell");
    }
}
