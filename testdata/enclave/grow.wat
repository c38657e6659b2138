;; Grows memory one page at a time until refused, then traps (as an allocator that cannot
;; get memory aborts).
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))
