//! How much `GoSqlPool::query` adds to a query on a dedicated connection: the same prepared
//! primary-key SELECT, one after another, both ways, on an ephemeral server.
//! `cargo run --release -p harness --example pool_overhead`

use harness::kit::pgpool::GoSqlPool;
use harness::provision::{provision, Provider, Request};
use std::time::Instant;

const SQL: &str = "SELECT $1::int + 1";
const N: i32 = 20_000;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let env = provision(&Request { provider: Provider::Local, need_postgres: true, ..Request::default() }).await?;
        let pg = env.pg.clone().unwrap();
        let client = pg.connect().await?;
        let st = client.prepare(SQL).await?;
        let pool = GoSqlPool::new(pg.clone(), 25, 25);
        pool.warm(25, &[SQL]).await?;
        for round in 0..3 {
            let t = Instant::now();
            for i in 0..N {
                client.query(&st, &[&i]).await?;
            }
            let direct = t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
            let t = Instant::now();
            for i in 0..N {
                pool.query(SQL, &[&i]).await?;
            }
            let pooled = t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
            println!("round {round}: dedicated {direct:.1} us/query, GoSqlPool::query {pooled:.1} us/query");
        }
        anyhow::Ok(())
    })
}
