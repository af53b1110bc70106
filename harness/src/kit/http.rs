//! HTTP pieces the service-layer experiments share: a server on a runtime of its own, started
//! and stopped inside the run, the harness's own HTTP/1.1 client (the one calibration-http
//! checks against wrk), and one connection of hyper's HTTP/1.1 client (`HyperConn`).

use crate::load::OpError;
use anyhow::Context as _;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;

/// Resolves when the server is told to stop: pass it to the server's graceful shutdown.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server on a thread with a runtime of its own (so that its threads, not the load engine's,
/// serve), listening on a free port of a loopback address until it is dropped.
pub struct Server {
    addr: SocketAddr,
    /// The name of the server's threads (its runtime's workers and the accepting thread).
    threads: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Bind a free port of `ip` and run `serve(listener, shutdown)` on a runtime of `threads`
    /// worker threads. `serve` must return once `shutdown` resolves (axum's
    /// `serve(..).with_graceful_shutdown(shutdown)` does).
    pub fn start<F, Fut>(ip: Ipv4Addr, threads: usize, serve: F) -> anyhow::Result<Server>
    where
        F: FnOnce(tokio::net::TcpListener, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<()>>,
    {
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        // A name of its own (at most 15 bytes, Linux's limit), so that its CPU can be told apart.
        let name = format!("plab-srv-{}", SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100_000);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<std::io::Result<SocketAddr>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker_name = name.clone();
        let thread = std::thread::Builder::new().name(name.clone()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .thread_name(worker_name)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind((ip, 0)).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let _ = addr_tx.send(listener.local_addr());
                let shutdown: Shutdown = Box::pin(async move {
                    let _ = stopped.await;
                });
                let _ = serve(listener, shutdown).await;
            });
            // Dropping the runtime here closes every connection the server still held.
        })?;
        let addr = addr_rx.recv().context("the HTTP server thread died")?.context("binding the HTTP server")?;
        Ok(Server { addr, threads: name, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop the server from async code: graceful shutdown, then the server's thread joined on
    /// a blocking thread, so the caller's runtime keeps running meanwhile (dropping a server
    /// does the same but blocks the thread it is dropped on).
    pub async fn stop(self) -> anyhow::Result<()> {
        tokio::task::spawn_blocking(move || drop(self)).await.context("stopping the HTTP server")
    }

    /// CPU time the server's threads have used so far (Linux's schedstat, in nanoseconds of
    /// time on a CPU): the server's own cost, apart from the clients in the same process.
    pub fn cpu_time(&self) -> std::time::Duration {
        let mut ns = 0u64;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let path = task.path();
                let named = std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim_end() == self.threads);
                if named {
                    ns += std::fs::read_to_string(path.join("schedstat"))
                        .ok()
                        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        std::time::Duration::from_nanos(ns)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One keep-alive HTTP/1.1 connection, written to and read from directly: the request is
/// written into a buffer kept between calls, the answer's head parsed with httparse and its
/// body delimited by Content-Length. This is what wrk does; no client library stands between
/// the load engine and the socket, so a service experiment driven by it measures the server.
pub struct RawClient {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    host: String,
    request: Vec<u8>,
    buf: Vec<u8>,
    /// Where the last answer's body lies in `buf`.
    body: std::ops::Range<usize>,
}

/// An answer's status and its body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body_len: usize,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RawClient> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            peer: addr,
            host: addr.to_string(),
            request: Vec::with_capacity(256),
            buf: Vec::with_capacity(4096),
            body: 0..0,
        })
    }

    /// `GET path` with `extra` header lines (each ending in `\r\n`), the whole answer read. A
    /// non-2xx status is an answer here; the caller decides whether it is an error.
    pub async fn get(&mut self, path: &str, extra: &str) -> Result<Answer, OpError> {
        use std::io::Write as _;
        self.request.clear();
        let _ = write!(self.request, "GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n", self.host);
        self.exchange().await
    }

    /// `GET path` as [`RawClient::get`], with a non-2xx status an error of kind `HTTP <status>`:
    /// what a load worker wants, since a failed request is never a measurement.
    pub async fn get_ok(&mut self, path: &str, extra: &str) -> Result<Answer, OpError> {
        let answer = self.get(path, extra).await?;
        if !(200..300).contains(&answer.status) {
            return Err(OpError::new(format!("HTTP {}", answer.status)));
        }
        Ok(answer)
    }

    /// The address this client connected to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The last answer's body.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }

    async fn exchange(&mut self) -> Result<Answer, OpError> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        self.stream.write_all(&self.request).await.map_err(|e| OpError::from_error(&e))?;
        self.buf.clear();
        let (status, head, total) = loop {
            if self.stream.read_buf(&mut self.buf).await.map_err(|e| OpError::from_error(&e))? == 0 {
                return Err(OpError::new("connection closed"));
            }
            if let Some(answer) = parse_answer(&self.buf)? {
                break answer;
            }
        };
        self.buf.reserve(total.saturating_sub(self.buf.len()));
        while self.buf.len() < total {
            if self.stream.read_buf(&mut self.buf).await.map_err(|e| OpError::from_error(&e))? == 0 {
                return Err(OpError::new("connection closed"));
            }
        }
        self.body = head..total;
        Ok(Answer { status, body_len: total - head })
    }
}

