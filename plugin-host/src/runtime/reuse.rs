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

use plugin_sdk::names;

use super::PluginInstance;

/// What a compiled plugin needs to reuse its instances.
#[derive(Debug)]
pub(super) struct ReuseState {
    /// Export names of the mutable globals.
    pub globals: Vec<String>,
    /// Whether the module has the lifecycle function ([`LIFECYCLE_EXPORT`]).
    pub lifecycle: bool,
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
    memory: Vec<u8>,
    /// Which [`CHUNK`]s of `memory` are all zeros (most of a fresh memory is).
    zero_chunks: Vec<bool>,
    pub globals: Vec<(String, wasmedge_sdk::WasmValue)>,
}

/// How much memory is compared, and written back if it differs, at a time: one OS page. A
/// lifecycle writes few of them (its stack, a few variables), and reading a chunk to find it
/// unchanged costs less than writing it back: a chunk that is not written stays clean in the
/// cache, and a zero chunk is compared with [`ZEROS`], which stays in the nearest cache.
const CHUNK: usize = 4096;

/// A chunk of zeros, to compare zero chunks with (`memcmp`, fast in every build profile).
static ZEROS: [u8; CHUNK] = [0; CHUNK];

impl Snapshot {
    pub fn new(memory: Vec<u8>, globals: Vec<(String, wasmedge_sdk::WasmValue)>) -> Self {
        let zero_chunks = memory.chunks(CHUNK).map(is_zero).collect();
        Snapshot { memory, zero_chunks, globals }
    }

    /// The memory's size in bytes.
    pub fn memory_len(&self) -> usize {
        self.memory.len()
    }

    /// Puts `memory` (as long as the image) back to the image: afterwards the two are equal,
    /// byte for byte. Only the chunks that differ are written.
    pub fn restore_memory(&self, memory: &mut [u8]) {
        assert_eq!(memory.len(), self.memory.len(), "a memory of the image's size");
        for ((now, fresh), &zero) in memory.chunks_mut(CHUNK).zip(self.memory.chunks(CHUNK)).zip(&self.zero_chunks) {
            let unchanged = if zero { is_zero(now) } else { now == fresh };
            if !unchanged {
                now.copy_from_slice(fresh);
            }
        }
    }
}

/// Whether every byte of a chunk (at most [`CHUNK`] bytes) is zero.
fn is_zero(bytes: &[u8]) -> bool {
    bytes == &ZEROS[..bytes.len()]
}

/// Largest memory, in 64 KiB pages, whose instances are reused. Writing the whole image back
/// cost about 1.4 µs per page, while a new instance costs about 29 µs whatever its size
/// (measured in AOT worker mode: 1 page 8.9 µs reused vs 30.8 µs new, 4 pages 13.0 vs 29.5,
/// 16 pages 31.7 vs 29.3), so beyond this a new instance is the cheaper fresh state. Since then
/// only the chunks a call changed are written back ([`Snapshot::restore_memory`]), so this
/// limit is what a call that changes every page costs, and is on the safe side for the others.
const MAX_REUSED_PAGES: u64 = 8;

/// Export name of the memory, added by [`expose_state`].
pub(super) const MEMORY_EXPORT: &str = "__plugin_host_memory";

/// Export name of mutable global `index`, added by [`expose_state`].
pub(super) fn global_export(index: u32) -> String {
    format!("__plugin_host_global_{index}")
}

/// Export name of the synthesized lifecycle function, added by [`expose_state`] to a v1 plugin:
/// `init`, then `process(input)` and `cleanup`, in one call into the engine (so under one
/// deadline timer instead of three). It returns `process`'s result in the low 32 bits and
/// `cleanup`'s in the high 32; when `init` fails it returns at once with `init`'s code in the low
/// 32 bits. [`STAGE_EXPORT`] says how far it got.
pub(super) const LIFECYCLE_EXPORT: &str = "__plugin_host_lifecycle";

/// Export name of the global the lifecycle function sets before each of the plugin's functions:
/// 1 before `init`, 2 before `process`, 3 before `cleanup`. After a trap or a timeout it names
/// the function that was running, which is what the error blames.
pub(super) const STAGE_EXPORT: &str = "__plugin_host_stage";

/// Export name of the global holding `process`'s result while `cleanup` runs, so that a
/// `cleanup` that traps still leaves it to report.
pub(super) const PROCESSED_EXPORT: &str = "__plugin_host_processed";

/// A module rewritten by [`expose_state`].
pub(super) struct Exposed {
    pub bytes: Vec<u8>,
    /// Indices of its mutable globals (the plugin's own).
    pub globals: Vec<u32>,
    /// Whether it has the lifecycle function ([`LIFECYCLE_EXPORT`]).
    pub lifecycle: bool,
}

