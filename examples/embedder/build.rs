//! Links this program against the WasmEdge install that plugin-host found.
fn main() {
    plugin_host_build::link();
}
