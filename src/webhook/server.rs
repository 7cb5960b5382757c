//! Accepting connections: HTTP/1.1 with a header-read timeout, an idle timeout and a cap on
//! open connections, each connection served by its own task that shutdown waits for.
//!
//! `axum::serve` has none of these, so a client that opens connections and sends nothing
//! (slowloris) could use up the process's file descriptors, and with them the operator's
//! connections to Docker and Prometheus. Here a connection that sends no complete request head
//! within the header-read timeout is closed by hyper; one with no traffic for the idle timeout
//! is closed by its task; and when the cap is reached, the connection idle the longest makes
//! room for the new one, so idle connections can never lock out a request. With TLS, the
//! handshake must also finish within the header-read timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::tls::Tls;

/// How many connections are served at once, and how long they may stay quiet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnectionLimits {
    /// Open connections at most; at the cap, the longest-idle one is closed for a new one.
    pub max_connections: usize,
    /// The longest a client may take to send a request's head (line and headers).
    pub header_read_timeout: Duration,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How long a closing connection may take to finish the request it is serving.
const CLOSE_GRACE: Duration = Duration::from_secs(15);
/// The pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What the server knows of one open connection.
#[derive(Debug)]
struct Activity {
    /// Milliseconds since the server started, at the last byte read or written.
    last: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Cancelled to close the connection for a newer one.
    evict: CancellationToken,
}

/// The open connections, by id.
struct Registry {
    started: Instant,
    next: u64,
    open: HashMap<u64, Arc<Activity>>,
}

impl Registry {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a new connection, closing the longest-idle one if the cap is reached. `None`
    /// when every open connection is answering a request: the new one is then refused.
    fn admit(&mut self, cap: usize) -> Option<(u64, Arc<Activity>)> {
        if self.open.len() >= cap.max(1) {
            let idlest = self
                .open
                .iter()
                .filter(|(_, activity)| activity.in_flight.load(Ordering::Relaxed) == 0)
                .min_by_key(|(_, activity)| activity.last.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(evicted) = self.open.remove(&idlest) {
                evicted.evict.cancel();
            }
        }
        let id = self.next;
        self.next += 1;
        let activity = Arc::new(Activity {
            last: AtomicU64::new(self.now()),
            in_flight: AtomicUsize::new(0),
            evict: CancellationToken::new(),
        });
        self.open.insert(id, Arc::clone(&activity));
        Some((id, activity))
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets the requests in
/// flight finish (each within [`CLOSE_GRACE`]).
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
) {
    let registry = Arc::new(Mutex::new(Registry {
        started: Instant::now(),
        next: 0,
        open: HashMap::new(),
    }));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection; pausing");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let admitted = lock(&registry).admit(limits.max_connections);
        let Some((id, activity)) = admitted else {
            tracing::warn!(%peer, cap = limits.max_connections, "every connection is busy; refusing one");
            continue;
        };
        let connection = Connection {
            router: router.clone(),
            limits,
            peer,
            activity,
            registry: Arc::clone(&registry),
            shutdown: shutdown.clone(),
        };
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        connections.spawn(async move {
            match acceptor {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            lock(&connection.registry).open.remove(&id);
        });
    }
    while connections.join_next().await.is_some() {}
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Connection {
    router: Router,
    limits: ConnectionLimits,
    peer: SocketAddr,
    activity: Arc<Activity>,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
}

impl Connection {
    async fn serve<T>(&self, stream: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let started = lock(&self.registry).started;
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: Arc::clone(&self.activity),
            started,
        });
        let router = self.router.clone();
        let peer = self.peer;
        let activity = Arc::clone(&self.activity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            let busy = InFlight::new(Arc::clone(&activity));
            async move {
                let response = router.oneshot(request).await;
                drop(busy);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let check =
            (self.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut closing: Option<Instant> = None;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
                    }
                    return;
                }
                _ = self.activity.evict.cancelled(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                _ = self.shutdown.cancelled(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                _ = tokio::time::sleep(check) => {
                    match closing {
                        Some(since) if since.elapsed() > CLOSE_GRACE => return,
                        Some(_) => {}
                        None if self.idle_for(started) > self.limits.idle_timeout => {
                            connection.as_mut().graceful_shutdown();
                            closing = Some(Instant::now());
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// How long since the last byte in either direction.
    fn idle_for(&self, started: Instant) -> Duration {
        let now = started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.activity.last.load(Ordering::Relaxed)))
    }
}

/// Counts a request as in flight until dropped (also when its future is dropped half-way).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes last went through it.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    started: Instant,
}

impl<T> Tracked<T> {
    fn touch(&self) {
        self.activity
            .last
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
