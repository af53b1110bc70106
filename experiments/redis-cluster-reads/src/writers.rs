//! The writers: while the readers read, they update the same keys with versioned values at
//! the run's write rate, and read each write back at once (read-your-writes).

use crate::routing::{self, ByLatency, Route};
use crate::{value, version_of, Keys, KEYS, WRITERS};
use harness::provision::RedisClusterTarget;
use redis::cluster_async::ClusterConnection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the writers did, as counters read at the sample's two snapshots.
#[derive(Debug, Default)]
pub(crate) struct WriteCounts {
    acked: AtomicU64,
    failed: AtomicU64,
    /// Reads of a key right after one's own acknowledged write to it (read-your-writes).
    read_backs: AtomicU64,
    stale_read_backs: AtomicU64,
    read_backs_failed: AtomicU64,
}

/// A reading of `WriteCounts`, or the difference of two.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    pub(crate) read_backs: u64,
    pub(crate) stale_read_backs: u64,
    pub(crate) read_backs_failed: u64,
}

impl WriteCounts {
    fn read(&self) -> Written {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Written {
            acked: r(&self.acked),
            failed: r(&self.failed),
            read_backs: r(&self.read_backs),
            stale_read_backs: r(&self.stale_read_backs),
            read_backs_failed: r(&self.read_backs_failed),
        }
    }
}

impl Written {
    pub(crate) fn since(&self, before: &Written) -> Written {
        Written {
            acked: self.acked - before.acked,
            failed: self.failed - before.failed,
            read_backs: self.read_backs - before.read_backs,
            stale_read_backs: self.stale_read_backs - before.stale_read_backs,
            read_backs_failed: self.read_backs_failed - before.read_backs_failed,
        }
    }
}

/// One writer: SETs its own keys in turn at `rate` per second until `stop`; each acknowledged
/// write raises its key's floor, and is read back at once through the same connection (so
/// through the variant's read routing: the checker of read-your-writes).
pub(crate) async fn write_loop(
    mut con: ClusterConnection,
    keys: Arc<Keys>,
    me: usize,
    rate: f64,
    stop: Arc<AtomicBool>,
    counts: Arc<WriteCounts>,
) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut next = Instant::now();
    let mut k = me;
    let add = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        next += period;
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        } else if now - next > Duration::from_millis(100) {
            // Behind by more than a moment: do not burst to catch up.
            next = now;
        }
        let version = keys.next_version.fetch_add(1, Ordering::Relaxed);
        let set: redis::RedisResult<()> =
            redis::cmd("SET").arg(&keys.names[k]).arg(value(version)).query_async(&mut con).await;
        if set.is_err() {
            add(&counts.failed);
        } else {
            keys.acked[k].fetch_max(version, Ordering::Release);
            add(&counts.acked);
            let back: redis::RedisResult<Option<Vec<u8>>> =
                redis::cmd("GET").arg(&keys.names[k]).query_async(&mut con).await;
            match back.ok().flatten().as_deref().and_then(version_of) {
                Some(got) => {
                    add(&counts.read_backs);
                    if got < version {
                        add(&counts.stale_read_backs);
                    }
                }
                None => _ = add(&counts.read_backs_failed),
            }
        }
        k += WRITERS;
        if k >= KEYS {
            k = me;
        }
    }
}

/// The writers of one sample (or of the capacity measurement), on a connection of their own
/// with the variant's routing. Dropped without `finish` (a sample that failed), they stop.
pub(crate) struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    counts: Arc<WriteCounts>,
}

impl Writers {
    /// Start `WRITERS` writers, `rate` writes per second in all (none at 0).
    pub(crate) async fn start(
        cluster: &RedisClusterTarget,
        route: Route,
        by_latency: &ByLatency,
        keys: &Arc<Keys>,
        rate: f64,
    ) -> anyhow::Result<Self> {
        let (stop, counts) = (Arc::new(AtomicBool::new(false)), Arc::new(WriteCounts::default()));
        let mut tasks = Vec::new();
        if rate > 0.0 {
            let con = routing::connect(cluster, route, by_latency).await?;
            for w in 0..WRITERS {
                let task =
                    write_loop(con.clone(), keys.clone(), w, rate / WRITERS as f64, stop.clone(), counts.clone());
                tasks.push(tokio::spawn(task));
            }
        }
        Ok(Self { stop, tasks, counts })
    }

    /// What they have done so far.
    pub(crate) fn read(&self) -> Written {
        self.counts.read()
    }

    /// Stop them and wait until they have.
    pub(crate) async fn finish(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut panicked = false;
        for w in std::mem::take(&mut self.tasks) {
            panicked |= w.await.is_err();
        }
        anyhow::ensure!(!panicked, "a writer panicked");
        Ok(())
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}
