//! The fuzz targets link the host, and with it WasmEdge: they need the same link arguments as
//! the host's own binaries (see `host/build.rs`, which this reuses rather than repeats).

#[path = "../host/build.rs"]
mod wasmedge_link;

fn main() {
    println!("cargo:rerun-if-changed=../host/build.rs");
    wasmedge_link::main();
}
