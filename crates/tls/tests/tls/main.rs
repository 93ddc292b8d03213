//! The TLS listener over real loopback connections: versions, ALPN, client certificates,
//! reloads, slow clients and the errors of bad files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

mod errors;
mod handshake;
mod reload;
mod support;
