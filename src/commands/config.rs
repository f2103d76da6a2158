//! `config [--slot N] [--format yaml|json]`: the merged compose model a slot
//! runs, printed by compose's own `config` on the command line `up` uses
//! (the project's files and the slot's override, or the slot's file alone).
//! Compose reads files only: no engine is asked.

use std::process::Stdio;

use anyhow::{Context, Result};

use crate::cli::ConfigFormat;
use crate::commands::{Ctx, project, provision};
use crate::compose::{self, Compose, Project};
use crate::error::{UserError, code, fail};
use crate::model::{self, Dialect};
use crate::output;
use crate::slot::{self, ENV_FILE, Password};

pub(crate) fn exec(ctx: &Ctx, slot: Option<u32>, format: ConfigFormat) -> Result<u8> {
    let worktree = ctx.worktree()?;
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    provision::on_first_use(&pool, &store)?;
    let registry = store.read()?;
    let id = match slot.or_else(|| registry.claim_of(&worktree)) {
        Some(id) => id,
        None => {
            return Err(fail(
                format!("this worktree holds no slot: `{}`", worktree.display()),
                format!(
                    "run `{0} config --slot N` to see slot N's, or `{0} up` to claim one",
                    ctx.cmd_name()
                ),
            ));
        }
    };
    let Some(record) = registry.slots.get(&id) else {
        return Err(fail(
            format!("slot {id} of pool {} is not provisioned", pool.name),
            format!(
                "run `{} provision` to create the pool's slots",
                ctx.cmd_name()
            ),
        ));
    };
    // What `up` would run: the slot's files as the pool makes them now.
    slot::ensure(&pool, &store, id, Password::Keep)?;
    // The worktree that runs the slot: its holder's, else this one.
    let holder = record.claimed_by.clone().filter(|p| p.is_dir());
    let mut project = project(&pool, id, holder.as_ref().unwrap_or(&worktree));
    if holder.is_none() {
        // This worktree's env file, if any, is another slot's.
        project.env_file = pool.slot_dir(id).join(ENV_FILE);
    }
    let compose = ctx.compose()?;
    let text = run_config(compose, &project, format)?;
    output::text(&text);
    Ok(0)
}

/// compose's `config` of `project`, in `format`: legacy compose prints YAML
/// only, which is converted for JSON.
fn run_config(compose: &Compose, project: &Project, format: ConfigFormat) -> Result<String> {
    let legacy = Dialect::of(compose) == Dialect::Legacy;
    let args: &[&str] = match format {
        ConfigFormat::Json if !legacy => &["config", "--format", "json"],
        _ => &["config"],
    };
    let mut cmd = compose.command(project, args);
    let shown = compose::display(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{shown}`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(UserError::new(
            code::FAILURE,
            format!(
                "`compose config` failed ({}): {}",
                out.status,
                tail.join("\n")
            ),
        )
        .hint(format!("the command was: {shown}"))
        .into());
    }
    let text = String::from_utf8(out.stdout).context("compose printed text that is not UTF-8")?;
    if format == ConfigFormat::Json && legacy {
        let value = model::yaml_to_json(&text)
            .with_context(|| format!("`{shown}` printed YAML that does not read"))?;
        let mut json = serde_json::to_string_pretty(&value).expect("output serialises");
        json.push('\n');
        return Ok(json);
    }
    Ok(text)
}
