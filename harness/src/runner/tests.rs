//! The runner's tests: the order of trials, two builds' sides, a variant one build lacks, and
//! the sequential plan's early stop, on sides that record or synthesise their samples.

use super::*;

#[test]
fn over_one_cycle_every_trial_takes_every_position_and_follows_every_other_equally_often() {
    for n in 1..8 {
        let cycle = if n % 2 == 0 { n } else { 2 * n };
        for point in 0..3 {
            let mut position = vec![vec![0u32; n]; n];
            let mut after = vec![vec![0u32; n]; n];
            for rep in 0..cycle as u32 {
                let order = variant_order(n, 42, point, rep);
                let mut sorted = order.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
                for (pos, &v) in order.iter().enumerate() {
                    position[v][pos] += 1;
                }
                for w in order.windows(2) {
                    after[w[0]][w[1]] += 1;
                }
            }
            let each = (cycle / n) as u32;
            assert!(position.iter().flatten().all(|&c| c == each), "n={n}: positions {position:?}");
            for (a, row) in after.iter().enumerate() {
                for (b, &c) in row.iter().enumerate() {
                    // Carry-over balance: b runs right after a as often as after any other.
                    assert_eq!(c, if a == b { 0 } else { each }, "n={n}: {a} then {b}: {after:?}");
                }
            }
            if n % 2 == 1 {
                // The mirror square: the second half's rows are the first half's reversed.
                let mut back = variant_order(n, 42, point, n as u32);
                back.reverse();
                assert_eq!(back, variant_order(n, 42, point, 0), "n={n}");
            }
        }
    }
}

#[test]
fn the_order_changes_with_the_seed_and_is_reproducible() {
    assert_eq!(variant_order(5, 7, 0, 0), variant_order(5, 7, 0, 0));
    let distinct: std::collections::BTreeSet<Vec<usize>> = (0..20).map(|s| variant_order(5, s, 0, 0)).collect();
    assert!(distinct.len() > 5, "the seed shuffles: {distinct:?}");
}

/// A side that records what it was asked, in one shared log.
struct Recorder {
    name: &'static str,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Variants this side's build does not have.
    lacks: &'static [&'static str],
}

impl Hooks for Recorder {
    fn setup(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        self.log.lock().unwrap().push(format!("{} setup", self.name));
        Box::pin(async { Ok(()) })
    }
    fn setup_point<'a>(&'a mut self, p: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        self.log.lock().unwrap().push(format!("{} point {}", self.name, p.label));
        Box::pin(async { Ok(Vec::new()) })
    }
    fn measure<'a>(&'a mut self, at: Trial<'a>, repetition: u32) -> BoxFuture<'a, anyhow::Result<Sample>> {
        self.log.lock().unwrap().push(format!("{} {} {}", self.name, at.variant, repetition));
        let mut sample =
            Sample { variant: at.variant.into(), point: at.point.label.clone(), repetition, ..Sample::default() };
        sample.metrics.insert("t".into(), if self.name == "b" { 2.0 } else { 1.0 });
        sample.metrics.insert("ok".into(), 10.0);
        Box::pin(async move { Ok(sample) })
    }
    fn checks(&mut self) -> BoxFuture<'_, anyhow::Result<Vec<Check>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn notes(&mut self) -> BoxFuture<'_, Vec<String>> {
        let n = vec![format!("side {}", self.name)];
        Box::pin(async move { n })
    }
    fn lacks(&self, _case: &str, variant: &str) -> bool {
        self.lacks.contains(&variant)
    }
}

/// An experiment of two variants, x and y, at one point.
fn two_variants() -> Meta {
    Meta {
        id: "two",
        title: "t",
        guide_section: "-",
        claim: "c",
        variants: vec![crate::Variant::new("x", "x"), crate::Variant::new("y", "y")],
        sweep: crate::Sweep::numeric("n", "", &[1.0], &[1.0]),
        primary_metric: crate::MetricInfo::new("t", "s", crate::Better::Lower, "t"),
        ..Default::default()
    }
}

