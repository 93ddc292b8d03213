//! The hostile-traffic suite: a real `nexus server`, attacked from loopback the cheap ways an
//! outsider or a tenant would try. Every case asserts the coded answer, that nothing was stored,
//! and that `/healthz` and another tenant's requests keep succeeding during the attack.
//!
//! - `connections`: slow headers, idle floods, file-descriptor exhaustion under a lowered
//!   limit, memory returned after a connection flood;
//! - `shedding`: one tenant's slow bodies against another tenant's A2A calls;
//! - `inputs`: malformed, deep, huge and non-UTF-8 JSON, traversal and injection strings, in
//!   `/v1`, A2A and MCP;
//! - `archives`: hostile packages (not zstd, bombs, traversal, links, duplicates);
//! - `cross_site`: what a web page on another origin or behind a rebound DNS name can send.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

#[path = "../../crates/cli/tests/common/mod.rs"]
mod common;
mod support;

mod archives;
mod connections;
mod cross_site;
mod inputs;
mod shedding;
