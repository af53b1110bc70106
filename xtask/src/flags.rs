//! The command line, declared in one place; doc comments are the `--help`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// perflab: puts the techniques of a performance guide on trial against real Postgres and
/// Redis, decides with statistics which variant wins and by how much, and renders a report.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run experiments and render their report (reports/<run-id>/{results.json,index.html}).
    ///
    /// By default Postgres and Redis are ephemeral servers started from this machine's
    /// binaries and removed afterwards. Exit codes: 0 ok, 1 an experiment failed, 2 bad
    /// input or no servers to run with, 3 `--baseline NAME --fail-on-regression` or
    /// `--against REV` found a regression, 130/143 interrupted by Ctrl-C/SIGTERM.
    Bench(BenchArgs),
    /// Render the report of a run again from its results.json alone.
    Report(ReportArgs),
    /// Compare two runs: every experiment × case × variant × point × metric present in both,
    /// old and new median ± CI, change, p and a verdict (regressed, improved, `~`, within
    /// noise); broken correctness checks first. Exit codes: 0 no regression, 3 regression,
    /// 2 bad input, 1 other errors.
    Compare(CompareArgs),
    /// Render history/index.html from every results.json under DIR (default reports/): each
    /// experiment's variants over time, with the change points E-Divisive finds.
    History {
        /// The directory of runs (default: reports/ in the workspace).
        dir: Option<PathBuf>,
    },
    /// Join the results.json of a run's parts into one run directory, with its report. A part
    /// is a shard (`bench --shard I/N`), a `--filter`ed run or an interrupted one, all at one
    /// commit with the same other settings, each experiment in one part only.
    Merge {
        /// The parts: run directories or results.json files.
        #[arg(required = true, num_args = 1..)]
        shards: Vec<PathBuf>,
        /// Directory to write the merged run into (default: reports/ in the workspace).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Join parts measured on different CPU models (a matrix of CI runners): each
        /// experiment then names its machine in a note. Every verdict still compares variants
        /// measured on one machine; only experiments' absolute numbers differ in footing.
        #[arg(long)]
        hosts_may_differ: bool,
    },
    /// The lab's own trial at `bench --quick`'s settings: per engine (micro; load, Redis GETs
    /// on an ephemeral server), A/A comparisons (--comparisons, default 200) and comparisons
    /// with a known slowdown inside the timed section (+2 %, +5 %, +10 %; --detect each),
    /// each run in rounds and stopped like any experiment, over several sessions. Prints the
    /// false-positive rate with its 95 % interval, each detection rate, the rounds and time a
    /// comparison took; exits 5 when the A/A rate's interval lies wholly above 5 % (the method
    /// is miscalibrated). Each session lands in DIR/<run-id>/ with its report.
    Selftest(SelftestArgs),
    /// Export a run's summaries for trend trackers: Bencher Metric Format (bmf.json) or
    /// github-action-benchmark (gab-smaller.json and gab-bigger.json), beside its results.json.
    Export(ExportArgs),
    /// List the experiments of the catalogue.
    List,
    /// Write schema/results.schema.json, the JSON Schema of results.json.
    Schema,
    /// Internal: serves one experiment's trials to a `bench --against` run.
    #[command(hide = true)]
    TrialServer {
        /// Print the trial protocol this build speaks and exit.
        #[arg(long)]
        protocol: bool,
    },
    /// Internal: the micro engine's timing worker, started by `bench`.
    #[command(hide = true)]
    MicroWorker {
        /// The measurement to make, as JSON.
        job: String,
    },
}

