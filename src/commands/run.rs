//! `run -- CMD...`: a command with the worktree's slot environment; its exit
//! code passes through.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;

use anyhow::Result;

use crate::commands::env::variables;
use crate::commands::{Ctx, held};
use crate::error::UserError;

pub(crate) fn exec(ctx: &Ctx, command: &[OsString]) -> Result<u8> {
    let held = held(ctx)?;
    let vars = variables(&held)?;
    let (program, args) = command.split_first().expect("clap requires a command");
    let status = std::process::Command::new(program)
        .args(args)
        .envs(vars)
        .status();
    match status {
        Ok(s) => Ok(match (s.code(), s.signal()) {
            (Some(c), _) => c.clamp(0, 255) as u8,
            (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
            (None, None) => 1,
        }),
        Err(e) => Err(UserError::new(
            127,
            format!("cannot run `{}`: {e}", program.to_string_lossy()),
        )
        .hint("check the command's name and that it is on PATH")
        .into()),
    }
}
