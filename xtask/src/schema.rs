//! `cargo xtask schema`: write the JSON Schema of results.json into the repository.

use crate::Failure;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn schema() -> Result<ExitCode, Failure> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/results.schema.json");
    let mut text = serde_json::to_string_pretty(&harness::results::json_schema()).map_err(anyhow::Error::from)?;
    text.push('\n');
    harness::results::write_atomic(&path, text.as_bytes())
        .map_err(|e| Failure::Run(format!("writing {}: {e}", path.display())))?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
