//! Deterministic data for the guide's tables, loaded with COPY.
//!
//! Timestamps deliberately contain ties (several rows sharing one `created_at`) and many rows
//! within one second, as real inserts do: two of the guide's flaws only show up then.

use crate::stats::SplitMix64;
use bytes::Bytes;
use futures_util::SinkExt;
use std::fmt::Write as _;
use tokio_postgres::Client;

pub const USERS_SQL: &str = include_str!("../../../fixtures/sql/users.sql");
pub const USERS_INDEXES_SQL: &str = include_str!("../../../fixtures/sql/users_indexes.sql");
pub const POLICIES_ACCESS_KEYS_SQL: &str = include_str!("../../../fixtures/sql/policies_access_keys.sql");

/// Bumped when the generator changes, so that a stale table on an external server is rebuilt.
const USERS_GENERATOR_VERSION: i32 = 1;
/// 2024-01-01T00:00:00Z in microseconds since the Unix epoch.
const BASE_MICROS: i64 = 1_704_067_200_000_000;
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// What `load_users` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsersInfo {
    pub rows: i64,
    /// Rows not soft-deleted.
    pub live_rows: i64,
    pub reused: bool,
}

/// Stream `rows` rows into `copy_sql` (a `COPY … FROM STDIN`), each appended to the buffer by
/// `next_row` as tab-separated text with its newline, sent in chunks of about a megabyte.
pub async fn copy_rows(
    client: &tokio_postgres::Client,
    copy_sql: &str,
    rows: u64,
    mut next_row: impl FnMut(&mut String),
) -> Result<(), tokio_postgres::Error> {
    let sink = client.copy_in(copy_sql).await?;
    futures_util::pin_mut!(sink);
    let mut buf = String::with_capacity(COPY_CHUNK_BYTES + 512);
    for _ in 0..rows {
        next_row(&mut buf);
        if buf.len() >= COPY_CHUNK_BYTES {
            sink.send(Bytes::from(std::mem::replace(&mut buf, String::with_capacity(COPY_CHUNK_BYTES + 512)))).await?;
        }
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf)).await?;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

/// Ensure `users` holds exactly the `rows` rows of the generator with `seed` and the guide's
/// indexes. Reuses the table when a marker says it is already so (idempotent setup).
pub async fn load_users(client: &Client, rows: i64, seed: u64) -> anyhow::Result<UsersInfo> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS perflab_fixtures (name text PRIMARY KEY, rows bigint NOT NULL, seed bigint NOT NULL, version int NOT NULL)",
        )
        .await?;
    let marker = client.query_opt("SELECT rows, seed, version FROM perflab_fixtures WHERE name = 'users'", &[]).await?;
    let exists: bool = client.query_one("SELECT to_regclass('users') IS NOT NULL", &[]).await?.get(0);
    if let (Some(m), true) = (marker, exists) {
        let (r, s, v): (i64, i64, i32) = (m.get(0), m.get(1), m.get(2));
        if r == rows && s == seed as i64 && v == USERS_GENERATOR_VERSION {
            let live: i64 = client.query_one("SELECT count(*) FROM users WHERE deleted_at IS NULL", &[]).await?.get(0);
            return Ok(UsersInfo { rows, live_rows: live, reused: true });
        }
    }
    client
        .batch_execute("DROP TABLE IF EXISTS users CASCADE; DELETE FROM perflab_fixtures WHERE name = 'users';")
        .await?;
    client.batch_execute(USERS_SQL).await?;
    let mut gen = UsersGenerator::new(seed);
    copy_rows(
        client,
        "COPY users (id, username, email, status, created_at, updated_at, deleted_at) FROM STDIN",
        rows as u64,
        |buf| gen.next_row(buf),
    )
    .await?;
    client.batch_execute(USERS_INDEXES_SQL).await?;
    client.batch_execute("ANALYZE users").await?;
    client
        .execute(
            "INSERT INTO perflab_fixtures (name, rows, seed, version) VALUES ('users', $1, $2, $3)",
            &[&rows, &(seed as i64), &USERS_GENERATOR_VERSION],
        )
        .await?;
    let live: i64 = client.query_one("SELECT count(*) FROM users WHERE deleted_at IS NULL", &[]).await?.get(0);
    Ok(UsersInfo { rows, live_rows: live, reused: false })
}

/// Ensure `policies` (two per user) and `access_keys` (one per user) match the current `users`
/// fixture; call after `load_users`.
pub async fn load_policies_and_keys(client: &Client, users: &UsersInfo) -> anyhow::Result<()> {
    let marker = client.query_opt("SELECT rows, seed FROM perflab_fixtures WHERE name = 'users'", &[]).await?;
    let users_marker: Option<(i64, i64)> = marker.map(|m| (m.get(0), m.get(1)));
    let derived = client.query_opt("SELECT rows, seed FROM perflab_fixtures WHERE name = 'policies'", &[]).await?;
    let exists: bool = client.query_one("SELECT to_regclass('access_keys') IS NOT NULL", &[]).await?.get(0);
    if users.reused && exists && derived.map(|d| (d.get(0), d.get(1))) == users_marker {
        return Ok(());
    }
    client.batch_execute(POLICIES_ACCESS_KEYS_SQL).await?;
    if let Some((rows, seed)) = users_marker {
        client.execute("DELETE FROM perflab_fixtures WHERE name = 'policies'", &[]).await?;
        client
            .execute(
                "INSERT INTO perflab_fixtures (name, rows, seed, version) VALUES ('policies', $1, $2, 1)",
                &[&rows, &seed],
            )
            .await?;
    }
    Ok(())
}

