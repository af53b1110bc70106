//! The docker provider against a real daemon: servers that answer, described for results.json,
//! removed with their volumes when the `Env` goes (also through a panic), and swept by the next
//! run when their owner was killed. Skips with one printed line where no Docker daemon answers
//! (or `PERFLAB_DOCKER_SKIP` says why, as `.ci/run` does when Docker could not start).
#![cfg(feature = "docker")]

mod docker_util;

use docker_util::{containers_of, docker_available, images, volumes};
use harness::provision::{provision, Provider, Request};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tests count the containers of this process: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn request() -> Request {
    Request { provider: Provider::Docker, need_postgres: true, need_redis: true, ..Request::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_serve_are_described_and_are_removed_with_the_env() {
    if !docker_available() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (pg_image, redis_image) = images();
    let volumes_before = volumes();
    let env = provision(&request()).await.expect("containers start");
    assert_eq!(env.servers.provider, "docker");
    let pg = env.servers.postgres.as_ref().unwrap();
    let redis = env.servers.redis.as_ref().unwrap();
    assert_eq!(pg.settings["image"], pg_image);
    assert_eq!(redis.settings["image"], redis_image);
    for info in [pg, redis] {
        assert!(info.settings["image_id"].starts_with("sha256:"), "{:?}", info.settings);
        assert!(["host", "bridge"].contains(&info.settings["docker_network"].as_str()));
        assert!(info.settings["ready_in"].ends_with(" s"));
        assert!(info.url.starts_with("postgres://postgres@127.0.0.1:") || info.url.starts_with("redis://127.0.0.1:"));
    }
    assert!(pg.version.starts_with("15"), "{}", pg.version);
    assert_eq!(redis.settings["save"], "");
    assert_eq!(pg.settings["fsync"], "off");
    // The resource probe watches the servers' processes as this host sees them.
    let probe = env.probe();
    for pid in [probe.postgres_pid, probe.redis_pid] {
        let pid = pid.expect("the server's host pid");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    env.health().await.expect("both answer");
    let pg_target = env.postgres().unwrap();
    let client = pg_target.connect().await.unwrap();
    let n: i64 = client.query_one("SELECT count(*) FROM pg_extension", &[]).await.unwrap().get(0);
    assert!(n >= 1);
    let mine = containers_of(std::process::id());
    assert_eq!(mine.len(), 2, "{mine:?}");
    drop(client);
    drop(env);
    assert!(containers_of(std::process::id()).is_empty(), "left behind");
    let added: Vec<String> = volumes().into_iter().filter(|v| !volumes_before.contains(v)).collect();
    assert!(added.is_empty(), "volumes left behind: {added:?}");
}

#[test]
fn a_panic_removes_the_containers() {
    if !docker_available() {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let outcome = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let env = provision(&request()).await.expect("containers start");
            assert!(env.pg.is_some());
            panic!("an experiment panics with its servers up");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    assert!(containers_of(std::process::id()).is_empty(), "the panic left containers behind");
}

#[test]
fn a_bad_image_name_is_one_line_before_anything_starts() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_with_an_unpinned_image", "--nocapture", "--test-threads=1"])
        .env("PERFLAB_DOCKER_TEST_CHILD", "1")
        .env("PERFLAB_PG_IMAGE", "postgres:latest")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("PERFLAB_PG_IMAGE=postgres:latest has no pinned tag"), "{text}");
}

/// Run by `a_bad_image_name_is_one_line_before_anything_starts` in a process of its own, since
/// it needs an environment variable of its own.
#[tokio::test]
async fn child_with_an_unpinned_image() {
    if std::env::var_os("PERFLAB_DOCKER_TEST_CHILD").is_none() {
        return;
    }
    let err = provision(&request()).await.expect_err("an unpinned image is refused");
    assert!(err.is_user_error());
    println!("{err}");
}

/// A harness killed with SIGKILL cannot remove its containers; the next run's sweep does, and
/// leaves the containers of live owners alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_containers_are_swept() {
    if !docker_available() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_that_holds_containers", "--nocapture", "--test-threads=1"])
        .env("PERFLAB_DOCKER_TEST_CHILD", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while containers_of(pid).len() < 2 {
        assert!(Instant::now() < deadline, "the child never started its containers");
        assert!(child.try_wait().unwrap().is_none(), "the child exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no signal handler runs
    child.wait().unwrap();
    assert_eq!(containers_of(pid).len(), 2, "a killed owner's containers stay until swept");
    // Containers of a live owner (this process) are not touched by the sweep.
    let env = provision(&Request { need_redis: false, ..request() }).await.expect("a container starts");
    let removed = harness::provision::sweep_containers().await;
    assert!(removed >= 2, "swept {removed}");
    assert!(containers_of(pid).is_empty(), "the killed owner's containers are gone");
    assert_eq!(containers_of(std::process::id()).len(), 1, "this live process's container stays");
    env.health().await.expect("and still answers");
}

/// Run by `a_killed_owners_containers_are_swept`: start containers, then wait to be killed.
#[tokio::test]
async fn child_that_holds_containers() {
    if std::env::var_os("PERFLAB_DOCKER_TEST_CHILD").is_none() {
        return;
    }
    let _env = provision(&request()).await.expect("containers start");
    tokio::time::sleep(Duration::from_secs(300)).await;
}
