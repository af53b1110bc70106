//! `cargo xtask selftest`: runs `xtask::selftest`'s experiments (micro engine; load engine on
//! an ephemeral Redis) at `bench --quick`'s settings, split over several sessions, then
//! counts over every session how often the A/A comparison was called different (the
//! false-positive rate, with its 95 % interval) and how often each known slowdown was found,
//! with the rounds and time a comparison took. The rates are printed and added to the last
//! session's notes; each session's run and report stay like any other.

use crate::flags::{default_reports_dir, SelftestArgs};
use crate::{report, Failure};
use harness::provision::Request;
use harness::results::{self, ExperimentResult, ExperimentStatus, StopReason, VerdictKind};
use harness::session::{Session, SessionPlan};
use harness::Experiment;
use std::path::PathBuf;
use std::process::ExitCode;
use xtask::selftest::{family, Kind, SelfTest, SIZES};

/// The false-positive rate the method is designed for.
const ALPHA: f64 = 0.05;

pub fn selftest(args: SelftestArgs) -> Result<ExitCode, Failure> {
    if !(20..=100_000).contains(&args.comparisons) {
        return Err(Failure::usage("--comparisons must be between 20 and 100000"));
    }
    if args.detect > 100_000 {
        return Err(Failure::usage("--detect must be at most 100000"));
    }
    if args.sessions == 0 || args.sessions > args.comparisons {
        return Err(Failure::usage("--sessions must be between 1 and --comparisons"));
    }
    let kinds: Vec<Kind> = match args.engine.as_str() {
        "micro" => vec![Kind::Micro],
        "load" => vec![Kind::Load],
        "both" => vec![Kind::Micro, Kind::Load],
        e => return Err(Failure::usage(format!("--engine {e:?}: micro, load or both"))),
    };
    let duration = match args.duration.as_deref().map(crate::flags::parse_duration) {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => return Err(Failure::usage(format!("--duration: {e}"))),
        None => None,
    };
    let out = args.out.clone().unwrap_or_else(default_reports_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from)?;
    let mut tallies: Vec<Tally> = Vec::new();
    let mut last = None;
    // Progress: comparisons done of all the selftest's, after each experiment.
    let total = kinds.len() * (args.comparisons + (SIZES.len() - 1) * args.detect);
    let mut progress = Progress { done: 0, total, started: std::time::Instant::now() };
    for s in 0..args.sessions {
        // This session's part of the comparisons: an equal split, the remainder to the first.
        let part = |n: usize| n / args.sessions + usize::from(s < n % args.sessions);
        let mut experiments: Vec<SelfTest> = Vec::new();
        for &kind in &kinds {
            for t in family(kind, 1) {
                let n = part(if t.extra() == 0 { args.comparisons } else { args.detect });
                if n > 0 {
                    experiments.push(SelfTest::new(kind, t.extra(), n));
                }
            }
        }
        let boxed: Vec<Box<dyn Experiment>> =
            experiments.into_iter().map(|e| Box::new(e) as Box<dyn Experiment>).collect();
        let mut settings = crate::bench::user_defaults(!args.full);
        settings.duration = duration.unwrap_or(settings.duration);
        settings.order_seed = u64::from(std::process::id()) ^ (s as u64) << 32;
        let (results, path) = runtime.block_on(session(
            &boxed,
            settings,
            &out,
            kinds.contains(&Kind::Load),
            s,
            args.sessions,
            &mut progress,
        ))?;
        for (e, r) in boxed.iter().zip(&results.experiments) {
            let meta = e.meta();
            let t = match tallies.iter_mut().find(|t| t.id == meta.id) {
                Some(t) => t,
                None => {
                    let kind = if e.engine().is_micro() { Kind::Micro } else { Kind::Load };
                    let extra = SIZES.iter().copied().find(|x| meta.id.ends_with(&suffix(*x))).unwrap_or(0);
                    tallies.push(Tally::new(meta.id, kind, extra));
                    tallies.last_mut().expect("just pushed")
                }
            };
            t.add(r);
        }
        last = Some((results, path));
    }
    let (mut results, path) = last.expect("at least one session");
    let mut miscalibrated = false;
    let mut lines = Vec::new();
    for &kind in &kinds {
        let of_kind: Vec<&Tally> = tallies.iter().filter(|t| t.kind == kind).collect();
        for t in &of_kind {
            let (line, too_high) = t.line();
            miscalibrated |= too_high;
            lines.push(format!("{} engine, {line}", kind.name()));
        }
        let smallest = of_kind.iter().filter(|t| t.extra > 0 && t.with_verdict() > 0).find(|t| t.rate() >= 0.8);
        lines.push(match smallest {
            Some(t) => format!(
                "{} engine: the smallest slowdown found in at least 80 % of its comparisons is +{} % (the minimum detectable effect at {}).",
                kind.name(),
                t.extra / 10,
                match (args.full, &args.duration) {
                    (false, None) => "bench --quick's settings".to_owned(),
                    (true, None) => "a full run's settings".to_owned(),
                    (full, Some(d)) => format!("{} settings with {d} samples", if full { "a full run's" } else { "--quick's" }),
                }
            ),
            None => format!(
                "{} engine: no slowdown tried was found in 80 % of its comparisons: the minimum detectable effect is above +10 %.",
                kind.name()
            ),
        });
    }
    for l in &lines {
        println!("{l}");
    }
    if let Some(e) = results.experiments.first_mut() {
        e.notes.push(format!("Over all {} session(s) of this selftest:", args.sessions));
        e.notes.extend(lines);
    }
    results::save(&path, &results).map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    let page = report::render_run(&path)?;
    eprintln!("report of the last session: {}", page.display());
    if miscalibrated {
        eprintln!("selftest: an A/A false-positive rate's 95 % interval lies wholly above 5 %: the method is miscalibrated on this machine");
        return Ok(ExitCode::from(5));
    }
    Ok(ExitCode::SUCCESS)
}