/// Ids of live users, in a deterministic shuffled order, for experiments that look users up.
pub async fn live_user_ids(client: &Client, limit: i64, seed: u64) -> anyhow::Result<Vec<uuid::Uuid>> {
    let mut ids: Vec<uuid::Uuid> = client
        .query(
            "SELECT id FROM users WHERE deleted_at IS NULL AND username LIKE 'user\\_%' ORDER BY id LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    Ok(ids)
}

/// What the setup of an experiment that looks users up produces.
pub struct UsersSetup {
    pub client: Client,
    pub info: UsersInfo,
    pub ids: std::sync::Arc<Vec<uuid::Uuid>>,
}

/// The setup such experiments share: `rows` users (the experiment's rows knob, whose range
/// bounds it), the users fixture with `seed`, and up to `id_limit` live fixture ids in a
/// deterministic shuffled order.
pub async fn setup_users(ctx: &crate::RunCtx, rows: i64, seed: u64, id_limit: i64) -> anyhow::Result<UsersSetup> {
    let client = ctx.env.postgres()?.connect().await?;
    let info = load_users(&client, rows, seed).await.map_err(|e| e.context("loading users"))?;
    let ids = std::sync::Arc::new(live_user_ids(&client, id_limit, seed).await?);
    Ok(UsersSetup { client, info, ids })
}

/// The cached form of a user row `(id, username, email, created_at)` (the columns of
/// fixtures/sql/pg-batch/get_by_id.sql), as JSON: what the cache experiments store.
pub fn cached_user_json(row: &tokio_postgres::Row) -> String {
    let id: uuid::Uuid = row.get(0);
    let username: &str = row.get(1);
    let email: &str = row.get(2);
    let created: std::time::SystemTime = row.get(3);
    let secs = created.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    format!(
        "{{\"id\":\"{id}\",\"username\":\"{username}\",\"email\":\"{email}\",\"created_at\":\"{}\"}}",
        crate::provenance::rfc3339(secs)
    )
}

/// Rows of `users` in creation order, as COPY text.
pub struct UsersGenerator {
    rng: SplitMix64,
    index: u64,
    created_us: i64,
}

impl UsersGenerator {
    pub fn new(seed: u64) -> Self {
        Self { rng: SplitMix64::new(seed), index: 0, created_us: BASE_MICROS }
    }

    /// Append one row (tab-separated, newline-terminated) to `out`.
    pub fn next_row(&mut self, out: &mut String) {
        let i = self.index;
        self.index += 1;
        // 30% of rows share the previous row's timestamp (a tie); the others follow within
        // 0-400 ms, so a second holds about seven rows.
        if i > 0 && self.rng.next_f64() >= 0.3 {
            self.created_us += (self.rng.next_u64() % 400_000) as i64;
        }
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        let id = uuid::Builder::from_random_bytes({
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..].copy_from_slice(&b.to_le_bytes());
            bytes
        })
        .into_uuid();
        let r = self.rng.next_f64();
        let status = if r < 0.7 {
            "active"
        } else if r < 0.9 {
            "inactive"
        } else {
            "suspended"
        };
        // Some addresses carry capitals, so LOWER(email) matters.
        let email = if i % 10 == 3 { format!("User{i}@Example.com") } else { format!("user{i}@example.com") };
        let deleted = self.rng.next_f64() < 0.02;
        let created = ts(self.created_us);
        let _ = write!(out, "{id}\tuser_{i:08}\t{email}\t{status}\t{created}\t{created}\t");
        if deleted {
            out.push_str(&ts(self.created_us + 86_400_000_000));
        } else {
            out.push_str("\\N");
        }
        out.push('\n');
    }
}

/// Microseconds since the epoch as Postgres timestamptz text in UTC (COPY field or, quoted,
/// a literal).
pub fn ts(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let s = crate::provenance::rfc3339(secs);
    // "YYYY-MM-DDTHH:MM:SSZ" -> "YYYY-MM-DD HH:MM:SS.ffffff+00"
    format!("{} {}.{frac:06}+00", &s[..10], &s[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic_and_has_ties() {
        let mut a = UsersGenerator::new(42);
        let mut b = UsersGenerator::new(42);
        let (mut sa, mut sb) = (String::new(), String::new());
        for _ in 0..1000 {
            a.next_row(&mut sa);
            b.next_row(&mut sb);
        }
        assert_eq!(sa, sb);
        let created: Vec<&str> = sa.lines().map(|l| l.split('\t').nth(4).unwrap()).collect();
        let ties = created.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(ties > 200, "{ties} ties in 1000 rows");
        let seconds: std::collections::HashSet<&str> = created.iter().map(|c| &c[..19]).collect();
        assert!(seconds.len() < 250, "{} distinct seconds: rows must share seconds", seconds.len());
        assert_eq!(ts(BASE_MICROS + 1_500_000), "2024-01-01 00:00:01.500000+00");
    }
}
