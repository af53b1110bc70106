//! Ctrl-C in the middle of a run: the servers stop, their directory goes, and results.json
//! keeps the experiments finished before the interrupt.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_keeps_finished_work_and_leaves_nothing_running() {
    let out = std::env::temp_dir().join(format!("perflab-e2e-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--duration", "200ms", "--warmup", "100ms", "--filter", "calibration,pg-pagination"])
        .args(["--set", "pg-pagination.rows=30000", "--out", out.to_str().unwrap()])
        // Tests run benches side by side, each the other's noisy neighbour: no round is left
        // out for it here (the runner's and the probe's own tests check that machinery).
        .env("PERFLAB_NOISE_LIMIT", "none")
        .env_remove("PERFLAB_PG_URL")
        .env_remove("PERFLAB_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    // Wait until the first experiment is in results.json, then interrupt the second.
    let deadline = Instant::now() + Duration::from_secs(240);
    let results_path = loop {
        assert!(Instant::now() < deadline, "calibration never finished");
        assert!(child.try_wait().unwrap().is_none(), "bench exited before it was interrupted");
        let found =
            std::fs::read_dir(&out).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path().join("results.json"));
        if let Some(p) = found {
            if std::fs::read_to_string(&p).map(|t| t.contains("\"id\": \"calibration\"")).unwrap_or(false) {
                break p;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(1500)); // into pg-pagination's setup or samples
                                                     // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted runs exit with 130, got {status:?}");

    // What was finished is kept, in a complete and valid file.
    let results = harness::results::load(&results_path).expect("results.json is intact");
    assert!(!results.complete);
    assert_eq!(results.experiments.len(), 1);
    assert_eq!(results.experiments[0].id, "calibration");

    // No server directory and no server left: the run directory is named after the pid, and
    // the servers' ports no longer answer.
    let leftovers: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("perflab-{pid}-")))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    for server in [&results.context.servers.postgres, &results.context.servers.redis].into_iter().flatten() {
        let port: u16 = server.url.rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{} still answers", server.url);
    }
    std::fs::remove_dir_all(&out).unwrap();
}
