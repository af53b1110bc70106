//! `bench --provider docker` through the real command line: calibration and pg-pagination in
//! quick mode against containers give results of the same kind as the default provider, the
//! report names the provider and the images, and nothing is left afterwards, also after Ctrl-C.
//! Skips with one printed line where no Docker daemon answers (or `PERFLAB_DOCKER_SKIP` says
//! why, as `.ci/run` does when Docker could not start).
#![cfg(feature = "docker")]

#[path = "../../harness/tests/docker_util/mod.rs"]
mod docker_util;
mod scratch;
use scratch::temp_dir;

use docker_util::{containers_of, docker_available, images, volumes};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bench(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.env("PERFLAB_NOISE_LIMIT", "none");
    cmd.args(["bench", "--quick", "--provider", "docker", "--filter", "calibration,pg-pagination"])
        .args(["--duration", "300ms", "--warmup", "100ms", "--out", out.to_str().unwrap()])
        .args(extra)
        .env_remove("PERFLAB_PG_URL")
        .env_remove("PERFLAB_REDIS_URL");
    cmd
}

#[test]
fn quick_run_against_containers_matches_the_default_providers_kind_of_results() {
    if !docker_available() {
        return;
    }
    let (pg_image, redis_image) = images();
    let out = temp_dir();
    let volumes_before = volumes();
    let started = Instant::now();
    let child = bench(&out, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "bench --provider docker failed: {stderr}");
    eprintln!("quick calibration + pg-pagination through Docker: {:.0} s", started.elapsed().as_secs_f64());

    // Nothing left: no container of the run, no volume it made.
    assert!(containers_of(pid).is_empty(), "containers left behind");
    let added: Vec<String> = volumes().into_iter().filter(|v| !volumes_before.contains(v)).collect();
    assert!(added.is_empty(), "volumes left behind: {added:?}");

    let run = std::fs::read_dir(&*out).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).expect("a run");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["complete"], true);
    let servers = &results["context"]["servers"];
    assert_eq!(servers["provider"], "docker");
    assert_eq!(servers["postgres"]["settings"]["image"], pg_image.as_str());
    assert_eq!(servers["redis"]["settings"]["image"], redis_image.as_str());
    assert_eq!(servers["postgres"]["settings"]["provider"], "docker");

    // The same kind of results as the default provider: every experiment ran, every variant has
    // valid samples at every point, and the statistics reached the finding.
    let experiments = results["experiments"].as_array().unwrap();
    let ids: Vec<&str> = experiments.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["calibration", "pg-pagination"]);
    for e in experiments {
        let id = e["id"].as_str().unwrap();
        assert_eq!(e["status"]["state"], "ok", "{id}: {}", e["status"]);
        let samples = e["samples"].as_array().unwrap();
        assert!(!samples.is_empty(), "{id} has no samples");
        for v in e["variants"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let valid = samples.iter().filter(|s| s["variant"] == name && s["invalid"].is_null()).count();
            assert!(valid > 0, "{id}/{name} has no valid sample");
        }
        assert!(e["finding"]["kind"].is_string(), "{id} has no finding: {}", e["finding"]);
    }

    // The report names the provider and both images (HTML-escaped: '/' is written &#x2F;).
    let html = std::fs::read_to_string(run.join("index.html")).expect("index.html");
    for needle in ["provider=docker", pg_image.as_str(), redis_image.as_str()] {
        let escaped = needle.replace('/', "&#x2F;");
        assert!(html.contains(&escaped), "the report does not name {needle}");
    }
}

#[test]
fn ctrl_c_removes_the_containers() {
    if !docker_available() {
        return;
    }
    let out = temp_dir();
    let mut child = bench(&out, &["--set", "pg-pagination.rows=30000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(180);
    while containers_of(pid).len() < 2 {
        assert!(Instant::now() < deadline, "the run never started its containers");
        assert!(child.try_wait().unwrap().is_none(), "bench exited before it was interrupted");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500)); // into calibration's samples
                                                     // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit with 130, got {status:?}");
    assert!(containers_of(pid).is_empty(), "Ctrl-C left containers behind");
}

/// A container that dies mid-run is replaced as a local server is: its experiment fails with
/// the cause, the next one runs on fresh containers, and nothing is left afterwards.
#[test]
fn a_container_killed_mid_run_is_replaced() {
    if !docker_available() {
        return;
    }
    let out = temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    let child = cmd
        .env("PERFLAB_NOISE_LIMIT", "none")
        .env_remove("PERFLAB_PG_URL")
        .env_remove("PERFLAB_REDIS_URL")
        .args(["bench", "--quick", "--provider", "docker", "--filter", "pg-prepared,redis-batch"])
        .args(["--reps", "4", "--duration", "1s", "--warmup", "100ms", "--no-report"])
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let postgres = || {
        let o = Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=org.perflab.owner={}/{pid}", host.trim())])
            .args(["--filter", "name=postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned)
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let victim = loop {
        assert!(Instant::now() < deadline, "the run never started its Postgres container");
        if let Some(id) = postgres() {
            break id;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Into pg-prepared's samples (its setup takes a second or two), then kill the container.
    std::thread::sleep(Duration::from_secs(6));
    let killed = Command::new("docker").args(["kill", &victim]).output().unwrap();
    assert!(killed.status.success(), "docker kill: {}", String::from_utf8_lossy(&killed.stderr));
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a failed experiment exits 1: {stderr}");
    let dir = std::fs::read_dir(&*out).unwrap().next().unwrap().unwrap().path();
    let results = harness::results::read(&dir.join("results.json")).expect("valid results");
    assert!(results.complete, "the run finished");
    let pg = results.experiments.iter().find(|e| e.id == "pg-prepared").unwrap();
    let harness::results::ExperimentStatus::Failed { error } = &pg.status else {
        panic!("pg-prepared should have failed: {:?}", pg.status);
    };
    assert!(error.to_lowercase().contains("postgres"), "the cause names the server: {error}");
    let rb = results.experiments.iter().find(|e| e.id == "redis-batch").unwrap();
    assert_eq!(rb.status, harness::results::ExperimentStatus::Ok, "{stderr}");
    assert!(stderr.contains("started fresh servers"), "{stderr}");
    assert!(containers_of(pid).is_empty(), "containers left behind: {:?}", containers_of(pid));
}
