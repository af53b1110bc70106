//! `bench --profile`: why, not only what. While one extra trial of a variant runs at the
//! headline point, a sampling profiler (pprof-rs: SIGPROF at 999 Hz over every thread of the
//! harness process, stacks unwound in the signal handler) records where the harness process
//! spends its CPU: the client, the load engine, and the service where the experiment runs it
//! in-process. The profile is kept beside results.json in pprof's format (gzipped protobuf,
//! what `go tool pprof` and `pprof` read) with a flame graph (SVG, inferno), and the hottest
//! functions are stored in results.json for the report.
//!
//! The guide's analysis script samples CPU with `top -l`, which exists only on macOS; this
//! samples stacks instead, which says which code, not only how busy. Postgres and Redis run in
//! their own processes and are not sampled: their share is in the resources table.

use anyhow::Context as _;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;

/// Samples per second of CPU time (a prime, so the sampling does not beat with a periodic
/// timer of the code it samples).
const FREQUENCY: i32 = 999;

pub use crate::results::{HeapProfileInfo, ProfileInfo};

/// What `Sampler::finish` wrote: the fields of a `ProfileInfo` that the profile gives.
pub struct Written {
    pub samples: u64,
    pub pprof: String,
    pub flamegraph: String,
    pub top: Vec<(String, f64)>,
}

/// A running profiler; stop it with `finish`.
pub struct Sampler(pprof::ProfilerGuard<'static>);

impl Sampler {
    pub fn start() -> anyhow::Result<Self> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            // Unwinding through these from a signal handler can deadlock or read bad DWARF.
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .context("starting the CPU profiler")?;
        Ok(Self(guard))
    }

    /// Stop, and write `<stem>.pb.gz` and `<stem>.svg` under `run_dir`.
    pub fn finish(self, run_dir: &Path, stem: &str, title: &str) -> anyhow::Result<Written> {
        let report = self.0.report().build().context("building the profile")?;
        drop(self.0);
        let pprof_rel = format!("{stem}.pb.gz");
        let svg_rel = format!("{stem}.svg");
        let pprof_path = run_dir.join(&pprof_rel);
        if let Some(dir) = pprof_path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let stacks: Vec<Stack> = report
            .data
            .iter()
            .map(|(frames, &count)| Stack {
                thread: frames.thread_name_or_id(),
                // Leaf first, as pprof wants; inlined functions each get a frame.
                functions: frames.frames.iter().flat_map(|f| f.iter().map(|s| s.name())).collect(),
                count: count.max(0) as u64,
            })
            .collect();
        let period_ns = 1_000_000_000 / FREQUENCY as i64;
        let profile = encode(&stacks, period_ns, report.timing.duration.as_nanos() as i64);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&profile)?;
        crate::results::write_atomic(&pprof_path, &gz.finish()?)?;
        let mut svg = Vec::new();
        let mut options = pprof::flamegraph::Options::default();
        options.title = title.to_owned();
        // Frames narrower than a pixel are invisible anyway; leaving them out keeps the SVG small.
        options.min_width = 1.0;
        if !stacks.is_empty() {
            report.flamegraph_with_options(&mut svg, &mut options).context("drawing the flame graph")?;
        }
        crate::results::write_atomic(&run_dir.join(&svg_rel), &svg)?;
        let samples = stacks.iter().map(|s| s.count).sum();
        Ok(Written { samples, pprof: pprof_rel, flamegraph: svg_rel, top: top(&stacks, 8) })
    }
}

/// One distinct stack and how many samples it got.
struct Stack {
    thread: String,
    /// Leaf first.
    functions: Vec<String>,
    count: u64,
}

/// The `n` functions with the most self samples (leaf of the stack), with their share.
fn top(stacks: &[Stack], n: usize) -> Vec<(String, f64)> {
    let total: u64 = stacks.iter().map(|s| s.count).sum();
    let mut by_fn: HashMap<&str, u64> = HashMap::new();
    for s in stacks {
        let leaf = s.functions.first().map_or("(unknown)", String::as_str);
        *by_fn.entry(leaf).or_default() += s.count;
    }
    let mut v: Vec<(String, f64)> =
        by_fn.into_iter().map(|(f, c)| (f.to_owned(), if total > 0 { c as f64 / total as f64 } else { 0.0 })).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// pprof's profile.proto, the messages and fields this writes.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
    }
}

