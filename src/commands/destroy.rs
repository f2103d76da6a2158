//! `destroy [--keep-worktree] [--force]`: remove the worktree (never the main
//! checkout; the branch stays), then release its slot.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::release::release_slot;
use crate::engine::Removed;
use crate::error::fail;
use crate::{output, worktree};

/// `destroy --format json`.
#[derive(Serialize)]
struct DestroyJson {
    worktree: PathBuf,
    /// False with `--keep-worktree`.
    worktree_removed: bool,
    /// The slot released, `null` when the worktree held none.
    slot: Option<u32>,
    removed: Option<Removed>,
}

pub(crate) fn exec(ctx: &Ctx, keep_worktree: bool, force: bool, format: Format) -> Result<u8> {
    let text = format != Format::Json;
    let here = ctx.worktree()?;
    let main = worktree::main_checkout(&here)?;
    let cmd = ctx.cmd_name();
    if !keep_worktree && here == main {
        return Err(fail(
            format!(
                "`{}` is the main checkout: destroy removes linked worktrees only",
                here.display()
            ),
            format!("`{cmd} destroy --keep-worktree` releases its slot and keeps the folder"),
        ));
    }
    if !keep_worktree && !force {
        let changes = worktree::changes(&here)?;
        if !changes.is_empty() {
            return Err(fail(
                format!(
                    "`{}` has uncommitted changes ({} path(s), e.g. `{}`); nothing was changed",
                    here.display(),
                    changes.len(),
                    changes[0].trim()
                ),
                format!("commit or stash them, or run `{cmd} destroy --force` to discard them"),
            ));
        }
    }
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let slot = store.read()?.claim_of(&here);
    let engine = ctx.engine();
    if slot.is_some() {
        engine.ping()?;
    }
    // The worktree goes first: when git refuses (a locked worktree, a
    // submodule), nothing has been released yet.
    if !keep_worktree {
        worktree::remove(&main, &here, force)?;
        if text {
            output::line(&format!(
                "Removed worktree `{}` (its branch is kept)",
                here.display()
            ));
        }
    }
    let mut removed = None;
    if let Some(slot) = slot {
        let cleared = release_slot(ctx, &pool, &store, slot, &here)?;
        if text {
            output::line(&format!(
                "Released slot {slot}: removed {}",
                cleared.removed
            ));
        }
        if let Some(left) =
            crate::owner::describe_left_alone(&pool.project(slot), &cleared.left_alone)
        {
            output::note(&left);
        }
        removed = Some(cleared.removed);
    }
    if !text {
        output::json(&DestroyJson {
            worktree: here,
            worktree_removed: !keep_worktree,
            slot,
            removed,
        });
    } else if keep_worktree {
        output::line(&format!("Kept worktree `{}`", here.display()));
    }
    Ok(0)
}
