//! The catalogue: every experiment, one line each. Adding an experiment is its crate plus a line here.

use harness::Experiment;

#[rustfmt::skip]
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(calibration::Calibration::new()),
        Box::new(pg_pagination::PgPagination::new()),
        Box::new(pg_batch::PgBatch::new()),
        Box::new(pg_prepared::PgPrepared::new()),
        Box::new(pg_indexes::PgIndexes::new()),
        Box::new(pg_partitioning::PgPartitioning::new()),
        Box::new(pg_pool::PgPool::new()),
        Box::new(worker_pool::WorkerPool::new()),
        Box::new(redis_pool::RedisPool::new()),
        Box::new(redis_batch::RedisBatch::new()),
        Box::new(multi_level_cache::MultiLevelCache::new()),
        Box::new(cache_warmup::CacheWarmup::new()),
        Box::new(serialization::Serialization::new()),
        Box::new(object_pool::ObjectPool::new()),
        Box::new(string_building::StringBuilding::new()),
        Box::new(slice_prealloc::SlicePrealloc::new()),
        Box::new(lazy_alloc::LazyAlloc::new()),
        Box::new(concurrent_map::ConcurrentMap::new()),
        Box::new(rate_limiter::RateLimiter::new()),
    ]
}

/// Does `id` match any of the comma-separated globs in `filter` (`*` any run, `?` one char)?
pub fn matches(filter: &str, id: &str) -> bool {
    filter.split(',').map(str::trim).filter(|p| !p.is_empty()).any(|p| glob(p.as_bytes(), id.as_bytes()))
}

/// `*` (any run) and `?` (any one byte) matching in linear time: on a mismatch only the last
/// `*` backtracks, so a pattern of many stars cannot take exponential time.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("pg-*", "pg-pagination"));
        assert!(matches("calibration", "calibration"));
        assert!(!matches("calib", "calibration"));
        assert!(matches("redis-*, calib*", "calibration"));
        assert!(matches("pg-?agination", "pg-pagination"));
        assert!(!matches("pg-*", "calibration"));
        assert!(matches("*", "calibration"));
        assert!(matches("*tion", "calibration"));
        assert!(!matches("*tio", "calibration"));
        assert!(matches("c*l*b*", "calibration"));
    }

    #[test]
    fn many_stars_take_linear_time() {
        let pattern = "*a".repeat(40) + "b";
        let id = "a".repeat(60);
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &id));
        assert!(matches(&"*".repeat(50), "pg-pagination"));
        // Exponential backtracking would take longer than the universe; linear takes microseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn every_variant_table_is_well_formed() {
        for e in all() {
            let m = e.meta();
            let infos = m.variant_infos();
            let names: std::collections::HashSet<&str> = infos.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names.len(), infos.len(), "{}: variant names are unique", m.id);
            for v in &infos {
                if let Some(b) = &v.baseline {
                    assert!(
                        names.contains(b.as_str()),
                        "{}: {} is compared with {b}, which is not a variant",
                        m.id,
                        v.name
                    );
                    assert_ne!(b, &v.name, "{}: {} is its own baseline", m.id, v.name);
                }
            }
            // Exactly one comparison is the claim's: the headline.
            let claims: Vec<&str> = m.variants.iter().filter(|v| v.tests_claim).map(|v| v.name).collect();
            assert_eq!(claims.len(), 1, "{}: one variant tests the claim, not {claims:?}", m.id);
            let claim = infos.iter().find(|v| v.name == claims[0]).unwrap();
            assert!(
                claim.baseline.is_some(),
                "{}: the claim's variant {} has a baseline to be compared with",
                m.id,
                claim.name
            );
            // Every knob is checkable and its range is not empty.
            for k in &m.knobs {
                assert!(k.min <= k.max, "{}: knob {} has an empty range", m.id, k.name);
            }
        }
    }

    #[test]
    fn ids_are_unique_and_file_safe() {
        let ids: Vec<&str> = all().iter().map(|e| e.meta().id).collect();
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        for id in ids {
            assert!(id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{id}");
        }
    }
}
