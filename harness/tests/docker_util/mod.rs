//! What the docker tests share (harness's and xtask's): whether a daemon answers, the images
//! the provider will run, and what the daemon holds, read with the docker command.
#![allow(dead_code)]

use std::io::Write;
use std::process::Command;

/// Whether the docker tests can run here. When not, one line says why, on the terminal even
/// when the test passes (the print macros are captured; a direct write to stderr is not).
pub fn docker_available() -> bool {
    let why = match std::env::var("PERFLAB_DOCKER_SKIP") {
        Ok(why) => Some(why),
        Err(_) => {
            let answers = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            (!answers).then(|| "no Docker daemon answers (`docker info` fails)".to_owned())
        }
    };
    if let Some(why) = &why {
        let _ = writeln!(std::io::stderr(), "docker test skipped: {why}");
    }
    why.is_none()
}

/// The images the provider runs: the environment's, else the pinned official tags.
pub fn images() -> (String, String) {
    let pick =
        |var: &str, default: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or(default.into());
    (pick("PERFLAB_PG_IMAGE", "postgres:15.8-bookworm"), pick("PERFLAB_REDIS_IMAGE", "redis:7.0.15-bookworm"))
}

fn docker(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

/// The containers (running or not) that process `pid` of this host made.
pub fn containers_of(pid: u32) -> Vec<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    docker(&["ps", "-aq", "--filter", &format!("label=org.perflab.owner={}/{pid}", host.trim())])
}

/// Every volume the daemon holds.
pub fn volumes() -> Vec<String> {
    docker(&["volume", "ls", "-q"])
}
