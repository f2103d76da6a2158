//! Claims: a worktree takes a slot (the lightest free one that fits, whose ports
//! nothing else holds), gets its own `.env.sandbox`, and gives the slot back.
//! A new claim starts from clean state; a released slot leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::Utc;

use crate::engine::placement;
use crate::engine::{Cleared, Container, Docker, Engine, EngineSpec};
use crate::envfile::{parse_env, quote_env};
use crate::error::{UserError, code, fail};
use crate::fsutil;
use crate::owner::Owner;
use crate::pool::{Pool, Profile};
use crate::registry::{Registry, SlotRecord, Store};
use crate::slot::{self, COMPOSE_FILE, ENV_FILE, Fresh, Password, SECRET_MODE};
use crate::worktree;

/// Exit codes of `claim` (and of `up` when it claims).
pub(crate) const NO_FREE_SLOT: u8 = code::FAILURE;
pub(crate) const PORT_CONFLICT: u8 = 3;

/// What a worktree asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Want {
    pub(crate) profile: Option<Profile>,
    pub(crate) slot: Option<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) slot: u32,
    /// A new claim (else the worktree held it already).
    pub(crate) fresh: bool,
    pub(crate) record: SlotRecord,
    /// What was cleared off the slot before handing it over, and what was
    /// left there because it is not this registry's.
    pub(crate) cleaned: Cleared,
    /// This registry, as the slot's resources show it.
    pub(crate) owner: Owner,
    /// The slot's files were rendered again (the templates or the pool
    /// changed, or a new claim's password).
    pub(crate) rerendered: bool,
}

/// This registry as the resources of `slot` show it: its id, and the slot's
/// compose file.
pub(crate) fn owner(pool: &Pool, registry: &Registry, slot: u32) -> Owner {
    Owner {
        registry: registry.id.clone(),
        slot_file: pool.slot_dir(slot).join(COMPOSE_FILE),
    }
}

/// A port of a slot that something other than the slot's own containers holds.
#[derive(Debug, Clone)]
pub(crate) struct Busy {
    pub(crate) name: String,
    pub(crate) port: u16,
    /// The container holding it, when it is a container.
    pub(crate) holder: Option<String>,
}

/// The ports of `record` held by anything but the slot's own containers.
pub(crate) fn busy_ports(
    pool: &Pool,
    record: &SlotRecord,
    containers: &[Container],
    taken: &Taken,
) -> Vec<Busy> {
    let own = pool.project(record.slot_id);
    record
        .ports
        .iter()
        .filter(|(name, port)| !taken.is_free(name, **port))
        .filter_map(|(name, port)| {
            let holder = containers
                .iter()
                .find(|c| c.ports.iter().any(|p| p.public == *port));
            match holder {
                Some(c) if c.project == own => None,
                Some(c) => Some(Busy {
                    name: name.clone(),
                    port: *port,
                    holder: Some(format!(
                        "container `{}` of compose project `{}`",
                        c.name, c.project
                    )),
                }),
                None => Some(Busy {
                    name: name.clone(),
                    port: *port,
                    holder: None,
                }),
            }
        })
        .collect()
}

/// The containers of `owner`'s slot project that another registry, or a
/// person, started: compose, going by the project name alone, would take
/// them over on `up`, so such a slot is neither handed out nor started.
pub(crate) fn foreign_containers<'c>(
    project: &str,
    owner: &Owner,
    containers: &'c [Container],
) -> Vec<&'c Container> {
    containers
        .iter()
        .filter(|c| c.project == project && !owner.owns_container(c))
        .collect()
}

