//! The `ecld` command line.

fn main() {
    println!("ecld");
}
