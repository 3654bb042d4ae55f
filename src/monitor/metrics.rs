//! The monitor's optional Prometheus endpoint (`--metrics-addr`: `/metrics` and `/healthz`), serving the
//! figures of [`Metrics`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::pipeline::metrics::{Hist, Metrics};

/// Serves `/metrics` and `/healthz` on `addr` until shutdown. Plain HTTP/1.0 answers, one per connection.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = shutdown.changed() => return,
        };
        let Ok((mut stream, _)) = conn else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/healthz" if metrics.healthy() => ("200 OK", "ok\n".to_string()),
                "/healthz" => {
                    let reasons = metrics.failing.lock().map(|f| f.values().cloned().collect::<Vec<_>>().join("\n"));
                    ("503 Service Unavailable", format!("failing\n{}\n", reasons.unwrap_or_default()))
                }
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics listener (loopback or any address the operator chose).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
