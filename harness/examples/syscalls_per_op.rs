//! Syscalls per request: the load engine's tokio-postgres path against pgbench on the same
//! prepared query, each counted by `strace -c -f` while it runs (strace slows both: read the
//! counts per request, not the rates). The calibration experiment's why, not its number.
//! `cargo run --release -p harness --example syscalls_per_op -- [clients] [seconds]`

use harness::load::{self, OpError, Worker};
use harness::provision::{find_pg_bin, provision, Provider, Request};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SQL: &str = "SELECT $1::int + 1";

struct Select {
    client: tokio_postgres::Client,
    stmt: tokio_postgres::Statement,
    i: i32,
}

impl Worker for Select {
    async fn call(&mut self) -> Result<(), OpError> {
        self.i = self.i.wrapping_add(1) & 0xffff;
        match self.client.query_one(&self.stmt, &[&self.i]).await {
            Ok(row) => {
                let _: i32 = row.get(0);
                Ok(())
            }
            Err(e) => Err(OpError::from_error(&e)),
        }
    }
}

fn strace_summary(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

/// strace attached to this process, counting calls per syscall only (never their arguments,
/// which carry the servers' passwords), writing to `trace`; a second for it to attach.
async fn attach(trace: &Path) -> anyhow::Result<std::process::Child> {
    let mut child = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(trace)
        .args(["-p", &std::process::id().to_string()])
        .stderr(Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    anyhow::ensure!(child.try_wait()?.is_none(), "strace could not attach (install strace; run as root)");
    Ok(child)
}

/// Stop strace with SIGINT, so that it writes its summary.
fn detach(mut strace: std::process::Child) -> anyhow::Result<()> {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    strace.wait()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let clients: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let env = provision(&Request {
            provider: Provider::Local,
            need_postgres: true,
            need_redis: true,
            ..Request::default()
        })
        .await?;
        if args.get(3).map(String::as_str) == Some("redis") {
            return redis_counts(&env, clients, secs).await;
        }
        let pg = env.pg.clone().unwrap();
        // The harness, traced from outside by strace attached to this process.
        let dir = harness::reaper::new_temp_dir("perflab-")?;
        let trace = &dir.join("harness.txt");
        let strace = attach(trace).await?;
        let config = load::LoadConfig::closed(clients, Duration::from_millis(200), Duration::from_secs(secs));
        let probe = harness::resources::Probe::default();
        let pgc = pg.clone();
        let report = load::run(&config, &probe, move |i| {
            let pg = pgc.clone();
            async move {
                let client = pg.connect().await?;
                let stmt = client.prepare(SQL).await?;
                Ok(Select { client, stmt, i: i as i32 * 1000 })
            }
        })
        .await?;
        detach(strace)?;
        println!("harness: {} ok in {:.2} s, {:?} errors", report.ok, report.measured.as_secs_f64(), report.errors);
        println!("{}", strace_summary(trace));
        // pgbench on the same query, under strace.
        let script = dir.join("pgbench.sql");
        std::fs::write(&script, "\\set i random(1, 65535)\nSELECT :i::int + 1;\n")?;
        let bin = find_pg_bin().map(|d| d.join("pgbench")).unwrap();
        let trace = &dir.join("pgbench.txt");
        let out = Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(trace)
            .arg(&bin)
            .args(["-n", "-M", "prepared", "-f"])
            .arg(&script)
            .args(["-c", &clients.to_string()])
            .args(["-j", &clients.min(2).to_string(), "-T", &secs.to_string()])
            .args(pg.cli_args())
            .envs(pg.tool_env())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        for l in
            text.lines().filter(|l| l.contains("number of transactions actually processed") || l.starts_with("tps"))
        {
            println!("pgbench: {l}");
        }
        println!("{}", strace_summary(trace));
        let _ = std::fs::remove_dir_all(&dir);
        drop(env);
        anyhow::Ok(())
    })
}

async fn redis_counts(env: &harness::provision::Env, clients: u32, secs: u64) -> anyhow::Result<()> {
    let redis = env.redis()?;
    let client = redis.client()?;
    let mut con = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET").arg("key:__rand_int__").arg("xxx").query_async::<()>(&mut con).await?;
    let dir = harness::reaper::new_temp_dir("perflab-")?;
    let trace = &dir.join("harness-redis.txt");
    let strace = attach(trace).await?;
    let config = load::LoadConfig::closed(clients, Duration::from_millis(200), Duration::from_secs(secs));
    let report = load::run(&config, &harness::resources::Probe::default(), move |_| {
        let client = client.clone();
        async move { Ok(harness::kit::redis_util::GetWorker::connect(&client, "key:__rand_int__").await?) }
    })
    .await?;
    detach(strace)?;
    println!("harness: {} ok in {:.2} s, {:?} errors", report.ok, report.measured.as_secs_f64(), report.errors);
    println!("{}", strace_summary(trace));
    let n = (report.ok as f64 / report.measured.as_secs_f64() * secs as f64) as u64;
    let trace = &dir.join("redis-benchmark.txt");
    let out = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(trace)
        .arg("redis-benchmark")
        .args(redis.tool_args())
        .args(["-t", "get", "-d", "3", "-c", &clients.to_string(), "-n", &n.to_string(), "--csv"])
        .output()?;
    println!("redis-benchmark ({n} requests): {}", String::from_utf8_lossy(&out.stdout).trim());
    println!("{}", strace_summary(trace));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
