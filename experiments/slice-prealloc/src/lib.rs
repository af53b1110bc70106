//! `slice-prealloc`: the guide's `ProcessLargeDataset`, which pre-sizes its result
//! (`make([]ProcessedItem, 0, len(data))`), against appending to an empty slice as Go grows it
//! (a new array and a copy at each growth: doubling to 256 elements, then about 1.25×), against
//! growing a `Vec` (which doubles through `realloc`, often in place) and against an iterator
//! `collect` (which sizes the vector from the iterator's exact length).
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

/// Go's `growslice` rule (runtime/slice.go, Go 1.20 on) for appending one element to a full
/// slice of capacity `old`: double below 256 elements, then grow by (cap + 768) / 4 until it
/// fits. (Go then rounds the size up to its allocator's size class; the port does not.)
pub fn go_next_capacity(old: usize) -> usize {
    const THRESHOLD: usize = 256;
    let needed = old + 1;
    if needed > 2 * old {
        return needed;
    }
    if old < THRESHOLD {
        return 2 * old;
    }
    let mut cap = old;
    while cap < needed {
        cap += (cap + 3 * THRESHOLD) >> 2;
    }
    cap
}

/// `var result []ProcessedItem` and `append`, as Go runs it: a full slice grows into a new
/// array of `go_next_capacity`, the old elements copied over and the old array left to the
/// collector (here freed at once).
pub fn go_append(data: &[DataItem]) -> Vec<ProcessedItem> {
    let mut result: Vec<ProcessedItem> = Vec::new();
    for item in data {
        if result.len() == result.capacity() {
            let mut grown = Vec::with_capacity(go_next_capacity(result.capacity()));
            grown.extend_from_slice(&result);
            result = grown;
        }
        result.push(process_item(item));
    }
    result
}

/// The bytes `go_append` copies from old arrays to new ones while appending `n` items.
pub fn go_append_bytes_copied(n: usize) -> usize {
    let (mut cap, mut copied) = (0, 0);
    while cap < n {
        copied += cap * std::mem::size_of::<ProcessedItem>();
        cap = go_next_capacity(cap);
    }
    copied
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

const VARIANTS: [(Variant, Process); 4] = [
    (
        Variant::new(
            "go-append",
            "append to an empty slice as Go grows it: a new array and a copy at each growth (×2 to 256 elements, then about ×1.25)",
        ),
        go_append as Process,
    ),
    (
        Variant::new("with-capacity", "the guide's code: Vec::with_capacity(len) and push").tests_claim(),
        with_capacity as Process,
    ),
    (
        Variant::new("grow", "Vec::new() and push: Rust's growth, doubling through realloc (often in place, no copy)")
            .compared_with("go-append"),
        grow as Process,
    ),
    (
        Variant::new("collect", "data.iter().map(process_item).collect(): sized once from the iterator"),
        collect as Process,
    ),
];

/// The guide's Go code beside the ports (`go/inproc/slice_prealloc.go`), compared with one
/// another only: append to a nil slice, and the guide's make with capacity.
const GO_VARIANTS: [Variant; 2] = [
    Variant::baseline_of_group("go-nil-append", "Go original: var result []ProcessedItem and append (Go's own growth)")
        .in_go("SlicePrealloc/append"),
    Variant::new(
        "go-guide-make-cap",
        "Go original: the guide's ProcessLargeDataset as printed (make([]ProcessedItem, 0, len(data)))",
    )
    .compared_with("go-nil-append")
    .in_go("SlicePrealloc/guide-make-cap")
    .tests_claim(),
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
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            sweep: Sweep::numeric("items", "items", &[10.0, 1000.0, 100_000.0], &[10.0, 100_000.0]),
            primary_metric: micro::time_metric(),
            metrics: [micro::metrics("item"), vec![micro::go::gc_metric()]].concat(),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!()
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> harness::BoxFuture<'a, anyhow::Result<Vec<harness::Check>>> {
        Box::pin(async move {
            Ok(ctx
                .settings
                .points(&self.meta().sweep)
                .iter()
                .map(|p| {
                    harness::Check::observation(
                        "go-append",
                        Some(&p.label),
                        "bytes copied by growth",
                        go_append_bytes_copied(p.value as usize) as f64,
                        "copied from old arrays into new ones as Go's append grows the slice; with-capacity copies none",
                    )
                })
                .collect())
        })
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

    #[test]
    fn go_append_grows_as_go_does() {
        // Go 1.20+: 0 → 1 → 2 → 4 … → 256 → 512 → 832 → 1232 (before size-class rounding).
        let mut caps = vec![0];
        while *caps.last().unwrap() < 1000 {
            caps.push(go_next_capacity(*caps.last().unwrap()));
        }
        assert_eq!(caps, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 832, 1232]);
        assert_eq!(go_append(&dataset(1000)).capacity(), 1232);
        let item = std::mem::size_of::<ProcessedItem>();
        assert_eq!(go_append_bytes_copied(3), (1 + 2) * item);
        assert_eq!(go_append_bytes_copied(0), 0);
    }
}
