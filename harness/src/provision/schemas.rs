//! Schemas the run works in on external Postgres servers, dropped when the run ends however
//! it ends.

use super::*;

/// Schemas this process created on external servers, with how to reach them, until dropped.
pub(super) static SCHEMAS: Mutex<Vec<(String, tokio_postgres::Config)>> = Mutex::new(Vec::new());

/// `perflab_<host>_<pid>_<n>`: unique to this process, and telling a DBA whose it is.
pub(super) fn own_schema_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let host: String = super::hostname()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(20)
        .collect();
    format!("perflab_{host}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Drop `schema` on `pg`'s server when the run ends (also on Ctrl-C), if `pg` is an external
/// server: for an experiment that needs schemas of its own beside the run's. On a server the
/// run started, nothing to do: the server goes with its data.
pub fn drop_at_end(pg: &PgTarget, schema: &str) {
    if pg.schema.is_none() {
        return;
    }
    let mut all = SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|(s, _)| s == schema) {
        all.push((schema.to_owned(), pg.config.clone()));
    }
}

/// Drop the schemas this process created on external servers. Runs on a thread of its own
/// with its own runtime, so it works from a destructor, a signal handler's task or a plain
/// thread alike; each drop waits at most 10 s.
pub(super) fn drop_schemas() {
    let todo: Vec<(String, tokio_postgres::Config)> =
        std::mem::take(&mut *SCHEMAS.lock().unwrap_or_else(|e| e.into_inner()));
    if todo.is_empty() {
        return;
    }
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        for (schema, config) in todo {
            // The timer is made inside the runtime: outside it, a timeout has no clock.
            let outcome = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), async {
                    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await
                })
                .await
            });
            let why = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => error_chain(&e),
                Err(_) => "no answer within 10 s".to_owned(),
            };
            eprintln!("perflab: could not drop the schema {schema} it worked in ({}); drop it by hand", redact(&why));
        }
    })
    .join();
}
