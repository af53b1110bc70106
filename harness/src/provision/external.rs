//! Servers given by URL (`--pg-url`, `--redis-url`, the docker provider's containers): checked,
//! described for results.json, and on Postgres given a schema of the run's own.

use super::*;

pub(super) async fn external_pg(url: &str) -> Result<(PgTarget, ServerInfo), ProvisionError> {
    register_url(url);
    let redacted = redact(url);
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| ProvisionError::BadRequest(format!("--pg-url {redacted} is not a Postgres URL: {e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let dbname = config.get_dbname().unwrap_or(&user).to_owned();
    let mut target = PgTarget {
        config,
        url: redacted.clone(),
        secret_url: Secret(url.to_owned()),
        pid: None,
        host,
        port,
        user,
        dbname,
        schema: None,
    };
    let unreachable = |reason: String| ProvisionError::Unreachable { url: redacted.clone(), reason };
    let client = tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), target.connect())
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(error_chain(&e)))?;
    let mut info = pg_info(&client, &redacted).await.map_err(|e| unreachable(error_chain(&e)))?;
    // Someone else's database: work in a schema of the run's own, and only there.
    let schema = own_schema_name();
    client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await.map_err(|e| {
        ProvisionError::BadRequest(format!(
            "cannot create the schema {schema} to work in on {redacted} (perflab never writes outside a schema of its own): {}",
            error_chain(&e)
        ))
    })?;
    target.config.options(format!("-c search_path={schema}"));
    SCHEMAS.lock().unwrap_or_else(|e| e.into_inner()).push((schema.clone(), target.config.clone()));
    info.settings.insert("schema".into(), format!("{schema} (created for this run, dropped at its end)"));
    target.schema = Some(schema);
    Ok((target, info))
}

pub(super) async fn pg_info(client: &tokio_postgres::Client, url: &str) -> Result<ServerInfo, tokio_postgres::Error> {
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    let mut settings = BTreeMap::new();
    for name in ["fsync", "synchronous_commit", "shared_buffers", "max_connections", "work_mem"] {
        let v: String = client.query_one(&format!("SHOW {name}"), &[]).await?.get(0);
        settings.insert(name.to_owned(), v);
    }
    Ok(ServerInfo { version, url: url.to_owned(), settings })
}

pub(super) async fn external_redis(url: &str) -> Result<(RedisTarget, ServerInfo), ProvisionError> {
    register_url(url);
    let redacted = redact(url);
    let info = redis::parse_redis_url(url)
        .ok_or_else(|| ProvisionError::BadRequest(format!("--redis-url {redacted} is not a Redis URL")))?;
    let host = info.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = info.port().unwrap_or(6379);
    let target = RedisTarget { url: url.to_owned(), redacted: redacted.clone(), pid: None, host, port };
    let server =
        redis_info(&target).await.map_err(|reason| ProvisionError::Unreachable { url: redacted.clone(), reason })?;
    Ok((target, server))
}

pub(super) async fn redis_info(target: &RedisTarget) -> Result<ServerInfo, String> {
    let client = target.client().map_err(|e| e.to_string())?;
    let fut = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await?;
        let persistence: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("save").query_async(&mut con).await.unwrap_or_default();
        let aof: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut con).await.unwrap_or_default();
        Ok::<_, redis::RedisError>((info, persistence, aof))
    };
    let (info, save, aof) = tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned();
    let mut settings = BTreeMap::new();
    if let Some(v) = save.get(1) {
        settings.insert("save".to_owned(), v.clone());
    }
    if let Some(v) = aof.get(1) {
        settings.insert("appendonly".to_owned(), v.clone());
    }
    Ok(ServerInfo { version, url: target.redacted.clone(), settings })
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let part = inner.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = inner.source();
    }
    s
}
