//! The Postgres data-directory template is made once per version and user; two servers that
//! start at once in one process, on a cache that holds no template yet, must both start.
//! Its own test binary: it points the process-wide cache directory at a fresh one.

use harness::provision::{provision, Provider, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_starting_at_once_on_an_empty_cache_both_start() {
    let cache = std::env::temp_dir().join(format!("perflab-template-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    // SAFETY: set before this binary's only test starts any thread that reads the environment.
    unsafe { std::env::set_var("PERFLAB_CACHE_DIR", &cache) };
    let req = Request { provider: Provider::Local, need_postgres: true, ..Request::default() };
    // Each on its own worker thread, as two tests of one binary would be.
    let start = |req: Request| tokio::spawn(async move { provision(&req).await });
    let (a, b) = tokio::join!(start(req.clone()), start(req));
    let (a, b) = (a.expect("not cancelled"), b.expect("not cancelled"));
    let started = (a.is_ok(), b.is_ok());
    let errors = format!("{:?} / {:?}", a.as_ref().err(), b.as_ref().err());
    drop((a, b));
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().contains(".tmp-")).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&cache);
    assert_eq!(started, (true, true), "{errors}");
    assert!(leftovers.is_empty(), "staging directories left in the cache: {leftovers:?}");
}
