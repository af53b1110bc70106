//! Knobs: the `--set` settings an experiment reads, each declared once with its kind, range,
//! defaults in each mode and doc, and read through the declaration.

use crate::results::Settings;

/// A `--set` setting an experiment reads, declared once (name, kind, range, default in each
/// mode, doc) and read through the declaration, never by a string key: every `--set` is
/// checked against it before any server starts, `cargo xtask list` prints it with its
/// defaults, and a quick run's default is the knob's, not a branch inside the experiment.
#[derive(Debug, Clone, Copy)]
pub struct Knob {
    /// The experiment that reads it (`--set <experiment>.<name>`, or `--set <name>` for all).
    pub experiment: &'static str,
    pub name: &'static str,
    /// Whole numbers within `min..=max`, or any number within them when `integer` is false.
    pub integer: bool,
    pub min: f64,
    pub max: f64,
    /// The value when no `--set` gives one: a full run's and a quick run's.
    pub default: KnobDefault,
    /// What it sets (the defaults are printed from `default`, not written here).
    pub doc: &'static str,
}

/// A knob's value when `--set` gives none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KnobDefault {
    Value {
        full: f64,
        quick: f64,
    },
    /// Computed by the experiment from the run (a fifth of the measured window, a tenth of
    /// another knob): said in words, read with [`Knob::set_value`].
    Derived(&'static str),
}

impl Knob {
    /// A whole-number knob within `min..=max`, `default` in both modes (see [`Knob::quick`]).
    pub const fn int(
        experiment: &'static str,
        name: &'static str,
        min: i64,
        max: i64,
        default: i64,
        doc: &'static str,
    ) -> Self {
        let default = KnobDefault::Value { full: default as f64, quick: default as f64 };
        Self { experiment, name, integer: true, min: min as f64, max: max as f64, default, doc }
    }

    /// A real-number knob within `min..=max`.
    pub const fn real(
        experiment: &'static str,
        name: &'static str,
        min: f64,
        max: f64,
        default: f64,
        doc: &'static str,
    ) -> Self {
        let default = KnobDefault::Value { full: default, quick: default };
        Self { experiment, name, integer: false, min, max, default, doc }
    }

    /// The default of a quick run, where it differs from a full run's.
    pub const fn quick(mut self, quick: f64) -> Self {
        if let KnobDefault::Value { full, .. } = self.default {
            self.default = KnobDefault::Value { full, quick };
        }
        self
    }

    /// A whole-number knob whose default the experiment computes (`how`, in words).
    pub const fn int_derived(
        experiment: &'static str,
        name: &'static str,
        min: i64,
        max: i64,
        how: &'static str,
        doc: &'static str,
    ) -> Self {
        let default = KnobDefault::Derived(how);
        Self { experiment, name, integer: true, min: min as f64, max: max as f64, default, doc }
    }

    /// The `rows` of the users table the shared fixture loads (`fixtures::setup_users`),
    /// bounded so that a typo cannot fill the disk.
    pub const fn users_rows(experiment: &'static str, min: i64, default: i64) -> Self {
        Self::int(experiment, "rows", min, 20_000_000, default, "rows of the users table the experiment loads")
    }

    /// The value `--set` gives this knob (`<experiment>.<name>` before `<name>`), if any.
    pub fn set_value(&self, settings: &Settings) -> anyhow::Result<Option<f64>> {
        let specific = format!("{}.{}", self.experiment, self.name);
        match settings.sets.get(&specific).or_else(|| settings.sets.get(self.name)) {
            None => Ok(None),
            Some(raw) => self.parse(raw).map(Some).map_err(|e| anyhow::anyhow!(e)),
        }
    }

    /// The knob's value in this run: its `--set`, else its default for the run's mode.
    pub fn value(&self, settings: &Settings) -> anyhow::Result<f64> {
        if let Some(v) = self.set_value(settings)? {
            return Ok(v);
        }
        match self.default {
            KnobDefault::Value { full, quick } => Ok(if settings.quick { quick } else { full }),
            KnobDefault::Derived(how) => {
                anyhow::bail!("{}.{} has no fixed default ({how}): read it with set_value", self.experiment, self.name)
            }
        }
    }

    /// [`Knob::value`] of a whole-number knob.
    pub fn int_value(&self, settings: &Settings) -> anyhow::Result<i64> {
        debug_assert!(self.integer, "{}.{} is a real number", self.experiment, self.name);
        Ok(self.value(settings)? as i64)
    }

