//! `provision [--dry-run]`: create or repair every slot of the pool.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::commands::Ctx;
use crate::config::Pool;
use crate::output;
use crate::ports::SlotPorts;
use crate::registry::Registry;
use crate::slot::{self, Part, Plan};
use crate::template::Renderer;

#[derive(Default)]
struct Tally {
    created: usize,
    repaired: usize,
    skipped: usize,
}

pub(crate) fn exec(ctx: &Ctx, dry_run: bool) -> Result<u8> {
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let renderer = Renderer::new(&pool)?;
    // Every slot renders before anything is written: a template error leaves
    // the disk as it was.
    let rendered = pool
        .slots
        .keys()
        .map(|&id| Ok((id, slot::render(&pool, &renderer, id)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let tally = if dry_run {
        // Reads only: not even the state folder is created.
        let registry = store.read()?;
        let mut tally = Tally::default();
        for (&id, (ports, _)) in &rendered {
            report(
                &pool,
                id,
                &slot::plan(&pool, &registry, id),
                Some(ports),
                &mut tally,
            );
        }
        tally
    } else {
        store.update(|registry: &mut Registry| {
            let mut tally = Tally::default();
            for (&id, files) in &rendered {
                let plan = slot::plan(&pool, registry, id);
                match &plan {
                    Plan::Create => slot::write(&pool, registry, id, &Part::ALL, files)?,
                    Plan::Repair(parts) => slot::write(&pool, registry, id, parts, files)?,
                    Plan::Complete => {}
                }
                report(&pool, id, &plan, None, &mut tally);
            }
            Ok(tally)
        })?
    };
    summarise(&tally, dry_run);
    Ok(0)
}

/// One slot's line(s). `ports` is given on a dry run, to show what would be used.
fn report(pool: &Pool, id: u32, plan: &Plan, ports: Option<&SlotPorts>, tally: &mut Tally) {
    let profile = pool.slots[&id];
    match (plan, ports) {
        (Plan::Complete, _) => {
            tally.skipped += 1;
            output::line(&format!("Slot {id}: already exists, skipping"));
        }
        (Plan::Create, None) => {
            tally.created += 1;
            output::line(&format!("Created slot {id} ({profile})"));
        }
        (Plan::Create, Some(ports)) => {
            tally.created += 1;
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
            tally.repaired += 1;
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

fn summarise(t: &Tally, dry_run: bool) {
    let (create, repair) = if dry_run {
        ("Would create", "Would repair")
    } else {
        ("Created", "Repaired")
    };
    if t.created > 0 {
        output::line(&format!("{create} {} slot(s)", t.created));
    }
    if t.repaired > 0 {
        output::line(&format!("{repair} {} slot(s)", t.repaired));
    }
    if t.skipped > 0 {
        output::line(&format!("Skipped {} existing slot(s)", t.skipped));
    }
}
