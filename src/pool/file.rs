//! The project file, `docker-sandbox.toml`: its keys as written (`RawFile`)
//! and `from_toml`, which checks every one and takes what the file leaves out
//! from the built-in pool. It reads no file itself (`load` does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use super::embedded::{
    DEFAULT_GATE_TIMEOUT, DEFAULT_NAME, DEFAULT_SHARED_FOLDERS, DEFAULT_WORKER_PORTS,
    default_after_up, default_gate, default_ports, default_profiles, default_secrets,
    default_slots,
};
use super::ports::{self, PortRule};
use super::{
    AfterUp, COMPOSE_TEMPLATE, Count, ENV_TEMPLATE, Environment, GateCheck, MAX_SLOT, Pool,
    Profile, Secrets, Templates, WorkerCounts,
};
use crate::error::fail;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pool: Option<RawPool>,
    slots: Option<toml::Table>,
    profiles: Option<BTreeMap<String, BTreeMap<String, i64>>>,
    ports: Option<toml::Table>,
    gate: Option<Vec<RawGate>>,
    after_up: Option<Vec<RawAfterUp>>,
    shared: Option<RawShared>,
    env: Option<toml::Table>,
    secrets: Option<RawSecrets>,
    isolation: Option<RawIsolation>,
    engines: Option<BTreeMap<String, crate::engine::placement::RawEngine>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    random: Option<Vec<String>>,
    pass: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIsolation {
    external: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: Option<String>,
    templates: Option<String>,
    compose: Option<Vec<String>>,
    state_dir: Option<String>,
    gate_timeout: Option<u64>,
    subnets: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShared {
    dir: Option<String>,
    folders: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    http: Option<String>,
    tcp: Option<String>,
    path: Option<String>,
    status: Option<u16>,
    count: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAfterUp {
    service: Option<toml::Value>,
    run: Option<toml::Value>,
}

/// Parses and validates a project file's text (empty text is the default pool).
/// Each part is read in the order the checks run, so the first bad key named
/// is the first one met.
pub(crate) fn from_toml(text: &str, source: Option<&Path>, env: &Environment) -> Result<Pool> {
    let shown = source.map_or_else(
        || "invalid pool".to_owned(),
        |p| format!("invalid project file `{}`", p.display()),
    );
    let bad = |reason: String| {
        fail(
            format!("{shown}: {reason}"),
            "fix the file; the README's \"Project file\" section lists every key",
        )
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let detail = e.to_string();
        bad(detail.trim_end().to_owned())
    })?;
    let base = source
        .and_then(Path::parent)
        .map_or_else(|| env.cwd.clone(), Path::to_owned);
    let raw_pool = raw.pool.unwrap_or_default();

    let name = pool_name(raw_pool.name, &bad)?;
    let templates = match raw_pool.compose {
        Some(files) => adopt(files, raw_pool.templates, raw.isolation, &bad)?,
        None if raw.isolation.is_some() => {
            return Err(bad(
                "[isolation] applies to a pool that adopts compose files: set [pool] compose"
                    .into(),
            ));
        }
        None => templates(raw_pool.templates, env, &base, &bad)?,
    };
    let adopted = matches!(templates, Templates::Adopt(_));
    let slots = slots(raw.slots, &bad)?;
    let profiles = profiles(raw.profiles, adopted, &bad)?;
    let embedded = templates == Templates::Embedded;
    let (ports, worker_ports) = port_rules(raw.ports, embedded, adopted, &bad)?;
    // An adopted pool's ports may come from its compose files, after this.
    let gate = gate(raw.gate, embedded, (!adopted).then_some(&ports[..]), &bad)?;
    let after_up = after_up(raw.after_up, embedded, &bad)?;
    let (shared_dir, shared_folders) = shared(raw.shared, &name, env, &base, &bad)?;
    let extra_env = extra_env(raw.env, &bad)?;
    let secrets = secrets(raw.secrets, embedded, adopted, &extra_env, &bad)?;
    let state_dir = state_dir(raw_pool.state_dir, &name, env, &base, adopted)?;
    let subnets = subnets(raw_pool.subnets, env, &slots, &bad)?;
    let engines = crate::engine::placement::from_raw(raw.engines, &bad)?;

    let pool = Pool {
        name,
        source: source.map(Path::to_owned),
        templates,
        slots,
        profiles,
        ports,
        worker_ports,
        gate,
        after_up,
        gate_timeout: Duration::from_secs(raw_pool.gate_timeout.unwrap_or(DEFAULT_GATE_TIMEOUT)),
        shared_dir,
        shared_folders,
        env: extra_env,
        secrets,
        state_dir,
        subnets,
        model: None,
        warnings: Vec::new(),
        model_error: None,
        model_top: None,
        engines,
    };
    ports::check_pool(&pool).map_err(|e| bad(e.to_string()))?;
    Ok(pool)
}

/// `[pool] name`, by default the KTRDR pool's.
fn pool_name(raw: Option<String>, bad: &impl Fn(String) -> anyhow::Error) -> Result<String> {
    let name = raw.unwrap_or_else(|| DEFAULT_NAME.to_owned());
    if !valid_pool_name(&name) {
        return Err(bad(format!(
            "[pool] name `{name}` must start with a lowercase letter and hold only a-z, 0-9 and `-` (at most 32)"
        )));
    }
    Ok(name)
}

/// `[pool] subnets`, else `DOCKER_SANDBOX_SUBNETS`, else the default range:
/// one that holds a block for every slot.
fn subnets(
    raw: Option<String>,
    env: &Environment,
    slots: &BTreeMap<u32, Profile>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<super::Subnets> {
    let (text, key) = match raw {
        Some(text) => (text, "[pool] subnets"),
        None => match &env.subnets_default {
            Some(text) => (text.clone(), "DOCKER_SANDBOX_SUBNETS"),
            None => (super::subnets::DEFAULT_RANGE.to_owned(), "[pool] subnets"),
        },
    };
    let subnets = super::Subnets::parse(&text).map_err(|e| bad(format!("{key}: {e}")))?;
    let max = slots.keys().copied().max().unwrap_or(0);
    subnets
        .check_slots(max)
        .map_err(|e| bad(format!("{key}: {e}")))?;
    Ok(subnets)
}

/// `[pool] templates`: a folder holding both templates, else the embedded ones.
fn templates(
    raw: Option<String>,
    env: &Environment,
    base: &Path,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<Templates> {
    let Some(dir) = raw else {
        return Ok(Templates::Embedded);
    };
    let dir = env.expand(&dir, base)?;
    for file in [COMPOSE_TEMPLATE, ENV_TEMPLATE] {
        if !dir.join(file).is_file() {
            return Err(bad(format!(
                "[pool] templates: `{}` is missing",
                dir.join(file).display()
            )));
        }
    }
    Ok(Templates::Dir(dir))
}

/// `[pool] compose`: the project's own compose files, adopted.
fn adopt(
    files: Vec<String>,
    templates: Option<String>,
    isolation: Option<RawIsolation>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<Templates> {
    if templates.is_some() {
        return Err(bad(
            "[pool] sets both templates and compose: a pool is made from one or the other".into(),
        ));
    }
    if files.is_empty() {
        return Err(bad(
            "[pool] compose is empty: name at least one compose file".into(),
        ));
    }
    if let Some(f) = files
        .iter()
        .find(|f| f.is_empty() || Path::new(f).is_absolute() || f.split('/').any(|p| p == ".."))
    {
        return Err(bad(format!(
            "[pool] compose: `{f}` must be a path inside the repository, relative to its top"
        )));
    }
    let external = match isolation.and_then(|i| i.external).as_deref() {
        None | Some("shared") => crate::model::External::Shared,
        Some("per-slot") => crate::model::External::PerSlot,
        Some(other) => {
            return Err(bad(format!(
                "[isolation] external = \"{other}\": expected \"per-slot\" or \"shared\""
            )));
        }
    };
    Ok(Templates::Adopt(super::Adopted {
        files,
        external,
        zero_config: false,
    }))
}

/// The pool of a repository with no project file whose top level holds a
/// standard compose file: that file adopted, the pool named after the main
/// checkout's folder so that every worktree of the repository shares it.
pub(crate) fn zero_config(top: &Path, file: &str, env: &Environment) -> Result<Pool> {
    let name = name_from_folder(&crate::worktree::main_top(top));
    let text = format!("[pool]\nname = \"{name}\"\ncompose = [\"{file}\"]\n");
    let mut pool = from_toml(&text, None, env)?;
    if let Templates::Adopt(a) = &mut pool.templates {
        a.zero_config = true;
    }
    Ok(pool)
}

/// A pool name from a folder's name: `My_App.v2` gives `my-app-v2`.
pub(crate) fn name_from_folder(folder: &Path) -> String {
    let raw = folder
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (name.is_empty() || name.ends_with('-')) {
            continue;
        }
        if name.is_empty() && c.is_ascii_digit() {
            name.push('p');
        }
        name.push(c);
    }
    let mut name: String = name.trim_end_matches('-').chars().take(32).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        "project".to_owned()
    } else {
        name
    }
}

/// `[slots]`: slot id -> profile; without the table, the KTRDR pool's slots.
fn slots(
    raw: Option<toml::Table>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<BTreeMap<u32, Profile>> {
    let Some(table) = raw else {
        return Ok(default_slots());
    };
    let mut slots = BTreeMap::new();
    for (key, value) in table {
        let id = parse_slot_id(&key).ok_or_else(|| {
            bad(format!(
                "[slots] key `{key}`: slot ids are whole numbers from 1 to {MAX_SLOT}"
            ))
        })?;
        let profile = value.as_str().and_then(Profile::parse).ok_or_else(|| {
            bad(format!(
                "[slots] {key} = {value}: unknown profile; profiles are light, standard, heavy"
            ))
        })?;
        slots.insert(id, profile);
    }
    if slots.is_empty() {
        return Err(bad(
            "[slots] is empty: a pool needs at least one slot".into()
        ));
    }
    Ok(slots)
}

/// `[profiles]`: each profile the file gives replaces the default one whole.
fn profiles(
    raw: Option<BTreeMap<String, BTreeMap<String, i64>>>,
    adopted: bool,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<BTreeMap<Profile, WorkerCounts>> {
    // A project's own compose files have no KTRDR workers.
    let mut profiles = if adopted {
        Profile::ALL.map(|p| (p, WorkerCounts::new())).into()
    } else {
        default_profiles()
    };
    for (pname, counts) in raw.unwrap_or_default() {
        let profile = Profile::parse(&pname).ok_or_else(|| {
            bad(format!(
                "[profiles] `{pname}`: unknown profile; profiles are light, standard, heavy"
            ))
        })?;
        let mut parsed = WorkerCounts::new();
        for (kind, n) in counts {
            if !valid_ident(&kind) {
                return Err(bad(format!(
                    "[profiles] {pname}: worker kind `{kind}` must start with a lowercase letter and hold only a-z, 0-9 and `_`"
                )));
            }
            let n = u32::try_from(n).ok().filter(|n| *n <= 64).ok_or_else(|| {
                bad(format!(
                    "[profiles] {pname}.{kind} = {n}: a worker count is 0 to 64"
                ))
            })?;
            parsed.insert(kind, n);
        }
        profiles.insert(profile, parsed);
    }
    Ok(profiles)
}

/// `[ports]`: the named ports in env-file order, and the workers' rule.
fn port_rules(
    raw: Option<toml::Table>,
    embedded: bool,
    adopted: bool,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<(Vec<(String, PortRule)>, PortRule)> {
    // The embedded stack needs every port of its map, so a file's [ports] merges
    // over it; a project's own stack starts from the ports its file gives, and
    // adopted compose files from the ports they publish.
    let mut ports: Vec<(String, PortRule)> = if !adopted && (embedded || raw.is_none()) {
        default_ports()
    } else {
        Vec::new()
    };
    let mut worker_ports = DEFAULT_WORKER_PORTS;
    for (key, value) in raw.unwrap_or_default() {
        let rule = parse_rule(&value).ok_or_else(|| {
            bad(format!(
                "[ports] {key} = {value}: expected [base, stride] with base 1-65535"
            ))
        })?;
        if key == "workers" {
            worker_ports = rule;
        } else if !valid_ident(&key) {
            return Err(bad(format!(
                "[ports] `{key}`: port names start with a lowercase letter and hold only a-z, 0-9 and `_`"
            )));
        } else if let Some(slot) = ports.iter_mut().find(|(n, _)| *n == key) {
            slot.1 = rule;
        } else {
            ports.push((key, rule));
        }
    }
    Ok((ports, worker_ports))
}

/// `[[gate]]`: the readiness checks, each on a port of `ports`.
fn gate(
    raw: Option<Vec<RawGate>>,
    embedded: bool,
    ports: Option<&[(String, PortRule)]>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<Vec<GateCheck>> {
    let gate = match raw {
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, g)| parse_gate(g).map_err(|r| bad(format!("[[gate]] number {}: {r}", i + 1))))
            .collect::<Result<Vec<_>>>()?,
        // A project's own stack has its own endpoints: only the KTRDR stack gets
        // the KTRDR checks by default.
        None if embedded => default_gate(),
        None => Vec::new(),
    };
    // Checked once the ports are known: an adopted pool's come later.
    let Some(ports) = ports else {
        return Ok(gate);
    };
    check_gate_ports(&gate, ports).map_err(bad)?;
    Ok(gate)
}

/// Each check's port is one of `ports`: the reason when not.
pub(crate) fn check_gate_ports(
    gate: &[GateCheck],
    ports: &[(String, PortRule)],
) -> std::result::Result<(), String> {
    for (i, check) in gate.iter().enumerate() {
        let port = match check {
            GateCheck::Http { port, .. }
            | GateCheck::HttpCount { port, .. }
            | GateCheck::Tcp { port } => port,
        };
        if !ports.iter().any(|(n, _)| n == port) {
            return Err(format!(
                "[[gate]] number {}: port `{port}` is not in [ports]",
                i + 1
            ));
        }
    }
    Ok(())
}

/// `[[after_up]]`: the steps run after the stack starts. Whether each
/// service is one of the stack's is known only with its compose model
/// (`adopt::complete`, or `up` for templates).
fn after_up(
    raw: Option<Vec<RawAfterUp>>,
    embedded: bool,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<Vec<AfterUp>> {
    let Some(list) = raw else {
        return Ok(if embedded {
            default_after_up()
        } else {
            Vec::new()
        });
    };
    list.into_iter()
        .enumerate()
        .map(|(i, step)| {
            parse_after_up(step).map_err(|r| bad(format!("[[after_up]] number {}: {r}", i + 1)))
        })
        .collect()
}

fn parse_after_up(step: RawAfterUp) -> std::result::Result<AfterUp, String> {
    let service = match step.service {
        None => {
            return Err(
                "give `service = \"<compose service>\"`, the service whose container runs the step"
                    .into(),
            );
        }
        Some(toml::Value::String(s)) if valid_service(&s) => s,
        Some(toml::Value::String(s)) => {
            return Err(format!(
                "service `{s}` is not a compose service name: it holds only a-z, A-Z, 0-9, `.`, `_` and `-`"
            ));
        }
        Some(other) => {
            return Err(format!(
                "service = {other}: expected the name of a compose service, as a string"
            ));
        }
    };
    let words = match step.run {
        None => {
            return Err(
                "give `run = [\"<program>\", \"<argument>\", ...]`, the command to run".into(),
            );
        }
        Some(toml::Value::Array(words)) => words,
        Some(toml::Value::String(s)) => {
            let split: Vec<String> = s.split_whitespace().map(|w| format!("\"{w}\"")).collect();
            return Err(format!(
                "run = \"{s}\": give the command as a list of words, `run = [{}]`; no shell reads it",
                split.join(", ")
            ));
        }
        Some(other) => {
            return Err(format!(
                "run = {other}: expected the command as a list of strings"
            ));
        }
    };
    let mut run = Vec::with_capacity(words.len());
    for word in words {
        match word {
            toml::Value::String(w) if w.contains('\0') => {
                return Err("run: a word holds a NUL character".into());
            }
            toml::Value::String(w) => run.push(w),
            other => {
                return Err(format!(
                    "run: {other} is not a string; every word of the command is a string"
                ));
            }
        }
    }
    match run.first() {
        None => Err("run is empty: name the program to run, `run = [\"<program>\", ...]`".into()),
        Some(program) if program.is_empty() => Err("run: the program's name is empty".into()),
        Some(_) => Ok(AfterUp { service, run }),
    }
}

/// A compose service name, as the compose specification allows it.
fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// `[shared]`: the shared folder and the folders of it a slot mounts.
fn shared(
    raw: Option<RawShared>,
    name: &str,
    env: &Environment,
    base: &Path,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<(PathBuf, Vec<String>)> {
    let raw = raw.unwrap_or_default();
    let dir = match raw.dir {
        Some(d) => env.expand(&d, base)?,
        // Without HOME, a state folder given by DOCKER_SANDBOX_HOME holds the
        // shared folder too, so that setting it is enough.
        None => match (env.home(), &env.state_override) {
            (Err(_), Some(state)) => env.cwd.join(state).join("shared"),
            (home, _) => home?.join(format!(".{name}")).join("shared"),
        },
    };
    let folders = raw
        .folders
        .unwrap_or_else(|| DEFAULT_SHARED_FOLDERS.map(String::from).to_vec());
    if let Some(f) = folders.iter().find(|f| !valid_folder(f)) {
        return Err(bad(format!(
            "[shared] folders: `{f}` must be a plain folder name"
        )));
    }
    Ok((dir, folders))
}

/// `[env]`: variables added to every slot's env file, as strings.
fn extra_env(
    raw: Option<toml::Table>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<BTreeMap<String, String>> {
    let mut extra_env = BTreeMap::new();
    for (key, value) in raw.unwrap_or_default() {
        if !valid_env_name(&key) {
            return Err(bad(format!("[env] `{key}` is not a valid variable name")));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(bad(format!(
                    "[env] {key} = {other}: values are strings, numbers or booleans"
                )));
            }
        };
        if value.contains('\n') {
            return Err(bad(format!("[env] {key}: a value cannot span lines")));
        }
        if let Some(why) = crate::envfile::env_value_problem(&value) {
            return Err(bad(format!("[env] {key}: {why}")));
        }
        extra_env.insert(key, value);
    }
    Ok(extra_env)
}

/// `[secrets]`: each list the file gives replaces the default one; only the
/// KTRDR stack has KTRDR's secrets by default. A pool that adopts compose
/// files has none: its model is read with compose's `config`, whose output
/// (kept in the state folder, and copied into the slot file for legacy
/// compose) would hold the values.
fn secrets(
    raw: Option<RawSecrets>,
    embedded: bool,
    adopted: bool,
    extra_env: &BTreeMap<String, String>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<Secrets> {
    if adopted && raw.is_some() {
        return Err(bad(
            "[secrets] applies to a pool with templates: an adopted pool's compose model, which would hold the values, is kept in files".into(),
        ));
    }
    let defaults = if embedded {
        default_secrets()
    } else {
        Secrets::default()
    };
    let raw = raw.unwrap_or_default();
    let secrets = Secrets {
        random: raw.random.unwrap_or(defaults.random),
        pass: raw.pass.unwrap_or(defaults.pass),
    };
    let mut seen = BTreeMap::new();
    for (list, names) in [("random", &secrets.random), ("pass", &secrets.pass)] {
        for name in names {
            if !valid_env_name(name) {
                return Err(bad(format!(
                    "[secrets] {list}: `{name}` is not a valid variable name"
                )));
            }
            if let Some(first) = seen.insert(name.as_str(), list) {
                return Err(bad(format!(
                    "[secrets] `{name}` is listed twice (in {first} and in {list})"
                )));
            }
            if extra_env.contains_key(name) {
                return Err(bad(format!(
                    "[secrets] {list}: `{name}` is also set in [env]; a secret's value comes from [secrets] alone"
                )));
            }
        }
    }
    Ok(secrets)
}

/// The state folder: `DOCKER_SANDBOX_HOME`, else `[pool] state_dir`, else
/// under the home folder.
fn state_dir(
    raw: Option<String>,
    name: &str,
    env: &Environment,
    base: &Path,
    adopted: bool,
) -> Result<PathBuf> {
    Ok(match (&env.state_override, raw) {
        (Some(dir), _) => env.cwd.join(dir),
        (None, Some(dir)) => env.expand(&dir, base)?,
        (None, None) if adopted => env.state_home()?.join("docker-sandbox").join(name),
        (None, None) => env.home()?.join(format!(".{name}")).join("sandboxes"),
    })
}

fn parse_slot_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return None;
    }
    s.parse().ok().filter(|n| (1..=MAX_SLOT).contains(n))
}

fn parse_rule(v: &toml::Value) -> Option<PortRule> {
    let arr = v.as_array()?;
    let [base, stride] = arr.as_slice() else {
        return None;
    };
    let base = u32::try_from(base.as_integer()?)
        .ok()
        .filter(|b| (1..=65535).contains(b))?;
    let stride = u32::try_from(stride.as_integer()?)
        .ok()
        .filter(|s| *s <= 65535)?;
    Some(PortRule { base, stride })
}

fn parse_gate(g: RawGate) -> std::result::Result<GateCheck, String> {
    match (g.http, g.tcp) {
        (Some(_), Some(_)) => Err("give `http` or `tcp`, not both".into()),
        (None, None) => Err("give `http = \"<port name>\"` or `tcp = \"<port name>\"`".into()),
        (None, Some(port)) => {
            if g.path.is_some() || g.status.is_some() || g.count.is_some() {
                return Err("a `tcp` check takes no `path`, `status` or `count`".into());
            }
            Ok(GateCheck::Tcp { port })
        }
        (Some(port), None) => {
            let path = g.path.unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(format!("path `{path}` must start with `/`"));
            }
            match g.count {
                None => Ok(GateCheck::Http {
                    port,
                    path,
                    status: g.status.unwrap_or(200),
                }),
                Some(_) if g.status.is_some() => {
                    Err("a `count` check expects status 200; leave `status` out".into())
                }
                Some(toml::Value::String(s)) if s == "workers" => Ok(GateCheck::HttpCount {
                    port,
                    path,
                    count: Count::Workers,
                }),
                Some(toml::Value::Integer(n)) if (0..=10_000).contains(&n) => {
                    Ok(GateCheck::HttpCount {
                        port,
                        path,
                        count: Count::Fixed(n as u32),
                    })
                }
                Some(other) => Err(format!(
                    "count = {other}: expected \"workers\" or a whole number"
                )),
            }
        }
    }
}

fn valid_pool_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(crate) fn valid_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn valid_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn valid_folder(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            home: Some("/home/u".into()),
            cwd: "/repo".into(),
            ..Environment::default()
        }
    }

    fn load_str(text: &str) -> Result<Pool> {
        from_toml(text, Some(Path::new("/repo/docker-sandbox.toml")), &env())
    }

    fn err(text: &str) -> String {
        format!("{:#}", load_str(text).unwrap_err())
    }

    #[test]
    fn a_pool_adopts_compose_files_with_no_workers_and_its_state_in_the_platform_folder() {
        let pool = load_str(
            "[pool]\nname = \"demo\"\ncompose = [\"compose.yaml\", \"ops/extra.yml\"]\n\
             [isolation]\nexternal = \"per-slot\"\n",
        )
        .unwrap();
        let a = pool.adopted().unwrap();
        assert_eq!(a.files, ["compose.yaml", "ops/extra.yml"]);
        assert_eq!(a.external, crate::model::External::PerSlot);
        assert!(!a.zero_config);
        assert!(pool.ports.is_empty(), "the ports come from the model");
        assert!(pool.gate.is_empty());
        assert!(
            pool.profiles.values().all(BTreeMap::is_empty),
            "{:?}",
            pool.profiles
        );
        assert_eq!(
            pool.state_dir,
            Path::new("/home/u/.local/state/docker-sandbox/demo")
        );
        assert_eq!(pool.why(), "docker-sandbox.toml");
        assert_eq!(pool.summary().source, "project-file");
    }

    #[test]
    fn an_adopting_pool_is_refused_clearly() {
        let both = err("[pool]\ntemplates = \"t\"\ncompose = [\"c.yml\"]");
        assert!(both.contains("both templates and compose"), "{both}");
        assert!(err("[pool]\ncompose = []").contains("compose is empty"));
        let outside = err("[pool]\ncompose = [\"../other/compose.yml\"]");
        assert!(
            outside.contains("`../other/compose.yml` must be a path inside"),
            "{outside}"
        );
        let value = err("[pool]\ncompose = [\"c.yml\"]\n[isolation]\nexternal = \"mine\"");
        assert!(value.contains("external = \"mine\""), "{value}");
        let alone = err("[isolation]\nexternal = \"shared\"");
        assert!(alone.contains("set [pool] compose"), "{alone}");
    }

    #[test]
    fn secrets_default_to_ktrdrs_for_the_embedded_stack_only() {
        let ktrdr = load_str("").unwrap();
        assert_eq!(ktrdr.secrets.random.len(), 2);
        assert_eq!(ktrdr.secrets.pass.len(), 2);
        let own = load_str("[pool]\nname = \"demo\"\ncompose = [\"c.yml\"]").unwrap();
        assert_eq!(own.secrets, Secrets::default());
        let given = load_str("[secrets]\nrandom = [\"SECRET_KEY\"]\npass = []").unwrap();
        assert_eq!(given.secrets.random, ["SECRET_KEY"]);
        assert!(given.secrets.pass.is_empty());
    }

    #[test]
    fn bad_secrets_are_refused_clearly() {
        let name = err("[secrets]\nrandom = [\"NOT-A-NAME\"]");
        assert!(
            name.contains("[secrets] random: `NOT-A-NAME` is not a valid variable name"),
            "{name}"
        );
        let twice = err("[secrets]\nrandom = [\"K\"]\npass = [\"K\"]");
        assert!(
            twice.contains("`K` is listed twice (in random and in pass)"),
            "{twice}"
        );
        let env = err("[env]\nAPI_KEY = \"x\"\n[secrets]\npass = [\"API_KEY\"]");
        assert!(env.contains("`API_KEY` is also set in [env]"), "{env}");
        let key = err("[secrets]\nrandoms = []");
        assert!(key.contains("randoms"), "{key}");
        let adopted = err("[pool]\ncompose = [\"c.yml\"]\n[secrets]\npass = [\"API_KEY\"]");
        assert!(
            adopted.contains("[secrets] applies to a pool with templates"),
            "{adopted}"
        );
    }

    #[test]
    fn a_folder_name_becomes_a_pool_name() {
        let name = |s: &str| name_from_folder(Path::new(s));
        assert_eq!(name("/src/My_App.v2"), "my-app-v2");
        assert_eq!(name("/src/example-voting-app"), "example-voting-app");
        assert_eq!(name("/src/2048"), "p2048");
        assert_eq!(name("/src/--"), "project");
        assert_eq!(name(&format!("/src/{}", "a".repeat(40))).len(), 32);
    }

    #[test]
    fn a_project_file_overrides_what_it_gives() {
        let pool = load_str(
            r#"
            gate = []
            [pool]
            name = "demo-app"
            state_dir = "~/x/state"
            [slots]
            1 = "light"
            2 = "heavy"
            [profiles]
            heavy = { backtest = 3 }
            [ports]
            api = [18000, 1]
            web = [19000, 2]
            workers = [20000, 10]
            [env]
            FEATURE = "on"
            RETRIES = 3
            "#,
        )
        .unwrap();
        assert_eq!(pool.name, "demo-app");
        assert_eq!(pool.prefix(), "DEMO_APP");
        assert_eq!(pool.state_dir, Path::new("/home/u/x/state"));
        assert_eq!(pool.slots.len(), 2);
        assert_eq!(
            pool.workers(2),
            &WorkerCounts::from([("backtest".into(), 3)])
        );
        // Untouched profiles keep their defaults.
        assert_eq!(pool.profiles[&Profile::Light]["training"], 1);
        let names: Vec<_> = pool.ports.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "api",
                "db",
                "grafana",
                "jaeger_ui",
                "prometheus",
                "jaeger_otlp_grpc",
                "jaeger_otlp_http",
                "web"
            ],
            "the embedded stack merges [ports] over its map, keeping order"
        );
        assert_eq!(
            pool.ports[0].1,
            PortRule {
                base: 18000,
                stride: 1
            }
        );
        assert_eq!(
            pool.worker_ports,
            PortRule {
                base: 20000,
                stride: 10
            }
        );
        assert_eq!(pool.env["RETRIES"], "3");
        assert!(pool.gate.is_empty());
    }

    #[test]
    fn own_templates_start_from_their_own_ports_and_no_checks() {
        let dir = tempfile::tempdir().unwrap();
        for f in [COMPOSE_TEMPLATE, ENV_TEMPLATE] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let text = format!(
            "[pool]\ntemplates = \"{}\"\n[ports]\nweb = [7000, 1]",
            dir.path().display()
        );
        let pool = load_str(&text).unwrap();
        assert_eq!(
            pool.ports,
            vec![(
                "web".to_owned(),
                PortRule {
                    base: 7000,
                    stride: 1
                }
            )]
        );
        assert!(pool.gate.is_empty());
        assert_eq!(pool.templates, Templates::Dir(dir.path().to_owned()));
    }

    #[test]
    fn state_dir_override_wins() {
        let mut e = env();
        e.state_override = Some("/state".into());
        let pool = from_toml("[pool]\nstate_dir = \"/elsewhere\"", None, &e).unwrap();
        assert_eq!(pool.state_dir, Path::new("/state"));
    }

    #[test]
    fn home_is_needed_only_when_used() {
        let mut e = env();
        e.home = None;
        let msg = format!("{:#}", from_toml("", None, &e).unwrap_err());
        assert!(msg.contains("HOME is not set"), "{msg}");
        e.state_override = Some("/s".into());
        let pool = from_toml("[shared]\ndir = \"/shared\"", None, &e).unwrap();
        assert_eq!(pool.state_dir, Path::new("/s"));
    }

    #[test]
    fn bad_files_name_the_file_and_the_key() {
        let m = err("[pool]\nnmae = \"x\"");
        assert!(
            m.contains("/repo/docker-sandbox.toml") && m.contains("nmae"),
            "{m}"
        );
        assert!(err("[pool]\nname = \"Bad\"").contains("name `Bad`"));
        assert!(err("[slots]\n0 = \"light\"").contains("[slots] key `0`"));
        assert!(err("[slots]\n100 = \"light\"").contains("key `100`"));
        assert!(err("[slots]\nabc = \"light\"").contains("key `abc`"));
        assert!(err("[slots]\n1 = \"huge\"").contains("unknown profile"));
        assert!(err("[profiles]\nhuge = { a = 1 }").contains("`huge`"));
        assert!(err("[ports]\napi = [70000, 1]").contains("[ports] api"));
        assert!(err("[ports]\nApi = [8000, 1]").contains("`Api`"));
        assert!(err("[[gate]]\ntcp = \"nope\"").contains("port `nope` is not in [ports]"));
        assert!(err("[[gate]]\nhttp = \"api\"\ntcp = \"db\"").contains("not both"));
        assert!(err("[pool]\ntemplates = \"tpl\"").contains("/repo/tpl/docker-compose.yml.hbs"));
        assert!(err("this is not toml").contains("docker-sandbox.toml"));
    }

    #[test]
    fn the_seed_otlp_formula_is_refused_naming_both_owners() {
        let m = err("[ports]\njaeger_otlp_grpc = [4317, 1]\njaeger_otlp_http = [4318, 1]");
        assert!(m.contains("port 4319"), "{m}");
        assert!(m.contains("slot 1 `jaeger_otlp_http`"), "{m}");
        assert!(m.contains("slot 2 `jaeger_otlp_grpc`"), "{m}");
    }

    #[test]
    fn gate_checks_parse() {
        let pool = load_str(
            r#"
            [[gate]]
            http = "api"
            path = "/h"
            status = 204
            [[gate]]
            http = "api"
            path = "/w"
            count = 3
            [[gate]]
            tcp = "db"
            "#,
        )
        .unwrap();
        assert_eq!(
            pool.gate,
            vec![
                GateCheck::Http {
                    port: "api".into(),
                    path: "/h".into(),
                    status: 204
                },
                GateCheck::HttpCount {
                    port: "api".into(),
                    path: "/w".into(),
                    count: Count::Fixed(3)
                },
                GateCheck::Tcp { port: "db".into() },
            ]
        );
    }

    #[test]
    fn after_up_steps_parse_in_order() {
        let pool = load_str(
            r#"
            after_up = [{ service = "db", run = ["psql", "-c", "select 1"] }]
            [[gate]]
            tcp = "db"
            "#,
        )
        .unwrap();
        assert_eq!(
            pool.after_up,
            [AfterUp {
                service: "db".into(),
                run: vec!["psql".into(), "-c".into(), "select 1".into()],
            }]
        );
        let pool = load_str(
            "[[after_up]]\nservice = \"backend\"\nrun = [\"alembic\", \"upgrade\", \"head\"]\n\
             [[after_up]]\nservice = \"web.1_a-b\"\nrun = [\"seed\", \"\"]\n",
        )
        .unwrap();
        let services: Vec<_> = pool.after_up.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(services, ["backend", "web.1_a-b"]);
        assert_eq!(pool.after_up[1].run, ["seed", ""]);
        // The embedded pool's own step, and none when the file says so.
        assert_eq!(load_str("").unwrap().after_up.len(), 1);
        assert!(load_str("after_up = []").unwrap().after_up.is_empty());
    }

    #[test]
    fn bad_after_up_steps_name_the_file_the_step_and_the_key() {
        let cases = [
            (
                "[[after_up]]\nrun = [\"x\"]",
                "[[after_up]] number 1: give `service = ",
            ),
            (
                "[[after_up]]\nservice = \"back end\"\nrun = [\"x\"]",
                "service `back end` is not a compose service name",
            ),
            (
                "[[after_up]]\nservice = 3\nrun = [\"x\"]",
                "service = 3: expected the name of a compose service",
            ),
            (
                "[[after_up]]\nservice = \"b\"",
                "give `run = [\"<program>\"",
            ),
            (
                "[[after_up]]\nservice = \"b\"\nrun = \"alembic upgrade head\"",
                "give the command as a list of words, `run = [\"alembic\", \"upgrade\", \"head\"]`",
            ),
            (
                "[[after_up]]\nservice = \"b\"\nrun = []",
                "run is empty: name the program to run",
            ),
            (
                "[[after_up]]\nservice = \"b\"\nrun = [\"a\", 1]",
                "run: 1 is not a string",
            ),
            (
                "[[after_up]]\nservice = \"b\"\nrun = [\"\"]",
                "run: the program's name is empty",
            ),
            (
                "[[after_up]]\nservice = \"b\"\nrun = [\"x\"]\n[[after_up]]\nservice = \"\"\nrun = [\"x\"]",
                "[[after_up]] number 2: service `` is not",
            ),
        ];
        for (text, part) in cases {
            let m = err(text);
            assert!(
                m.contains("invalid project file `/repo/docker-sandbox.toml`: ")
                    && m.contains(part),
                "{text}\n---\n{m}"
            );
        }
        let unknown = err("[[after_up]]\nservice = \"b\"\nrun = [\"x\"]\ncmd = \"y\"");
        assert!(unknown.contains("cmd"), "{unknown}");
        let hint = load_str("[[after_up]]\nrun = [\"x\"]").unwrap_err();
        let hint = hint.downcast_ref::<crate::error::UserError>().unwrap();
        assert!(
            hint.hint
                .as_deref()
                .unwrap()
                .contains("\"Project file\" section"),
            "{hint:?}"
        );
    }
}
