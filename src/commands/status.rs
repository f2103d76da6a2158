//! `status [--format json]`: this worktree's slot, its URLs, and each
//! container's state and health, from one engine query; and the state code
//! that `slots` and `list` share: a stack's containers against the services
//! of its compose model.

use std::path::Path;
use std::process::Stdio;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::Format;
use crate::commands::{Ctx, addresses, held, project};
use crate::compose::Project;
use crate::engine::Container;
use crate::gate::missing;
use crate::output::{self, Tone};
use crate::pool::{Pool, Profile};
use crate::registry::SlotRecord;

/// `status --format json`.
#[derive(Serialize)]
struct StatusJson<'a> {
    pool: crate::pool::Summary,
    slot: u32,
    profile: Profile,
    project: &'a str,
    worktree: &'a std::path::Path,
    claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The engine the slot runs on (`local` unless the pool names others),
    /// and the host its ports answer on, as `urls` use it.
    engine: &'a str,
    host: &'a str,
    /// `running` (every container runs), `partial`, `stopped`, or `unknown`
    /// (its engine does not answer).
    status: &'static str,
    ports: &'a std::collections::BTreeMap<String, u16>,
    urls: std::collections::BTreeMap<String, String>,
    containers: Vec<ContainerJson<'a>>,
    /// Services of the compose model without a container.
    missing: Vec<String>,
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

/// A stack's state from its containers and, where known, the services of its
/// compose model: `stopped` when none runs, `running` when every container
/// runs and every service has one, `partial` otherwise (a container stopped,
/// or removed: `docker rm -f` leaves no trace among the containers).
pub(crate) fn summarise<'a>(
    containers: impl IntoIterator<Item = &'a Container>,
    services: Option<&[String]>,
) -> &'static str {
    let containers: Vec<&Container> = containers.into_iter().collect();
    let running = containers.iter().filter(|c| c.state == "running").count();
    match running {
        0 => "stopped",
        n if n == containers.len() && missing(containers.iter().copied(), services).is_empty() => {
            "running"
        }
        _ => "partial",
    }
}

/// A slot's state: from the engine's containers when it could be asked
/// (`live`), compared with the slot's compose model, else the registry's
/// last known one.
pub(crate) fn slot_state(
    ctx: &Ctx,
    pool: &Pool,
    live: Option<&super::Live>,
    rec: &SlotRecord,
) -> String {
    let Some(live) = live else {
        return rec.status.clone();
    };
    if !live.reached(rec) {
        return "unknown".to_owned();
    }
    let list = &live.containers;
    let name = pool.project(rec.slot_id);
    let own: Vec<&Container> = list.iter().filter(|c| c.project == name).collect();
    // Without a running container the model changes nothing: skip it.
    let services = if own.iter().any(|c| c.state == "running") {
        let directory = rec
            .claimed_by
            .clone()
            .unwrap_or_else(|| pool.slot_dir(rec.slot_id));
        model_services(
            ctx,
            &project(pool, rec.slot_id, &directory),
            &pool.slot_dir(rec.slot_id),
        )
    } else {
        None
    };
    summarise(own, services.as_deref()).to_owned()
}

/// The cache of `model_services`, in the slot folder.
const SERVICES_CACHE: &str = ".model-services.json";

#[derive(Serialize, Deserialize)]
struct ServicesCache {
    /// `model_key` of the files the list was read from.
    key: String,
    services: Vec<String>,
}

