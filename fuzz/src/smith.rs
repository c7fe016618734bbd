//! Plugin-shaped modules from wasm-smith: the three v1 exports and a memory, no imports, no
//! floating point, only the WebAssembly features ABI v1 allows. Random modules of any shape
//! almost never pass the ABI check; these often do, so the runtime behind the check gets
//! exercised.

use std::convert::Infallible;

use arbitrary::{Result, Unstructured};
use wasm_encoder::reencode::{self, Reencode};
use wasm_smith::{Config, InstructionKind, InstructionKinds, Module};

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
    // The memory the exports name is the only one: wasm-smith would add its own on top.
    config.max_memories = 0;
    config.max_memory32_bytes = 16 * 65536;
    config.max_tables = 1;
    config.max_table_elements = 64;
    config.max_funcs = 32;
    config.max_instructions = 200;
    config.max_data_segments = 8;
    config.max_element_segments = 8;
    // Chosen by the input: bulk memory brings memory.copy/fill (allowed) and passive segments
    // (refused), so it is on for one module in four; without traps, wasm-smith keeps every
    // access and segment in bounds. `memory.grow` (refused) comes with the memory instructions,
    // which half of the modules go without, so that more of them pass the check and run.
    config.bulk_memory_enabled = u.ratio(1, 4)?;
    config.disallow_traps = u.arbitrary()?;
    if u.arbitrary()? {
        let kinds: Vec<InstructionKind> = [
            InstructionKind::Numeric,
            InstructionKind::Parametric,
            InstructionKind::Variable,
            InstructionKind::Control,
        ]
        .into();
        config.allowed_instructions = InstructionKinds::new(&kinds);
    }
    let acyclic = u.ratio(3, 4)?;
    let wasm = Module::new(config, u)?.to_bytes();
    Ok(if acyclic { without_recursion_or_growth(&wasm).unwrap_or(wasm) } else { wasm })
}

/// `wasm` with every call that could close a cycle (a `call` to a function not defined before
/// the caller, and every `call_indirect`) and every `memory.grow` replaced by `unreachable`.
///
/// wasm-smith calls functions at random, so nine modules in ten are recursive and most grow
/// memory: the checker refuses them and the runtime behind it is never reached. `unreachable`
/// keeps the module valid (the rest of its block becomes dead code), and calls then only go
/// to earlier functions, so there is no cycle to find.
fn without_recursion_or_growth(wasm: &[u8]) -> Option<Vec<u8>> {
    let mut module = wasm_encoder::Module::new();
    Acyclic { current: 0 }.parse_core_module(&mut module, wasmparser::Parser::new(0), wasm).ok()?;
    Some(module.finish())
}

/// The rewriter: [`Reencode`] copies everything but the instructions it changes. The modules
/// import nothing, so function indices start at the first defined function.
struct Acyclic {
    /// The index of the function whose body is being copied.
    current: u32,
}

impl Reencode for Acyclic {
    type Error = Infallible;

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<Infallible>> {
        let copied = reencode::utils::parse_function_body(self, code, func);
        self.current += 1;
        copied
    }

    fn instruction<'a>(
        &mut self,
        op: wasmparser::Operator<'a>,
    ) -> Result<wasm_encoder::Instruction<'a>, reencode::Error<Infallible>> {
        match op {
            wasmparser::Operator::Call { function_index } if function_index >= self.current => {
                Ok(wasm_encoder::Instruction::Unreachable)
            }
            wasmparser::Operator::CallIndirect { .. } | wasmparser::Operator::MemoryGrow { .. } => {
                Ok(wasm_encoder::Instruction::Unreachable)
            }
            other => reencode::utils::instruction(self, other),
        }
    }
}
