#!/usr/bin/env python3
"""Stops every thread of a process except its wall clock (`ecld-epoch`) for a while: what a
host that starves an enclave does (a tracer may stop single threads; signals stop whole
processes). Usage: starve.py PID SECONDS. Starts when a line arrives on stdin (so that it is
loaded before the moment it must act); prints the number of threads it stopped."""

import ctypes
import os
import sys
import time

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


def ptrace(request, tid):
    if libc.ptrace(request, tid, None, None) != 0:
        err = ctypes.get_errno()
        sys.exit(f"ptrace({request:#x}, {tid}) failed: {os.strerror(err)} "
                 "(the test needs ptrace permission over its own child processes)")


def main():
    pid, seconds = int(sys.argv[1]), float(sys.argv[2])
    sys.stdin.readline()
    stopped = []
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
            if f.read().strip() == "ecld-epoch":
                continue
        ptrace(PTRACE_SEIZE, tid)
        ptrace(PTRACE_INTERRUPT, tid)
        os.waitpid(tid, WALL)
        stopped.append(tid)
    time.sleep(seconds)
    for tid in stopped:
        ptrace(PTRACE_DETACH, tid)
    print(len(stopped))


if __name__ == "__main__":
    main()