/// The answer at the front of `buf`: its status, the length of its head and its total length,
/// once the head is complete.
pub fn parse_answer(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, OpError> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(head)) => {
            let status = res.code.unwrap_or(0);
            let mut length = None;
            for h in res.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(OpError::new("chunked answer (the raw client reads Content-Length only)"));
                }
            }
            let length = length.ok_or_else(|| OpError::new("answer without Content-Length"))?;
            Ok(Some((status, head, head + length)))
        }
        Err(e) => Err(OpError::new(format!("malformed answer: {e}"))),
    }
}

/// TCP sockets of this machine in TIME_WAIT whose local or remote port is `port` (IPv4 and
/// IPv6), from /proc/net/tcp*: what closing connections leaves behind, on either side.
pub fn time_wait_sockets(port: u16) -> std::io::Result<u64> {
    let mut n = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        n += count_in_state(&text, port, TCP_TIME_WAIT);
    }
    Ok(n)
}

/// The kernel's code for TIME_WAIT in /proc/net/tcp's `st` column.
const TCP_TIME_WAIT: u8 = 0x06;

/// Lines of a /proc/net/tcp table in `state` with `port` as local or remote port.
fn count_in_state(table: &str, port: u16, state: u8) -> u64 {
    let port_of = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 3
                && u8::from_str_radix(f[3], 16).ok() == Some(state)
                && (port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port))
        })
        .count() as u64
}

/// What a connection wrapped in [`Counted`] has seen: connections made, bytes read and written.
/// Shared by every connection of one server or one client.
#[derive(Debug, Default)]
pub struct Wire {
    pub connections: std::sync::atomic::AtomicU64,
    pub read: std::sync::atomic::AtomicU64,
    pub written: std::sync::atomic::AtomicU64,
}

impl Wire {
    /// (connections, bytes read, bytes written) so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.connections.load(Relaxed), self.read.load(Relaxed), self.written.load(Relaxed))
    }
}