/// The module with its memory and every mutable global exported under reserved names and, for
/// a v1 plugin (`v1`) with globals, the lifecycle function ([`LIFECYCLE_EXPORT`]). `None` if the
/// module has no memory or cannot be rewritten.
///
/// Everything added goes at the end of its index space (types, functions, globals), so no index
/// the plugin's own code uses moves.
pub(super) fn expose_state(wasm: &[u8], v1: bool) -> Option<Exposed> {
    let mut mutable_globals = Vec::new();
    let mut has_memory = false;
    let mut has_exports = false;
    let (mut imported_globals, mut imported_functions) = (0, 0);
    let (mut types, mut functions, mut globals) = (0, 0, 0);
    let mut exported = [None; 3];
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::TypeSection(section) => {
                for group in section {
                    types += group.ok()?.types().count() as u32;
                }
            }
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    match import.ok()?.ty {
                        wasmparser::TypeRef::Global(_) => imported_globals += 1,
                        wasmparser::TypeRef::Func(_) => imported_functions += 1,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(section) => functions = section.count(),
            Payload::MemorySection(memories) => {
                for memory in memories {
                    has_memory = true;
                    if memory.ok()?.initial > MAX_REUSED_PAGES {
                        return None;
                    }
                }
            }
            Payload::ExportSection(exports) => {
                has_exports = true;
                for export in exports {
                    let export = export.ok()?;
                    let slot = [names::INIT, names::PROCESS, names::CLEANUP].iter().position(|&n| n == export.name);
                    if let (Some(slot), wasmparser::ExternalKind::Func) = (slot, export.kind) {
                        exported[slot] = Some(export.index);
                    }
                }
            }
            Payload::GlobalSection(section) => {
                globals = section.count();
                for (i, global) in section.into_iter().enumerate() {
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
    // The lifecycle's globals go at the end of the global section, so a module needs one (every
    // compiled plugin has its stack pointer there); one without is called function by function.
    let lifecycle = match (v1 && types > 0 && globals > 0, exported) {
        (true, [Some(init), Some(process), Some(cleanup)]) => Some(Lifecycle {
            type_index: types,
            function_index: imported_functions + functions,
            stage: imported_globals + globals,
            processed: imported_globals + globals + 1,
            calls: [init, process, cleanup],
        }),
        _ => None,
    };
    let mut exposer = ExposeState { globals: mutable_globals.clone(), lifecycle };
    let mut module = wasm_encoder::Module::new();
    exposer.parse_core_module(&mut module, Parser::new(0), wasm).ok()?;
    Some(Exposed { bytes: module.finish(), globals: mutable_globals, lifecycle: lifecycle.is_some() })
}

/// Where the lifecycle function and its globals go, and what it calls.
#[derive(Debug, Clone, Copy)]
struct Lifecycle {
    type_index: u32,
    function_index: u32,
    stage: u32,
    processed: u32,
    /// `init`, `process`, `cleanup`.
    calls: [u32; 3],
}

impl Lifecycle {
    /// `(func (param $input i32) (result i64) (local $result i32) ...)`: see [`LIFECYCLE_EXPORT`].
    fn body(&self) -> wasm_encoder::Function {
        use wasm_encoder::{BlockType, Instruction as I};
        let [init, process, cleanup] = self.calls;
        let (input, result) = (0, 1);
        let mut body = wasm_encoder::Function::new([(1, wasm_encoder::ValType::I32)]);
        for instruction in [
            I::I32Const(1),
            I::GlobalSet(self.stage),
            I::Call(init),
            I::LocalTee(result),
            I::I32Const(0),
            I::I32LtS,
            I::If(BlockType::Empty),
            I::LocalGet(result),
            I::I64ExtendI32U,
            I::Return,
            I::End,
            I::I32Const(2),
            I::GlobalSet(self.stage),
            I::LocalGet(input),
            I::Call(process),
            I::GlobalSet(self.processed),
            I::I32Const(3),
            I::GlobalSet(self.stage),
            I::Call(cleanup),
            I::I64ExtendI32U,
            I::I64Const(32),
            I::I64Shl,
            I::GlobalGet(self.processed),
            I::I64ExtendI32U,
            I::I64Or,
            I::End,
        ] {
            body.instruction(&instruction);
        }
        body
    }
}

struct ExposeState {
    globals: Vec<u32>,
    lifecycle: Option<Lifecycle>,
}

impl Reencode for ExposeState {
    type Error = Infallible;

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), ReencodeError<Infallible>> {
        utils::parse_type_section(self, types, section)?;
        if self.lifecycle.is_some() {
            types.ty().function([wasm_encoder::ValType::I32], [wasm_encoder::ValType::I64]);
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), ReencodeError<Infallible>> {
        utils::parse_function_section(self, functions, section)?;
        if let Some(lifecycle) = self.lifecycle {
            functions.function(lifecycle.type_index);
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), ReencodeError<Infallible>> {
        utils::parse_global_section(self, globals, section)?;
        if self.lifecycle.is_some() {
            let ty = wasm_encoder::GlobalType { val_type: wasm_encoder::ValType::I32, mutable: true, shared: false };
            globals.global(ty, &wasm_encoder::ConstExpr::i32_const(0));
            globals.global(ty, &wasm_encoder::ConstExpr::i32_const(0));
        }
        Ok(())
    }

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
        if let Some(lifecycle) = self.lifecycle {
            exports.export(LIFECYCLE_EXPORT, wasm_encoder::ExportKind::Func, lifecycle.function_index);
            exports.export(STAGE_EXPORT, wasm_encoder::ExportKind::Global, lifecycle.stage);
            exports.export(PROCESSED_EXPORT, wasm_encoder::ExportKind::Global, lifecycle.processed);
        }
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), ReencodeError<Infallible>> {
        utils::parse_code_section(self, code, section)?;
        if let Some(lifecycle) = self.lifecycle {
            code.function(&lifecycle.body());
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
        let Exposed { bytes: rewritten, globals, lifecycle } = expose_state(&wasm, true).unwrap();
        assert!(!lifecycle, "no init, process and cleanup to call");
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
    fn a_v1_plugin_gets_a_lifecycle_function_after_everything_it_had() {
        let wasm = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                (global $sp (mut i32) (i32.const 1024))
                (func $init (export "init") (result i32) i32.const 0)
                (func $process (export "process") (param i32) (result i32) local.get 0)
                (func $cleanup (export "cleanup") (result i32) i32.const 0))"#,
        )
        .unwrap();
        let Exposed { bytes, lifecycle, .. } = expose_state(&wasm, true).unwrap();
        assert!(lifecycle);
        wasmparser::validate(&bytes).unwrap();
        let exports: Vec<(String, u32)> = Parser::new(0)
            .parse_all(&bytes)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(s) => {
                    Some(s.into_iter().map(|e| e.unwrap()).map(|e| (e.name.to_string(), e.index)).collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect();
        // The plugin's own functions and global keep their indices; the new ones come after.
        for (name, index) in [("init", 0), ("process", 1), ("cleanup", 2), (LIFECYCLE_EXPORT, 3)] {
            assert!(exports.contains(&(name.to_string(), index)), "{name} at {index}: {exports:?}");
        }
        for (name, index) in [(STAGE_EXPORT, 1), (PROCESSED_EXPORT, 2), ("__plugin_host_global_0", 0)] {
            assert!(exports.contains(&(name.to_string(), index)), "{name} at {index}: {exports:?}");
        }
        // A v2 plugin, or one without globals to append to, is called function by function.
        assert!(!expose_state(&wasm, false).unwrap().lifecycle);
        let without_globals = wat::parse_str(
            r#"(module (memory 1)
                (func (export "init") (result i32) i32.const 0)
                (func (export "process") (param i32) (result i32) local.get 0)
                (func (export "cleanup") (result i32) i32.const 0))"#,
        )
        .unwrap();
        assert!(!expose_state(&without_globals, true).unwrap().lifecycle);
    }

    #[test]
    fn restoring_memory_puts_back_every_changed_byte_in_zero_and_other_chunks() {
        // An image with zero and non-zero chunks, and a short last chunk.
        let mut image = vec![0u8; 3 * CHUNK + 100];
        image[CHUNK + 7] = 1;
        image[3 * CHUNK + 99] = 9;
        let snapshot = Snapshot::new(image.clone(), Vec::new());
        assert_eq!(snapshot.zero_chunks, [true, false, true, false]);
        let mut memory = image.clone();
        for (at, value) in [(0, 5), (CHUNK + 7, 0), (CHUNK + 8, 3), (2 * CHUNK + CHUNK - 1, 1), (3 * CHUNK, 4)] {
            memory[at] = value;
        }
        snapshot.restore_memory(&mut memory);
        assert!(memory == image);
        // Unchanged memory is left as it is.
        snapshot.restore_memory(&mut memory);
        assert!(memory == image);
    }

    #[test]
    fn a_large_memory_is_not_worth_reusing() {
        let small = wat::parse_str(r#"(module (memory 8) (func (export "f")))"#).unwrap();
        let large = wat::parse_str(r#"(module (memory 9) (func (export "f")))"#).unwrap();
        assert!(expose_state(&small, true).is_some());
        assert!(expose_state(&large, true).is_none());
    }

    #[test]
    fn a_module_without_memory_is_not_reusable() {
        let wasm = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
        assert!(expose_state(&wasm, true).is_none());
    }
}
