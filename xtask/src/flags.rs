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
    /// input or no servers to run with.
    Bench(BenchArgs),
    /// Render the report of a run again from its results.json alone.
    Report(ReportArgs),
    /// List the experiments of the catalogue.
    List,
    /// Write schema/results.schema.json, the JSON Schema of results.json.
    Schema,
    /// Internal: the micro engine's timing worker, started by `bench`.
    #[command(hide = true)]
    MicroWorker {
        /// The measurement to make, as JSON.
        job: String,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Run only experiments whose id matches: a glob (`pg-*`), several separated by commas.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Quick mode: fewer sweep points, smaller data, 2 repetitions of 400 ms (for CI).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of each variant at each sweep point (default 5, quick 2).
    #[arg(long, value_name = "N")]
    pub reps: Option<u32>,
    /// Measured time per sample, e.g. 5s, 500ms, 1m (default 5s, quick 400ms).
    #[arg(long, value_name = "D")]
    pub duration: Option<String>,
    /// Warm-up before each sample is measured (default 1s, quick 150ms).
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
    /// Directory for runs (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also count instructions of in-process experiments with valgrind (callgrind): the
    /// noise-free number for a nightly regression gate. Skipped with a note without valgrind.
    #[arg(long)]
    pub instructions: bool,
    /// Seed of the order the variants run in (shuffled per sweep point, rotated per
    /// repetition); default: a new one each run, recorded in results.json to repeat a run.
    #[arg(long, value_name = "N")]
    pub order_seed: Option<u64>,
    /// Do not render the HTML report at the end.
    #[arg(long)]
    pub no_report: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory or a results.json (default: the latest run in reports/).
    pub run: Option<PathBuf>,
    /// Directory to look for the latest run in (default: reports/ in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
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
