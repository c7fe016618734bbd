//! Evaluates a function body without running it, when it can only ever return one value: how
//! the checker reads the four v2 buffer functions (`plugin_input_ptr` and friends).

use wasmparser::{FunctionBody, Operator};

use super::module::to_usize;
use super::operators;

/// Why a body is not a constant: the first instruction the evaluator does not follow, and
/// where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotConstant {
    /// The instruction in WebAssembly text syntax, such as `global.get` or `i32.load`.
    pub op: String,
    pub offset: usize,
}

/// The most locals a body may declare to be evaluated. clang's bodies for
/// `return (int)buf;` declare none (-O2, -Oz) or one (-O0); the bound only keeps a hostile
/// declaration of millions of locals from costing memory here.
const MAX_LOCALS: u32 = 16;

/// The `i32` a body of type `[] -> [i32]` always returns, if it is a straight line of
/// constants.
///
/// What is followed: `i32.const`, `local.get`/`local.set`/`local.tee` (declared locals start
/// at zero, and a `[] -> [i32]` function has no parameters), `i32.add`, `i32.sub`, `nop`,
/// `return` and the final `end`. That covers what clang 19 emits for `return (int)buf;` and
/// `return sizeof buf;` at every optimisation level: `i32.const N` at -O1 and above, and
/// `i32.const N; local.set 0; local.get 0; return` at -O0. Anything else (a global, a load, a
/// call, a branch) could make the value depend on run time, so the body is not a constant:
/// refusing it is the simple and safe answer, because the host then knows every buffer's place
/// before the plugin runs.
pub(crate) fn evaluate(body: &FunctionBody<'_>) -> Result<i32, NotConstant> {
    let not_constant = |op: &Operator<'_>, offset: usize| NotConstant { op: operators::mnemonic(op), offset };
    let start = to_usize(body.range().start);
    let unreadable = NotConstant { op: "unreadable code".into(), offset: start };
    let mut local_count: u32 = 0;
    let mut locals_reader = body.get_locals_reader().map_err(|_| unreadable.clone())?;
    for _ in 0..locals_reader.get_count() {
        let (count, _) = locals_reader.read().map_err(|_| unreadable.clone())?;
        local_count = local_count.saturating_add(count);
    }
    if local_count > MAX_LOCALS {
        return Err(NotConstant { op: format!("{local_count} local variables"), offset: start });
    }
    let mut locals = vec![0i32; to_usize(u64::from(local_count))];
    let mut stack: Vec<i32> = Vec::new();
    let mut reader = body.get_operators_reader().map_err(|_| unreadable.clone())?;
    while !reader.eof() {
        let (op, offset) = reader.read_with_offset().map_err(|_| unreadable.clone())?;
        let offset = to_usize(offset);
        let local = |index: u32| usize::try_from(index).ok().filter(|&i| i < locals.len());
        match op {
            Operator::I32Const { value } => stack.push(value),
            Operator::LocalGet { local_index } => match local(local_index) {
                Some(i) => stack.push(locals[i]),
                None => return Err(not_constant(&op, offset)),
            },
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                let (Some(i), Some(&value)) = (local(local_index), stack.last()) else {
                    return Err(not_constant(&op, offset));
                };
                locals[i] = value;
                if matches!(op, Operator::LocalSet { .. }) {
                    stack.pop();
                }
            }
            Operator::I32Add | Operator::I32Sub => {
                let (Some(right), Some(left)) = (stack.pop(), stack.pop()) else {
                    return Err(not_constant(&op, offset));
                };
                stack.push(if matches!(op, Operator::I32Add) {
                    left.wrapping_add(right)
                } else {
                    left.wrapping_sub(right)
                });
            }
            Operator::Nop => {}
            // The function's own `end` is its last instruction; any other `end` closes a block,
            // which the evaluator refuses when the block opens.
            Operator::Return | Operator::End => {
                return match stack.as_slice() {
                    [.., value] => Ok(*value),
                    [] => Err(not_constant(&op, offset)),
                };
            }
            _ => return Err(not_constant(&op, offset)),
        }
    }
    Err(unreadable)
}

#[cfg(test)]
mod tests {
    use wasmparser::{Parser, Payload};

    use super::*;

    /// The result of evaluating the only function of a module holding `body`.
    fn eval(locals: &str, body: &str) -> Result<i32, String> {
        let wasm =
            wat::parse_str(format!("(module (global $g i32 (i32.const 7)) (func (result i32) {locals} {body}))"))
                .expect("test WAT parses");
        for payload in Parser::new(0).parse_all(&wasm) {
            if let Payload::CodeSectionEntry(body) = payload.expect("test module parses") {
                return evaluate(&body).map_err(|not| not.op);
            }
        }
        panic!("no function body");
    }

    #[test]
    fn what_clang_emits_is_constant() {
        // -O1 and above.
        assert_eq!(eval("", "(i32.const 1024)"), Ok(1024));
        // -O0: through a local, with an explicit return.
        assert_eq!(eval("(local i32)", "(local.set 0 (i32.const 66560)) (local.get 0) (return)"), Ok(66560));
        assert_eq!(eval("(local i32)", "(local.tee 0 (i32.const 5)) (drop) (local.get 0)"), Err("drop".into()));
        assert_eq!(eval("", "(i32.add (i32.const 1024) (i32.const 16)) (nop)"), Ok(1040));
        assert_eq!(eval("", "(i32.sub (i32.const 0) (i32.const 1))"), Ok(-1));
        // A local that is never set is zero.
        assert_eq!(eval("(local i32 i32)", "(local.get 1)"), Ok(0));
    }

    #[test]
    fn anything_that_could_vary_is_not() {
        assert_eq!(eval("", "(global.get $g)"), Err("global.get".into()));
        assert_eq!(eval("", "(i32.load (i32.const 0))"), Err("i32.load".into()));
        assert_eq!(eval("", "(block (result i32) (i32.const 1))"), Err("block".into()));
        assert_eq!(eval("", "(memory.size)"), Err("memory.size".into()));
        assert_eq!(eval("(local i32)", "(i32.mul (i32.const 2) (i32.const 3))"), Err("i32.mul".into()));
        assert_eq!(
            eval("(local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)", "(i32.const 1)"),
            Err("17 local variables".into())
        );
    }
}
