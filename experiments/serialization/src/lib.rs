//! `serialization`: the guide's `JSONSerializer` against its `MsgPackSerializer` ("更高效",
//! more efficient), on the payloads a cache service stores: one user, a page of 100 users,
//! and about 1 MB of audit-log rows.
//!
//! Three formats: serde_json; rmp-serde with field names (a map per struct, what Go's
//! vmihailenco/msgpack writes by default); rmp-serde compact (a struct as an array, field
//! names left out). For each: encode and decode time and allocations (micro engine), and
//! the whole cache path — encode, Redis SET, GET, decode — against the run's Redis, and the
//! SET and GET of the encoded bytes alone (a check holds GET to the bytes SET). Bytes,
//! bytes after gzip and what happens when one format's decoder is handed another format's
//! bytes are observations in the checks.

use anyhow::Context as _;
use harness::kit::redis_util;
use harness::micro::{self, Input, Routine};
use harness::results::Check;
use harness::{
    names_of, pick, BoxFuture, Case, Engine, Experiment, Meta, Needs, Routines, RunCtx, Sweep, Trial, Variant,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Write as _;

const ID: &str = "serialization";
const PAYLOADS: [&str; 3] = ["user", "page-100", "audit-1mb"];
/// The audit payload grows to this many bytes of JSON.
const AUDIT_JSON_BYTES: usize = 1_000_000;
/// The guide's cache TTL for users: 30 minutes.
const TTL_SECS: u64 = 1800;

/// A row of the guide's `users` table, as its service caches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

/// A row of the guide's `audit_logs` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    pub id: i64,
    pub user_id: String,
    pub action: String,
    pub resource: String,
    pub ip_address: String,
    pub user_agent: String,
    pub success: bool,
    pub created_at: String,
}

fn uuid(i: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i & 0xffff_ffff_ffff)
}

fn timestamp(i: u64) -> String {
    let s = i % 86_400;
    format!(
        "2025-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        i % 12 + 1,
        i % 28 + 1,
        s / 3600,
        s / 60 % 60,
        s % 60,
        (i * 7919) % 1_000_000
    )
}

pub fn user(i: u64) -> User {
    User {
        id: uuid(i),
        username: format!("user_{i:08}"),
        email: format!("user{i}@example.com"),
        status: if i % 5 == 0 { "inactive" } else { "active" }.to_owned(),
        created_at: timestamp(i),
        updated_at: timestamp(i + 17),
        deleted_at: None,
    }
}

pub fn page(n: u64) -> Vec<User> {
    (0..n).map(user).collect()
}

const ACTIONS: [&str; 6] = ["login", "logout", "create_policy", "delete_policy", "create_access_key", "assume_role"];

