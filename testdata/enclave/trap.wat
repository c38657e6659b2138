;; Traps at once (an `unreachable`, as a Rust panic or abort ends).
(module
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
