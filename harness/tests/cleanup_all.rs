//! `cleanup_all`, what the Ctrl-C handler calls, in a test binary of its own: it stops every
//! server of the process, so it must not share a process with other tests.

use harness::provision::{provision, Provider, Request};

#[tokio::test]
async fn cleanup_all_stops_servers_whose_owner_never_drops() {
    let env =
        provision(&Request { provider: Provider::Local, need_postgres: true, need_redis: true, ..Request::default() })
            .await
            .expect("ephemeral servers start");
    let pids = env.server_pids();
    let dir = env.run_dir().unwrap().to_owned();
    // What the Ctrl-C handler does: the Env is never dropped.
    std::mem::forget(env);
    harness::provision::cleanup_all();
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "server {pid} still running");
    }
    assert!(!dir.exists(), "{} was left behind", dir.display());
    containers_too().await;
}

/// The same for containers (`--provider docker`), where a daemon answers.
#[cfg(feature = "docker")]
async fn containers_too() {
    #[path = "docker_util/mod.rs"]
    mod docker_util;
    if !docker_util::docker_available() {
        return;
    }
    let env =
        provision(&Request { provider: Provider::Docker, need_postgres: true, need_redis: true, ..Request::default() })
            .await
            .expect("containers start");
    assert_eq!(docker_util::containers_of(std::process::id()).len(), 2);
    std::mem::forget(env);
    harness::provision::cleanup_all();
    assert!(docker_util::containers_of(std::process::id()).is_empty(), "containers left behind");
}

#[cfg(not(feature = "docker"))]
async fn containers_too() {}
