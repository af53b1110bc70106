//! A Postgres connection pool with Go database/sql's two limits, for the experiments that put
//! the guide's pool settings on trial (its DefaultDBConfig: MaxOpenConns 25, MaxIdleConns 5).
//!
//! At most `max_open` connections exist at once. A returned connection goes to a waiting
//! request if there is one (database/sql's `connRequests` hand-off), else to the idle list
//! unless `max_idle` are already idle, in which case it is closed. No maintained Rust pool has
//! that last rule, and it is the one the guide's setting turns on.
//!
//! `query` prepares a statement once per connection and reuses it (pgx's statement cache, and
//! what a dedicated connection with `prepare` does), so a pooled variant and one on its own
//! connection differ in the pool alone; `query_typed` sends an unnamed statement each time.

use crate::load::OpError;
use crate::provision::PgTarget;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::Semaphore;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

/// A pooled connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: Vec<(String, Statement)>,
}

impl Conn {
    async fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some((_, st)) = self.statements.iter().find(|(s, _)| s == sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).await?;
        self.statements.push((sql.to_owned(), st.clone()));
        Ok(st)
    }
}

pub struct GoSqlPool {
    target: PgTarget,
    open: Semaphore,
    state: Mutex<State>,
    max_idle: usize,
    opened: AtomicU64,
}

/// The idle list and the requests waiting for a slot, changed together under one lock.
#[derive(Default)]
struct State {
    idle: Vec<Conn>,
    /// Requests waiting for a connection slot that no returned connection was handed to yet.
    waiting: usize,
    /// Connections handed to waiting requests (kept on the idle list whatever its limit), one
    /// per waiter: database/sql hands a returned connection to exactly one request.
    handed: usize,
}

impl GoSqlPool {
    pub fn new(target: PgTarget, max_open: usize, max_idle: usize) -> Self {
        Self {
            target,
            open: Semaphore::new(max_open),
            state: Mutex::new(State::default()),
            max_idle,
            opened: AtomicU64::new(0),
        }
    }

    /// The idle limit (MaxIdleConns).
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Open `n` connections (at most the idle limit) and prepare `statements` on each, before
    /// any clock starts, so that a measurement does not pay for the pool's first fill.
    pub async fn warm(&self, n: usize, statements: &[&str]) -> Result<(), OpError> {
        let mut conns = Vec::new();
        for _ in 0..n.min(self.max_idle) {
            let client = self.target.connect().await.map_err(|e| OpError::from_error(&e))?;
            self.opened.fetch_add(1, Ordering::Relaxed);
            let mut conn = Conn { client, statements: Vec::new() };
            for sql in statements {
                conn.statement(sql).await.map_err(|e| OpError::from_error(&e))?;
            }
            conns.push(conn);
        }
        self.state.lock().expect("not poisoned").idle.extend(conns);
        Ok(())
    }

    /// Take a connection: an idle one, or a new one while fewer than `max_open` exist.
    async fn checkout(&self) -> Result<(tokio::sync::SemaphorePermit<'_>, Conn), OpError> {
        self.state.lock().expect("not poisoned").waiting += 1;
        let slot = self.open.acquire().await;
        let pooled = {
            let mut st = self.state.lock().expect("not poisoned");
            // A connection handed to a waiter is this request's (they are interchangeable),
            // else this request stops waiting.
            if st.handed > 0 {
                st.handed -= 1;
            } else {
                st.waiting -= 1;
            }
            st.idle.pop()
        };
        let slot = slot.map_err(|_| OpError::new("pool closed"))?;
        let conn = match pooled {
            Some(c) if !c.client.is_closed() => c,
            _ => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                let client = self.target.connect().await.map_err(|e| OpError::from_error(&e))?;
                Conn { client, statements: Vec::new() }
            }
        };
        Ok((slot, conn))
    }

    /// Give a connection back: to a waiter (hand-off), else to the idle list unless the idle
    /// limit is reached, in which case it is closed. A connection whose query failed is closed.
    fn checkin(&self, conn: Conn, healthy: bool) {
        let mut st = self.state.lock().expect("not poisoned");
        if !healthy {
            return; // dropped here, which closes the connection
        }
        if st.waiting > 0 {
            st.waiting -= 1;
            st.handed += 1;
            st.idle.push(conn);
        } else if st.idle.len() < self.max_idle {
            st.idle.push(conn);
        } // else dropped here, which closes the connection
    }

    /// Run one statement, prepared once per connection and reused (a connection opened by the
    /// pool's churn prepares it again, as pgx's statement cache would).
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, OpError> {
        let (_slot, mut conn) = self.checkout().await?;
        let result = match conn.statement(sql).await {
            Ok(st) => conn.client.query(&st, params).await,
            Err(e) => Err(e),
        };
        self.checkin(conn, result.is_ok());
        result.map_err(|e| OpError::from_error(&e))
    }

    /// Run one statement (extended protocol, unnamed: parsed and planned every time) on a
    /// pooled connection.
    pub async fn query_typed(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, OpError> {
        let (_slot, conn) = self.checkout().await?;
        let result = conn.client.query_typed(sql, params).await;
        self.checkin(conn, result.is_ok());
        result.map_err(|e| OpError::from_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::{provision, Provider, Request};

    async fn pool(max_open: usize, max_idle: usize) -> (crate::provision::Env, std::sync::Arc<GoSqlPool>) {
        let env =
            provision(&Request { provider: Provider::Local, need_postgres: true, ..Request::default() }).await.unwrap();
        let pool = std::sync::Arc::new(GoSqlPool::new(env.pg.clone().unwrap(), max_open, max_idle));
        (env, pool)
    }

    async fn burst(pool: &std::sync::Arc<GoSqlPool>, n: usize) {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let p = pool.clone();
                tokio::spawn(async move { p.query_typed("SELECT pg_sleep(0.01)", &[]).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_get_returned_connections_and_the_idle_limit_closes_the_rest() {
        // 100 requests through 25 slots: while requests wait, nothing is closed, so no more
        // than 25 connections are ever opened; afterwards only 5 stay idle.
        let (_env, p) = pool(25, 5).await;
        burst(&p, 100).await;
        assert_eq!(p.opened(), 25, "hand-off keeps the pool at its size under a queue");
        assert_eq!(p.state.lock().unwrap().idle.len(), 5);
        // The next burst of 25 finds 5 idle and opens 20 again: the guide's churn.
        burst(&p, 25).await;
        assert_eq!(p.opened(), 45);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn prepared_queries_prepare_once_per_connection_and_warm_fills_the_pool() {
        let (_env, p) = pool(3, 3).await;
        p.warm(3, &["SELECT $1::int + 1"]).await.unwrap();
        assert_eq!(p.opened(), 3);
        for i in 0..20 {
            let rows = p.query("SELECT $1::int + 1", &[&i]).await.unwrap();
            assert_eq!(rows[0].get::<_, i32>(0), i + 1);
        }
        assert_eq!(p.opened(), 3, "warmed connections are reused");
        let prepared: usize = p.state.lock().unwrap().idle.iter().map(|c| c.statements.len()).sum();
        assert_eq!(prepared, 3, "one statement per connection, prepared once");
        // A bad statement fails, and its connection is not returned.
        assert!(p.query("SELECT nope", &[]).await.is_err());
        assert_eq!(p.state.lock().unwrap().idle.len(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pool_with_equal_limits_never_reopens() {
        let (_env, p) = pool(5, 5).await;
        burst(&p, 40).await;
        burst(&p, 40).await;
        assert_eq!(p.opened(), 5);
    }
}
