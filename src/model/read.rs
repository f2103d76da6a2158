//! Reading the model: compose's own `config` of the project, cached in the
//! pool's state folder by the content of every file compose read and by the
//! compose version, so that an unchanged project runs no `config` at all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{Model, normalise, yaml};
use crate::compose::{Compose, Program};
use crate::error::fail;
use crate::template::fnv1a;

/// Which shape compose's `config` output has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// v2's `config --format json`.
    Json,
    /// Legacy 1.29's YAML (no JSON output), converted to JSON.
    Legacy,
}

impl Dialect {
    pub(crate) fn of(compose: &Compose) -> Dialect {
        if version(&compose.version) < (2, 0, 0) {
            Dialect::Legacy
        } else {
            Dialect::Json
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Json => "json",
            Dialect::Legacy => "legacy",
        }
    }
}

/// `2.24.4`, `5.6.1`, `2.29.7-desktop.1` as numbers; what does not parse is 0.
pub(crate) fn version(text: &str) -> (u32, u32, u32) {
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

/// A project as compose is asked to read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The compose project name (`-p`).
    pub(crate) project: &'a str,
    /// The worktree (`--project-directory`), whose `.env` compose reads.
    pub(crate) directory: &'a Path,
    /// The project's compose files (`-f`), absolute.
    pub(crate) files: &'a [PathBuf],
    /// Env files (`--env-file`) in order, the later winning; none: compose
    /// reads the project folder's `.env`.
    pub(crate) env_files: &'a [PathBuf],
    /// Variables compose must not see while it reads the model: the pool's
    /// passed-through secrets, which the model, kept in a file, never holds.
    pub(crate) hidden: &'a [String],
}

/// The model of exactly what `project` runs (its `-f` files and env files, as
/// `Compose::command` passes them), from `cache_dir` when nothing compose
/// would read has changed; compose is found through `compose` only when it
/// must run.
pub(crate) fn of_project(
    compose: &dyn Fn() -> Result<Compose>,
    project: &crate::compose::Project,
    cache_dir: &Path,
) -> Result<Model> {
    let mut files = project.base_files.clone();
    files.push(project.file.clone());
    files.extend(project.networks.iter().cloned());
    let mut env_files: Vec<PathBuf> = project.base_env.iter().cloned().collect();
    env_files.push(project.env_file.clone());
    let source = Source {
        project: &project.name,
        directory: &project.directory,
        files: &files,
        env_files: &env_files,
        hidden: &project.pass,
    };
    read_lazily(compose, &source, cache_dir)
}

/// The model of `source` as `compose` reads it, from `cache_dir` when nothing
/// compose would read has changed and this compose read it.
pub(crate) fn read(compose: &Compose, source: &Source<'_>, cache_dir: &Path) -> Result<Model> {
    let (key, found) = inputs_key(source);
    let path = cache_path(cache_dir, source);
    if let Some(model) = cached_entry(&path, &key, source, Some(&identity(compose))) {
        return Ok(model);
    }
    read_now(compose, source, &path, &key, &found)
}

/// The model of `source`: the cached one when nothing compose would read has
/// changed (whichever compose read it), else compose's `config`, with compose
/// found through `compose` only then. An unchanged project runs no child
/// process at all.
pub(crate) fn read_lazily(
    compose: &dyn Fn() -> Result<Compose>,
    source: &Source<'_>,
    cache_dir: &Path,
) -> Result<Model> {
    let (key, found) = inputs_key(source);
    let path = cache_path(cache_dir, source);
    if let Some(model) = cached_entry(&path, &key, source, None) {
        return Ok(model);
    }
    read_now(&compose()?, source, &path, &key, &found)
}

/// The cached model of `source`, if nothing it was read from has changed.
pub(crate) fn cached(source: &Source<'_>, cache_dir: &Path) -> Option<Model> {
    let (key, _) = inputs_key(source);
    cached_entry(&cache_path(cache_dir, source), &key, source, None)
}

/// The cache key of what compose would read for `source`, and the files.
fn inputs_key(source: &Source<'_>) -> (String, yaml::Sources) {
    let found = yaml::sources(source.files);
    let dotenv = source.directory.join(".env");
    let mut inputs = found.files.clone();
    if source.env_files.is_empty() && !inputs.contains(&dotenv) {
        inputs.push(dotenv);
    }
    inputs.extend(source.env_files.iter().cloned());
    (cache_key(source, &inputs), found)
}

