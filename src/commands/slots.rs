//! `slots [--format table|json]`: every provisioned slot, its claim and status,
//! and what changed under it: a stack started from files that changed since
//! ("restart to apply"), ports pinned by a claim, slots `[slots]` retired.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::status::{short_name, slot_state, state_tone};
use crate::output::{self, Tone};
use crate::pool::{Pool, Profile, WorkerCounts};
use crate::registry::{Registry, SlotRecord};
use crate::slot;
use crate::template::Renderer;

/// `slots --format json`: field names are part of the interface.
#[derive(Serialize)]
struct SlotsJson<'a> {
    pool: crate::pool::Summary,
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
    /// The engine its claim runs on (`local` unless the pool names others).
    engine: &'a str,
    orphaned: bool,
    status: String,
    /// `[slots]` no longer lists it: `gc` frees it once unclaimed.
    retired: bool,
    /// Its stack runs from files that changed since it started.
    restart_to_apply: bool,
    /// Ports the pool now gives that a claim keeps pinned until released.
    pending_ports: std::collections::BTreeMap<String, u16>,
}

/// What changed under one slot.
pub(crate) struct Drift {
    pub(crate) retired: bool,
    pub(crate) restart_to_apply: bool,
    pub(crate) pending_ports: std::collections::BTreeMap<String, u16>,
}

/// What changed under `rec`, whose stack is in `state`.
pub(crate) fn drift(
    pool: &Pool,
    renderer: Option<&Renderer>,
    registry: &Registry,
    rec: &SlotRecord,
    state: &str,
) -> Drift {
    let up = matches!(state, "running" | "partial");
    Drift {
        retired: slot::is_retired(pool, rec.slot_id),
        restart_to_apply: up && slot::restart_to_apply(pool, renderer, registry, rec.slot_id),
        pending_ports: slot::pending_ports(pool, rec),
    }
}

/// A port map as `api 8012, db 5445`.
pub(crate) fn show_ports(ports: &std::collections::BTreeMap<String, u16>) -> String {
    let list: Vec<String> = ports.iter().map(|(n, p)| format!("{n} {p}")).collect();
    list.join(", ")
}

pub(crate) fn exec(ctx: &Ctx, format: Format) -> Result<u8> {
    let pool = ctx.pool()?;
    let registry = ctx.store(&pool).read()?;
    let live = (!registry.slots.is_empty())
        .then(|| {
            super::ask_engines(ctx, &pool, &|e| {
                output::note(&format!(
                    "warning: status is the registry's last known state: {e:#}"
                ));
            })
        })
        .flatten();
    let renderer = Renderer::for_fingerprints(&pool).ok();
    let slots = Slots {
        ctx,
        pool: &pool,
        registry: &registry,
        live: live.as_ref(),
        renderer: renderer.as_ref(),
    };
    if format == Format::Json {
        slots.print_json();
    } else if registry.slots.is_empty() {
        output::line(&pool.line());
        output::line(&format!(
            "No slots provisioned in `{}`. Run `{} provision` to create them.",
            pool.state_dir.display(),
            ctx.cmd_name()
        ));
    } else {
        output::line(&pool.line());
        slots.print_table();
    }
    Ok(0)
}

/// The registry's slots and what is known of each.
struct Slots<'a> {
    ctx: &'a Ctx,
    pool: &'a Pool,
    registry: &'a Registry,
    live: Option<&'a super::Live>,
    renderer: Option<&'a Renderer>,
}

/// What the table's rows found, said under it.
#[derive(Default)]
struct Notes {
    orphans: usize,
    retired: Vec<String>,
    pinned: Vec<String>,
}