pub fn audit_rows(json_bytes: usize) -> Vec<AuditLog> {
    let mut rows = Vec::new();
    let mut size = 2;
    let mut i = 0u64;
    while size < json_bytes {
        let row = AuditLog {
            id: 1_000_000 + i as i64,
            user_id: uuid(i % 5000),
            action: ACTIONS[(i % 6) as usize].to_owned(),
            resource: format!("arn:perflab:iam::{:012}:policy/p-{}", i % 97, i % 1013),
            ip_address: format!("10.{}.{}.{}", i % 256, (i / 256) % 256, i % 199 + 1),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) perflab-client/1.0".to_owned(),
            success: i % 13 != 0,
            created_at: timestamp(i),
        };
        size += serde_json::to_vec(&row).map(|v| v.len() + 1).unwrap_or(0);
        rows.push(row);
        i += 1;
    }
    rows
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Json, Format::MsgpackNamed, Format::MsgpackCompact];

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::MsgpackNamed => "msgpack-named",
            Format::MsgpackCompact => "msgpack-compact",
        }
    }

    pub fn encode<T: Serialize>(self, value: &T) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Format::Json => serde_json::to_vec(value)?,
            Format::MsgpackNamed => rmp_serde::to_vec_named(value)?,
            Format::MsgpackCompact => rmp_serde::to_vec(value)?,
        })
    }

    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> anyhow::Result<T> {
        Ok(match self {
            Format::Json => serde_json::from_slice(bytes)?,
            // rmp-serde reads a struct from a map or an array alike.
            Format::MsgpackNamed | Format::MsgpackCompact => rmp_serde::from_slice(bytes)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Encode,
    Decode,
    /// Encode, SET with the TTL, GET, decode: the cache's write and read path.
    Redis,
    /// SET with the TTL and GET of bytes encoded beforehand: what the format's size costs on
    /// the wire and in Redis, the codec left out.
    RedisBytes,
}

/// The cases: the operations a cache does with a format, and the round trip alone.
const CASES: [(Case, Op); 4] = [
    (Case::new("encode", "serialize the payload"), Op::Encode),
    (Case::new("decode", "deserialize the payload"), Op::Decode),
    (
        // The guide's claim is about cached values: the Redis path.
        Case::new("redis", "encode, SET (30 min TTL), GET, decode: one cache write and read").tests_claim(),
        Op::Redis,
    ),
    (
        Case::new("redis-bytes", "SET (30 min TTL) and GET of the bytes encoded beforehand: the round trip alone"),
        Op::RedisBytes,
    ),
];

harness::table! {
    /// The variants: the formats, each compared with JSON.
    const VARIANTS: [Variant] = enum Format {
        Json => Variant::new("json", "serde_json (the guide's JSONSerializer)"),
        MsgpackNamed => Variant::new("msgpack-named", "rmp-serde with field names, a map per struct (the guide's MsgPackSerializer: vmihailenco/msgpack's default)",) .compared_with("json") .tests_claim(),
        MsgpackCompact => Variant::new("msgpack-compact", "rmp-serde compact, a struct as an array without field names") .compared_with("json"),
    }
}

/// The Go originals (go/inproc/serialization.go): the guide's JSONSerializer and
/// MsgPackSerializer as printed, and vmihailenco/msgpack with array-encoded structs, on the
/// port's payloads, cases and Redis (go-redis).
const GO_VARIANTS: [Variant; 3] = [
    Variant::baseline_of_group("go-json", "Go original: the guide's JSONSerializer (encoding/json)")
        .in_go("Serialization/json"),
    Variant::new(
        "go-guide-msgpack",
        "Go original: the guide's MsgPackSerializer as printed (vmihailenco/msgpack, a map per struct)",
    )
    .compared_with("go-json")
    .in_go("Serialization/guide-msgpack")
    .tests_claim(),
    Variant::new(
        "go-msgpack-compact",
        "Go original: vmihailenco/msgpack with UseArrayEncodedStructs, a struct as an array without field names",
    )
    .compared_with("go-json")
    .in_go("Serialization/msgpack-compact"),
];

/// The payload behind a sweep point, as a value of its own type.
enum Payload {
    User(User),
    Page(Vec<User>),
    Audit(Vec<AuditLog>),
}

impl Payload {
    fn of(point: &str) -> anyhow::Result<Self> {
        Ok(match point {
            "user" => Payload::User(user(42)),
            "page-100" => Payload::Page(page(100)),
            "audit-1mb" => Payload::Audit(audit_rows(AUDIT_JSON_BYTES)),
            other => anyhow::bail!("unknown payload {other}"),
        })
    }

    fn records(&self) -> usize {
        match self {
            Payload::User(_) => 1,
            Payload::Page(v) => v.len(),
            Payload::Audit(v) => v.len(),
        }
    }
}

fn key(point: &str, format: Format) -> String {
    format!("{}{point}:{}", redis_util::prefix(ID), format.name())
}

/// One async Redis connection (redis-rs's multiplexed connection, as the other Redis
/// experiments use) on a current-thread runtime of the routine's own: its driver task runs
/// only inside `block_on`, on the measuring thread, so nothing else shares the core.
struct AsyncRedis {
    rt: tokio::runtime::Runtime,
    con: redis::aio::MultiplexedConnection,
    key: String,
}

impl AsyncRedis {
    fn connect(url: &str, key: String) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let client = harness::provision::redis_client(url)?;
        let con = rt.block_on(client.get_multiplexed_async_connection()).context("connecting to Redis")?;
        Ok(Self { rt, con, key })
    }

    /// SET `bytes` with the TTL, then GET them back: one cache write and one read.
    fn set_get(&mut self, bytes: &[u8]) -> redis::RedisResult<Vec<u8>> {
        let (con, key) = (&mut self.con, &self.key);
        self.rt.block_on(async move {
            redis::cmd("SET").arg(key).arg(bytes).arg("EX").arg(TTL_SECS).query_async::<()>(con).await?;
            redis::cmd("GET").arg(key).query_async(con).await
        })
    }
}

fn routine_for<T>(value: T, op: Op, format: Format, redis: Option<AsyncRedis>) -> anyhow::Result<Routine>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    // Fail before timing if the format cannot round-trip the payload, or Redis the bytes.
    let bytes = format.encode(&value)?;
    let _: T = format.decode(&bytes).context("decoding what was just encoded")?;
    let mut redis = redis;
    if let Some(r) = &mut redis {
        anyhow::ensure!(r.set_get(&bytes)? == bytes, "GET returned other bytes than SET stored");
    }
    let redis = || redis.context("the Redis round trip needs the run's Redis");
    Ok(match op {
        Op::Encode => Routine::new(value, move |v| format.encode(v).expect("encodes")),
        Op::Decode => Routine::new(bytes, move |b| format.decode::<T>(b).expect("decodes")),
        Op::Redis => Routine::new((value, redis()?), move |(v, r)| {
            let bytes = format.encode(v).expect("encodes");
            let got = r.set_get(&bytes).expect("SET and GET");
            format.decode::<T>(&got).expect("decodes")
        }),
        Op::RedisBytes => Routine::new((bytes, redis()?), move |(b, r)| r.set_get(b).expect("SET and GET")),
    })
}

