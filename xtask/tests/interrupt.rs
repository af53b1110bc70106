//! Ctrl-C in the middle of a run: the servers stop, their directory goes, and results.json
//! keeps the experiments finished before the interrupt.

mod scratch;
use scratch::temp_dir;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ctrl_c_keeps_finished_work_and_leaves_nothing_running() {
    let out = temp_dir();
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
    let results = harness::results::read(&results_path).expect("results.json is intact");
    assert!(!results.complete);
    assert_eq!(results.experiments.len(), 1);
    assert_eq!(results.experiments[0].id, "calibration");

    // No server directory and no server left: the run directory is named after the pid, and
    // the servers' ports no longer answer.
    let leftovers = temp_dirs_of(pid);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    for server in [&results.context.servers.postgres, &results.context.servers.redis].into_iter().flatten() {
        let port: u16 = server.url.rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{} still answers", server.url);
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// The temporary directories perflab process `pid` made (its servers', its micro workers').
fn temp_dirs_of(pid: u32) -> Vec<PathBuf> {
    let mine = [format!("perflab-{pid}-"), format!("perflab-micro-{pid}-")];
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| mine.iter().any(|m| p.file_name().unwrap().to_string_lossy().starts_with(m.as_str())))
        .collect()
}

/// `bench` with the test's settings: quick, short samples, no noise check, local servers.
fn bench(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("bench")
        .args(args)
        // Tests run benches side by side, each the other's noisy neighbour: no round is left
        // out for it here (the runner's and the probe's own tests check that machinery).
        .env("PERFLAB_NOISE_LIMIT", "none")
        .env_remove("PERFLAB_PG_URL")
        .env_remove("PERFLAB_REDIS_URL")
        .env_remove("PERFLAB_REDIS_CLUSTER_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Wait until results.json in `dir` (or in the one run directory inside `dir`) holds the
/// experiment `id`; the child must still be running.
fn wait_for(child: &mut std::process::Child, dir: &std::path::Path, id: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "{id} never finished");
        assert!(child.try_wait().unwrap().is_none(), "bench exited before {id} was in results.json");
        let path = if dir.join("results.json").is_file() {
            Some(dir.join("results.json"))
        } else {
            std::fs::read_dir(dir).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path().join("results.json"))
        };
        if let Some(p) = path {
            if std::fs::read_to_string(&p).map(|t| t.contains(&format!("\"id\": \"{id}\""))).unwrap_or(false) {
                return p;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `bench --resume` with `extra` flags to its end: its exit code and its stderr.
fn resume(run: &std::path::Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = bench(&["--resume", run.to_str().unwrap()]).args(extra).stderr(Stdio::piped()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A run interrupted twice (Ctrl-C, then SIGKILL) completes with `--resume` into one complete
/// results.json: the experiments finished before each interruption kept as they were, the
/// settings and seed the run's own, each resumption recorded. Bad resumes are refused with one
/// line and exit 2, and write nothing.
#[test]
fn an_interrupted_run_resumes_twice_into_one_complete_run() {
    let out = temp_dir();
    let mut child = bench(&["--quick", "--duration", "200ms", "--warmup", "100ms"])
        .args(["--filter", "calibration,pg-pagination,redis-batch", "--set", "pg-pagination.rows=30000"])
        .args(["--no-report", "--out", out.to_str().unwrap()])
        .spawn()
        .unwrap();
    let path = wait_for(&mut child, &out, "calibration");
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let run = path.parent().unwrap().to_owned();
    let first = harness::results::read(&path).unwrap();
    assert!(!first.complete);
    assert_eq!(first.experiments.len(), 1);

    // Refused, with one line, exit 2, nothing written.
    let before = std::fs::read(&path).unwrap();
    let (code, err) = resume(&run.join("nothing-here"), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a run") && err.trim().lines().count() == 1, "{err}");
    let (code, err) = resume(&run, &["--quick"]);
    assert_eq!(code, Some(2), "settings flags do not go with --resume: {err}");
    let other = out.join("other-commit");
    std::fs::create_dir_all(&other).unwrap();
    let mut moved = first.clone();
    moved.context.git_revision = Some("0".repeat(40));
    harness::results::save(&other.join("results.json"), &moved).unwrap();
    let (code, err) = resume(&other, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the run measured 000000000000"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "a refused resume writes nothing");
    std::fs::remove_dir_all(&other).unwrap();

    // The first resume is killed outright once pg-pagination is saved.
    let mut child = bench(&["--resume", run.to_str().unwrap(), "--no-report"]).spawn().unwrap();
    let killed = child.id();
    wait_for(&mut child, &run, "pg-pagination");
    child.kill().unwrap(); // SIGKILL: no handler, no destructor
    child.wait().unwrap();
    let second = harness::results::read(&path).unwrap();
    assert!(!second.complete);
    assert_eq!(second.experiments.len(), 2);
    assert_eq!(second.context.resumed.len(), 1);
    assert_eq!(second.context.resumed[0].kept, 1);

    // The second resume finishes the run (and sweeps what the killed one left).
    let (code, err) = resume(&run, &["--no-report"]);
    assert_eq!(code, Some(0), "{err}");
    let done = harness::results::read(&path).unwrap();
    assert!(done.complete && done.context.finished_at.is_some());
    let ids: Vec<&str> = done.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["calibration", "pg-pagination", "redis-batch"]);
    assert_eq!(done.context.resumed.iter().map(|r| r.kept).collect::<Vec<_>>(), [1, 2]);
    // The run's own settings throughout, and the experiments before each interruption as they were.
    assert_eq!(
        serde_json::to_value(&done.context.settings).unwrap(),
        serde_json::to_value(&first.context.settings).unwrap()
    );
    assert_eq!(done.context.started_at, first.context.started_at);
    assert_eq!(
        serde_json::to_value(&done.experiments[..2]).unwrap(),
        serde_json::to_value(&second.experiments).unwrap()
    );
    for e in &done.experiments[1..] {
        assert!(e.notes.iter().any(|n| n.contains("resumed")), "{}: {:?}", e.id, e.notes);
        assert!(!e.samples.is_empty() && !e.analysis.is_empty(), "{} has its measurements", e.id);
    }
    let leftovers = temp_dirs_of(killed);
    assert!(leftovers.is_empty(), "the killed resume's directories were swept: {leftovers:?}");

    let (code, err) = resume(&run, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is complete"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
}