/// Which compose printed a model: its program and version.
fn identity(compose: &Compose) -> String {
    let program = match &compose.program {
        Program::Plugin => "plugin".to_owned(),
        Program::Standalone(bin) => bin.display().to_string(),
    };
    format!("{program} {}", compose.version)
}

/// Runs `config`, caches what it printed, and normalises it.
fn read_now(
    compose: &Compose,
    source: &Source<'_>,
    path: &Path,
    key: &str,
    found: &yaml::Sources,
) -> Result<Model> {
    let dialect = Dialect::of(compose);
    let raw = run_config(compose, source, dialect, &found.profiles)?;
    let entry = json!({
        "key": key,
        "compose": identity(compose),
        "version": compose.version,
        "dialect": dialect.name(),
        "raw": raw,
    });
    if let Some(dir) = path.parent() {
        crate::fsutil::create_dir_all(dir)?;
    }
    // Private: the env files' values, secrets among them, are in the model.
    crate::fsutil::write_atomic(path, entry.to_string().as_bytes(), 0o600)?;
    let mut model = normalise::model(source.project, source.directory, dialect, raw)?;
    model.compose_version = compose.version.clone();
    Ok(model)
}

/// One entry per worktree and file list, so worktrees of one pool do not
/// evict each other.
fn cache_path(cache_dir: &Path, source: &Source<'_>) -> PathBuf {
    let dir = source.directory.as_os_str().as_encoded_bytes();
    let mut parts: Vec<&[u8]> = vec![source.project.as_bytes(), dir];
    parts.extend(
        source
            .files
            .iter()
            .chain(source.env_files)
            .map(|f| f.as_os_str().as_encoded_bytes()),
    );
    cache_dir.join(format!("model-{}.json", fnv1a(&parts)))
}

/// The compose version, the project, and every input file's path and content
/// (or its absence), with the values of the environment variables they name:
/// the shell's environment wins over `.env` in compose's interpolation.
fn cache_key(source: &Source<'_>, inputs: &[PathBuf]) -> String {
    let mut owned: Vec<Vec<u8>> = vec![b"docker-sandbox model 2".to_vec()];
    // Which compose reads the model, without running it: the choice, the
    // programs on PATH and docker's plugin folder decide.
    for name in ["DOCKER_SANDBOX_COMPOSE", "PATH", "DOCKER_CONFIG"] {
        let value = std::env::var_os(name).unwrap_or_default();
        owned.push(value.as_encoded_bytes().to_vec());
    }
    owned.extend([
        source.project.as_bytes().to_vec(),
        source.directory.as_os_str().as_encoded_bytes().to_vec(),
    ]);
    owned.extend(
        source
            .files
            .iter()
            .map(|f| f.as_os_str().as_encoded_bytes().to_vec()),
    );
    let mut names = std::collections::BTreeSet::new();
    for file in inputs {
        owned.push(file.as_os_str().as_encoded_bytes().to_vec());
        match std::fs::read(file) {
            Ok(bytes) => {
                names.extend(variable_names(&String::from_utf8_lossy(&bytes)));
                owned.push(bytes);
            }
            Err(_) => owned.push(b"\xfemissing".to_vec()),
        }
    }
    for name in names {
        let value = std::env::var_os(&name).map(|v| v.as_encoded_bytes().to_vec());
        owned.push(
            [
                name.as_bytes(),
                b"=",
                &value.unwrap_or_else(|| b"\xfeunset".to_vec()),
            ]
            .concat(),
        );
    }
    let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    fnv1a(&parts)
}

/// The names `$NAME` and `${NAME...}` refer to (`$$` is a literal dollar).
fn variable_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let start = i + 1 + usize::from(bytes.get(i + 1) == Some(&b'{'));
        let end = bytes[start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .map_or(bytes.len(), |n| start + n);
        if end > start {
            names.push(text[start..end].to_owned());
        }
        i = end.max(i + 1);
    }
    names
}

/// The cached model, if the entry is whole, its key is `key` and (when
/// `compose` is given) that compose printed it. A corrupt entry is as good as
/// none: it is rewritten after the next `config`.
fn cached_entry(
    path: &Path,
    key: &str,
    source: &Source<'_>,
    compose: Option<&str>,
) -> Option<Model> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut entry: Value = serde_json::from_str(&text).ok()?;
    if entry.get("key").and_then(Value::as_str) != Some(key) {
        return None;
    }
    if compose.is_some_and(|c| entry.get("compose").and_then(Value::as_str) != Some(c)) {
        return None;
    }
    let dialect = match entry.get("dialect").and_then(Value::as_str)? {
        "json" => Dialect::Json,
        "legacy" => Dialect::Legacy,
        _ => return None,
    };
    let version = entry.get("version").and_then(Value::as_str)?.to_owned();
    let raw = entry.get_mut("raw")?.take();
    let mut model = normalise::model(source.project, source.directory, dialect, raw).ok()?;
    model.compose_version = version;
    Some(model)
}

