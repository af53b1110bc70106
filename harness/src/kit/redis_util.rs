//! What the Redis experiments share: their own key prefix (cleared in setup, so nothing is
//! left between experiments), the guide's cached user as a value, server counters from
//! `INFO`, and `redis-benchmark` as a reference.

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;
use std::process::Command;

/// The key prefix of an experiment: `perflab:<id>:`; in a trial server of a two-revision run
/// (`bench --against`), `perflab:<side>:<id>:`, so that each build has keys of its own (the
/// side tags have the same length: the keys' sizes do not differ between the builds).
pub fn prefix(experiment: &str) -> String {
    crate::provision::redis_prefix(experiment)
}

/// Delete every key under `prefix` (SCAN + UNLINK, never KEYS or FLUSHALL: the server may be
/// shared). Returns how many were deleted.
pub async fn clear_prefix(con: &mut MultiplexedConnection, prefix: &str) -> redis::RedisResult<u64> {
    let pattern = format!("{}*", prefix.replace('*', "\\*").replace('?', "\\?").replace('[', "\\["));
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query_async(con).await?;
        if !keys.is_empty() {
            deleted += redis::cmd("UNLINK").arg(&keys).query_async::<u64>(con).await?;
        }
        cursor = next;
        if cursor == 0 {
            return Ok(deleted);
        }
    }
}

/// The guide's `User` as its JSON serializer writes it into the cache, for fixture user `i`
/// (about 200 bytes).
pub fn user_json(i: u64) -> String {
    let email = if i % 10 == 3 { format!("User{i}@Example.com") } else { format!("user{i}@example.com") };
    format!(
        "{{\"id\":\"{:08x}-0000-4000-8000-{:012x}\",\"username\":\"user_{i:08}\",\"email\":\"{email}\",\"status\":\"active\",\"created_at\":\"2024-01-01T00:00:00Z\",\"updated_at\":\"2024-01-01T00:00:00Z\"}}",
        i >> 16,
        i
    )
}

/// Numeric fields of `INFO <section>` (`total_connections_received`, `connected_clients`, …).
pub async fn info(con: &mut MultiplexedConnection, section: &str) -> redis::RedisResult<Vec<(String, f64)>> {
    let text: String = redis::cmd("INFO").arg(section).query_async(con).await?;
    Ok(parse_info(&text))
}

pub fn parse_info(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            Some((k.to_owned(), v.parse::<f64>().ok()?))
        })
        .collect()
}

/// One numeric field of `INFO <section>`.
pub async fn info_field(con: &mut MultiplexedConnection, section: &str, field: &str) -> anyhow::Result<f64> {
    info(con, section)
        .await?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
        .with_context(|| format!("INFO {section} has no {field}"))
}

/// `(requests/s, mean latency in ms, [p50, p95, p99] in ms)` from `redis-benchmark --csv`.
pub fn parse_redis_benchmark_csv(out: &str) -> Option<(f64, f64, Vec<f64>)> {
    let line = out.lines().find(|l| l.starts_with("\"GET\""))?;
    let fields: Vec<f64> = line.split(',').skip(1).filter_map(|f| f.trim_matches('"').parse().ok()).collect();
    // rps, avg, min, p50, p95, p99, max
    Some((*fields.first()?, *fields.get(1)?, fields.get(3..6).map(|s| s.to_vec()).unwrap_or_default()))
}

/// Run `redis-benchmark -t get --csv` with `args` against `target`; its GET requests/s.
pub fn redis_benchmark_get_rps(target: &crate::provision::RedisTarget, args: &[&str]) -> anyhow::Result<f64> {
    let bin = crate::provision::which("redis-benchmark").context("redis-benchmark not found: install redis-tools")?;
    let out = Command::new(&bin)
        .args(target.tool_args())
        .args(["-t", "get", "--csv"])
        .args(args)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "redis-benchmark failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    parse_redis_benchmark_csv(&stdout)
        .map(|r| r.0)
        .with_context(|| format!("unexpected redis-benchmark output: {stdout}"))
}

/// A load-engine worker that GETs one key over a multiplexed connection of its own, the
/// command built once: the plainest Redis operation (calibration, the selftest). A missing
/// key is an error, not a fast success.
pub struct GetWorker {
    con: MultiplexedConnection,
    cmd: redis::Cmd,
}

impl GetWorker {
    pub async fn connect(client: &redis::Client, key: &str) -> redis::RedisResult<GetWorker> {
        let con = client.get_multiplexed_async_connection().await?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        Ok(GetWorker { con, cmd })
    }
}

impl crate::load::Worker for GetWorker {
    async fn call(&mut self) -> Result<(), crate::load::OpError> {
        match self.cmd.query_async::<Option<redis::Value>>(&mut self.con).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(crate::load::OpError::new("key missing")),
            Err(e) => Err(crate::load::OpError::from_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parses_numeric_fields_only() {
        let text = "# Clients\r\nconnected_clients:3\r\nmaxclients:10000\r\nredis_version:7.0.15\r\n";
        let f = parse_info(text);
        assert_eq!(f, vec![("connected_clients".into(), 3.0), ("maxclients".into(), 10000.0)]);
    }

    #[test]
    fn user_json_is_json_of_a_plausible_size() {
        let j = user_json(3);
        assert!(j.contains("\"username\":\"user_00000003\"") && j.contains("User3@Example.com"), "{j}");
        assert!((150..260).contains(&j.len()), "{}", j.len());
        assert_ne!(user_json(1), user_json(2));
    }

    #[test]
    fn parses_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"GET\",\"96525.09\",\"0.283\",\"0.080\",\"0.263\",\"0.423\",\"0.583\",\"1.511\"\n";
        let (rps, avg, p) = parse_redis_benchmark_csv(out).unwrap();
        assert_eq!(rps, 96525.09);
        assert_eq!(avg, 0.283);
        assert_eq!(p, vec![0.263, 0.423, 0.583]);
    }
}
