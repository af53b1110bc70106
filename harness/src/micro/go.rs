//! The Go originals of in-process experiments: the guide's Go code (`go/inproc`) measured by
//! Go's own `testing` package, beside the Rust ports, in the same rounds.
//!
//! The package's benchmarks are compiled once per run (`go test -c`), into the lab's cache
//! under a name made of a hash of `go/` and the toolchain's version, so an unchanged tree is
//! never compiled again. Each sample is one run of that binary:
//! `-test.run=^$ -test.bench=^Benchmark<Name>$/^<sub>$ -test.benchtime=<N>x -test.benchmem
//! -test.cpu=1`, the sweep point's value in `PERFLAB_POINT` (the point is declared once, in
//! Rust). `N` is fixed per trial from its first sample, which runs for the settings' measured
//! time (`-test.benchtime=<ms>ms`), so every later sample of the trial times the same number of
//! calls. The benchmark's line gives ns/op, B/op and allocs/op, and the package's `gc/op`
//! (collections per call) and `items/op`. GOMAXPROCS is 1, as the micro engine's routines run
//! on one thread.
//!
//! A machine without Go skips the Go variants with one line (`Hooks::lacks`), the Rust
//! findings unchanged. A Go variant is compared with Go variants only, never with a Rust one.

use crate::results::{Better, MetricInfo, Sample, Settings, SweepPoint, Trial};
use anyhow::Context as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The Go module's directory: `PERFLAB_GO_DIR`, else `go/` in the source tree perflab was
/// built from.
pub fn module_dir() -> PathBuf {
    std::env::var_os("PERFLAB_GO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../go"))
}

/// The `go` command: `PERFLAB_GO` (a path, or `none`: run no Go originals), else on the
/// PATH, else where Go's own installer puts it.
pub fn toolchain() -> Option<PathBuf> {
    match std::env::var_os("PERFLAB_GO") {
        Some(v) if v == "none" => None,
        Some(v) => Some(PathBuf::from(v)).filter(|p| p.is_file()),
        None => crate::provision::which("go")
            .or_else(|| Some(PathBuf::from("/usr/local/go/bin/go")).filter(|p| p.is_file())),
    }
}

/// Why Go originals cannot run here, in one line; `None` where they can.
pub fn missing() -> Option<String> {
    if toolchain().is_none() {
        return Some(match std::env::var_os("PERFLAB_GO") {
            Some(v) if v == "none" => "Go originals were not run: PERFLAB_GO=none".to_owned(),
            Some(v) => format!("Go originals were not run: PERFLAB_GO={} is not a file", v.to_string_lossy()),
            None => "Go originals were not run: no Go toolchain (go is not on the PATH nor in /usr/local/go/bin); install Go 1.26 to run them".to_owned(),
        });
    }
    if !module_dir().join("go.mod").is_file() {
        return Some(format!("Go originals were not run: no Go module at {}", module_dir().display()));
    }
    None
}

/// What the report says of an experiment's Go originals.
pub const NOTE: &str = "The go-… variants are the guide's Go code (go/inproc), compiled by Go and timed by its testing package beside the Rust ports, in the same rounds: one run of the test binary per sample, a fixed number of calls per trial, GOMAXPROCS 1. Their time_ns is Go's mean over those calls (its testing package reports no median), their allocations Go's -benchmem counts, gc_per_call the garbage collections per call. They are compared with one another only, never with a Rust variant.";

/// What the report says of the Go originals of an experiment that measures whole samples.
pub const WHOLE_SAMPLE_NOTE: &str = "The go-… variants are the guide's Go code (go/inproc), compiled by Go beside the Rust ports and run in the same rounds: one run of the test binary per sample, which warms up and measures for the same times as the Rust variants and reports the same metrics, with GOMAXPROCS the machine's cores and the runtime's default settings; its resources (its own CPU and memory as the harness's, the servers' CPU, the wall time) cover the whole Go process, its setup and warm-up included, where a Rust variant's cover its measured window. Latencies come from Go's own histogram (within 0.8 %, the top of a bucket as hdrhistogram reports it), a median of time per call from batches of calls. They are compared with one another only, never with a Rust variant.";

/// The metric only Go originals report: garbage collections per call.
pub fn gc_metric() -> MetricInfo {
    MetricInfo::new(
        "gc_per_call",
        "collections",
        Better::Lower,
        "garbage collections per call (Go originals only: runtime.MemStats.NumGC)",
    )
}