/// The error for a slot whose project name another registry's (or a hand-
/// started) stack uses; `None` when there is none.
pub(crate) fn foreign_stack(
    pool: &Pool,
    owner: &Owner,
    slot: u32,
    containers: &[Container],
    cmd: &str,
) -> Option<anyhow::Error> {
    let project = pool.project(slot);
    let foreign = foreign_containers(&project, owner, containers);
    let first = foreign.first()?;
    let whose = match (&first.marks.registry, first.marks.config_files.first()) {
        (Some(_), Some(file)) => match crate::owner::state_dir_of(file) {
            Some(dir) => format!("another registry (state folder `{}`)", dir.display()),
            None => format!("another registry (compose file `{}`)", file.display()),
        },
        (Some(id), None) => format!("another registry (id {id})"),
        (None, Some(file)) => match crate::owner::state_dir_of(file) {
            Some(dir) => format!(
                "the state folder `{}` (its files carry no docker sandbox labels)",
                dir.display()
            ),
            None => format!("a project started from `{}`", file.display()),
        },
        (None, None) => "a project docker sandbox did not start".to_owned(),
    };
    Some(
        UserError::new(
            NO_FREE_SLOT,
            format!(
                "slot {slot}'s compose project `{project}` is in use by {whose}: {} container(s), e.g. `{}`",
                foreign.len(),
                first.name
            ),
        )
        .hint(format!(
            "compose would take those containers over; they were left alone. Stop that stack \
             where it was started, or use another slot (`{cmd} release`, then `{cmd} claim`); \
             a state folder of its own pool name avoids the clash"
        ))
        .into(),
    )
}

/// The error for busy ports of a slot, exit code 3.
pub(crate) fn port_conflict(slot: u32, busy: &[Busy]) -> anyhow::Error {
    let first = &busy[0];
    let what: Vec<String> = busy
        .iter()
        .map(|b| {
            format!("{} ({})", b.port, b.name)
                + &b.holder
                    .as_ref()
                    .map(|h| format!(", held by {h}"))
                    .unwrap_or_default()
        })
        .collect();
    UserError::new(
        PORT_CONFLICT,
        format!("port {} of slot {slot} is in use by something else: {}", first.port, what.join("; ")),
    )
    .hint(format!(
        "this may be a sandbox the registry does not know, or another program: `ss -ltnp 'sport = :{}'` or `lsof -i :{}` shows its owner",
        first.port, first.port
    ))
    .into()
}

