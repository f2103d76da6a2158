//! `init [--slot N] [--profile P]`: an existing clone or worktree claims a slot.

use anyhow::Result;

use crate::claim::Want;
use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::claim_cmd::claim_and_report;
use crate::error::{UserError, with_code};
use crate::pool::Profile;

pub(crate) const ALREADY: u8 = 1;
pub(crate) const NOT_A_REPO: u8 = 2;

pub(crate) fn exec(
    ctx: &Ctx,
    slot: Option<u32>,
    profile: Option<Profile>,
    format: Format,
) -> Result<u8> {
    let worktree = ctx.worktree().map_err(|e| with_code(e, NOT_A_REPO))?;
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    if let Some(id) = store.read()?.claim_of(&worktree) {
        return Err(UserError::new(
            ALREADY,
            format!(
                "`{}` is already initialised: it holds slot {id}",
                worktree.display()
            ),
        )
        .hint(format!(
            "`{} status` shows it; `{} release` frees it",
            ctx.cmd_name(),
            ctx.cmd_name()
        ))
        .into());
    }
    claim_and_report(ctx, &pool, &worktree, Want { profile, slot }, None, format)?;
    Ok(0)
}
