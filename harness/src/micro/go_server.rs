//! Go servers the harness's own load drives: the server side of the Go originals (the guide's
//! middleware and services in net/http), started from the same test binary as the other Go
//! originals and measured exactly as the Rust services are, by the experiment's `Run`.
//!
//! The contract (`go/inproc/serve_test.go`): the benchmark runs once with `PERFLAB_SERVE=1`,
//! starts its server on loopback and prints `perflab-listening ADDR`; it serves until its stdin
//! is closed, then prints one `perflab-sample` line with the server's own metrics (a scrape's
//! size, its memory growth) and ends. The process is the lab's child, in a process group of
//! its own, killed if the harness dies or the server is dropped, and tracked by the reaper
//! meanwhile; nothing of the shell's `PG…` or `PERFLAB_…` variables reaches it.

use crate::results::Trial;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

/// What the report says of Go originals that are servers.
pub const NOTE: &str = "The go-… variants are the guide's Go code (go/inproc) serving: for every sample the harness starts the Go test binary, whose net/http server (the guide's middleware in front of the same service) listens on loopback, and drives it with its own load engine, the same clients, connections and requests as the Rust services get; the Go process is stopped after the sample and reports its own metrics (its registry's scrape, its memory growth). GOMAXPROCS is the machine's cores and the runtime runs with its default settings. The Go server is a process of its own where the Rust services run in the harness's: the harness's resources are its load's only. They are compared with one another only, never with a Rust variant.";

/// The line a Go server prints once it listens.
pub const LISTENING_LINE: &str = "perflab-listening ";

/// How long a Go server may take to listen, and to report and end once stopped.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running Go server (killed when dropped).
pub struct GoServer {
    child: tokio::process::Child,
    pid: Option<u32>,
    addr: SocketAddr,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: BufReader<tokio::process::ChildStdout>,
    stderr: tokio::task::JoinHandle<String>,
    bench: &'static str,
}

impl GoServer {
    /// Start Go benchmark `bench` (`MetricsServer/guide-raw-path`) as a server for `at`'s case
    /// and point, with `env` (the experiment's own settings, as `PERFLAB_…` variables), and
    /// wait until it listens.
    pub async fn start(bench: &'static str, at: Trial<'_>, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let bin = super::go::test_binary().await?;
        let procs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (mut cmd, _) = super::go::command(&bin, bench, at.point, "1x", procs)?;
        cmd.env("PERFLAB_CASE", at.case).env("PERFLAB_SERVE", "1").envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl and setpgid are async-signal-safe and touch only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().context("cannot start the Go server")?;
        let pid = child.id();
        if let Some(pid) = pid {
            crate::reaper::track_child(pid);
        }
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_string(&mut text).await;
            }
            text
        });
        let mut server = GoServer {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdin,
            stdout: BufReader::new(stdout.context("the Go server's stdout")?),
            stderr,
            bench,
        };
        let mut output = String::new();
        let listening = tokio::time::timeout(START_LIMIT, async {
            let mut line = String::new();
            loop {
                line.clear();
                if server.stdout.read_line(&mut line).await? == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                if let Some(addr) = line.trim_end().strip_prefix(LISTENING_LINE) {
                    return Ok(Some(addr.to_owned()));
                }
                output.push_str(&line);
            }
        })
        .await;
        match listening {
            Ok(Ok(Some(addr))) => {
                server.addr = addr.parse().with_context(|| format!("the Go server {bench} listens on {addr:?}"))?;
                Ok(server)
            }
            Ok(Ok(None)) | Ok(Err(_)) => Err(server.failure("ended before it listened", &output).await),
            Err(_) => Err(server.failure(&format!("did not listen within {} s", START_LIMIT.as_secs()), &output).await),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// CPU seconds the server's process has used so far (/proc: to its clock's ticks).
    pub fn cpu_s(&self) -> Option<f64> {
        crate::resources::process_cpu_s(self.pid?)
    }

    /// Stop serving: the server's stdin closes, it reports its own metrics and ends.
    pub async fn stop(mut self) -> anyhow::Result<BTreeMap<String, f64>> {
        drop(self.stdin.take());
        let mut rest = String::new();
        let read = tokio::time::timeout(START_LIMIT, self.stdout.read_to_string(&mut rest)).await;
        let status = match read {
            Ok(Ok(_)) => tokio::time::timeout(START_LIMIT, self.child.wait()).await.ok().and_then(Result::ok),
            _ => None,
        };
        if !status.is_some_and(|s| s.success()) {
            return Err(self.failure("did not report and end once stopped", &rest).await);
        }
        let (sample, _) = super::go::parse_sample(&rest)?;
        Ok(sample.metrics)
    }

    /// The error of a server that failed: what it printed that says why, redacted, in a line.
    async fn failure(&mut self, what: &str, stdout: &str) -> anyhow::Error {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        let why = stdout
            .lines()
            .chain(stderr.lines())
            .map(str::trim)
            .find(|l| l.starts_with("panic:") || l.starts_with("fatal error:") || l.contains(".go:"))
            .or_else(|| stderr.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("no output");
        anyhow::anyhow!("the Go server {} {what}: {}", self.bench, crate::redact::redact(why))
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        // kill_on_drop ends the process; the reaper need not sweep it.
        if let Some(pid) = self.pid {
            crate::reaper::untrack_child(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Go server listens, answers, reports its own metrics once stopped and ends; one that
    /// never listens fails in one line, and nothing of either is left running. Needs the Go
    /// toolchain, as CI has.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_go_server_serves_until_stopped_and_reports() {
        assert_eq!(super::super::go::missing(), None, "this test needs Go (the project's machines carry 1.26)");
        let point = crate::results::SweepPoint { label: "1".into(), value: 1.0 };
        let at = Trial { case: "", variant: "go-guide-raw-path", point: &point, offered: None, round: 0 };
        let server = GoServer::start("MetricsServer/guide-raw-path", at, &[]).await.unwrap();
        let pid = server.pid.unwrap();
        let mut client = crate::kit::http::RawClient::connect(server.addr()).await.unwrap();
        for id in [1, 2, 1] {
            client.get_ok(&format!("/items/{id}"), "").await.unwrap();
        }
        let metrics = server.stop().await.unwrap();
        assert_eq!(metrics["series"], 2.0, "one series per distinct path: {metrics:?}");
        assert!(metrics["scrape_kb"] > 0.0 && metrics.contains_key("rss_growth_mb"), "{metrics:?}");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the server ended");

        let err = GoServer::start("MetricsServer/nothing-of-that-name", at, &[]).await.err().unwrap();
        assert!(err.to_string().contains("ended before it listened"), "{err}");
    }
}
