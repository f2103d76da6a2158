//! The pool: the embedded default (the KTRDR pool) or a project's
//! `docker-sandbox.toml`, merged and validated. It computes nothing about ports
//! beyond checking them (`ports.rs` does that) and touches no state.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::fail;
use crate::worktree;

mod ports;

pub(crate) use ports::{PortRule, SlotPorts, Worker, is_free, slot_ports};

/// The project file's name, at the root of a repository.
pub(crate) const PROJECT_FILE: &str = "docker-sandbox.toml";
/// The two templates a template folder must hold.
pub(crate) const COMPOSE_TEMPLATE: &str = "docker-compose.yml.hbs";
pub(crate) const ENV_TEMPLATE: &str = "env.sandbox.hbs";
/// Highest slot id: two digits keep compose project names and ports readable.
pub(crate) const MAX_SLOT: u32 = 99;

/// A slot's size. Ordered: a claim for `standard` may get `heavy`, never `light`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Profile {
    Light,
    Standard,
    Heavy,
}

impl Profile {
    pub(crate) const ALL: [Profile; 3] = [Profile::Light, Profile::Standard, Profile::Heavy];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Profile::Light => "light",
            Profile::Standard => "standard",
            Profile::Heavy => "heavy",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Worker kind -> count, e.g. `{backtest: 2, training: 2}`. Kinds sort by name,
/// which fixes each worker's index and so its port.
pub(crate) type WorkerCounts = BTreeMap<String, u32>;

/// Where a slot's templates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Templates {
    Embedded,
    Dir(PathBuf),
}

/// What a count check compares a JSON list's length against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Count {
    /// The slot's total number of workers.
    Workers,
    Fixed(u32),
}

/// One readiness check run after `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GateCheck {
    Http {
        port: String,
        path: String,
        status: u16,
    },
    HttpCount {
        port: String,
        path: String,
        count: Count,
    },
    Tcp {
        port: String,
    },
}

/// The whole pool, defaults filled in and validated.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub(crate) name: String,
    /// The project file it came from; `None` for the embedded default.
    pub(crate) source: Option<PathBuf>,
    pub(crate) templates: Templates,
    pub(crate) slots: BTreeMap<u32, Profile>,
    pub(crate) profiles: BTreeMap<Profile, WorkerCounts>,
    /// Named ports in the order the env file lists them.
    pub(crate) ports: Vec<(String, PortRule)>,
    pub(crate) worker_ports: PortRule,
    pub(crate) gate: Vec<GateCheck>,
    pub(crate) gate_timeout: Duration,
    pub(crate) shared_dir: PathBuf,
    pub(crate) shared_folders: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) state_dir: PathBuf,
}

impl Pool {
    /// The compose project of a slot: `ktrdr-slot-3`.
    pub(crate) fn project(&self, slot: u32) -> String {
        format!("{}-slot-{slot}", self.name)
    }

    /// The env prefix: `KTRDR` for pool `ktrdr`, `MY_APP` for `my-app`.
    pub(crate) fn prefix(&self) -> String {
        self.name.to_ascii_uppercase().replace('-', "_")
    }

    pub(crate) fn workers(&self, slot: u32) -> &WorkerCounts {
        &self.profiles[&self.slots[&slot]]
    }

    pub(crate) fn slot_dir(&self, slot: u32) -> PathBuf {
        self.state_dir.join(format!("slot-{slot}"))
    }

    /// Where the project file's description of the pool is, for messages.
    pub(crate) fn origin(&self) -> String {
        match &self.source {
            Some(p) => format!("`{}`", p.display()),
            None => "the default pool".to_owned(),
        }
    }
}

/// What the environment contributes to loading: kept apart so tests can set it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub(crate) home: Option<PathBuf>,
    pub(crate) state_override: Option<PathBuf>,
    pub(crate) config_override: Option<PathBuf>,
    pub(crate) cwd: PathBuf,
}

impl Environment {
    pub(crate) fn from_process() -> Result<Environment> {
        let nonempty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ok(Environment {
            home: nonempty("HOME"),
            state_override: nonempty("DOCKER_SANDBOX_HOME"),
            config_override: nonempty("DOCKER_SANDBOX_CONFIG"),
            cwd: std::env::current_dir().context("failed to read the current folder")?,
        })
    }

    fn home(&self) -> Result<&Path> {
        self.home.as_deref().ok_or_else(|| {
            fail(
                "cannot find the home folder: HOME is not set",
                "set HOME, or set DOCKER_SANDBOX_HOME to the folder for sandbox state",
            )
        })
    }

