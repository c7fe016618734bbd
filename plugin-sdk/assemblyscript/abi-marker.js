// Writes the plugin ABI marker, the `wasm_plugin_abi` custom section, which AssemblyScript has
// no syntax for. The version is the `ABI_VERSION` environment variable (1 or 2; default 1).
export default class AbiMarker {
  afterCompile(module) {
    const version = Number(process.env.ABI_VERSION || "1");
    module.addCustomSection("wasm_plugin_abi", new Uint8Array([version, 0, 0, 0]));
  }
}