impl Slots<'_> {
    fn status(&self, s: &SlotRecord) -> String {
        slot_state(self.ctx, self.pool, self.live, s)
    }

    fn drift(&self, s: &SlotRecord, state: &str) -> Drift {
        drift(self.pool, self.renderer, self.registry, s, state)
    }

    fn print_json(&self) {
        let pool = self.pool;
        output::json(&SlotsJson {
            pool: pool.summary(),
            state_dir: &pool.state_dir,
            live: self.live.is_some(),
            slots: self
                .registry
                .slots
                .values()
                .map(|s| {
                    let status = self.status(s);
                    let d = self.drift(s, &status);
                    SlotJson {
                        slot: s.slot_id,
                        profile: s.profile,
                        project: pool.project(s.slot_id),
                        path: &s.infrastructure_path,
                        ports: &s.ports,
                        workers: &s.workers,
                        claimed_by: s.claimed_by.as_ref(),
                        claimed_at: s.claimed_at,
                        engine: s.engine.as_deref().unwrap_or(crate::engine::LOCAL),
                        orphaned: s.is_orphaned(),
                        status,
                        retired: d.retired,
                        restart_to_apply: d.restart_to_apply,
                        pending_ports: d.pending_ports,
                    }
                })
                .collect(),
        });
    }

    fn print_table(&self) {
        let main_port = main_port(self.pool);
        let port_header = if main_port == "api" {
            "API Port".to_owned()
        } else {
            format!("{main_port} port")
        };
        let mut notes = Notes::default();
        let rows = self
            .registry
            .slots
            .values()
            .map(|s| self.row(s, main_port, &mut notes))
            .collect();
        let mut headers = vec!["Slot", "Profile", &port_header, "Claimed By", "Status"];
        if self.pool.engines.len() > 1 {
            headers.insert(4, "Engine");
        }
        output::table(&headers, rows);
        notes.print(&self.ctx.cmd_name());
    }

    /// One slot's row: its claim, and its status with what changed under it.
    fn row(&self, s: &SlotRecord, main_port: &str, notes: &mut Notes) -> Vec<(String, Tone)> {
        let claim = match &s.claimed_by {
            None => ("-".to_owned(), Tone::Dim),
            Some(path) if s.is_orphaned() => {
                notes.orphans += 1;
                (format!("{} (orphaned)", short_name(path)), Tone::Warn)
            }
            Some(path) => (short_name(path), Tone::Plain),
        };
        let mut status = self.status(s);
        let mut status_tone = state_tone(&status);
        let d = self.drift(s, &status);
        if d.restart_to_apply {
            status.push_str(", restart to apply");
            status_tone = Tone::Warn;
        }
        if d.retired {
            status.push_str(", retired");
            status_tone = Tone::Warn;
            notes.retired.push(s.slot_id.to_string());
        }
        if !d.pending_ports.is_empty() {
            notes.pinned.push(format!(
                "slot {} keeps its ports until released (then {})",
                s.slot_id,
                show_ports(&d.pending_ports)
            ));
        }
        let mut row = vec![
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
        ];
        if self.pool.engines.len() > 1 {
            let engine = match (&s.claimed_by, &s.engine) {
                (None, _) => "-",
                (Some(_), e) => e.as_deref().unwrap_or(crate::engine::LOCAL),
            };
            row.insert(4, (engine.to_owned(), Tone::Plain));
        }
        row
    }
}

/// The port people open: `api` where the pool has one, else its first port.
fn main_port(pool: &Pool) -> &str {
    pool.ports
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| *n == "api")
        .or_else(|| pool.ports.first().map(|(n, _)| n.as_str()))
        .unwrap_or("api")
}

impl Notes {
    fn print(&self, cmd: &str) {
        for line in &self.pinned {
            output::note(line);
        }
        if !self.retired.is_empty() {
            output::note(&format!(
                "slot(s) {} retired: [slots] no longer lists them. `{cmd} gc` frees them once unclaimed.",
                self.retired.join(", "),
            ));
        }
        if self.orphans > 0 {
            output::note(&format!(
                "{} claim(s) orphaned: the worktree that claimed the slot no longer exists. \
                 `{cmd} gc` frees them.",
                self.orphans,
            ));
        }
    }
}