/// The services of a slot's compose model, as compose itself reads them:
/// `compose config --services` on the slot's files (v2 and v1 alike; it
/// knows `extends`, profiles and merges that a reader of our own would
/// miss). The answer is cached in the slot folder under a hash of what
/// compose read, so that `status`, `slots` and a no-op `up` run no compose
/// child while the files stay as they are. `None` when compose cannot say
/// (files missing or broken, no compose): callers then judge by the
/// containers alone.
pub(crate) fn model_services(ctx: &Ctx, project: &Project, slot_dir: &Path) -> Option<Vec<String>> {
    let key = model_key(project)?;
    let cache = slot_dir.join(SERVICES_CACHE);
    if let Ok(text) = std::fs::read(&cache)
        && let Ok(c) = serde_json::from_slice::<ServicesCache>(&text)
        && c.key == key
    {
        return Some(c.services);
    }
    let compose = ctx.compose().ok()?;
    let out = compose
        .command(project, &["config", "--services"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut services: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    services.sort();
    services.dedup();
    let entry = ServicesCache { key, services };
    if let Ok(json) = serde_json::to_vec_pretty(&entry) {
        // Only a cache: a read-only state folder costs a compose run per use.
        let _ = crate::fsutil::write_atomic(&cache, &json, 0o644);
    }
    Some(entry.services)
}

/// A hash of what `compose config --services` reads: the compose file, the
/// env file's path and contents, and `COMPOSE_PROFILES` (which services a
/// profile enables).
fn model_key(project: &Project) -> Option<String> {
    let file = std::fs::read(&project.file).ok()?;
    let env = std::fs::read(&project.env_file).ok()?;
    let profiles = std::env::var_os("COMPOSE_PROFILES").unwrap_or_default();
    let env_path = project.env_file.as_os_str().as_encoded_bytes();
    Some(crate::template::fnv1a(&[
        &file,
        env_path,
        &env,
        profiles.as_encoded_bytes(),
    ]))
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
    let route = ctx.route(&held.pool, held.record.engine.as_deref())?;
    let project = held.pool.project(held.slot());
    // A pool with one engine needs it to answer; among several, one that
    // does not makes its slot unknown.
    let reached = match route.engine.containers(Some(&project)) {
        Err(e) if held.pool.engines.len() == 1 => return Err(e),
        r => r,
    };
    if let Err(e) = &reached {
        output::note(&format!(
            "warning: engine `{}` does not answer, slot {}'s state is unknown: {}",
            route.spec.name,
            held.slot(),
            crate::error::user(e).map_or_else(|| format!("{e:#}"), |u| u.message.clone())
        ));
    }
    let unknown = reached.is_err();
    let mut containers = reached.unwrap_or_default();
    containers.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    let services = if containers.is_empty() {
        None
    } else {
        model_services(ctx, &held.project(), &held.pool.slot_dir(held.slot()))
    };
    let state = if unknown {
        "unknown"
    } else {
        summarise(&containers, services.as_deref())
    };
    let missing = missing(&containers, services.as_deref());
    let urls = addresses(&held.pool, &held.record.ports, &route.host);
    let drift = {
        let registry = held.store.read()?;
        let renderer = crate::template::Renderer::for_fingerprints(&held.pool).ok();
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
            pool: held.pool.summary(),
            slot: held.slot(),
            profile: held.record.profile,
            project: &project,
            worktree: &held.worktree,
            claimed_at: held.record.claimed_at,
            engine: &route.spec.name,
            host: &route.host,
            status: state,
            ports: &held.record.ports,
            urls: urls.into_iter().collect(),
            containers: containers_json(&containers),
            missing,
            restart_to_apply: drift.restart_to_apply,
            pending_ports: drift.pending_ports,
        });
        return Ok(0);
    }
    output::line(&held.pool.line());
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
    print_containers(&containers);
    if !missing.is_empty() {
        output::line(&format!(
            "No container for {}: `{} up` recreates it.",
            missing
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            ctx.cmd_name()
        ));
    }
    Ok(0)
}

fn containers_json(containers: &[Container]) -> Vec<ContainerJson<'_>> {
    containers
        .iter()
        .map(|c| ContainerJson {
            service: &c.service,
            name: &c.name,
            state: &c.state,
            health: c.health(),
            status: &c.status,
            ports: c.ports.iter().map(|p| p.public).collect(),
        })
        .collect()
}

/// One line per container: its state, health and ports.
fn print_containers(containers: &[Container]) {
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
