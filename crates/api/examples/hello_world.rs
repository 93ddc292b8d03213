//! The ceiling for benchmarks: axum's hello world, configured like `nexus server` (multi-thread
//! tokio runtime, TCP_NODELAY), so `scripts/bench-a2a` can measure what HTTP alone costs on
//! this machine in the same run as the platform.
//!
//! Usage: `cargo run --release -p nexus-api --example hello_world -- 127.0.0.1:7791`

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7791".to_owned());
    let app = Router::new().route(
        "/",
        get(|| async { "Hello, World!" }).post(|| async { "Hello, World!" }),
    );
    let listener = tokio::net::TcpListener::bind(&address)
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("hello world on http://{address}");
    axum::serve(listener, app).await
}
