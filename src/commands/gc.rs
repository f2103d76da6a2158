//! `gc [--dry-run]`: free claims whose worktree is gone, and remove this pool's
//! compose projects (containers, volumes, networks) that no claim owns. What
//! this registry did not start (another state folder's of the same pool name,
//! a project started by hand) is reported, never removed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::claim;
use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::release::release_slot;
use crate::engine::Removed;
use crate::output;
use crate::owner::{LeftAlone, describe_left_alone};
use crate::registry::Registry;

/// `gc --format json`.
#[derive(Serialize, Default)]
struct GcJson {
    dry_run: bool,
    /// Orphaned claims freed (or, on a dry run, to be freed).
    freed: Vec<Freed>,
    /// Compose projects of this pool that no claim owned.
    removed_projects: Vec<RemovedProject>,
    /// Unclaimed slots `[slots]` no longer lists: folder, record and stack removed.
    retired: Vec<RemovedProject>,
    /// Projects named like this pool's slots that hold what this registry
    /// did not start: left alone.
    left_alone: Vec<ForeignProject>,
}

#[derive(Serialize)]
struct Freed {
    slot: u32,
    claimed_by: PathBuf,
    removed: Option<Removed>,
    left_alone: Vec<LeftAlone>,
}

#[derive(Serialize)]
struct RemovedProject {
    project: String,
    removed: Option<Removed>,
}

#[derive(Serialize)]
struct ForeignProject {
    project: String,
    resources: Vec<LeftAlone>,
}

pub(crate) fn exec(ctx: &Ctx, dry_run: bool, format: Format) -> Result<u8> {
    let json = format == Format::Json;
    let say = |text: String| {
        if !json {
            output::line(&text);
        }
    };
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let engine = ctx.engine();
    engine.ping()?;
    let registry = store.read()?;
    let verb = if dry_run { "Would free" } else { "Freed" };
    let mut report = GcJson {
        dry_run,
        ..GcJson::default()
    };

    let orphans: Vec<_> = registry
        .slots
        .values()
        .filter(|r| r.is_orphaned())
        .cloned()
        .collect();
    for rec in &orphans {
        let holder = rec.claimed_by.clone().expect("an orphan has a holder");
        let gone = format!(
            "{verb} slot {} (its worktree `{}` is gone)",
            rec.slot_id,
            holder.display()
        );
        let (removed, left_alone) = if dry_run {
            say(gone);
            (None, Vec::new())
        } else {
            let cleared = release_slot(ctx, &pool, &store, &engine, rec.slot_id, &holder)?;
            say(format!("{gone}: removed {}", cleared.removed));
            if let Some(text) = describe_left_alone(&pool.project(rec.slot_id), &cleared.left_alone)
            {
                say(text);
            }
            (Some(cleared.removed), cleared.left_alone)
        };
        report.freed.push(Freed {
            slot: rec.slot_id,
            claimed_by: holder,
            removed,
            left_alone,
        });
    }

    report.retired = free_retired(&pool, &store, &engine, dry_run, &say)?;

    // Projects named like this pool's slots that no live claim owns, decided
    // and removed under the registry lock: a claim made meanwhile waits, and
    // one made before is seen as owned.
    let prefix = format!("{}-slot-", pool.name);
    let freed: BTreeSet<String> = report.freed.iter().map(|f| pool.project(f.slot)).collect();
    let sweep = |reg: &Registry| -> Result<(Vec<RemovedProject>, Vec<ForeignProject>)> {
        let owned: BTreeSet<String> = reg
            .slots
            .values()
            .filter(|r| r.claimed_by.is_some() && !r.is_orphaned())
            .map(|r| pool.project(r.slot_id))
            .collect();
        let mut projects = BTreeSet::new();
        projects.extend(engine.containers(None)?.into_iter().map(|c| c.project));
        projects.extend(engine.volumes(None)?.into_iter().map(|v| v.project));
        projects.extend(engine.networks(None)?.into_iter().map(|n| n.project));
        let mut done = Vec::new();
        let mut foreign = Vec::new();
        for name in projects {
            let slot = name
                .strip_prefix(&prefix)
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok());
            let Some(slot) = slot else { continue };
            if owned.contains(&name) || freed.contains(&name) {
                continue;
            }
            let owner = claim::owner(&pool, reg, slot);
            let (removed, left) = if dry_run {
                let survey = engine.survey(&name, &owner)?;
                let ours = survey.ours();
                if ours != Removed::default() {
                    say(format!(
                        "Would remove compose project `{name}`: no claim owns it"
                    ));
                }
                (Some(ours), survey.foreign)
            } else {
                let cleared = engine.remove_project(&name, &owner)?;
                if cleared.removed != Removed::default() {
                    say(format!(
                        "Removed compose project `{name}` (no claim owns it): {}",
                        cleared.removed
                    ));
                }
                (Some(cleared.removed), cleared.left_alone)
            };
            if let Some(text) = describe_left_alone(&name, &left) {
                say(text);
            }
            if removed.as_ref().is_some_and(|r| *r != Removed::default()) {
                done.push(RemovedProject {
                    project: name.clone(),
                    removed: removed.filter(|_| !dry_run),
                });
            }
            if !left.is_empty() {
                foreign.push(ForeignProject {
                    project: name,
                    resources: left,
                });
            }
        }
        Ok((done, foreign))
    };
    (report.removed_projects, report.left_alone) = if dry_run {
        sweep(&registry)?
    } else {
        store.update(|reg| sweep(reg))?
    };
    if json {
        output::json(&report);
    } else if report.freed.is_empty()
        && report.removed_projects.is_empty()
        && report.left_alone.is_empty()
        && report.retired.is_empty()
    {
        output::line("Nothing to clean up");
    }
    Ok(0)
}

/// Frees the unclaimed slots that `[slots]` no longer lists: their stack
/// (through the usual removal), their folder and their registry record.
fn free_retired(
    pool: &crate::pool::Pool,
    store: &crate::registry::Store,
    engine: &crate::engine::Engine,
    dry_run: bool,
    say: &dyn Fn(String),
) -> Result<Vec<RemovedProject>> {
    let retired: Vec<u32> = store
        .read()?
        .slots
        .values()
        .filter(|r| r.claimed_by.is_none() && crate::slot::is_retired(pool, r.slot_id))
        .map(|r| r.slot_id)
        .collect();
    let mut done = Vec::new();
    for id in retired {
        let project = pool.project(id);
        if dry_run {
            say(format!(
                "Would free retired slot {id}: its folder, registry entry and compose project `{project}`"
            ));
            done.push(RemovedProject {
                project,
                removed: None,
            });
            continue;
        }
        let dir = pool.slot_dir(id);
        let cleared = {
            let _lock = store.slot_lock(&dir)?;
            let owner = crate::claim::owner(pool, &store.read()?, id);
            let cleared = engine.remove_project(&project, &owner)?;
            store.update(|reg| {
                // Claimed meanwhile: no longer ours to free.
                if reg.slots.get(&id).is_some_and(|r| r.claimed_by.is_none()) {
                    reg.slots.remove(&id);
                }
                Ok(())
            })?;
            cleared
        };
        if let Some(text) = describe_left_alone(&project, &cleared.left_alone) {
            say(text);
        }
        let removed = cleared.removed;
        if !store.read()?.slots.contains_key(&id) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("failed to remove `{}`", dir.display())));
                }
            }
        }
        say(format!(
            "Freed retired slot {id} (no longer in [slots]): removed its folder, registry entry and {removed}"
        ));
        done.push(RemovedProject {
            project,
            removed: Some(removed),
        });
    }
    Ok(done)
}
