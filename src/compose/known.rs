//! What compose discovery found, kept between runs: asking `docker compose
//! version --short` costs a docker process and a plugin process (about 60
//! ms), on every command that runs compose. The answer depends only on the
//! programs that give it, so it is kept with what identifies them: the
//! docker CLI and every `docker-compose` plugin docker could run (each with
//! its size and modification time), the standalone `docker-compose` on PATH,
//! and `DOCKER_SANDBOX_COMPOSE`. Any change to one of them, and any doubt
//! (a file that cannot be read), asks compose again.
//!
//! `DOCKER_SANDBOX_COMPOSE_CACHE=0` asks every time.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Compose, Program};
use crate::engine::Docker;

/// Where docker looks for CLI plugins besides its config folder's
/// `cli-plugins` and the config's `cliPluginsExtraDirs`.
const SYSTEM_PLUGIN_DIRS: [&str; 4] = [
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

#[derive(Serialize, Deserialize)]
struct Kept {
    key: String,
    /// `None` for `docker compose`, else the standalone binary.
    standalone: Option<PathBuf>,
    version: String,
}

/// The file that keeps the answer, when caching is on.
fn file() -> Option<PathBuf> {
    if std::env::var_os("DOCKER_SANDBOX_COMPOSE_CACHE").is_some_and(|v| v == "0") {
        return None;
    }
    Some(
        dirs::cache_dir()?
            .join("docker-sandbox")
            .join("compose.json"),
    )
}

/// The programs the answer depends on, as one text; `None` when one of them
/// cannot be identified (then nothing is kept or recalled).
pub(super) fn key(docker: &Docker) -> Option<String> {
    let mut parts = vec![format!(
        "DOCKER_SANDBOX_COMPOSE={}",
        std::env::var("DOCKER_SANDBOX_COMPOSE").unwrap_or_default()
    )];
    let bin = which::which(&docker.bin).ok()?;
    parts.push(identify(&bin)?);
    for dir in plugin_dirs(docker) {
        let plugin = dir.join("docker-compose");
        if plugin.exists() {
            parts.push(identify(&plugin)?);
        }
    }
    if let Ok(standalone) = which::which("docker-compose") {
        parts.push(identify(&standalone)?);
    }
    Some(parts.join("\n"))
}

/// A file by its path, the path it resolves to, its size and modification time.
fn identify(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!(
        "{} -> {} {} {modified}",
        path.display(),
        real.display(),
        meta.len()
    ))
}

/// Every folder docker takes plugins from, in its order.
fn plugin_dirs(docker: &Docker) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(config) = docker.config_dir() {
        let extra = std::fs::read_to_string(config.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("cliPluginsExtraDirs").cloned());
        if let Some(serde_json::Value::Array(extra)) = extra {
            dirs.extend(extra.iter().filter_map(|d| d.as_str()).map(PathBuf::from));
        }
        dirs.push(config.join("cli-plugins"));
    }
    dirs.extend(SYSTEM_PLUGIN_DIRS.iter().map(PathBuf::from));
    dirs
}

/// What was found before with the same programs (`key`), if anything.
pub(super) fn recall(docker: &Docker, key: Option<&str>) -> Option<Compose> {
    let key = key?;
    let text = std::fs::read_to_string(file()?).ok()?;
    let kept: Kept = serde_json::from_str(&text).ok()?;
    if kept.key != key {
        return None;
    }
    Some(Compose {
        docker: docker.clone(),
        program: kept.standalone.map_or(Program::Plugin, Program::Standalone),
        version: kept.version,
    })
}

/// Keeps what was found with the programs of `key`; a cache that cannot be
/// written is only slower.
pub(super) fn keep(found: &Compose, key: Option<&str>) {
    let (Some(file), Some(key)) = (file(), key) else {
        return;
    };
    let kept = Kept {
        key: key.to_owned(),
        standalone: match &found.program {
            Program::Plugin => None,
            Program::Standalone(bin) => Some(bin.clone()),
        },
        version: found.version.clone(),
    };
    let Ok(text) = serde_json::to_vec_pretty(&kept) else {
        return;
    };
    if let Some(dir) = file.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = crate::fsutil::write_atomic(&file, &text, 0o644);
    }
}