/// `compose -p P --project-directory W -f F... [--profile ...] config`, in JSON
/// for v2. `config` only reads files: no engine, so docker's global flags do
/// not matter here.
pub(super) fn config_command(
    compose: &Compose,
    source: &Source<'_>,
    dialect: Dialect,
    profiles: &std::collections::BTreeSet<String>,
) -> Command {
    let mut cmd = base_command(compose);
    cmd.current_dir(source.directory)
        .arg("-p")
        .arg(source.project)
        .arg("--project-directory")
        .arg(source.directory);
    for env in source.env_files {
        cmd.arg("--env-file").arg(env);
    }
    for f in source.files {
        cmd.arg("-f").arg(f);
    }
    // As `Compose::command`: what the env files define, the shell does not.
    for env in source.env_files {
        for key in crate::compose::env_keys(env) {
            cmd.env_remove(key);
        }
    }
    match dialect {
        // 1.29 prints every service whatever its profiles.
        Dialect::Legacy => {
            cmd.arg("config");
        }
        Dialect::Json => {
            if version(&compose.version) >= (2, 24, 4) {
                cmd.args(["--profile", "*"]);
            } else {
                for p in profiles {
                    cmd.arg("--profile").arg(p);
                }
            }
            cmd.args(["config", "--format", "json"]);
        }
    }
    // The flags say it all; the shell's choices must not add to them.
    for var in [
        "COMPOSE_FILE",
        "COMPOSE_PROJECT_NAME",
        "COMPOSE_PROFILES",
        "COMPOSE_ENV_FILES",
        "COMPOSE_PATH_SEPARATOR",
    ] {
        cmd.env_remove(var);
    }
    for var in source.hidden {
        cmd.env_remove(var);
    }
    cmd
}

/// `docker [globals] compose` or the standalone binary.
pub(super) fn base_command(compose: &Compose) -> Command {
    match &compose.program {
        Program::Plugin => {
            let mut c = compose.docker.command();
            c.arg("compose");
            c
        }
        Program::Standalone(bin) => Command::new(bin),
    }
}

