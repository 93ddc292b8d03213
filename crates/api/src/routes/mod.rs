//! One module per resource.

pub mod a2a;
pub mod agents;
pub mod health;
pub mod mcp;
pub mod tenants;
