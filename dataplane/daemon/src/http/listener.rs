//! A TCP listener for the management endpoints that cannot be used to exhaust the process:
//! at most `max_connections` at once (further clients wait in the kernel's backlog, using
//! no descriptor of ours), and each connection lives at most `lifetime` (a slow or idle
//! client is cut; a Prometheus scrape or an admin call takes milliseconds).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// The bounds of one management listener.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_connections: usize,
    pub lifetime: Duration,
}

/// A bounded listener, for `axum::serve`.
pub struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    lifetime: Duration,
}

impl BoundedListener {
    pub fn new(inner: TcpListener, bounds: Bounds) -> BoundedListener {
        BoundedListener {
            inner,
            permits: Arc::new(Semaphore::new(bounds.max_connections.max(1))),
            lifetime: bounds.lifetime,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The semaphore is never closed, so acquiring only waits.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return std::future::pending().await;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let deadline = Box::pin(tokio::time::sleep(self.lifetime));
                    return (
                        BoundedStream {
                            stream,
                            deadline,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                // Out of descriptors or an aborted handshake: back off briefly, as axum does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails with `TimedOut` once its lifetime is over.
pub struct BoundedStream {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl BoundedStream {
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "management connection lifetime over",
    )
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connections_are_capped_and_idle_ones_cut() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let bounds = Bounds {
            max_connections: 2,
            lifetime: Duration::from_millis(300),
        };
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(BoundedListener::new(l, bounds), app).await });
        // Two idle clients hold both slots...
        let mut idle1 = TcpStream::connect(addr).await.unwrap();
        let mut idle2 = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...so a third waits (connected in the backlog, not served)...
        let mut third = TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        let early =
            tokio::time::timeout(Duration::from_millis(150), third.read_to_string(&mut out)).await;
        assert!(early.is_err(), "served while both slots were taken");
        // ...until the idle ones reach their lifetime and are closed.
        let mut sink = Vec::new();
        assert_eq!(idle1.read_to_end(&mut sink).await.unwrap_or(0), 0);
        assert_eq!(idle2.read_to_end(&mut sink).await.unwrap_or(0), 0);
        tokio::time::timeout(Duration::from_secs(2), third.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}
