//! The experiment's hooks in this process (`Local`): the side every run has, and the only one
//! without `--against`.

use super::Hooks;
use crate::experiment::{self, BoxFuture, Experiment, RunCtx, Trial};
use crate::redact::redact;
use crate::results::{Check, Sample, SweepPoint};

/// The experiment's hooks in this process.
pub struct Local<'a> {
    exp: &'a dyn Experiment,
    ctx: &'a RunCtx,
    id: &'static str,
    /// Its Go originals and their Go benchmarks (`Variant::in_go`).
    go: Vec<(&'static str, &'static str)>,
    /// Its knobs, which its Go originals read from their environment.
    knobs: Vec<crate::Knob>,
    /// Why they cannot run here (no toolchain, a build that failed), once known.
    no_go: Option<String>,
    prepared: bool,
    /// The Go originals that are servers the experiment's `Run` drives.
    served: Vec<&'static str>,
    /// `inject_slowdown`: per variant, the fraction and the operations it stretched.
    slowed: std::collections::BTreeMap<String, (f64, u64)>,
}

impl<'a> Local<'a> {
    pub fn new(exp: &'a dyn Experiment, ctx: &'a RunCtx) -> Self {
        let meta = exp.meta();
        // Go servers are driven by the experiment's own `Run`: not a Go engine's sample.
        let go = meta.variants.iter().filter_map(|v| Some((v.name, v.go?))).collect();
        let served = meta.variants.iter().filter(|v| v.go_server).map(|v| v.name).collect();
        let knobs = meta.knobs.clone();
        Self { exp, ctx, id: meta.id, go, served, knobs, no_go: None, prepared: false, slowed: Default::default() }
    }

    /// The Go benchmark that measures `variant`, if it is a Go original.
    fn go_bench(&self, variant: &str) -> Option<&'static str> {
        self.go.iter().find(|(name, _)| *name == variant).map(|(_, bench)| *bench)
    }

    /// What a Go original needs to reach the run's servers, in its environment (never its
    /// command line): libpq's variables for Postgres, the Redis URL and this experiment's key
    /// prefix; and the experiment's knobs, each as `PERFLAB_KNOB_<NAME>` (its `--set`, else its
    /// default in this mode; a derived knob only when set).
    fn go_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .ctx
            .env
            .postgres()
            .map(|pg| pg.go_env())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for knob in &self.knobs {
            let value = match knob.default {
                crate::knob::KnobDefault::Derived(_) => knob.set_value(&self.ctx.settings).ok().flatten(),
                crate::knob::KnobDefault::Value { .. } => knob.value(&self.ctx.settings).ok(),
            };
            if let Some(v) = value {
                env.push((format!("PERFLAB_KNOB_{}", knob.name.to_ascii_uppercase()), v.to_string()));
            }
        }
        if let Ok(redis) = self.ctx.env.redis() {
            env.push(("PERFLAB_REDIS_URL".to_owned(), redis.url.clone()));
            env.push(("PERFLAB_REDIS_PREFIX".to_owned(), crate::provision::redis_prefix(self.id)));
        }
        env
    }

    /// Build the Go originals' benchmarks (once per process, before any sample), or learn why
    /// they cannot run here: then they are skipped (`lacks`) with one line and a note.
    pub async fn prepare(&mut self) {
        if std::mem::replace(&mut self.prepared, true) || self.go.is_empty() {
            return;
        }
        let why = match crate::micro::go::missing() {
            Some(why) => Some(why),
            None => crate::micro::go::test_binary()
                .await
                .err()
                .map(|e| redact(&format!("Go originals were not run: building them failed: {e:#}"))),
        };
        if let Some(why) = &why {
            eprintln!("perflab: {}: {why}", self.id);
        }
        self.no_go = why;
    }
}

