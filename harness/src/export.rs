//! Exports of a run's summaries to the formats trend trackers read: Bencher's Metric Format
//! (BMF) and github-action-benchmark's `customSmallerIsBetter` / `customBiggerIsBetter`.
//! Every number comes from the analysis's summaries (median and 95% CI over valid samples) of
//! the metrics each experiment declares.

use crate::results::{Better, ExperimentResult, MetricInfo, RunResults};
use serde::Serialize;
use std::collections::BTreeMap;

/// The benchmark's name: `<experiment>/<case>/<variant>/<point>`, the case left out for
/// experiments without cases.
pub fn benchmark_name(experiment: &str, case: &str, variant: &str, point: &str) -> String {
    if case.is_empty() {
        format!("{experiment}/{variant}/{point}")
    } else {
        format!("{experiment}/{case}/{variant}/{point}")
    }
}

/// A metric's BMF measure slug and the factor its values are multiplied by: Bencher's own
/// `latency` (nanoseconds), `throughput` (operations per second) and `instructions`, and a
/// slug of its own (the name, `_` as `-`) for every other metric.
pub fn bmf_measure(metric: &MetricInfo) -> (String, f64) {
    match (metric.name.as_str(), metric.unit.as_str()) {
        ("latency_p50_us", "us") => ("latency".into(), 1000.0),
        ("time_ns", "ns") => ("latency".into(), 1.0),
        ("ops_per_sec", _) => ("throughput".into(), 1.0),
        ("instructions_per_call", _) => ("instructions".into(), 1.0),
        (name, _) => (name.replace('_', "-"), 1.0),
    }
}

/// One BMF metric: the median and its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BmfMetric {
    pub value: f64,
    pub lower_value: f64,
    pub upper_value: f64,
}

fn declared(e: &ExperimentResult) -> Vec<&MetricInfo> {
    std::iter::once(&e.primary_metric).chain(e.metrics.iter().filter(|m| m.name != e.primary_metric.name)).collect()
}

/// Bencher Metric Format: benchmark name → measure slug → value with bounds.
pub fn bmf(run: &RunResults) -> BTreeMap<String, BTreeMap<String, BmfMetric>> {
    let mut out: BTreeMap<String, BTreeMap<String, BmfMetric>> = BTreeMap::new();
    for e in &run.experiments {
        for m in declared(e) {
            let (slug, factor) = bmf_measure(m);
            for s in e.summaries.iter().filter(|s| s.metric == m.name) {
                out.entry(benchmark_name(&e.id, &s.case, &s.variant, &s.point))
                    .or_default()
                    .entry(slug.clone())
                    .or_insert(BmfMetric {
                        value: s.median * factor,
                        lower_value: s.ci_low * factor,
                        upper_value: s.ci_high * factor,
                    });
            }
        }
    }
    out
}

/// One entry of github-action-benchmark's custom tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GabEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    /// Half the 95% CI's width, as `± x`.
    pub range: String,
    pub extra: String,
}

