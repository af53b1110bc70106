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

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
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
