;; expect-violation: function-type-too-large
;;
;; Negative fixture: a helper returning 17 values, one more than the ABI allows. clang returns
;; one value unless built for the experimental multi-value ABI, so the fixture is written in
;; the WebAssembly text format. WasmEdge's AOT compiler returns many results through memory and
;; its cost grows with them (0.3 s for one function with 1000 results, measured).
(module
  (memory (export "memory") 2)
  (func $many (result i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (i32.const 0) (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4) (i32.const 5) (i32.const 6) (i32.const 7) (i32.const 8) (i32.const 9) (i32.const 10) (i32.const 11) (i32.const 12) (i32.const 13) (i32.const 14) (i32.const 15) (i32.const 16))
  (func (export "init") (result i32) (i32.const 0))
  (func (export "process") (param $input i32) (result i32)
    (call $many)
    (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop))
  (func (export "cleanup") (result i32) (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))
