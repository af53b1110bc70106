//! results.json on disk: atomic writes (a reader never sees half a file) and loading with
//! errors that name the file and tell a missing, corrupt or other-version file apart.

use super::{RunResults, OLDEST_READABLE_VERSION, SCHEMA_VERSION};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a results file could not be read; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no results file at {0}: run `cargo xtask bench` first")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid results file: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error(
        "{path} has schema version {found}, this perflab reads versions {OLDEST_READABLE_VERSION} to {SCHEMA_VERSION}"
    )]
    Version { path: PathBuf, found: u64 },
}

/// Read and check a results.json.
pub fn read(path: &Path) -> Result<RunResults, ReadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing(path.to_owned())),
        Err(source) => return Err(ReadError::Io { path: path.to_owned(), source }),
    };
    // Look at the version first, so a file from another version says so instead of failing
    // on whichever field changed.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ReadError::Corrupt { path: path.to_owned(), source })?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if (u64::from(OLDEST_READABLE_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&v) => {}
        Some(found) => return Err(ReadError::Version { path: path.to_owned(), found }),
        None => {
            return Err(ReadError::Corrupt {
                path: path.to_owned(),
                source: serde::de::Error::custom("no schema_version field"),
            })
        }
    }
    serde_json::from_value(value).map_err(|source| ReadError::Corrupt { path: path.to_owned(), source })
}

/// Write `results` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over the target, so a reader never sees half a file.
pub fn save(path: &Path, results: &RunResults) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(results).map_err(std::io::Error::other)?;
    // The last line of defence: whatever a field holds, no known secret is written. (The
    // patterns were applied where each text was made; run over JSON they could cut an escape.)
    write_atomic(path, crate::redact::mask_known(&json).as_bytes())
}

/// Atomic write of any bytes (also used for the report's HTML).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float read back from results.json is the float written, to the last bit (serde_json's
    /// default parser was one ulp off for this CI bound of a two-pair comparison, so a
    /// resumed run's kept experiment differed from what it had written).
    #[test]
    fn floats_round_trip_exactly() {
        for x in [1.8275655319109482e-14_f64, 0.9833333333333332, 67572872559981.37, 1e-300, 0.1 + 0.2] {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x:e} came back as {back:e}");
        }
    }

    #[test]
    fn load_reports_missing_corrupt_and_version() {
        let dir = std::env::temp_dir().join(format!("perflab-results-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope.json");
        assert!(matches!(read(&missing), Err(ReadError::Missing(_))));
        let corrupt = dir.join("corrupt.json");
        std::fs::write(&corrupt, "{\"schema_version\": 1, \"run_id\": ").unwrap();
        assert!(matches!(read(&corrupt), Err(ReadError::Corrupt { .. })));
        let other = dir.join("other.json");
        std::fs::write(&other, "{\"schema_version\": 999}").unwrap();
        let err = read(&other).unwrap_err();
        assert!(matches!(err, ReadError::Version { found: 999, .. }));
        assert!(err.to_string().contains("999"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("perflab-atomic-test-{}", std::process::id()));
        let path = dir.join("x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
