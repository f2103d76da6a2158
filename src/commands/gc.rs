//! `gc [--dry-run]`: free claims whose worktree is gone, and remove this pool's
//! compose projects (containers, volumes, networks) that no claim owns.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::claim;
use crate::commands::Ctx;
use crate::commands::release::stop_and_remove;
use crate::output;

pub(crate) fn exec(ctx: &Ctx, dry_run: bool) -> Result<u8> {
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let engine = ctx.engine();
    engine.ping()?;
    let registry = store.read()?;
    let verb = if dry_run { "Would free" } else { "Freed" };
    let mut did = 0;

    let orphans: Vec<_> = registry
        .slots
        .values()
        .filter(|r| r.is_orphaned())
        .cloned()
        .collect();
    for rec in &orphans {
        let holder = rec.claimed_by.clone().expect("an orphan has a holder");
        if !dry_run {
            let removed = stop_and_remove(ctx, &pool, &engine, rec.slot_id, &holder)?;
            claim::finish_release(&store, rec.slot_id, &holder)?;
            output::line(&format!(
                "{verb} slot {} (its worktree `{}` is gone): removed {} container(s), {} volume(s)",
                rec.slot_id,
                holder.display(),
                removed.containers,
                removed.volumes
            ));
        } else {
            output::line(&format!(
                "{verb} slot {} (its worktree `{}` is gone)",
                rec.slot_id,
                holder.display()
            ));
        }
        did += 1;
    }

    // Projects named like this pool's slots that no live claim owns.
    let owned: BTreeSet<String> = registry
        .slots
        .values()
        .filter(|r| r.claimed_by.is_some() && !r.is_orphaned())
        .map(|r| pool.project(r.slot_id))
        .collect();
    let freed: BTreeSet<String> = orphans.iter().map(|r| pool.project(r.slot_id)).collect();
    let prefix = format!("{}-slot-", pool.name);
    let mut projects = BTreeSet::new();
    projects.extend(engine.containers(None)?.into_iter().map(|c| c.project));
    projects.extend(engine.volumes(None)?.into_iter().map(|v| v.project));
    projects.extend(engine.networks(None)?.into_iter().map(|n| n.project));
    for name in projects {
        let ours = name
            .strip_prefix(&prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !ours || owned.contains(&name) || freed.contains(&name) {
            continue;
        }
        if dry_run {
            output::line(&format!(
                "Would remove compose project `{name}`: no claim owns it"
            ));
        } else {
            let r = engine.remove_project(&name)?;
            output::line(&format!(
                "Removed compose project `{name}` (no claim owns it): {} container(s), {} volume(s), {} network(s)",
                r.containers, r.volumes, r.networks
            ));
        }
        did += 1;
    }
    if did == 0 {
        output::line("Nothing to clean up");
    }
    Ok(0)
}
