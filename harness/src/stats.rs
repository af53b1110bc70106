//! Plain statistics on numbers: medians, bootstrap confidence intervals, the Mann-Whitney U test,
//! and paired log-ratios with group-sequential looks (`paired`).
//!
//! Nothing here knows about experiments, servers or results: every function takes slices of
//! numbers and is tested on inputs whose answer is known.

mod paired;
pub use paired::{paired_log_ratio, student_t_quantile, student_t_sf, Looks, PairedRatio};

/// A small deterministic generator (SplitMix64) so that a bootstrap gives the same interval
/// for the same data on every machine and every run.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0); the modulo bias is below 2^-40 for the sizes used here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A value in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The median of `values`, or `None` when there are none (or a NaN is among them).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Some(median_of_sorted(&sorted))
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of already sorted values, by linear interpolation.
pub fn quantile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of an empty slice");
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn resample_median(values: &[f64], rng: &mut SplitMix64, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend((0..values.len()).map(|_| values[rng.below(values.len())]));
    scratch.sort_by(|a, b| a.total_cmp(b));
    median_of_sorted(scratch)
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// Percentile-bootstrap confidence interval (`level`, e.g. 0.95) of the median of `values`.
pub fn bootstrap_median_ci(values: &[f64], level: f64, resamples: usize, seed: u64) -> Option<Interval> {
    let estimate = median(values)?;
    let mut rng = SplitMix64::new(seed);
    let mut scratch = Vec::with_capacity(values.len());
    let mut medians: Vec<f64> = (0..resamples).map(|_| resample_median(values, &mut rng, &mut scratch)).collect();
    medians.sort_by(|a, b| a.total_cmp(b));
    let alpha = (1.0 - level) / 2.0;
    Some(Interval {
        estimate,
        low: quantile_of_sorted(&medians, alpha),
        high: quantile_of_sorted(&medians, 1.0 - alpha),
    })
}

/// Percentile-bootstrap confidence interval of `median(variant) / median(baseline)`, each
/// group resampled independently. `None` when a group is empty or a baseline median is zero.
pub fn bootstrap_ratio_ci(
    variant: &[f64],
    baseline: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    let (mv, mb) = (median(variant)?, median(baseline)?);
    if mb == 0.0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut scratch = Vec::with_capacity(variant.len().max(baseline.len()));
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let v = resample_median(variant, &mut rng, &mut scratch);
        let b = resample_median(baseline, &mut rng, &mut scratch);
        if b != 0.0 {
            ratios.push(v / b);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let alpha = (1.0 - level) / 2.0;
    Some(Interval {
        estimate: mv / mb,
        low: quantile_of_sorted(&ratios, alpha),
        high: quantile_of_sorted(&ratios, 1.0 - alpha),
    })
}

/// The outcome of a two-sided Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample.
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the p-value is exact (small samples without ties) or a normal approximation.
    pub exact: bool,
    /// The smallest two-sided p-value these sample sizes can produce at all: with 2 and 2
    /// values it is 1/3, so such a test can never be significant at 0.05.
    pub min_attainable_p: f64,
}

/// Two-sided Mann-Whitney U test of `a` against `b`.
///
/// Exact distribution for samples without ties while `|a|·|b| <= 400`, otherwise the normal
/// approximation with tie correction and continuity correction.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    // Midranks over the pooled sample.
    let mut pooled: Vec<(f64, bool)> = a.iter().map(|&v| (v, true)).chain(b.iter().map(|&v| (v, false))).collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = pooled.len();
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_a += pooled[i..=j].iter().filter(|p| p.1).count() as f64 * rank;
        i = j + 1;
    }
    let u = rank_sum_a - (n1 * (n1 + 1)) as f64 / 2.0;
    let total = n1 * n2;
    let min_attainable_p = if total <= 400 {
        let counts = u_distribution(n1, n2);
        let all: f64 = counts.iter().sum();
        (2.0 * counts[0] / all).min(1.0)
    } else {
        0.0
    };
    if total <= 400 && tie_term == 0.0 {
        let counts = u_distribution(n1, n2);
        let all: f64 = counts.iter().sum();
        let k = u.round() as usize;
        let lower: f64 = counts[..=k].iter().sum::<f64>() / all;
        let upper: f64 = counts[k..].iter().sum::<f64>() / all;
        let p_value = (2.0 * lower.min(upper)).min(1.0);
        return Some(MannWhitney { u, p_value, exact: true, min_attainable_p });
    }
    let mean = total as f64 / 2.0;
    let (nf1, nf2, nf) = (n1 as f64, n2 as f64, n as f64);
    let var = nf1 * nf2 / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if var <= 0.0 {
        // Every value is the same: nothing tells the samples apart.
        return Some(MannWhitney { u, p_value: 1.0, exact: false, min_attainable_p });
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    let p_value = (2.0 * normal_sf(z)).min(1.0);
    Some(MannWhitney { u, p_value, exact: false, min_attainable_p })
}

