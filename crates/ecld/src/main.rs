//! The `ecld` command line: every service and every user command in one binary.
//!
//! This file stays thin: parse the arguments, start logging, hand over to [`cmd::run`].
//! Each command group lives in its own module under `cmd/`.

mod cmd;
mod output;
mod web;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Confidential compute on other people's machines, with proofs on chain.
#[derive(Debug, Parser)]
#[command(
    name = "ecld",
    version,
    about = "Confidential compute marketplace: encrypt inputs, run them in a TEE, verify proofs.",
    long_about = None,
    after_help = "\
Examples:
  ecld up                              start the local stack (chain, store, CAS, a node)
  ecld task run stats --input notes.txt    in another shell: the whole data flow, verified
  ecld image list                      what can run; ecld offers list: at which price
  ecld image publish --name mine --module my.wasm --allow-sim   your own program on `ecld up`
  ecld keys new --out ~/.ecld          create your age identity and Ethereum key
  ecld deposit 5000                    tasks pay their escrow from a deposit: no permit each
  ecld balance                         your tokens: wallet and deposit
  ecld encrypt --to age1... input.bin -o input.age
  ecld decrypt -i ~/.ecld/identity.age-key result.age
  ecld <command> --help               every command explains itself with examples

Logs go to stderr (-v, -vv, or RUST_LOG=ecld=debug); results go to stdout. With --json,
results are JSON on stdout, and so is an error: {\"error\":{\"message\",\"exit_code\",\"exit_class\"}}.
Exit codes: 0 success, 1 an error (or the program failed), 2 bad usage or input,
3 the system failed (price refunded), 4 a proof or result failed verification."
)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of text, where the output is data.
    #[arg(long, global = true)]
    json: bool,

    /// More log output on stderr: -v info, -vv debug, -vvv trace. RUST_LOG overrides this.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: cmd::Command,
}

#[tokio::main]
async fn main() -> ExitCode {
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if json && err.use_stderr() => {
            let message = err.render().to_string();
            print_json_error(message.trim_start_matches("error: ").trim_end(), 2, "usage");
            let _ = err.print();
            return ExitCode::from(2);
        }
        Err(err) => err.exit(),
    };
    init_tracing(cli.verbose);
    output::set_json(cli.json);
    match cmd::run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(exit) = err.downcast_ref::<cmd::Exit>() {
                return ExitCode::from(exit.code);
            }
            let (code, class) = cmd::exit_code(&err);
            if cli.json {
                print_json_error(&format!("{err:#}"), code, class);
            }
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

/// The JSON shape of an error on stdout, for scripts that read `--json` output.
fn print_json_error(message: &str, code: u8, class: &str) {
    let value = serde_json::json!({
        "error": { "message": message, "exit_code": code, "exit_class": class }
    });
    println!("{value}");
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Regression: `image publish --version` clashed with a propagated `--version` flag and
    /// clap panicked on start-up of that subcommand. clap's own check covers every command.
    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
