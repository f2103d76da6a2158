//! `doctor`: the engine, compose, the plugin's installation, the pool, the
//! registry, every slot's ports, orphaned claims, and the templates.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::claim::busy_ports;
use crate::cli::Format;
use crate::commands::Ctx;
use crate::engine::Engine;
use crate::output;
use crate::pool::Pool;
use crate::registry::Registry;
use crate::slot::Password;
use crate::template;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// `doctor --format json`.
#[derive(Serialize)]
struct DoctorJson<'a> {
    ok: bool,
    checks: &'a [Check],
}

#[derive(Serialize)]
struct Check {
    check: &'static str,
    level: Level,
    detail: String,
    hint: Option<String>,
}

fn check(
    check: &'static str,
    level: Level,
    detail: impl Into<String>,
    hint: Option<String>,
) -> Check {
    Check {
        check,
        level,
        detail: detail.into(),
        hint,
    }
}

pub(crate) fn exec(ctx: &Ctx, format: Format) -> Result<u8> {
    let cmd = ctx.cmd_name();
    let engine = ctx.engine();
    let reached = engine_check(&engine);
    let live = (reached.level == Level::Ok).then_some(&engine);
    let mut checks = vec![reached, compose_check(ctx), plugin_check(ctx)];
    let (loaded, pool) = pool_check(ctx);
    checks.push(loaded);
    if let Some(pool) = &pool {
        checks.push(state_check(pool));
        if pool.engines.len() > 1 {
            checks.push(engines_check(ctx, pool));
        }
        checks.extend(registry_checks(ctx, pool, live, &cmd));
        let first = pool
            .adopted()
            .is_none()
            .then(|| first_slot_model(ctx, pool));
        checks.push(templates_check(pool, first.as_ref()));
        if let Some(binds) = binds_check(ctx, pool, first.as_ref()) {
            checks.push(binds);
        }
        checks.push(subnets_check(ctx, pool, live));
        if let Ok(reg) = ctx.store(pool).read()
            && !reg.slots.is_empty()
        {
            checks.push(drift_check(ctx, pool, &reg, live));
        }
    }
    let failed = checks.iter().any(|c| c.level == Level::Fail);
    show(&checks, failed, format);
    Ok(if failed { 1 } else { 0 })
}

fn engine_check(engine: &Engine) -> Check {
    match engine.ping() {
        Ok(()) => check(
            "engine",
            Level::Ok,
            format!("reachable through {}", engine.describe()),
            None,
        ),
        Err(e) => check(
            "engine",
            Level::Fail,
            format!("{e:#}"),
            Some("start Docker, or check DOCKER_HOST / --context".into()),
        ),
    }
}

fn compose_check(ctx: &Ctx) -> Check {
    match ctx.compose() {
        Ok(c) if c.version.starts_with("1.") => check(
            "compose",
            Level::Warn,
            format!(
                "{}: the legacy v1 works, compose v2 is faster",
                c.describe()
            ),
            Some("install the compose plugin (docker-compose-plugin)".into()),
        ),
        Ok(c) => check("compose", Level::Ok, c.describe(), None),
        // Discovery's own hint knows why (a bad DOCKER_SANDBOX_COMPOSE, or
        // no compose at all).
        Err(e) => check(
            "compose",
            Level::Fail,
            format!("{e:#}"),
            Some(
                crate::error::user(&e)
                    .and_then(|u| u.hint.clone())
                    .unwrap_or_else(|| "install the compose plugin".into()),
            ),
        ),
    }
}

/// The pool's check, and the pool when it loads.
fn pool_check(ctx: &Ctx) -> (Check, Option<Pool>) {
    match ctx.pool() {
        Ok(p) => (
            check(
                "pool",
                Level::Ok,
                format!(
                    "`{}` from {}: {} slot(s)",
                    p.name,
                    p.origin(),
                    p.slots.len()
                ),
                None,
            ),
            Some(p),
        ),
        Err(e) => (check("pool", Level::Fail, format!("{e:#}"), None), None),
    }
}

