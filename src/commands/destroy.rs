//! `destroy [--keep-worktree] [--force]`: release the worktree's slot, then
//! remove the worktree (never the main checkout; the branch stays).

use anyhow::Result;

use crate::claim;
use crate::commands::Ctx;
use crate::commands::release::stop_and_remove;
use crate::error::fail;
use crate::{output, worktree};

pub(crate) fn exec(ctx: &Ctx, keep_worktree: bool, force: bool) -> Result<u8> {
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
    if let Some(slot) = store.read()?.claim_of(&here) {
        let engine = ctx.engine();
        engine.ping()?;
        let removed = stop_and_remove(ctx, &pool, &engine, slot, &here)?;
        claim::finish_release(&store, slot, &here)?;
        output::line(&format!(
            "Released slot {slot}: removed {} container(s), {} volume(s), {} network(s)",
            removed.containers, removed.volumes, removed.networks
        ));
    }
    if keep_worktree {
        output::line(&format!("Kept worktree `{}`", here.display()));
        return Ok(0);
    }
    worktree::remove(&main, &here, force)?;
    output::line(&format!(
        "Removed worktree `{}` (its branch is kept)",
        here.display()
    ));
    Ok(0)
}