/// github-action-benchmark's two files: (`customSmallerIsBetter`, `customBiggerIsBetter`).
pub fn github_action_benchmark(run: &RunResults) -> (Vec<GabEntry>, Vec<GabEntry>) {
    let (mut smaller, mut bigger) = (Vec::new(), Vec::new());
    for e in &run.experiments {
        for m in declared(e) {
            for s in e.summaries.iter().filter(|s| s.metric == m.name) {
                let entry = GabEntry {
                    name: format!("{} {}", benchmark_name(&e.id, &s.case, &s.variant, &s.point), m.name),
                    unit: m.unit.clone(),
                    value: s.median,
                    range: format!("± {}", crate::results::fmt_num((s.ci_high - s.ci_low) / 2.0)),
                    extra: format!(
                        "median of {} repetition(s), 95% CI {}–{}; run {}",
                        s.n,
                        crate::results::fmt_num(s.ci_low),
                        crate::results::fmt_num(s.ci_high),
                        run.run_id
                    ),
                };
                match m.better {
                    Better::Lower => smaller.push(entry),
                    Better::Higher => bigger.push(entry),
                }
            }
        }
    }
    (smaller, bigger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Sample;

    /// A run of one experiment with two metrics (latency, lower is better; throughput, higher)
    /// and known values: medians 100 µs and 50 ops/s.
    fn run() -> RunResults {
        let mut r: RunResults = serde_json::from_str(include_str!("../tests/data/minimal_run.json")).unwrap();
        let e = &mut r.experiments[0];
        e.metrics = vec![MetricInfo::new("ops_per_sec", "ops/s", Better::Higher, "throughput")];
        for rep in 0..5 {
            let mut s = Sample { variant: "a".into(), point: "1".into(), repetition: rep, ..Sample::default() };
            s.metrics.insert("latency_p50_us".into(), 98.0 + f64::from(rep));
            s.metrics.insert("ops_per_sec".into(), 48.0 + f64::from(rep));
            s.metrics.insert("ok".into(), 10.0);
            e.samples.push(s);
        }
        crate::analysis::analyse(e, crate::analysis::Claim::default());
        r
    }

    #[test]
    fn bmf_has_bencher_shape_and_units() {
        let v = serde_json::to_value(bmf(&run())).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["t/a/1"]);
        let measures = obj["t/a/1"].as_object().unwrap();
        let mut slugs: Vec<&String> = measures.keys().collect();
        slugs.sort();
        assert_eq!(slugs, ["latency", "throughput"]);
        for (slug, m) in measures {
            let m = m.as_object().unwrap();
            let mut fields: Vec<&String> = m.keys().collect();
            fields.sort();
            assert_eq!(fields, ["lower_value", "upper_value", "value"], "{slug}");
            let (lo, val, hi) =
                (m["lower_value"].as_f64().unwrap(), m["value"].as_f64().unwrap(), m["upper_value"].as_f64().unwrap());
            assert!(lo <= val && val <= hi, "{slug}: {lo} {val} {hi}");
        }
        // Latency in nanoseconds, as Bencher's latency measure is.
        assert_eq!(measures["latency"]["value"].as_f64().unwrap(), 100_000.0);
        assert_eq!(measures["throughput"]["value"].as_f64().unwrap(), 50.0);
    }

    #[test]
    fn github_action_benchmark_splits_by_direction_with_its_fields() {
        let (smaller, bigger) = github_action_benchmark(&run());
        for (entries, name, unit, value) in
            [(smaller, "t/a/1 latency_p50_us", "us", 100.0), (bigger, "t/a/1 ops_per_sec", "ops/s", 50.0)]
        {
            let v = serde_json::to_value(&entries).unwrap();
            let arr = v.as_array().unwrap();
            assert_eq!(arr.len(), 1);
            let e = arr[0].as_object().unwrap();
            let mut fields: Vec<&String> = e.keys().collect();
            fields.sort();
            assert_eq!(fields, ["extra", "name", "range", "unit", "value"]);
            assert_eq!(e["name"], name);
            assert_eq!(e["unit"], unit);
            assert_eq!(e["value"].as_f64().unwrap(), value);
            assert!(e["range"].as_str().unwrap().starts_with("± "));
            assert!(e["extra"].as_str().unwrap().contains("5 repetition"));
        }
    }

    #[test]
    fn names_carry_the_case_when_there_is_one() {
        assert_eq!(benchmark_name("pg-indexes", "by-username", "guide", "50000"), "pg-indexes/by-username/guide/50000");
        assert_eq!(benchmark_name("pg-pagination", "", "keyset", "1000"), "pg-pagination/keyset/1000");
        let m = MetricInfo::new("allocs_per_call", "allocations", Better::Lower, "");
        assert_eq!(bmf_measure(&m), ("allocs-per-call".to_owned(), 1.0));
    }
}
