//! Host-side bindings, generated from the WIT in `wit/` (copied from the
//! spin-sdk 5.2.0 crate). Only the non-WASI interfaces are generated here;
//! WASI p2 and `wasi:http` come from wasmtime-wasi / wasmtime-wasi-http.
//!
//! Resources are mapped to host types of [`crate::keyvalue`] so that they
//! live in the store's `ResourceTable` like the WASI ones.

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-test-host:host/host",
    imports: { default: trappable },
    with: {
        "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
        "wasi:keyvalue/atomics.cas": crate::keyvalue::CasHandle,
        "fermyon:spin/key-value.store": crate::keyvalue::BucketHandle,
    },
});

pub use fermyon::spin;
pub use wasi::config as wasi_config;
pub use wasi::keyvalue as wasi_keyvalue;
/// The generated world: `add_to_linker` for every interface above.
pub use Host_ as HostImports;
