//! A Postgres connection pool with Go database/sql's two limits, for the experiments that put
//! the guide's pool settings on trial (its DefaultDBConfig: MaxOpenConns 25, MaxIdleConns 5).
//!
//! At most `max_open` connections exist at once. A returned connection goes to a waiting
//! request if there is one (database/sql's `connRequests` hand-off), else to the idle list
//! unless `max_idle` are already idle, in which case it is closed. No maintained Rust pool has
//! that last rule, and it is the one the guide's setting turns on.

use crate::load::OpError;
use crate::provision::PgTarget;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::sync::Semaphore;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

pub struct GoSqlPool {
    target: PgTarget,
    open: Semaphore,
    idle: Mutex<Vec<Client>>,
    max_idle: usize,
    opened: AtomicU64,
    /// Requests waiting for a connection slot.
    waiting: AtomicUsize,
}

impl GoSqlPool {
    pub fn new(target: PgTarget, max_open: usize, max_idle: usize) -> Self {
        Self {
            target,
            open: Semaphore::new(max_open),
            idle: Mutex::new(Vec::new()),
            max_idle,
            opened: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Run one statement (extended protocol, unnamed) on a pooled connection.
    pub async fn query_typed(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, OpError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let slot = self.open.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _slot = slot.map_err(|_| OpError::new("pool closed"))?;
        let pooled = self.idle.lock().expect("not poisoned").pop();
        let client = match pooled {
            Some(c) if !c.is_closed() => c,
            _ => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                self.target.connect().await.map_err(|e| OpError::from_error(&e))?
            }
        };
        let result = client.query_typed(sql, params).await;
        {
            let mut idle = self.idle.lock().expect("not poisoned");
            // A waiter takes it next (hand-off); otherwise the idle limit decides.
            let wanted = self.waiting.load(Ordering::SeqCst) > 0 || idle.len() < self.max_idle;
            if wanted && result.is_ok() {
                idle.push(client);
            } // else dropped here, which closes the connection
        }
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
        assert_eq!(p.idle.lock().unwrap().len(), 5);
        // The next burst of 25 finds 5 idle and opens 20 again: the guide's churn.
        burst(&p, 25).await;
        assert_eq!(p.opened(), 45);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pool_with_equal_limits_never_reopens() {
        let (_env, p) = pool(5, 5).await;
        burst(&p, 40).await;
        burst(&p, 40).await;
        assert_eq!(p.opened(), 5);
    }
}
