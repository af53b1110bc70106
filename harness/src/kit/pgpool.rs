//! A Postgres connection pool with Go database/sql's rules, for the experiments that put the
//! guide's pool settings on trial (its DefaultDBConfig: MaxOpenConns 25, MaxIdleConns 5).
//!
//! As `database/sql.DB` (Go 1.22 and later) does it:
//! - `max_open` caps the connections open, idle ones included (`numOpen`);
//! - a request takes the most recently returned idle connection, else opens one while fewer
//!   than `max_open` are open, else waits (`connRequests`);
//! - a returned connection goes to a waiting request, one of them at random
//!   (`connRequestSet.TakeRandom`), else to the idle list unless `max_idle` are already idle,
//!   in which case it is closed (`maxIdleClosed`): no maintained Rust pool has that rule, and
//!   it is the one the guide's setting turns on;
//! - a connection closed while requests wait lets one of them open a new one
//!   (`maybeOpenNewConnections`).
//!
//! `stats` counts what database/sql's `DBStats` does: connections opened, requests that had to
//! wait, connections closed by the idle limit.
//!
//! `query` prepares a statement once per connection and reuses it (pgx's statement cache, and
//! what a dedicated connection with `prepare` does), so a pooled variant and one on its own
//! connection differ in the pool alone; `query_typed` sends an unnamed statement each time.

use crate::load::OpError;
use crate::provision::PgTarget;
use crate::stats::SplitMix64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::oneshot;
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

/// What a waiting request is handed: a returned connection, or leave to open one.
enum Grant {
    Conn(Conn),
    Open,
}

pub struct GoSqlPool {
    target: PgTarget,
    max_open: usize,
    max_idle: usize,
    state: Mutex<State>,
    opened: AtomicU64,
    waits: AtomicU64,
    idle_closed: AtomicU64,
}

/// The open count, the idle list and the waiting requests, changed together under one lock.
struct State {
    /// Connections open, idle ones included, and those being opened (`numOpen`).
    open: usize,
    idle: Vec<Conn>,
    waiting: Vec<oneshot::Sender<Grant>>,
    /// Picks the waiting request a returned connection goes to.
    rng: SplitMix64,
}

/// database/sql's `DBStats` counters the experiments report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections opened.
    pub opened: u64,
    /// Requests that found no idle connection and no room to open one, and waited
    /// (`WaitCount`).
    pub waits: u64,
    /// Connections closed on return because `max_idle` were idle (`MaxIdleClosed`).
    pub idle_closed: u64,
}

impl GoSqlPool {
    /// `SetMaxOpenConns(max_open)`, `SetMaxIdleConns(max_idle)` (capped at `max_open`, as
    /// database/sql caps it).
    pub fn new(target: PgTarget, max_open: usize, max_idle: usize) -> Self {
        let max_open = max_open.max(1);
        Self {
            target,
            max_open,
            max_idle: max_idle.min(max_open),
            state: Mutex::new(State { open: 0, idle: Vec::new(), waiting: Vec::new(), rng: SplitMix64::new(0x5eed) }),
            opened: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
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

    /// Connections opened, requests that waited, connections the idle limit closed.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            opened: self.opened(),
            waits: self.waits.load(Ordering::Relaxed),
            idle_closed: self.idle_closed.load(Ordering::Relaxed),
        }
    }

