//! `completion bash|zsh|fish`: a completion script for the plugin binary.

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, ShellArg};
use crate::commands::Ctx;
use crate::output;

pub(crate) fn exec(ctx: &Ctx, shell: ShellArg) -> Result<u8> {
    let bin = format!("docker-{}", ctx.invocation.name);
    let mut cmd = Cli::command();
    let script = match shell {
        ShellArg::Zsh => generate(Shell::Zsh, &mut cmd, &bin),
        ShellArg::Fish => generate(Shell::Fish, &mut cmd, &bin),
        ShellArg::Bash => {
            // clap_complete spells a hyphenated name two ways in its bash
            // script, and subcommand options never complete (clap-rs/clap#6421):
            // make it for a name without hyphens, then register it for ours.
            let plain = bin.replace('-', "_");
            generate(Shell::Bash, &mut cmd, &plain)
                .lines()
                .map(|line| match line.strip_suffix(&format!(" {plain}")) {
                    Some(head) if line.trim_start().starts_with("complete ") => {
                        format!("{head} {bin}\n")
                    }
                    _ => format!("{line}\n"),
                })
                .collect()
        }
    };
    output::text(&script);
    Ok(0)
}

fn generate(shell: Shell, cmd: &mut clap::Command, bin: &str) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, cmd, bin, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
