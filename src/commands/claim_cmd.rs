//! `claim [--profile P] [--slot N]`: take a slot for this worktree.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::claim::{self, Claimed, Want};
use crate::cli::Format;
use crate::commands::{Ctx, addresses};
use crate::output;
use crate::pool::{Pool, Profile};
use crate::slot::ENV_FILE;

/// `claim --format json` (also `init`, and `create`'s `claim`).
#[derive(Serialize)]
pub(crate) struct ClaimJson {
    pub(crate) slot: u32,
    pub(crate) profile: Profile,
    pub(crate) project: String,
    pub(crate) worktree: std::path::PathBuf,
    pub(crate) env_file: std::path::PathBuf,
    /// A new claim; false when the worktree held the slot already.
    pub(crate) fresh: bool,
    pub(crate) ports: std::collections::BTreeMap<String, u16>,
    /// The engine the slot runs on, and the host its ports answer on.
    pub(crate) engine: String,
    pub(crate) host: String,
    /// What the slot's project holds that is not this registry's, and so was
    /// not cleared (only when there is some).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) left_alone: Vec<crate::owner::LeftAlone>,
}

impl ClaimJson {
    pub(crate) fn new(pool: &Pool, c: &Claimed, worktree: &Path, host: &str) -> ClaimJson {
        ClaimJson {
            slot: c.slot,
            profile: c.record.profile,
            project: pool.project(c.slot),
            worktree: worktree.to_owned(),
            env_file: worktree.join(ENV_FILE),
            fresh: c.fresh,
            ports: c.record.ports.clone(),
            engine: c
                .record
                .engine
                .clone()
                .unwrap_or_else(|| crate::engine::LOCAL.to_owned()),
            host: host.to_owned(),
            left_alone: c.cleaned.left_alone.clone(),
        }
    }
}

/// The lines people read after a claim.
pub(crate) fn print_claim(pool: &Pool, c: &Claimed, worktree: &Path, route: &super::Route) {
    if c.fresh {
        output::line(&format!(
            "Claimed slot {} ({}) for `{}`",
            c.slot,
            c.record.profile,
            worktree.display()
        ));
        let r = &c.cleaned.removed;
        if r.containers + r.volumes + r.networks > 0 {
            output::note(&format!("Cleared what the slot's last holder left: {r}"));
        }
        if let Some(text) =
            crate::owner::describe_left_alone(&pool.project(c.slot), &c.cleaned.left_alone)
        {
            output::note(&text);
        }
    } else {
        output::line(&format!(
            "This worktree already holds slot {} ({})",
            c.slot, c.record.profile
        ));
    }
    if !route.spec.is_local() {
        output::line(&format!(
            "  on engine `{}` ({})",
            route.spec.name, route.host
        ));
    }
    for (name, addr) in addresses(pool, &c.record.ports, &route.host) {
        output::line(&format!("  {name:<18} {addr}"));
    }
    output::line(&format!("Env file: {}", worktree.join(ENV_FILE).display()));
}

pub(crate) fn exec(
    ctx: &Ctx,
    profile: Option<Profile>,
    slot: Option<u32>,
    engine: Option<&str>,
    format: Format,
) -> Result<u8> {
    let worktree = ctx.worktree()?;
    let pool = ctx.pool()?;
    claim_and_report(
        ctx,
        &pool,
        &worktree,
        Want { profile, slot },
        engine,
        format,
    )?;
    if format != Format::Json {
        output::note(&format!("Next: `{} up` starts the stack", ctx.cmd_name()));
    }
    Ok(0)
}

/// Claims for `worktree` and prints the result (`claim`, `init`).
pub(crate) fn claim_and_report(
    ctx: &Ctx,
    pool: &Pool,
    worktree: &Path,
    want: Want,
    engine: Option<&str>,
    format: Format,
) -> Result<()> {
    let store = ctx.store(pool);
    super::ping_for_claim(ctx, pool, &store, worktree, engine)?;
    super::provision::on_first_use(pool, &store)?;
    let c = claim::claim(
        pool,
        &store,
        &ctx.docker(),
        engine,
        worktree,
        want,
        &ctx.cmd_name(),
    )?;
    let route = ctx.route(pool, c.record.engine.as_deref())?;
    if format == Format::Json {
        output::json(&ClaimJson::new(pool, &c, worktree, &route.host));
    } else {
        print_claim(pool, &c, worktree, &route);
    }
    Ok(())
}
