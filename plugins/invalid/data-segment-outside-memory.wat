;; expect-violation: data-segment-outside-memory
;;
;; Negative fixture: a data segment that starts inside the 2-page (128 KiB) memory and runs 16
;; bytes past its end. The engine copies active segments while it instantiates the module, so
;; every call would fail before init(); wasm-ld never lays data out like this, so the fixture is
;; written in the WebAssembly text format. Everything else follows the ABI.
(module
  (memory (export "memory") 2)
  (data (i32.const 0x1fff0) "0123456789abcdef0123456789abcdef")
  (func (export "init") (result i32) (i32.const 0))
  (func (export "process") (param $input i32) (result i32) (local.get $input))
  (func (export "cleanup") (result i32) (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))
