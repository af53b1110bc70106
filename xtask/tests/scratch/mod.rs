//! The test suites' output directories: `perflab-test-<pid>-<n>` in the temporary directory
//! (`harness::reaper::new_temp_dir`), removed when the test ends however it ends (a failed
//! assertion unwinds through the drop), and swept by the next perflab run when the test
//! process was killed before it could remove them.

use std::path::{Path, PathBuf};

pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// A new, empty output directory for one test.
pub fn temp_dir() -> TempDir {
    TempDir(harness::reaper::new_temp_dir("perflab-test-").expect("a temporary directory"))
}
