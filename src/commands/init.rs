//! `init [--slot N] [--profile P]`: an existing clone or worktree claims a slot.

use anyhow::Result;

use crate::claim::{self, Want};
use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::claim_cmd::{ClaimJson, print_claim};
use crate::config::Profile;
use crate::error::UserError;
use crate::output;

pub(crate) const ALREADY: u8 = 1;
pub(crate) const NOT_A_REPO: u8 = 2;

pub(crate) fn exec(
    ctx: &Ctx,
    slot: Option<u32>,
    profile: Option<Profile>,
    format: Format,
) -> Result<u8> {
    let worktree = ctx.worktree().map_err(|mut e| {
        if let Some(u) = e.downcast_mut::<UserError>() {
            u.code = NOT_A_REPO;
        }
        e
    })?;
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
    let engine = ctx.engine();
    engine.ping()?;
    let claimed = claim::claim(
        &pool,
        &store,
        &engine,
        &worktree,
        Want { profile, slot },
        &ctx.cmd_name(),
    )?;
    if format == Format::Json {
        output::json(&ClaimJson::new(&pool, &claimed, &worktree));
    } else {
        print_claim(&pool, &claimed, &worktree);
    }
    Ok(0)
}
