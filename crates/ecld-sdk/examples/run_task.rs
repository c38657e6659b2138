//! Runs the `stats` example image over a private text on a stack started with `ecld up`,
//! step by step, and prints the verified, decrypted result.
//!
//! ```sh
//! ecld up &                                   # in another terminal
//! cargo run -p ecld-sdk --example run_task -- testdata/demo/private-notes.txt
//! ```

use std::time::Duration;

use ecld_sdk::{Client, ClientConfig, TaskRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "testdata/demo/private-notes.txt".into());
    let input = std::fs::read(&path)?;

    // Finds the stack through ECLD_CONFIG, ./.ecld/client.toml or ~/.local/share/ecld.
    let client = Client::connect(&ClientConfig::discover(None)?).await?;
    let image = client.resolve_image("stats").await?;
    if image.allows_sim() {
        eprintln!(
            "note: image {} allows the simulated TEE (INSECURE, development only)",
            image.name
        );
    }

    // Steps 1-2: encrypt to the image's enclave key, upload, permit + submit in one transaction.
    let submitted = client.submit(&TaskRequest::new(image.id, input)).await?;
    eprintln!("task {} submitted (input {})", submitted.task, submitted.input_cid);

    // Steps 3-8 happen on the node; wait for the proof on chain.
    let info = client.wait(submitted.task, Duration::from_secs(60)).await?;
    eprintln!("task {}: {}", info.id, info.state);

    // Step 9: verify the proof against the registry's enclave signer, then decrypt.
    let fetched = client.fetch(submitted.task).await?;
    eprintln!("proof verified: signed by {}; status {}", fetched.verified.signer, fetched.status);
    if let Some(output) = fetched.output {
        println!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}
