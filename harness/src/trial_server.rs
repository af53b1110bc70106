//! Two revisions in one run (`bench --against REV`). Each build runs an experiment in a trial
//! server of its own: a child process (`xtask trial-server`) that serves the experiment's hooks
//! (setup, one sample, checks, notes) one request at a time, on the servers and with the
//! settings of the run that started it. The runner drives both servers through `Hooks`, so the
//! two builds' trials interleave (old, new, new, old, …) as variants do, and a comparison of
//! revisions gets the protection a comparison of variants has: the same servers, data and
//! drift.
//!
//! The conversation is JSON lines on the child's stdin and stdout; stdout lines that do not
//! start with the protocol's mark are ignored (an experiment that prints cannot derail it).
//! The servers' URLs reach the child through its environment, never its command line. Each
//! build works in a schema and a Redis key prefix of its own, loaded with the same data.

use crate::experiment::{BoxFuture, Experiment, RunCtx, Trial};
use crate::provision::{self, Env, Provider};
use crate::results::{Check, Sample, Settings, SweepPoint};
use crate::runner::{Hooks, Local};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Version of the conversation; a build speaking another one is refused with a clear line.
pub const PROTOCOL: u32 = 1;

/// Every protocol line on the child's stdout starts with this.
const MARK: &str = "perflab-trial ";

const PG_URL_VAR: &str = "PERFLAB_TRIAL_PG_URL";
const REDIS_URL_VAR: &str = "PERFLAB_TRIAL_REDIS_URL";
const REDIS_CLUSTER_URL_VAR: &str = "PERFLAB_TRIAL_REDIS_CLUSTER_URL";
const PG_PID_VAR: &str = "PERFLAB_TRIAL_PG_PID";
const REDIS_PID_VAR: &str = "PERFLAB_TRIAL_REDIS_PID";
/// The side's tag (`base`, `this`): its Redis keys live under a prefix of their own.
use crate::provision::SIDE_VAR;

/// What the run asks a trial server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Request {
    Hello { protocol: u32, experiment: String, settings: Settings, instructions: bool },
    Setup,
    SetupPoint { point: SweepPoint },
    Measure { case: String, variant: String, point: SweepPoint, repetition: u32 },
    Checks,
    Notes,
}

/// What a trial server answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Connected and set to serve; with the experiment's variants and cases as this build
    /// has them (a build that predates them says nothing, and is asked every trial).
    Ready {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variants: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cases: Option<Vec<String>>,
    },
    Done,
    Sample {
        sample: Box<Sample>,
    },
    Checks {
        checks: Vec<Check>,
    },
    Notes {
        notes: Vec<String>,
    },
    Failed {
        error: String,
    },
}

pub use crate::provision::side_tag;

/// The body of `xtask trial-server`: serve one experiment of `catalogue` until stdin closes.
/// Errors go back as `Failed` replies; what cannot (no experiment, no servers) ends the
/// process with exit code 2 and one line.
pub fn serve(catalogue: Vec<Box<dyn Experiment>>) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: trial server: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(serve_inner(catalogue)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: trial server: {}", crate::redact::redact(&format!("{e:#}")));
            std::process::ExitCode::from(2)
        }
    }
}

async fn reply(out: &mut tokio::io::Stdout, r: &Reply) -> anyhow::Result<()> {
    let mut line = String::from(MARK);
    line.push_str(&serde_json::to_string(r)?);
    line.push('\n');
    out.write_all(line.as_bytes()).await?;
    out.flush().await?;
    Ok(())
}