fn run_config(
    compose: &Compose,
    source: &Source<'_>,
    dialect: Dialect,
    profiles: &std::collections::BTreeSet<String>,
) -> Result<Value> {
    let mut cmd = config_command(compose, source, dialect, profiles);
    let shown = crate::compose::display(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{shown}`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.trim_end().lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(fail(
            format!(
                "compose could not read the project: `{shown}` failed ({}):\n{}",
                out.status,
                tail.join("\n")
            ),
            "fix the compose file (compose's message above names the problem)",
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = match dialect {
        Dialect::Json => serde_json::from_str(&text).map_err(anyhow::Error::from),
        Dialect::Legacy => yaml::to_json(&text),
    };
    parsed.with_context(|| format!("`{shown}` printed something that is not a compose model"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Docker;
    use std::os::unix::fs::PermissionsExt;

    /// A compose that answers `config` with a fixed model and counts its runs.
    fn fake_compose(dir: &Path, version: &str) -> (Compose, PathBuf) {
        let log = dir.join("runs.log");
        let bin = dir.join("docker-compose");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\necho \"$@\" >> '{}'\necho '{{\"name\":\"p\",\"services\":{{\"web\":{{\"image\":\"x\"}}}}}}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let compose = Compose {
            docker: Docker {
                bin: "docker".into(),
                globals: Vec::new(),
            },
            program: Program::Standalone(bin),
            version: version.into(),
        };
        (compose, log)
    }

    fn runs(log: &Path) -> usize {
        std::fs::read_to_string(log).map_or(0, |t| t.lines().count())
    }

    #[test]
    fn compose_reads_the_model_without_the_hidden_variables() {
        let dir = tempfile::tempdir().unwrap();
        let (compose, _) = fake_compose(dir.path(), "5.6.1");
        let files = [PathBuf::from("/w/compose.yaml")];
        let hidden = ["API_KEY".to_owned()];
        let source = Source {
            project: "p",
            directory: Path::new("/w"),
            files: &files,
            env_files: &[],
            hidden: &hidden,
        };
        let cmd = config_command(&compose, &source, Dialect::Json, &Default::default());
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        assert!(
            removed.contains(&std::ffi::OsStr::new("API_KEY")),
            "{removed:?}"
        );
    }

    #[test]
    fn an_unchanged_project_runs_no_config() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("w");
        let state = dir.path().join("state");
        std::fs::create_dir(&work).unwrap();
        let file = work.join("compose.yaml");
        std::fs::write(
            &file,
            "services:\n  web:\n    image: x\n    env_file: web.env\n    profiles: [a]\n",
        )
        .unwrap();
        let (compose, log) = fake_compose(dir.path(), "2.20.0");
        let files = [file.clone()];
        let source = Source {
            project: "p",
            directory: &work,
            files: &files,
            env_files: &[],
            hidden: &[],
        };
        let first = read(&compose, &source, &state).unwrap();
        assert_eq!(runs(&log), 1);
        assert!(first.services.contains_key("web"));
        let again = read(&compose, &source, &state).unwrap();
        assert_eq!(runs(&log), 1, "the cache answers");
        assert_eq!(first, again);
        // Older than 2.24.4: the profiles are named one by one.
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(args.contains("--profile a config --format json"), "{args}");

        // A file compose reads through the compose file, and `.env`.
        std::fs::write(work.join("web.env"), "A=1\n").unwrap();
        read(&compose, &source, &state).unwrap();
        assert_eq!(runs(&log), 2);
        std::fs::write(work.join(".env"), "B=1\n").unwrap();
        read(&compose, &source, &state).unwrap();
        assert_eq!(runs(&log), 3);
        read(&compose, &source, &state).unwrap();
        assert_eq!(runs(&log), 3);

        // Another compose version.
        let newer = Compose {
            version: "5.6.1".into(),
            ..compose.clone()
        };
        read(&newer, &source, &state).unwrap();
        assert_eq!(runs(&log), 4);
        let args = std::fs::read_to_string(&log).unwrap();
        assert!(
            args.lines()
                .last()
                .unwrap()
                .contains("--profile * config --format json")
        );

        // A corrupt entry is ignored and rewritten.
        let entry = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap();
        std::fs::write(&entry, "{\"key\": ").unwrap();
        read(&newer, &source, &state).unwrap();
        assert_eq!(runs(&log), 5);
        read(&newer, &source, &state).unwrap();
        assert_eq!(runs(&log), 5, "the rewritten entry answers");
    }

    #[test]
    fn a_projects_model_is_read_with_its_env_files_and_cached_by_them() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("w");
        let slot = dir.path().join("slot-1");
        let state = dir.path().join("state");
        std::fs::create_dir(&work).unwrap();
        std::fs::create_dir(&slot).unwrap();
        std::fs::write(slot.join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(slot.join(".env.sandbox"), "P_API_PORT=8001\n").unwrap();
        let (compose, log) = fake_compose(dir.path(), "5.6.1");
        let project = crate::compose::Project {
            name: "p-slot-1".into(),
            directory: work.clone(),
            env_file: slot.join(".env.sandbox"),
            file: slot.join("docker-compose.yml"),
            networks: None,
            base_files: Vec::new(),
            base_env: None,
            pass: Vec::new(),
        };
        let found = || Ok(compose.clone());
        of_project(&found, &project, &state).unwrap();
        of_project(&found, &project, &state).unwrap();
        assert_eq!(runs(&log), 1, "the cache answers");
        let args = std::fs::read_to_string(&log).unwrap();
        let env = format!("--env-file {}", project.env_file.display());
        assert!(args.contains(&env), "{args}");
        // The env file is an input: a new port is a new model.
        std::fs::write(&project.env_file, "P_API_PORT=8002\n").unwrap();
        of_project(&found, &project, &state).unwrap();
        assert_eq!(runs(&log), 2);
        // With an env file given, compose does not read the folder's `.env`.
        std::fs::write(work.join(".env"), "B=1\n").unwrap();
        of_project(&found, &project, &state).unwrap();
        assert_eq!(runs(&log), 2);
    }

    #[test]
    fn variables_named_in_the_files_are_found() {
        assert_eq!(
            variable_names("a: ${PORT:-80} $$NOT $HOST_IP/${X}"),
            ["PORT", "HOST_IP", "X"]
        );
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version("2.24.4") >= (2, 24, 4));
        assert!(version("2.9.10") < (2, 24, 4));
        assert!(version("5.6.1") >= (2, 24, 4));
        assert_eq!(version("2.29.7-desktop.1"), (2, 29, 7));
        assert_eq!(version("1.29.2"), (1, 29, 2));
    }
}
