//! Links the host binary (and its tests, examples and benches) against the WasmEdge install
//! `plugin-host` found: the same one line an embedder writes.

fn main() {
    plugin_host_build::link();
}
