//! `status [--format json]`: this worktree's slot, its URLs, and each
//! container's state and health, from one engine query.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::commands::{Ctx, addresses, held};
use crate::config::{Pool, Profile};
use crate::engine::Container;
use crate::output::{self, Tone};
use crate::registry::SlotRecord;

/// `status --format json`.
#[derive(Serialize)]
struct StatusJson<'a> {
    slot: u32,
    profile: Profile,
    project: &'a str,
    worktree: &'a std::path::Path,
    claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `running` (every container runs), `partial`, or `stopped`.
    status: &'static str,
    ports: &'a std::collections::BTreeMap<String, u16>,
    urls: std::collections::BTreeMap<String, String>,
    containers: Vec<ContainerJson<'a>>,
    /// The stack runs from files that changed since it started.
    restart_to_apply: bool,
    /// Ports the pool now gives that the claim keeps pinned until released.
    pending_ports: std::collections::BTreeMap<String, u16>,
}

#[derive(Serialize)]
struct ContainerJson<'a> {
    service: &'a str,
    name: &'a str,
    state: &'a str,
    health: Option<&'static str>,
    status: &'a str,
    ports: Vec<u16>,
}

/// A stack's state from its containers.
pub(crate) fn summarise<'a>(containers: impl IntoIterator<Item = &'a Container>) -> &'static str {
    let (mut all, mut running) = (0, 0);
    for c in containers {
        all += 1;
        running += usize::from(c.state == "running");
    }
    match running {
        0 => "stopped",
        n if n == all => "running",
        _ => "partial",
    }
}

/// A slot's state: from the engine's containers when it could be asked
/// (`live`), else the registry's last known one.
pub(crate) fn slot_state(pool: &Pool, live: Option<&[Container]>, rec: &SlotRecord) -> String {
    match live {
        Some(list) => {
            let project = pool.project(rec.slot_id);
            summarise(list.iter().filter(|c| c.project == project)).to_owned()
        }
        None => rec.status.clone(),
    }
}

/// How a table shows a slot's state.
pub(crate) fn state_tone(state: &str) -> Tone {
    match state {
        "running" => Tone::Good,
        "partial" => Tone::Warn,
        _ => Tone::Dim,
    }
}

/// A worktree as a table shows it: its folder's name.
pub(crate) fn short_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub(crate) fn exec(ctx: &Ctx, format: Format) -> Result<u8> {
    let held = held(ctx)?;
    let engine = ctx.engine();
    let project = held.pool.project(held.slot());
    let mut containers = engine.containers(Some(&project))?;
    containers.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    let state = summarise(&containers);
    let urls = addresses(&held.pool, &held.record.ports);
    let drift = {
        let registry = held.store.read()?;
        let renderer = crate::template::Renderer::new(&held.pool).ok();
        crate::commands::slots::drift(
            &held.pool,
            renderer.as_ref(),
            &registry,
            &held.record,
            state,
        )
    };
    if format == Format::Json {
        output::json(&StatusJson {
            slot: held.slot(),
            profile: held.record.profile,
            project: &project,
            worktree: &held.worktree,
            claimed_at: held.record.claimed_at,
            status: state,
            ports: &held.record.ports,
            urls: urls.into_iter().collect(),
            containers: containers
                .iter()
                .map(|c| ContainerJson {
                    service: &c.service,
                    name: &c.name,
                    state: &c.state,
                    health: c.health(),
                    status: &c.status,
                    ports: c.ports.iter().map(|p| p.public).collect(),
                })
                .collect(),
            restart_to_apply: drift.restart_to_apply,
            pending_ports: drift.pending_ports,
        });
        return Ok(0);
    }
    output::line(&format!(
        "Slot {} ({}) of `{}`: {state}, project {project}",
        held.slot(),
        held.record.profile,
        held.worktree.display()
    ));
    for (name, addr) in urls {
        output::line(&format!("  {name:<18} {addr}"));
    }
    print_drift(ctx, &drift);
    if containers.is_empty() {
        output::line(&format!(
            "No containers: `{} up` starts the stack.",
            ctx.cmd_name()
        ));
        return Ok(0);
    }
    let rows = containers
        .iter()
        .map(|c| {
            let tone = match (c.state.as_str(), c.health()) {
                ("running", None | Some("healthy")) => Tone::Good,
                ("running", _) => Tone::Warn,
                _ => Tone::Dim,
            };
            let ports: Vec<String> = c.ports.iter().map(|p| p.public.to_string()).collect();
            vec![
                (c.service.clone(), Tone::Plain),
                (c.state.clone(), tone),
                (c.health().unwrap_or("-").to_owned(), tone),
                (ports.join(", "), Tone::Plain),
                (c.status.clone(), Tone::Dim),
            ]
        })
        .collect();
    output::table(&["Service", "State", "Health", "Ports", "Status"], rows);
    Ok(0)
}

/// What changed under a running slot, said below its URLs.
fn print_drift(ctx: &Ctx, drift: &crate::commands::slots::Drift) {
    if drift.restart_to_apply {
        output::line(&format!(
            "Restart to apply: the slot's files changed since its stack started; `{} up` applies them",
            ctx.cmd_name()
        ));
    }
    if drift.retired {
        output::line("Retired: [slots] no longer lists this slot; it is freed once released");
    }
    if !drift.pending_ports.is_empty() {
        output::line(&format!(
            "The claim keeps its ports until released; the project file now gives {}",
            crate::commands::slots::show_ports(&drift.pending_ports)
        ));
    }
}
