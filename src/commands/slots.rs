//! `slots [--format table|json]`: every provisioned slot, its claim and status.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::status::{short_name, slot_state, state_tone};
use crate::config::{Profile, WorkerCounts};
use crate::output::{self, Tone};
use crate::registry::SlotRecord;

/// `slots --format json`: field names are part of the interface.
#[derive(Serialize)]
struct SlotsJson<'a> {
    pool: &'a str,
    state_dir: &'a Path,
    /// Whether `status` comes from the engine (else the registry's last hint).
    live: bool,
    slots: Vec<SlotJson<'a>>,
}

#[derive(Serialize)]
struct SlotJson<'a> {
    slot: u32,
    profile: Profile,
    project: String,
    path: &'a Path,
    ports: &'a std::collections::BTreeMap<String, u16>,
    workers: &'a WorkerCounts,
    claimed_by: Option<&'a PathBuf>,
    claimed_at: Option<DateTime<Utc>>,
    orphaned: bool,
    status: String,
}

pub(crate) fn exec(ctx: &Ctx, format: Format) -> Result<u8> {
    let pool = ctx.pool()?;
    let registry = ctx.store(&pool).read()?;
    let orphaned = |s: &SlotRecord| s.is_orphaned();
    // One engine query for the whole pool; without an engine, the registry's hint.
    let live = if registry.slots.is_empty() {
        None
    } else {
        match ctx.engine().containers(None) {
            Ok(list) => Some(list),
            Err(e) => {
                output::note(&format!(
                    "warning: status is the registry's last known state: {e:#}"
                ));
                None
            }
        }
    };
    let status_of = |s: &SlotRecord| slot_state(ctx, &pool, live.as_deref(), s);

    if format == Format::Json {
        output::json(&SlotsJson {
            pool: &pool.name,
            state_dir: &pool.state_dir,
            live: live.is_some(),
            slots: registry
                .slots
                .values()
                .map(|s| SlotJson {
                    slot: s.slot_id,
                    profile: s.profile,
                    project: pool.project(s.slot_id),
                    path: &s.infrastructure_path,
                    ports: &s.ports,
                    workers: &s.workers,
                    claimed_by: s.claimed_by.as_ref(),
                    claimed_at: s.claimed_at,
                    orphaned: orphaned(s),
                    status: status_of(s),
                })
                .collect(),
        });
        return Ok(0);
    }

    if registry.slots.is_empty() {
        output::line(&format!(
            "No slots provisioned in `{}`. Run `{} provision` to create them.",
            pool.state_dir.display(),
            ctx.cmd_name()
        ));
        return Ok(0);
    }
    // The port people open: `api` where the pool has one, else its first port.
    let main_port = pool
        .ports
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| *n == "api")
        .or_else(|| pool.ports.first().map(|(n, _)| n.as_str()))
        .unwrap_or("api");
    let port_header = if main_port == "api" {
        "API Port".to_owned()
    } else {
        format!("{main_port} port")
    };
    let mut orphans = 0;
    let rows = registry
        .slots
        .values()
        .map(|s| {
            let claim = match &s.claimed_by {
                None => ("-".to_owned(), Tone::Dim),
                Some(path) if orphaned(s) => {
                    orphans += 1;
                    (format!("{} (orphaned)", short_name(path)), Tone::Warn)
                }
                Some(path) => (short_name(path), Tone::Plain),
            };
            let status = status_of(s);
            let status_tone = state_tone(&status);
            vec![
                (s.slot_id.to_string(), Tone::Plain),
                (s.profile.to_string(), Tone::Plain),
                (
                    s.ports
                        .get(main_port)
                        .map_or("-".to_owned(), u16::to_string),
                    Tone::Plain,
                ),
                claim,
                (status, status_tone),
            ]
        })
        .collect();
    output::table(
        &["Slot", "Profile", &port_header, "Claimed By", "Status"],
        rows,
    );
    if orphans > 0 {
        output::note(&format!(
            "{orphans} claim(s) orphaned: the worktree that claimed the slot no longer exists. \
             `{} gc` frees them.",
            ctx.cmd_name()
        ));
    }
    Ok(0)
}
