//! House rules for the tree, checked on every test run (as rust-analyzer's tidy test does):
//! every Rust file says what it is in a `//!` first line, no file grows past what one reader
//! holds in mind, the README's experiments table is one table that names every experiment,
//! and each experiment crate is listed once in the catalogue.

use std::path::{Path, PathBuf};

/// Files longer than this are split by job (the harness's provision/, micro/ and report/
/// show how).
const MAX_LINES: usize = 800;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "target" || name.starts_with('.') || name == "reports" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line_and_stays_short() {
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    assert!(files.len() > 40, "the walk found the tree ({} files)", files.len());
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(workspace()).unwrap().display().to_string();
        if !text.starts_with("//!") {
            problems.push(format!("{rel}: does not open with a `//!` line saying what it is"));
        }
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{rel}: {lines} lines (at most {MAX_LINES}: split it by job)"));
        }
    }
    assert!(problems.is_empty(), "house rules:\n{}", problems.join("\n"));
}

/// The README's experiments table is one table (a blank line inside it would turn the rest
/// into text) with a row for every experiment crate.
#[test]
fn the_readme_table_lists_every_experiment() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let crates: Vec<String> = std::fs::read_dir(workspace().join("experiments"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(crates.len() >= 19);
    // The table: the run of lines starting with '|' that holds the first experiment's row.
    let lines: Vec<&str> = readme.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with('|') && crates.iter().any(|c| l.contains(&format!("`{c}`"))))
        .expect("an experiments table");
    let start = (0..=first).rev().take_while(|&i| lines[i].starts_with('|')).last().unwrap();
    let table: Vec<&str> = lines[start..].iter().take_while(|l| l.starts_with('|')).copied().collect();
    for c in &crates {
        assert!(
            table.iter().any(|l| l.contains(&format!("`{c}`"))),
            "README: the experiments table has no row for {c} (or a blank line splits the table)"
        );
    }
    let catalogue = std::fs::read_to_string(workspace().join("xtask/src/catalogue.rs")).unwrap();
    for c in &crates {
        let module = c.replace('-', "_");
        assert_eq!(
            catalogue.matches(&format!("Box::new({module}::")).count(),
            1,
            "the catalogue lists {c} exactly once"
        );
    }
}
