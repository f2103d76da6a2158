//! A pool that adopts a project's own compose files: what the project file
//! (or, with none, the standard compose file) leaves to the model is filled
//! in from it here: the named ports, the default gate, the refusals. The
//! model is compose's own (`crate::model`), read from the worktree the
//! command runs in, cached in the pool's state folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use super::{GateCheck, Pool, ports};
use crate::compose::Compose;
use crate::error::{UserError, fail};
use crate::model::{self, Model};

/// The folder of the pool's state where models are cached.
pub(crate) fn cache_dir(pool: &Pool) -> PathBuf {
    pool.state_dir.join("models")
}

/// The pool's compose files in `worktree`, absolute, in `-f` order.
pub(crate) fn files_in(pool: &Pool, worktree: &Path) -> Vec<PathBuf> {
    pool.adopted()
        .map(|a| a.files.iter().map(|f| worktree.join(f)).collect())
        .unwrap_or_default()
}

/// How compose is asked to read the model of `worktree`.
fn source<'a>(pool: &'a Pool, worktree: &'a Path, files: &'a [PathBuf]) -> model::Source<'a> {
    model::Source {
        project: &pool.name,
        directory: worktree,
        files,
        env_files: &[],
        hidden: &[],
    }
}

/// The model of the pool's files in `worktree`: the cached one when nothing
/// compose would read has changed, else compose's `config` (found through
/// `compose` only then).
pub(crate) fn read_model(
    pool: &Pool,
    worktree: &Path,
    compose: &dyn Fn() -> Result<Compose>,
) -> Result<Model> {
    let files = files_in(pool, worktree);
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(fail(
            format!(
                "compose file `{}` of pool {} ({}) is missing",
                missing.display(),
                pool.name,
                pool.why()
            ),
            "check [pool] compose in docker-sandbox.toml, or run this in a worktree that has the file",
        ));
    }
    let source = source(pool, worktree, &files);
    model::read_lazily(compose, &source, &cache_dir(pool))
}

/// The model a claimed slot runs: its worktree's, when that one has been read
/// before (a command run elsewhere never runs compose for it), else `None`.
pub(crate) fn cached_model(pool: &Pool, worktree: &Path) -> Option<Model> {
    let files = files_in(pool, worktree);
    model::cached(&source(pool, worktree, &files), &cache_dir(pool))
}

/// Completes an adopted pool from the model of `worktree`: named ports
/// derived from the published ones (unless the project file gives
/// `[ports]`), a TCP check of every one ahead of the file's own checks, and
/// the model kept for rendering. A project that cannot be isolated is refused.
pub(crate) fn complete(
    pool: &mut Pool,
    worktree: &Path,
    compose: &dyn Fn() -> Result<Compose>,
) -> Result<()> {
    let Some(adopted) = pool.adopted() else {
        return Ok(());
    };
    let external = adopted.external;
    let model = read_model(pool, worktree, compose)?;
    let slots = pool.slots.keys().copied().max().unwrap_or(1);
    let derived = model::derive_ports(&model, &pool.prefix(), slots)?;
    let analysis = model::analyse(&model, external, Some(&derived));
    refuse(pool, &analysis)?;
    if pool.ports.is_empty() {
        pool.ports = derived
            .ports
            .iter()
            .map(|p| (p.name.clone(), derived.rule(p)))
            .collect();
    }
    let probes = derived
        .ports
        .iter()
        .filter(|p| p.protocol == "tcp" && pool.ports.iter().any(|(n, _)| *n == p.name))
        .map(|p| GateCheck::Tcp {
            port: p.name.clone(),
        });
    let mut gate: Vec<GateCheck> = probes.collect();
    gate.append(&mut pool.gate);
    pool.gate = gate;
    let bad = |reason: String| {
        fail(
            format!("invalid pool {} ({}): {reason}", pool.name, pool.why()),
            "fix the project file; the README's \"Project file\" section lists every key",
        )
    };
    super::check_gate_ports(&pool.gate, &pool.ports).map_err(bad)?;
    check_after_up(&pool.after_up, &model.services).map_err(bad)?;
    ports::check_pool(pool).map_err(|e| bad(e.to_string()))?;
    pool.model = Some(Arc::new(model));
    pool.warnings = analysis.warnings.iter().map(ToString::to_string).collect();
    Ok(())
}

/// Each `[[after_up]]` step names a service of the model: the reason when not.
fn check_after_up<T>(
    steps: &[super::AfterUp],
    services: &std::collections::BTreeMap<String, T>,
) -> std::result::Result<(), String> {
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    match unknown_service(steps, &names) {
        None => Ok(()),
        Some((number, service)) => Err(format!(
            "[[after_up]] number {number}: service `{service}` is not a service of the compose files (they have {})",
            ticked(&names)
        )),
    }
}

