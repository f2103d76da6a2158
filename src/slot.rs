//! A slot's folder on disk: its rendered files, derived from the templates
//! and the pool (they carry a fingerprint of those inputs and are rendered
//! again when it changes), the registry record that goes with them, and the
//! fingerprint its stack was started from. It prints nothing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::envfile::parse_env;
use crate::fsutil;
use crate::pool::Pool;
use crate::pool::{SlotPorts, slot_ports};
use crate::registry::{Registry, SlotRecord, Store};
use crate::template::{
    self, Rendered, Renderer, SecretValues, SlotContext, db_password_secret, random_password,
};

pub(crate) const COMPOSE_FILE: &str = "docker-compose.yml";
pub(crate) const ENV_FILE: &str = ".env.sandbox";
/// Each network's subnet of the slot's block, merged after `COMPOSE_FILE`.
pub(crate) const NETWORKS_FILE: &str = "networks.yml";
/// The fingerprint of the files the slot's stack was last started from.
const STACK_FILE: &str = ".stack-fingerprint";

/// Files holding a password are private to the user.
pub(crate) const SECRET_MODE: u32 = 0o600;

// ---------------------------------------------------------------------------
// What a slot should be, and what it is.
// ---------------------------------------------------------------------------

/// One part of a provisioned slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Compose,
    Env,
    /// Another rendered file of the slot folder: the embedded stack's
    /// `prometheus.yml`.
    Extra(&'static str),
    Record,
}

impl Part {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Part::Compose => COMPOSE_FILE,
            Part::Env => ENV_FILE,
            Part::Extra(name) => name,
            Part::Record => "registry entry",
        }
    }
}

/// What provisioning a slot has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing of it exists.
    Create,
    /// Everything exists and matches the templates and the pool.
    Complete,
    /// Some parts are missing: all are written again, keeping the password.
    Repair(Vec<Part>),
    /// Every part exists but was rendered from other inputs (or `--force`).
    Rerender,
}

/// Which password a rendering uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Password {
    /// The slot's current one (its volume was made with it); a new one only
    /// when no file holds it any more.
    Keep,
    /// A new one: for a new claim, whose volumes start empty.
    New,
}

/// A slot as the templates and the pool make it now.
#[derive(Debug)]
pub(crate) struct Desired {
    pub(crate) ports: SlotPorts,
    pub(crate) rendered: Rendered,
    pub(crate) record: SlotRecord,
    /// The password was read from the slot's files (else it is new).
    pub(crate) kept_password: bool,
    /// The compose file holds the password too (a template may put it there).
    pub(crate) compose_secret: bool,
}

/// A slot that `[slots]` no longer lists: shown as retired, freed by `gc`.
pub(crate) fn is_retired(pool: &Pool, slot: u32) -> bool {
    !pool.slots.contains_key(&slot)
}

/// The slot's ports under the pool's rules; a claimed slot keeps the values
/// its record pinned at claim time (a port new to the pool gets the pool's).
fn ports_for(pool: &Pool, slot: u32, record: Option<&SlotRecord>) -> Result<SlotPorts> {
    let mut ports = slot_ports(pool, slot)?;
    if let Some(rec) = record.filter(|r| r.claimed_by.is_some()) {
        for (name, port) in &mut ports.named {
            if let Some(p) = rec.ports.get(name) {
                *port = *p;
            }
        }
        for w in &mut ports.workers {
            if let Some(p) = rec.ports.get(&format!("worker_{}", w.index + 1)) {
                w.port = *p;
            }
        }
    }
    Ok(ports)
}

/// The ports a claimed slot keeps although the pool now gives others:
/// name -> the pool's port, applied once the slot is released.
pub(crate) fn pending_ports(pool: &Pool, rec: &SlotRecord) -> BTreeMap<String, u16> {
    if rec.claimed_by.is_none() || is_retired(pool, rec.slot_id) {
        return BTreeMap::new();
    }
    let Ok(now) = slot_ports(pool, rec.slot_id) else {
        return BTreeMap::new();
    };
    now.all()
        .filter(|(name, port)| rec.ports.get(name).is_some_and(|p| p != port))
        .collect()
}

