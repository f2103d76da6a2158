//! `docker sandbox`: a Docker CLI plugin that keeps a pool of slots, each an
//! isolated copy of one Compose stack, and hands them to git worktrees.
//!
//! `run` is the whole program: plugin shim, clap, dispatch, exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod after_up;
mod claim;
mod cli;
mod commands;
mod complete;
mod compose;
mod engine;
mod envfile;
mod error;
mod fsutil;
mod gate;
mod http;
mod interrupt;
mod model;
mod output;
mod owner;
mod plugin;
mod pool;
mod registry;
mod slot;
mod template;
mod worktree;

/// Runs the plugin with the process's argv and returns its exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let inv = plugin::parse_argv(args);
    match inv.request {
        plugin::Request::Run => {}
        plugin::Request::Metadata => {
            output::line(&plugin::metadata_json());
            return ExitCode::SUCCESS;
        }
        plugin::Request::Complete { descriptions } => {
            let mut words: Vec<String> = inv.args[1..]
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect();
            let current = words.pop().unwrap_or_default();
            output::text(&complete::answer(
                cli::Cli::command(),
                &words,
                &current,
                descriptions,
                &commands::slot_candidates,
            ));
            return ExitCode::SUCCESS;
        }
    }
    // Only for commands: the metadata and completion answers stay instant.
    if let Some(socket) = plugin::connect_to_docker() {
        interrupt::listen_to_docker(socket);
    }
    let bin_name = format!("docker {}", inv.name);
    let parsed = cli::Cli::command()
        .bin_name(bin_name)
        .try_get_matches_from(&inv.args)
        .and_then(|m| cli::Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            output::usage_error(&e, cli::asks_for_json(&inv.args));
            return ExitCode::from(error::code::USAGE);
        }
        // `--help` and `--version`.
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let as_json = cli.command.json();
    match fsutil::check_lock_timeout().and_then(|()| commands::dispatch(cli, inv)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if as_json {
                output::error_json(&err);
            } else {
                output::error(&err);
            }
            ExitCode::from(error::exit_code(&err))
        }
    }
}
