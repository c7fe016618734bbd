;; expect-violation: missing-memory-export
;; An ABI v2 plugin whose memory is not exported, which C cannot build (wasm-ld exports it):
;; the host would have nowhere to write the input.
(module
  (@custom "wasm_plugin_abi" "\02\00\00\00")
  (memory 1)
  (func (export "init") (result i32) (i32.const 0))
  (func (export "cleanup") (result i32) (i32.const 0))
  (func (export "plugin_input_ptr") (result i32) (i32.const 1024))
  (func (export "plugin_input_capacity") (result i32) (i32.const 1024))
  (func (export "plugin_output_ptr") (result i32) (i32.const 2048))
  (func (export "plugin_output_capacity") (result i32) (i32.const 1024))
  (func (export "fn_echo") (param i32) (result i32) (local.get 0)))
