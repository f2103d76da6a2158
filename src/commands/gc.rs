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
use crate::engine::{Engine, Removed};
use crate::output;
use crate::owner::{LeftAlone, describe_left_alone};
use crate::pool::Pool;
use crate::registry::{Registry, Store};

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
    // Each engine on its own: one that does not answer is skipped with a
    // warning (the only one, the local engine alone, stops `gc`).
    let mut routes = Vec::new();
    for spec in &pool.engines {
        let route = ctx.route(&pool, Some(&spec.name))?;
        match route.engine.ping() {
            Ok(()) => routes.push(route),
            Err(e) if pool.engines.len() > 1 => output::note(&format!(
                "warning: engine `{}` does not answer, nothing of it is cleaned: {}",
                spec.name,
                crate::error::user(&e).map_or_else(|| format!("{e:#}"), |u| u.message.clone())
            )),
            Err(e) => return Err(e),
        }
    }
    let registry = store.read()?;
    let mut report = GcJson {
        dry_run,
        ..GcJson::default()
    };
    report.freed = free_orphans(ctx, &pool, &store, &registry, dry_run, &say)?;
    for route in &routes {
        let engine = &route.engine;
        report
            .retired
            .extend(free_retired(&pool, &store, engine, dry_run, &say)?);
        // Projects named like this pool's slots that no live claim owns,
        // decided and removed under the registry lock: a claim made
        // meanwhile waits, and one made before is seen as owned.
        let sweep = Sweep {
            pool: &pool,
            engine,
            freed: report.freed.iter().map(|f| pool.project(f.slot)).collect(),
            dry_run,
            say: &say,
        };
        let (removed, left) = if dry_run {
            sweep.run(&registry)?
        } else {
            store.update(|reg| sweep.run(reg))?
        };
        report.removed_projects.extend(removed);
        report.left_alone.extend(left);
    }
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

/// Frees the claims whose worktree is gone, with their slot's stack.
fn free_orphans(
    ctx: &Ctx,
    pool: &Pool,
    store: &Store,
    registry: &Registry,
    dry_run: bool,
    say: &dyn Fn(String),
) -> Result<Vec<Freed>> {
    let verb = if dry_run { "Would free" } else { "Freed" };
    let orphans: Vec<_> = registry
        .slots
        .values()
        .filter(|r| r.is_orphaned())
        .cloned()
        .collect();
    let mut freed = Vec::new();
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
            let cleared = release_slot(ctx, pool, store, rec.slot_id, &holder)?;
            say(format!("{gone}: removed {}", cleared.removed));
            if let Some(text) = describe_left_alone(&pool.project(rec.slot_id), &cleared.left_alone)
            {
                say(text);
            }
            (Some(cleared.removed), cleared.left_alone)
        };
        freed.push(Freed {
            slot: rec.slot_id,
            claimed_by: holder,
            removed,
            left_alone,
        });
    }
    Ok(freed)
}

/// The removal of this pool's compose projects that no claim owns.
struct Sweep<'a> {
    pool: &'a Pool,
    engine: &'a Engine,
    /// The projects of the orphans just freed: already removed.
    freed: BTreeSet<String>,
    dry_run: bool,
    say: &'a dyn Fn(String),
}

impl Sweep<'_> {
    /// Removes (or, on a dry run, names) what is this registry's of every
    /// project named like a slot of the pool that no live claim owns.
    fn run(&self, reg: &Registry) -> Result<(Vec<RemovedProject>, Vec<ForeignProject>)> {
        let owned: BTreeSet<String> = reg
            .slots
            .values()
            .filter(|r| r.claimed_by.is_some() && !r.is_orphaned())
            .map(|r| self.pool.project(r.slot_id))
            .collect();
        let mut done = Vec::new();
        let mut foreign = Vec::new();
        for name in self.projects()? {
            let Some(slot) = self.slot_of(&name) else {
                continue;
            };
            if owned.contains(&name) || self.freed.contains(&name) {
                continue;
            }
            let (removed, left) = self.remove(reg, &name, slot)?;
            if let Some(text) = describe_left_alone(&name, &left) {
                (self.say)(text);
            }
            if removed.as_ref().is_some_and(|r| *r != Removed::default()) {
                done.push(RemovedProject {
                    project: name.clone(),
                    removed: removed.filter(|_| !self.dry_run),
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
    }

    /// Every compose project the engine knows of a container, volume or network.
    fn projects(&self) -> Result<BTreeSet<String>> {
        let engine = self.engine;
        let mut projects = BTreeSet::new();
        projects.extend(engine.containers(None)?.into_iter().map(|c| c.project));
        projects.extend(engine.volumes(None)?.into_iter().map(|v| v.project));
        projects.extend(engine.networks(None)?.into_iter().map(|n| n.project));
        Ok(projects)
    }

    /// The slot a project is named for: `ktrdr-slot-3` is slot 3.
    fn slot_of(&self, project: &str) -> Option<u32> {
        project
            .strip_prefix(&format!("{}-slot-", self.pool.name))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
    }

    /// What is this registry's of one project, removed (or surveyed on a dry
    /// run), and what is left alone.
    fn remove(
        &self,
        reg: &Registry,
        name: &str,
        slot: u32,
    ) -> Result<(Option<Removed>, Vec<LeftAlone>)> {
        let owner = claim::owner(self.pool, reg, slot);
        if self.dry_run {
            let survey = self.engine.survey(name, &owner)?;
            let ours = survey.ours();
            if ours != Removed::default() {
                (self.say)(format!(
                    "Would remove compose project `{name}`: no claim owns it"
                ));
            }
            return Ok((Some(ours), survey.foreign));
        }
        let cleared = self.engine.remove_project(name, &owner)?;
        if cleared.removed != Removed::default() {
            (self.say)(format!(
                "Removed compose project `{name}` (no claim owns it): {}",
                cleared.removed
            ));
        }
        Ok((Some(cleared.removed), cleared.left_alone))
    }
}

/// Frees the unclaimed slots that `[slots]` no longer lists: their stack
/// (through the usual removal), their folder and their registry record.
fn free_retired(
    pool: &Pool,
    store: &Store,
    engine: &Engine,
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
