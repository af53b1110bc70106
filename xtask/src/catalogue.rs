//! The catalogue: every experiment, one line each. Adding an experiment is its crate plus a line here.

use harness::{Engine, Experiment};

#[rustfmt::skip]
pub fn all() -> Vec<Box<dyn Experiment>> {
    vec![
        Box::new(calibration::Calibration::new()),
        Box::new(calibration_http::CalibrationHttp::new()),
        Box::new(pg_pagination::PgPagination::new()),
        Box::new(pg_batch::PgBatch::new()),
        Box::new(pg_prepared::PgPrepared::new()),
        Box::new(pg_indexes::PgIndexes::new()),
        Box::new(pg_partitioning::PgPartitioning::new()),
        Box::new(pg_pool::PgPool::new()),
        Box::new(worker_pool::WorkerPool::new()),
        Box::new(redis_pool::RedisPool::new()),
        Box::new(redis_batch::RedisBatch::new()),
        Box::new(redis_cluster_reads::RedisClusterReads::new()),
        Box::new(multi_level_cache::MultiLevelCache::new()),
        Box::new(cache_warmup::CacheWarmup::new()),
        Box::new(serialization::Serialization::new()),
        Box::new(object_pool::ObjectPool::new()),
        Box::new(string_building::StringBuilding::new()),
        Box::new(slice_prealloc::SlicePrealloc::new()),
        Box::new(lazy_alloc::LazyAlloc::new()),
        Box::new(concurrent_map::ConcurrentMap::new()),
        Box::new(rate_limiter::RateLimiter::new()),
        Box::new(http_client_pool::HttpClientPool::new()),
        Box::new(http_compression::HttpCompression::new()),
        Box::new(http_timeouts::HttpTimeouts::new()),
        Box::new(metrics_overhead::MetricsOverhead::new()),
        Box::new(grpc_pool::GrpcPool::new()),
        Box::new(load_balancing::LoadBalancing::new()),
    ]
}