fn gzip_len(bytes: &[u8]) -> anyhow::Result<usize> {
    // Level 6: Go's gzip.DefaultCompression, which a gzip middleware uses unless told otherwise.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len())
}

/// Hand `bytes` of `from` to `to`'s decoder, catching a panic: "error", "decoded" (a value
/// equal to the original) or "decoded a different value", or "panicked".
fn cross_decode<T>(original: &T, bytes: &[u8], to: Format) -> (String, bool)
where
    T: DeserializeOwned + PartialEq,
{
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| to.decode::<T>(bytes))) {
        Err(_) => ("panicked".to_owned(), false),
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            let short: String = msg.chars().take(90).collect();
            (format!("error: {short}"), true)
        }
        Ok(Ok(v)) if &v == original => ("decoded the same value".to_owned(), true),
        Ok(Ok(_)) => ("decoded a different value, silently".to_owned(), true),
    }
}

fn observe<T>(value: &T, point: &str, checks: &mut Vec<Check>) -> anyhow::Result<()>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let encoded: Vec<(Format, Vec<u8>)> =
        Format::ALL.iter().map(|&f| f.encode(value).map(|b| (f, b))).collect::<anyhow::Result<_>>()?;
    let json_len = encoded[0].1.len() as f64;
    for (f, bytes) in &encoded {
        let variant = f.name();
        checks.push(Check::observation(variant, Some(point), "bytes", bytes.len() as f64, "encoded size"));
        checks.push(Check::observation(
            variant,
            Some(point),
            "bytes vs json",
            bytes.len() as f64 / json_len,
            "encoded size relative to JSON",
        ));
        checks.push(Check::observation(variant, Some(point), "gzip bytes", gzip_len(bytes)? as f64, "gzip level 6"));
        for (to, _) in &encoded {
            if to == f {
                continue;
            }
            let (what, ok) = cross_decode(value, bytes, *to);
            checks.push(
                Check::verdict(
                    variant,
                    Some(point),
                    &format!("read by the {} decoder", to.name()),
                    if what.starts_with("error") { 0.0 } else { 1.0 },
                    ok,
                    "decoding another format's bytes must fail cleanly (an error), never panic",
                )
                .with_text(what),
            );
        }
    }
    Ok(())
}