/// `[pool] subnets`: the range, and whether anything else on the engine or
/// in the host's routes overlaps the slots' blocks.
fn subnets_check(ctx: &Ctx, pool: &Pool, live: Option<&Engine>) -> Check {
    use crate::pool::{Subnets, subnets};
    let Subnets::Range(range) = pool.subnets else {
        return check(
            "subnets",
            Level::Warn,
            "the engine chooses each network's subnet: its default pools hold about 30 networks",
            Some(format!(
                "for many slots up at once, set `[pool] subnets` in {} to a range of the pool's own, such as `{}`",
                pool.origin(),
                subnets::DEFAULT_RANGE
            )),
        );
    };
    let layout = format!(
        "`{range}`: a /{} per slot, a /{} per network",
        subnets::SLOT_PREFIX,
        subnets::NETWORK_PREFIX
    );
    let Some(engine) = live else {
        return check(
            "subnets",
            Level::Warn,
            format!("{layout}; not checked against the engine's networks (no engine)"),
            None,
        );
    };
    let registry = ctx
        .store(pool)
        .read()
        .ok()
        .and_then(|r| r.id)
        .unwrap_or_default();
    let slots: Vec<u32> = pool.slots.keys().copied().collect();
    let found = if pool.engines.len() > 1 {
        every_engines_conflicts(ctx, pool, &registry, &slots)
    } else {
        super::subnet_conflicts(pool, engine, &crate::claim::Taken::Local, &registry, &slots)
            .map(|found| (found, Vec::new()))
    };
    let found = found.map(|(found, unasked)| {
        let unasked = if unasked.is_empty() {
            String::new()
        } else {
            format!(" (not checked on {}: no answer)", unasked.join(", "))
        };
        (found, unasked)
    });
    match found {
        Ok((found, unasked)) if found.is_empty() => check(
            "subnets",
            Level::Ok,
            format!("{layout}; no other network or route overlaps it{unasked}"),
            None,
        ),
        Ok((found, _)) => {
            let e = super::refuse_subnet_conflicts(pool, &found, "the slots' blocks")
                .expect_err("conflicts refuse");
            check(
                "subnets",
                Level::Fail,
                format!("{e:#}"),
                crate::error::user(&e).and_then(|u| u.hint.clone()),
            )
        }
        Err(e) => check("subnets", Level::Warn, format!("{layout}; {e:#}"), None),
    }
}

/// What overlaps the slots' blocks on each engine of the pool, asked all at
/// the same time (on another engine, its host's routes are read by a
/// throwaway container there), each named with its engine; and the engines
/// that did not answer.
fn every_engines_conflicts(
    ctx: &Ctx,
    pool: &Pool,
    registry: &str,
    slots: &[u32],
) -> Result<(Vec<String>, Vec<String>)> {
    let answers = super::each_route(ctx, pool, |route| {
        let Ok(containers) = route.engine.containers(None) else {
            return Ok(None);
        };
        let host = crate::claim::Taken::of(&route.spec, &route.docker, &containers)?;
        let found = super::subnet_conflicts(pool, &route.engine, &host, registry, slots)?;
        Ok(Some(
            found
                .into_iter()
                .map(|c| format!("{c} (engine `{}`)", route.spec.name))
                .collect::<Vec<_>>(),
        ))
    });
    let (mut found, mut unasked) = (Vec::new(), Vec::new());
    for (name, answer) in answers {
        match answer? {
            Some(f) => found.extend(f),
            None => unasked.push(format!("`{name}`")),
        }
    }
    Ok((found, unasked))
}

fn state_check(pool: &Pool) -> Check {
    match crate::fsutil::unwritable(&pool.state_dir) {
        None if pool.state_dir.is_dir() => check(
            "state",
            Level::Ok,
            format!("`{}` is writable", pool.state_dir.display()),
            None,
        ),
        None => check(
            "state",
            Level::Ok,
            format!("`{}` can be created", pool.state_dir.display()),
            None,
        ),
        Some(e) => check(
            "state",
            Level::Fail,
            format!("{e:#}"),
            crate::error::user(&e).and_then(|u| u.hint.clone()),
        ),
    }
}

/// The registry, and for a registry with slots their ports (when the engine
/// answers) and orphaned claims.
fn registry_checks(ctx: &Ctx, pool: &Pool, live: Option<&Engine>, cmd: &str) -> Vec<Check> {
    let reg = match ctx.store(pool).read() {
        Ok(reg) => reg,
        Err(e) => return vec![check("registry", Level::Fail, format!("{e:#}"), None)],
    };
    if reg.slots.is_empty() {
        return vec![check(
            "registry",
            Level::Warn,
            format!("no slots provisioned in `{}`", pool.state_dir.display()),
            Some(format!("run `{cmd} provision`")),
        )];
    }
    let claimed = reg
        .slots
        .values()
        .filter(|r| r.claimed_by.is_some())
        .count();
    let mut checks = vec![check(
        "registry",
        Level::Ok,
        format!("{} slot(s), {claimed} claimed", reg.slots.len()),
        None,
    )];
    if let Some(engine) = live {
        checks.push(ports_check(pool, &reg, engine));
    }
    checks.push(orphans_check(&reg, cmd));
    checks
}