/// Brings the registry record of every unclaimed slot of the pool to the
/// pool's ports, profile and workers, so that choosing a slot sees them.
pub(crate) fn sync_unclaimed(pool: &Pool, reg: &mut Registry) -> Result<()> {
    for rec in reg.slots.values_mut() {
        if rec.claimed_by.is_some() || is_retired(pool, rec.slot_id) {
            continue;
        }
        rec.ports = slot_ports(pool, rec.slot_id)?.all().collect();
        rec.profile = pool.slots[&rec.slot_id];
        rec.workers = pool.workers(rec.slot_id).clone();
    }
    Ok(())
}

/// Renders a slot of the pool as it should be now, writing nothing.
pub(crate) fn desired(
    pool: &Pool,
    renderer: &Renderer,
    registry: &Registry,
    slot: u32,
    password: Password,
) -> Result<Desired> {
    let old = registry.slots.get(&slot);
    let ports = ports_for(pool, slot, old)?;
    let worktree = old.and_then(|r| r.claimed_by.as_deref());
    let mut kept = match password {
        Password::Keep => current_secrets(pool, renderer, slot, old, &ports)?,
        Password::New => BTreeMap::new(),
    };
    let kept_password = kept.contains_key(&None);
    let password = match kept.remove(&None) {
        Some(p) => p,
        None => random_password()?,
    };
    let db = db_password_secret(pool);
    let mut secrets = SecretValues::new();
    for name in pool
        .secrets
        .random
        .iter()
        .filter(|n| Some(*n) != db.as_ref())
    {
        let value = match kept.remove(&Some(name.clone())) {
            Some(v) => v,
            None => random_password()?,
        };
        secrets.insert(name.clone(), value);
    }
    let registry_id = registry.id.as_deref().unwrap_or_default();
    let context = SlotContext {
        worktree,
        ..SlotContext::new(pool, slot, &ports, &password, secrets, registry_id)
    };
    let rendered = renderer.render(pool, &context)?;
    let compose_secret = std::iter::once(&password)
        .chain(context.secrets.values())
        .any(|v| rendered.compose.contains(v.as_str()));
    let dir = pool.slot_dir(slot);
    let mut record = old
        .cloned()
        .unwrap_or_else(|| new_record(pool, slot, &dir, &ports));
    record.infrastructure_path = dir;
    record.profile = pool.slots[&slot];
    record.workers = pool.workers(slot).clone();
    record.ports = ports.all().collect();
    Ok(Desired {
        ports,
        rendered,
        record,
        kept_password,
        compose_secret,
    })
}

/// The secrets the slot's files hold now: the password (under `None`) and
/// each `[secrets] random` value, from the env lines the templates fill with
/// them, read from the slot's env file, else from its holder's. Found by
/// rendering with a marker in the place of each.
fn current_secrets(
    pool: &Pool,
    renderer: &Renderer,
    slot: u32,
    record: Option<&SlotRecord>,
    ports: &SlotPorts,
) -> Result<BTreeMap<Option<String>, String>> {
    const MARK: &str = "0docker0sandbox0password0";
    let db = db_password_secret(pool);
    let mut marks: Vec<(Option<String>, String)> = vec![(None, MARK.to_owned())];
    let mut probes = SecretValues::new();
    for (i, name) in pool.secrets.random.iter().enumerate() {
        if Some(name) == db.as_ref() {
            continue;
        }
        let mark = format!("0docker0sandbox0secret{i}x0");
        probes.insert(name.clone(), mark.clone());
        marks.push((Some(name.clone()), mark));
    }
    let probe =
        renderer.render_bare(pool, &SlotContext::new(pool, slot, ports, MARK, probes, ""))?;
    let between = |text: &str, before: &str, after: &str| -> Option<String> {
        let p = text.strip_prefix(before)?.strip_suffix(after)?;
        (!p.is_empty()).then(|| p.to_owned())
    };
    // (whose, key, before, after) of each env line that holds a marker.
    let shapes: Vec<(Option<String>, String, String, String)> = parse_env(&probe.env)
        .into_iter()
        .filter_map(|(k, v)| {
            let (whose, mark) = marks.iter().find(|(_, m)| v.contains(m.as_str()))?;
            let (before, after) = v.split_once(mark.as_str())?;
            Some((whose.clone(), k, before.to_owned(), after.to_owned()))
        })
        .collect();
    let mut found = BTreeMap::new();
    let mut files = vec![pool.slot_dir(slot).join(ENV_FILE)];
    files.extend(
        record
            .and_then(|r| r.claimed_by.as_ref())
            .map(|w| w.join(ENV_FILE)),
    );
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let values: BTreeMap<String, String> = parse_env(&text).into_iter().collect();
        for (whose, key, before, after) in &shapes {
            if found.contains_key(whose) {
                continue;
            }
            if let Some(p) = values.get(key).and_then(|v| between(v, before, after)) {
                found.insert(whose.clone(), p);
            }
        }
    }
    // A template may put one in the compose file only: the same line there.
    let Ok(compose) = std::fs::read_to_string(pool.slot_dir(slot).join(COMPOSE_FILE)) else {
        return Ok(found);
    };
    for (want, have) in probe.compose.lines().zip(compose.lines()) {
        for (whose, mark) in &marks {
            if found.contains_key(whose) {
                continue;
            }
            if let Some((before, after)) = want.split_once(mark.as_str())
                && let Some(p) = between(have, before, after)
            {
                found.insert(whose.clone(), p);
            }
        }
    }
    Ok(found)
}

