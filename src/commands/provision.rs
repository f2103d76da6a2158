//! `provision [--dry-run] [--force]`: create, repair or render again every
//! slot of the pool, and name the slots it no longer lists.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::commands::Ctx;
use crate::output;
use crate::pool::{Pool, Profile, SlotPorts};
use crate::registry::{Registry, Store};
use crate::slot::{self, Desired, Password, Plan};
use crate::template::Renderer;

type Plans = Vec<(u32, Plan, Desired)>;
type Retired = Vec<(u32, Profile, BTreeMap<String, u16>)>;

/// Creates, repairs or renders again every slot that needs it.
fn write_all(
    pool: &Pool,
    store: &Store,
    renderer: &Renderer,
    force: bool,
) -> Result<(Plans, Retired)> {
    let decide = |registry: &Registry| plans(pool, renderer, registry, force);
    // Rendered once before the lock too: a template error creates nothing,
    // not even the state folder.
    decide(&store.read()?)?;
    store.update(|registry: &mut Registry| {
        // The files carry the registry's id: one that has none gets it
        // here, saved with the slots.
        registry.ensure_id()?;
        let plans = decide(registry)?;
        for (id, plan, want) in &plans {
            if *plan != Plan::Complete {
                slot::write(pool, registry, *id, want)?;
            }
        }
        Ok((plans, retired_slots(pool, registry)))
    })
}

/// An adopted pool is provisioned on first use, by `claim` and `up`.
pub(crate) fn on_first_use(pool: &Pool, store: &Store) -> Result<()> {
    if pool.adopted().is_none() || !store.read()?.slots.is_empty() {
        return Ok(());
    }
    let (plans, _) = write_all(pool, store, &Renderer::new(pool)?, false)?;
    output::note(&format!(
        "Provisioned {} slots of pool {} ({}) in `{}`",
        plans.len(),
        pool.name,
        pool.why(),
        pool.state_dir.display()
    ));
    for warning in &pool.warnings {
        output::note(&format!("warning: {warning}"));
    }
    Ok(())
}

/// `provision --format json`.
#[derive(Serialize)]
struct ProvisionJson {
    pool: crate::pool::Summary,
    state_dir: PathBuf,
    dry_run: bool,
    slots: Vec<SlotJson>,
}

#[derive(Serialize)]
struct SlotJson {
    slot: u32,
    profile: Profile,
    /// `created`, `repaired`, `rerendered`, `skipped` or `retired` (on a dry
    /// run: what would be done).
    action: &'static str,
    /// The parts that were (or would be) written again, for `repaired`.
    missing: Vec<&'static str>,
    path: PathBuf,
    ports: BTreeMap<String, u16>,
}

pub(crate) fn exec(ctx: &Ctx, dry_run: bool, force: bool, format: Format) -> Result<u8> {
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let renderer = Renderer::new(&pool)?;
    // Every slot renders before anything is written: a template error leaves
    // the disk as it was.
    let decide = |registry: &Registry| plans(&pool, &renderer, registry, force);
    if !dry_run {
        refuse_taken_subnets(ctx, &pool, &store)?;
    }
    let (plans, retired) = if dry_run {
        // Reads only: not even the state folder is created.
        let registry = store.read()?;
        (decide(&registry)?, retired_slots(&pool, &registry))
    } else {
        write_all(&pool, &store, &renderer, force)?
    };
    if format == Format::Json {
        print_json(&pool, &plans, &retired, dry_run);
        return Ok(0);
    }
    for (id, plan, want) in &plans {
        report(&pool, *id, plan, dry_run.then_some(&want.ports));
    }
    for (id, _, _) in &retired {
        output::line(&format!(
            "Slot {id}: retired (no longer in [slots]); `{} gc` frees it once it is unclaimed",
            ctx.cmd_name()
        ));
    }
    summarise(&plans, dry_run);
    Ok(0)
}