/// `cargo xtask selftest`: the method's error rates at `bench --quick`'s settings.
#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// A/A comparisons per engine: the false-positive rate's sample (at least 20).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub comparisons: usize,
    /// Comparisons per known slowdown (+2 %, +5 %, +10 %) and engine: the detection rates'
    /// sample (0: none).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub detect: usize,
    /// Sessions the comparisons are split over, each with its own servers and run directory,
    /// so that the rates cover what differs between sessions too.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub sessions: usize,
    /// micro, load or both.
    #[arg(long, default_value = "both", value_name = "ENGINE")]
    pub engine: String,
    /// Measure the method at a full run's settings (1 s samples, 4 to 12 rounds) instead of
    /// --quick's (150 ms samples, 3 to 9 rounds).
    #[arg(long)]
    pub full: bool,
    /// Measured time per sample instead of the mode's, e.g. 500ms: how the rates move with
    /// the sample's length.
    #[arg(long, value_name = "D")]
    pub duration: Option<String>,
    /// Directory for the runs (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Run only experiments whose id matches: a glob (`pg-*`), several separated by commas.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Quick mode: fewer sweep points, smaller data, rounds of 150 ms samples (3 to 9 per point).
    #[arg(long)]
    pub quick: bool,
    /// Rounds per sweep point, at most (one sample of every variant per round; default 12,
    /// quick 9; with --against a fixed 5, quick 4).
    #[arg(long, value_name = "N")]
    pub reps: Option<u32>,
    /// Rounds before a point may stop: from then on, at each planned look, a point whose
    /// claim comparison is decided stops (default 4, quick 3; 0: every point runs --reps).
    #[arg(long, value_name = "N")]
    pub min_rounds: Option<u32>,
    /// Measure only the claim's two trials (its variant and that variant's baseline): the other
    /// variants and cases are left out. Quick runs measure them in each point's first two rounds
    /// only, full runs in every round; under a budget, only where it leaves room for them.
    #[arg(long)]
    pub claim_only: bool,
    /// Time for the experiments' rounds, e.g. 5m, 60m, or none (default 4.5m quick, 60m full):
    /// every experiment not yet run keeps a reserve for its claim's minimum rounds and the rest
    /// is split by weight as they start (the trials outside the claim ride along only within
    /// a plain share), what one leaves rolls forward; a point past its share stops after its
    /// minimum rounds and says "budget". Setups, checks and the
    /// capacity search are never cut short (they take from the shares; under a budget the
    /// search covers the claim's two variants only); --against ignores it.
    /// A budget below what the experiments' minimum rounds alone take is refused (exit 2).
    #[arg(long, value_name = "D")]
    pub budget: Option<String>,
    /// Noisy neighbours: a round in which other processes (a build, a browser; and the
    /// hypervisor's steal) took more than this many cores on average over one of its samples
    /// is left out of every verdict, its pairs dropped (counted per point in the report), or
    /// none. Not checked where a server is out of sight (docker, external URLs).
    #[arg(long, env = "PERFLAB_NOISE_LIMIT", default_value = "0.5", value_name = "CORES")]
    pub noise_limit: String,
    /// Measured time per sample, e.g. 5s, 500ms, 1m (default 1s, quick 150ms).
    #[arg(long, value_name = "D")]
    pub duration: Option<String>,
    /// Warm-up before each sample is measured (default 250ms, quick 50ms).
    #[arg(long, value_name = "D")]
    pub warmup: Option<String>,
    /// Client concurrency for experiments whose sweep is not concurrency (default: their own).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// An experiment setting, `key=value` or `<experiment>.key=value`; repeatable
    /// (e.g. `--set pg-pagination.rows=50000`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where the servers come from: auto (URLs if given, else local binaries, else docker),
    /// local, docker (needs the `docker` feature) or external (URLs only).
    #[arg(long, default_value = "auto", value_name = "PROVIDER")]
    pub provider: String,
    /// An existing Postgres to use instead of an ephemeral one.
    #[arg(long, env = "PERFLAB_PG_URL", value_name = "URL")]
    pub pg_url: Option<String>,
    /// An existing Redis to use instead of an ephemeral one.
    #[arg(long, env = "PERFLAB_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// An existing Redis Cluster (one or more seed URLs, comma-separated) for the cluster
    /// experiment, instead of six ephemeral nodes.
    #[arg(long, env = "PERFLAB_REDIS_CLUSTER_URL", value_name = "URLS")]
    pub redis_cluster_url: Option<String>,
    /// Directory for runs (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also count instructions of in-process experiments with valgrind (callgrind): the
    /// noise-free number for a nightly regression gate. Skipped with a note without valgrind.
    #[arg(long)]
    pub instructions: bool,
    /// Seed of the order the variants run in (a Williams design over the rounds, its labels
    /// shuffled per sweep point); default: a new one each run, recorded in results.json to
    /// repeat a run.
    #[arg(long, value_name = "N")]
    pub order_seed: Option<u64>,
    /// Run the capacity search and stress (the highest rate each variant sustains within the
    /// guide's target, then 1.5× and 2× of it) where an experiment declares one: on by default
    /// in a full run, off in a quick one.
    #[arg(long, overrides_with = "no_capacity")]
    pub capacity: bool,
    /// Skip the capacity search in a full run.
    #[arg(long)]
    pub no_capacity: bool,
    /// Sample the harness's CPU (pprof-rs, 999 Hz) during one extra trial of each variant at
    /// the last sweep point: profiles/<experiment>/<variant>.pb.gz (pprof's format: `go tool
    /// pprof -http=: FILE`) and .svg (a flame graph) beside results.json, embedded in the
    /// report with the hottest functions. Load experiments only.
    #[arg(long)]
    pub profile: bool,
    /// Do not render the HTML report at the end.
    #[arg(long)]
    pub no_report: bool,
    /// Keep this run as baseline NAME (reports/baselines/NAME/results.json), for later
    /// `--baseline NAME` or `compare NAME`.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Compare this run with baseline NAME at the end (as `compare NAME <this run>`).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// With --baseline: exit 3 when the comparison finds a regression.
    #[arg(long, requires = "baseline")]
    pub fail_on_regression: bool,
    /// Exit 4 when a variant misses one of the guide's targets (p95 < 200 ms, > 1000 RPS,
    /// DB p95 < 50 ms, memory < 512 MB, CPU < 70 %, errors < 0.1 %) where its experiment is
    /// held to it.
    #[arg(long)]
    pub fail_on_target: bool,
    /// Run one shard of the selection: `I/N` runs every N-th experiment from the I-th (1-based),
    /// for a matrix of CI runners; `cargo xtask merge` joins the shards' results.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Also export the run: bmf or github-action-benchmark (see `export`).
    #[arg(long, value_name = "FORMAT")]
    pub export: Option<String>,
    /// Measure git revision REV beside this checkout, in the same run: REV is built once
    /// (cached in target/against/) and both builds serve each trial in turn, back to back,
    /// on the same servers, so drift hits them alike. The run ends with `compare` of REV
    /// against this checkout; exit 3 when it finds a regression.
    #[arg(long, value_name = "REV")]
    pub against: Option<String>,
    /// Continue an interrupted run in place: RUN is its directory (or its results.json). The
    /// run's own command line applies (its selection, settings, seed, baseline and export),
    /// so only the server flags and --no-report go with --resume. The experiments it finished
    /// are kept; the others run, one cut off mid-way from its start (rounds are saved per
    /// experiment), with what is left of its budget; it ends as one complete results.json and
    /// report. Refused unless this checkout is the run's commit with the same uncommitted
    /// changes. URLs are never stored: give an external server's again.
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "filter", "quick", "reps", "min_rounds", "claim_only", "budget", "duration", "warmup",
        "concurrency", "sets", "out", "instructions", "order_seed", "capacity", "no_capacity",
        "profile", "save_baseline", "baseline", "fail_on_regression", "fail_on_target", "shard",
        "export", "against",
    ])]
    pub resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The old run: a run directory, a results.json, or a baseline name. A run of two
    /// revisions (`bench --against REV`) given alone compares its two sides: REV, then this
    /// checkout.
    pub old: String,
    /// The new run (default: the latest run in reports/).
    pub new: Option<String>,
    /// Output: text (benchstat-like), markdown (for a pull-request comment) or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    pub format: String,
    /// Threshold for timings and rates, percent: a significant change smaller than this is
    /// "within noise" (default: harness::compare::DEFAULT_TIMING_THRESHOLD_PCT).
    #[arg(long, value_name = "PCT")]
    pub threshold: Option<f64>,
    /// Threshold for deterministic metrics (instructions, allocations, bytes), percent.
    #[arg(long, value_name = "PCT")]
    pub exact_threshold: Option<f64>,
    /// A threshold of its own for a metric, an experiment or one experiment's metric:
    /// `latency_p99_us=40`, `cache-warmup=50`, `pg-batch.latency_p50_us=10`; repeatable.
    #[arg(long = "threshold-for", value_name = "KEY=PCT")]
    pub threshold_for: Vec<String>,
    /// Refuse (exit 2) to compare runs whose contexts differ (host, servers, settings).
    #[arg(long)]
    pub strict: bool,
    /// What fails the gate: primary (each experiment's primary metric, every count and
    /// correctness check; the default), all (every metric) or deterministic (counts and
    /// correctness only, timings reported).
    #[arg(long, default_value = "", hide_default_value = true, value_name = "GATE")]
    pub gate: String,
    /// Also write an HTML page: old against new, one chart per experiment and case.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Where to look for runs and baselines (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run directory or a results.json (default: the latest run in reports/).
    pub run: Option<PathBuf>,
    /// bmf or github-action-benchmark.
    #[arg(long, value_name = "FORMAT")]
    pub format: String,
    /// Directory to look for the latest run in (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory or a results.json (default: the latest run in reports/).
    pub run: Option<PathBuf>,
    /// Directory to look for the latest run in (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// html: write index.html beside results.json (the whole report, one offline file);
    /// markdown: print the summary (the report's first screen: findings, targets, capacities)
    /// as Markdown for a pull-request comment or a wiki, and write it to summary.md beside
    /// results.json.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Html,
    Markdown,
}

/// The workspace's reports/ directory.
pub fn default_reports_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root).join("reports")
}

/// Parse `5s`, `500ms`, `1m`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let v: f64 = num.trim().parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. 5s, 500ms, 1m"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("invalid duration {s:?}: units are ms, s and m")),
    };
    // Stored in whole milliseconds: anything shorter would be recorded as 0.
    if !(secs.is_finite() && (0.001..=3600.0).contains(&secs)) {
        return Err(format!("invalid duration {s:?}: must be at least 1ms and at most 1h"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0.001ms").is_err(), "below a millisecond would be stored as 0");
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