/// Comparisons done so far of the whole selftest's.
struct Progress {
    done: usize,
    total: usize,
    started: std::time::Instant,
}

/// One session: its own servers, every experiment once, its own run directory.
async fn session(
    experiments: &[Box<dyn Experiment>],
    settings: results::Settings,
    out: &std::path::Path,
    need_redis: bool,
    index: usize,
    sessions: usize,
    progress: &mut Progress,
) -> Result<(results::RunResults, PathBuf), Failure> {
    let (mut session, _) = Session::start(SessionPlan {
        experiments,
        settings,
        request: Request { need_redis, ..Request::default() },
        out: out.to_owned(),
        instructions: false,
        arguments: std::env::args().collect(),
        workspace: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        against: None,
        resume: None,
    })
    .await
    .map_err(crate::bench::failure)?;
    for e in experiments {
        let m = e.meta();
        eprintln!(
            "selftest, session {} of {sessions}: {} ({} comparisons)…",
            index + 1,
            m.id,
            m.sweep.points(true).len()
        );
        let (r, _) = session.run(e.as_ref(), &|_| {}).await.map_err(crate::bench::failure)?;
        if let ExperimentStatus::Failed { error } = &r.status {
            return Err(Failure::Run(format!("{} failed: {error}", m.id)));
        }
        progress.done += r.analysis.len();
        eprintln!(
            "selftest: {} of {} comparisons done, {:.0} s",
            progress.done,
            progress.total,
            progress.started.elapsed().as_secs_f64()
        );
    }
    session.finish().map_err(crate::bench::failure)
}

fn suffix(extra: u32) -> String {
    if extra == 0 {
        "-aa".into()
    } else {
        format!("-plus{}", extra / 10)
    }
}

/// One kind of comparison on one engine, over every session.
struct Tally {
    id: &'static str,
    kind: Kind,
    extra: u32,
    /// Comparisons with a verdict, and of them the hits: a difference called (A/A), a
    /// slowdown found (worse).
    verdicts: usize,
    hits: usize,
    /// Comparisons without a verdict (every sample left out), decided at a look, and the
    /// rounds each ran.
    none: usize,
    decided: usize,
    rounds: Vec<f64>,
    samples_ms: u64,
}