#[derive(Default)]
pub struct Serialization;

impl Serialization {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for Serialization {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "JSON vs MessagePack",
            guide_section: "缓存优化 › 序列化优化 (JSONSerializer, MsgPackSerializer)",
            claim: "MessagePack is a more efficient serializer than JSON for cached values.",
            variants: [names_of(&VARIANTS), GO_VARIANTS.to_vec()].concat(),
            cases: names_of(&CASES),
            // Quick mode: one user and a page; the 1 MB payload is for full runs.
            sweep: Sweep { quick: vec![0.0, 1.0], ..Sweep::categories("payload", &PAYLOADS) },
            primary_metric: micro::time_metric(),
            metrics: [micro::metrics("record"), vec![micro::go::gc_metric()]].concat(),
            needs: Needs::REDIS,
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }

    fn setup<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut con, &redis_util::prefix(ID)).await?;
            Ok(())
        })
    }

    fn checks<'a>(&'a self, ctx: &'a RunCtx) -> BoxFuture<'a, anyhow::Result<Vec<Check>>> {
        Box::pin(async move {
            let mut checks = Vec::new();
            for point in PAYLOADS {
                match Payload::of(point)? {
                    Payload::User(v) => observe(&v, point, &mut checks)?,
                    Payload::Page(v) => observe(&v, point, &mut checks)?,
                    Payload::Audit(v) => {
                        checks.push(Check::observation(
                            "json",
                            Some(point),
                            "records",
                            v.len() as f64,
                            "audit rows in the payload",
                        ));
                        observe(&v, point, &mut checks)?
                    }
                }
            }
            // Through the routines' own path (AsyncRedis on a runtime of its own, so on a
            // blocking thread), every format at every payload.
            let url = ctx.env.redis()?.url.clone();
            let round_trips = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                for point in PAYLOADS {
                    for (variant, format) in &VARIANTS {
                        let bytes = match Payload::of(point)? {
                            Payload::User(v) => format.encode(&v)?,
                            Payload::Page(v) => format.encode(&v)?,
                            Payload::Audit(v) => format.encode(&v)?,
                        };
                        let got = AsyncRedis::connect(&url, key(point, *format))?.set_get(&bytes)?;
                        out.push((point, variant.name, bytes, got));
                    }
                }
                anyhow::Ok(out)
            })
            .await??;
            for (point, variant, bytes, got) in round_trips {
                checks.push(Check::verdict(
                    variant,
                    Some(point),
                    "get_returns_bytes_set",
                    got.len() as f64,
                    got == bytes,
                    format!("bytes GET returned after a SET of the {} encoded bytes (ok: the same bytes)", bytes.len()),
                ));
            }
            let mut con = ctx.env.redis()?.client()?.get_multiplexed_async_connection().await?;
            redis_util::clear_prefix(&mut con, &redis_util::prefix(ID)).await?;
            Ok(checks)
        })
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!()
    }
}

