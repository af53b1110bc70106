//! `bench --profile` in the report: per variant, the hottest functions and links to the flame
//! graph and the pprof file beside results.json; the flame graphs of the claim's variant and
//! its baseline are embedded (as images, so their scripts do not run and their ids cannot
//! clash with the page's; a few hundred kilobytes each, so not every variant's).

use crate::results::ExperimentResult;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct ProfileView {
    pub variant: String,
    pub at: String,
    pub samples: u64,
    pub pprof: String,
    pub flamegraph: String,
    /// (function, share of the samples as a percentage)
    pub top: Vec<(String, String)>,
    /// The flame graph as a data URI, when its file was found (base64 only: safe to put in
    /// the page unescaped).
    pub embedded: Option<String>,
}

pub fn views(e: &ExperimentResult, run_dir: Option<&Path>) -> Vec<ProfileView> {
    e.profiles
        .iter()
        .map(|p| {
            let compared = e.headline.as_ref().is_some_and(|h| h.variant == p.variant || h.baseline == p.variant);
            let embedded = run_dir
                .filter(|_| compared)
                .and_then(|d| std::fs::read(d.join(&p.flamegraph)).ok())
                .filter(|svg| !svg.is_empty())
                .map(|svg| format!("data:image/svg+xml;base64,{}", base64(&svg)));
            let in_case = if p.case.is_empty() { String::new() } else { format!("{} · ", p.case) };
            ProfileView {
                variant: p.variant.clone(),
                at: format!("{in_case}{} {}", e.sweep.axis, p.point),
                samples: p.samples,
                pprof: p.pprof.clone(),
                flamegraph: p.flamegraph.clone(),
                top: p.top.iter().map(|(f, share)| (f.clone(), format!("{:.1} %", share * 100.0))).collect(),
                embedded,
            }
        })
        .collect()
}

/// Standard base64 with padding (RFC 4648), for a data URI.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}
