//! Provisioning against the machine's own binaries: start, connect, stop, and nothing left
//! behind, also after a panic in the middle.

use harness::provision::{provision, Env, Provider, ProvisionError, Request};
use std::path::PathBuf;

fn request() -> Request {
    Request { provider: Provider::Local, need_postgres: true, need_redis: true, ..Request::default() }
}

/// Processes in the process group of `pgid` (a server and the children it forked).
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] state, f[1] ppid, f[2] pgrp
        if f[2].parse::<u32>().ok() == Some(pgid) && f[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

fn assert_gone(pids: &[u32], dir: &std::path::Path) {
    for &pid in pids {
        let left = group_members(pid);
        assert!(left.is_empty(), "processes of server {pid} still running: {left:?}");
    }
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

async fn exercise(env: &Env) {
    let pg = env.pg.as_ref().expect("postgres");
    let client = pg.connect().await.expect("connect to postgres");
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "off", "durability is off on an ephemeral server");
    let redis = env.redis.as_ref().expect("redis");
    let mut con = redis.client().unwrap().get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    let pg_info = env.servers.postgres.as_ref().unwrap();
    assert!(pg_info.version.starts_with(|c: char| c.is_ascii_digit()), "{pg_info:?}");
    assert_eq!(env.servers.provider, "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_connect_stop_leaves_nothing() {
    let mut env = provision(&request()).await.expect("ephemeral servers start");
    let pids = env.server_pids();
    assert_eq!(pids.len(), 2);
    let dir = env.run_dir().unwrap().to_owned();
    assert!(dir.exists());
    exercise(&env).await;
    // A second pair alongside the first: separate ports, separate directories.
    let other = provision(&request()).await.expect("a second set starts");
    assert_ne!(other.pg.as_ref().unwrap().port, env.pg.as_ref().unwrap().port);
    let other_pids = other.server_pids();
    let other_dir = other.run_dir().unwrap().to_owned();
    drop(other);
    assert_gone(&other_pids, &other_dir);
    env.shutdown();
    assert_gone(&pids, &dir);
}

#[test]
fn a_panic_in_the_middle_still_stops_everything() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<(Vec<u32>, PathBuf)>));
    let inner = seen.clone();
    let outcome = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let env = provision(&request()).await.expect("ephemeral servers start");
            *inner.lock().unwrap() = Some((env.server_pids(), env.run_dir().unwrap().to_owned()));
            exercise(&env).await;
            panic!("an experiment blew up");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let (pids, dir) = seen.lock().unwrap().clone().expect("servers had started");
    assert_gone(&pids, &dir);
}

#[tokio::test]
async fn an_unreachable_url_fails_fast_and_clearly() {
    // A port nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let req = Request {
        provider: Provider::External,
        pg_url: Some(format!("postgres://u:secret@127.0.0.1:{port}/db")),
        need_postgres: true,
        ..Request::default()
    };
    let started = std::time::Instant::now();
    let err = provision(&req).await.expect_err("nothing listens there");
    assert!(started.elapsed().as_secs() < 10);
    assert!(matches!(err, ProvisionError::Unreachable { .. }), "{err}");
    assert!(err.is_user_error());
    let msg = err.to_string();
    assert!(msg.contains(&port.to_string()) && !msg.contains("secret"), "{msg}");
}

