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
    /// Its Go originals (`Variant::in_go`).
    go: Vec<&'static str>,
    /// Why they cannot run here (no toolchain, a build that failed), once known.
    no_go: Option<String>,
    prepared: bool,
    /// `inject_slowdown`: per variant, the fraction and the operations it stretched.
    slowed: std::collections::BTreeMap<String, (f64, u64)>,
}

impl<'a> Local<'a> {
    pub fn new(exp: &'a dyn Experiment, ctx: &'a RunCtx) -> Self {
        let meta = exp.meta();
        let go: Vec<&'static str> = meta.variants.iter().filter(|v| v.go.is_some()).map(|v| v.name).collect();
        Self { exp, ctx, id: meta.id, go, no_go: None, prepared: false, slowed: Default::default() }
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
            let measured = experiment::measure(self.exp, self.id, self.ctx, at).await;
            crate::inject::deactivate();
            let mut sample = measured?;
            if fraction > 0.0 {
                let e = self.slowed.entry(at.variant.to_owned()).or_insert((fraction, 0));
                e.1 += crate::inject::applied_count();
            }
            if sample.resources.is_none() {
                sample.resources = Some(self.ctx.probe.end(&snapshot));
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
        self.no_go.is_some() && self.go.contains(&variant)
    }

    fn heap_profile<'a>(&'a mut self, at: Trial<'a>, file: &'a std::path::Path) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            let go = self.exp.meta().variants.iter().any(|v| v.name == at.variant && v.go.is_some());
            if !self.exp.engine().is_micro() || go {
                return Ok(false);
            }
            crate::micro::heap_profile(&self.ctx.bench(), self.id, at, file).await
        })
    }

    fn notes(&mut self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut notes = self.exp.notes(self.ctx);
            if let Some(why) = &self.no_go {
                notes.push(format!("{why}: {} have no samples; the Rust findings are unchanged.", self.go.join(", ")));
            } else if !self.go.is_empty() {
                notes.push(crate::micro::go::NOTE.to_owned());
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
