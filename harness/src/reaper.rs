//! The process reaper: every child process and temporary directory a run makes is tracked
//! here until it is gone, so that Ctrl-C, SIGTERM and a panic stop and remove them all
//! (`kill_all`), and the next run sweeps what a SIGKILLed one left (`sweep_leftovers`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the Ctrl-C path must clean up: every live server and run directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Registered {
    Pid(u32),
    Dir(PathBuf),
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

pub(crate) fn register(r: Registered) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).push(r);
}

pub(crate) fn unregister(r: &Registered) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).retain(|x| x != r);
}

/// Track a child process (a measurement worker) so that `cleanup_all` kills it.
pub fn track_child(pid: u32) {
    register(Registered::Pid(pid));
}

/// The child has exited and been reaped.
pub fn untrack_child(pid: u32) {
    unregister(&Registered::Pid(pid));
}

/// Track a temporary directory so that `cleanup_all` removes it.
pub fn track_dir(dir: &Path) {
    register(Registered::Dir(dir.to_path_buf()));
}

/// Remove a tracked temporary directory now.
pub fn remove_tracked_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    unregister(&Registered::Dir(dir.to_path_buf()));
}

/// Kill every tracked process (its process group too) and remove every tracked directory,
/// from any thread: for signal handlers, where the owners may never run their destructors.
pub fn kill_all() {
    let items: Vec<Registered> = std::mem::take(&mut *REGISTRY.lock().unwrap_or_else(|e| e.into_inner()));
    for item in &items {
        if let Registered::Pid(pid) = item {
            // SAFETY: signalling processes (and their groups) that this process started.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for item in &items {
        if let Registered::Pid(pid) = item {
            while Instant::now() < deadline && is_alive(*pid) {
                std::thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: as above; waitpid reaps our own child so no zombie stays in the table.
            unsafe {
                libc::kill(-(*pid as libc::pid_t), libc::SIGKILL);
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(*pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
    for item in &items {
        if let Registered::Dir(d) = item {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Whether process `pid` still runs (exists and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z')).unwrap_or(false))
        .unwrap_or(true)
}

/// The prefixes of the temporary directories perflab makes, each followed by the owning
/// process's pid and a counter: `perflab-<pid>-<n>` (servers), `perflab-micro-<pid>-<n>`
/// (micro workers' scratch), `perflab-test-<pid>-<n>` (the test suites' output).
pub const TEMP_PREFIXES: &[&str] = &["perflab-micro-", "perflab-test-", "perflab-"];

/// A new temporary directory named `<prefix><pid>-<n>` (`prefix` one of `TEMP_PREFIXES`), so
/// that when this process dies without removing it the next run's sweep does.
pub fn new_temp_dir(prefix: &str) -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    assert!(TEMP_PREFIXES.contains(&prefix), "{prefix} is not a prefix the sweep knows");
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The staging directories a Postgres template is copied through into the cache directory,
/// `.pg-template-<version>-uid<uid>.tmp-<host>-<pid>-<n>`, and the Go originals' test binary
/// is built in, `.go-inproc-<hash>.tmp-<host>-<pid>-<n>`. The host is in the name because the
/// cache may be shared (a home directory on NFS, a volume several containers mount): a pid is
/// only judged alive or dead on its own host.
const STAGING_PREFIXES: [&str; 2] = [".pg-template-", ".go-inproc-"];
const STAGING_INFIX: &str = ".tmp-";

/// The name of a staging directory for the `n`-th copy of this process, below `stem`
/// (`.pg-template-<version>-uid<uid>`).
pub fn staging_name(stem: &str, n: u64) -> String {
    format!("{stem}{STAGING_INFIX}{}-{}-{n}", hostname(), std::process::id())
}

/// This machine's host name (as containers' owner labels and staging directories record it).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// The pid in a perflab temporary directory's name, if the name is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    TEMP_PREFIXES.iter().find_map(|prefix| pid_and_counter(name.strip_prefix(prefix)?))
}

/// The pid in a template staging directory's name, if the name is one made on this host.
fn staging_owner_pid(name: &str) -> Option<u32> {
    staging_owner_pid_on(name, &hostname())
}

fn staging_owner_pid_on(name: &str, this_host: &str) -> Option<u32> {
    let rest = STAGING_PREFIXES.iter().find_map(|p| name.strip_prefix(p))?;
    let owner = &rest[rest.rfind(STAGING_INFIX)? + STAGING_INFIX.len()..];
    // `<host>-<pid>-<n>`; the host may itself hold dashes.
    let (host, pid_n) = match owner.rmatch_indices('-').nth(1) {
        Some((i, _)) => (&owner[..i], &owner[i + 1..]),
        None => return None,
    };
    if host != this_host {
        return None;
    }
    pid_and_counter(pid_n)
}

/// `<pid>-<n>`'s pid.
fn pid_and_counter(rest: &str) -> Option<u32> {
    let (pid, n) = rest.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Remove the temporary directories left by perflab processes that are gone (a harness
/// killed with SIGKILL cannot clean up after itself; its servers die with it, their data
/// directories do not), and the half-copied Postgres template staging directories such a
/// process left in `cache_dir` (the servers' cache, `provision::cache_dir`). Returns what was
/// removed. Directories of live processes, and anything not named like ours, are left alone.
pub fn sweep_leftovers(cache_dir: &Path) -> Vec<PathBuf> {
    let mut removed = sweep_leftovers_in(&std::env::temp_dir(), owner_pid);
    removed.extend(sweep_leftovers_in(cache_dir, staging_owner_pid));
    removed
}

fn sweep_leftovers_in(base: &Path, owner: fn(&str) -> Option<u32>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name) else {
            continue;
        };
        if is_alive(pid) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // Servers die with their harness, but a backend may still be finishing (and writing)
        // when the sweep comes: stop whatever still runs from the directory, then remove it.
        kill_processes_using(&e.path());
        for attempt in 0..20 {
            if std::fs::remove_dir_all(e.path()).is_ok() || !e.path().exists() {
                removed.push(e.path());
                break;
            }
            std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
        }
    }
    removed
}

/// SIGKILL every process whose command line names `dir` or whose working directory is in it.
fn kill_processes_using(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(p.path().join("cwd")).ok();
        if String::from_utf8_lossy(&cmdline).contains(&needle) || cwd.is_some_and(|c| c.starts_with(dir)) {
            // SAFETY: a plain signal to a leftover server of a perflab run that is gone.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_of_dead_perflab_processes_are_swept() {
        let base = std::env::temp_dir().join(format!("perflab-sweep-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // No pid is ever above 2^22 on Linux: these owners are certainly gone.
        let dead = [
            base.join("perflab-999999999-0"),
            base.join("perflab-micro-999999998-3"),
            base.join("perflab-test-999999997-1"),
        ];
        let mine = base.join(format!("perflab-{}-0", std::process::id()));
        let other = [base.join("perflab-cache"), base.join("perflab-e2e-bench-999999999"), base.join("perflab-x-1")];
        for d in dead.iter().chain([&mine]).chain(other.iter()) {
            std::fs::create_dir_all(d.join("pgdata")).unwrap();
        }
        let mut removed = sweep_leftovers_in(&base, owner_pid);
        removed.sort();
        let mut want = dead.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(mine.exists(), "a live process's directory stays");
        assert!(other.iter().all(|d| d.exists()), "directories not named perflab-<pid>-<n> stay");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A Postgres template staging directory in the cache, left by a run killed while copying,
    /// is swept once its owner is gone; the finished template and a live run's staging stay.
    #[test]
    fn template_staging_directories_of_dead_processes_are_swept() {
        let base = std::env::temp_dir().join(format!("perflab-staging-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let host = hostname();
        let dead = base.join(format!(".pg-template-15.4-uid0.tmp-{host}-999999999-2"));
        let mine = base.join(staging_name(".pg-template-15.4-uid0", 0));
        // Another host's copy in a shared cache: its pid means nothing here.
        let elsewhere = base.join(format!(".pg-template-15.4-uid0.tmp-{host}x-999999999-2"));
        let template = base.join("pg-template-15.4-uid0");
        let dead_go = base.join(format!(".go-inproc-00ff.tmp-{host}-999999999-0"));
        for d in [&dead, &mine, &elsewhere, &template, &dead_go] {
            std::fs::create_dir_all(d.join("base")).unwrap();
        }
        assert_eq!(staging_owner_pid_on(".pg-template-16_1-uid1000.tmp-ci-box-2-42-7", "ci-box-2"), Some(42));
        assert_eq!(staging_owner_pid_on(".pg-template-16_1-uid1000.tmp-ci-box-2-42-7", "ci-box-3"), None);
        assert_eq!(staging_owner_pid_on(".pg-template-16_1-uid1000.tmp-42-7", ""), None, "no host: not ours");
        assert_eq!(staging_owner_pid("pg-template-15.4-uid0"), None);
        let mut swept = sweep_leftovers_in(&base, staging_owner_pid);
        swept.sort();
        assert_eq!(swept, vec![dead_go.clone(), dead.clone()]);
        assert!(mine.exists() && elsewhere.exists() && template.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
