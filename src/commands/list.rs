//! `list [--format json]`: this repository's worktrees and every claimed
//! worktree, with their slots, URLs and live state.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::commands::status::{short_name, slot_state, state_tone};
use crate::commands::{Ctx, addresses};
use crate::output::{self, Tone};
use crate::pool::{Pool, Profile};
use crate::registry::Registry;
use crate::worktree;

/// A slot's state when the engine did not answer.
const UNKNOWN: &str = "unknown";

#[derive(Serialize)]
struct ListJson {
    pool: crate::pool::Summary,
    live: bool,
    worktrees: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    path: PathBuf,
    branch: Option<String>,
    slot: Option<u32>,
    profile: Option<Profile>,
    project: Option<String>,
    urls: std::collections::BTreeMap<String, String>,
    /// `running`, `partial`, `stopped`; `unknown` when the engine could not
    /// be asked; `null` without a slot.
    status: Option<String>,
    claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The worktree's folder is gone (its claim is orphaned).
    orphaned: bool,
}

pub(crate) fn exec(ctx: &Ctx, format: Format) -> Result<u8> {
    let pool = ctx.pool()?;
    let registry = ctx.store(&pool).read()?;
    let found = worktrees(ctx, &registry);
    let live = registry
        .slots
        .values()
        .any(|r| r.claimed_by.is_some())
        .then(|| {
            super::ask_engines(ctx, &pool, &|e| {
                // The registry's last known state may be long stale: say so
                // rather than show it as live.
                output::note(&format!(
                    "warning: the slots' state is unknown: {}",
                    format!("{e:#}").lines().next().unwrap_or_default()
                ));
                if let Some(hint) = crate::error::user(e).and_then(|u| u.hint.as_ref()) {
                    output::note(&format!("hint: {hint}"));
                }
            })
        })
        .flatten();
    let rows: Vec<Row> = found
        .into_iter()
        .map(|(path, branch)| row(ctx, &pool, &registry, live.as_ref(), path, branch))
        .collect();
    if format == Format::Json {
        output::json(&ListJson {
            pool: pool.summary(),
            live: live.is_some(),
            worktrees: rows,
        });
    } else if rows.is_empty() {
        output::line(&format!(
            "No worktrees here and no claims. `{} create NAME` makes one.",
            ctx.cmd_name()
        ));
    } else {
        output::line(&pool.line());
        print_table(&rows);
    }
    Ok(0)
}

/// This repository's worktrees with their branch, then every other worktree
/// that holds a claim.
fn worktrees(ctx: &Ctx, registry: &Registry) -> Vec<(PathBuf, Option<String>)> {
    let mut found: Vec<(PathBuf, Option<String>)> = worktree::find_top(&ctx.env.cwd)
        .and_then(|top| worktree::list(&top).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w.path.canonicalize().unwrap_or(w.path), w.branch))
        .collect();
    for rec in registry.slots.values() {
        if let Some(p) = &rec.claimed_by
            && !found.iter().any(|(f, _)| f == p)
        {
            found.push((p.clone(), None));
        }
    }
    found
}

fn row(
    ctx: &Ctx,
    pool: &Pool,
    registry: &Registry,
    live: Option<&super::Live>,
    path: PathBuf,
    branch: Option<String>,
) -> Row {
    let rec = registry.claim_of(&path).map(|id| &registry.slots[&id]);
    let status = rec.map(|r| match live {
        Some(live) => slot_state(ctx, pool, Some(live), r),
        None => UNKNOWN.to_owned(),
    });
    Row {
        orphaned: !path.exists(),
        branch,
        slot: rec.map(|r| r.slot_id),
        profile: rec.map(|r| r.profile),
        project: rec.map(|r| pool.project(r.slot_id)),
        urls: rec
            .map(|r| {
                addresses(pool, &r.ports, &super::host_of(ctx, pool, r))
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default(),
        status,
        claimed_at: rec.and_then(|r| r.claimed_at),
        path,
    }
}

fn print_table(rows: &[Row]) {
    let table = rows
        .iter()
        .map(|r| {
            let name = short_name(&r.path) + if r.orphaned { " (orphaned)" } else { "" };
            let status = r.status.clone().unwrap_or_else(|| "-".to_owned());
            let tone = state_tone(&status);
            vec![
                (name, if r.orphaned { Tone::Warn } else { Tone::Plain }),
                (
                    r.branch.clone().unwrap_or_else(|| "-".to_owned()),
                    Tone::Plain,
                ),
                (
                    r.slot.map_or("-".to_owned(), |s| s.to_string()),
                    Tone::Plain,
                ),
                (
                    r.profile.map_or("-".to_owned(), |p| p.to_string()),
                    Tone::Plain,
                ),
                (
                    r.urls
                        .get("api")
                        .or_else(|| r.urls.values().next())
                        .cloned()
                        .unwrap_or_else(|| "-".to_owned()),
                    Tone::Plain,
                ),
                (status, tone),
            ]
        })
        .collect();
    output::table(
        &["Worktree", "Branch", "Slot", "Profile", "URL", "State"],
        table,
    );
}
