//! The `rampart` binary: parses the command line and configuration, then hands over to a
//! command or to the server. Wiring only; behaviour lives in the library crates.
#![forbid(unsafe_code)]

mod access_log;
mod cli;
mod commands;
mod config;
mod descriptors;
mod forwarder;
mod output;
mod seals;
mod serve;

use clap::Parser;
use cli::{Cli, Command};
use config::{Config, Overrides};
use std::process::ExitCode;

fn main() -> ExitCode {
    forbid_core_dumps();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Secrets pass through this process's memory: a core dump would write them to disk. Failure is
/// not fatal (some sandboxes forbid it), so it is only reported.
fn forbid_core_dumps() {
    use nix::sys::resource::{Resource, setrlimit};
    if let Err(err) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        eprintln!("warning: cannot disable core dumps: {err}");
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        config_file: cli.global.config.clone(),
        data_dir: cli.global.data_dir.clone(),
        master_key_file: cli.global.master_key_file.clone(),
        ..Overrides::default()
    };
    if let Command::Serve(args) = &cli.command {
        overrides.ssh_listen = args.ssh_listen.clone();
        overrides.http_listen = args.http_listen.clone();
        overrides.log_level = args.log_level.clone();
    }
    // Everything is validated here, before any file is opened or socket bound.
    let config = Config::load(overrides)?;
    match cli.command {
        Command::Serve(_) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve::run(config))
        }
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(commands::run(&config, cli.global.json, command))
        }
    }
}
