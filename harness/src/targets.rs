//! The guide's performance targets (性能目标: API p95 < 200 ms, > 1000 RPS, DB p95 < 50 ms,
//! memory < 512 MB, CPU < 70 %, errors < 0.1 %) as thresholds, k6-style: each experiment
//! declares the ones that apply to it, and every variant at every point of every case is
//! checked against them, from the medians of its valid samples (errors from every sample).

use crate::analysis::sample_value;
use crate::results::{spectrum_metric, ExperimentResult, Sample, TargetCheck};

/// One of the guide's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// API response time: p95 under 200 ms.
    ApiP95,
    /// API throughput: above 1000 requests per second.
    ApiThroughput,
    /// Database query: p95 under 50 ms.
    DbP95,
    /// Memory: under 512 MB for the application (the harness process: the client, and the
    /// service where it runs in the harness).
    Memory,
    /// CPU: under 70 % of the machine (harness and servers together). Only where the load is
    /// offered at a fixed rate: a closed loop drives the machine to saturation by design.
    Cpu,
    /// Errors: under 0.1 % of operations, every sample counted (invalid ones too).
    Errors,
}

/// What a service-layer experiment is held to.
pub const SERVICE: &[Target] = &[Target::ApiP95, Target::ApiThroughput, Target::Errors, Target::Memory];
/// What an experiment whose operation is a database query is held to.
pub const DB_QUERY: &[Target] = &[Target::DbP95, Target::Errors, Target::Memory];
/// What any other load experiment is held to.
pub const LOAD: &[Target] = &[Target::Errors, Target::Memory];

impl Target {
    /// The target as the guide's table states it.
    pub fn label(self) -> &'static str {
        match self {
            Target::ApiP95 => "API p95 < 200 ms",
            Target::ApiThroughput => "API throughput > 1000 RPS",
            Target::DbP95 => "DB query p95 < 50 ms",
            Target::Memory => "memory < 512 MB",
            Target::Cpu => "CPU < 70 %",
            Target::Errors => "errors < 0.1 %",
        }
    }

    /// The same as a k6 threshold expression over the metric it reads.
    pub fn k6(self) -> &'static str {
        match self {
            Target::ApiP95 => "http_req_duration: p(95)<200",
            Target::ApiThroughput => "http_reqs: rate>1000",
            Target::DbP95 => "query_duration: p(95)<50",
            Target::Memory => "rss: value<512MB",
            Target::Cpu => "cpu: value<0.70",
            Target::Errors => "errors: rate<0.001",
        }
    }

    /// (limit, unit, the value must stay below the limit).
    fn limit(self) -> (f64, &'static str, bool) {
        match self {
            Target::ApiP95 => (200.0, "ms", true),
            Target::ApiThroughput => (1000.0, "ops/s", false),
            Target::DbP95 => (50.0, "ms", true),
            Target::Memory => (512.0, "MB", true),
            Target::Cpu => (70.0, "%", true),
            Target::Errors => (0.1, "%", true),
        }
    }

    /// The value of this target's measure for the samples of one variant at one point, or
    /// none where the samples do not record it.
    fn measure(self, samples: &[&Sample], cores: usize) -> Option<f64> {
        let valid: Vec<&Sample> = samples.iter().copied().filter(|s| s.invalid.is_none()).collect();
        let median_of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = valid.iter().filter_map(|s| f(s)).filter(|x| x.is_finite()).collect();
            crate::stats::median(&v)
        };
        match self {
            // The load engine's p95, else the latency histogram's.
            Target::ApiP95 | Target::DbP95 => {
                median_of(&|s| sample_value(s, "latency_p95_us").or_else(|| sample_value(s, &spectrum_metric(95.0))))
                    .map(|us| us / 1000.0)
            }
            Target::ApiThroughput => median_of(&|s| sample_value(s, "ops_per_sec")),
            Target::Memory => median_of(&|s| sample_value(s, "harness_peak_rss_bytes")).map(|b| b / (1024.0 * 1024.0)),
            Target::Cpu => median_of(&|s| {
                let cpu = sample_value(s, "harness_cpu_s")? + sample_value(s, "server_cpu_s").unwrap_or(0.0);
                let wall = sample_value(s, "wall_s").filter(|&w| w > 0.0)?;
                Some(100.0 * cpu / (wall * cores.max(1) as f64))
            }),
            Target::Errors => {
                let (mut ok, mut errors) = (0.0, 0.0);
                for s in samples {
                    let e: u64 = s.errors.values().sum();
                    errors += e as f64;
                    ok += s.metrics.get("ok").copied().or_else(|| s.latency.as_ref().map(|l| l.count as f64))?;
                }
                (ok + errors > 0.0).then(|| 100.0 * errors / (ok + errors))
            }
        }
    }
}

