//! Whether a technique acted, sample by sample: an experiment that can see its technique at
//! work (a timeout that cut a connection, a health check that marked a backend down, a pool
//! that opened the connections its model allows) records it for every sample it measures,
//! marks a sample where it did not act invalid (`Sample::invalid`: not a measurement of the
//! technique), and turns the tally into one check per case, variant and point.

use crate::results::{Check, Trial};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Per case, variant and point: samples measured, samples in which the technique acted, and
/// what the experiment adds up beside them (`T`). Capacity-search trials are not counted.
#[derive(Default)]
pub struct Tally<T> {
    seen: Mutex<BTreeMap<(String, String, String), (u64, u64, T)>>,
}

impl<T: Default + Clone> Tally<T> {
    pub fn new() -> Self {
        Self { seen: Mutex::new(BTreeMap::new()) }
    }

    /// Count one sample of `at`: whether the technique acted in it, and what to add to `T`.
    pub fn record(&self, at: &Trial<'_>, acted: bool, add: impl FnOnce(&mut T)) {
        if at.offered.is_some() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry((at.case.to_owned(), at.variant.to_owned(), at.point.label.clone())).or_default();
        entry.0 += 1;
        entry.1 += u64::from(acted);
        add(&mut entry.2);
    }

    /// One check named `name` per case, variant and point: its value the share of samples in
    /// which the technique acted, right when it acted in all of them; `describe` says what
    /// it added up (given the case and variant).
    pub fn checks(&self, name: &str, describe: impl Fn(&str, &str, &T) -> String) -> Vec<Check> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .map(|((case, variant, point), (samples, acted, t))| {
                Check::verdict(
                    variant,
                    Some(point),
                    name,
                    *acted as f64 / (*samples).max(1) as f64,
                    acted == samples,
                    format!("in {acted} of {samples} sample(s): {}", describe(case, variant, t)),
                )
                .in_case(case)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::SweepPoint;

    /// A check per case, variant and point; right only when every sample acted; capacity
    /// trials left out.
    #[test]
    fn a_tally_checks_that_every_sample_acted() {
        let point = SweepPoint { label: "100".into(), value: 100.0 };
        let at = |variant| Trial { case: "", variant, point: &point, offered: None, round: 0 };
        let tally = Tally::<u64>::new();
        tally.record(&at("a"), true, |n| *n += 3);
        tally.record(&at("a"), true, |n| *n += 4);
        tally.record(&at("b"), true, |n| *n += 1);
        tally.record(&at("b"), false, |_| {});
        let mut capacity = at("b");
        capacity.offered = Some(crate::results::Offered {
            rate_per_sec: 1.0,
            window: std::time::Duration::from_secs(1),
            overload: None,
            timeline: None,
        });
        tally.record(&capacity, false, |_| {});
        let checks = tally.checks("cut", |_, _, n| format!("{n} cuts"));
        assert_eq!(checks.len(), 2);
        assert_eq!((checks[0].variant.as_str(), checks[0].ok, checks[0].value), ("a", Some(true), 1.0));
        assert_eq!(checks[0].detail, "in 2 of 2 sample(s): 7 cuts");
        assert_eq!((checks[1].variant.as_str(), checks[1].ok, checks[1].value), ("b", Some(false), 0.5));
    }
}
