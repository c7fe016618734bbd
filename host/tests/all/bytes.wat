;; `bytes`, ABI v2: `fn_echo` copies its input, `fn_flip` flips the top bit of every byte (so
;; text in gives bytes that are not UTF-8 out); buffers of 4096 bytes. Shared by the host's
;; tests (host/tests/all/functions.rs) and the request fuzz target (fuzz/src/request.rs).
(module
  (memory (export "memory") 1)
  (func (export "init") (result i32) (i32.const 0))
  (func (export "cleanup") (result i32) (i32.const 0))
  (func (export "plugin_input_ptr") (result i32) (i32.const 1024))
  (func (export "plugin_input_capacity") (result i32) (i32.const 4096))
  (func (export "plugin_output_ptr") (result i32) (i32.const 8192))
  (func (export "plugin_output_capacity") (result i32) (i32.const 4096))
  (func $map (param $len i32) (param $mask i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (i32.const 8192) (local.get $i))
        (i32.xor (i32.load8_u (i32.add (i32.const 1024) (local.get $i))) (local.get $mask)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $len))
  (func (export "fn_echo") (param $len i32) (result i32) (call $map (local.get $len) (i32.const 0)))
  (func (export "fn_flip") (param $len i32) (result i32) (call $map (local.get $len) (i32.const 128)))
  (@custom "wasm_plugin_abi" "\02\00\00\00"))
