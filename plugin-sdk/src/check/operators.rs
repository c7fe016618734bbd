//! Names and classifies WebAssembly instructions for the checker: which ones are floating
//! point, and how each is spelled in the text format.

use wasmparser::{BlockType, Operator, ValType};

/// The `VisitOperator` method name of `op`, such as `visit_f64_mul`.
///
/// Generated from wasmparser's own list of every instruction it knows, so no instruction can
/// be forgotten here when wasmparser learns new ones: a new `f32`/`f64` instruction is
/// classified as floating point by its name without any change to this crate.
fn visit_name(op: &Operator<'_>) -> &'static str {
    macro_rules! define_visit_name {
        ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*))*) => {
            match op {
                $( Operator::$op { .. } => stringify!($visit), )*
                // `Operator` is non-exhaustive, but the list above is wasmparser's complete
                // list; this arm only keeps the match compiling.
                _ => "visit_unknown",
            }
        };
    }
    wasmparser::for_each_operator!(define_visit_name)
}

/// Prefixes that the text format separates from the rest of the name with a dot.
const DOTTED_PREFIXES: &[&str] = &[
    "i32", "i64", "f32", "f64", "v128", "i8x16", "i16x8", "i32x4", "i64x2", "f32x4", "f64x2", "memory", "local",
    "global", "table", "ref", "data", "elem", "atomic", "struct", "array", "any", "extern", "i31",
];

/// The instruction's name in the text format, such as `f64.mul` or `call_indirect`.
///
/// Derived from the visitor name; exact for every MVP and float instruction, and close enough
/// to recognise for the rest (`i32.atomic_rmw_add` for `i32.atomic.rmw.add`).
pub(crate) fn mnemonic(op: &Operator<'_>) -> String {
    let name = visit_name(op);
    let name = name.strip_prefix("visit_").unwrap_or(name);
    match name.split_once('_') {
        Some((prefix, rest)) if DOTTED_PREFIXES.contains(&prefix) => format!("{prefix}.{rest}"),
        _ => name.to_owned(),
    }
}

/// If `op` involves floating point, the text to show for it: the instruction name, plus the
/// type for blocks and `select`s whose float-ness is in their type annotation.
///
/// An instruction is floating point if its name mentions `f32` or `f64`. That covers float
/// arithmetic, comparisons, constants, loads and stores, every conversion to and from a float
/// (`i32.trunc_f32_s`, `f64.convert_i32_u`, `f32.demote_f64`, ...), reinterpretations, the
/// saturating truncations, and SIMD float lanes (`f32x4.*`, `i32x4.trunc_sat_f32x4_s`).
/// Instructions whose name is type-neutral (`local.get`, `select`, `call`) can only move
/// floats that a float type or another float instruction produced, which are reported
/// themselves; typed blocks and `select`s are the exception and are checked here.
pub(crate) fn float_use(op: &Operator<'_>) -> Option<String> {
    let name = visit_name(op);
    if name.contains("f32") || name.contains("f64") {
        return Some(mnemonic(op));
    }
    let annotated = match op {
        Operator::Block { blockty } | Operator::Loop { blockty } | Operator::If { blockty } => match blockty {
            BlockType::Type(ty) => Some(*ty),
            BlockType::Empty | BlockType::FuncType(_) => None,
        },
        Operator::TypedSelect { ty } => Some(*ty),
        Operator::TypedSelectMulti { tys } => tys.iter().copied().find(is_float),
        _ => None,
    };
    annotated.filter(is_float).map(|ty| format!("{} (result {ty})", mnemonic(op)))
}

pub(crate) fn is_float(ty: &ValType) -> bool {
    matches!(ty, ValType::F32 | ValType::F64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmparser::{Ieee32, MemArg, MemArgTarget};

    fn memarg() -> MemArg {
        MemArg { align: 2, max_align: 2, offset: 0, target: MemArgTarget::Memory(0), ordering: None }
    }

    #[test]
    fn mnemonics_follow_the_text_format() {
        assert_eq!(mnemonic(&Operator::F64Mul), "f64.mul");
        assert_eq!(mnemonic(&Operator::I32TruncSatF64U), "i32.trunc_sat_f64_u");
        assert_eq!(mnemonic(&Operator::MemoryGrow { mem: 0 }), "memory.grow");
        assert_eq!(mnemonic(&Operator::CallIndirect { type_index: 0, table_index: 0 }), "call_indirect");
        assert_eq!(mnemonic(&Operator::I32Load8U { memarg: memarg() }), "i32.load8_u");
        assert_eq!(mnemonic(&Operator::BrIf { relative_depth: 0 }), "br_if");
    }

    #[test]
    fn float_instructions_are_recognised_by_name() {
        let floats = [
            Operator::F32Const { value: Ieee32::from(1.5f32) },
            Operator::F32Load { memarg: memarg() },
            Operator::F64Store { memarg: memarg() },
            Operator::I32TruncF32S,
            Operator::I64TruncSatF64U,
            Operator::F64ConvertI32U,
            Operator::F32DemoteF64,
            Operator::I32ReinterpretF32,
            Operator::F64ReinterpretI64,
            Operator::F32x4Add,
            Operator::I32x4TruncSatF32x4S,
            Operator::TypedSelect { ty: ValType::F64 },
            Operator::Block { blockty: BlockType::Type(ValType::F32) },
        ];
        for op in &floats {
            assert!(float_use(op).is_some(), "{op:?} is floating point");
        }
        let integers = [
            Operator::I32Add,
            Operator::I64ExtendI32S,
            Operator::I32WrapI64,
            Operator::Select,
            Operator::TypedSelect { ty: ValType::I32 },
            Operator::Block { blockty: BlockType::Type(ValType::I64) },
            Operator::LocalGet { local_index: 0 },
        ];
        for op in &integers {
            assert_eq!(float_use(op), None, "{op:?} is not floating point");
        }
        assert_eq!(
            float_use(&Operator::Block { blockty: BlockType::Type(ValType::F64) }).as_deref(),
            Some("block (result f64)")
        );
    }
}