/// A connection counting into a [`Wire`]: one relaxed atomic add per read or write, so the
/// count costs what one instruction costs, not a lock.
pub struct Counted<S> {
    inner: S,
    wire: std::sync::Arc<Wire>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, wire: std::sync::Arc<Wire>) -> Self {
        wire.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Counted { inner, wire }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.wire.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = r {
            self.wire.written.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let std::task::Poll::Ready(Ok(n)) = r {
            self.wire.written.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hyper connection reads a non-2xx answer to its end, reports it as `HTTP <status>`, and
    /// serves the next request on the same connection; `close` closes it after the answer.
    #[tokio::test]
    async fn a_hyper_connection_survives_a_non_2xx_answer() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for answer in [
                &b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"[..],
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ] {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the client sent its request");
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(answer).await.unwrap();
            }
            // One connection served both requests.
            listener_accepts_nothing_more(s).await
        });
        let mut conn = HyperConn::connect(addr).await.unwrap();
        assert_eq!(conn.get("/missing", false).await.unwrap_err().kind, "HTTP 404");
        assert!(!conn.is_closed());
        assert_eq!(conn.get("/", false).await.unwrap(), 2, "the same connection, ready again");
        drop(conn);
        server.await.unwrap();
    }

    async fn listener_accepts_nothing_more(mut s: tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).await.unwrap_or(0), 0, "the client closed, sending nothing more");
    }

    #[test]
    fn time_wait_sockets_are_counted_by_port_on_either_side() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0 0 0 0 0 0
   2: 0100007F:C351 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0 0 0 0 0 0
   3: 0100007F:C352 0100007F:1F91 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0 0 0 0 0 0
   4: 0100007F:C353 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";
        // Port 8080 is 0x1F90: one TIME_WAIT on the server's side, one on the client's; the
        // listener (0A), an established socket (01) and another port's TIME_WAIT are not.
        assert_eq!(count_in_state(table, 8080, TCP_TIME_WAIT), 2);
        assert_eq!(count_in_state(table, 8081, TCP_TIME_WAIT), 1);
        assert_eq!(count_in_state(table, 8082, TCP_TIME_WAIT), 0);
        assert!(time_wait_sockets(1).is_ok());
    }

    #[test]
    fn answers_are_delimited_by_content_length() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(parse_answer(&ok[..20]).unwrap(), None, "a partial head waits for more");
        assert_eq!(parse_answer(ok).unwrap(), Some((200, ok.len() - 2, ok.len())));
        let head_only = b"HTTP/1.1 503 Busy\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(parse_answer(head_only).unwrap(), Some((503, head_only.len(), head_only.len() + 10)));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err(), "no length, no way to find the end");
        assert!(parse_answer(b"\x00garbage\r\n\r\n").is_err());
    }

    /// A server answering two requests on one connection with bodies that arrive in pieces:
    /// the client reads each answer whole and keeps the connection.
    #[tokio::test]
    async fn the_raw_client_reads_whole_answers_on_one_connection() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let server = Server::start(Ipv4Addr::new(127, 0, 0, 3), 1, |listener, shutdown| async move {
            let serve = async {
                let (mut s, _) = listener.accept().await?;
                for body in ["first", "second answer"] {
                    let mut req = Vec::new();
                    while !req.ends_with(b"\r\n\r\n") {
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await?;
                        req.push(b[0]);
                    }
                    s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes())
                        .await?;
                    s.flush().await?;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    s.write_all(body.as_bytes()).await?;
                }
                std::future::pending::<()>().await;
                Ok::<(), std::io::Error>(())
            };
            tokio::select! { r = serve => r, _ = shutdown => Ok(()) }
        })
        .unwrap();
        let cpu_before = server.cpu_time();
        let mut c = RawClient::connect(server.addr()).await.unwrap();
        assert_eq!(c.get("/a", "").await.unwrap(), Answer { status: 200, body_len: 5 });
        assert_eq!(c.body(), b"first");
        assert_eq!(c.get("/b", "Accept: */*\r\n").await.unwrap().body_len, 13);
        assert_eq!(c.body(), b"second answer");
        assert!(server.cpu_time() > cpu_before, "the server's threads are found and used CPU");
        let addr = server.addr();
        drop(server);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the server stopped listening");
    }

    /// A counted connection counts itself once and every byte it reads and writes.
    #[tokio::test]
    async fn a_counted_connection_counts_its_bytes() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let wire = std::sync::Arc::new(Wire::default());
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Counted::new(a, wire.clone());
        a.write_all(b"hello").await.unwrap();
        b.write_all(b"abc").await.unwrap();
        let mut got = [0u8; 3];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
        assert_eq!(wire.totals(), (1, 3, 5));
    }
}

