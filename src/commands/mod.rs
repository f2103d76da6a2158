//! One file per subcommand. Each turns its clap args into plain values and calls
//! the domain modules; this file holds what they share.

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::{self, Environment, Pool};
use crate::plugin::Invocation;
use crate::registry::Store;

mod provision;
mod slots;

/// What every command may need, loaded only when asked for.
pub(crate) struct Ctx {
    #[allow(dead_code)] // the docker globals are passed on by the lifecycle commands
    pub(crate) invocation: Invocation,
    pub(crate) env: Environment,
}

impl Ctx {
    pub(crate) fn pool(&self) -> Result<Pool> {
        config::load(&self.env)
    }

    pub(crate) fn store(&self, pool: &Pool) -> Store {
        Store::new(pool, self.env.home.as_deref())
    }
}

/// Runs the parsed command; returns its exit code.
pub(crate) fn dispatch(cli: Cli, invocation: Invocation) -> Result<u8> {
    let ctx = Ctx {
        invocation,
        env: Environment::from_process()?,
    };
    match cli.command {
        Command::Provision(args) => provision::exec(&ctx, args.dry_run),
        Command::Slots(args) => slots::exec(&ctx, args.format),
    }
}
