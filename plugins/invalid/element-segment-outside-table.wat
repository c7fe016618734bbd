;; expect-violation: element-segment-outside-table
;;
;; Negative fixture: a function table of 2 entries and an element segment writing 3 entries
;; from index 1. Instantiation would fail on every call, like a data segment outside memory;
;; wasm-ld sizes the table to fit, so the fixture is written in the WebAssembly text format.
(module
  (memory (export "memory") 2)
  (table 2 funcref)
  (elem (i32.const 1) $one $one $one)
  (func $one (result i32) (i32.const 1))
  (func (export "init") (result i32) (i32.const 0))
  (func (export "process") (param $input i32) (result i32) (local.get $input))
  (func (export "cleanup") (result i32) (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))