/// Two sides: every trial runs on both, back to back, the first one alternating, and each
/// side's samples land in its own result.
#[tokio::test]
async fn two_sides_run_every_trial_back_to_back_and_alternate_who_goes_first() {
    let ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
    let meta = two_variants();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut a = Recorder { name: "a", log: log.clone(), lacks: &[] };
    let mut b = Recorder { name: "b", log: log.clone(), lacks: &[] };
    let results = run_sides(&meta, &ctx, &mut [&mut a, &mut b], &|_| {}).await;
    let log = log.lock().unwrap().clone();
    let measured: Vec<&String> = log.iter().filter(|l| !l.contains("setup") && !l.contains("point")).collect();
    assert_eq!(measured.len(), 2 * 2 * ctx.settings.repetitions as usize);
    let mut firsts = std::collections::BTreeSet::new();
    for pair in measured.chunks(2) {
        let (p, q): (Vec<&str>, Vec<&str>) = (pair[0].split(' ').collect(), pair[1].split(' ').collect());
        assert_ne!(p[0], q[0], "a trial runs on both sides: {pair:?}");
        assert_eq!(p[1..], q[1..], "the same trial, back to back: {pair:?}");
        firsts.insert(p[0]);
    }
    assert_eq!(firsts.len(), 2, "each side goes first sometimes: {measured:?}");
    assert_eq!(results.len(), 2);
    assert!(results[0].samples.iter().all(|s| s.metrics["t"] == 1.0));
    assert!(results[1].samples.iter().all(|s| s.metrics["t"] == 2.0));
    assert_eq!(results[0].notes[0], "side a");
    assert_eq!(results[1].notes[0], "side b");
}

/// `bench --against` a build without one of the variants: its trials run on the other
/// side only, the run goes on, and the side that lacks it says so.
#[tokio::test]
async fn a_variant_one_build_lacks_runs_on_the_other_side_only() {
    let ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut a = Recorder { name: "a", log: log.clone(), lacks: &[] };
    let mut b = Recorder { name: "b", log: log.clone(), lacks: &["y"] };
    let results = run_sides(&two_variants(), &ctx, &mut [&mut a, &mut b], &|_| {}).await;
    let log = log.lock().unwrap().clone();
    let count = |prefix: &str| log.iter().filter(|l| l.starts_with(prefix)).count();
    let reps = ctx.settings.repetitions as usize;
    assert_eq!((count("a x"), count("a y"), count("b x"), count("b y")), (reps, reps, reps, 0), "{log:?}");
    assert!(results.iter().all(|r| matches!(r.status, ExperimentStatus::Ok)));
    assert!(results[1].samples.iter().all(|s| s.variant == "x"));
    assert!(results[0].samples.iter().any(|s| s.variant == "y"));
    assert!(results[1].notes.iter().any(|n| n.contains("This build has no y:")), "{:?}", results[1].notes);
    assert!(!results[0].notes.iter().any(|n| n.contains("This build has no")));
}

/// A side whose claim variant y takes `factor` times x's time, each sample with ±`noise`
/// of random spread (deterministic per round and variant). Each sample takes `pause` of wall
/// time, its setup four times that and each point's setup half.
struct Synthetic {
    factor: f64,
    noise: f64,
    pause: std::time::Duration,
    /// A round during which other processes take a whole core.
    noisy_round: Option<u32>,
    /// A variant whose correctness check fails at every point's setup (the others pass it).
    broken: Option<&'static str>,
}

impl Synthetic {
    fn new(factor: f64, noise: f64) -> Self {
        Self { factor, noise, pause: std::time::Duration::ZERO, noisy_round: None, broken: None }
    }
}

impl Hooks for Synthetic {
    fn setup(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        let pause = self.pause * 4;
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            Ok(())
        })
    }
    fn setup_point<'a>(&'a mut self, _: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        let pause = self.pause / 2;
        let checks = match self.broken {
            Some(broken) => ["x", "y", "z"]
                .iter()
                .map(|&v| Check::verdict(v, None, "same rows", 0.0, v != broken, "rows compared"))
                .collect(),
            None => Vec::new(),
        };
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            Ok(checks)
        })
    }
    fn measure<'a>(&'a mut self, at: Trial<'a>, repetition: u32) -> BoxFuture<'a, anyhow::Result<Sample>> {
        let y = at.variant == "y";
        let mut rng = crate::stats::SplitMix64::new(u64::from(repetition) * 2 + u64::from(y));
        let v = 100.0 * if y { self.factor } else { 1.0 } * (1.0 + self.noise * (2.0 * rng.next_f64() - 1.0));
        let mut sample =
            Sample { variant: at.variant.into(), point: at.point.label.clone(), repetition, ..Sample::default() };
        sample.metrics.insert("t".into(), v);
        sample.metrics.insert("ok".into(), 10.0);
        // A whole core over the 100 ms sample in the noisy round; elsewhere one 10 ms clock
        // tick, which on a short sample is /proc's resolution, not a neighbour.
        let others = if self.noisy_round == Some(repetition) { 0.12 } else { 0.01 };
        sample.resources = Some(crate::results::Resources {
            wall_s: 0.1,
            others: Some(crate::results::OthersCpu { cpu_s: others, steal_s: 0.0 }),
            ..Default::default()
        });
        let pause = self.pause;
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            Ok(sample)
        })
    }
    fn checks(&mut self) -> BoxFuture<'_, anyhow::Result<Vec<Check>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn notes(&mut self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