#[tokio::test]
async fn external_provider_without_urls_is_a_usage_error() {
    let req = Request { provider: Provider::External, need_postgres: true, ..Request::default() };
    let err = provision(&req).await.expect_err("no URL given");
    assert!(matches!(err, ProvisionError::BadRequest(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_postgres_is_worked_in_a_schema_of_the_runs_own_then_dropped() {
    let local = provision(&Request { provider: Provider::Local, need_postgres: true, ..Request::default() })
        .await
        .expect("postgres starts");
    let pg = local.pg.clone().unwrap();
    let admin = pg.connect().await.unwrap();
    admin.batch_execute("CREATE TABLE users (sentinel text); INSERT INTO users VALUES ('theirs')").await.unwrap();
    // The run's own server takes only its password: given in the URL, as a user would.
    let password = pg.tool_env().into_iter().find(|(k, _)| *k == "PGPASSWORD").map(|(_, v)| v).unwrap();
    let url = format!("postgres://{}:{password}@{}:{}/{}", pg.user, pg.host, pg.port, pg.dbname);
    let external = provision(&Request {
        provider: Provider::External,
        pg_url: Some(url),
        need_postgres: true,
        ..Request::default()
    })
    .await
    .expect("the external server is reachable");
    let target = external.pg.clone().unwrap();
    let schema = target.schema.clone().expect("a schema of its own");
    // What the lab does through its target lands in its schema, not in the other one's table.
    let c = target.connect().await.unwrap();
    c.batch_execute("DROP TABLE IF EXISTS users; CREATE TABLE users (id int); INSERT INTO users VALUES (1)")
        .await
        .unwrap();
    // sqlx connections (the sqlx variants') see the same schema, and the password given.
    {
        use sqlx::Connection as _;
        let mut s = sqlx::PgConnection::connect_with(&target.sqlx_options()).await.unwrap();
        let current: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut s).await.unwrap();
        assert_eq!(current, schema);
        let ours: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut s).await.unwrap();
        assert_eq!(ours, 1, "sqlx reads the run's table, not the other one");
    }
    let theirs: i64 = admin.query_one("SELECT count(*) FROM public.users", &[]).await.unwrap().get(0);
    assert_eq!(theirs, 1, "the other table is untouched");
    let ours: i64 = admin.query_one(&format!("SELECT count(*) FROM \"{schema}\".users"), &[]).await.unwrap().get(0);
    assert_eq!(ours, 1);
    drop(c);
    drop(external);
    let left: i64 =
        admin.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", &[&schema]).await.unwrap().get(0);
    assert_eq!(left, 0, "{schema} was dropped at the end");
}

/// An existing cluster that does not answer fails fast, with the seed named and its password
/// redacted; `--provider external` without a cluster URL says what is missing.
#[tokio::test]
async fn an_unreachable_cluster_url_fails_fast_and_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let req = Request {
        provider: Provider::External,
        redis_cluster_url: Some(format!("redis://:cLuStErPw@127.0.0.1:{port}, redis://:cLuStErPw@127.0.0.1:{port}")),
        need_redis_cluster: true,
        ..Request::default()
    };
    let started = std::time::Instant::now();
    let err = provision(&req).await.expect_err("nothing listens there");
    assert!(started.elapsed().as_secs() < 10);
    assert!(matches!(err, ProvisionError::Unreachable { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&port.to_string()) && !msg.contains("cLuStErPw"), "{msg}");
    let missing = Request { provider: Provider::External, need_redis_cluster: true, ..Request::default() };
    let err = provision(&missing).await.expect_err("no URL");
    assert!(err.to_string().contains("--redis-cluster-url"), "{err}");
}

/// Servers the run starts take only the run's clients: Postgres over TCP and Redis refuse a
/// client without the run's password (or with another), and the password, a fresh one per
/// server, never shows in an output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_run_can_connect() {
    let env = provision(&request()).await.expect("ephemeral servers start");
    let pg = env.pg.as_ref().expect("postgres");
    let bare = |password: Option<&str>| {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1").port(pg.port).user("postgres").dbname("postgres");
        if let Some(p) = password {
            c.password(p);
        }
        c
    };
    for (what, config) in [("no password", bare(None)), ("another password", bare(Some("postgres")))] {
        let refused = config.connect(tokio_postgres::NoTls).await;
        assert!(refused.is_err(), "Postgres took a client with {what}");
    }
    pg.connect().await.expect("the run's own client connects");
    let password = pg.tool_env().into_iter().find(|(k, _)| *k == "PGPASSWORD").map(|(_, v)| v).expect("a password");
    assert!(password.len() >= 32, "a random password of 128 bits");
    assert_eq!(harness::redact::redact(&format!("auth failed for {password}")), "auth failed for ***");

    let redis = env.redis.as_ref().expect("redis");
    let stranger = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let refused = match stranger.get_multiplexed_async_connection().await {
        Ok(mut con) => redis::cmd("GET").arg("k").query_async::<Option<String>>(&mut con).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = refused.expect_err("Redis answered a client without the password");
    assert!(err.to_string().contains("NOAUTH") || err.to_string().to_lowercase().contains("auth"), "{err}");
    let mut con = redis.client().unwrap().get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    let args = redis.tool_args();
    let pw = &args[args.iter().position(|a| a == "-a").expect("redis-benchmark gets the password") + 1];
    assert_ne!(pw, &password, "each server has a password of its own");
    assert!(!redis.redacted_url().contains(pw.as_str()));
}
