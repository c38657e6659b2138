//! Counts the primes below N (decimal on stdin), as JSON on stdout.

mod kernel;

use std::io::Read;

fn main() {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("primes: the input is not text");
        std::process::exit(2);
    }
    let Ok(n) = input.trim().parse::<u32>() else {
        eprintln!("primes: expected a decimal number below 2^32, got {:?}", input.trim());
        std::process::exit(2);
    };
    println!("{{\"below\":{n},\"primes\":{}}}", kernel::count_primes(n));
}
