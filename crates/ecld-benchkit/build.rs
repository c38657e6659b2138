//! Records the version of the rustc that builds the benches, for their machine line.

fn main() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown rustc".to_owned(), |v| v.trim().to_owned());
    println!("cargo:rustc-env=ECLD_BENCHKIT_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
