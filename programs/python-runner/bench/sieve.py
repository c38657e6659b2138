# CPU-bound benchmark script (ecld-runner-bench): counts the primes up to N (read from stdin)
# with a sieve of Eratosthenes written as plain Python loops, so the interpreter does the
# work. Runs unchanged in the Python runner and under native CPython.
import sys

n = int(sys.stdin.read())
flags = [True] * (n + 1)
flags[0] = flags[1] = False
i = 2
while i * i <= n:
    if flags[i]:
        for j in range(i * i, n + 1, i):
            flags[j] = False
    i += 1
count = 0
for f in flags:
    if f:
        count += 1
print(count)