    /// [`Knob::value`] of a whole-number knob as a count (its range starts at 0 or above).
    pub fn count(&self, settings: &Settings) -> anyhow::Result<usize> {
        let v = self.int_value(settings)?;
        usize::try_from(v).map_err(|_| anyhow::anyhow!("{}.{} = {v} is not a count", self.experiment, self.name))
    }

    /// The defaults in words, for `cargo xtask list`.
    pub fn default_text(&self) -> String {
        let show = |v: f64| if self.integer { format!("{}", v as i64) } else { format!("{v}") };
        match self.default {
            KnobDefault::Value { full, quick } if full == quick => format!("default {}", show(full)),
            KnobDefault::Value { full, quick } => format!("default {}, quick {}", show(full), show(quick)),
            KnobDefault::Derived(how) => format!("default {how}"),
        }
    }

    fn parse(&self, raw: &str) -> Result<f64, String> {
        let v = if self.integer {
            raw.trim().parse::<i64>().ok().map(|v| v as f64)
        } else {
            raw.trim().parse::<f64>().ok().filter(|v| v.is_finite())
        };
        let Some(v) = v else {
            let what = if self.integer { "a whole number" } else { "a number" };
            return Err(format!(
                "--set {}.{}={raw}: expected {what} within {}..={}",
                self.experiment, self.name, self.min, self.max
            ));
        };
        if v < self.min || v > self.max {
            return Err(format!(
                "--set {}.{}={raw} is out of range: {} must be within {}..={} ({})",
                self.experiment, self.name, self.name, self.min, self.max, self.doc
            ));
        }
        Ok(v)
    }

    /// Check `raw` against this knob; the error is one line for the user.
    pub fn check(&self, raw: &str) -> Result<(), String> {
        self.parse(raw).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: Knob = Knob::int("exp", "rows", 10, 1_000, 500, "rows").quick(50.0);
    const TIMEOUT: Knob = Knob::int_derived("exp", "timeout_ms", 1, 600_000, "a fifth of a sample", "a timeout");

    fn settings(quick: bool, sets: &[(&str, &str)]) -> Settings {
        let mut s = Settings::quick_for_tests();
        s.quick = quick;
        s.duration = std::time::Duration::from_millis(1000);
        s.sets = sets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        s
    }

    /// The default follows the run's mode; `--set exp.rows` beats `--set rows`, which beats
    /// the default; another experiment's setting is not read.
    #[test]
    fn a_knob_reads_its_set_else_its_default_for_the_mode() {
        assert_eq!(ROWS.int_value(&settings(false, &[])).unwrap(), 500);
        assert_eq!(ROWS.int_value(&settings(true, &[])).unwrap(), 50);
        assert_eq!(ROWS.int_value(&settings(true, &[("rows", "70")])).unwrap(), 70);
        assert_eq!(ROWS.int_value(&settings(true, &[("rows", "70"), ("exp.rows", "80")])).unwrap(), 80);
        assert_eq!(ROWS.int_value(&settings(false, &[("other.rows", "80")])).unwrap(), 500);
        assert_eq!(ROWS.default_text(), "default 500, quick 50");
    }

    #[test]
    fn a_value_outside_the_range_or_of_the_wrong_kind_is_refused_in_one_line() {
        let e = ROWS.check("5").unwrap_err();
        assert!(e.contains("--set exp.rows=5 is out of range") && !e.contains('\n'), "{e}");
        assert!(ROWS.check("1.5").unwrap_err().contains("a whole number"));
        assert!(ROWS.int_value(&settings(false, &[("exp.rows", "2000")])).is_err());
        assert!(Knob::real("exp", "rate", 1.0, 10.0, 2.0, "r").check("NaN").is_err());
    }

    /// A derived knob has no default of its own: the experiment computes it, here a fifth
    /// of the measured window, unless set.
    #[test]
    fn a_derived_knob_is_computed_unless_set() {
        let floor = std::time::Duration::from_millis(20);
        assert!(TIMEOUT.value(&settings(false, &[])).is_err());
        assert_eq!(settings(false, &[]).fifth_of_sample(&TIMEOUT, floor).unwrap().as_millis(), 200);
        let set = settings(false, &[("exp.timeout_ms", "7")]);
        assert_eq!(set.fifth_of_sample(&TIMEOUT, floor).unwrap().as_millis(), 7);
        assert_eq!(TIMEOUT.default_text(), "default a fifth of a sample");
    }
}