/// The plan for one slot of the pool, given what it should be.
pub(crate) fn plan(pool: &Pool, registry: &Registry, slot: u32, want: &Desired) -> Plan {
    let dir = pool.slot_dir(slot);
    let has_record = registry.slots.contains_key(&slot);
    if !has_record && !dir.exists() {
        return Plan::Create;
    }
    let parts = [Part::Compose, Part::Env]
        .into_iter()
        .chain(
            want.rendered
                .extra
                .iter()
                .map(|(name, _)| Part::Extra(name)),
        )
        .chain([Part::Record]);
    let missing: Vec<Part> = parts
        .filter(|part| match part {
            Part::Compose => !dir.join(COMPOSE_FILE).is_file(),
            Part::Env => !dir.join(ENV_FILE).is_file(),
            Part::Extra(name) => !dir.join(name).is_file(),
            Part::Record => !has_record,
        })
        .collect();
    if !missing.is_empty() {
        Plan::Repair(missing)
    } else if up_to_date(pool, registry, slot, want) {
        Plan::Complete
    } else {
        Plan::Rerender
    }
}

/// The slot's files and record are exactly what `want` renders.
fn up_to_date(pool: &Pool, registry: &Registry, slot: u32, want: &Desired) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let dir = pool.slot_dir(slot);
    let same =
        |name: &str, text: &str| std::fs::read(dir.join(name)).is_ok_and(|b| b == text.as_bytes());
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name)).map_or(0, |m| m.permissions().mode() & 0o777)
    };
    let private = mode(ENV_FILE) == SECRET_MODE
        && (!want.compose_secret || mode(COMPOSE_FILE) == SECRET_MODE);
    let networks = match &want.rendered.networks {
        Some(text) => same(NETWORKS_FILE, text),
        None => !dir.join(NETWORKS_FILE).exists(),
    };
    registry.slots.get(&slot) == Some(&want.record)
        && same(COMPOSE_FILE, &want.rendered.compose)
        && same(ENV_FILE, &want.rendered.env)
        && want
            .rendered
            .extra
            .iter()
            .all(|(name, text)| same(name, text))
        && networks
        && private
}

/// Writes a slot's files and record as `want` renders them.
pub(crate) fn write(pool: &Pool, registry: &mut Registry, slot: u32, want: &Desired) -> Result<()> {
    let dir = pool.slot_dir(slot);
    fsutil::create_dir_all(&dir)?;
    let compose_mode = if want.compose_secret {
        SECRET_MODE
    } else {
        0o644
    };
    fsutil::write_atomic(
        &dir.join(COMPOSE_FILE),
        want.rendered.compose.as_bytes(),
        compose_mode,
    )?;
    fsutil::write_atomic(
        &dir.join(ENV_FILE),
        want.rendered.env.as_bytes(),
        SECRET_MODE,
    )?;
    for (name, text) in &want.rendered.extra {
        fsutil::write_atomic(&dir.join(name), text.as_bytes(), 0o644)?;
    }
    let networks = dir.join(NETWORKS_FILE);
    match &want.rendered.networks {
        Some(text) => fsutil::write_atomic(&networks, text.as_bytes(), 0o644)?,
        None => match std::fs::remove_file(&networks) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("failed to remove `{}`", networks.display()));
            }
        },
    }
    registry.slots.insert(slot, want.record.clone());
    Ok(())
}

