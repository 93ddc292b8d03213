//! `nexus:agent/bus`: publishing to topics. Arrives with the control plane; until then a
//! granted call answers `unavailable`.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::nexus::agent::bus::{self as wit, BusError};

/// The `bus` context of one task.
#[derive(Debug, Default)]
pub struct BusCapability {
    granted: bool,
}

impl BusCapability {
    pub fn new(granted: bool) -> Self {
        Self { granted }
    }
}

impl wit::Host for BusCapability {
    async fn publish(&mut self, _topic: String, _payload: Vec<u8>) -> Result<(), BusError> {
        if !self.granted {
            return Err(BusError::Denied);
        }
        Err(BusError::Unavailable(
            "the event bus is not available in this runtime yet".into(),
        ))
    }
}

/// Links `nexus:agent/bus`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut BusCapability,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<BusCapability>>(linker, get)
}
