//! `slice-prealloc`: the guide's `ProcessLargeDataset`, which pre-sizes its result
//! (`make([]ProcessedItem, 0, len(data))`), against growing an empty vector and against an
//! iterator `collect` (which sizes the vector from the iterator's exact length).
//!
//! Measured in-process by the micro engine: time per call (criterion), allocations and
//! bytes per call and the peak heap (dhat).

use harness::micro::{self, Input, Routine};
use harness::{names_of, pick, Engine, Experiment, Meta, Routines, RunCtx, Sweep, Trial, Variant};

const ID: &str = "slice-prealloc";

/// The guide's `DataItem`: a record read from somewhere.
#[derive(Debug, Clone)]
pub struct DataItem {
    pub id: u64,
    pub value: f64,
    pub weight: u32,
}

/// The guide's `ProcessedItem`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedItem {
    pub id: u64,
    pub score: f64,
}

/// The guide's `ProcessItem`: a little arithmetic per item, so the loop is not only copies.
#[inline]
pub fn process_item(item: &DataItem) -> ProcessedItem {
    ProcessedItem { id: item.id, score: item.value * f64::from(item.weight) + 1.0 }
}

/// Growing: `var result []ProcessedItem` and `append`.
pub fn grow(data: &[DataItem]) -> Vec<ProcessedItem> {
    let mut result = Vec::new();
    for item in data {
        result.push(process_item(item));
    }
    result
}

/// The guide's code: `make([]ProcessedItem, 0, len(data))` and `append`.
pub fn with_capacity(data: &[DataItem]) -> Vec<ProcessedItem> {
    let mut result = Vec::with_capacity(data.len());
    for item in data {
        result.push(process_item(item));
    }
    result
}

/// Rust's idiom: the iterator knows its length and `collect` allocates once.
pub fn collect(data: &[DataItem]) -> Vec<ProcessedItem> {
    data.iter().map(process_item).collect()
}

fn dataset(n: usize) -> Vec<DataItem> {
    (0..n as u64).map(|i| DataItem { id: i, value: (i % 97) as f64 * 0.5, weight: (i % 7) as u32 + 1 }).collect()
}

type Process = fn(&[DataItem]) -> Vec<ProcessedItem>;

const VARIANTS: [(Variant, Process); 3] = [
    (Variant::new("grow", "Vec::new() and push: the vector doubles its capacity as it grows"), grow as Process),
    (
        Variant::new("with-capacity", "the guide's code: Vec::with_capacity(len) and push").tests_claim(),
        with_capacity as Process,
    ),
    (
        Variant::new("collect", "data.iter().map(process_item).collect(): sized once from the iterator"),
        collect as Process,
    ),
];

#[derive(Default)]
pub struct SlicePrealloc;

impl SlicePrealloc {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for SlicePrealloc {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Pre-sizing a vector",
            guide_section: "应用层优化 › Go语言优化 › 切片预分配优化 (ProcessLargeDataset)",
            claim: "Pre-allocating the result slice with make(…, 0, len(data)) avoids repeated growth and beats appending to an empty slice.",
            variants: names_of(&VARIANTS),
            sweep: Sweep::numeric("items", "items", &[10.0, 1000.0, 100_000.0], &[10.0, 100_000.0]),
            primary_metric: micro::time_metric(),
            metrics: micro::metrics("item"),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        vec!["Each call builds and returns (then drops) the whole result vector; allocations count every growth of the vector as one (a reallocation).".to_owned()]
    }
}

impl Routines for SlicePrealloc {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let (variant, point) = (at.variant, at.point);
        let f = pick(&VARIANTS, variant)?;
        let n = point.value as usize;
        Ok(Routine::new(dataset(n), move |data| f(data)).items(n as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_computes_the_same_result() {
        for n in [0, 1, 10, 1000] {
            let data = dataset(n);
            let want = grow(&data);
            assert_eq!(want.len(), n);
            for (v, f) in VARIANTS {
                let name = v.name;
                assert_eq!(f(&data), want, "{name} at {n}");
            }
        }
        assert_eq!(with_capacity(&dataset(1000)).capacity(), 1000);
    }
}