    /// `~/x` against HOME; a relative path against `base`.
    fn expand(&self, raw: &str, base: &Path) -> Result<PathBuf> {
        if raw == "~" {
            return Ok(self.home()?.to_owned());
        }
        if let Some(rest) = raw.strip_prefix("~/") {
            return Ok(self.home()?.join(rest));
        }
        Ok(base.join(raw))
    }
}

/// Loads the pool for the current folder: `DOCKER_SANDBOX_CONFIG` if set, else
/// `docker-sandbox.toml` at the git top level, else the embedded default.
pub(crate) fn load(env: &Environment) -> Result<Pool> {
    let file = match &env.config_override {
        Some(p) => Some(env.cwd.join(p)),
        None => worktree::find_top(&env.cwd)
            .map(|top| top.join(PROJECT_FILE))
            .filter(|p| p.is_file()),
    };
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail(
                    format!("cannot read project file `{}`: {e}", path.display()),
                    "check that the file exists and is readable, or unset DOCKER_SANDBOX_CONFIG",
                )
            })?;
            from_toml(&text, Some(&path), env)
        }
        None => from_toml("", None, env),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pool: Option<RawPool>,
    slots: Option<toml::Table>,
    profiles: Option<BTreeMap<String, BTreeMap<String, i64>>>,
    ports: Option<toml::Table>,
    gate: Option<Vec<RawGate>>,
    shared: Option<RawShared>,
    env: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    name: Option<String>,
    templates: Option<String>,
    state_dir: Option<String>,
    gate_timeout: Option<u64>,
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

/// The KTRDR port map of the seeds, with the OTLP pair on stride 10 so that no
/// slot's HTTP port is the next slot's gRPC port.
const DEFAULT_PORTS: &[(&str, u32, u32)] = &[
    ("api", 8000, 1),
    ("db", 5432, 1),
    ("grafana", 3000, 1),
    ("jaeger_ui", 16686, 1),
    ("prometheus", 9090, 1),
    ("jaeger_otlp_grpc", 4317, 10),
    ("jaeger_otlp_http", 4318, 10),
];
const DEFAULT_WORKER_PORTS: PortRule = PortRule {
    base: 5000,
    stride: 10,
};
const DEFAULT_GATE_TIMEOUT: u64 = 120;

fn default_slots() -> BTreeMap<u32, Profile> {
    (1..=6)
        .map(|id| {
            let p = match id {
                5 => Profile::Standard,
                6 => Profile::Heavy,
                _ => Profile::Light,
            };
            (id, p)
        })
        .collect()
}

fn default_profiles() -> BTreeMap<Profile, WorkerCounts> {
    Profile::ALL
        .into_iter()
        .map(|p| {
            let n = match p {
                Profile::Light => 1,
                Profile::Standard => 2,
                Profile::Heavy => 4,
            };
            (
                p,
                [("backtest".to_owned(), n), ("training".to_owned(), n)].into(),
            )
        })
        .collect()
}

fn default_gate() -> Vec<GateCheck> {
    vec![
        GateCheck::Tcp { port: "db".into() },
        GateCheck::Http {
            port: "api".into(),
            path: "/api/v1/health".into(),
            status: 200,
        },
        GateCheck::HttpCount {
            port: "api".into(),
            path: "/api/v1/workers".into(),
            count: Count::Workers,
        },
    ]
}

