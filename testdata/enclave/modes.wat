;; One module, many behaviours, chosen by the first byte of stdin, so that one warm enclave
;; can be driven through every failure and back to success:
;;   e… echo the rest   x exit 3 (with stderr)   t trap   l loop forever
;;   m grow memory until refused, then trap      o write to stdout forever
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 8192) "bad input")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start")
    (local $n i32) (local $mode i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (if (i32.eqz (local.get $n)) (then return))
    (local.set $mode (i32.load8_u (i32.const 64)))
    (if (i32.eq (local.get $mode) (i32.const 120))
      (then
        (call $write (i32.const 2) (i32.const 8192) (i32.const 9))
        (call $proc_exit (i32.const 3))))
    (if (i32.eq (local.get $mode) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $mode) (i32.const 108)) (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $mode) (i32.const 109))
      (then
        (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable))
    (if (i32.eq (local.get $mode) (i32.const 111))
      (then (loop $flood (call $write (i32.const 1) (i32.const 64) (i32.const 4096)) (br $flood))))
    (call $write (i32.const 1) (i32.const 65) (i32.sub (local.get $n) (i32.const 1)))))
