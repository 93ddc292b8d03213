//! Host bindings of the `nexus:agent` world, generated once from `wit/`.
//!
//! WASI interfaces map to wasmtime-wasi's own bindings, so the standard WASI implementation
//! serves them.

wasmtime::component::bindgen!({
    world: "agent",
    path: "../../wit",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
});
