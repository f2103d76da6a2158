//! A slot's folder on disk: which of its parts exist, and writing the missing
//! ones (compose file, env file, registry record). It prints nothing.

use std::path::Path;

use anyhow::Result;

use crate::config::Pool;
use crate::fsutil;
use crate::ports::{self, SlotPorts};
use crate::registry::{Registry, SlotRecord};
use crate::template::{Rendered, Renderer, SlotContext, random_password};

pub(crate) const COMPOSE_FILE: &str = "docker-compose.yml";
pub(crate) const ENV_FILE: &str = ".env.sandbox";

/// Files holding a password are private to the user.
pub(crate) const SECRET_MODE: u32 = 0o600;

/// The variables of an env file's text, in file order: `KEY=value` lines
/// (`export KEY=value` too), comments and blank lines skipped.
pub(crate) fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().trim_start_matches("export ").trim().to_owned(),
                v.to_owned(),
            )
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// One part of a provisioned slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Compose,
    Env,
    Record,
}

impl Part {
    pub(crate) const ALL: [Part; 3] = [Part::Compose, Part::Env, Part::Record];

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Part::Compose => COMPOSE_FILE,
            Part::Env => ENV_FILE,
            Part::Record => "registry entry",
        }
    }
}

/// What provisioning a slot has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing of it exists.
    Create,
    /// Everything exists.
    Complete,
    /// Some parts are missing.
    Repair(Vec<Part>),
}

pub(crate) fn plan(pool: &Pool, registry: &Registry, slot: u32) -> Plan {
    let dir = pool.slot_dir(slot);
    let has_record = registry.slots.contains_key(&slot);
    if !has_record && !dir.exists() {
        return Plan::Create;
    }
    let missing: Vec<Part> = Part::ALL
        .into_iter()
        .filter(|part| match part {
            Part::Compose => !dir.join(COMPOSE_FILE).is_file(),
            Part::Env => !dir.join(ENV_FILE).is_file(),
            Part::Record => !has_record,
        })
        .collect();
    if missing.is_empty() {
        Plan::Complete
    } else {
        Plan::Repair(missing)
    }
}

/// Renders a slot's files with a new password, writing nothing.
pub(crate) fn render(
    pool: &Pool,
    renderer: &Renderer,
    slot: u32,
    registry_id: &str,
) -> Result<(SlotPorts, Rendered)> {
    let ports = ports::slot_ports(pool, slot)?;
    let password = random_password()?;
    let ctx = SlotContext::new(pool, slot, &ports, &password, registry_id);
    let rendered = renderer.render(pool, &ctx)?;
    Ok((ports, rendered))
}

/// Writes `parts` of a slot from its rendering. A kept env file keeps its
/// password; a new one gets the rendering's new password.
pub(crate) fn write(
    pool: &Pool,
    registry: &mut Registry,
    slot: u32,
    parts: &[Part],
    (ports, rendered): &(SlotPorts, Rendered),
) -> Result<()> {
    let dir = pool.slot_dir(slot);
    fsutil::create_dir_all(&dir)?;
    if parts.contains(&Part::Compose) {
        fsutil::write_atomic(&dir.join(COMPOSE_FILE), rendered.compose.as_bytes(), 0o644)?;
    }
    if parts.contains(&Part::Env) {
        fsutil::write_atomic(&dir.join(ENV_FILE), rendered.env.as_bytes(), SECRET_MODE)?;
    }
    if parts.contains(&Part::Record) {
        registry.slots.insert(slot, record(pool, slot, &dir, ports));
    }
    Ok(())
}

fn record(pool: &Pool, slot: u32, dir: &Path, ports: &SlotPorts) -> SlotRecord {
    SlotRecord {
        slot_id: slot,
        infrastructure_path: dir.to_owned(),
        profile: pool.slots[&slot],
        workers: pool.workers(slot).clone(),
        ports: ports.all().collect(),
        claimed_by: None,
        claimed_at: None,
        status: "stopped".to_owned(),
    }
}