async fn serve_inner(catalogue: Vec<Box<dyn Experiment>>) -> anyhow::Result<()> {
    // Stopped with the run: Ctrl-C, SIGTERM (also sent when the parent dies) drop the schemas.
    tokio::spawn(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        provision::cleanup_all();
        std::process::exit(143);
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let first = lines.next_line().await?.context("no hello on stdin")?;
    let Request::Hello { protocol, experiment, settings, instructions } =
        serde_json::from_str(&first).context("the first request is not a hello")?
    else {
        anyhow::bail!("the first request is not a hello");
    };
    if protocol != PROTOCOL {
        reply(
            &mut out,
            &Reply::Failed { error: format!("this build speaks trial protocol {PROTOCOL}, not {protocol}") },
        )
        .await?;
        anyhow::bail!("protocol {protocol} asked, {PROTOCOL} spoken");
    }
    let exp =
        catalogue.iter().find(|e| e.meta().id == experiment).with_context(|| format!("{NO_EXPERIMENT}{experiment}"));
    let exp = match exp {
        Ok(e) => e,
        Err(e) => {
            // An answer, not a failure: the runner runs the experiment on the other side
            // alone (NotInBuild), so nothing more is said on stderr.
            reply(&mut out, &Reply::Failed { error: e.to_string() }).await?;
            return Ok(());
        }
    };
    let meta = exp.meta();
    let request = provision::Request {
        provider: Provider::External,
        pg_url: std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty()),
        redis_url: std::env::var(REDIS_URL_VAR).ok().filter(|u| !u.is_empty()),
        redis_cluster_url: std::env::var(REDIS_CLUSTER_URL_VAR).ok().filter(|u| !u.is_empty()),
        need_postgres: meta.needs.postgres,
        need_redis: meta.needs.redis,
        need_redis_cluster: meta.needs.redis_cluster,
    };
    let mut env = match provision::provision(&request).await {
        Ok(env) => env,
        Err(e) => {
            reply(&mut out, &Reply::Failed { error: crate::redact::redact(&e.to_string()) }).await?;
            return Err(e.into());
        }
    };
    // The servers are the parent's: their processes are watched as if this build had
    // started them (CPU and memory per sample).
    let pid = |var: &str| std::env::var(var).ok().and_then(|p| p.parse::<u32>().ok());
    if let Some(pg) = env.pg.as_mut() {
        pg.pid = pid(PG_PID_VAR);
    }
    if let Some(r) = env.redis.as_mut() {
        r.pid = pid(REDIS_PID_VAR);
    }
    let mut notes = Vec::new();
    let micro = if exp.engine().is_micro() {
        crate::micro::Workers::discover(instructions, &mut notes)
    } else {
        crate::micro::Workers::default()
    };
    let ctx = RunCtx { probe: env.probe(), env, settings, micro, out_dir: None, deadline: None };
    let mut local = Local::new(exp.as_ref(), &ctx);
    // Its Go originals built before it says what it has: those it cannot run it lacks.
    local.prepare().await;
    let ready = Reply::Ready {
        variants: Some(meta.variants.iter().filter(|v| !local.lacks("", v.name)).map(|v| v.name.to_owned()).collect()),
        cases: Some(meta.case_names().into_iter().map(str::to_owned).collect()),
    };
    reply(&mut out, &ready).await?;
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::Failed { error: format!("unreadable request: {e}") },
            Ok(Request::Hello { .. }) => Reply::Failed { error: "hello twice".into() },
            Ok(Request::Setup) => done(local.setup().await),
            Ok(Request::SetupPoint { point }) => match local.setup_point(&point).await {
                Ok(checks) => Reply::Checks { checks },
                Err(e) => failed(e),
            },
            Ok(Request::Measure { case, variant, point, repetition }) => {
                match local
                    .measure(
                        Trial { case: &case, variant: &variant, point: &point, offered: None, round: repetition },
                        repetition,
                    )
                    .await
                {
                    Ok(sample) => Reply::Sample { sample: Box::new(sample) },
                    Err(e) => failed(e),
                }
            }
            Ok(Request::Checks) => match local.checks().await {
                Ok(checks) => Reply::Checks { checks },
                Err(e) => failed(e),
            },
            Ok(Request::Notes) => {
                let mut all = notes.clone();
                all.extend(local.notes().await);
                Reply::Notes { notes: all }
            }
        };
        reply(&mut out, &answer).await?;
    }
    drop(local);
    drop(ctx); // drops the schema this build worked in
    Ok(())
}