impl Tally {
    fn new(id: &'static str, kind: Kind, extra: u32) -> Self {
        Self { id, kind, extra, verdicts: 0, hits: 0, none: 0, decided: 0, rounds: Vec::new(), samples_ms: 0 }
    }

    fn add(&mut self, r: &ExperimentResult) {
        for p in &r.analysis {
            for c in p.comparisons.iter().filter(|c| c.variant != "a") {
                match c.verdict {
                    VerdictKind::Missing => self.none += 1,
                    v => {
                        self.verdicts += 1;
                        let hit = if self.extra == 0 {
                            matches!(v, VerdictKind::Better | VerdictKind::Worse)
                        } else {
                            v == VerdictKind::Worse
                        };
                        self.hits += usize::from(hit);
                    }
                }
            }
        }
        self.decided += r.rounds.iter().filter(|p| p.stop == StopReason::Decided).count();
        self.rounds.extend(r.rounds.iter().map(|p| f64::from(p.rounds)));
        self.samples_ms += r.time.as_ref().map_or(0, |t| t.samples_ms);
    }

    fn with_verdict(&self) -> usize {
        self.verdicts
    }

    fn rate(&self) -> f64 {
        if self.verdicts == 0 {
            0.0
        } else {
            self.hits as f64 / self.verdicts as f64
        }
    }

    /// Its line, and whether it is an A/A rate whose interval lies wholly above α.
    fn line(&self) -> (String, bool) {
        let (low, high) = wilson(self.hits, self.verdicts);
        let comparisons = self.rounds.len();
        let cost = format!(
            "{} of {comparisons} decided at a look, median {} rounds, {:.2} s of samples a comparison{}",
            self.decided,
            harness::stats::median(&self.rounds).map_or("no".into(), |m| format!("{m:.0}")),
            self.samples_ms as f64 / 1000.0 / comparisons.max(1) as f64,
            if self.none > 0 {
                format!("; {} without a verdict (every sample left out)", self.none)
            } else {
                String::new()
            }
        );
        let pct = |x: f64| format!("{:.1} %", x * 100.0);
        if self.extra == 0 {
            let too_high = self.verdicts > 0 && low > ALPHA;
            (
                format!(
                    "A/A: {} of {} comparisons of the same work with itself were called different: {} (95 % interval {}–{}; the design is α = 5 %{}). {cost}.",
                    self.hits,
                    self.verdicts,
                    pct(self.rate()),
                    pct(low),
                    pct(high),
                    if too_high { ": MISCALIBRATED" } else if low <= ALPHA { ", consistent" } else { "" }
                ),
                too_high,
            )
        } else {
            (
                format!(
                    "+{} %: the slowdown was found in {} of {} comparisons: {} (95 % interval {}–{}; the goal is 80 %). {cost}.",
                    self.extra / 10,
                    self.hits,
                    self.verdicts,
                    pct(self.rate()),
                    pct(low),
                    pct(high)
                ),
                false,
            )
        }
    }
}

/// The Wilson score interval (95 %) of a binomial proportion `hits` of `n`: unlike the normal
/// approximation, it stays inside [0, 1] and is honest at 0 hits.
fn wilson(hits: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, hits as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::wilson;

    /// Known values (Wilson 1927; e.g. Newcombe 1998, table I): 0 of 10 gives 0–27.8 %,
    /// 10 of 200 gives 2.7–9.0 %; the interval holds the estimate and stays in [0, 1].
    #[test]
    fn wilson_interval_matches_known_values() {
        let (l, h) = wilson(0, 10);
        assert!(l == 0.0 && (h - 0.2775).abs() < 5e-4, "{l} {h}");
        let (l, h) = wilson(10, 200);
        assert!((l - 0.0274).abs() < 5e-4 && (h - 0.0896).abs() < 5e-4, "{l} {h}");
        let (l, h) = wilson(200, 200);
        assert!(h == 1.0 && l > 0.98, "{l} {h}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
