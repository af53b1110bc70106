//! A TCP proxy on loopback that puts faults between a client and a server on command: added
//! latency, a stall (bytes held until it is lifted), and a reset of every open connection.
//! Tests use it to check that a slow, stuck or vanishing server never becomes a measurement;
//! experiments can use it for failing backends (load balancing, timeouts).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The faults in force, read by every pump for every chunk it forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Faults {
    latency: Duration,
    stalled: bool,
    /// Bumped by `reset_all`: connections opened before the bump are reset.
    generation: u64,
}

/// A running proxy; dropping it stops accepting and closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    faults: watch::Sender<Faults>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward every connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (faults, watcher) = watch::channel(Faults::default());
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let watcher = watcher.clone();
                conns.spawn(async move {
                    let born = watcher.borrow().generation;
                    let Ok(server) = TcpStream::connect(target).await else {
                        let _ = client.set_zero_linger();
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    relay(client, server, watcher, born).await;
                });
                // Reap finished connections as we go.
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, faults, accepted, task })
    }

    /// Where clients connect instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Delay every chunk forwarded, in either direction, by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.faults.send_modify(|f| f.latency = latency);
    }

    /// Hold every byte (new connections are accepted, nothing is forwarded) until lifted.
    pub fn set_stalled(&self, stalled: bool) {
        self.faults.send_modify(|f| f.stalled = stalled);
    }

    /// Reset every open connection (RST, as a crashed or restarted server's peers see).
    pub fn reset_all(&self) {
        self.faults.send_modify(|f| f.generation += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forward both ways until either side closes or the connection is reset.
async fn relay(client: TcpStream, server: TcpStream, watcher: watch::Receiver<Faults>, born: u64) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, watcher.clone(), born);
    let down = pump(sr, cw, watcher, born);
    // On a reset each pump hands back its halves; a close with linger 0 is an RST, not a FIN.
    if let (Some((cr, sw)), Some((sr, cw))) = tokio::join!(up, down) {
        for stream in [cr.reunite(cw), sr.reunite(sw)].into_iter().flatten() {
            let _ = stream.set_zero_linger();
        }
    }
}

/// Copy `from` to `to` under the faults in force. Returns the halves when the connection is
/// to be reset (so the caller can close it with an RST), `None` when it ended normally.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut watcher: watch::Receiver<Faults>,
    born: u64,
) -> Option<(tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf)> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return None;
                }
                Ok(n) => n,
            },
            _ = watcher.changed() => {
                if watcher.borrow().generation != born {
                    return Some((from, to));
                }
                continue;
            }
        };
        // Apply the faults to this chunk: wait out a stall, then the latency.
        loop {
            let f = *watcher.borrow();
            if f.generation != born {
                return Some((from, to));
            }
            if f.stalled {
                if watcher.changed().await.is_err() {
                    return None;
                }
                continue;
            }
            if !f.latency.is_zero() {
                tokio::time::sleep(f.latency).await;
            }
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream) -> std::io::Result<Duration> {
        let t = Instant::now();
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        Ok(t.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_delays_stalls_and_resets() {
        let proxy = FaultProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut s).await.unwrap() < Duration::from_millis(50));
        assert_eq!(proxy.accepted(), 1);

        // Latency applies each way: a round trip takes at least twice it.
        proxy.set_latency(Duration::from_millis(40));
        assert!(round_trip(&mut s).await.unwrap() >= Duration::from_millis(80));
        proxy.set_latency(Duration::ZERO);

        // A stall holds the bytes: no answer while it lasts, the answer once it is lifted.
        proxy.set_stalled(true);
        let stalled = tokio::time::timeout(Duration::from_millis(300), round_trip(&mut s)).await;
        assert!(stalled.is_err(), "no answer during a stall");
        proxy.set_stalled(false);
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf, b"ping", "held bytes go through once the stall is lifted");

        // A reset closes open connections; new ones work.
        proxy.reset_all();
        let mut got = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = s.write_all(b"ping").await;
            s.read_to_end(&mut got).await
        })
        .await
        .expect("the reset is seen at once");
        assert!(r.is_err() || got.is_empty(), "the old connection is gone: {r:?} {got:?}");
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut fresh).await.unwrap();
    }
}
