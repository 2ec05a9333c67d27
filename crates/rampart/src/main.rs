//! The `rampart` binary: parses the command line and configuration, then hands over to a
//! command or to the server. Wiring only; behaviour lives in the library crates.
#![forbid(unsafe_code)]

mod access_log;
mod agent_mode;
mod cli;
mod cluster;
mod commands;
mod config;
mod descriptors;
mod detectors;
mod forwarder;
mod login;
mod output;
mod recording_store;
mod report;
mod seals;
mod serve;

use clap::Parser;
use cli::{Cli, Command};
use config::{Config, Overrides};
use std::process::ExitCode;

fn main() -> ExitCode {
    forbid_core_dumps();
    quiet_on_closed_pipe();
    let json = std::env::args_os().any(|arg| arg == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if json && err.use_stderr() => {
            return fail_json(&err.render().to_string(), ExitCode::from(2));
        }
        Err(err) => err.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`rampart replay ID | head`): nothing to report.
        Err(err) if is_closed_pipe(&err) => ExitCode::from(CLOSED_PIPE),
        Err(err) if json => fail_json(&format!("{err:#}"), ExitCode::FAILURE),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a process whose output pipe closed (128 + SIGPIPE), as the shell reports
/// for `cat` or `ls` cut short by `head`.
const CLOSED_PIPE: u8 = 141;

/// With `--json`, an error is a JSON object on standard error: `{"error": "..."}`.
fn fail_json(message: &str, code: ExitCode) -> ExitCode {
    let message = message.trim_end().trim_start_matches("error: ");
    eprintln!("{}", serde_json::json!({ "error": message }));
    code
}

fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` panics when standard output is a closed pipe (`rampart session list | head`);
/// that is no error of ours: exit quietly, as tools killed by SIGPIPE do. Listing commands
/// print after their work is done, so nothing is left half-made. Every other panic is reported
/// as before.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout") && payload.contains("Broken pipe") {
            std::process::exit(i32::from(CLOSED_PIPE));
        }
        default(info);
    }));
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
    // Needs no configuration: it only prints the command tree for a shell.
    if let Command::Completion { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "rampart", &mut script);
        std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
        return Ok(());
    }
    // A client of a Rampart server: no data directory, no configuration file.
    if let Command::Login(args) = &cli.command {
        return login::run(args);
    }
    // Agent mode runs in a remote network: no data directory, no configuration file.
    if let Command::Agent(cli::AgentArgs { command: None, run }) = cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        return runtime.block_on(agent_mode::run(run));
    }
    // Break-glass kits open with the kit file and the custodians' keys alone: no configuration,
    // no data directory (Rampart may be down or gone).
    if let Command::Breakglass(command) = &cli.command
        && command.is_offline()
    {
        return commands::breakglass::run_offline(cli.global.json, &cli.command);
    }
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
