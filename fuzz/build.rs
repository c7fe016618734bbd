//! The fuzz targets link the host, and with it WasmEdge: the same one line as every program
//! that embeds `plugin-host` (see `plugin-host-build`).

fn main() {
    plugin_host_build::link();
}