/// The pool's other engines, each asked once, all at the same time, with
/// the slots claimed on each; one that does not answer is a warning (its
/// slots are unknown, and claims go elsewhere).
fn engines_check(ctx: &Ctx, pool: &Pool) -> Check {
    let claims = ctx
        .store(pool)
        .read()
        .map(|r| r.claims_per_engine())
        .unwrap_or_default();
    let answers = super::each_engine(ctx, pool, Engine::ping);
    let down: Vec<&str> = answers
        .iter()
        .filter(|(_, a)| a.is_err())
        .map(|(n, _)| n.as_str())
        .collect();
    let detail = answers
        .iter()
        .map(|(name, a)| {
            let n = claims.get(name).copied().unwrap_or(0);
            let state = if a.is_ok() {
                "answers"
            } else {
                "does not answer"
            };
            format!("`{name}` {state} ({n} claim(s))")
        })
        .collect::<Vec<_>>()
        .join(", ");
    if down.is_empty() {
        check("engines", Level::Ok, detail, None)
    } else {
        check(
            "engines",
            Level::Warn,
            detail,
            Some(format!(
                "the slots on {} show as unknown and new claims go to the other engines; check it with `docker {}version`",
                down.join(", "),
                pool.engines
                    .iter()
                    .find(|e| e.name == down[0])
                    .and_then(|e| e.context.as_ref())
                    .map(|c| format!("--context {c} "))
                    .unwrap_or_default()
            )),
        )
    }
}

/// Ports of a slot that something other than the slot's stack holds.
fn ports_check(pool: &Pool, reg: &Registry, engine: &Engine) -> Check {
    let containers = engine.containers(None).unwrap_or_default();
    let busy: Vec<String> = reg
        .slots
        .values()
        .flat_map(|r| {
            busy_ports(pool, r, &containers, &crate::claim::Taken::Local)
                .into_iter()
                .map(move |b| (r.slot_id, b))
        })
        .map(|(id, b)| {
            format!(
                "slot {id}: port {} ({}) held by {}",
                b.port,
                b.name,
                b.holder.unwrap_or_else(|| "another program".into())
            )
        })
        .collect();
    if busy.is_empty() {
        check(
            "ports",
            Level::Ok,
            "every slot's ports are free or its own",
            None,
        )
    } else {
        check(
            "ports",
            Level::Warn,
            busy.join("; "),
            Some("`ss -ltnp` shows who listens; claims skip such slots".into()),
        )
    }
}

/// Claims of worktrees that are gone.
fn orphans_check(reg: &Registry, cmd: &str) -> Check {
    let orphans: Vec<String> = reg
        .slots
        .values()
        .filter(|r| r.is_orphaned())
        .map(|r| {
            format!(
                "slot {} (`{}`)",
                r.slot_id,
                r.claimed_by.as_deref().unwrap_or(Path::new("")).display()
            )
        })
        .collect();
    if orphans.is_empty() {
        check(
            "orphans",
            Level::Ok,
            "no claim of a vanished worktree",
            None,
        )
    } else {
        check(
            "orphans",
            Level::Warn,
            format!("claims of vanished worktrees: {}", orphans.join(", ")),
            Some(format!("run `{cmd} gc`")),
        )
    }
}

/// The compose model of a template pool's first slot as it would be
/// rendered now, and the slot's ports.
struct SlotModel {
    slot: u32,
    model: crate::model::Model,
    ports: std::collections::BTreeSet<u16>,
}

/// Whether the pool's slots run side by side: an adopted pool's analysis,
/// else the compose model of a template pool's first slot (`first`).
fn templates_check(pool: &Pool, first: Option<&Result<SlotModel>>) -> Check {
    let Some(first) = first else {
        return isolation_check(pool);
    };
    let findings = first.as_ref().map(|m| {
        let slot_dir = pool.slot_dir(m.slot);
        let own = [pool.shared_dir.as_path(), slot_dir.as_path()];
        (m.slot, crate::model::check_slot(&m.model, &m.ports, &own))
    });
    match findings {
        Err(e) => check("isolation", Level::Fail, format!("{e:#}"), None),
        Ok((slot, a)) if !a.can_isolate() => check(
            "isolation",
            Level::Fail,
            joined(&a.refusals),
            Some(format!(
                "slot {slot}'s compose model cannot run once per slot: give each service its own network and ports"
            )),
        ),
        Ok((slot, a)) if a.warnings.is_empty() => check(
            "isolation",
            Level::Ok,
            format!(
                "slot {slot}'s compose model: every port is the slot's own, on 127.0.0.1, no fixed names"
            ),
            None,
        ),
        Ok((slot, a)) => check(
            "isolation",
            Level::Warn,
            format!("slot {slot}: {}", joined(&a.warnings)),
            Some("fixed names and host ports collide between slots: take ports from the slot's env file (${PREFIX_NAME_PORT}) and leave names to compose".into()),
        ),
    }
}