/// Parses and validates a project file's text (empty text is the default pool).
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

    let name = raw_pool.name.unwrap_or_else(|| "ktrdr".to_owned());
    if !valid_pool_name(&name) {
        return Err(bad(format!(
            "[pool] name `{name}` must start with a lowercase letter and hold only a-z, 0-9 and `-` (at most 32)"
        )));
    }

    let templates = match raw_pool.templates {
        None => Templates::Embedded,
        Some(dir) => {
            let dir = env.expand(&dir, &base)?;
            for file in [COMPOSE_TEMPLATE, ENV_TEMPLATE] {
                if !dir.join(file).is_file() {
                    return Err(bad(format!(
                        "[pool] templates: `{}` is missing",
                        dir.join(file).display()
                    )));
                }
            }
            Templates::Dir(dir)
        }
    };

    let slots = match raw.slots {
        None => default_slots(),
        Some(table) => {
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
            slots
        }
    };

    let mut profiles = default_profiles();
    for (pname, counts) in raw.profiles.unwrap_or_default() {
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

    // The embedded stack needs every port of its map, so a file's [ports] merges
    // over it; a project's own stack starts from the ports its file gives.
    let embedded = templates == Templates::Embedded;
    let mut ports: Vec<(String, PortRule)> = if embedded || raw.ports.is_none() {
        DEFAULT_PORTS
            .iter()
            .map(|&(n, base, stride)| (n.to_owned(), PortRule { base, stride }))
            .collect()
    } else {
        Vec::new()
    };
    let mut worker_ports = DEFAULT_WORKER_PORTS;
    for (key, value) in raw.ports.unwrap_or_default() {
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

    let gate = match raw.gate {
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
    for (i, check) in gate.iter().enumerate() {
        let port = match check {
            GateCheck::Http { port, .. }
            | GateCheck::HttpCount { port, .. }
            | GateCheck::Tcp { port } => port,
        };
        if !ports.iter().any(|(n, _)| n == port) {
            return Err(bad(format!(
                "[[gate]] number {}: port `{port}` is not in [ports]",
                i + 1
            )));
        }
    }

    let raw_shared = raw.shared.unwrap_or_default();
    let shared_dir = match raw_shared.dir {
        Some(d) => env.expand(&d, &base)?,
        // Without HOME, a state folder given by DOCKER_SANDBOX_HOME holds the
        // shared folder too, so that setting it is enough.
        None => match (env.home(), &env.state_override) {
            (Err(_), Some(state)) => env.cwd.join(state).join("shared"),
            (home, _) => home?.join(format!(".{name}")).join("shared"),
        },
    };
    let shared_folders = raw_shared
        .folders
        .unwrap_or_else(|| ["data", "models", "strategies"].map(String::from).to_vec());
    if let Some(f) = shared_folders.iter().find(|f| !valid_folder(f)) {
        return Err(bad(format!(
            "[shared] folders: `{f}` must be a plain folder name"
        )));
    }

    let mut extra_env = BTreeMap::new();
    for (key, value) in raw.env.unwrap_or_default() {
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
        if let Some(why) = crate::slot::env_value_problem(&value) {
            return Err(bad(format!("[env] {key}: {why}")));
        }
        extra_env.insert(key, value);
    }

    let state_dir = match (&env.state_override, raw_pool.state_dir) {
        (Some(dir), _) => env.cwd.join(dir),
        (None, Some(dir)) => env.expand(&dir, &base)?,
        (None, None) => env.home()?.join(format!(".{name}")).join("sandboxes"),
    };

    let pool = Pool {
        name,
        source: source.map(Path::to_owned),
        templates,
        slots,
        profiles,
        ports,
        worker_ports,
        gate,
        gate_timeout: Duration::from_secs(raw_pool.gate_timeout.unwrap_or(DEFAULT_GATE_TIMEOUT)),
        shared_dir,
        shared_folders,
        env: extra_env,
        state_dir,
    };
    ports::check_pool(&pool).map_err(|e| bad(e.to_string()))?;
    Ok(pool)
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
    fn default_pool_is_the_ktrdr_pool() {
        let pool = from_toml("", None, &env()).unwrap();
        assert_eq!(pool.name, "ktrdr");
        assert_eq!(pool.prefix(), "KTRDR");
        assert_eq!(pool.project(3), "ktrdr-slot-3");
        assert_eq!(pool.state_dir, Path::new("/home/u/.ktrdr/sandboxes"));
        assert_eq!(pool.shared_dir, Path::new("/home/u/.ktrdr/shared"));
        let profiles: Vec<_> = pool.slots.values().map(|p| p.as_str()).collect();
        assert_eq!(
            profiles,
            ["light", "light", "light", "light", "standard", "heavy"]
        );
        assert_eq!(pool.workers(1)["backtest"], 1);
        assert_eq!(pool.workers(5)["training"], 2);
        assert_eq!(pool.workers(6)["backtest"], 4);
        assert_eq!(pool.gate.len(), 3);
        assert_eq!(pool.templates, Templates::Embedded);
    }

    #[test]
    fn profiles_are_ordered_light_standard_heavy() {
        assert!(Profile::Light < Profile::Standard && Profile::Standard < Profile::Heavy);
        assert_eq!(Profile::parse("heavy"), Some(Profile::Heavy));
        assert_eq!(Profile::parse("Heavy"), None);
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
}