/// Number of arrangements giving each U value, for sample sizes `m` and `n` (no ties).
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    // f[i][j][u]: arrangements of i and j values with statistic u; built with the recurrence
    // f(i, j, u) = f(i-1, j, u-j) + f(i, j-1, u).
    let max_u = m * n;
    let mut prev: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; n + 1];
    for row in prev.iter_mut() {
        row[0] = 1.0; // i = 0: one arrangement, U = 0
    }
    for _i in 1..=m {
        let mut cur: Vec<Vec<f64>> = vec![vec![0.0; max_u + 1]; n + 1];
        cur[0][0] = 1.0;
        for j in 1..=n {
            for u in 0..=max_u {
                let from_a = if u >= j { prev[j][u - j] } else { 0.0 };
                cur[j][u] = from_a + cur[j - 1][u];
            }
        }
        prev = cur;
    }
    prev.swap_remove(n)
}

/// Survival function of the standard normal distribution, 1 - Φ(z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (W. J. Cody's rational approximations via Numerical Recipes'
/// erfc Chebyshev fit; relative error below 1.2e-7, plenty for p-values).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratio_ci_brackets_a_known_ratio() {
        // The variant is the baseline scaled by exactly 3, with noise: the CI must hold 3.
        let mut rng = SplitMix64::new(7);
        let baseline: Vec<f64> = (0..30).map(|_| 100.0 + rng.next_f64() * 10.0).collect();
        let variant: Vec<f64> = baseline.iter().map(|v| v * 3.0).collect();
        let ci = bootstrap_ratio_ci(&variant, &baseline, 0.95, 2000, 1).unwrap();
        assert!((ci.estimate - 3.0).abs() < 1e-9, "{ci:?}");
        assert!(ci.low < 3.0 && ci.high > 3.0, "{ci:?}");
        assert!(ci.low > 2.7 && ci.high < 3.3, "{ci:?}");
    }

    #[test]
    fn ratio_ci_of_identical_groups_straddles_one() {
        let mut rng = SplitMix64::new(3);
        let a: Vec<f64> = (0..20).map(|_| 50.0 + rng.next_f64()).collect();
        let b: Vec<f64> = (0..20).map(|_| 50.0 + rng.next_f64()).collect();
        let ci = bootstrap_ratio_ci(&a, &b, 0.95, 2000, 1).unwrap();
        assert!(ci.low <= 1.0 && ci.high >= 1.0, "{ci:?}");
    }

    #[test]
    fn ratio_ci_is_reproducible_and_none_on_zero_baseline() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 3.0, 4.0, 5.0];
        assert_eq!(bootstrap_ratio_ci(&a, &b, 0.95, 500, 9), bootstrap_ratio_ci(&a, &b, 0.95, 500, 9));
        assert_eq!(bootstrap_ratio_ci(&a, &[0.0, 0.0], 0.95, 500, 9), None);
    }

    #[test]
    fn u_test_exact_on_fully_separated_samples() {
        // 5 vs 5, fully separated: exact two-sided p = 2 / C(10,5) = 2/252.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        let r = mann_whitney_u(&a, &b).unwrap();
        assert!(r.exact);
        assert_eq!(r.u, 0.0);
        assert!((r.p_value - 2.0 / 252.0).abs() < 1e-12, "{r:?}");
        assert!((r.min_attainable_p - 2.0 / 252.0).abs() < 1e-12);
    }

    #[test]
    fn u_test_on_identical_samples_is_not_significant() {
        let a = [5.0; 8];
        let r = mann_whitney_u(&a, &a).unwrap();
        assert_eq!(r.p_value, 1.0);
        let b = [1.0, 2.0, 3.0, 4.0];
        let r = mann_whitney_u(&b, &b).unwrap();
        assert!(r.p_value > 0.9, "{r:?}");
    }

    #[test]
    fn u_test_two_by_two_can_never_be_significant() {
        let r = mann_whitney_u(&[1.0, 2.0], &[10.0, 20.0]).unwrap();
        assert!((r.p_value - 1.0 / 3.0).abs() < 1e-12, "{r:?}");
        assert!((r.min_attainable_p - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn u_test_normal_approximation_on_large_separated_samples() {
        let a: Vec<f64> = (0..40).map(f64::from).collect();
        let b: Vec<f64> = (100..140).map(f64::from).collect();
        let r = mann_whitney_u(&a, &b).unwrap();
        assert!(!r.exact);
        assert!(r.p_value < 1e-10, "{r:?}");
        // Interleaved samples: no evidence of a difference.
        let c: Vec<f64> = (0..40).map(|i| f64::from(2 * i)).collect();
        let d: Vec<f64> = (0..40).map(|i| f64::from(2 * i + 1)).collect();
        assert!(mann_whitney_u(&c, &d).unwrap().p_value > 0.5);
    }

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(-1.0) - 0.841_344_7).abs() < 1e-6);
    }
}
