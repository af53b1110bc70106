//! perflab's own executables built with cargo while a person waits (the other revision's
//! build for `--against`, the allocation worker): cargo's progress, counted and shown.

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Run `cargo build …` (`cmd`, without any `--message-format`) and show its
/// progress on stderr as `perflab: <what>: N crates compiled, M up to date, <elapsed>`: on a
/// terminal one line redrawn in place, elsewhere (CI logs) one line every 30 s. Compiler errors
/// still reach stderr as cargo renders them.
pub fn cargo_build_with_progress(mut cmd: Command, what: &str) -> std::io::Result<ExitStatus> {
    // Quiet: no "Compiling …" line per crate; errors and warnings are still rendered.
    cmd.args(["--quiet", "--message-format=json-render-diagnostics"]).stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_line = started;
    let (mut compiled, mut fresh) = (0u32, 0u32);
    let show = |compiled: u32, fresh: u32, end: &str| {
        let line =
            format!("perflab: {what}: {compiled} crates compiled, {fresh} up to date, {}", elapsed(started.elapsed()));
        let mut err = std::io::stderr().lock();
        let _ = if tty { write!(err, "\r{line}\x1b[K{end}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    };
    for line in std::io::BufReader::new(stdout).lines() {
        // A line that is not text is not an artifact; reading on keeps cargo's pipe open.
        let Ok(line) = line else { continue };
        match artifact(&line) {
            Some(true) => fresh += 1,
            Some(false) => compiled += 1,
            None => continue,
        }
        if tty || last_line.elapsed() >= Duration::from_secs(30) {
            show(compiled, fresh, "");
            last_line = Instant::now();
        }
    }
    let status = child.wait()?;
    show(compiled, fresh, "\n");
    Ok(status)
}

/// A `compiler-artifact` message of cargo's JSON: whether it was up to date (`fresh`).
fn artifact(line: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["reason"] == "compiler-artifact").then(|| v["fresh"].as_bool().unwrap_or(false))
}

fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_counted_fresh_or_compiled_and_other_messages_skipped() {
        assert_eq!(artifact(r#"{"reason":"compiler-artifact","fresh":true,"target":{}}"#), Some(true));
        assert_eq!(artifact(r#"{"reason":"compiler-artifact","fresh":false}"#), Some(false));
        assert_eq!(artifact(r#"{"reason":"build-script-executed"}"#), None);
        assert_eq!(artifact("not json"), None);
        assert_eq!(elapsed(Duration::from_secs(83)), "1 min 23 s");
        assert_eq!(elapsed(Duration::from_secs(9)), "9 s");
    }

    /// A real cargo: a command that is not a build fails and says so through the status.
    #[test]
    fn a_failing_cargo_returns_its_status() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--package", "no-such-package-xyz"]).stderr(Stdio::null());
        let status = cargo_build_with_progress(cmd, "test").unwrap();
        assert!(!status.success());
    }
}