impl Routines for Serialization {
    fn routine(&self, input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let (op, format, point) = (pick(&CASES, at.case)?, pick(&VARIANTS, at.variant)?, at.point);
        let redis = match op {
            Op::Redis | Op::RedisBytes => {
                let url = input.redis_url.context("the Redis round trip needs the run's Redis")?;
                Some(AsyncRedis::connect(url, key(&point.label, format))?)
            }
            Op::Encode | Op::Decode => None,
        };
        let payload = Payload::of(&point.label)?;
        let records = payload.records() as u64;
        let r = match payload {
            Payload::User(v) => routine_for(v, op, format, redis)?,
            Payload::Page(v) => routine_for(v, op, format, redis)?,
            Payload::Audit(v) => routine_for(v, op, format, redis)?,
        };
        Ok(r.items(records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_every_payload() {
        let users = page(100);
        let audit = audit_rows(20_000);
        for f in Format::ALL {
            let b = f.encode(&users).unwrap();
            assert_eq!(f.decode::<Vec<User>>(&b).unwrap(), users, "{}", f.name());
            let b = f.encode(&audit).unwrap();
            assert_eq!(f.decode::<Vec<AuditLog>>(&b).unwrap(), audit, "{}", f.name());
        }
    }

    #[test]
    fn audit_payload_is_about_a_megabyte_of_json() {
        let rows = audit_rows(AUDIT_JSON_BYTES);
        let n = serde_json::to_vec(&rows).unwrap().len();
        assert!((AUDIT_JSON_BYTES..AUDIT_JSON_BYTES + 1000).contains(&n), "{n}");
    }

    #[test]
    fn compact_leaves_field_names_out_and_named_keeps_them() {
        let u = user(1);
        let named = Format::MsgpackNamed.encode(&u).unwrap();
        let compact = Format::MsgpackCompact.encode(&u).unwrap();
        let has = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(&named, "username") && !has(&compact, "username"));
        assert_eq!(named[0], 0x87, "a fixmap of 7 fields");
        assert_eq!(compact[0], 0x97, "a fixarray of 7 fields");
    }

    #[test]
    fn cross_decoding_garbage_is_an_error_not_a_panic() {
        let u = user(3);
        let json = Format::Json.encode(&u).unwrap();
        let (what, ok) = cross_decode(&u, &json, Format::MsgpackNamed);
        assert!(ok && what.starts_with("error"), "{what}");
        let mp = Format::MsgpackCompact.encode(&u).unwrap();
        let (what, ok) = cross_decode(&u, &mp, Format::Json);
        assert!(ok && what.starts_with("error"), "{what}");
        // Truncated bytes too.
        let (what, ok) = cross_decode(&u, &mp[..mp.len() / 2], Format::MsgpackCompact);
        assert!(ok && what.starts_with("error"), "{what}");
    }

    /// The Redis routines build and run against a real server (each checks, before timing,
    /// that GET returns the bytes SET), and the run's check finds every format's bytes come
    /// back unchanged at every payload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_returns_the_bytes_set_and_the_redis_routines_run() {
        let exp = Serialization::new();
        let ctx = harness::testing::set_up(&exp, &[]).await;
        let url = ctx.env.redis().unwrap().url.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let settings = harness::Settings::quick_for_tests();
            let input = Input { settings: &settings, redis_url: Some(&url) };
            let point = harness::SweepPoint { label: "page-100".into(), value: 1.0 };
            let mut ran = 0;
            for case in ["redis", "redis-bytes"] {
                for (v, _) in &VARIANTS {
                    let at = Trial { case, variant: v.name, point: &point, offered: None, round: 0 };
                    exp.routine(&input, at).unwrap().run(3);
                    ran += 1;
                }
            }
            ran
        })
        .await
        .unwrap();
        assert_eq!(ran, 2 * VARIANTS.len());
        let checks = Serialization::new().checks(&ctx).await.unwrap();
        let returned: Vec<_> = checks.iter().filter(|c| c.name == "get_returns_bytes_set").collect();
        assert_eq!(returned.len(), PAYLOADS.len() * VARIANTS.len());
        assert!(returned.iter().all(|c| c.ok == Some(true) && c.value > 0.0), "{returned:?}");
    }

    #[test]
    fn gzip_shrinks_repetitive_bytes() {
        let b = vec![b'a'; 10_000];
        let n = gzip_len(&b).unwrap();
        assert!(n > 18 && n < 200, "{n}");
    }
}
