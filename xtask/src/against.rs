//! `bench --against REV`: the other revision's build. REV is resolved to a commit, checked out
//! in a temporary git worktree and built in release mode with a target directory of its own
//! (target/against/build, shared by every revision so that dependencies build once); its two
//! executables are kept in target/against/<commit>/ and reused by the next run against the
//! same commit. The worktree is removed whatever happens.

use crate::Failure;
use harness::session::AgainstBuild;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The executables a build serves trials with.
const BINARIES: [&str; 2] = ["xtask", "perflab-alloc"];

fn git(workspace: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::usage(format!("--against needs git: {e}")))?;
    if !out.status.success() {
        return Err(Failure::usage(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit `rev` names in `workspace`; a name git does not know is bad input.
pub fn resolve(workspace: &Path, rev: &str) -> Result<String, Failure> {
    if rev.trim().is_empty() || rev.starts_with('-') {
        return Err(Failure::usage(format!("--against {rev:?}: expected a git revision (HEAD~1, main, a commit)")));
    }
    git(workspace, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
        .map_err(|_| Failure::usage(format!("--against {rev}: not a commit of this repository")))
}

/// Names an executable to use as REV's build instead of building it (a build made
/// elsewhere; the tests use this build itself).
const EXE_VAR: &str = "PERFLAB_AGAINST_EXE";

/// Build (or find the cached build of) `commit`, printing what it does on stderr.
pub fn build(workspace: &Path, revision: &str, commit: &str) -> Result<AgainstBuild, Failure> {
    let root = workspace.join("target").join("against");
    let bin_dir = root.join(commit);
    let mut exe = bin_dir.join("xtask");
    if let Some(given) = std::env::var_os(EXE_VAR).filter(|v| !v.is_empty()) {
        exe = PathBuf::from(given);
        eprintln!("perflab: {EXE_VAR} names {revision}'s build: {}", exe.display());
    } else if !BINARIES.iter().all(|b| bin_dir.join(b).is_file()) {
        eprintln!(
            "perflab: building {revision} ({}) in release mode for --against (once per commit; the first build also compiles the dependencies)…",
            &commit[..12.min(commit.len())]
        );
        let worktree = root.join(format!("src-{commit}"));
        let _ = git(workspace, &["worktree", "prune"]);
        if worktree.exists() {
            let _ = git(workspace, &["worktree", "remove", "--force", &worktree.to_string_lossy()]);
            let _ = std::fs::remove_dir_all(&worktree);
        }
        std::fs::create_dir_all(&root).map_err(|e| Failure::Run(format!("creating {}: {e}", root.display())))?;
        git(workspace, &["worktree", "add", "--detach", "--quiet", &worktree.to_string_lossy(), commit])
            .map_err(|e| Failure::Run(format!("checking out {revision}: {}", msg(e))))?;
        let built = cargo_build(&worktree, &root.join("build"));
        let copied = built.and_then(|release| copy_binaries(&release, &bin_dir));
        let _ = git(workspace, &["worktree", "remove", "--force", &worktree.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&worktree);
        copied?;
    } else {
        eprintln!("perflab: using the cached build of {revision} ({})", bin_dir.display());
    }
    let protocol = Command::new(&exe).args(["trial-server", "--protocol"]).stderr(Stdio::null()).output();
    match protocol {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == harness::trial_server::PROTOCOL.to_string() => {}
        Ok(o) if o.status.success() => {
            return Err(Failure::usage(format!(
                "--against {revision}: its build speaks trial protocol {}, this one {}: compare two separate runs instead (`cargo xtask compare`)",
                String::from_utf8_lossy(&o.stdout).trim(),
                harness::trial_server::PROTOCOL
            )))
        }
        _ => {
            return Err(Failure::usage(format!(
                "--against {revision}: that revision predates --against (its build cannot serve trials); compare two separate runs instead (`cargo xtask compare`)"
            )))
        }
    }
    Ok(AgainstBuild { exe, revision: revision.to_owned(), commit: commit.to_owned() })
}

fn msg(f: Failure) -> String {
    match f {
        Failure::Usage(m) | Failure::Run(m) => m,
    }
}

/// `cargo build --release -p xtask --bins` in `src` with its own target directory; returns
/// the directory the executables are in.
fn cargo_build(src: &Path, target: &Path) -> Result<PathBuf, Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(src)
        .args(["build", "--release", "--package", "xtask", "--bins"])
        .env("CARGO_TARGET_DIR", target)
        .stdin(Stdio::null());
    let status = harness::build::cargo_build_with_progress(cmd, "building the other revision")
        .map_err(|e| Failure::Run(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Failure::Run(format!("building the other revision failed ({status}); cargo's errors are above")));
    }
    Ok(target.join("release"))
}

/// Copy the executables into `dir`, each written under a temporary name and renamed, so that
/// an interrupted copy never passes for a build.
fn copy_binaries(release: &Path, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::Run(format!("creating {}: {e}", dir.display())))?;
    for b in BINARIES {
        let (from, to, tmp) = (release.join(b), dir.join(b), dir.join(format!(".{b}.partial")));
        std::fs::copy(&from, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &to))
            .map_err(|e| Failure::Run(format!("copying {} to {}: {e}", from.display(), to.display())))?;
    }
    Ok(())
}