/// Every declared target for every variant at every point of every case that measured it.
pub fn evaluate(result: &ExperimentResult, targets: &[Target], cores: usize) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    for case in result.case_names() {
        for point in &result.sweep.points {
            for v in &result.variants {
                let samples: Vec<&Sample> = result
                    .samples
                    .iter()
                    .filter(|s| s.case == case && s.variant == v.name && s.point == point.label)
                    .collect();
                if samples.is_empty() {
                    continue;
                }
                for &t in targets {
                    let Some(value) = t.measure(&samples, cores) else {
                        continue;
                    };
                    let (limit, unit, below) = t.limit();
                    out.push(TargetCheck {
                        target: t.label().to_owned(),
                        k6: t.k6().to_owned(),
                        case: case.to_owned(),
                        variant: v.name.clone(),
                        point: point.label.clone(),
                        value,
                        limit,
                        unit: unit.to_owned(),
                        pass: if below { value < limit } else { value > limit },
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LatencySummary, Resources};

    fn sample(variant: &str, p95_us: f64, ops: f64, ok: f64, errors: u64, rss_mb: u64) -> Sample {
        let mut s = Sample { variant: variant.into(), point: "1".into(), ..Sample::default() };
        s.metrics.insert("latency_p95_us".into(), p95_us);
        s.metrics.insert("ops_per_sec".into(), ops);
        s.metrics.insert("ok".into(), ok);
        if errors > 0 {
            s.errors.insert("HTTP 503".into(), errors);
        }
        s.resources = Some(Resources {
            harness_cpu_s: 0.5,
            harness_peak_rss_bytes: Some(rss_mb * 1024 * 1024),
            wall_s: 1.0,
            ..Default::default()
        });
        s.latency = Some(LatencySummary { count: ok as u64, ..Default::default() });
        s
    }

    fn check<'a>(checks: &'a [TargetCheck], variant: &str, target: Target) -> &'a TargetCheck {
        checks.iter().find(|c| c.variant == variant && c.target == target.label()).unwrap()
    }

    /// Each target reads its measure, compares it the right way round, and counts every
    /// sample's errors (an invalid sample's too).
    #[test]
    fn targets_read_their_measure_and_compare_it_with_the_limit() {
        let mut r = crate::analysis::tests::result_with(vec![
            sample("base", 150_000.0, 1500.0, 10_000.0, 0, 100),
            sample("base", 170_000.0, 1400.0, 10_000.0, 0, 100),
            sample("base", 160_000.0, 1450.0, 10_000.0, 5, 100),
            sample("fast", 250_000.0, 900.0, 10_000.0, 0, 600),
            sample("fast", 260_000.0, 800.0, 10_000.0, 0, 600),
            sample("fast", 240_000.0, 950.0, 0.0, 400, 600),
        ]);
        r.samples[5].invalid = Some("all failed".into());
        let all = [Target::ApiP95, Target::ApiThroughput, Target::DbP95, Target::Memory, Target::Cpu, Target::Errors];
        let checks = evaluate(&r, &all, 2);
        let base_p95 = check(&checks, "base", Target::ApiP95);
        assert_eq!((base_p95.value, base_p95.pass), (160.0, true), "the median p95 in ms");
        assert!(!check(&checks, "base", Target::DbP95).pass, "160 ms is over 50 ms");
        assert!(check(&checks, "base", Target::ApiThroughput).pass);
        assert!(!check(&checks, "fast", Target::ApiThroughput).pass, "850/s is under 1000/s");
        assert_eq!(check(&checks, "fast", Target::ApiP95).value, 255.0, "the invalid sample is left out");
        assert!(!check(&checks, "fast", Target::Memory).pass);
        assert_eq!(check(&checks, "base", Target::Cpu).value, 25.0, "0.5 s of CPU in 1 s on 2 cores");
        let e = check(&checks, "base", Target::Errors);
        assert!((e.value - 100.0 * 5.0 / 30_005.0).abs() < 1e-9 && e.pass, "{}", e.value);
        let e = check(&checks, "fast", Target::Errors);
        assert!(!e.pass && e.value > 1.0, "the invalid sample's errors count: {}", e.value);
    }
}
