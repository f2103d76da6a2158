//! What runs, asked of the Docker engine: compose containers, volumes and
//! networks by label, the removal of this registry's own (whose is decided
//! in `owner`), and whether the engine answers at all.
//!
//! The engine API on a local unix socket answers in about a millisecond, where a
//! `docker ps` costs a process and 10 to 40 ms (bench/README.md); so the socket
//! is used when the endpoint is a local socket, and the docker CLI (with
//! docker's global flags) for anything else: tcp or ssh hosts, TLS, other
//! contexts.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::error::fail;
use crate::http;
use crate::owner::{LeftAlone, Owner, Survey};

pub(crate) mod api;
pub(crate) mod images;
pub(crate) mod placement;

pub(crate) use api::{Endpoint, Watch};
pub(crate) use placement::{EngineSpec, LOCAL};

pub(crate) const PROJECT_LABEL: &str = "com.docker.compose.project";
pub(crate) const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Compose's own label on containers: the compose files, comma-separated.
pub(crate) const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";
/// Our labels, on every container, volume and network a slot starts.
pub(crate) const REGISTRY_LABEL: &str = "org.docker-sandbox.registry";
pub(crate) const POOL_LABEL: &str = "org.docker-sandbox.pool";
pub(crate) const SLOT_LABEL: &str = "org.docker-sandbox.slot";
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The docker CLI and docker's global flags, for every docker call we make.
#[derive(Debug, Clone)]
pub(crate) struct Docker {
    pub(crate) bin: PathBuf,
    pub(crate) globals: Vec<OsString>,
}

impl Docker {
    /// `docker [globals]`, ready for more arguments.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.globals);
        cmd
    }

    /// The value of a global flag, last one winning (`--host x`, `-H=x`).
    pub(crate) fn global(&self, names: &[&str]) -> Option<String> {
        let mut found = None;
        let mut it = self
            .globals
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .peekable();
        while let Some(arg) = it.next() {
            if let Some((flag, value)) = arg.split_once('=') {
                if names.contains(&flag) {
                    found = Some(value.to_owned());
                }
            } else if names.contains(&arg.as_str()) {
                found = it.next();
            }
        }
        found
    }

    /// The docker CLI's config folder: `--config`, else `DOCKER_CONFIG`,
    /// else `~/.docker`.
    pub(crate) fn config_dir(&self) -> Option<PathBuf> {
        self.global(&["--config"])
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("DOCKER_CONFIG").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
    }

    pub(crate) fn has_global(&self, names: &[&str]) -> bool {
        self.globals.iter().any(|a| {
            let a = a.to_string_lossy();
            names.contains(&a.split_once('=').map_or(a.as_ref(), |(f, _)| f))
        })
    }
}

/// A port a container publishes on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) ip: String,
    pub(crate) public: u16,
    pub(crate) private: u16,
}

/// A compose container as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) project: String,
    pub(crate) service: String,
    /// `running`, `exited`, `created`, `restarting`, `paused`, `dead`.
    pub(crate) state: String,
    /// Docker's human status: `Up 3 seconds (healthy)`, `Exited (1) 2 minutes ago`.
    pub(crate) status: String,
    pub(crate) ports: Vec<Published>,
    pub(crate) marks: Marks,
    /// The named volumes it mounts.
    pub(crate) volumes: Vec<String>,
    /// The networks it is attached to, by name.
    pub(crate) networks: Vec<String>,
}

/// What tells whose a container, volume or network is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// `org.docker-sandbox.registry`, when it has one.
    pub(crate) registry: Option<String>,
    /// Compose's `com.docker.compose.project.config_files` (containers only).
    pub(crate) config_files: Vec<PathBuf>,
}

impl Container {
    /// `healthy`, `unhealthy` or `starting` where the container has a healthcheck.
    pub(crate) fn health(&self) -> Option<&'static str> {
        let s = &self.status;
        if s.contains("(healthy)") {
            Some("healthy")
        } else if s.contains("(unhealthy)") {
            Some("unhealthy")
        } else if s.contains("(health: starting)") {
            Some("starting")
        } else {
            None
        }
    }

    /// The exit code of an exited container.
    pub(crate) fn exit_code(&self) -> Option<i32> {
        let rest = self.status.strip_prefix("Exited (")?;
        rest.split(')').next()?.parse().ok()
    }
}

