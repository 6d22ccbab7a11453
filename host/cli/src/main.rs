//! The `cairn` binary: parses arguments, sets up logging and signals, runs one command, and maps
//! the outcome to restic's exit codes (0 ok, 1 fatal, 3 incomplete snapshot, 10 no repository,
//! 11 locked, 12 wrong password, 130 interrupted).

mod args;
mod commands;
mod env_vars;
mod help;
mod marker;
mod output;
mod plugins;
mod progress;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::args::Cli;
use crate::env_vars::EnvVars;
use crate::settings::Ctx;

/// A command's successful outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All done.
    Ok,
    /// A snapshot was saved but some entries could not be read.
    Incomplete,
}

fn exit_code(err: &anyhow::Error) -> u8 {
    // A closed pipe (`cairn ls … | head`) is not a failure.
    if err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return 0;
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<cairn_repo::Error>() {
            use cairn_repo::ErrorKind as K;
            return match e.kind() {
                K::RepositoryNotFound => 10,
                K::Locked => 11,
                K::WrongPassword => 12,
                K::Interrupted => 130,
                _ => 1,
            };
        }
    }
    1
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_env(EnvVars::RUST_LOG).unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    // A usage error exits 1, as restic's (clap's own would be 2); help and version 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::from(e.use_stderr()));
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once; the first asks the command to stop cleanly.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.clone());
        let _ = signal_hook::flag::register(sig, cancel.clone());
    }
    let result = Ctx::new(cli.global, cancel).and_then(|ctx| commands::run(&ctx, cli.command));
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Incomplete) => ExitCode::from(3),
        Err(err) => {
            let code = exit_code(&err);
            if code != 0 {
                use std::io::Write;
                let _ = writeln!(std::io::stderr().lock(), "error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
