//! The decision path pinned: re-deciding the full run at d55a67b (`runs/full-d55a67b`, its
//! three parts) from its samples alone, through `harness::decide` and this build's catalogue,
//! gives the findings and headlines of `tests/data/golden-decisions.json`. Only a commit that
//! changes the decision rule on purpose updates that file (`PERFLAB_BLESS=1 cargo test -p
//! xtask --test golden`) and says in its message what moved and why.

use harness::results::ExperimentResult;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One experiment's decision, as pinned: the finding's kind and reason, the headline.
fn decision(e: &ExperimentResult) -> serde_json::Value {
    serde_json::json!({
        "finding": e.finding.as_ref().map(|f| serde_json::to_value(f.kind).unwrap()),
        "reason": e.finding.as_ref().map(|f| f.reason.clone()),
        "headline": e.headline.as_ref().map(|h| h.sentence.clone()),
    })
}

#[test]
fn re_deciding_the_full_run_gives_the_pinned_findings_and_headlines() {
    let dir = workspace().join("runs/full-d55a67b");
    let tmp = std::env::temp_dir().join(format!("perflab-golden-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let catalogue = xtask::catalogue::all();
    let mut decided: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".results.json.gz"))
        .collect();
    parts.sort();
    assert_eq!(parts.len(), 3, "the full run's three parts");
    for part in parts {
        let mut json = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&part).unwrap()).read_to_string(&mut json).unwrap();
        let file = tmp.join("results.json");
        std::fs::write(&file, json).unwrap();
        let run = harness::results::read(&file).unwrap();
        let cores = run.context.host.cores.max(1);
        for mut e in run.experiments {
            let Some(meta) = catalogue.iter().map(|c| c.meta()).find(|m| m.id == e.id) else {
                panic!("{} is not in the catalogue", e.id);
            };
            // Everything derived is decided again, the samples' validity included.
            for s in &mut e.samples {
                s.invalid = None;
            }
            harness::decide::decide(&mut e, &meta, cores);
            decided.insert(e.id.clone(), decision(&e));
        }
    }
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(decided.len(), 27, "every experiment of the catalogue was in the full run");
    let golden_path = workspace().join("xtask/tests/data/golden-decisions.json");
    let now = serde_json::to_string_pretty(&decided).unwrap() + "\n";
    if std::env::var_os("PERFLAB_BLESS").is_some() {
        std::fs::write(&golden_path, &now).unwrap();
        return;
    }
    let golden =
        std::fs::read_to_string(&golden_path).expect("tests/data/golden-decisions.json (PERFLAB_BLESS=1 writes it)");
    let golden: BTreeMap<String, serde_json::Value> = serde_json::from_str(&golden).unwrap();
    let moved: Vec<String> = decided
        .iter()
        .filter(|(id, d)| golden.get(*id) != Some(*d))
        .map(|(id, d)| {
            format!("{id}:\n  pinned {}\n  now    {d}", golden.get(id).map_or("none".into(), |g| g.to_string()))
        })
        .collect();
    assert!(moved.is_empty(), "the decision path moved (bless only on purpose):\n{}", moved.join("\n"));
}
