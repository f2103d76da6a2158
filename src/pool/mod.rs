//! The pool every command uses: what a pool is (`Pool`: its slots, profiles,
//! ports and readiness checks) and where it comes from (`load`). A project's
//! `docker-sandbox.toml` is read in `file.rs` over the built-in KTRDR pool of
//! `embedded.rs`; `ports.rs` holds the port formulas and their checks. Callers
//! use what this file exports, not the files under it. It touches no state.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::fail;
use crate::worktree;

pub(crate) mod adopt;
mod embedded;
mod file;
mod ports;
pub(crate) mod subnets;

pub(crate) use file::{check_gate_ports, from_toml, name_from_folder};
pub(crate) use ports::{PortRule, SlotPorts, Worker, is_free_as, slot_ports};
pub(crate) use subnets::Subnets;

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

/// Where a slot's files come from: templates, or the project's own compose
/// files adopted unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Templates {
    Embedded,
    Dir(PathBuf),
    Adopt(Adopted),
}

/// A pool that adopts a project's own compose files (DESIGN 3a): each slot's
/// file is made from compose's model of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adopted {
    /// The compose files, relative to a worktree's top, in `-f` order.
    pub(crate) files: Vec<String>,
    /// `[isolation] external`.
    pub(crate) external: crate::model::External,
    /// Found with no project file: a standard compose file at the top level.
    pub(crate) zero_config: bool,
}

/// The compose files a repository's top level may hold, in compose's own
/// order of preference.
pub(crate) const STANDARD_COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

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

/// `[secrets]`: variables a slot's stack gets that no repository may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Secrets {
    /// Each gets a random value per slot, kept in the slot's env files (mode
    /// 0600, out of git) for as long as the slot's volumes live: a new claim
    /// gets new values. `<PREFIX>_DB_PASSWORD` is the slot's `password`.
    pub(crate) random: Vec<String>,
    /// Passed from the user's environment to compose's, when set; never
    /// written to a file.
    pub(crate) pass: Vec<String>,
}

/// A command run in a service's container once `up` has started the stack,
/// before the gate (`[[after_up]]`): a database migration, a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AfterUp {
    /// The compose service whose container runs it.
    pub(crate) service: String,
    /// The program and its arguments, as `compose exec` takes them: no shell.
    pub(crate) run: Vec<String>,
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
    /// Run in order after the stack starts, before the gate.
    pub(crate) after_up: Vec<AfterUp>,
    pub(crate) gate_timeout: Duration,
    pub(crate) shared_dir: PathBuf,
    pub(crate) shared_folders: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) secrets: Secrets,
    pub(crate) state_dir: PathBuf,
    /// `[pool] subnets`: where the slots' networks take their subnets.
    pub(crate) subnets: Subnets,
    /// An adopted pool's compose model, of the worktree the command runs in
    /// (`adopt::complete`).
    pub(crate) model: Option<std::sync::Arc<crate::model::Model>>,
    /// What the model's isolation leaves shared or changes, for people.
    pub(crate) warnings: Vec<String>,
    /// Why an adopted pool has no model: its compose files do not read, or
    /// cannot be isolated.
    pub(crate) model_error: Option<std::sync::Arc<anyhow::Error>>,
    /// The worktree `model` (or `model_error`) is of.
    pub(crate) model_top: Option<PathBuf>,
    /// `local` first, then the `[engines.NAME]` of the project file by name.
    pub(crate) engines: Vec<crate::engine::EngineSpec>,
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
        match (&self.source, &self.templates) {
            (Some(p), _) => format!("`{}`", p.display()),
            (None, Templates::Adopt(a)) => format!("the adopted `{}`", a.files.join("`, `")),
            (None, _) => "the default pool".to_owned(),
        }
    }

    /// The pool's compose files when it adopts them.
    pub(crate) fn adopted(&self) -> Option<&Adopted> {
        match &self.templates {
            Templates::Adopt(a) => Some(a),
            _ => None,
        }
    }

    /// The bind sources of `model` (of one of the pool's slots) that are
    /// missing: neither on disk nor made by the pool, which makes its shared
    /// folders before compose runs and renders its slot folders.
    pub(crate) fn missing_binds(
        &self,
        model: &crate::model::Model,
    ) -> Vec<crate::model::MissingBind> {
        let shared: Vec<PathBuf> = self
            .shared_folders
            .iter()
            .map(|f| self.shared_dir.join(f))
            .collect();
        let slot_dirs: Vec<PathBuf> = self.slots.keys().map(|s| self.slot_dir(*s)).collect();
        let within: Vec<&Path> = slot_dirs.iter().map(PathBuf::as_path).collect();
        let made = crate::model::Made {
            folders: &shared,
            within: &within,
        };
        crate::model::missing_binds(model, made, &crate::model::active_profiles())
    }

    /// `pool demo (docker-sandbox.toml)`: the line a reporting command starts
    /// with on a terminal.
    pub(crate) fn line(&self) -> String {
        format!("pool {} ({})", self.name, self.why())
    }

    /// Which pool and why, for JSON.
    pub(crate) fn summary(&self) -> Summary {
        let source = match (&self.source, &self.templates) {
            (Some(_), _) => "project-file",
            (None, Templates::Adopt(_)) => "adopted",
            (None, _) => "built-in",
        };
        Summary {
            name: self.name.clone(),
            source,
            why: self.why(),
            file: self.source.clone(),
            compose: self.adopted().map(|a| a.files.clone()).unwrap_or_default(),
            state_dir: self.state_dir.clone(),
        }
    }

    /// Why this pool: `docker-sandbox.toml`, `adopted compose.yaml`,
    /// `built-in default`.
    pub(crate) fn why(&self) -> String {
        match (&self.source, &self.templates) {
            (Some(p), _) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            (None, Templates::Adopt(a)) => format!("adopted {}", a.files.join(", ")),
            (None, _) => "built-in default".to_owned(),
        }
    }
}