/// The body of a micro engine worker (`xtask micro-worker`, `perflab-alloc micro-worker`):
/// the job's routine comes from the catalogue's in-process experiments.
pub fn micro_worker(job: &str, allocator: harness::micro::Allocator) -> std::process::ExitCode {
    let mut experiments = all();
    // The selftests' routines do not depend on the point, so one comparison of each will do.
    for t in crate::selftest::family(crate::selftest::Kind::Micro, 1) {
        experiments.push(Box::new(t));
    }
    let routines: Vec<(&str, &dyn harness::Routines)> = experiments
        .iter()
        .filter_map(|e| match e.engine() {
            Engine::Micro { routines, .. } => Some((e.meta().id, routines)),
            Engine::Load(_) => None,
        })
        .collect();
    harness::micro::worker_main(&routines, job, allocator)
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

    /// Every experiment's notes.md is filled in whole: a placeholder without a value, or a
    /// value no placeholder uses, stops a debug build (`harness::fill_notes`). Read before any
    /// setup, as a run that fails in setup still reports them.
    #[tokio::test(flavor = "current_thread")]
    async fn every_experiments_notes_are_filled_in() {
        let ctx = harness::RunCtx::for_tests(false, false, &[]).await.unwrap();
        for e in all() {
            let notes = e.notes(&ctx);
            let id = e.meta().id;
            assert!(notes.iter().all(|n| !n.trim().is_empty() && !n.starts_with('#')), "{id}: {notes:?}");
        }
    }

    /// What every experiment of the catalogue must declare well: unique variant and case
    /// names without the id separator, baselines that exist, exactly one claim with a
    /// baseline, knobs with a range and a default that passes their own check, and (micro
    /// engine) a routine for every trial.
    #[test]
    fn every_experiment_declares_itself_well() {
        for e in all() {
            let m = e.meta();
            let infos = m.variant_infos();
            let names: std::collections::HashSet<&str> = infos.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(names.len(), infos.len(), "{}: variant names are unique", m.id);
            let cases: std::collections::HashSet<&str> = m.cases.iter().map(|c| c.name).collect();
            assert_eq!(cases.len(), m.cases.len(), "{}: case names are unique", m.id);
            for name in names.iter().chain(cases.iter()) {
                assert!(
                    !name.is_empty() && !name.contains('/') && !name.contains(char::is_whitespace),
                    "{}: {name:?}: names are non-empty, without '/' (the id separator) or spaces",
                    m.id
                );
            }
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
            // A Go original is named go-… and compared with Go originals only (never with a
            // Rust variant as a finding); a Rust variant never with a Go one.
            for (v, info) in m.variants.iter().zip(&infos) {
                if let Some(bench) = v.go {
                    assert!(v.name.starts_with("go-"), "{}: the Go original {} is named go-…", m.id, v.name);
                    assert!(
                        harness::micro::go::valid_bench(bench),
                        "{}: {}: {bench:?} names a Go benchmark",
                        m.id,
                        v.name
                    );
                }
                let baseline_is_go = |b: &str| m.variants.iter().any(|x| x.name == b && x.go.is_some());
                if let Some(b) = info.baseline.as_deref() {
                    assert_eq!(
                        baseline_is_go(b),
                        v.go.is_some(),
                        "{}: {} is compared with {b}: Go with Go, Rust with Rust",
                        m.id,
                        v.name
                    );
                } else {
                    assert!(
                        v.go.is_none() || v.baseline == Some(v.name),
                        "{}: the Go original {} starts or joins a Go group",
                        m.id,
                        v.name
                    );
                }
            }
            // Exactly one comparison is the claim's: the headline.
            let claims: Vec<&str> =
                m.variants.iter().filter(|v| v.tests_claim && v.go.is_none()).map(|v| v.name).collect();
            assert_eq!(claims.len(), 1, "{}: one variant tests the claim, not {claims:?}", m.id);
            // And at most one Go original tests it on the guide's own code.
            let go_claims = m.variants.iter().filter(|v| v.tests_claim && v.go.is_some()).count();
            assert!(go_claims <= 1, "{}: at most one Go original tests the claim", m.id);
            if let Some(go) = m.go_claim() {
                let v = infos.iter().find(|v| Some(v.name.as_str()) == go.variant).unwrap();
                assert!(
                    v.baseline.is_some(),
                    "{}: the Go claim's {} has a Go baseline to be compared with",
                    m.id,
                    v.name
                );
                assert_eq!(go.kind, m.claim().kind, "{}: the Go original tests the same kind of claim", m.id);
            }
            let claim = infos.iter().find(|v| v.name == claims[0]).unwrap();
            assert!(
                claim.baseline.is_some(),
                "{}: the claim's variant {} has a baseline to be compared with",
                m.id,
                claim.name
            );
            assert!(
                m.cases.iter().filter(|c| c.tests_claim).count() <= 1,
                "{}: at most one case tests the claim",
                m.id
            );
            for k in &m.knobs {
                assert!(k.min <= k.max, "{}: knob {} has an empty range", m.id, k.name);
                assert!(!k.doc.is_empty(), "{}: knob {} says what it sets", m.id, k.name);
                assert_eq!(k.experiment, m.id, "knob {} is read under its experiment's id", k.name);
                assert!(k.check(&k.min.to_string()).is_ok() && k.check(&k.max.to_string()).is_ok());
                assert!(k.check("abc").is_err(), "{}: knob {} rejects a word", m.id, k.name);
                if let harness::KnobDefault::Value { full, quick } = k.default {
                    for v in [full, quick] {
                        assert!(
                            k.check(&v.to_string()).is_ok(),
                            "{}: knob {}'s default {v} is in its range",
                            m.id,
                            k.name
                        );
                    }
                }
            }
            assert!(!m.sweep.points(true).is_empty() && !m.sweep.points(false).is_empty(), "{}: a sweep", m.id);
            let built = harness::testing::routines_build(e.as_ref()).unwrap();
            if e.engine().is_micro() {
                assert!(built > 0, "{}: in-process experiments build their routines", m.id);
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
