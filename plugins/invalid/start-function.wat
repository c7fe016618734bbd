;; expect-violation: start-function
;;
;; Negative fixture: a module with a start function, which the engine runs while it
;; instantiates the module, before the host has called init() and outside its error handling.
;; C cannot ask for one (clang and wasm-ld never emit a start section, and C++ static
;; constructors run from the exports instead), so this fixture is written in the WebAssembly
;; text format. Everything else about it follows the ABI, including the version section that
;; wasm_plugin.h would have added.
(module
  (memory (export "memory") 2)
  (global $initialized (mut i32) (i32.const 0))
  (func $initialize_early
    (global.set $initialized (i32.const 1)))
  (start $initialize_early)
  (func (export "init") (result i32)
    (i32.const 0))
  (func (export "process") (param $input i32) (result i32)
    (local.get $input))
  (func (export "cleanup") (result i32)
    (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))
