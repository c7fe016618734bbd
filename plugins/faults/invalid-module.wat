;; expect-violation: malformed
;;
;; Fault plugin: a module that is well-formed text and binary but fails WebAssembly validation:
;; `process` is declared to return an i32 but leaves an i64 on the stack. The ABI checker
;; reports every module wasmparser cannot validate as `malformed`; with the check off, WasmEdge's
;; own validator must refuse it when the host loads it, and the host must answer with a load
;; error instead of running it. Everything else follows the ABI, including the version section
;; wasm_plugin.h would add, so the type error is the only thing wrong.
;;
;;   (loading fails: nothing can be called)
;;   init()      would return 0
;;   process(n)  ill-typed: returns the i64 constant 42 where an i32 is due
;;   cleanup()   would return 0
;;
;; Written as text because clang never emits an ill-typed module. The `wat` crate that assembles
;; it checks syntax and resolves names, but does not type-check function bodies.
(module
  (memory (export "memory") 2)
  (func (export "init") (result i32)
    (i32.const 0))
  (func (export "process") (param $input i32) (result i32)
    (i64.const 42))
  (func (export "cleanup") (result i32)
    (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))
