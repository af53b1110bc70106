//! The CI workflows call the command line as it is: every `cargo xtask …` line in
//! `.github/workflows/` names a subcommand that exists, with flags that subcommand takes.

use std::path::Path;
use std::process::Command;

/// (file, subcommand, flags) of every `cargo xtask` call in the workflows.
fn calls() -> Vec<(String, String, Vec<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("the workflows directory").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(e.path()).unwrap();
        for line in text.lines() {
            let Some((_, call)) = line.split_once("cargo xtask ") else {
                continue;
            };
            let words: Vec<&str> = call
                .split_whitespace()
                .take_while(|w| !matches!(*w, ">" | ">>" | "|" | "&&" | "||" | ";" | "2>&1"))
                .collect();
            let sub = words[0].to_owned();
            let flags =
                words.iter().filter(|w| w.starts_with("--")).map(|w| w.split('=').next().unwrap().to_owned()).collect();
            out.push((name.clone(), sub, flags));
        }
    }
    out
}

#[test]
fn every_xtask_call_in_the_workflows_exists() {
    let calls = calls();
    assert!(calls.len() >= 5, "the workflows call xtask: {calls:?}");
    for (file, sub, flags) in calls {
        let o = Command::new(env!("CARGO_BIN_EXE_xtask")).args([sub.as_str(), "--help"]).output().unwrap();
        assert!(o.status.success(), "{file}: `cargo xtask {sub}` is not a subcommand");
        let help = String::from_utf8_lossy(&o.stdout);
        for f in flags {
            assert!(
                help.contains(&format!("{f} ")) || help.contains(&format!("{f}\n")),
                "{file}: `cargo xtask {sub}` has no flag {f}"
            );
        }
    }
}
