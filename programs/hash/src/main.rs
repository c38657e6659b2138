//! sha256 and keccak256 of stdin, streamed, as JSON on stdout.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};
use sha3::Keccak256;

fn main() {
    let mut sha256 = Sha256::new();
    let mut keccak = Keccak256::new();
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                sha256.update(&buf[..n]);
                keccak.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("hash: cannot read the input: {e}");
                std::process::exit(2);
            }
        }
    }
    let out = format!(
        "{{\"length\":{len},\"sha256\":\"{}\",\"keccak256\":\"0x{}\"}}\n",
        hex::encode(sha256.finalize()),
        hex::encode(keccak.finalize())
    );
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        std::process::exit(3);
    }
}
