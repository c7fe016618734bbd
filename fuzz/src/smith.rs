//! Plugin-shaped modules from wasm-smith: the three v1 exports and a memory, no imports, no
//! floating point, only the WebAssembly features ABI v1 allows. Random modules of any shape
//! almost never pass the ABI check; these often do, so the runtime behind the check gets
//! exercised.

use arbitrary::{Result, Unstructured};
use wasm_smith::{Config, Module};

/// The exports every generated module has, as a module wasm-smith copies them from.
const PLUGIN_EXPORTS: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "init") (result i32) unreachable)
  (func (export "process") (param i32) (result i32) unreachable)
  (func (export "cleanup") (result i32) unreachable))"#;

/// A plugin-shaped module built from `u`'s bytes. A few choices (traps allowed or not, bulk
/// memory or not) come from the bytes too, so the fuzzer can steer them.
pub fn plugin_shaped_module(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut config = Config {
        exports: Some(wat::parse_str(PLUGIN_EXPORTS).expect("the export template is valid WAT")),
        ..Config::default()
    };
    // What ABI v1 refuses outright is not generated: it would only be refused again.
    config.max_imports = 0;
    config.allow_floats = false;
    config.saturating_float_to_int_enabled = false;
    config.allow_start_export = false;
    config.simd_enabled = false;
    config.relaxed_simd_enabled = false;
    config.threads_enabled = false;
    config.shared_everything_threads_enabled = false;
    config.exceptions_enabled = false;
    config.gc_enabled = false;
    config.reference_types_enabled = false;
    config.tail_call_enabled = false;
    config.memory64_enabled = false;
    config.custom_page_sizes_enabled = false;
    config.wide_arithmetic_enabled = false;
    config.compact_imports_enabled = false;
    config.multi_value_enabled = true;
    config.sign_extension_ops_enabled = true;
    config.extended_const_enabled = true;
    // Within the default ABI limits, so that limits are not the usual reason for a refusal.
    config.max_memories = 1;
    config.max_memory32_bytes = 16 * 65536;
    config.max_tables = 1;
    config.max_table_elements = 64;
    config.max_funcs = 32;
    config.max_instructions = 200;
    config.max_data_segments = 8;
    config.max_element_segments = 8;
    // Chosen by the input: bulk memory brings memory.copy/fill (allowed) and passive segments
    // (refused); without traps, wasm-smith keeps every access and segment in bounds.
    config.bulk_memory_enabled = u.arbitrary()?;
    config.disallow_traps = u.arbitrary()?;
    Ok(Module::new(config, u)?.to_bytes())
}
