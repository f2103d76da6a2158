//! `run -- CMD...`: a command with the worktree's slot environment. SIGINT
//! and SIGTERM (and docker's, through its plugin socket) go on to it, and its
//! exit code passes through, as with `cargo run`.

use std::ffi::OsString;

use anyhow::Result;

use crate::commands::env::variables;
use crate::commands::{Ctx, held};
use crate::error::UserError;
use crate::interrupt::{self, PassOn};
use crate::plugin;

pub(crate) fn exec(ctx: &Ctx, command: &[OsString]) -> Result<u8> {
    let held = held(ctx)?;
    let vars = variables(&held)?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let pass_on = PassOn::start()?;
    // We pass docker's word on as a signal: the child must not hear it twice.
    let status = pass_on.run(
        std::process::Command::new(program)
            .args(args)
            .envs(vars)
            .env_remove(plugin::SOCKET_VAR),
    );
    match status {
        Ok(s) => Ok(interrupt::exit_code(s)),
        Err(e) => Err(UserError::new(
            127,
            format!("cannot run `{}`: {e}", program.to_string_lossy()),
        )
        .hint("check the command's name and that it is on PATH")
        .into()),
    }
}
