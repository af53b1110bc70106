//! Where a run comes from (`results::RunContext`): host, git revision, toolchain, timestamps, and its run directory.

use crate::results::Host;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Describe this machine.
pub fn host() -> Host {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()));
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned());
    Host {
        cpu_model,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_bytes,
        kernel,
        os: std::env::consts::OS.to_owned(),
    }
}

/// `(revision, dirty)` of the git checkout at `dir`, if it is one.
pub fn git_revision(dir: &Path) -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let rev = run(&["rev-parse", "HEAD"]);
    let dirty =
        rev.as_ref().and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"])).map(|s| !s.is_empty());
    (rev, dirty)
}

/// A fingerprint of the checkout's uncommitted changes (FNV-1a, 64 bits, of `git diff HEAD`
/// in a fixed format, then each untracked file that is not ignored, name and content), or none
/// for a clean tree or no checkout: two runs with the same revision and the same fingerprint
/// measured the same code.
pub fn git_changes(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git").args(args).current_dir(dir).output().ok().filter(|o| o.status.success()).map(|o| o.stdout)
    };
    let mut bytes = git(&[
        "-c",
        "core.quotepath=off",
        "diff",
        "HEAD",
        "--binary",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
        "--src-prefix=a/",
        "--dst-prefix=b/",
    ])?;
    let untracked = git(&["ls-files", "-z", "--others", "--exclude-standard"])?;
    for name in untracked.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        bytes.extend_from_slice(b"\0untracked\0");
        bytes.extend_from_slice(name);
        bytes.push(0);
        let path = dir.join(String::from_utf8_lossy(name).as_ref());
        bytes.extend_from_slice(&std::fs::read(path).unwrap_or_default());
    }
    if bytes.is_empty() {
        return None;
    }
    Some(format!("{:016x}", fnv1a(&bytes)))
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher promises neither).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub fn rustc_version() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// Now as RFC 3339 in UTC, e.g. `2026-11-26T10:24:10Z`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs as i64)
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// A run id that sorts by time: `20261126-102410-<rev7>`.
pub fn run_id(revision: Option<&str>) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, m, d, hh, mm, ss) = civil(now.as_secs() as i64);
    let ms = now.subsec_millis();
    let rev = revision.map(|r| &r[..r.len().min(7)]).unwrap_or("nogit");
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}-{ms:03}-{rev}")
}

/// Create a new run's directory under `out` and return its id and path. The id has
/// millisecond resolution, and the directory is created exclusively: a second run that gets
/// the same id (two started together) takes the next free `-2`, `-3`, … instead of sharing
/// the first one's directory and overwriting its results.
pub fn create_run_dir(out: &Path, revision: Option<&str>) -> std::io::Result<(String, std::path::PathBuf)> {
    std::fs::create_dir_all(out)?;
    let base = run_id(revision);
    for n in 1..1000 {
        let id = if n == 1 { base.clone() } else { format!("{base}-{n}") };
        let dir = out.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("no free run directory for {base} in {}", out.display()),
    ))
}

/// Days-to-civil (Howard Hinnant's algorithm), UTC.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, (rem % 3600 / 60) as u32, (rem % 60) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_together_get_directories_of_their_own() {
        let out = std::env::temp_dir().join(format!("perflab-runid-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let out = out.clone();
                std::thread::spawn(move || create_run_dir(&out, Some("abcdef0123")).unwrap())
            })
            .collect();
        let mut ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap().0).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "{ids:?}");
        assert!(ids.iter().all(|id| id.contains("-abcdef0")), "{ids:?}");
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// `--resume` compares these: none on a clean tree, the same for the same changes, another
    /// for other changes.
    #[test]
    fn uncommitted_changes_have_a_stable_fingerprint() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a's published value for \"a\"");
        let dir = std::env::temp_dir().join(format!("perflab-changes-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(dir.join("f"), "one\n").unwrap();
        git(&["add", "f"]);
        git(&["commit", "-q", "-m", "one"]);
        assert_eq!(git_changes(&dir), None, "a clean tree");
        std::fs::write(dir.join("f"), "two\n").unwrap();
        let two = git_changes(&dir).expect("a change");
        assert_eq!(git_changes(&dir).as_ref(), Some(&two), "the same change, the same fingerprint");
        std::fs::write(dir.join("f"), "three\n").unwrap();
        let three = git_changes(&dir).expect("a change");
        assert_ne!(three, two, "another change, another fingerprint");
        std::fs::write(dir.join("new.rs"), "fn main() {}\n").unwrap();
        let with_new = git_changes(&dir).expect("a change");
        assert_ne!(with_new, three, "a new file the tree does not track yet counts too");
        std::fs::write(dir.join("new.rs"), "fn main() { panic!() }\n").unwrap();
        assert_ne!(git_changes(&dir).unwrap(), with_new, "and so does its content");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_688_650), "2026-11-26T10:24:10Z");
    }
}