/// With a sequential plan (3 rounds at least, 6 at most: looks after 3 and 6), a point
/// whose claim is plainly decided stops at the first look, and one that is not runs to
/// the cap; every verdict is paired, at the plan's per-look level.
#[tokio::test]
async fn a_decided_point_stops_at_a_look_and_an_undecided_one_runs_to_the_cap() {
    let mut ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
    ctx.settings.repetitions = 6;
    ctx.settings.min_rounds = 3;
    let mut meta = two_variants();
    meta.variants = vec![crate::Variant::new("x", "x"), crate::Variant::new("y", "y").compared_with("x").tests_claim()];
    let run = |factor: f64, noise: f64| {
        let (ctx, meta) = (&ctx, &meta);
        async move {
            let mut side = Synthetic::new(factor, noise);
            run_sides(meta, ctx, &mut [&mut side], &|_| {}).await.pop().unwrap()
        }
    };
    let fast = run(0.5, 0.02).await;
    let plan = fast.sequential.clone().expect("a plan");
    assert_eq!(plan.looks, vec![3, 6]);
    assert_eq!((plan.family, plan.band), (1, 1.05), "one point, the default smallest effect");
    assert_eq!((fast.rounds[0].rounds, fast.rounds[0].stop), (3, StopReason::Decided));
    assert!(fast.rounds[0].detectable.is_some_and(|d| d > 0.0 && d < 0.2), "{:?}", fast.rounds);
    assert_eq!(fast.samples.len(), 6, "3 rounds of both variants");
    let c = fast.headline.clone().unwrap();
    assert_eq!((c.verdict, c.pairs), (crate::results::VerdictKind::Better, Some(3)), "{}", c.sentence);
    assert!((c.level.unwrap() - 0.975).abs() < 1e-12, "{c:?}");
    // A/A with 30 % spread: neither a difference nor a CI within 5 % after 3 rounds.
    let same = run(1.0, 0.3).await;
    assert_eq!((same.rounds[0].rounds, same.rounds[0].stop), (6, StopReason::Cap));
    // A budget already spent: the undecided point stops after its minimum rounds, and says so.
    let mut late = RunCtx::for_tests(false, false, &[]).await.unwrap();
    late.settings.repetitions = 6;
    late.settings.min_rounds = 3;
    late.deadline = Some(std::time::Instant::now());
    let mut side = Synthetic::new(1.0, 0.3);
    let spent = run_sides(&meta, &late, &mut [&mut side], &|_| {}).await.pop().unwrap();
    assert_eq!((spent.rounds[0].rounds, spent.rounds[0].stop), (3, StopReason::Budget));
    assert!(matches!(spent.status, ExperimentStatus::Ok), "finished rounds are kept and analysed");
    assert_eq!(spent.analysis[0].comparisons[0].pairs, Some(3));
    // Without a plan (min_rounds 0) every point runs the cap, as before.
    let mut fixed_ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
    fixed_ctx.settings.repetitions = 4;
    let mut side = Synthetic::new(0.5, 0.02);
    let fixed = run_sides(&meta, &fixed_ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
    assert!(fixed.sequential.is_none());
    assert_eq!(fixed.rounds[0].rounds, 4);
    assert_eq!(fixed.rounds[0].stop, StopReason::Fixed);
}

/// Under a budget the trials outside the claim ride along only where the point's share has
/// room for them beside the claim's minimum rounds: with the budget spent they never run,
/// with room (or without a budget) they run in every round the claim runs.
#[tokio::test]
async fn a_tight_budget_is_spent_on_the_claim_first() {
    let mut meta = two_variants();
    meta.variants = vec![
        crate::Variant::new("x", "x"),
        crate::Variant::new("y", "y").compared_with("x").tests_claim(),
        crate::Variant::new("z", "z").compared_with("y"),
    ];
    let run = |deadline: Option<std::time::Duration>, ride_along: Option<u32>| {
        let meta = &meta;
        async move {
            let mut ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
            ctx.settings.repetitions = 6;
            ctx.settings.min_rounds = 3;
            ctx.settings.ride_along = ride_along;
            ctx.deadline = deadline.map(|d| std::time::Instant::now() + d);
            let mut side = Synthetic::new(0.5, 0.02);
            let result = run_sides(meta, &ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
            let of = |v: &str| result.samples.iter().filter(|s| s.variant == v).count();
            let said = result.notes.iter().any(|n| n.contains("n 1: 0 of 3"));
            (of("x"), of("y"), of("z"), said)
        }
    };
    let (spent, room) = (Some(std::time::Duration::ZERO), Some(std::time::Duration::from_secs(600)));
    assert_eq!(run(spent, None).await, (3, 3, 0, true), "spent: the claim's minimum only, said");
    assert_eq!(run(room, None).await, (3, 3, 3, false), "room: z rides along");
    assert_eq!(run(None, None).await, (3, 3, 3, false), "no budget: z rides along");
    // Its own ride-along limit is not the budget's doing: nothing to say.
    assert_eq!(run(room, Some(2)).await, (3, 3, 2, false), "two rounds of riding, as set");
    assert_eq!(run(spent, Some(0)).await, (3, 3, 0, false), "--claim-only: no riders, no note");
}

/// A claim variant that fails a correctness check before the rounds hands the claim's rounds
/// to the variant that stands in for it: with no riders (`--claim-only`) the stand-in runs in
/// every round the claim does, and the point stops once the stand-in's comparison is decided.
#[tokio::test]
async fn a_stand_in_found_before_the_rounds_gets_the_claims_rounds() {
    let mut meta = two_variants();
    meta.variants = vec![
        crate::Variant::new("x", "x"),
        crate::Variant::new("y", "y").compared_with("x").tests_claim(),
        crate::Variant::new("z", "z").compared_with("x"),
    ];
    let run = |broken: Option<&'static str>| {
        let meta = &meta;
        async move {
            let mut ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
            ctx.settings.repetitions = 9;
            ctx.settings.min_rounds = 3;
            ctx.settings.ride_along = Some(0);
            let mut side = Synthetic::new(0.5, 0.02);
            side.broken = broken;
            let result = run_sides(meta, &ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
            let of = |v: &str| result.samples.iter().filter(|s| s.variant == v).count();
            (of("x"), of("y"), of("z"), result.rounds[0].stop.clone())
        }
    };
    // y is half of x: decided at the first look, z never runs.
    assert_eq!(run(None).await, (3, 3, 0, StopReason::Decided));
    // y is broken: z (the same as x, within 2 %) decides, as no effect, at the first look.
    assert_eq!(run(Some("y")).await, (3, 3, 3, StopReason::Decided));
    // Nothing correct stands in (x is the baseline, not a stand-in): y's rounds as before.
    assert_eq!(run(Some("z")).await, (3, 3, 0, StopReason::Decided));
}

/// The time accounts add up: setup (the experiment's and each point's), every sample counted
/// with at least its own time, and the rest, summing to the wall time.
#[tokio::test]
async fn where_the_time_went_is_accounted_per_experiment() {
    let mut ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
    ctx.settings.repetitions = 3;
    let meta = two_variants();
    let mut side = Synthetic { pause: std::time::Duration::from_millis(10), ..Synthetic::new(1.0, 0.0) };
    let r = run_sides(&meta, &ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
    let t = r.time.clone().expect("time accounted");
    let points = r.sweep.points.len() as u64;
    let samples = r.samples.len() as u32;
    assert_eq!(t.samples, samples);
    assert!(t.setup_ms >= 40 + 5 * points, "{t:?}");
    assert!(t.samples_ms >= 10 * u64::from(samples), "{t:?}");
    assert_eq!(t.setup_ms + t.samples_ms + t.capacity_ms + t.after_ms, r.wall_time_ms, "{t:?}");
    let set = ctx.settings.warmup + ctx.settings.duration;
    assert_eq!(t.set_per_sample_ms, set.as_millis() as u64);
}

/// A round in which other processes took a core (over the limit of half a core) is left out
/// as a pair: both variants' samples of that round, with why, and counted per point; the
/// verdict rests on the other rounds. Without a limit nothing is left out.
#[tokio::test]
async fn a_disturbed_round_is_left_out_as_a_pair() {
    let mut ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
    ctx.settings.repetitions = 5;
    ctx.settings.noise_limit = Some(0.5);
    let mut meta = two_variants();
    meta.variants = vec![crate::Variant::new("x", "x"), crate::Variant::new("y", "y").compared_with("x").tests_claim()];
    let mut side = Synthetic { noisy_round: Some(1), ..Synthetic::new(0.5, 0.02) };
    let r = run_sides(&meta, &ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
    for p in &r.rounds {
        assert_eq!((p.rounds, p.disturbed), (6, 1), "{p:?}: the disturbed round is replaced");
    }
    for s in &r.samples {
        let why = s.invalid.as_deref().unwrap_or_default();
        assert_eq!(s.repetition == 1, why.contains("disturbed round: other processes took 1.00 cores"), "{s:?}");
    }
    assert_eq!(r.headline.as_ref().unwrap().pairs, Some(5), "the five undisturbed rounds");
    ctx.settings.noise_limit = None;
    let mut side = Synthetic { noisy_round: Some(1), ..Synthetic::new(0.5, 0.02) };
    let r = run_sides(&meta, &ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
    assert!(r.samples.iter().all(|s| s.invalid.is_none()) && r.rounds.iter().all(|p| p.disturbed == 0));
}

/// Where the other trials ride along (quick), the Go original's claim runs in its first
/// rounds only and the port's claim alone decides when a point stops; in a full run both
/// claims run in every round and a point stops once both are decided.
#[tokio::test]
async fn a_quick_run_gives_the_go_claim_its_first_rounds_only() {
    let mut meta = two_variants();
    meta.variants = vec![
        crate::Variant::new("x", "x"),
        crate::Variant::new("y", "y").compared_with("x").tests_claim(),
        crate::Variant::new("go-x", "x in Go").in_go("BenchmarkX"),
        crate::Variant::new("go-y", "y in Go").in_go("BenchmarkY").compared_with("go-x").tests_claim(),
    ];
    let run_with = |factor: f64, noise: f64, ride_along: Option<u32>, quick: bool, min_rounds: u32| {
        let meta = &meta;
        async move {
            let mut ctx = RunCtx::for_tests(false, false, &[]).await.unwrap();
            ctx.settings.quick = quick;
            ctx.settings.repetitions = 9;
            ctx.settings.min_rounds = min_rounds;
            ctx.settings.ride_along = ride_along;
            let mut side = Synthetic::new(factor, noise);
            let result = run_sides(meta, &ctx, &mut [&mut side], &|_| {}).await.pop().unwrap();
            let of = |v: &str| result.samples.iter().filter(|s| s.variant == v).count();
            let said = result.notes.iter().any(|n| n.contains("first 3 rounds only"));
            (of("y"), of("go-y"), result.rounds[0].stop.clone(), said)
        }
    };
    let run = |factor: f64, noise: f64, ride_along: Option<u32>| run_with(factor, noise, ride_along, true, 3);
    // The port's claim undecided (A/A, 30 % spread): it runs to the cap, the Go claim 3 rounds.
    assert_eq!(run(1.0, 0.3, Some(2)).await, (9, 3, StopReason::Cap, true));
    // Decided at the first look: both ran 3 rounds.
    assert_eq!(run(0.5, 0.02, Some(2)).await, (3, 3, StopReason::Decided, true));
    // A full run: the Go claim in every round the port's runs; so with --claim-only (riders
    // never ride along) and in a quick run without early stops (--min-rounds 0).
    assert_eq!(run(1.0, 0.3, None).await, (9, 9, StopReason::Cap, false));
    assert_eq!(run_with(1.0, 0.3, Some(0), false, 3).await, (9, 9, StopReason::Cap, false));
    assert_eq!(run_with(1.0, 0.3, Some(2), true, 0).await, (9, 9, StopReason::Fixed, false));
}