/// Claims a slot for `worktree` (or returns the one it holds), clears the
/// slot's old containers and volumes when the claim is new, and writes the
/// worktree's env file. A new claim goes to the engine `requested`, else to
/// the first engine with room that answers and has a slot whose ports are
/// free there (`placement::candidates` gives the order).
pub(crate) fn claim(
    pool: &Pool,
    store: &Store,
    docker: &Docker,
    requested: Option<&str>,
    worktree: &Path,
    want: Want,
    cmd: &str,
) -> Result<Claimed> {
    // A worktree that holds its slot already needs neither the lock nor the
    // engine: the registry is read whole (writes are atomic renames), and a
    // `release` racing with this could as well come right after the lock.
    let now = store.read()?;
    // A moved worktree takes its claim along (the registry's id and the
    // slot's profile stay as `now` read them).
    let held = match now.claim_of(worktree) {
        Some(id) => Some(id),
        None => follow_move(pool, store, worktree)?,
    };
    if let Some(id) = held {
        return keep_held(pool, store, &now, id, worktree, want, cmd);
    }
    if now.slots.is_empty() {
        return Err(not_provisioned(pool, cmd));
    }
    let candidates = placement::candidates(&pool.engines, requested, &now.claims_per_engine())?;
    let last = candidates.len() - 1;
    for (i, spec) in candidates.into_iter().enumerate() {
        match claim_on(pool, store, docker, spec, worktree, want, cmd) {
            Ok(c) => return Ok(c),
            Err(e)
                if i < last
                    && !crate::error::user(&e)
                        .is_some_and(|u| u.code == PORT_CONFLICT && want.slot.is_some()) =>
            {
                crate::output::note(&format!(
                    "warning: engine `{}` takes no claim: {}",
                    spec.name,
                    crate::error::user(&e).map_or_else(|| format!("{e:#}"), |u| u.message.clone())
                ));
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("candidates are never empty")
}

/// A new claim on one engine: one query of its containers (and, on another
/// host, of its listeners), outside the lock.
fn claim_on(
    pool: &Pool,
    store: &Store,
    docker: &Docker,
    spec: &EngineSpec,
    worktree: &Path,
    want: Want,
    cmd: &str,
) -> Result<Claimed> {
    let docker = spec.docker(docker);
    let engine = Engine::new(&docker);
    let containers = engine.containers(None)?;
    let taken = Taken::of(spec, &docker, &containers)?;
    let (slot, fresh, owner) = store.update(|reg| {
        // Room is counted again under the lock: claims made at the same
        // time each see the others.
        if reg.claim_of(worktree).is_none() {
            placement::candidates(
                std::slice::from_ref(spec),
                Some(&spec.name),
                &reg.claims_per_engine(),
            )?;
        }
        let picked = take_slot(pool, reg, worktree, want, &containers, &taken, cmd)?;
        if picked.1 {
            let rec = reg.slots.get_mut(&picked.0).expect("picked slot exists");
            rec.engine = (!spec.is_local()).then(|| spec.name.clone());
        }
        Ok(picked)
    })?;
    let cleaned = if fresh {
        clear_for_claim(pool, store, &engine, slot, &owner, worktree)?
    } else {
        Cleared::default()
    };
    let current = render_for_claim(pool, store, slot, fresh, worktree)?;
    write_env(pool, slot, &current.record, worktree, cmd)?;
    Ok(Claimed {
        slot,
        fresh,
        record: current.record,
        cleaned,
        owner,
        rerendered: current.rerendered,
    })
}

/// The ports in use where a slot runs: the local engine's host is probed
/// with a bind; another host is asked (its listeners and its containers'
/// published ports), and the same look gives its routes.
pub(crate) enum Taken {
    Local,
    Remote(placement::HostProbe),
}

impl Taken {
    pub(crate) fn of(
        spec: &EngineSpec,
        docker: &Docker,
        containers: &[Container],
    ) -> Result<Taken> {
        if spec.is_local() {
            return Ok(Taken::Local);
        }
        placement::probe_host(docker, containers)
            .map(Taken::Remote)
            .map_err(|e| {
                e.context(format!(
                    "failed to check the ports of engine `{}`",
                    spec.name
                ))
            })
    }

    fn is_free(&self, name: &str, port: u16) -> bool {
        match self {
            Taken::Local => crate::pool::is_free_as(name, port),
            Taken::Remote(probe) => !probe.ports.contains(&port),
        }
    }

    /// The routes of the engine's host: this machine's table for the local
    /// engine (`DOCKER_SANDBOX_ROUTES`, else `/proc/net/route`; none where
    /// there is no such file), the probe's for another.
    pub(crate) fn routes(&self) -> Vec<crate::pool::subnets::Route> {
        match self {
            Taken::Local => {
                let path = std::env::var_os("DOCKER_SANDBOX_ROUTES")
                    .filter(|v| !v.is_empty())
                    .map_or_else(
                        || std::path::PathBuf::from("/proc/net/route"),
                        std::path::PathBuf::from,
                    );
                std::fs::read_to_string(&path)
                    .map(|t| crate::pool::subnets::parse_routes(&t))
                    .unwrap_or_default()
            }
            Taken::Remote(probe) => probe.routes.clone(),
        }
    }
}

/// A slot whose compose files bind-mount the worktree cannot run on an
/// engine that does not see it: the mount is named.
pub(crate) fn unseen_binds(
    model: &crate::model::Model,
    spec: &EngineSpec,
    worktree: &Path,
) -> Option<anyhow::Error> {
    if spec.sees(worktree) {
        return None;
    }
    for (name, service) in &model.services {
        let binds = service
            .volumes
            .iter()
            .filter(|m| m.kind == crate::model::MountType::Bind)
            .filter_map(|m| m.source.as_deref().map(Path::new));
        for bind in binds {
            if bind.starts_with(worktree) {
                return Some(fail(
                    format!(
                        "engine `{}` does not see the worktree `{}`, and service `{name}` bind-mounts `{}` from it",
                        spec.name,
                        worktree.display(),
                        bind.display()
                    ),
                    format!(
                        "give [engines.{}] a `path_map` from the worktree's folder to where that host sees it, or claim on another engine (`--engine local`)",
                        spec.name
                    ),
                ));
            }
        }
    }
    None
}

/// The slot `worktree` holds already, its files brought up to date.
fn keep_held(
    pool: &Pool,
    store: &Store,
    now: &Registry,
    id: u32,
    worktree: &Path,
    want: Want,
    cmd: &str,
) -> Result<Claimed> {
    check_held(&now.slots[&id], want, cmd)?;
    let current = slot::ensure(pool, store, id, Password::Keep)?;
    write_env(pool, id, &current.record, worktree, cmd)?;
    Ok(Claimed {
        slot: id,
        fresh: false,
        record: current.record,
        cleaned: Cleared::default(),
        owner: owner(pool, now, id),
        rerendered: current.rerendered,
    })
}

/// Under the registry lock: the slot `worktree` now holds, whether the claim
/// is new, and this registry as the slot's resources show it.
fn take_slot(
    pool: &Pool,
    reg: &mut Registry,
    worktree: &Path,
    want: Want,
    containers: &[Container],
    taken: &Taken,
    cmd: &str,
) -> Result<(u32, bool, Owner)> {
    // Claimed since the first look, by another process of this worktree.
    if let Some(id) = reg.claim_of(worktree) {
        let rec = &reg.slots[&id];
        check_held(rec, want, cmd)?;
        return Ok((id, false, owner(pool, reg, id)));
    }
    // Choose by the ports the pool gives now, not those of an older render.
    slot::sync_unclaimed(pool, reg)?;
    let id = choose(pool, reg, want, containers, taken, cmd)?;
    reg.ensure_id()?;
    let rec = reg.slots.get_mut(&id).expect("picked slot exists");
    rec.claimed_by = Some(worktree.to_owned());
    rec.claimed_at = Some(Utc::now());
    rec.status = "stopped".to_owned();
    Ok((id, true, owner(pool, reg, id)))
}

/// Whatever an earlier holder left (a database volume with its old
/// password, above all) goes before the slot is handed over; only this
/// registry's own, never another state folder's of the same name. On
/// failure the claim is undone.
fn clear_for_claim(
    pool: &Pool,
    store: &Store,
    engine: &Engine,
    slot: u32,
    owner: &Owner,
    worktree: &Path,
) -> Result<Cleared> {
    match engine.remove_project(&pool.project(slot), owner) {
        Ok(r) => Ok(r),
        Err(e) => {
            unclaim(store, slot, worktree)?;
            Err(e.context(format!(
                "failed to clear slot {slot} before handing it over; the claim was undone"
            )))
        }
    }
}

/// The slot's files for the claim. A new claim's volumes start empty, so it
/// gets a new password (and is undone when rendering fails); a holder's slot
/// keeps the one its volume was made with.
fn render_for_claim(
    pool: &Pool,
    store: &Store,
    slot: u32,
    fresh: bool,
    worktree: &Path,
) -> Result<Fresh> {
    let password = if fresh { Password::New } else { Password::Keep };
    match slot::ensure(pool, store, slot, password) {
        Ok(c) => Ok(c),
        Err(e) if fresh => {
            unclaim(store, slot, worktree)?;
            Err(e.context(format!(
                "failed to render slot {slot} for the new claim; the claim was undone"
            )))
        }
        Err(e) => Err(e),
    }
}

/// A worktree moved with `git worktree move` keeps its slot: it holds no
/// claim under its new path, but its env file names the slot and the old
/// path, and that path, which holds the slot in this registry, is gone. The
/// claim moves to the new path under the registry lock; nothing of the
/// slot's stack or volumes is touched. The caller rewrites the env file.
pub(crate) fn follow_move(pool: &Pool, store: &Store, worktree: &Path) -> Result<Option<u32>> {
    let Ok(text) = std::fs::read_to_string(worktree.join(ENV_FILE)) else {
        return Ok(None);
    };
    let env = parse_env(&text);
    let value = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let Some(old) = value("SANDBOX_WORKTREE").map(PathBuf::from) else {
        return Ok(None);
    };
    if old == worktree || old.exists() {
        return Ok(None);
    }
    // The env file must name the same slot as the registry, where it says.
    let names = |rec: &SlotRecord| {
        value("SLOT_ID").is_none_or(|s| s == rec.slot_id.to_string())
            && value("COMPOSE_PROJECT_NAME").is_none_or(|p| p == pool.project(rec.slot_id))
    };
    let moved = store.update(|reg| {
        if reg.claim_of(worktree).is_some() {
            return Ok(None);
        }
        let Some(rec) = reg
            .slots
            .values_mut()
            .find(|r| r.claimed_by.as_deref() == Some(old.as_path()))
        else {
            return Ok(None);
        };
        if !names(rec) {
            return Ok(None);
        }
        rec.claimed_by = Some(worktree.to_owned());
        Ok(Some(rec.slot_id))
    })?;
    if let Some(id) = moved {
        crate::output::note(&format!(
            "Slot {id} moved with its worktree from `{}` to `{}`; its stack and volumes are kept",
            old.display(),
            worktree.display()
        ));
    }
    Ok(moved)
}

fn not_provisioned(pool: &Pool, cmd: &str) -> anyhow::Error {
    fail(
        format!("no slots are provisioned in `{}`", pool.state_dir.display()),
        format!("run `{cmd} provision` first"),
    )
}

/// A worktree asking again for the slot it holds: fine, unless it asks for
/// another slot or a heavier profile.
fn check_held(rec: &SlotRecord, want: Want, cmd: &str) -> Result<()> {
    let id = rec.slot_id;
    if let Some(want_slot) = want.slot.filter(|s| *s != id) {
        return Err(fail(
            format!("this worktree already holds slot {id}, not slot {want_slot}"),
            format!("run `{cmd} release` first to change slots"),
        ));
    }
    if let Some(p) = want.profile.filter(|p| *p > rec.profile) {
        return Err(fail(
            format!(
                "this worktree holds slot {id} ({}), lighter than `{p}`",
                rec.profile
            ),
            format!("run `{cmd} release`, then claim with `--profile {p}`"),
        ));
    }
    Ok(())
}

/// Fails as `claim` would when no slot could be had, without claiming: lets
/// `create` refuse before it makes a worktree.
pub(crate) fn check_available(
    pool: &Pool,
    store: &Store,
    docker: &Docker,
    requested: Option<&str>,
    want: Want,
    cmd: &str,
) -> Result<()> {
    let now = store.read()?;
    let candidates = placement::candidates(&pool.engines, requested, &now.claims_per_engine())?;
    let mut last = None;
    for spec in candidates {
        let docker = spec.docker(docker);
        let found = Engine::new(&docker)
            .containers(None)
            .and_then(|containers| {
                let taken = Taken::of(spec, &docker, &containers)?;
                choose(pool, &now, want, &containers, &taken, cmd)
            });
        match found {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("candidates are never empty"))
}

/// The slot a new claim gets: the one asked for, if it can be had, else the
/// lightest free one that fits and whose ports nothing else holds.
fn choose(
    pool: &Pool,
    reg: &Registry,
    want: Want,
    containers: &[Container],
    taken: &Taken,
    cmd: &str,
) -> Result<u32> {
    if reg.slots.is_empty() {
        return Err(not_provisioned(pool, cmd));
    }
    let min = want.profile.unwrap_or(Profile::Light);
    match want.slot {
        Some(id) => check_requested(pool, reg, id, min, containers, taken, cmd),
        None => reg
            .pick_free(min, |rec| {
                let project = pool.project(rec.slot_id);
                !slot::is_retired(pool, rec.slot_id)
                    && foreign_containers(&project, &owner(pool, reg, rec.slot_id), containers)
                        .is_empty()
                    && busy_ports(pool, rec, containers, taken).is_empty()
            })
            .ok_or_else(|| no_free_slot(pool, reg, min, containers, taken, cmd)),
    }
}

fn check_requested(
    pool: &Pool,
    reg: &Registry,
    id: u32,
    min: Profile,
    containers: &[Container],
    taken: &Taken,
    cmd: &str,
) -> Result<u32> {
    let Some(rec) = reg.slots.get(&id) else {
        let ids: Vec<String> = reg.slots.keys().map(u32::to_string).collect();
        return Err(fail(
            format!("slot {id} does not exist"),
            format!("the pool's slots are {}", ids.join(", ")),
        ));
    };
    if slot::is_retired(pool, id) {
        return Err(fail(
            format!(
                "slot {id} is retired: [slots] of {} no longer lists it",
                pool.origin()
            ),
            format!("pick another slot, or let `{cmd} slots` show the free ones"),
        ));
    }
    if let Some(holder) = &rec.claimed_by {
        let hint = if rec.is_orphaned() {
            format!("its worktree is gone: `{cmd} release {id}` frees it")
        } else {
            format!("pick another slot, or let `{cmd} slots` show the free ones")
        };
        return Err(UserError::new(
            NO_FREE_SLOT,
            format!("slot {id} is claimed by `{}`", holder.display()),
        )
        .hint(hint)
        .into());
    }
    if rec.profile < min {
        return Err(fail(
            format!(
                "slot {id} is `{}`, lighter than the `{min}` asked for",
                rec.profile
            ),
            "leave out --slot to get the lightest slot that fits",
        ));
    }
    if let Some(e) = foreign_stack(pool, &owner(pool, reg, id), id, containers, cmd) {
        return Err(e);
    }
    let busy = busy_ports(pool, rec, containers, taken);
    if !busy.is_empty() {
        return Err(port_conflict(id, &busy));
    }
    Ok(id)
}

fn no_free_slot(
    pool: &Pool,
    reg: &Registry,
    min: Profile,
    containers: &[Container],
    taken: &Taken,
    cmd: &str,
) -> anyhow::Error {
    let mut lines = Vec::new();
    for rec in reg.slots.values() {
        let why = match &rec.claimed_by {
            Some(p) if rec.is_orphaned() => format!(
                "claimed by `{}` (orphaned: the worktree is gone)",
                p.display()
            ),
            Some(p) => format!("claimed by `{}`", p.display()),
            None if slot::is_retired(pool, rec.slot_id) => "retired".to_owned(),
            None if rec.profile < min => "too light".to_owned(),
            None if !foreign_containers(
                &pool.project(rec.slot_id),
                &owner(pool, reg, rec.slot_id),
                containers,
            )
            .is_empty() =>
            {
                "its compose project is in use by a stack this registry did not start".to_owned()
            }
            None => match busy_ports(pool, rec, containers, taken).first() {
                Some(b) => format!("port {} ({}) is in use", b.port, b.name),
                None => "free".to_owned(),
            },
        };
        lines.push(format!("  slot {} ({}): {why}", rec.slot_id, rec.profile));
    }
    UserError::new(
        NO_FREE_SLOT,
        format!(
            "no free slot with profile `{min}` or heavier:\n{}",
            lines.join("\n")
        ),
    )
    .hint(format!(
        "release a slot with `{cmd} release SLOT`, or free orphaned claims with `{cmd} gc`"
    ))
    .into()
}

/// Frees `slot` if `worktree` still holds it.
fn unclaim(store: &Store, slot: u32, worktree: &Path) -> Result<()> {
    store.update(|reg| {
        if let Some(rec) = reg.slots.get_mut(&slot)
            && rec.claimed_by.as_deref() == Some(worktree)
        {
            rec.claimed_by = None;
            rec.claimed_at = None;
            rec.status = "stopped".to_owned();
        }
        Ok(())
    })
}

/// The worktree's `.env.sandbox`: the slot's values and this claim's identity.
/// Written on every claim, so a lost file comes back with the same content.
pub(crate) fn write_env(
    pool: &Pool,
    slot: u32,
    record: &SlotRecord,
    worktree: &Path,
    cmd: &str,
) -> Result<()> {
    let slot_env = pool.slot_dir(slot).join(ENV_FILE);
    let mut text = format!(
        "# Generated by {cmd} for slot {slot}: do not edit; it is written again on\n\
         # every claim. Variables added by hand are kept, at the end.\n"
    );
    text += &std::fs::read_to_string(&slot_env).map_err(|e| {
        fail(
            format!("cannot read `{}`: {e}", slot_env.display()),
            format!("run `{cmd} provision` to repair the slot"),
        )
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let instance = worktree
        .file_name()
        .map_or_else(|| pool.project(slot), |n| n.to_string_lossy().into_owned());
    let created = record
        .claimed_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    if let Some(name) = &record.engine
        && let Ok(spec) = placement::find(&pool.engines, Some(name))
    {
        // Another host's ports must be published on its own interfaces: a
        // template binds them with `${SANDBOX_HOST_IP:-127.0.0.1}`.
        // The contexts are docker's own (its config folder), read with no
        // global flags.
        let docker = Docker {
            bin: crate::plugin::docker_binary(),
            globals: Vec::new(),
        };
        text.push_str(&format!(
            "# This claim's engine\nSANDBOX_ENGINE={name}\nSANDBOX_HOST={}\nSANDBOX_HOST_IP={}\n",
            quote_env(&spec.host(&docker)),
            spec.bind_ip()
        ));
        // An adopted pool's slot file binds the worktree from here.
        if let Some(on) = spec.mapped(worktree) {
            text.push_str(&format!(
                "{}={}\n",
                crate::model::ENGINE_WORKTREE,
                quote_env(&on.display().to_string())
            ));
        }
    }
    text.push_str(&format!(
        "# This worktree's claim\nINSTANCE_ID={}\nSANDBOX_WORKTREE={}\nCREATED_AT={created}\nSANDBOX_VERSION={}\n",
        quote_env(&instance),
        quote_env(&worktree.display().to_string()),
        env!("CARGO_PKG_VERSION")
    ));
    let path = worktree.join(ENV_FILE);
    if let Ok(old) = std::fs::read_to_string(&path) {
        text = keep_added_lines(&old, text, &path);
    }
    if unchanged(&path, text.as_bytes()) {
        return Ok(());
    }
    fsutil::write_atomic(&path, text.as_bytes(), SECRET_MODE)?;
    worktree::exclude(worktree, ENV_FILE)
}

/// `generated` with the variables a user added to the old file at `path` kept
/// at its end; a generated variable whose value differs is replaced, and
/// named, since the slot's ports and password must stay as they are.
fn keep_added_lines(old: &str, mut generated: String, path: &Path) -> String {
    let ours: std::collections::BTreeMap<String, String> =
        parse_env(&generated).into_iter().collect();
    let mut kept = Vec::new();
    let mut replaced = Vec::new();
    for line in old.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((key, value)) = parse_env(line).into_iter().next() else {
            kept.push(line);
            continue;
        };
        match ours.get(&key) {
            None => kept.push(line),
            Some(v) if *v != value => replaced.push(key),
            Some(_) => {}
        }
    }
    // Edited by hand, or the slot's values changed (a re-rendered slot):
    // either way the user learns which values the file now holds anew.
    if !replaced.is_empty() {
        crate::output::note(&format!(
            "warning: `{}`: the slot's values were written again over {} \
             (the file is generated; variables of your own are kept)",
            path.display(),
            replaced.join(", ")
        ));
    }
    if !kept.is_empty() {
        generated.push_str(ADDED_MARK);
        for line in &kept {
            generated.push_str(line);
            generated.push('\n');
        }
    }
    generated
}

/// Heads the lines a user added to a worktree's env file, when it is written again.
const ADDED_MARK: &str = "# Added by hand, kept\n";

/// The env file at `path` already holds `text` with its private mode: an
/// `up` of a claimed worktree neither rewrites it nor asks git again.
fn unchanged(path: &Path, text: &[u8]) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.permissions().mode() & 0o777 == SECRET_MODE
        && meta.len() == text.len() as u64
        && std::fs::read(path).is_ok_and(|old| old == text)
}

/// Checks that `caller` may release `slot`: its own claim, an orphan, or `force`.
pub(crate) fn may_release(
    reg: &Registry,
    slot: u32,
    caller: Option<&Path>,
    force: bool,
    cmd: &str,
) -> Result<Option<PathBuf>> {
    let Some(rec) = reg.slots.get(&slot) else {
        let ids: Vec<String> = reg.slots.keys().map(u32::to_string).collect();
        return Err(fail(
            format!("slot {slot} does not exist"),
            format!("the pool's slots are {}", ids.join(", ")),
        ));
    };
    let Some(holder) = rec.claimed_by.clone() else {
        return Ok(None);
    };
    if holder.exists() && caller != Some(holder.as_path()) && !force {
        return Err(fail(
            format!(
                "slot {slot} is claimed by `{}` which still exists",
                holder.display()
            ),
            format!("run `{cmd} release {slot} --force` to free it anyway"),
        ));
    }
    Ok(Some(holder))
}

/// Frees a claim after its stack is down: the registry entry, and the
/// holder's env file when the holder still exists.
pub(crate) fn finish_release(store: &Store, slot: u32, holder: &Path) -> Result<()> {
    unclaim(store, slot, holder)?;
    let env = holder.join(ENV_FILE);
    match std::fs::remove_file(&env) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("failed to remove `{}`", env.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dialect, Model, Mount, MountType, Service};

    fn model(binds: &[&str]) -> Model {
        let volumes = binds
            .iter()
            .map(|b| Mount {
                kind: MountType::Bind,
                source: Some((*b).to_owned()),
                target: "/app".into(),
                outside_project: false,
            })
            .collect();
        let web = Service {
            name: "web".into(),
            volumes,
            ..Service::default()
        };
        Model {
            project: "p-slot-1".into(),
            services: [("web".to_owned(), web)].into(),
            volumes: Default::default(),
            networks: Default::default(),
            dialect: Dialect::Json,
            raw: serde_json::Value::Null,
            compose_version: "2.29.7".into(),
        }
    }

    fn engine(path_map: &[(&str, &str)]) -> EngineSpec {
        EngineSpec {
            name: "far".into(),
            context: Some("far".into()),
            path_map: path_map
                .iter()
                .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
                .collect(),
            ..EngineSpec::local()
        }
    }

    #[test]
    fn a_bind_of_the_worktree_is_refused_where_the_engine_does_not_see_it() {
        let wt = Path::new("/src/app--feat");
        let binds = model(&["/src/app--feat/code", "/etc/hosts"]);
        let err = unseen_binds(&binds, &engine(&[]), wt).expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("engine `far` does not see the worktree `/src/app--feat`")
                && text.contains("service `web` bind-mounts `/src/app--feat/code`"),
            "{text}"
        );
        assert!(unseen_binds(&binds, &engine(&[("/src", "/mnt/src")]), wt).is_none());
        assert!(unseen_binds(&binds, &EngineSpec::local(), wt).is_none());
        // A stack without binds of the worktree (built from it) runs anywhere.
        assert!(unseen_binds(&model(&["/etc/hosts"]), &engine(&[]), wt).is_none());
    }
}
