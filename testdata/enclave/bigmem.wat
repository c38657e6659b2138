;; Declares 64 MiB of initial memory (1024 pages), more than small limits allow.
(module
  (memory (export "memory") 1024)
  (func (export "_start")))