/// What one run of a benchmark printed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GoBench {
    pub iterations: u64,
    /// Every `value unit` pair of the line (`ns/op`, `B/op`, `allocs/op`, `gc/op`, `items/op`).
    pub values: HashMap<String, f64>,
}

/// The line of benchmark `name` (`BenchmarkStringBuilding/join`) in `go test -bench` output.
/// With `-test.cpu` above 1 Go appends `-N` to the name; that is accepted too.
pub fn parse(out: &str, name: &str) -> Option<GoBench> {
    out.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let head = fields.next()?;
        let bare = head.strip_prefix(name)?;
        if !(bare.is_empty() || bare.strip_prefix('-').is_some_and(|n| n.parse::<u32>().is_ok())) {
            return None;
        }
        let iterations = fields.next()?.parse().ok()?;
        let rest: Vec<&str> = fields.collect();
        let values = rest.chunks(2).filter_map(|p| Some((p.get(1)?.to_string(), p[0].parse().ok()?))).collect();
        Some(GoBench { iterations, values })
    })
}

/// The compiled test binary of `go/inproc`, built once per process: before the run's budget
/// starts (`Session::start`), or by the first experiment's setup, never between measured
/// samples. A build that failed is not tried again: every experiment gets its error.
pub async fn test_binary() -> anyhow::Result<PathBuf> {
    static BUILT: tokio::sync::OnceCell<Result<PathBuf, String>> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async { build().await.map_err(|e| format!("{e:#}")) })
        .await
        .clone()
        .map_err(anyhow::Error::msg)
}

/// `go` with the environment that decides what it builds pinned: no GOFLAGS (a `-race` left in
/// the shell would build another program), no workspace, no toolchain switch or download.
fn go_command(go: &Path, dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(go);
    cmd.current_dir(dir).env("GOFLAGS", "").env("GOWORK", "off").env("GOTOOLCHAIN", "local");
    cmd
}

async fn build() -> anyhow::Result<PathBuf> {
    let go = toolchain().context("no Go toolchain")?;
    let dir = module_dir();
    // What the binary is made of: the toolchain and the settings that change its code, and
    // every file of the module.
    let mut env = go_command(&go, &dir);
    env.args(["env", "GOVERSION", "GOOS", "GOARCH", "GOAMD64", "GOEXPERIMENT", "CGO_ENABLED"]);
    let mut bytes = super::parent::run_capturing(env, "go env").await?.into_bytes();
    let mut files = Vec::new();
    collect(&dir, &mut files)?;
    files.sort();
    for f in &files {
        bytes.extend(f.strip_prefix(&dir).unwrap_or(f).to_string_lossy().as_bytes());
        bytes.extend(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
    }
    let hash = format!("{:016x}", crate::provenance::fnv1a(&bytes));
    let cache = crate::provision::cache_dir();
    let bin = cache.join("go").join(format!("inproc-{hash}.test"));
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(cache.join("go")).with_context(|| format!("creating {}", cache.display()))?;
    eprintln!("perflab: building the Go originals (go test -c in {})", dir.display());
    // Built in a staging directory the reaper knows (removed on Ctrl-C, swept after a kill),
    // by a process the reaper kills with its group, then moved into place whole.
    let staging = cache.join(crate::reaper::staging_name(&format!(".go-inproc-{hash}"), 0));
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    crate::reaper::track_dir(&staging);
    let built = staging.join("inproc.test");
    let mut cmd = go_command(&go, &dir);
    // go's own work directory in the staging one, so that a killed build leaves nothing else.
    cmd.args(["test", "-c", "-o"]).arg(&built).arg("./inproc").env("TMPDIR", &staging);
    let moved = match super::parent::run_capturing(cmd, "Go build (go test -c)").await {
        Ok(_) => {
            std::fs::rename(&built, &bin).with_context(|| format!("moving the Go test binary to {}", bin.display()))
        }
        Err(e) => Err(e),
    };
    crate::reaper::remove_tracked_dir(&staging);
    moved.map(|()| bin)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Whether `bench` can name a Go benchmark safely (`-test.bench` reads it as a pattern):
/// `Name` or `Name/sub`, letters and digits, the sub-benchmark's also `-`.
pub fn valid_bench(bench: &str) -> bool {
    let (top, sub) = bench.split_once('/').unwrap_or((bench, "x"));
    !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric())
        && !sub.is_empty()
        && sub.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The test binary's command for one run of Go benchmark `bench` at `point` for `benchtime`
/// (`200ms`, `5000x`) on `procs` processors, and the benchmark's full name.
pub(super) fn command(
    bin: &Path,
    bench: &str,
    point: &SweepPoint,
    benchtime: &str,
    procs: usize,
) -> anyhow::Result<(tokio::process::Command, String)> {
    anyhow::ensure!(valid_bench(bench), "{bench:?} is not a Go benchmark name (Name or Name/sub)");
    let (top, sub) = bench.split_once('/').unwrap_or((bench, ""));
    let pattern = if sub.is_empty() { format!("^Benchmark{top}$") } else { format!("^Benchmark{top}$/^{sub}$") };
    let mut cmd = tokio::process::Command::new(bin);
    // The runtime's settings are Go's defaults, whatever the shell has: GOGC and GOMEMLIMIT
    // change what sync.Pool keeps and what allocation costs, GODEBUG the timers' semantics
    // (asynctimerchan), GOTRACEBACK nothing measured but the output.
    for var in ["GOGC", "GOMEMLIMIT", "GODEBUG", "GOTRACEBACK"] {
        cmd.env_remove(var);
    }
    // Nothing of the shell's reaches the benchmark's servers or settings: lib/pq reads every
    // libpq variable (PGHOSTADDR would send the run's password elsewhere, PGOPTIONS change the
    // search path), and a PERFLAB_ variable the harness does not set itself must not stand in
    // for one it would. The harness sets its own after this.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("PG") || k.starts_with("PERFLAB_") {
            cmd.env_remove(&key);
        }
    }
    cmd.args(["-test.run=^$", &format!("-test.bench={pattern}"), &format!("-test.benchtime={benchtime}")])
        .args(["-test.benchmem", &format!("-test.cpu={procs}"), "-test.count=1"])
        .env("PERFLAB_POINT", point.value.to_string())
        .env("PERFLAB_POINT_LABEL", &point.label)
        .env("GOMAXPROCS", procs.to_string());
    let name = if sub.is_empty() { format!("Benchmark{top}") } else { format!("Benchmark{top}/{sub}") };
    Ok((cmd, name))
}