    async fn connect(&self) -> Result<Conn, OpError> {
        let client = self.target.connect().await.map_err(|e| OpError::from_error(&e))?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Conn { client, statements: Vec::new() })
    }

    /// Open `n` connections (at most the idle limit) and prepare `statements` on each, before
    /// any clock starts, so that a measurement does not pay for the pool's first fill.
    pub async fn warm(&self, n: usize, statements: &[&str]) -> Result<(), OpError> {
        let n = n.min(self.max_idle).saturating_sub(self.state.lock().expect("not poisoned").open);
        let mut conns = Vec::new();
        for _ in 0..n {
            let mut conn = self.connect().await?;
            for sql in statements {
                conn.statement(sql).await.map_err(|e| OpError::from_error(&e))?;
            }
            conns.push(conn);
        }
        let mut st = self.state.lock().expect("not poisoned");
        st.open += conns.len();
        st.idle.extend(conns);
        Ok(())
    }

    /// Take a connection (database/sql's `DB.conn` with `cachedOrNewConn`). Cancel-safe, as
    /// Go's is on `ctx.Done`: a request dropped while it waits hands on whatever it was given,
    /// and one dropped while it opens gives its slot back.
    async fn checkout(&self) -> Result<Lease<'_>, OpError> {
        let wait = {
            let mut st = self.state.lock().expect("not poisoned");
            loop {
                match st.idle.pop() {
                    Some(conn) if conn.client.is_closed() => st.open -= 1, // went bad while idle
                    Some(conn) => return Ok(Lease { pool: self, conn: Some(conn) }),
                    None => break,
                }
            }
            if st.open >= self.max_open {
                let (tx, rx) = oneshot::channel();
                st.waiting.push(tx);
                Some(Waiting { pool: self, rx: Some(rx) })
            } else {
                st.open += 1;
                None
            }
        };
        // From here this request owns one slot of `open`, until a Lease holds it.
        let slot = match wait {
            None => Slot { pool: self },
            Some(mut waiting) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                let rx = waiting.rx.as_mut().expect("not yet served");
                let grant = rx.await;
                waiting.rx = None; // served (or the pool is gone): nothing to hand on
                match grant {
                    Ok(Grant::Conn(conn)) if !conn.client.is_closed() => {
                        return Ok(Lease { pool: self, conn: Some(conn) });
                    }
                    // A broken connection handed over counts as closed: open in its place.
                    Ok(Grant::Conn(_) | Grant::Open) => Slot { pool: self },
                    Err(_) => return Err(OpError::new("pool closed")),
                }
            }
        };
        let conn = self.connect().await?; // on failure `slot` drops: the slot goes back
        std::mem::forget(slot);
        Ok(Lease { pool: self, conn: Some(conn) })
    }

    /// One connection fewer (closed, or never opened): a waiting request may open one.
    fn closed(&self) {
        let mut st = self.state.lock().expect("not poisoned");
        st.open -= 1;
        while st.open < self.max_open {
            let Some(tx) = take_random(&mut st) else { break };
            if tx.send(Grant::Open).is_ok() {
                st.open += 1;
                break;
            }
        }
    }

    /// Give a connection back (`DB.putConn`): to a waiting request, else to the idle list
    /// unless the idle limit is reached, in which case it is closed. A connection whose query
    /// failed is closed.
    fn checkin(&self, conn: Conn, healthy: bool) {
        if !healthy {
            drop(conn);
            self.closed();
            return;
        }
        let mut st = self.state.lock().expect("not poisoned");
        let mut conn = conn;
        while let Some(tx) = take_random(&mut st) {
            match tx.send(Grant::Conn(conn)) {
                Ok(()) => return,
                Err(Grant::Conn(back)) => conn = back, // that request gave up: the next one
                Err(Grant::Open) => unreachable!("a connection was sent"),
            }
        }
        if st.idle.len() < self.max_idle {
            st.idle.push(conn);
        } else {
            st.open -= 1;
            self.idle_closed.fetch_add(1, Ordering::Relaxed);
            drop(st);
            drop(conn); // closes the connection
        }
    }

    /// Run one statement, prepared once per connection and reused (a connection opened by the
    /// pool's churn prepares it again, as pgx's statement cache would).
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, OpError> {
        let mut lease = self.checkout().await?;
        let conn = lease.conn.as_mut().expect("leased");
        let result = match conn.statement(sql).await {
            Ok(st) => conn.client.query(&st, params).await,
            Err(e) => Err(e),
        };
        lease.give_back(result.is_ok());
        result.map_err(|e| OpError::from_error(&e))
    }

    /// Run one statement (extended protocol, unnamed: parsed and planned every time) on a
    /// pooled connection.
    pub async fn query_typed(&self, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, OpError> {
        let lease = self.checkout().await?;
        let result = lease.conn.as_ref().expect("leased").client.query_typed(sql, params).await;
        lease.give_back(result.is_ok());
        result.map_err(|e| OpError::from_error(&e))
    }
}