/// Every bind source of the model exists (or is made by the pool), in this
/// worktree: `up` refuses to start a stack otherwise. `None` where there is
/// no model to look at (the isolation check says why).
fn binds_check(ctx: &Ctx, pool: &Pool, first: Option<&Result<SlotModel>>) -> Option<Check> {
    let worktree = ctx.worktree().unwrap_or_else(|_| ctx.env.cwd.clone());
    let mut missing = match first {
        Some(Ok(m)) => pool.missing_binds(&m.model),
        Some(Err(_)) => return None,
        None => pool.missing_binds(pool.model.as_deref()?),
    };
    // An adopted pool's slot files give each slot its own volume in place
    // of a bind from outside the project, with `per-slot`.
    if pool
        .adopted()
        .is_some_and(|a| a.external == crate::model::External::PerSlot)
    {
        let top = pool.model_top.as_deref().unwrap_or(&worktree);
        missing.retain(|m| m.source.starts_with(top));
    }
    if missing.is_empty() {
        return Some(check(
            "binds",
            Level::Ok,
            "every bind mount's source exists or is made by the pool",
            None,
        ));
    }
    let shown: Vec<String> = missing
        .iter()
        .map(|m| {
            format!(
                "service `{}` mounts `{}` at `{}`",
                m.service,
                crate::model::shown_source(&m.source, &worktree),
                m.target
            )
        })
        .collect();
    Some(check(
        "binds",
        Level::Fail,
        format!("missing bind source(s): {}", shown.join("; ")),
        Some(format!(
            "create them in `{}` (or fix the mounts in {}): `up` refuses to start the stack, since compose would create each as an empty folder owned by root",
            worktree.display(),
            pool.origin()
        )),
    ))
}