/// One run of Go benchmark `bench` at `at`'s case and point for `benchtime` on one processor.
async fn run(
    bin: &Path,
    bench: &str,
    at: Trial<'_>,
    benchtime: &str,
    env: &[(String, String)],
) -> anyhow::Result<GoBench> {
    let (mut cmd, name) = command(bin, bench, at.point, benchtime, 1)?;
    cmd.env("PERFLAB_CASE", at.case).envs(env.iter().map(|(k, v)| (k, v)));
    let out = super::parent::run_capturing(cmd, "Go benchmark").await?;
    parse(&out, &name).with_context(|| format!("no line for {name} in the Go benchmark's output"))
}

/// What a whole-sample Go benchmark prints, after [`SAMPLE_LINE`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GoSample {
    metrics: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    errors: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    latency: Option<crate::results::LatencySummary>,
    #[serde(default)]
    process: Option<GoProcess>,
}

/// What a whole-sample Go benchmark's process used, from its start to its sample's line: it
/// is the harness of that sample (its own setup, warm-up and measurement).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoProcess {
    pub cpu_s: f64,
    pub peak_rss_bytes: u64,
}

/// The prefix of the line a whole-sample Go benchmark prints its sample on.
pub const SAMPLE_LINE: &str = "perflab-sample ";

/// The sample a whole-sample Go benchmark printed (`perflab-sample {"metrics": {…}, "errors":
/// {…}, "latency": {…}}`, the latency in the lab's `LatencySummary` form).
pub fn parse_sample(out: &str) -> anyhow::Result<(Sample, Option<GoProcess>)> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(SAMPLE_LINE))
        .context("the Go benchmark printed no perflab-sample line")?;
    let s: GoSample = serde_json::from_str(line).context("the Go benchmark's perflab-sample line")?;
    anyhow::ensure!(
        s.metrics.values().all(|v| v.is_finite()),
        "the Go benchmark reported a metric that is not a number"
    );
    Ok((Sample { metrics: s.metrics, errors: s.errors, latency: s.latency, ..Sample::default() }, s.process))
}

