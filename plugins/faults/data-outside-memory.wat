;; expect-violation: data-segment-outside-memory
;;
;; Fault plugin: a valid module whose active data segment runs 16 bytes past the end of its
;; 2-page memory, so instantiation fails before anything runs. The ABI check refuses it
;; (`data-segment-outside-memory`); before that rule existed it passed the check, and the host
;; answered `500 internal_error`, blaming itself. With the check off, the host must report a
;; plugin fault, `plugin_instantiation_failed`. Everything else follows the ABI.
;;
;;   (instantiation fails: nothing is called)
;;   init()      would return 0
;;   process(n)  would return n
(module
  (memory (export "memory") 2)
  (data (i32.const 0x1fff0) "0123456789abcdef0123456789abcdef")
  (func (export "init") (result i32) (i32.const 0))
  (func (export "process") (param $input i32) (result i32) (local.get $input))
  (func (export "cleanup") (result i32) (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))