fn joined(findings: &[crate::model::Finding]) -> String {
    let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

/// The compose model of the pool's first slot: rendered as `up` would
/// render it (files only, written to a scratch folder: compose reads them,
/// nothing of the pool's changes), read by compose with the slot's env file,
/// from this worktree.
fn first_slot_model(ctx: &Ctx, pool: &Pool) -> Result<SlotModel> {
    let slot = *pool.slots.keys().next().expect("a pool has slots");
    let compose = ctx.compose()?;
    let registry = ctx.store(pool).read()?;
    let renderer = template::Renderer::new(pool)?;
    let desired = crate::slot::desired(pool, &renderer, &registry, slot, Password::Keep)?;
    let scratch = tempfile::Builder::new()
        .prefix("docker-sandbox-doctor")
        .tempdir()?;
    let file = scratch.path().join(crate::slot::COMPOSE_FILE);
    let env_file = scratch.path().join(crate::slot::ENV_FILE);
    crate::fsutil::write_atomic(&file, desired.rendered.compose.as_bytes(), 0o600)?;
    crate::fsutil::write_atomic(&env_file, desired.rendered.env.as_bytes(), 0o600)?;
    let directory = ctx.worktree().unwrap_or_else(|_| ctx.env.cwd.clone());
    let project = crate::compose::Project {
        name: pool.project(slot),
        directory,
        env_file,
        file,
        // The pool's own subnets differ per slot: not a fixed subnet.
        networks: None,
        base_files: Vec::new(),
        base_env: None,
        pass: pool.secrets.pass.clone(),
    };
    let model = crate::model::of_project(
        &|| Ok(compose.clone()),
        &project,
        &scratch.path().join("models"),
    )?;
    let ports = desired.ports.all().map(|(_, p)| p).collect();
    Ok(SlotModel { slot, model, ports })
}

/// An adopted pool: what its slot files change, or leave shared, so that the
/// project runs once per slot (the model was refused when loading otherwise).
fn isolation_check(pool: &Pool) -> Check {
    if let Some(e) = &pool.model_error {
        return check("isolation", Level::Fail, format!("{e:#}"), None);
    }
    if pool.warnings.is_empty() {
        return check(
            "isolation",
            Level::Ok,
            "the compose files run once per slot as they are, on the slot's ports",
            None,
        );
    }
    check(
        "isolation",
        Level::Warn,
        pool.warnings.join("; "),
        Some(
            "the slot files make these changes; set [isolation] external = \"per-slot\" for separate copies of shared volumes and folders".into(),
        ),
    )
}

/// The checks as JSON, or one line each with the hint of each problem.
fn show(checks: &[Check], failed: bool, format: Format) {
    if format == Format::Json {
        output::json(&DoctorJson {
            ok: !failed,
            checks,
        });
        return;
    }
    for c in checks {
        let mark = match c.level {
            Level::Ok => "✓",
            Level::Warn => "!",
            Level::Fail => "✗",
        };
        output::line(&format!("{mark} {:<10} {}", c.check, c.detail));
        if let (Some(h), false) = (&c.hint, c.level == Level::Ok) {
            output::line(&format!("  {:<10} hint: {h}", ""));
        }
    }
}

/// Slots whose files changed under their running stack, retired slots, and
/// claims that keep ports the pool no longer gives.
fn drift_check(ctx: &Ctx, pool: &Pool, reg: &Registry, engine: Option<&Engine>) -> Check {
    let live = engine
        .and_then(|e| e.containers(None).ok())
        .map(|containers| crate::commands::Live {
            containers,
            down: pool
                .engines
                .iter()
                .filter(|e| !e.is_local())
                .map(|e| e.name.clone())
                .collect(),
        });
    let renderer = template::Renderer::for_fingerprints(pool).ok();
    let mut found = Vec::new();
    for rec in reg.slots.values() {
        let state = crate::commands::status::slot_state(ctx, pool, live.as_ref(), rec);
        let d = crate::commands::slots::drift(pool, renderer.as_ref(), reg, rec, &state);
        let id = rec.slot_id;
        if d.restart_to_apply {
            found.push(format!(
                "slot {id} runs from files that changed since (restart to apply)"
            ));
        }
        if d.retired {
            found.push(format!("slot {id} is retired (no longer in [slots])"));
        }
        if !d.pending_ports.is_empty() {
            found.push(format!(
                "slot {id} keeps its ports until released (then {})",
                crate::commands::slots::show_ports(&d.pending_ports)
            ));
        }
    }
    if found.is_empty() {
        return check(
            "slots",
            Level::Ok,
            "every slot's files match its stack and the pool",
            None,
        );
    }
    let cmd = ctx.cmd_name();
    check(
        "slots",
        Level::Warn,
        found.join("; "),
        Some(format!(
            "`{cmd} up` in the slot's worktree applies changed files; `{cmd} gc` frees retired slots once unclaimed"
        )),
    )
}

/// Where docker looks for `docker-<name>`, in its order: `cliPluginsExtraDirs`
/// of its config, the user's plugin folder, then the system's.
fn plugin_dirs(ctx: &Ctx) -> Vec<PathBuf> {
    let config = ctx.docker().config_dir();
    let mut dirs = Vec::new();
    if let Some(cfg) = &config
        && let Ok(text) = std::fs::read_to_string(cfg.join("config.json"))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(extra) = v["cliPluginsExtraDirs"].as_array()
    {
        dirs.extend(extra.iter().filter_map(|d| d.as_str()).map(PathBuf::from));
    }
    if let Some(cfg) = config {
        dirs.push(cfg.join("cli-plugins"));
    }
    for d in [
        "/usr/local/lib/docker/cli-plugins",
        "/usr/local/libexec/docker/cli-plugins",
        "/usr/lib/docker/cli-plugins",
        "/usr/libexec/docker/cli-plugins",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

fn plugin_check(ctx: &Ctx) -> Check {
    let name = &ctx.invocation.name;
    let file = format!("docker-{name}");
    let Some(found) = plugin_dirs(ctx)
        .into_iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
    else {
        return check(
            "plugin",
            Level::Warn,
            format!("no `{file}` in docker's plugin folders: `docker {name}` will not find it"),
            Some("run ./install.sh".into()),
        );
    };
    let vendor = std::process::Command::new(&found)
        .arg("docker-cli-plugin-metadata")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["Vendor"].as_str().map(str::to_owned));
    let ours = crate::plugin::vendor();
    match vendor {
        Some(v) if v == ours => check(
            "plugin",
            Level::Ok,
            format!("`docker {name}` runs `{}`", found.display()),
            None,
        ),
        other => check(
            "plugin",
            Level::Fail,
            format!(
                "`docker {name}` runs `{}`, which is another plugin (vendor {})",
                found.display(),
                other.map_or_else(|| "unknown".to_owned(), |v| format!("\"{v}\""))
            ),
            Some("install ours under another name: ./install.sh --name devslots".into()),
        ),
    }
}