/// One sample of the Go original of an experiment that measures whole samples with its own
/// `Run` (a closed loop over threads, a rate held over time): the benchmark runs once
/// (`-test.benchtime=1x`), warms up and measures for the settings' times itself
/// (`PERFLAB_WARMUP_NS`, `PERFLAB_DURATION_NS`; the point in `PERFLAB_POINT` and
/// `PERFLAB_POINT_LABEL`), and prints the experiment's own metrics by name. GOMAXPROCS is the
/// machine's cores, which the Rust variants' threads may use too.
/// `env` reaches the servers (`PgTarget::go_env`: never a command line); `--concurrency`, where
/// given, is `PERFLAB_CONCURRENCY`.
pub async fn run_sample(
    settings: &Settings,
    bench: &str,
    at: Trial<'_>,
    env: &[(String, String)],
) -> anyhow::Result<(Sample, Option<GoProcess>)> {
    let bin = test_binary().await?;
    let procs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut cmd, _) = command(&bin, bench, at.point, "1x", procs)?;
    cmd.env("PERFLAB_CASE", at.case);
    cmd.env("PERFLAB_WARMUP_NS", settings.warmup.as_nanos().to_string())
        .env("PERFLAB_DURATION_NS", settings.duration.as_nanos().to_string())
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(c) = settings.concurrency {
        cmd.env("PERFLAB_CONCURRENCY", c.to_string());
    }
    // A sample that never ends (a query stuck on a lock, a stalled server) must not stop the
    // run: its setup, warm-up and measured time, and two minutes more, then the process group
    // is killed (kill_on_drop) and the sample fails with one line.
    let limit = settings.warmup + settings.duration + std::time::Duration::from_secs(120);
    let out = tokio::time::timeout(limit, super::parent::run_capturing(cmd, "Go benchmark"))
        .await
        .map_err(|_| anyhow::anyhow!("the Go benchmark {bench} did not finish within {} s", limit.as_secs()))??;
    parse_sample(&out)
}

/// One sample of Go benchmark `bench` (`StringBuilding/join`: `BenchmarkStringBuilding`'s
/// sub-benchmark `join`) at `at`'s point. The trial's number of calls is fixed once, by a run
/// for the settings' measured time that is not recorded; every sample then times that many.
///
/// `env` reaches the servers (`PgTarget::go_env`, the Redis URL: never a command line); the
/// case is `PERFLAB_CASE`.
pub async fn measure(
    settings: &Settings,
    experiment: &str,
    bench: &str,
    at: Trial<'_>,
    env: &[(String, String)],
) -> anyhow::Result<Sample> {
    static CALLS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let bin = test_binary().await?;
    let key = format!("{experiment}/{}/{}/{}/{:?}", at.case, at.variant, at.point.label, settings.duration);
    let fixed = CALLS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| *k == key).map(|(_, n)| *n);
    let calls = match fixed {
        Some(n) => n,
        None => {
            let ms = settings.duration.as_millis().max(1);
            let n = run(&bin, bench, at, &format!("{ms}ms"), env).await?.iterations.max(1);
            CALLS.lock().unwrap_or_else(|e| e.into_inner()).push((key, n));
            n
        }
    };
    into_sample(&run(&bin, bench, at, &format!("{calls}x"), env).await?)
}