/// A connection out of the pool. Given back with `give_back`; dropped with it (a query
/// cancelled midway), the connection is closed and its slot freed, as database/sql closes a
/// connection whose query a cancelled context interrupted.
struct Lease<'a> {
    pool: &'a GoSqlPool,
    conn: Option<Conn>,
}

impl Lease<'_> {
    fn give_back(mut self, healthy: bool) {
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(conn, healthy);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn);
            self.pool.closed();
        }
    }
}

/// A slot of `open` a request holds while it opens a connection: dropped (the open failed or
/// was cancelled), it goes back.
struct Slot<'a> {
    pool: &'a GoSqlPool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pool.closed();
    }
}

/// A request waiting for a connection. Dropped (cancelled) before it was served, it stops
/// waiting and hands on anything it was given meanwhile.
struct Waiting<'a> {
    pool: &'a GoSqlPool,
    /// `None` once served.
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(rx) = self.rx.as_mut() else { return };
        rx.close();
        match rx.try_recv() {
            Ok(Grant::Conn(conn)) => self.pool.checkin(conn, true),
            Ok(Grant::Open) => self.pool.closed(),
            Err(_) => {}
        }
    }
}

/// A waiting request at random, as database/sql's `connRequestSet.TakeRandom` picks one.
fn take_random(st: &mut State) -> Option<oneshot::Sender<Grant>> {
    if st.waiting.is_empty() {
        return None;
    }
    let i = st.rng.below(st.waiting.len());
    Some(st.waiting.swap_remove(i))
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

    /// MaxOpen counts idle connections too, a request waits only when neither an idle
    /// connection nor room to open one is left, and the idle limit's closes are counted.
    #[tokio::test(flavor = "current_thread")]
    async fn stats_count_waits_and_idle_closes_as_database_sql_does() {
        let (_env, p) = pool(3, 1).await;
        burst(&p, 3).await;
        assert_eq!(p.stats(), PoolStats { opened: 3, waits: 0, idle_closed: 2 });
        assert_eq!(p.state.lock().unwrap().open, 1, "one idle connection left open");
        burst(&p, 5).await;
        let s = p.stats();
        assert_eq!((s.opened, s.waits), (5, 2), "the idle one, two opened, two waited: {s:?}");
        assert!(p.state.lock().unwrap().open <= 3);
    }

    /// Requests cancelled while they wait, or midway through their query, leave no slot
    /// taken: the pool serves as many at once afterwards as before.
    #[tokio::test(flavor = "current_thread")]
    async fn cancelled_requests_give_their_slots_back() {
        let (_env, p) = pool(2, 2).await;
        for _ in 0..3 {
            // Four requests for two slots, all cancelled after 20 ms: two mid-query, two waiting.
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let p = p.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            std::time::Duration::from_millis(20),
                            p.query_typed("SELECT pg_sleep(0.2)", &[]),
                        )
                        .await;
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        let left = {
            let st = p.state.lock().unwrap();
            (st.open, st.waiting.len())
        };
        assert_eq!(left, (0, 0), "no slot leaked, no waiter left");
        burst(&p, 4).await;
        assert!(p.state.lock().unwrap().open <= 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pool_with_equal_limits_never_reopens() {
        let (_env, p) = pool(5, 5).await;
        burst(&p, 40).await;
        burst(&p, 40).await;
        assert_eq!(p.opened(), 5);
    }
}
