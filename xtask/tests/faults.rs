//! Faults and bad input through the real command line: a password given to the lab never
//! reaches a file or the console; a server killed mid-run fails its experiment with the cause
//! and no verdict, and the run goes on on fresh servers; a harness killed with SIGKILL is
//! cleaned up after by the next run; two runs started together keep both their results;
//! SIGTERM exits 143; `list | head -1` is no panic.

mod scratch;
use harness::provision::{provision, Provider, Request};
use scratch::temp_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // Tests run benches side by side, each the other's noisy neighbour: no round is left out
    // for it here (the runner's and the probe's own tests check that machinery).
    c.env("PERFLAB_NOISE_LIMIT", "none");
    c.env_remove("PERFLAB_PG_URL")
        .env_remove("PERFLAB_REDIS_URL")
        .env_remove("CARGO")
        .env("PERFLAB_ALLOC_EXE", env!("CARGO_BIN_EXE_perflab-alloc"));
    c
}

fn run(args: &[&str]) -> Output {
    xtask().args(args).output().expect("xtask runs")
}

fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            s.push_str(&all_text(&p));
        } else if let Ok(t) = std::fs::read(&p) {
            s.push_str(&String::from_utf8_lossy(&t));
        }
    }
    s
}

/// Direct children of `pid` whose command is `name` and whose command line has `arg` (the
/// postmaster has `-D`; `postgres --version` and initdb's postgres are other children).
fn children_named(pid: u32, name: &str, arg: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some(open) = stat.find('(') else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let comm = &stat[open + 1..close];
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        let has_arg = cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes());
        if comm == name && has_arg && f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) && f[0] != "Z" {
            out.push(child);
        }
    }
    out
}