fn done(r: anyhow::Result<()>) -> Reply {
    match r {
        Ok(()) => Reply::Done,
        Err(e) => failed(e),
    }
}

fn failed(e: anyhow::Error) -> Reply {
    Reply::Failed { error: crate::redact::redact(&format!("{e:#}")) }
}

/// How a trial server says its build lacks the experiment asked for (the words are part of
/// the protocol: older builds say them too).
const NO_EXPERIMENT: &str = "this build has no experiment ";

/// A build asked for an experiment it does not have (one added or removed since): the
/// experiment runs on the other side only.
#[derive(Debug)]
pub struct NotInBuild(pub String);

impl std::fmt::Display for NotInBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has no experiment of this id", self.0)
    }
}

impl std::error::Error for NotInBuild {}

/// A trial server of some build, serving one experiment: the runner's other `Hooks`.
pub struct Remote {
    label: String,
    /// The experiment's variants and cases in this build, where it said (`Reply::Ready`).
    variants: Option<Vec<String>>,
    cases: Option<Vec<String>>,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Remote {
    /// Start `exe trial-server` for `experiment` on the servers of `env`, as side `tag`
    /// (`label` names the build in messages, e.g. "the build of v1.2"); returns once it
    /// is connected and ready.
    pub async fn start(
        exe: &Path,
        label: &str,
        tag: &str,
        env: &Env,
        experiment: &str,
        settings: &Settings,
        instructions: bool,
    ) -> anyhow::Result<Remote> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("trial-server")
            .env(SIDE_VAR, tag)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        // Without CARGO the server's micro engine takes the allocation worker beside its own
        // executable instead of building this checkout's (the run built it already).
        // Without PERFLAB_GO_DIR it measures its own revision's Go originals, not this checkout's.
        for var in
            [PG_URL_VAR, REDIS_URL_VAR, REDIS_CLUSTER_URL_VAR, PG_PID_VAR, REDIS_PID_VAR, "CARGO", "PERFLAB_GO_DIR"]
        {
            cmd.env_remove(var);
        }
        if let Some(pg) = &env.pg {
            cmd.env(PG_URL_VAR, &pg.secret_url.0);
            if let Some(pid) = pg.pid {
                cmd.env(PG_PID_VAR, pid.to_string());
            }
        }
        if let Some(r) = &env.redis {
            cmd.env(REDIS_URL_VAR, &r.url);
            if let Some(pid) = r.pid {
                cmd.env(REDIS_PID_VAR, pid.to_string());
            }
        }
        if let Some(c) = &env.redis_cluster {
            let seeds: Vec<&str> = c.nodes.iter().map(|n| n.url.as_str()).collect();
            cmd.env(REDIS_CLUSTER_URL_VAR, seeds.join(","));
        }
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                // The trial server gets SIGTERM when this process dies, and cleans up.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().with_context(|| format!("cannot start {label}'s trial server ({})", exe.display()))?;
        if let Some(pid) = child.id() {
            crate::reaper::track_child(pid);
        }
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut remote = Remote {
            label: label.to_owned(),
            variants: None,
            cases: None,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let hello = Request::Hello {
            protocol: PROTOCOL,
            experiment: experiment.to_owned(),
            settings: settings.clone(),
            instructions,
        };
        match remote.call(&hello).await? {
            Reply::Ready { variants, cases } => {
                (remote.variants, remote.cases) = (variants, cases);
                Ok(remote)
            }
            Reply::Failed { error } if error.starts_with(NO_EXPERIMENT) => {
                remote.finish().await;
                Err(NotInBuild(label.to_owned()).into())
            }
            other => Err(remote.unexpected(other)),
        }
    }

    async fn call(&mut self, req: &Request) -> anyhow::Result<Reply> {
        let mut line = serde_json::to_string(req)?;
        line.push('\n');
        let sent = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await
        }
        .await;
        if sent.is_err() {
            return Err(self.gone().await);
        }
        loop {
            match self.lines.next_line().await {
                Ok(Some(l)) => {
                    if let Some(json) = l.strip_prefix(MARK) {
                        return serde_json::from_str(json)
                            .with_context(|| format!("{}'s trial server sent an unreadable reply", self.label));
                    }
                }
                Ok(None) | Err(_) => return Err(self.gone().await),
            }
        }
    }

