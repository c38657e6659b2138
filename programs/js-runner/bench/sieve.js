// CPU-bound benchmark script (ecld-runner-bench): counts the primes up to N (the input) with a
// sieve of Eratosthenes written as plain loops. Runs unchanged in the JavaScript runner
// (input in INPUT) and under Node.js (input on stdin).
const text = typeof INPUT === 'string' ? INPUT : require('fs').readFileSync(0, 'utf8');
const n = Number(text.trim());
const flags = new Array(n + 1).fill(true);
flags[0] = flags[1] = false;
for (let i = 2; i * i <= n; i++) {
  if (flags[i]) {
    for (let j = i * i; j <= n; j += i) {
      flags[j] = false;
    }
  }
}
let count = 0;
for (const f of flags) {
  if (f) count++;
}
console.log(String(count));