/// Which pool a command used and why: the `pool` object of JSON output.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub(crate) name: String,
    /// `project-file`, `adopted` (no project file: the repository's compose
    /// file) or `built-in`.
    pub(crate) source: &'static str,
    /// As the terminal line says it: `docker-sandbox.toml`, `adopted compose.yaml`.
    pub(crate) why: String,
    /// The project file.
    pub(crate) file: Option<PathBuf>,
    /// The compose files an adopted pool runs, relative to the worktree.
    pub(crate) compose: Vec<String>,
    pub(crate) state_dir: PathBuf,
}

/// What the environment contributes to loading: kept apart so tests can set it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    pub(crate) home: Option<PathBuf>,
    pub(crate) state_override: Option<PathBuf>,
    pub(crate) config_override: Option<PathBuf>,
    /// `DOCKER_SANDBOX_SUBNETS`: the range of a pool whose project file sets
    /// no `[pool] subnets`.
    pub(crate) subnets_default: Option<String>,
    /// The platform's state folder (`~/.local/state` on Linux), where pools
    /// other than the embedded one keep their state by default.
    pub(crate) state_home: Option<PathBuf>,
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
            subnets_default: std::env::var("DOCKER_SANDBOX_SUBNETS")
                .ok()
                .filter(|v| !v.is_empty()),
            state_home: dirs::state_dir(),
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

    /// The platform's state folder: `$XDG_STATE_HOME`, else `~/.local/state`.
    fn state_home(&self) -> Result<PathBuf> {
        match &self.state_home {
            Some(dir) => Ok(dir.clone()),
            None => Ok(self.home()?.join(".local").join("state")),
        }
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
/// `docker-sandbox.toml` at the git top level, else a standard compose file
/// there (adopted with no configuration), else the embedded default.
pub(crate) fn load(env: &Environment) -> Result<Pool> {
    let top = worktree::find_top(&env.cwd);
    let file = match &env.config_override {
        Some(p) => Some(env.cwd.join(p)),
        None => top
            .as_ref()
            .map(|top| top.join(PROJECT_FILE))
            .filter(|p| p.is_file()),
    };
    if file.is_none()
        && let Some(top) = &top
        && let Some(compose) = standard_compose_file(top)
    {
        return file::zero_config(top, compose, env);
    }
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

/// The standard compose file at the top of a checkout, if it holds one.
pub(crate) fn standard_compose_file(top: &Path) -> Option<&'static str> {
    STANDARD_COMPOSE_FILES
        .into_iter()
        .find(|f| top.join(f).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_ordered_light_standard_heavy() {
        assert!(Profile::Light < Profile::Standard && Profile::Standard < Profile::Heavy);
        assert_eq!(Profile::parse("heavy"), Some(Profile::Heavy));
        assert_eq!(Profile::parse("Heavy"), None);
    }
}