/// A container's address on one of its networks, and that network's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) ip: std::net::IpAddr,
    pub(crate) gateway: Option<std::net::IpAddr>,
}

/// A volume or network, with the compose project that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resource {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) project: String,
    pub(crate) marks: Marks,
}

/// What `remove_project` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Removed {
    pub(crate) containers: usize,
    pub(crate) volumes: usize,
    pub(crate) networks: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} container(s), {} volume(s), {} network(s)",
            self.containers, self.volumes, self.networks
        )
    }
}

/// What clearing a project did: this registry's own removed, the rest left.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Cleared {
    pub(crate) removed: Removed,
    pub(crate) left_alone: Vec<LeftAlone>,
}

/// How we reach the engine.
#[derive(Debug, Clone)]
pub(crate) enum Engine {
    /// The engine API, asked directly: a unix socket or a plain tcp endpoint.
    Api(Endpoint),
    /// The docker CLI, with docker's global flags: ssh, TLS, anything else.
    Cli(Docker),
}

impl Engine {
    /// Decides how to reach the engine docker would use, with its globals, in
    /// docker's own order: `--context`, then `-H`, then `$DOCKER_HOST`, then
    /// `$DOCKER_CONTEXT`, then the config's `currentContext`. A context is
    /// looked up in docker's context store: one whose endpoint is a unix
    /// socket or plain tcp is asked directly, like the default engine.
    pub(crate) fn new(docker: &Docker) -> Engine {
        let cli = || Engine::Cli(docker.clone());
        if docker.has_global(&[
            "--tls",
            "--tlsverify",
            "--tlscacert",
            "--tlscert",
            "--tlskey",
        ]) {
            return cli();
        }
        let direct = |endpoint: Option<Endpoint>| endpoint.map_or_else(cli, Engine::Api);
        let in_store = |name: &str| {
            docker
                .config_dir()
                .and_then(|dir| api::context_endpoint(&dir, name))
        };
        let context_flag = docker.global(&["-c", "--context"]);
        if let Some(name) = context_flag.as_deref().filter(|c| *c != "default") {
            return direct(in_store(name));
        }
        let host = docker
            .global(&["-H", "--host"])
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()));
        if let Some(host) = host {
            // TLS from the environment belongs to a tcp host.
            let tls = ["DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
            return match Endpoint::parse(&host) {
                Some(Endpoint::Tcp(_)) if tls => cli(),
                endpoint => direct(endpoint),
            };
        }
        if context_flag.is_some() {
            return Engine::Api(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)));
        }
        let context = std::env::var("DOCKER_CONTEXT")
            .ok()
            .or_else(|| current_context(docker));
        match context.as_deref() {
            None | Some("" | "default") => {
                Engine::Api(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)))
            }
            Some(name) => direct(in_store(name)),
        }
    }

    /// Where queries go, for `doctor`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Engine::Api(endpoint) => format!("the engine API at {}", endpoint.shown()),
            Engine::Cli(_) => "the docker CLI (an ssh or TLS host)".to_owned(),
        }
    }

    /// Fails with a clear message when no engine answers.
    pub(crate) fn ping(&self) -> Result<()> {
        match self {
            Engine::Api(endpoint) => {
                let r = api(endpoint, "GET", "/_ping")?;
                if r.status != 200 {
                    return Err(no_engine(
                        &endpoint.shown(),
                        &anyhow::anyhow!("/_ping answered {}", r.status),
                    ));
                }
                Ok(())
            }
            Engine::Cli(docker) => {
                let out = docker
                    .command()
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .output()
                    .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                    return Err(no_engine(
                        "the docker CLI's endpoint",
                        &anyhow::anyhow!(err),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The engine's events about the containers of `project` from a second
    /// ago on (so none between a look at them and the watch is missed):
    /// container created, started, stopped, died, removed, or its health
    /// changed. `None` when the engine cannot be watched; the caller polls.
    pub(crate) fn watch(&self, project: &str) -> Option<Watch> {
        const ACTIONS: [&str; 9] = [
            "create",
            "start",
            "restart",
            "die",
            "stop",
            "kill",
            "destroy",
            "oom",
            "health_status",
        ];
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64()
            - 1.0;
        let label = format!("{PROJECT_LABEL}={project}");
        match self {
            Engine::Api(endpoint) => {
                let filters = serde_json::json!({
                    "type": ["container"],
                    "label": [label],
                    "event": ACTIONS,
                });
                endpoint.events(since, &filters).ok()
            }
            Engine::Cli(docker) => {
                let mut cmd = docker.command();
                cmd.args(["events", "--since", &format!("{since:.3}")])
                    .args(["--filter", "type=container", "--filter"])
                    .arg(format!("label={label}"));
                for a in ACTIONS {
                    cmd.args(["--filter", &format!("event={a}")]);
                }
                let child = cmd
                    .args(["--format", "{{.Action}}"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .ok()?;
                Watch::of_child(child).ok()
            }
        }
    }

    /// Compose containers, running or not; of one project, or of all.
    pub(crate) fn containers(&self, project: Option<&str>) -> Result<Vec<Container>> {
        let filter = label_filter(project);
        match self {
            Engine::Api(socket) => {
                let v = api_json(
                    socket,
                    &format!(
                        "/containers/json?all=1&filters={}",
                        encode(&api_filters(&filter))
                    ),
                )?;
                let list: Vec<ApiContainer> =
                    serde_json::from_value(v).context("unexpected /containers/json answer")?;
                Ok(list.into_iter().map(ApiContainer::into_container).collect())
            }
            Engine::Cli(docker) => cli_lines(
                docker,
                &[
                    "ps",
                    "-a",
                    "--no-trunc",
                    "--filter",
                    &format!("label={filter}"),
                ],
            )?
            .iter()
            .map(cli_container)
            .collect(),
        }
    }

    /// Compose volumes; of one project, or of all.
    pub(crate) fn volumes(&self, project: Option<&str>) -> Result<Vec<Resource>> {
        let filter = label_filter(project);
        match self {
            Engine::Api(socket) => {
                let v = api_json(
                    socket,
                    &format!("/volumes?filters={}", encode(&api_filters(&filter))),
                )?;
                Ok(v["Volumes"]
                    .as_array()
                    .map(|a| a.iter().map(|v| api_resource(v, "Name")).collect())
                    .unwrap_or_default())
            }
            Engine::Cli(docker) => Ok(cli_lines(
                docker,
                &["volume", "ls", "--filter", &format!("label={filter}")],
            )?
            .iter()
            .map(|v| cli_resource(v, "Name"))
            .collect()),
        }
    }

    /// Compose networks; of one project, or of all.
    pub(crate) fn networks(&self, project: Option<&str>) -> Result<Vec<Resource>> {
        let filter = label_filter(project);
        match self {
            Engine::Api(socket) => {
                let v = api_json(
                    socket,
                    &format!("/networks?filters={}", encode(&api_filters(&filter))),
                )?;
                Ok(v.as_array()
                    .map(|a| a.iter().map(|v| api_resource(v, "Id")).collect())
                    .unwrap_or_default())
            }
            Engine::Cli(docker) => Ok(cli_lines(
                docker,
                &[
                    "network",
                    "ls",
                    "--no-trunc",
                    "--filter",
                    &format!("label={filter}"),
                ],
            )?
            .iter()
            .map(|v| cli_resource(v, "ID"))
            .collect()),
        }
    }

    /// Every network of the engine, compose's or not, with its subnets.
    pub(crate) fn all_networks(&self) -> Result<Vec<crate::pool::subnets::EngineNetwork>> {
        let listed = match self {
            Engine::Api(socket) => api_json(socket, "/networks")?,
            Engine::Cli(docker) => {
                let out = docker
                    .command()
                    .args(["network", "ls", "-q", "--no-trunc"])
                    .output()
                    .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                    return Err(no_engine(
                        "the docker CLI's endpoint",
                        &anyhow::anyhow!("`docker network ls -q` failed: {err}"),
                    ));
                }
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let ids: Vec<&str> = text.split_whitespace().collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let out = docker
                    .command()
                    .args(["network", "inspect"])
                    .args(&ids)
                    .output()
                    .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
                // A network removed since the listing fails the call: those
                // that remain are still printed.
                serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()))
            }
        };
        Ok(listed
            .as_array()
            .map(|a| a.iter().map(engine_network).collect())
            .unwrap_or_default())
    }

    /// The addresses of a container on its networks (`docker inspect`).
    pub(crate) fn addresses(&self, id: &str) -> Result<Vec<Address>> {
        let networks =
            match self {
                Engine::Api(socket) => api_json(
                    socket,
                    &format!("/containers/{}/json", encode(id)),
                )?["NetworkSettings"]["Networks"]
                    .take(),
                Engine::Cli(docker) => {
                    let out = docker
                        .command()
                        .args(["inspect", "--type", "container"])
                        .args(["--format", "{{json .NetworkSettings.Networks}}", id])
                        .output()
                        .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
                    if !out.status.success() {
                        bail!(
                            "`docker inspect {id}` failed: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        );
                    }
                    serde_json::from_slice(&out.stdout)
                        .with_context(|| format!("`docker inspect {id}` printed invalid JSON"))?
                }
            };
        Ok(parse_addresses(&networks))
    }

    /// Everything labelled with `project`, sorted into `owner`'s and the
    /// rest: the one place that decides what may be removed.
    pub(crate) fn survey(&self, project: &str, owner: &Owner) -> Result<Survey> {
        Ok(Survey::sort(
            owner,
            self.containers(Some(project))?,
            self.volumes(Some(project))?,
            self.networks(Some(project))?,
        ))
    }

    /// Removes the containers, volumes and networks of `project` that are
    /// `owner`'s: what `compose down -v` leaves when the compose file changed
    /// or is gone. Another registry's, or a hand-started project's of the
    /// same name, are left alone and returned.
    pub(crate) fn remove_project(&self, project: &str, owner: &Owner) -> Result<Cleared> {
        let survey = self.survey(project, owner)?;
        let mut removed = Removed::default();
        for c in &survey.containers {
            self.remove("container", &c.id)?;
            removed.containers += 1;
        }
        for v in &survey.volumes {
            self.remove("volume", &v.name)?;
            removed.volumes += 1;
        }
        for n in &survey.networks {
            self.remove("network", &n.id)?;
            removed.networks += 1;
        }
        Ok(Cleared {
            removed,
            left_alone: survey.foreign,
        })
    }

    /// The name of every volume the engine has: what existed before an `up`.
    pub(crate) fn volume_names(&self) -> Result<BTreeSet<String>> {
        match self {
            Engine::Api(socket) => {
                let v = api_json(socket, "/volumes")?;
                Ok(v["Volumes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v["Name"].as_str()))
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect())
            }
            Engine::Cli(docker) => Ok(cli_lines(docker, &["volume", "ls"])?
                .iter()
                .filter_map(|v| v["Name"].as_str().map(str::to_owned))
                .collect()),
        }
    }

    /// Removes what of `project` is `owner`'s, as `remove_project` does, but
    /// its containers without their volumes, and of the volumes (labelled with
    /// the project, or mounted by one of its containers in `earlier`, the
    /// survey made before compose took them down: an anonymous volume is
    /// known only by the container that mounts it) only those not in `keep`:
    /// what a failed `up` made, and nothing that was there before it.
    /// Returns what was cleared and the names of the volumes kept.
    pub(crate) fn remove_project_keeping(
        &self,
        project: &str,
        owner: &Owner,
        earlier: &Survey,
        keep: &BTreeSet<String>,
    ) -> Result<(Cleared, Vec<String>)> {
        let survey = self.survey(project, owner)?;
        let mut removed = Removed::default();
        for c in &survey.containers {
            self.remove("container-only", &c.id)?;
            removed.containers += 1;
        }
        let volumes: BTreeSet<String> = survey
            .volumes
            .iter()
            .chain(&earlier.volumes)
            .map(|v| v.name.clone())
            .chain(
                survey
                    .containers
                    .iter()
                    .chain(&earlier.containers)
                    .flat_map(|c| c.volumes.iter().cloned()),
            )
            .collect();
        let mut kept = Vec::new();
        for name in volumes {
            if keep.contains(&name) {
                kept.push(name);
            } else {
                self.remove("volume", &name)?;
                removed.volumes += 1;
            }
        }
        for n in &survey.networks {
            self.remove("network", &n.id)?;
            removed.networks += 1;
        }
        let cleared = Cleared {
            removed,
            left_alone: survey.foreign,
        };
        Ok((cleared, kept))
    }

    /// `kind` is `container` (with its anonymous volumes), `container-only`
    /// (without them), `volume` or `network`.
    fn remove(&self, kind: &str, id: &str) -> Result<()> {
        let noun = kind.trim_end_matches("-only");
        match self {
            Engine::Api(socket) => {
                let path = match kind {
                    "container" => format!("/containers/{id}?force=1&v=1"),
                    "container-only" => format!("/containers/{id}?force=1"),
                    "volume" => format!("/volumes/{id}?force=1"),
                    _ => format!("/networks/{id}"),
                };
                let r = api(socket, "DELETE", &path)?;
                // 404: already gone, which is what we wanted.
                if !matches!(r.status, 200 | 204 | 404) {
                    bail!(
                        "failed to remove {noun} `{id}`: {}",
                        String::from_utf8_lossy(&r.body).trim()
                    );
                }
                Ok(())
            }
            Engine::Cli(docker) => {
                let mut cmd = docker.command();
                match kind {
                    "container" => cmd.args(["rm", "-f", "-v", id]),
                    "container-only" => cmd.args(["rm", "-f", id]),
                    "volume" => cmd.args(["volume", "rm", "-f", id]),
                    _ => cmd.args(["network", "rm", id]),
                };
                let out = cmd
                    .output()
                    .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
                let err = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() && !err.contains("No such") && !err.contains("not found") {
                    bail!("failed to remove {noun} `{id}`: {}", err.trim());
                }
                Ok(())
            }
        }
    }
}

/// A request to the engine API on `socket`; not reaching it at all is "no
/// engine".
fn api(endpoint: &Endpoint, method: &str, path: &str) -> Result<http::Response> {
    endpoint
        .request(method, path)
        .map_err(|e| no_engine(&endpoint.shown(), &e))
}

/// A GET of the engine API that answers JSON.
fn api_json(socket: &Endpoint, path: &str) -> Result<Value> {
    let r = api(socket, "GET", path)?;
    if r.status != 200 {
        bail!(
            "engine API `{path}` answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        );
    }
    serde_json::from_slice(&r.body)
        .with_context(|| format!("engine API `{path}` answered with invalid JSON"))
}

/// Runs `docker [globals] <args> --format {{json .}}` and parses each line.
fn cli_lines(docker: &Docker, args: &[&str]) -> Result<Vec<Value>> {
    let out = docker
        .command()
        .args(args)
        .args(["--format", "{{json .}}"])
        .output()
        .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(no_engine(
            "the docker CLI's endpoint",
            &anyhow::anyhow!("`docker {}` failed: {err}", args.join(" ")),
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .with_context(|| format!("docker printed a line that is not JSON: `{l}`"))
        })
        .collect()
}

fn no_engine(endpoint: &str, cause: &anyhow::Error) -> anyhow::Error {
    fail(
        format!("cannot reach the Docker engine at {endpoint}: {cause}"),
        "start Docker (`systemctl start docker`, or Docker Desktop), or point DOCKER_HOST or --context at a running engine",
    )
}

/// `docker context use x` writes `currentContext` into the CLI's config.json.
fn current_context(docker: &Docker) -> Option<String> {
    let dir = docker.config_dir()?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("currentContext")?.as_str().map(str::to_owned)
}

fn label_filter(project: Option<&str>) -> String {
    match project {
        Some(p) => format!("{PROJECT_LABEL}={p}"),
        None => PROJECT_LABEL.to_owned(),
    }
}

fn api_filters(label: &str) -> String {
    serde_json::json!({ "label": [label] }).to_string()
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    labels: std::collections::HashMap<String, String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    ports: Vec<ApiPort>,
    #[serde(default)]
    mounts: Vec<ApiMount>,
    #[serde(default)]
    network_settings: Option<ApiNetworks>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiMount {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiNetworks {
    #[serde(default)]
    networks: std::collections::HashMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiPort {
    #[serde(rename = "IP", default)]
    ip: String,
    #[serde(default)]
    private_port: u16,
    #[serde(default)]
    public_port: u16,
}

impl ApiContainer {
    fn into_container(self) -> Container {
        let label = |k: &str| self.labels.get(k).cloned().unwrap_or_default();
        let mut ports: Vec<Published> = self
            .ports
            .iter()
            .filter(|p| p.public_port != 0)
            .map(|p| Published {
                ip: p.ip.clone(),
                public: p.public_port,
                private: p.private_port,
            })
            .collect();
        ports.dedup();
        let mut networks: Vec<String> = self
            .network_settings
            .map(|n| n.networks.into_keys().collect())
            .unwrap_or_default();
        networks.sort();
        Container {
            project: label(PROJECT_LABEL),
            service: label(SERVICE_LABEL),
            marks: marks(
                self.labels.get(REGISTRY_LABEL),
                self.labels.get(CONFIG_FILES_LABEL),
            ),
            volumes: self
                .mounts
                .iter()
                .filter(|m| m.kind == "volume" && !m.name.is_empty())
                .map(|m| m.name.clone())
                .collect(),
            networks,
            name: self
                .names
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            id: self.id,
            state: self.state,
            status: self.status,
            ports,
        }
    }
}

fn marks(registry: Option<&String>, config_files: Option<&String>) -> Marks {
    Marks {
        registry: registry.filter(|r| !r.is_empty()).cloned(),
        config_files: config_files
            .map(|f| {
                f.split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `NetworkSettings.Networks` of an inspected container: the IPv4 address
/// and gateway on each network that gave it one.
fn parse_addresses(networks: &Value) -> Vec<Address> {
    let ip = |v: &Value| v.as_str().and_then(|s| s.parse().ok());
    networks
        .as_object()
        .map(|o| {
            o.values()
                .filter_map(|n| {
                    Some(Address {
                        ip: ip(&n["IPAddress"])?,
                        gateway: ip(&n["Gateway"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A network as the engine API and `docker network inspect` show it.
fn engine_network(v: &Value) -> crate::pool::subnets::EngineNetwork {
    let subnets = v["IPAM"]["Config"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["Subnet"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    crate::pool::subnets::EngineNetwork {
        id: v["Id"].as_str().unwrap_or_default().to_owned(),
        name: v["Name"].as_str().unwrap_or_default().to_owned(),
        subnets,
        registry: v["Labels"][REGISTRY_LABEL]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
    }
}

fn api_resource(v: &Value, id_key: &str) -> Resource {
    let label = |k: &str| v["Labels"][k].as_str().map(str::to_owned);
    Resource {
        id: v[id_key].as_str().unwrap_or_default().to_owned(),
        name: v["Name"].as_str().unwrap_or_default().to_owned(),
        project: label(PROJECT_LABEL).unwrap_or_default(),
        marks: marks(label(REGISTRY_LABEL).as_ref(), None),
    }
}

/// The CLI prints labels as `k=v,k2=v2`; a value may hold commas itself (the
/// config files of compose), so a piece without `=` continues the value before.
fn cli_labels(labels: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in labels.split(',') {
        match (piece.split_once('='), out.last_mut()) {
            (Some((k, v)), _) => out.push((k.to_owned(), v.to_owned())),
            (None, Some((_, v))) => {
                v.push(',');
                v.push_str(piece);
            }
            (None, None) => {}
        }
    }
    out
}

fn cli_label(labels: &str, key: &str) -> String {
    cli_labels(labels)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn cli_marks(labels: &str, with_files: bool) -> Marks {
    let l = cli_labels(labels);
    let get = |key: &str| l.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    marks(
        get(REGISTRY_LABEL).as_ref(),
        get(CONFIG_FILES_LABEL).filter(|_| with_files).as_ref(),
    )
}

fn cli_resource(v: &Value, id_key: &str) -> Resource {
    let labels = v["Labels"].as_str().unwrap_or_default();
    Resource {
        id: v[id_key].as_str().unwrap_or_default().to_owned(),
        name: v["Name"].as_str().unwrap_or_default().to_owned(),
        project: cli_label(labels, PROJECT_LABEL),
        marks: cli_marks(labels, false),
    }
}

fn cli_container(v: &Value) -> Result<Container> {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let list = |k: &str| -> Vec<String> {
        s(k).split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let labels = s("Labels");
    Ok(Container {
        id: s("ID"),
        name: s("Names").split(',').next().unwrap_or_default().to_owned(),
        project: cli_label(&labels, PROJECT_LABEL),
        service: cli_label(&labels, SERVICE_LABEL),
        state: s("State"),
        status: s("Status"),
        ports: parse_cli_ports(&s("Ports")),
        marks: cli_marks(&labels, true),
        // `docker ps` names a container's volumes (and the sources of its
        // bind mounts, which match no volume) under `Mounts`.
        volumes: list("Mounts"),
        networks: list("Networks"),
    })
}

/// `127.0.0.1:8001->8000/tcp, 0.0.0.0:5010-5011->5010-5011/tcp, 9000/tcp`.
fn parse_cli_ports(text: &str) -> Vec<Published> {
    let mut out = Vec::new();
    for item in text.split(", ").filter(|s| !s.is_empty()) {
        let Some((host, inner)) = item.split_once("->") else {
            continue;
        };
        let inner = inner.split('/').next().unwrap_or_default();
        let Some((ip, public)) = host.rsplit_once(':') else {
            continue;
        };
        let range = |r: &str| -> Option<(u16, u16)> {
            match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|p| (p, p)),
            }
        };
        let (Some((p0, p1)), Some((i0, _))) = (range(public), range(inner)) else {
            continue;
        };
        for (k, p) in (p0..=p1).enumerate() {
            let published = Published {
                ip: ip.trim_matches(['[', ']']).to_owned(),
                public: p,
                private: i0 + k as u16,
            };
            if !out.contains(&published) {
                out.push(published);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(globals: &[&str]) -> Docker {
        Docker {
            bin: "docker".into(),
            globals: globals.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn globals_are_read_in_both_forms() {
        let d = docker(&["--context", "a", "-H=unix:///x.sock", "--debug"]);
        assert_eq!(d.global(&["-c", "--context"]).as_deref(), Some("a"));
        assert_eq!(
            d.global(&["-H", "--host"]).as_deref(),
            Some("unix:///x.sock")
        );
        assert!(d.has_global(&["--debug"]));
        assert!(!d.has_global(&["--tls"]));
    }

    #[test]
    fn sockets_and_plain_tcp_are_asked_directly_and_others_through_the_cli() {
        assert!(
            matches!(Engine::new(&docker(&["-H", "unix:///tmp/d.sock"])), Engine::Api(Endpoint::Unix(path)) if path == Path::new("/tmp/d.sock"))
        );
        assert!(
            matches!(Engine::new(&docker(&["-H", "tcp://10.0.0.1:2375"])), Engine::Api(Endpoint::Tcp(a)) if a == "10.0.0.1:2375")
        );
        assert!(matches!(
            Engine::new(&docker(&["-H", "ssh://me@far"])),
            Engine::Cli(_)
        ));
        assert!(matches!(
            Engine::new(&docker(&["-H", "unix:///s", "--tlsverify"])),
            Engine::Cli(_)
        ));
        // A context that docker's store does not have is docker's to handle.
        assert!(matches!(
            Engine::new(&docker(&[
                "--config",
                "/nonexistent",
                "--context",
                "remote"
            ])),
            Engine::Cli(_)
        ));
    }

    #[test]
    fn health_and_exit_codes_come_from_the_status() {
        let c = |status: &str| Container {
            id: "x".into(),
            name: "n".into(),
            project: "p".into(),
            service: "s".into(),
            state: "running".into(),
            status: status.into(),
            ports: vec![],
            marks: Marks::default(),
            volumes: vec![],
            networks: vec![],
        };
        assert_eq!(c("Up 3 seconds (healthy)").health(), Some("healthy"));
        assert_eq!(
            c("Up 3 seconds (health: starting)").health(),
            Some("starting")
        );
        assert_eq!(c("Up 1 minute (unhealthy)").health(), Some("unhealthy"));
        assert_eq!(c("Up 1 minute").health(), None);
        assert_eq!(c("Exited (137) 2 seconds ago").exit_code(), Some(137));
        assert_eq!(c("Up 1 minute").exit_code(), None);
    }

    #[test]
    fn cli_ports_and_labels_parse() {
        let p = parse_cli_ports(
            "127.0.0.1:8001->8000/tcp, 0.0.0.0:5010-5011->5010-5011/tcp, 9000/tcp, [::]:8001->8000/tcp",
        );
        let got: Vec<(String, u16, u16)> =
            p.into_iter().map(|p| (p.ip, p.public, p.private)).collect();
        assert_eq!(
            got,
            [
                ("127.0.0.1".into(), 8001, 8000),
                ("0.0.0.0".into(), 5010, 5010),
                ("0.0.0.0".into(), 5011, 5011),
                ("::".into(), 8001, 8000),
            ]
        );
        let labels = "com.docker.compose.project=ktrdr-slot-1,com.docker.compose.service=db,x=y";
        assert_eq!(cli_label(labels, PROJECT_LABEL), "ktrdr-slot-1");
        assert_eq!(cli_label(labels, SERVICE_LABEL), "db");
        assert_eq!(cli_label(labels, "nope"), "");
    }

    #[test]
    fn cli_labels_keep_commas_inside_values() {
        let labels = "com.docker.compose.project=demo-slot-1,com.docker.compose.project.config_files=/w/a.yml,/s/slot-1/docker-compose.yml,org.docker-sandbox.registry=aaaa";
        let m = cli_marks(labels, true);
        assert_eq!(m.registry.as_deref(), Some("aaaa"));
        assert_eq!(
            m.config_files,
            [
                PathBuf::from("/w/a.yml"),
                PathBuf::from("/s/slot-1/docker-compose.yml")
            ]
        );
        assert_eq!(cli_label(labels, PROJECT_LABEL), "demo-slot-1");
        assert_eq!(cli_marks(labels, false).config_files, Vec::<PathBuf>::new());
    }

    #[test]
    fn addresses_come_from_each_network() {
        let v = serde_json::json!({
            "a_default": {"IPAddress": "172.18.0.2", "Gateway": "172.18.0.1"},
            "none": {"IPAddress": "", "Gateway": ""},
            "b": {"IPAddress": "10.1.0.5", "Gateway": ""},
        });
        let got = parse_addresses(&v);
        assert_eq!(
            got,
            [
                Address {
                    ip: [172, 18, 0, 2].into(),
                    gateway: Some([172, 18, 0, 1].into())
                },
                Address {
                    ip: [10, 1, 0, 5].into(),
                    gateway: None
                },
            ]
        );
        assert!(parse_addresses(&Value::Null).is_empty());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }
}
