/// Counts the primes below `n` with a sieve of Eratosthenes over odd numbers.
///
/// Shared verbatim with the enclave benchmark, which runs the same code natively.
pub fn count_primes(n: u32) -> u32 {
    if n <= 2 {
        return 0;
    }
    // Index i stands for the odd number 2i + 1.
    let len = (n / 2) as usize;
    let mut composite = vec![false; len];
    composite[0] = true; // 1 is not prime
    let mut i = 1usize;
    while (2 * i + 1) * (2 * i + 1) < n as usize {
        if !composite[i] {
            let p = 2 * i + 1;
            let mut j = p * p / 2;
            while j < len {
                composite[j] = true;
                j += p;
            }
        }
        i += 1;
    }
    1 + composite.iter().filter(|&&c| !c).count() as u32
}