impl Hooks for Local<'_> {
    fn setup(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.prepare().await;
            self.exp.setup(self.ctx).await
        })
    }

    fn setup_point<'a>(&'a mut self, point: &'a SweepPoint) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        self.exp.setup_point(self.ctx, point)
    }

    fn measure<'a>(&'a mut self, at: Trial<'a>, repetition: u32) -> BoxFuture<'a, anyhow::Result<Sample>> {
        Box::pin(async move {
            // `inject_slowdown`: the engines read it as the trial starts.
            let fraction = crate::inject::for_trial(&self.ctx.settings, self.id, at.variant);
            crate::inject::activate(fraction);
            let snapshot = self.ctx.probe.begin();
            let mut go_process = None;
            let measured = match self.go_bench(at.variant).filter(|_| !self.served.contains(&at.variant)) {
                // An experiment that measures whole samples itself has Go originals that do too.
                Some(bench) => match self.exp.engine() {
                    experiment::Engine::Load(_) | experiment::Engine::Micro { run: Some(_), .. } => {
                        crate::micro::go::run_sample(&self.ctx.settings, bench, at, &self.go_env()).await.map(
                            |(s, p)| {
                                go_process = p;
                                s
                            },
                        )
                    }
                    experiment::Engine::Micro { run: None, .. } => {
                        crate::micro::go::measure(&self.ctx.settings, self.id, bench, at, &self.go_env()).await
                    }
                },
                None => experiment::measure(self.exp, self.id, self.ctx, at).await,
            };
            crate::inject::deactivate();
            let mut sample = measured?;
            if fraction > 0.0 {
                let e = self.slowed.entry(at.variant.to_owned()).or_insert((fraction, 0));
                e.1 += crate::inject::applied_count();
            }
            if sample.resources.is_none() {
                sample.resources = Some(self.ctx.probe.end(&snapshot));
            }
            // A whole-sample Go original's harness is its own process, not this one.
            if let (Some(p), Some(r)) = (go_process, sample.resources.as_mut()) {
                r.harness_cpu_s = p.cpu_s;
                r.harness_peak_rss_bytes = Some(p.peak_rss_bytes);
            }
            sample.case = at.case.to_owned();
            sample.variant = at.variant.to_owned();
            sample.point = at.point.label.clone();
            sample.repetition = repetition;
            sample.errors = std::mem::take(&mut sample.errors).into_iter().map(|(k, v)| (redact(&k), v)).collect();
            Ok(sample)
        })
    }

    fn checks(&mut self) -> BoxFuture<'_, anyhow::Result<Vec<Check>>> {
        self.exp.checks(self.ctx)
    }

    fn in_process(&self) -> bool {
        !self.exp.engine().is_micro()
    }

    fn lacks(&self, _case: &str, variant: &str) -> bool {
        self.no_go.is_some() && self.go_bench(variant).is_some()
    }

    fn heap_profile<'a>(&'a mut self, at: Trial<'a>, file: &'a std::path::Path) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            if !self.exp.engine().is_micro() || self.go_bench(at.variant).is_some() {
                return Ok(false);
            }
            crate::micro::heap_profile(&self.ctx.bench(), self.id, at, file).await
        })
    }

    fn notes(&mut self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut notes = self.exp.notes(self.ctx);
            if let Some(why) = &self.no_go {
                let names: Vec<&str> = self.go.iter().map(|(name, _)| *name).collect();
                notes.push(format!("{why}: {} have no samples; the Rust findings are unchanged.", names.join(", ")));
            } else if !self.go.is_empty() {
                let whole = !matches!(self.exp.engine(), experiment::Engine::Micro { run: None, .. });
                notes.push(
                    if self.served.len() == self.go.len() {
                        crate::micro::go_server::NOTE
                    } else if whole {
                        crate::micro::go::WHOLE_SAMPLE_NOTE
                    } else {
                        crate::micro::go::NOTE
                    }
                    .to_owned(),
                );
            }
            for (variant, (fraction, ops)) in &self.slowed {
                notes.push(if *ops > 0 {
                    format!(
                        "Injected slowdown (--set {}.{}): {variant}'s timed operations were stretched by {:.0} % of their own time, {ops} operation(s) in all. These numbers measure the knob, not the technique.",
                        self.id,
                        crate::inject::KNOB,
                        fraction * 100.0
                    )
                } else {
                    format!(
                        "Injected slowdown (--set {}.{}) asked for {variant} but not applied: this experiment (or this Go original, timed by Go's testing package) times its operations itself, outside the load and micro engines.",
                        self.id,
                        crate::inject::KNOB
                    )
                });
            }
            notes
        })
    }
}