type HyperIo = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
type HyperEmpty = http_body_util::Empty<bytes::Bytes>;

/// One connection of hyper's HTTP/1.1 client, what a client library's pool holds (Go's
/// `persistConn`). Its state machine is polled inside each request, on the caller's task,
/// rather than in a task of its own: no wake-up crosses tasks per request, and when a request
/// returns, its answer has been read to the end and the connection is ready for the next one
/// (or known closed), so a pool may hand it on at once.
pub struct HyperConn {
    sender: hyper::client::conn::http1::SendRequest<HyperEmpty>,
    conn: Pin<Box<hyper::client::conn::http1::Connection<HyperIo, HyperEmpty>>>,
    closed: bool,
    host: hyper::header::HeaderValue,
}

impl HyperConn {
    /// Dial `addr` (TCP_NODELAY) and hand-shake.
    pub async fn connect(addr: SocketAddr) -> Result<HyperConn, OpError> {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| OpError::from_error(&e))?;
        stream.set_nodelay(true).map_err(|e| OpError::from_error(&e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| OpError::from_error(&e))?;
        Ok(HyperConn {
            sender,
            conn: Box::pin(conn),
            closed: false,
            host: hyper::header::HeaderValue::from_str(&addr.to_string()).map_err(|e| OpError::from_error(&e))?,
        })
    }

    /// Whether the connection is closed (by the server, an error, or a `Connection: close`).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// `GET path`, the answer's body read to its end and its length returned; a non-2xx status
    /// is an error of kind `HTTP <status>`. With `close`, the request asks the server to close
    /// the connection after answering (Go's `DisableKeepAlives`), and the connection is closed.
    pub async fn get(&mut self, path: &str, close: bool) -> Result<usize, OpError> {
        use http_body_util::BodyExt as _;
        if self.closed {
            return Err(OpError::new("connection closed"));
        }
        let mut req = hyper::Request::get(path).header(hyper::header::HOST, self.host.clone());
        if close {
            req = req.header(hyper::header::CONNECTION, "close");
        }
        let req = req.body(http_body_util::Empty::new()).map_err(|e| OpError::from_error(&e))?;
        let sender = &mut self.sender;
        let exchange = async move {
            let res = sender.send_request(req).await.map_err(|e| OpError::from_error(&e))?;
            let status = res.status();
            // Read the body to its end, frame by frame, keeping only its length (a non-2xx
            // answer's too, so that the connection is ready for the next request).
            let mut body = res.into_body();
            let mut len = 0;
            while let Some(frame) = body.frame().await {
                len += frame.map_err(|e| OpError::from_error(&e))?.data_ref().map_or(0, bytes::Bytes::len);
            }
            if !status.is_success() {
                return Err(OpError::new(format!("HTTP {}", status.as_u16())));
            }
            Ok(len)
        };
        let mut exchange = std::pin::pin!(exchange);
        let (conn, closed) = (&mut self.conn, &mut self.closed);
        let r = std::future::poll_fn(|cx| {
            use std::task::Poll;
            if let Poll::Ready(r) = exchange.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            // The connection writes the request and reads the answer, then the exchange sees it.
            match conn.as_mut().poll(cx) {
                Poll::Ready(r) => {
                    *closed = true;
                    // The answer may have been read in full before the connection ended.
                    match exchange.as_mut().poll(cx) {
                        Poll::Ready(answered) => Poll::Ready(answered),
                        Poll::Pending => Poll::Ready(Err(match r {
                            Ok(()) => OpError::new("connection closed"),
                            Err(e) => OpError::from_error(&e),
                        })),
                    }
                }
                Poll::Pending => exchange.as_mut().poll(cx),
            }
        })
        .await;
        if close {
            self.closed = true;
        }
        r
    }
}
