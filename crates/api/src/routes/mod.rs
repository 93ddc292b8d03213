//! One module per resource.

pub mod agents;
pub mod health;
pub mod tenants;
