//! Reusing an instance instead of making a new one, without letting any state through.
//!
//! Creating and destroying a WasmEdge instance is most of the cost of a warm call (it maps and
//! unmaps a guarded linear memory). An instance can instead be put back exactly into its
//! just-instantiated state, if that state is known and writable from outside:
//! - ABI v1 guarantees the rest cannot change: no imports, no `memory.grow` (the size is
//!   fixed), no table or data-segment instructions, no start function;
//! - linear memory is written back from an image taken right after instantiation;
//! - mutable globals (clang's `__stack_pointer`, which is not exported) are exported under
//!   reserved names by rewriting the module at load time, so they can be read and reset.
//!
//! So only modules that passed the ABI check are reused, and an instance is only reused after
//! a lifecycle in which every call returned (a trap or timeout discards it).

use std::{convert::Infallible, sync::OnceLock};

use parking_lot::Mutex;

use wasm_encoder::reencode::{Error as ReencodeError, Reencode, utils};
use wasmparser::{Parser, Payload};

use super::PluginInstance;

/// What a compiled plugin needs to reuse its instances.
#[derive(Debug)]
pub(super) struct ReuseState {
    /// Export names of the mutable globals.
    pub globals: Vec<String>,
    /// Taken from the first instance; `None` inside if that failed (then nothing is reused).
    pub snapshot: OnceLock<Option<Snapshot>>,
    /// Instances put back into their fresh state, waiting for a call.
    pub idle: Mutex<Vec<PluginInstance>>,
}

/// Idle instances kept per plugin version: enough for every core to have one at hand and a few
/// calls waiting; more would only hold memory.
pub(super) const IDLE_LIMIT: usize = 8;

/// A freshly instantiated plugin's state.
#[derive(Debug)]
pub(super) struct Snapshot {
    pub memory: Vec<u8>,
    pub globals: Vec<(String, wasmedge_sdk::WasmValue)>,
}

/// Largest memory, in 64 KiB pages, whose instances are reused. Writing the image back costs
/// about 1.4 µs per page, while a new instance costs about 29 µs whatever its size (measured in
/// AOT worker mode: 1 page 8.9 µs reused vs 30.8 µs new, 4 pages 13.0 vs 29.5, 16 pages 31.7
/// vs 29.3), so beyond this a new instance is the cheaper fresh state.
const MAX_REUSED_PAGES: u64 = 8;

/// Export name of the memory, added by [`expose_state`].
pub(super) const MEMORY_EXPORT: &str = "__plugin_host_memory";

/// Export name of mutable global `index`, added by [`expose_state`].
pub(super) fn global_export(index: u32) -> String {
    format!("__plugin_host_global_{index}")
}

/// The module with its memory and every mutable global exported under reserved names, and the
/// indices of those globals. `None` if the module has no memory or cannot be rewritten.
pub(super) fn expose_state(wasm: &[u8]) -> Option<(Vec<u8>, Vec<u32>)> {
    let mut mutable_globals = Vec::new();
    let mut has_memory = false;
    let mut has_exports = false;
    let mut imported_globals = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if matches!(import.ok()?.ty, wasmparser::TypeRef::Global(_)) {
                        imported_globals += 1;
                    }
                }
            }
            Payload::MemorySection(memories) => {
                for memory in memories {
                    has_memory = true;
                    if memory.ok()?.initial > MAX_REUSED_PAGES {
                        return None;
                    }
                }
            }
            Payload::ExportSection(_) => has_exports = true,
            Payload::GlobalSection(globals) => {
                for (i, global) in globals.into_iter().enumerate() {
                    if global.ok()?.ty.mutable {
                        mutable_globals.push(imported_globals + i as u32);
                    }
                }
            }
            _ => {}
        }
    }
    // The new exports go into the export section, which every plugin has (it exports its
    // three functions); a module without one is not a plugin worth reusing.
    if !has_memory || !has_exports {
        return None;
    }
    let mut exposer = ExposeState { globals: mutable_globals.clone() };
    let mut module = wasm_encoder::Module::new();
    exposer.parse_core_module(&mut module, Parser::new(0), wasm).ok()?;
    Some((module.finish(), mutable_globals))
}

struct ExposeState {
    globals: Vec<u32>,
}

impl Reencode for ExposeState {
    type Error = Infallible;

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), ReencodeError<Infallible>> {
        utils::parse_export_section(self, exports, section)?;
        exports.export(MEMORY_EXPORT, wasm_encoder::ExportKind::Memory, 0);
        for &index in &self.globals {
            exports.export(&global_export(index), wasm_encoder::ExportKind::Global, index);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_memory_and_mutable_globals_only() {
        let wasm = wat::parse_str(
            r#"(module (memory 1)
                (global $sp (mut i32) (i32.const 1024))
                (global $k i32 (i32.const 7))
                (global $n (mut i32) (i32.const 0))
                (func (export "process") (param i32) (result i32) local.get 0))"#,
        )
        .unwrap();
        let (rewritten, globals) = expose_state(&wasm).unwrap();
        assert_eq!(globals, [0, 2]);
        let exports: Vec<String> = Parser::new(0)
            .parse_all(&rewritten)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(s) => {
                    Some(s.into_iter().map(|e| e.unwrap().name.to_string()).collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(exports, ["process", MEMORY_EXPORT, "__plugin_host_global_0", "__plugin_host_global_2"]);
        wasmparser::validate(&rewritten).unwrap();
    }

    #[test]
    fn a_large_memory_is_not_worth_reusing() {
        let small = wat::parse_str(r#"(module (memory 8) (func (export "f")))"#).unwrap();
        let large = wat::parse_str(r#"(module (memory 9) (func (export "f")))"#).unwrap();
        assert!(expose_state(&small).is_some());
        assert!(expose_state(&large).is_none());
    }

    #[test]
    fn a_module_without_memory_is_not_reusable() {
        let wasm = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
        assert!(expose_state(&wasm).is_none());
    }
}
