//! `completion bash|zsh|fish`: a completion script for the plugin binary.

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, ShellArg};
use crate::commands::Ctx;

pub(crate) fn exec(ctx: &Ctx, shell: ShellArg) -> Result<u8> {
    let shell = match shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let bin = format!("docker-{}", ctx.invocation.name);
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, bin, &mut std::io::stdout());
    Ok(0)
}