    async fn gone(&mut self) -> anyhow::Error {
        let status = tokio::time::timeout(std::time::Duration::from_secs(5), self.child.wait()).await;
        match status {
            Ok(Ok(s)) => anyhow::anyhow!("{}'s trial server exited ({s}); its error is printed above", self.label),
            _ => anyhow::anyhow!("{}'s trial server stopped answering", self.label),
        }
    }

    fn unexpected(&self, r: Reply) -> anyhow::Error {
        match r {
            Reply::Failed { error } => anyhow::anyhow!("{} build: {error}", self.label),
            other => anyhow::anyhow!("{}'s trial server answered out of turn: {other:?}", self.label),
        }
    }

    /// End the conversation: the server drops the schema it worked in and exits (killed if
    /// it has not within 15 s).
    pub async fn finish(self) {
        let Remote { mut child, stdin, lines, .. } = self;
        drop(stdin);
        drop(lines);
        let pid = child.id();
        if tokio::time::timeout(std::time::Duration::from_secs(15), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        if let Some(pid) = pid {
            crate::reaper::untrack_child(pid);
        }
    }

    /// A `Done`, `Checks` or `Sample` reply to `req`, or the error it reported.
    async fn expect(&mut self, req: Request) -> anyhow::Result<Reply> {
        match self.call(&req).await? {
            Reply::Failed { error } => Err(anyhow::anyhow!("{} build: {error}", self.label)),
            r => Ok(r),
        }
    }
}

impl Hooks for Remote {
    fn lacks(&self, case: &str, variant: &str) -> bool {
        let without =
            |have: &Option<Vec<String>>, name: &str| have.as_ref().is_some_and(|h| !h.iter().any(|x| x == name));
        without(&self.variants, variant) || without(&self.cases, case)
    }

    fn setup(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            match self.expect(Request::Setup).await? {
                Reply::Done => Ok(()),
                other => Err(self.unexpected(other)),
            }
        })
    }

    fn setup_point<'a>(&'a mut self, point: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            match self.expect(Request::SetupPoint { point: point.clone() }).await? {
                Reply::Checks { checks } => Ok(checks),
                other => Err(self.unexpected(other)),
            }
        })
    }

    fn measure<'a>(&'a mut self, at: Trial<'a>, repetition: u32) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            let req = Request::Measure {
                case: at.case.to_owned(),
                variant: at.variant.to_owned(),
                point: at.point.clone(),
                repetition,
            };
            match self.expect(req).await? {
                Reply::Sample { sample } => Ok(*sample),
                other => Err(self.unexpected(other)),
            }
        })
    }

    fn checks(&mut self) -> BoxFuture<'_, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            match self.expect(Request::Checks).await? {
                Reply::Checks { checks } => Ok(checks),
                other => Err(self.unexpected(other)),
            }
        })
    }

    fn notes(&mut self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            match self.expect(Request::Notes).await {
                Ok(Reply::Notes { notes }) => notes,
                Ok(other) => vec![self.unexpected(other).to_string()],
                Err(e) => vec![format!("{e:#}")],
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build from before `Ready` carried the variants is still understood (it is asked every
    /// trial, as then); a build that says them round-trips.
    #[test]
    fn ready_with_and_without_the_variants() {
        let old: Reply = serde_json::from_str(r#"{"reply":"ready"}"#).unwrap();
        assert!(matches!(old, Reply::Ready { variants: None, cases: None }));
        let new = Reply::Ready { variants: Some(vec!["x".into()]), cases: Some(vec![String::new()]) };
        let back: Reply = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert!(matches!(back, Reply::Ready { variants: Some(v), cases: Some(c) } if v == ["x"] && c == [""]));
    }
}