/// A slot as a command found it, after `ensure`.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub(crate) record: SlotRecord,
    /// Its files were rendered again just now.
    pub(crate) rerendered: bool,
}

/// Renders the slot again when its files or record differ from what the
/// templates and the pool make of it now (a slot `[slots]` no longer lists
/// is left as it is). With `Password::New`, always: a new claim's password.
pub(crate) fn ensure(pool: &Pool, store: &Store, slot: u32, password: Password) -> Result<Fresh> {
    let now = store.read()?;
    let Some(rec) = now.slots.get(&slot) else {
        anyhow::bail!(
            "slot {slot} is not in the registry `{}`",
            store.path.display()
        );
    };
    if is_retired(pool, slot) {
        return Ok(Fresh {
            record: rec.clone(),
            rerendered: false,
        });
    }
    let renderer = Renderer::new(pool)?;
    if password == Password::Keep {
        let want = desired(pool, &renderer, &now, slot, password)?;
        if up_to_date(pool, &now, slot, &want) {
            return Ok(Fresh {
                record: want.record,
                rerendered: false,
            });
        }
    }
    store.update(|reg| {
        // The files carry the registry's id: one that has none gets it now.
        reg.ensure_id()?;
        let want = desired(pool, &renderer, reg, slot, password)?;
        let rerendered = !up_to_date(pool, reg, slot, &want);
        if rerendered {
            write(pool, reg, slot, &want)?;
        }
        Ok(Fresh {
            record: want.record,
            rerendered,
        })
    })
}

fn new_record(pool: &Pool, slot: u32, dir: &Path, ports: &SlotPorts) -> SlotRecord {
    SlotRecord {
        slot_id: slot,
        infrastructure_path: dir.to_owned(),
        profile: pool.slots[&slot],
        workers: pool.workers(slot).clone(),
        ports: ports.all().collect(),
        claimed_by: None,
        claimed_at: None,
        status: "stopped".to_owned(),
        engine: None,
    }
}

// ---------------------------------------------------------------------------
// The files a running stack was started from.
// ---------------------------------------------------------------------------

/// The fingerprint of the slot's files as they are on disk.
pub(crate) fn files_fingerprint(pool: &Pool, slot: u32) -> Option<String> {
    let text = std::fs::read_to_string(pool.slot_dir(slot).join(COMPOSE_FILE)).ok()?;
    template::fingerprint_of(&text).map(str::to_owned)
}

/// Records that the slot's stack was started from its files as they are now.
pub(crate) fn mark_started(pool: &Pool, slot: u32) -> Result<()> {
    let path = pool.slot_dir(slot).join(STACK_FILE);
    match files_fingerprint(pool, slot) {
        Some(f) => fsutil::write_atomic(&path, format!("{f}\n").as_bytes(), 0o644),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("failed to remove `{}`", path.display())),
        },
    }
}

/// The fingerprint of the files the slot's stack was last started from.
pub(crate) fn started_fingerprint(pool: &Pool, slot: u32) -> Option<String> {
    let text = std::fs::read_to_string(pool.slot_dir(slot).join(STACK_FILE)).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Whether a stack started from the slot's files would now be started from
/// other ones: the templates or the pool changed since `up` (the files may
/// not even be rendered again yet). Unknown (a stack started before
/// fingerprints, a slot without its files) is no.
pub(crate) fn restart_to_apply(
    pool: &Pool,
    renderer: Option<&Renderer>,
    registry: &Registry,
    slot: u32,
) -> bool {
    let (Some(renderer), Some(started)) = (renderer, started_fingerprint(pool, slot)) else {
        return false;
    };
    if is_retired(pool, slot) || !registry.slots.contains_key(&slot) {
        return false;
    }
    match desired(pool, renderer, registry, slot, Password::Keep) {
        Ok(want) if want.kept_password => want.rendered.fingerprint != started,
        _ => false,
    }
}
