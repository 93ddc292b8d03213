//! One module per resource.

pub mod a2a;
pub mod a2a_push;
pub mod a2a_rest;
pub mod agents;
pub mod health;
pub mod mcp;
pub mod tenants;
