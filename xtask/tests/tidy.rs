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

/// The harness's top-level modules (a file or a folder under harness/src) and, for each, the
/// other top-level modules its non-test code names as `crate::…` (comments and everything
/// from a file's `#[cfg(test)]` on are left out: tests may reach further).
fn harness_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = workspace().join("harness/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let entry = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    entry.insert(name);
                }
            }
        }
    }
    graph
}

/// `results` is plain data and file I/O: it names nothing else of the harness but `redact`
/// (itself a leaf), so a report can be read and rendered with no engine, server or experiment.
/// The report reads results only: never an engine, provisioning, the analysis or the runner.
#[test]
fn results_is_a_leaf_and_the_report_reads_results_only() {
    let graph = harness_imports();
    let results: Vec<&String> = graph["results"].iter().filter(|m| *m != "redact").collect();
    assert!(results.is_empty(), "harness::results imports {results:?}: records only, a leaf");
    assert!(graph["redact"].is_empty(), "redact imports {:?}", graph["redact"]);
    let forbidden = ["load", "experiment", "provision", "analysis", "runner", "session", "micro", "decide"];
    let report: Vec<&String> = graph["report"].iter().filter(|m| forbidden.contains(&m.as_str())).collect();
    assert!(report.is_empty(), "harness::report imports {report:?}: it reads results.json only");
}

/// No import cycle among the harness's modules: a lower module never imports a higher one.
#[test]
fn the_harness_modules_import_without_cycles() {
    let graph = harness_imports();
    // Depth-first search; a module met again while on the stack closes a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = stack.iter().position(|s| *s == m) {
            cycles.push(format!("{} -> {m}", stack[i..].join(" -> ")));
            return;
        }
        if !done.insert(m) {
            return;
        }
        stack.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, stack, done, cycles);
        }
        stack.pop();
    }
    let mut cycles = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles in harness/src:\n{}", cycles.join("\n"));
}