/// The stacks as a pprof profile: sample types (samples, count) and (cpu, nanoseconds), one
/// function and one location per distinct name, the thread as a label.
fn encode(stacks: &[Stack], period_ns: i64, duration_ns: i64) -> Vec<u8> {
    use prost::Message as _;
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_ids: HashMap<String, i64> = HashMap::new();
    let mut intern = |s: &str| -> i64 {
        if let Some(&id) = string_ids.get(s) {
            return id;
        }
        strings.push(s.to_owned());
        string_ids.insert(s.to_owned(), strings.len() as i64 - 1);
        strings.len() as i64 - 1
    };
    let (samples_s, count_s, cpu_s, ns_s, thread_s) =
        (intern("samples"), intern("count"), intern("cpu"), intern("nanoseconds"), intern("thread"));
    let mut functions: Vec<proto::Function> = Vec::new();
    let mut function_ids: HashMap<String, u64> = HashMap::new();
    let mut samples = Vec::with_capacity(stacks.len());
    for s in stacks {
        let location_id = s
            .functions
            .iter()
            .map(|f| {
                *function_ids.entry(f.clone()).or_insert_with(|| {
                    let name = intern(f);
                    let id = functions.len() as u64 + 1;
                    functions.push(proto::Function { id, name, system_name: name });
                    id
                })
            })
            .collect();
        samples.push(proto::Sample {
            location_id,
            value: vec![s.count as i64, s.count as i64 * period_ns],
            label: vec![proto::Label { key: thread_s, str: intern(&s.thread) }],
        });
    }
    // One location per function, with the function's id.
    let location =
        functions.iter().map(|f| proto::Location { id: f.id, line: vec![proto::Line { function_id: f.id }] }).collect();
    proto::Profile {
        sample_type: vec![
            proto::ValueType { r#type: samples_s, unit: count_s },
            proto::ValueType { r#type: cpu_s, unit: ns_s },
        ],
        sample: samples,
        location,
        function: functions,
        string_table: strings,
        duration_nanos: duration_ns,
        period_type: Some(proto::ValueType { r#type: cpu_s, unit: ns_s }),
        period: period_ns,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn stacks() -> Vec<Stack> {
        vec![
            Stack { thread: "load-0".into(), functions: vec!["hash".into(), "call".into(), "main".into()], count: 6 },
            Stack { thread: "load-1".into(), functions: vec!["parse".into(), "call".into(), "main".into()], count: 3 },
            Stack { thread: "load-1".into(), functions: vec!["call".into(), "main".into()], count: 1 },
        ]
    }

    #[test]
    fn the_top_functions_are_the_leaves_with_their_share() {
        let t = top(&stacks(), 2);
        assert_eq!(t, vec![("hash".to_owned(), 0.6), ("parse".to_owned(), 0.3)]);
    }

    /// The encoded profile decodes to the stacks it was given: leaf first, values in both
    /// sample types, names through the string table.
    #[test]
    fn the_pprof_encoding_round_trips() {
        let bytes = encode(&stacks(), 1_001_001, 5_000_000_000);
        let p = proto::Profile::decode(bytes.as_slice()).unwrap();
        assert_eq!(p.string_table[0], "", "pprof's string table starts with the empty string");
        assert_eq!(p.sample.len(), 3);
        assert_eq!(p.function.len(), 4, "hash, call, main, parse: once each");
        let name = |loc: u64| {
            let f = p.function.iter().find(|f| f.id == loc).unwrap();
            p.string_table[f.name as usize].clone()
        };
        let first = &p.sample[0];
        let names: Vec<String> = first.location_id.iter().map(|&l| name(l)).collect();
        assert_eq!(names, ["hash", "call", "main"]);
        assert_eq!(first.value, vec![6, 6 * 1_001_001]);
        assert_eq!(p.string_table[first.label[0].str as usize], "load-0");
        assert_eq!(p.period, 1_001_001);
        assert!(p.location.iter().all(|l| l.line.len() == 1 && l.line[0].function_id == l.id));
    }
}