/// The micro engine's metrics from a benchmark's line (`time_ns` is Go's mean over the run's
/// calls: the testing package reports no median).
pub fn into_sample(b: &GoBench) -> anyhow::Result<Sample> {
    let mut sample = Sample::default();
    let v = |k: &str| b.values.get(k).copied();
    let items = v("items/op").unwrap_or(1.0).max(1.0);
    let ns = v("ns/op").context("the Go benchmark's line has no ns/op")?;
    let m = &mut sample.metrics;
    m.insert("time_ns".into(), ns);
    m.insert("time_mean_ns".into(), ns);
    m.insert("time_per_item_ns".into(), ns / items);
    m.insert("calls_per_sec".into(), 1e9 / ns.max(f64::MIN_POSITIVE));
    if let Some(a) = v("allocs/op") {
        m.insert("allocs_per_call".into(), a);
        m.insert("allocs_per_item".into(), a / items);
    }
    if let Some(bytes) = v("B/op") {
        m.insert("bytes_per_call".into(), bytes);
        m.insert("bytes_per_item".into(), bytes / items);
    }
    if let Some(gc) = v("gc/op") {
        m.insert("gc_per_call".into(), gc);
    }
    m.insert("go_calls".into(), b.iterations as f64);
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "goos: linux\ngoarch: amd64\npkg: perflab/inproc\ncpu: AMD EPYC\n\
BenchmarkStringBuilding/guide-builder         \t   20000\t       894.3 ns/op\t         0.0006000 gc/op\t       100.0 items/op\t    2048 B/op\t       1 allocs/op\n\
BenchmarkStringBuilding/join-2                \t   20000\t      1369 ns/op\t         0.001250 gc/op\t       100.0 items/op\t    4096 B/op\t       2 allocs/op\nPASS\n";

    #[test]
    fn a_benchmark_line_gives_the_micro_metrics() {
        let b = parse(OUT, "BenchmarkStringBuilding/guide-builder").unwrap();
        assert_eq!(b.iterations, 20_000);
        let s = into_sample(&b).unwrap();
        assert_eq!(s.metrics["time_ns"], 894.3);
        assert!((s.metrics["time_per_item_ns"] - 8.943).abs() < 1e-9);
        assert_eq!(s.metrics["allocs_per_call"], 1.0);
        assert_eq!(s.metrics["bytes_per_item"], 20.48);
        assert_eq!(s.metrics["gc_per_call"], 0.0006);
        // GOMAXPROCS above 1 adds "-N"; another benchmark's prefix is not a match.
        assert_eq!(parse(OUT, "BenchmarkStringBuilding/join").unwrap().values["B/op"], 4096.0);
        assert!(parse(OUT, "BenchmarkStringBuilding/guide").is_none());
        assert!(parse(OUT, "BenchmarkStringBuilding/concat").is_none());
        assert!(into_sample(&GoBench { iterations: 1, values: HashMap::new() }).is_err(), "no ns/op, no sample");
        assert!(valid_bench("StringBuilding/guide-builder") && valid_bench("Synthetic"));
        for bad in ["String.Building/x", "StringBuilding/a|b", "StringBuilding/", "/x", "A/b/c", "A/b c"] {
            assert!(!valid_bench(bad), "{bad}");
        }
    }

    #[test]
    fn a_whole_sample_line_gives_its_metrics_errors_and_latency() {
        let out = "goos: linux\nperflab-sample {\"metrics\":{\"ops_per_sec\":1234.5,\"threads\":2},\"errors\":{\"key missing\":3},\"latency\":{\"count\":9,\"min_us\":0.1,\"mean_us\":0.2,\"max_us\":0.9,\"percentiles_us\":[[50.0,0.2],[99.0,0.8]]}}\nBenchmarkX/y-2 1 5 ns/op\n";
        let (s, process) = parse_sample(out).unwrap();
        assert_eq!(process, None, "a line without process use has none");
        assert_eq!(s.metrics["ops_per_sec"], 1234.5);
        assert_eq!(s.errors["key missing"], 3);
        assert_eq!(s.latency.unwrap().percentiles_us[1], (99.0, 0.8));
        assert!(parse_sample("BenchmarkX/y 1 5 ns/op\n").is_err(), "no line, no sample");
        assert!(
            parse_sample("perflab-sample {\"metrics\":{\"x\":1},\"other\":1}\n").is_err(),
            "unknown fields are refused"
        );
    }

    /// The Go package is vetted and its own tests pass (every variant does the same work).
    #[test]
    fn the_go_package_is_vetted_and_its_tests_pass() {
        assert_eq!(missing(), None, "this test needs Go (the project's machines carry 1.26)");
        for args in [&["vet", "./..."][..], &["test", "-count=1", "./..."]] {
            let out =
                std::process::Command::new(toolchain().unwrap()).args(args).current_dir(module_dir()).output().unwrap();
            assert!(
                out.status.success(),
                "go {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The plumbing on a routine of known cost: `Synthetic/alloc64` allocates one 64-byte
    /// object per call, `Synthetic/none` nothing. Needs the Go toolchain, as CI has.
    #[tokio::test(flavor = "current_thread")]
    async fn a_known_go_routine_is_measured_with_its_allocations() {
        assert_eq!(missing(), None, "this test needs Go (the project's machines carry 1.26)");
        let mut settings = Settings::quick_for_tests();
        settings.duration = std::time::Duration::from_millis(50);
        let point = crate::results::SweepPoint { label: "1".into(), value: 1.0 };
        for (sub, allocs, bytes) in [("alloc64", 1.0, 64.0), ("none", 0.0, 0.0)] {
            let at = Trial { case: "", variant: sub, point: &point, offered: None, round: 0 };
            let first = measure(&settings, "selftest-go", &format!("Synthetic/{sub}"), at, &[]).await.unwrap();
            let second = measure(&settings, "selftest-go", &format!("Synthetic/{sub}"), at, &[]).await.unwrap();
            for s in [&first, &second] {
                assert_eq!(s.metrics["allocs_per_call"], allocs, "{sub}");
                assert_eq!(s.metrics["bytes_per_call"], bytes, "{sub}");
                assert!(s.metrics["time_ns"] > 0.0, "{sub}");
            }
            assert_eq!(
                first.metrics["go_calls"], second.metrics["go_calls"],
                "{sub}: N is fixed after the first sample"
            );
        }
    }
}
