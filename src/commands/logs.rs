//! `logs [SERVICE] [-f] [--tail N]`: compose logs. SIGINT and SIGTERM (and
//! docker's, through its plugin socket) go on to compose, and its exit code
//! passes through.

use anyhow::{Context, Result};

use crate::commands::{Ctx, held};
use crate::compose;
use crate::interrupt::{self, PassOn};
use crate::output;

pub(crate) fn exec(
    ctx: &Ctx,
    service: Option<&str>,
    follow: bool,
    tail: Option<u32>,
) -> Result<u8> {
    let held = held(ctx)?;
    // Without an engine compose fails with its own words; ours say what to do.
    let route = ctx.route(&held.pool, held.record.engine.as_deref())?;
    route.engine.ping()?;
    let compose = &ctx.compose_on(&route)?;
    let tail = tail.map(|n| format!("--tail={n}"));
    let mut args = vec!["logs"];
    // Compose v1 colours its logs even into a pipe.
    if !output::color() {
        args.push("--no-color");
    }
    if follow {
        args.push("--follow");
    }
    args.extend(tail.as_deref());
    args.extend(service);
    let mut logs = compose.command(&held.project(), &args);
    let status = PassOn::start()?
        .run(&mut logs)
        .with_context(|| format!("failed to run `{}`", compose::display(&logs)))?;
    Ok(interrupt::exit_code(status))
}
