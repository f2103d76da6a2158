//! `down [--volumes]`: stop this worktree's stack; the claim stays.

use std::process::Stdio;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::Format;
use crate::commands::{Ctx, held, mark};
use crate::compose;
use crate::error::{fail, with_slot};
use crate::output;

/// `down --format json`.
#[derive(Serialize)]
struct DownJson {
    slot: u32,
    project: String,
    worktree: std::path::PathBuf,
    volumes_removed: bool,
}

pub(crate) fn exec(ctx: &Ctx, volumes: bool, format: Format) -> Result<u8> {
    let held = held(ctx)?;
    // Without an engine compose fails with its own words; ours say what to do.
    let route = ctx.route(&held.pool, held.record.engine.as_deref())?;
    route.engine.ping()?;
    let compose = &ctx.compose_on(&route)?;
    let _lock = held.store.slot_lock(&held.pool.slot_dir(held.slot()))?;
    let project = held.project();
    let mut args = vec!["down", "--remove-orphans"];
    if volumes {
        args.push("--volumes");
    }
    let mut down = compose.command(&project, &args);
    let status = down
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("failed to run `{}`", compose::display(&down)))?;
    if !status.success() {
        return Err(with_slot(
            fail(
                format!("`compose down` failed for slot {} ({status})", held.slot()),
                format!("the command was: {}", compose::display(&down)),
            ),
            held.slot(),
        ));
    }
    mark(&held.store, held.slot(), "stopped")?;
    if format == Format::Json {
        output::json(&DownJson {
            slot: held.slot(),
            project: project.name,
            worktree: held.worktree,
            volumes_removed: volumes,
        });
        return Ok(0);
    }
    let what = if volumes {
        " and removed its volumes"
    } else {
        ""
    };
    output::line(&format!(
        "Stopped slot {}{what}; this worktree still holds it (`{} release` frees it)",
        held.slot(),
        ctx.cmd_name()
    ));
    Ok(0)
}