/// The first `[[after_up]]` step (1-based) whose service is not one of
/// `services`, and that service.
pub(crate) fn unknown_service<'a>(
    steps: &'a [super::AfterUp],
    services: &[&str],
) -> Option<(usize, &'a str)> {
    steps
        .iter()
        .enumerate()
        .find(|(_, s)| !services.contains(&s.service.as_str()))
        .map(|(i, s)| (i + 1, s.service.as_str()))
}

/// `` `a`, `b` ``.
pub(crate) fn ticked(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    shown.join(", ")
}

/// The compose file of a slot of an adopted pool, without its fingerprint
/// line, and the networks the slot makes itself, each with its `ipam` and
/// `enable_ipv6` (what the slot's networks file keeps of it, besides the
/// subnets it gives):
/// made from the model of the worktree that holds the slot (when that one
/// has been read), else from the model of the worktree the command runs in.
pub(crate) fn slot_file(
    pool: &Pool,
    adopted: &super::Adopted,
    ctx: &crate::template::SlotContext<'_>,
) -> Result<(String, serde_json::Map<String, serde_json::Value>)> {
    // Another worktree's slot runs that worktree's files, when they were read.
    let elsewhere = ctx
        .worktree
        .filter(|w| Some(*w) != pool.model_top.as_deref());
    let held = elsewhere.and_then(|w| cached_model(pool, w)).map(Arc::new);
    let read_in = if held.is_some() {
        elsewhere
    } else {
        pool.model_top.as_deref()
    };
    if held.is_none()
        && let Some(e) = &pool.model_error
    {
        return Err(again(e));
    }
    let Some(model) = held.or_else(|| pool.model.clone()) else {
        return Err(fail(
            format!(
                "slot {} of pool {}: the compose model of `{}` is not read yet",
                ctx.slot,
                pool.name,
                adopted.files.join("`, `")
            ),
            "run `docker sandbox up` in the worktree",
        ));
    };
    let ports: std::collections::BTreeMap<String, u16> = ctx
        .ports
        .iter()
        .map(|(n, p)| ((*n).to_owned(), *p))
        .collect();
    let slots = pool.slots.keys().copied().max().unwrap_or(1);
    let derived = model::derive_ports(&model, &pool.prefix(), slots)?;
    refuse(
        pool,
        &model::analyse(&model, adopted.external, Some(&derived)),
    )?;
    let inputs = model::SlotInputs {
        pool: &pool.name,
        slot: ctx.slot,
        project: &ctx.project,
        registry_id: ctx.registry_id,
        ports: &derived,
        pinned: Some(&ports),
        external: adopted.external,
        worktree: read_in,
    };
    // The whole model, not only what the slot file changes, decides whether
    // the stack runs what the worktree's files say: an edit the override
    // does not mention (an environment value) must restart it too.
    let raw = model.raw.to_string();
    let body = model::render_body(&model, &inputs, model::flavour_of(&model))?;
    let text = format!(
        "# compose model {}\n{body}",
        crate::template::fnv1a(&[raw.as_bytes()])
    );
    let networks = model
        .own_networks(adopted.external)
        .into_iter()
        .map(|key| {
            let def = &model.raw["networks"][&key];
            let mut kept = serde_json::Map::new();
            if def["ipam"].is_object() {
                kept.insert("ipam".to_owned(), def["ipam"].clone());
            }
            if def["enable_ipv6"] == serde_json::Value::Bool(true) {
                kept.insert("enable_ipv6".to_owned(), true.into());
            }
            (key, serde_json::Value::Object(kept))
        })
        .collect();
    Ok((text, networks))
}

/// The same error once more: its message, hint and exit code.
fn again(e: &anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<UserError>() {
        Some(u) => {
            let mut copy = UserError::new(u.code, u.message.clone());
            if let Some(h) = &u.hint {
                copy = copy.hint(h.clone());
            }
            copy.into()
        }
        None => anyhow::anyhow!("{e:#}"),
    }
}

/// A model no slot file can isolate (host networking, say) is refused.
fn refuse(pool: &Pool, analysis: &model::Analysis) -> Result<()> {
    match analysis.refusals.first() {
        Some(refusal) => Err(fail(
            format!(
                "pool {} ({}) cannot be isolated: {refusal}",
                pool.name,
                pool.why()
            ),
            "a sandbox needs its own network namespace per slot: change the service, or leave it out of the pool's compose files",
        )),
        None => Ok(()),
    }
}
