//! Change points in a series of nightly results: E-Divisive with means, as Apache Otava (ex
//! Hunter) and MongoDB's CI use it (Matteson & James 2014; Daly et al., ICPE '20; Fleming et
//! al., arXiv:2301.03034).
//!
//! The series is split where the energy distance between the part before and the part after
//! is largest; the split is kept when a permutation test says so large a distance is unlikely
//! without a change (p ≤ `alpha`); each part is then searched again, until no significant split
//! is left. Everything is deterministic (the permutations come from a fixed seed).

use crate::stats::SplitMix64;

/// A change found in a series.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    /// Index of the first value after the change.
    pub index: usize,
    /// The permutation test's p-value.
    pub p_value: f64,
    /// Mean of the segment before and after (between the neighbouring change points).
    pub mean_before: f64,
    pub mean_after: f64,
}

impl ChangePoint {
    /// The relative change of the mean, percent.
    pub fn change_pct(&self) -> f64 {
        if self.mean_before == 0.0 {
            0.0
        } else {
            (self.mean_after - self.mean_before) / self.mean_before.abs() * 100.0
        }
    }
}

/// Settings of the detector.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Significance level of the permutation test.
    pub alpha: f64,
    /// Permutations per test.
    pub permutations: usize,
    /// The fewest values a segment may have on either side of a split.
    pub min_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { alpha: 0.05, permutations: 199, min_size: 3 }
    }
}

/// The scaled energy statistic of splitting `x` at `tau` (α = 1):
/// `q = τ(n−τ)/n · (2·mean|a−b| − mean|a−a'| − mean|b−b'|)`.
fn q_stat(x: &[f64], tau: usize) -> f64 {
    let (a, b) = x.split_at(tau);
    let (m, k) = (a.len() as f64, b.len() as f64);
    let between: f64 = a.iter().map(|p| b.iter().map(|q| (p - q).abs()).sum::<f64>()).sum::<f64>() / (m * k);
    let within = |s: &[f64]| -> f64 {
        let n = s.len();
        if n < 2 {
            return 0.0;
        }
        let mut sum = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                sum += (s[i] - s[j]).abs();
            }
        }
        sum / (n * (n - 1) / 2) as f64
    };
    (m * k / (m + k)) * (2.0 * between - within(a) - within(b))
}

/// The best split of `x` and its statistic, if `x` is long enough to split.
fn best_split(x: &[f64], min_size: usize) -> Option<(usize, f64)> {
    if x.len() < 2 * min_size {
        return None;
    }
    (min_size..=x.len() - min_size).map(|t| (t, q_stat(x, t))).max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The change points of `series`, in order.
pub fn detect(series: &[f64], opts: Options) -> Vec<ChangePoint> {
    if series.iter().any(|v| !v.is_finite()) {
        return Vec::new();
    }
    let mut rng = SplitMix64::new(0xC4A9_6E00_D1F1_51DE);
    let mut cuts: Vec<(usize, f64)> = Vec::new();
    // Segments still to search: [start, end).
    let mut todo = vec![(0usize, series.len())];
    while let Some((start, end)) = todo.pop() {
        let seg = &series[start..end];
        let Some((tau, q)) = best_split(seg, opts.min_size) else {
            continue;
        };
        if q <= 0.0 {
            continue;
        }
        // How often does a shuffled segment split as well as this one?
        let mut shuffled = seg.to_vec();
        let mut as_large = 0;
        for _ in 0..opts.permutations {
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i + 1));
            }
            if best_split(&shuffled, opts.min_size).is_some_and(|(_, qp)| qp >= q) {
                as_large += 1;
            }
        }
        let p = (as_large + 1) as f64 / (opts.permutations + 1) as f64;
        if p <= opts.alpha {
            cuts.push((start + tau, p));
            todo.push((start, start + tau));
            todo.push((start + tau, end));
        }
    }
    cuts.sort_by_key(|c| c.0);
    let bounds: Vec<usize> =
        std::iter::once(0).chain(cuts.iter().map(|c| c.0)).chain(std::iter::once(series.len())).collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    cuts.iter()
        .enumerate()
        .map(|(i, &(index, p_value))| ChangePoint {
            index,
            p_value,
            mean_before: mean(&series[bounds[i]..index]),
            mean_after: mean(&series[index..bounds[i + 2]]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Noise of a known spread around `level`: a deterministic pseudo-random walk of ±spread.
    fn noisy(level: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| level * (1.0 + spread * (2.0 * rng.next_f64() - 1.0))).collect()
    }

    #[test]
    fn a_step_is_found_where_it_is() {
        let mut s = noisy(100.0, 0.05, 20, 1);
        s.extend(noisy(130.0, 0.05, 20, 2));
        let cps = detect(&s, Options::default());
        assert_eq!(cps.len(), 1, "{cps:?}");
        assert_eq!(cps[0].index, 20);
        assert!((cps[0].change_pct() - 30.0).abs() < 5.0, "{}", cps[0].change_pct());
        assert!(cps[0].p_value <= 0.05);
    }

    #[test]
    fn two_steps_are_both_found() {
        let mut s = noisy(100.0, 0.03, 15, 3);
        s.extend(noisy(70.0, 0.03, 15, 4));
        s.extend(noisy(90.0, 0.03, 15, 5));
        let idx: Vec<usize> = detect(&s, Options::default()).iter().map(|c| c.index).collect();
        assert_eq!(idx, vec![15, 30]);
    }

    #[test]
    fn pure_noise_rarely_has_a_change_point() {
        // Over many noise series the share with a (false) change point stays near alpha.
        let with_change =
            (0..40).filter(|&seed| !detect(&noisy(100.0, 0.2, 30, 100 + seed), Options::default()).is_empty()).count();
        assert!(with_change <= 6, "{with_change} of 40 noise series had a change point");
    }

    #[test]
    fn short_or_broken_series_have_none() {
        assert!(detect(&[], Options::default()).is_empty());
        assert!(detect(&[1.0, 2.0, 3.0], Options::default()).is_empty());
        assert!(detect(&[1.0, f64::NAN, 1.0, 1.0, 5.0, 5.0, 5.0], Options::default()).is_empty());
    }
}