/// `bench --quick --filter pg-batch` in the background, its output discarded.
fn quiet_pg_batch(out: &Path) -> std::process::Child {
    let mut c = xtask();
    c.args(["bench", "--quick", "--filter", "pg-batch", "--out", out.to_str().unwrap()]);
    c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Send `sig` to `pid`, a process this test started (or one that process started).
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: a plain signal to a process of this test's own.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The postmaster the bench process `pid` starts, once it runs (at most a minute).
fn wait_for_postmaster(pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no postgres started");
        if let Some(&p) = children_named(pid, "postgres", "-D").first() {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_password_never_reaches_a_file_or_the_console() {
    const PG_PASSWORD: &str = "SeCrEt@pg:123";
    const REDIS_PASSWORD: &str = "R3disSecretPw";
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Servers of the test's own, given to the lab as "external" ones with passwords in their
    // URLs (the ephemeral Postgres trusts loopback, so any password gets in; Redis is made to
    // require its password).
    let env = rt
        .block_on(provision(&Request {
            provider: Provider::Local,
            need_postgres: true,
            need_redis: true,
            ..Request::default()
        }))
        .expect("servers start");
    let (mut pg, redis) = (env.pg.clone().unwrap(), env.redis.clone().unwrap());
    // A table of "someone else's" where the lab's own tables would go, had it no schema.
    rt.block_on(async {
        let c = pg.connect().await.unwrap();
        c.batch_execute("CREATE TABLE users (sentinel text); INSERT INTO users VALUES ('mine')").await.unwrap();
        // The server the test started takes only its own random password: give it this one,
        // as Redis is given its below.
        c.batch_execute(&format!("ALTER ROLE {} PASSWORD '{}'", pg.user, PG_PASSWORD.replace('\'', "''")))
            .await
            .unwrap();
    });
    pg.config.password(PG_PASSWORD);
    rt.block_on(async {
        let mut con = redis.client().unwrap().get_multiplexed_async_connection().await.unwrap();
        let _: () =
            redis::cmd("CONFIG").arg("SET").arg("requirepass").arg(REDIS_PASSWORD).query_async(&mut con).await.unwrap();
    });
    let pg_url =
        format!("postgres://{}:{}@{}:{}/{}", pg.user, PG_PASSWORD.replace('@', "%40"), pg.host, pg.port, pg.dbname);
    let raw_pg_url = format!("postgres://{}:{PG_PASSWORD}@{}:{}/{}", pg.user, pg.host, pg.port, pg.dbname);
    let redis_url = format!("redis://:{REDIS_PASSWORD}@{}:{}", redis.host, redis.port);
    let out = temp_dir();
    let o = xtask()
        .args(["bench", "--quick", "--reps", "1", "--duration", "100ms", "--warmup", "50ms"])
        .args(["--filter", "pg-prepared,pg-partitioning,redis-batch", "--provider", "external"])
        .args(["--set", "pg-partitioning.rows_per_month=500"])
        .args(["--pg-url", &pg_url, "--redis-url", &redis_url, "--out", out.0.to_str().unwrap()])
        .env("PGPASSWORD", "EnvSecret77")
        .output()
        .unwrap();
    let console = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "bench failed: {console}");
    let files = all_text(&out.0);
    assert!(files.contains("\"arguments\""), "a results.json was written");
    assert!(files.contains("index.html") || run_dirs(&out.0)[0].join("index.html").is_file());
    for secret in [PG_PASSWORD, "SeCrEt%40pg:123", REDIS_PASSWORD, "EnvSecret77"] {
        assert!(!files.contains(secret), "{secret} reached a file");
        assert!(!console.contains(secret), "{secret} reached the console: {console}");
    }
    assert!(files.contains(":***@"), "URLs are kept, redacted");
    assert!(files.contains("created for this run, dropped at its end"), "the report says where the lab worked");

    // The lab worked in a schema of its own and dropped it: the other table is untouched.
    rt.block_on(async {
        let c = pg.connect().await.unwrap();
        let rows: i64 =
            c.query_one("SELECT count(*) FROM public.users WHERE sentinel = 'mine'", &[]).await.unwrap().get(0);
        assert_eq!(rows, 1, "the lab touched a table it did not create");
        let left: Vec<String> = c
            .query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'perflab%'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(left.is_empty(), "the run's schema was dropped: {left:?}");
    });

    // Bad input that echoes the URL back: a server that is not there, and clap's own errors.
    let dead = format!("postgres://u:{PG_PASSWORD}@127.0.0.1:1/db");
    for args in [
        vec!["bench", "--provider", "external", "--filter", "pg-batch", "--pg-url", dead.as_str()],
        vec!["bench", "--pg-urll", raw_pg_url.as_str()],
        vec!["bench", "--reps", raw_pg_url.as_str()],
        vec![
            "bench",
            "--provider",
            "external",
            "--filter",
            "pg-batch",
            "--pg-url",
            "host=127.0.0.1 port=1 password=KvSecret99",
        ],
    ] {
        let o = run(&args);
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {text}");
        for secret in [PG_PASSWORD, "KvSecret99"] {
            assert!(!text.contains(secret), "{args:?} printed {secret}: {text}");
        }
    }
    drop(env);
}

#[test]
fn a_server_killed_mid_run_fails_its_experiment_without_a_verdict_and_the_run_goes_on() {
    let out = temp_dir();
    let child = xtask()
        .args(["bench", "--quick", "--reps", "4", "--duration", "1s", "--warmup", "100ms", "--no-report"])
        .args(["--filter", "pg-prepared,redis-batch", "--out", out.0.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let postmaster = wait_for_postmaster(child.id());
    // Into pg-prepared's samples (its setup takes a second or two), then kill the server.
    std::thread::sleep(Duration::from_secs(6));
    signal(postmaster, libc::SIGKILL);
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a failed experiment exits 1: {stderr}");
    let results = harness::results::read(&run_dirs(&out.0)[0].join("results.json")).expect("valid results");
    assert!(results.complete, "the run finished");
    let pg = results.experiments.iter().find(|e| e.id == "pg-prepared").unwrap();
    let harness::results::ExperimentStatus::Failed { error } = &pg.status else {
        panic!("pg-prepared should have failed: {:?}", pg.status);
    };
    assert!(error.to_lowercase().contains("postgres"), "the cause names the server: {error}");
    // No median and no verdict rests on an invalid sample.
    for p in &pg.analysis {
        for v in &p.variants {
            let valid = pg
                .samples
                .iter()
                .filter(|s| s.case == p.case && s.point == p.point && s.variant == v.variant && s.invalid.is_none())
                .count();
            assert_eq!(v.n, valid, "{} at {} in {}: the median counts valid samples only", v.variant, p.point, p.case);
        }
    }
    for s in pg.samples.iter().filter(|s| s.invalid.is_some()) {
        let ok = s.metrics.get("ok").copied().unwrap_or(0.0);
        let errors: u64 = s.errors.values().sum();
        assert!(errors as f64 > 0.01 * (ok + errors as f64), "invalid for its errors: {s:?}");
    }
    // The experiment after it ran on fresh servers.
    let rb = results.experiments.iter().find(|e| e.id == "redis-batch").unwrap();
    assert_eq!(rb.status, harness::results::ExperimentStatus::Ok, "{stderr}");
    assert!(stderr.contains("started fresh servers"), "{stderr}");
    assert!(!stderr.contains("done in 0.0 s"), "{stderr}");
}

#[test]
fn the_next_run_sweeps_what_a_killed_harness_left() {
    let out = temp_dir();
    let mut child = quiet_pg_batch(&out.0);
    let pid = child.id();
    let dir = std::env::temp_dir().join(format!("perflab-{pid}-0"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("pgdata").exists() {
        assert!(Instant::now() < deadline, "{} never appeared", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no signal handler
    child.wait().unwrap();
    // The servers die with the harness (they are told to on their parent's death), their
    // directory stays until a run sweeps it.
    let o = run(&[
        "bench",
        "--quick",
        "--filter",
        "string-building",
        "--reps",
        "1",
        "--no-report",
        "--out",
        out.0.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.exists(), "{} was not swept", dir.display());
}

#[test]
fn two_runs_started_together_both_keep_their_results() {
    let out = temp_dir();
    let spawn = || {
        xtask()
            .args(["bench", "--quick", "--filter", "lazy-alloc", "--reps", "1", "--no-report"])
            .args(["--out", out.0.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let dirs = run_dirs(&out.0);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for d in dirs {
        let r = harness::results::read(&d.join("results.json")).unwrap();
        assert!(r.complete && r.experiments.len() == 1, "{}", d.display());
    }
}

#[test]
fn sigterm_exits_143_and_stops_the_servers() {
    let out = temp_dir();
    let mut child = quiet_pg_batch(&out.0);
    let pid = child.id();
    let postmaster = wait_for_postmaster(pid);
    std::thread::sleep(Duration::from_millis(500));
    signal(pid, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(!Path::new(&format!("/proc/{postmaster}")).exists(), "postgres {postmaster} still runs");
    assert!(!std::env::temp_dir().join(format!("perflab-{pid}-0")).exists());
}

#[test]
fn bad_input_is_one_line_and_exit_2_before_anything_starts() {
    for (args, says) in [
        (vec!["bench", "--duration", "0.001ms"], "at least 1ms"),
        (vec!["bench", "--filter", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"], "no experiment matches"),
        (vec!["bench", "--reps", "0"], "--reps"),
        (vec!["bench", "--set", "pg-pagination.rows=many"], "expected a whole number"),
        (vec!["bench", "--set", "pg-pagination.rows=999999999999"], "out of range"),
        (vec!["bench", "--set", "pg-pagination.rowz=5000"], "has no setting \"rowz\""),
        (vec!["bench", "--set", "pg-paginashun.rows=5000"], "no experiment \"pg-paginashun\""),
        (vec!["bench", "--filter", "calibration", "--set", "rows=5000"], "no selected experiment has a setting"),
        (vec!["bench", "--set", "cache-warmup.rate=NaN"], "expected a number"),
        (vec!["bench", "--set", "worker-pool.max_idle=0"], "out of range"),
        (vec!["bench", "--quick", "--budget", "10s"], "for their minimum rounds alone"),
        (vec!["bench", "--quick", "--budget", "soon"], "--budget"),
        (vec!["bench", "--noise-limit=-1"], "--noise-limit"),
    ] {
        let started = Instant::now();
        let o = run(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(says) && e.trim().lines().count() == 1, "{args:?}: {e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", started.elapsed());
    }
}

#[test]
fn list_into_a_closed_pipe_is_not_a_panic() {
    let mut child = xtask().arg("list").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // the reader goes away at once, as `head -1` does
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}
