//! `provision [--dry-run]`: create or repair every slot of the pool.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::commands::Ctx;
use crate::config::{Pool, Profile};
use crate::output;
use crate::ports::SlotPorts;
use crate::registry::Registry;
use crate::slot::{self, Part, Plan};
use crate::template::Renderer;

/// `provision --format json`.
#[derive(Serialize)]
struct ProvisionJson {
    pool: String,
    state_dir: PathBuf,
    dry_run: bool,
    slots: Vec<SlotJson>,
}

#[derive(Serialize)]
struct SlotJson {
    slot: u32,
    profile: Profile,
    /// `created`, `repaired` or `skipped` (on a dry run: what would be done).
    action: &'static str,
    /// The parts that were (or would be) written again, for `repaired`.
    missing: Vec<&'static str>,
    path: PathBuf,
    ports: BTreeMap<String, u16>,
}

pub(crate) fn exec(ctx: &Ctx, dry_run: bool, format: Format) -> Result<u8> {
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let renderer = Renderer::new(&pool)?;
    // Every slot renders before anything is written: a template error leaves
    // the disk as it was. The files carry the registry's id (made here for a
    // registry that has none, and saved with the slots).
    let render_all = |id: &str| {
        pool.slots
            .keys()
            .map(|&slot| Ok((slot, slot::render(&pool, &renderer, slot, id)?)))
            .collect::<Result<BTreeMap<_, _>>>()
    };
    let candidate = match store.read()?.id {
        Some(id) => id,
        None => crate::registry::new_id()?,
    };
    let mut rendered = render_all(&candidate)?;
    let plans: Vec<(u32, Plan)> = if dry_run {
        // Reads only: not even the state folder is created.
        let registry = store.read()?;
        rendered
            .keys()
            .map(|&id| (id, slot::plan(&pool, &registry, id)))
            .collect()
    } else {
        let (plans, files) = store.update(|registry: &mut Registry| {
            let id = registry.id.get_or_insert_with(|| candidate.clone()).clone();
            // Another process gave the registry its id meanwhile.
            let files = if id == candidate {
                std::mem::take(&mut rendered)
            } else {
                render_all(&id)?
            };
            let mut plans = Vec::new();
            for (&id, files) in &files {
                let plan = slot::plan(&pool, registry, id);
                match &plan {
                    Plan::Create => slot::write(&pool, registry, id, &Part::ALL, files)?,
                    Plan::Repair(parts) => slot::write(&pool, registry, id, parts, files)?,
                    Plan::Complete => {}
                }
                plans.push((id, plan));
            }
            Ok((plans, files))
        })?;
        rendered = files;
        plans
    };
    if format == Format::Json {
        output::json(&ProvisionJson {
            pool: pool.name.clone(),
            state_dir: pool.state_dir.clone(),
            dry_run,
            slots: plans
                .iter()
                .map(|(id, plan)| {
                    let (action, missing) = match plan {
                        Plan::Create => ("created", vec![]),
                        Plan::Repair(parts) => {
                            ("repaired", parts.iter().map(|p| p.describe()).collect())
                        }
                        Plan::Complete => ("skipped", vec![]),
                    };
                    SlotJson {
                        slot: *id,
                        profile: pool.slots[id],
                        action,
                        missing,
                        path: pool.slot_dir(*id),
                        ports: rendered[id].0.all().collect(),
                    }
                })
                .collect(),
        });
        return Ok(0);
    }
    for (id, plan) in &plans {
        report(&pool, *id, plan, dry_run.then(|| &rendered[id].0));
    }
    summarise(&plans, dry_run);
    Ok(0)
}

/// One slot's line(s). `ports` is given on a dry run, to show what would be used.
fn report(pool: &Pool, id: u32, plan: &Plan, ports: Option<&SlotPorts>) {
    let profile = pool.slots[&id];
    match (plan, ports) {
        (Plan::Complete, _) => output::line(&format!("Slot {id}: already exists, skipping")),
        (Plan::Create, None) => output::line(&format!("Created slot {id} ({profile})")),
        (Plan::Create, Some(ports)) => {
            output::line(&format!(
                "Would create slot {id} ({profile}) at {}",
                pool.slot_dir(id).display()
            ));
            let named: Vec<String> = ports
                .named
                .iter()
                .map(|(n, p)| format!("{}={p}", n.to_ascii_uppercase()))
                .collect();
            output::line(&format!("  Ports: {}", named.join(", ")));
            if let (Some(first), Some(last)) = (ports.workers.first(), ports.workers.last()) {
                let counts: Vec<String> = pool
                    .workers(id)
                    .iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect();
                output::line(&format!(
                    "  Workers: {} on ports {}-{}",
                    counts.join(", "),
                    first.port,
                    last.port
                ));
            }
        }
        (Plan::Repair(parts), dry) => {
            let what: Vec<&str> = parts.iter().map(|p| p.describe()).collect();
            let verb = if dry.is_some() {
                "Would repair"
            } else {
                "Repaired"
            };
            output::line(&format!(
                "{verb} slot {id} ({profile}): missing {}",
                what.join(", ")
            ));
        }
    }
}

fn summarise(plans: &[(u32, Plan)], dry_run: bool) {
    let count = |f: fn(&Plan) -> bool| plans.iter().filter(|(_, p)| f(p)).count();
    let created = count(|p| matches!(p, Plan::Create));
    let repaired = count(|p| matches!(p, Plan::Repair(_)));
    let skipped = count(|p| matches!(p, Plan::Complete));
    let (create, repair) = if dry_run {
        ("Would create", "Would repair")
    } else {
        ("Created", "Repaired")
    };
    if created > 0 {
        output::line(&format!("{create} {created} slot(s)"));
    }
    if repaired > 0 {
        output::line(&format!("{repair} {repaired} slot(s)"));
    }
    if skipped > 0 {
        output::line(&format!("Skipped {skipped} existing slot(s)"));
    }
}