/// Refuses a range that overlaps a network or route of someone else's, when
/// the engine answers: a pool is provisioned with no engine too.
fn refuse_taken_subnets(ctx: &Ctx, pool: &Pool, store: &Store) -> Result<()> {
    let registry = store.read()?.id.unwrap_or_default();
    let slots: Vec<u32> = pool.slots.keys().copied().collect();
    match super::subnet_conflicts(
        pool,
        &ctx.engine(),
        &crate::claim::Taken::Local,
        &registry,
        &slots,
    ) {
        Ok(conflicts) => super::refuse_subnet_conflicts(pool, &conflicts, "the slots' blocks"),
        Err(_) => Ok(()),
    }
}

/// What each slot of the pool should be, and what it takes to get there.
fn plans(
    pool: &Pool,
    renderer: &Renderer,
    registry: &Registry,
    force: bool,
) -> Result<Vec<(u32, Plan, Desired)>> {
    pool.slots
        .keys()
        .map(|&id| {
            let want = slot::desired(pool, renderer, registry, id, Password::Keep)?;
            let plan = match slot::plan(pool, registry, id, &want) {
                Plan::Complete if force => Plan::Rerender,
                plan => plan,
            };
            Ok((id, plan, want))
        })
        .collect()
}

fn print_json(
    pool: &Pool,
    plans: &[(u32, Plan, Desired)],
    retired: &[(u32, Profile, BTreeMap<String, u16>)],
    dry_run: bool,
) {
    let mut slots: Vec<SlotJson> = plans
        .iter()
        .map(|(id, plan, want)| {
            let (action, missing) = match plan {
                Plan::Create => ("created", vec![]),
                Plan::Repair(parts) => ("repaired", parts.iter().map(|p| p.describe()).collect()),
                Plan::Rerender => ("rerendered", vec![]),
                Plan::Complete => ("skipped", vec![]),
            };
            SlotJson {
                slot: *id,
                profile: pool.slots[id],
                action,
                missing,
                path: pool.slot_dir(*id),
                ports: want.record.ports.clone(),
            }
        })
        .collect();
    slots.extend(retired.iter().map(|(id, profile, ports)| SlotJson {
        slot: *id,
        profile: *profile,
        action: "retired",
        missing: vec![],
        path: pool.slot_dir(*id),
        ports: ports.clone(),
    }));
    output::json(&ProvisionJson {
        pool: pool.summary(),
        state_dir: pool.state_dir.clone(),
        dry_run,
        slots,
    });
}

/// Slots of the registry that the pool no longer lists.
fn retired_slots(pool: &Pool, registry: &Registry) -> Vec<(u32, Profile, BTreeMap<String, u16>)> {
    registry
        .slots
        .values()
        .filter(|r| slot::is_retired(pool, r.slot_id))
        .map(|r| (r.slot_id, r.profile, r.ports.clone()))
        .collect()
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
        (Plan::Rerender, dry) => {
            let verb = if dry.is_some() {
                "Would re-render"
            } else {
                "Re-rendered"
            };
            output::line(&format!(
                "{verb} slot {id} ({profile}): its files now match the templates and the project file"
            ));
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

fn summarise(plans: &[(u32, Plan, Desired)], dry_run: bool) {
    let count = |f: fn(&Plan) -> bool| plans.iter().filter(|(_, p, _)| f(p)).count();
    let created = count(|p| matches!(p, Plan::Create));
    let repaired = count(|p| matches!(p, Plan::Repair(_)));
    let rerendered = count(|p| matches!(p, Plan::Rerender));
    let skipped = count(|p| matches!(p, Plan::Complete));
    let (create, repair, rerender) = if dry_run {
        ("Would create", "Would repair", "Would re-render")
    } else {
        ("Created", "Repaired", "Re-rendered")
    };
    if created > 0 {
        output::line(&format!("{create} {created} slot(s)"));
    }
    if repaired > 0 {
        output::line(&format!("{repair} {repaired} slot(s)"));
    }
    if rerendered > 0 {
        output::line(&format!("{rerender} {rerendered} slot(s)"));
    }
    if skipped > 0 {
        output::line(&format!("Skipped {skipped} existing slot(s)"));
    }
}
