//! `release [SLOT] [--force]`: stop a slot, remove its containers and volumes,
//! free its claim, and remove the worktree's env file. What the slot's compose
//! project holds that this registry did not start is left alone and reported.

use anyhow::Result;

use serde::Serialize;

use crate::claim;
use crate::cli::Format;
use crate::commands::{Ctx, project};
use crate::engine::{Cleared, Removed};
use crate::output;
use crate::owner::{LeftAlone, describe_left_alone};

/// `release --format json`.
#[derive(Serialize)]
struct ReleaseJson {
    slot: Option<u32>,
    /// False when there was nothing to release.
    released: bool,
    claimed_by: Option<std::path::PathBuf>,
    removed: Option<Removed>,
    /// What the slot's project holds that is not this registry's.
    left_alone: Vec<LeftAlone>,
}

pub(crate) fn exec(ctx: &Ctx, slot: Option<u32>, force: bool, format: Format) -> Result<u8> {
    let nothing = |slot: Option<u32>, text: String| {
        if format == Format::Json {
            output::json(&ReleaseJson {
                slot,
                released: false,
                claimed_by: None,
                removed: None,
                left_alone: Vec::new(),
            });
        } else {
            output::line(&text);
        }
        Ok(0)
    };
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let cmd = ctx.cmd_name();
    let caller = match slot {
        None => Some(ctx.worktree()?),
        Some(_) => ctx.worktree().ok(),
    };
    let registry = store.read()?;
    let slot = match slot {
        Some(s) => s,
        None => {
            let wt = caller.as_deref().expect("a worktree when no slot is given");
            match registry.claim_of(wt) {
                Some(s) => s,
                None => {
                    let text = format!(
                        "This worktree holds no slot: nothing to release (`{}`)",
                        wt.display()
                    );
                    return nothing(None, text);
                }
            }
        }
    };
    let Some(holder) = claim::may_release(&registry, slot, caller.as_deref(), force, &cmd)? else {
        return nothing(
            Some(slot),
            format!("Slot {slot} is not claimed: nothing to release"),
        );
    };
    let on = registry.slots.get(&slot).and_then(|r| r.engine.clone());
    ctx.route(&pool, on.as_deref())?.engine.ping()?;
    let cleared = release_slot(ctx, &pool, &store, slot, &holder)?;
    if format == Format::Json {
        output::json(&ReleaseJson {
            slot: Some(slot),
            released: true,
            claimed_by: Some(holder),
            removed: Some(cleared.removed),
            left_alone: cleared.left_alone,
        });
        return Ok(0);
    }
    output::line(&format!(
        "Released slot {slot} (claimed by `{}`): removed {}",
        holder.display(),
        cleared.removed
    ));
    if let Some(text) = describe_left_alone(&pool.project(slot), &cleared.left_alone) {
        output::line(&text);
    }
    Ok(0)
}

/// Releases `slot`, claimed by `holder`, under the slot's lifecycle lock: its
/// stack down with its volumes, the claim freed, the holder's env file gone.
pub(crate) fn release_slot(
    ctx: &Ctx,
    pool: &crate::pool::Pool,
    store: &crate::registry::Store,
    slot: u32,
    holder: &std::path::Path,
) -> Result<Cleared> {
    let _lock = store.slot_lock(&pool.slot_dir(slot))?;
    let registry = store.read()?;
    let owner = claim::owner(pool, &registry, slot);
    let on = registry.slots.get(&slot).and_then(|r| r.engine.clone());
    let route = ctx.route(pool, on.as_deref())?;
    let cleared = stop_and_remove(ctx, pool, &route, slot, holder, &owner)?;
    claim::finish_release(store, slot, holder)?;
    // Unpinned, the slot takes the ports the pool gives now.
    crate::slot::ensure(pool, store, slot, crate::slot::Password::Keep)?;
    Ok(cleared)
}

/// `compose down -v --remove-orphans` where compose can still run the project
/// and all of it is this registry's (compose goes by the project's name
/// alone), then whatever else of ours carries the project's label.
fn stop_and_remove(
    ctx: &Ctx,
    pool: &crate::pool::Pool,
    route: &crate::commands::Route,
    slot: u32,
    holder: &std::path::Path,
    owner: &crate::owner::Owner,
) -> Result<Cleared> {
    let engine = &route.engine;
    let name = pool.project(slot);
    let survey = engine.survey(&name, owner)?;
    if survey.is_empty() {
        // Nothing to stop or remove: no need to ask again.
        return Ok(Cleared::default());
    }
    let dir = if holder.is_dir() {
        holder.to_owned()
    } else {
        pool.slot_dir(slot)
    };
    let project = project(pool, slot, &dir);
    if survey.foreign.is_empty() && project.file.is_file() && project.env_file.is_file() {
        crate::commands::up::compose_down(&ctx.compose_on(route)?, &project);
    }
    let cleared = engine.remove_project(&name, owner)?;
    Ok(Cleared {
        removed: survey.ours(),
        left_alone: cleared.left_alone,
    })
}
