//! Which engine a slot runs on. A pool names engines by docker context
//! (`[engines.NAME] context = "..."`); the local engine (docker's own
//! context or `DOCKER_HOST`, as every call uses without engines) is always
//! there, named `local`. A new claim goes to the engine asked for, else to
//! the first with room in this order: `local`, then the others by name.
//! Each engine is reached with its own `docker --context NAME`, and a port
//! of a slot on another engine is checked by asking that engine: its
//! containers' published ports and the listeners of its host (whose routes
//! the same look reads, for the overlap check of the pool's subnets).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};

use super::{Container, Docker};
use crate::error::fail;
use crate::pool::subnets::{Route, parse_routes};

/// The name of docker's own engine.
pub(crate) const LOCAL: &str = "local";

/// One engine of the pool, as `[engines.NAME]` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineSpec {
    pub(crate) name: String,
    /// The docker context; `None` for the local engine.
    pub(crate) context: Option<String>,
    /// The host its published ports are reached on, when the context's host
    /// is not the one (or the context is a unix socket).
    pub(crate) address: Option<String>,
    /// Worktree path prefix -> the path the engine sees it under.
    pub(crate) path_map: Vec<(PathBuf, PathBuf)>,
    pub(crate) max_slots: Option<u32>,
}

impl EngineSpec {
    pub(crate) fn local() -> EngineSpec {
        EngineSpec {
            name: LOCAL.to_owned(),
            context: None,
            address: None,
            path_map: Vec::new(),
            max_slots: None,
        }
    }

    pub(crate) fn is_local(&self) -> bool {
        self.context.is_none()
    }

    /// `docker [globals]` that talks to this engine: the local engine keeps
    /// docker's globals; another one gets `--context NAME` in place of any
    /// `-H` or `--context` (and TLS flags, which belong to a host).
    pub(crate) fn docker(&self, base: &Docker) -> Docker {
        let Some(context) = &self.context else {
            return base.clone();
        };
        let mut globals = Vec::new();
        let mut it = base.globals.iter();
        while let Some(arg) = it.next() {
            let text = arg.to_string_lossy();
            let flag = text.split_once('=').map_or(text.as_ref(), |(f, _)| f);
            let dropped = [
                "-H",
                "--host",
                "-c",
                "--context",
                "--tlscacert",
                "--tlscert",
                "--tlskey",
            ];
            if dropped.contains(&flag) {
                if !text.contains('=') {
                    it.next();
                }
                continue;
            }
            if flag == "--tls" || flag == "--tlsverify" {
                continue;
            }
            globals.push(arg.clone());
        }
        globals.push("--context".into());
        globals.push(context.into());
        Docker {
            bin: base.bin.clone(),
            globals,
        }
    }

    /// The host a slot's published ports answer on: `address`, else the
    /// host of the context's tcp or ssh endpoint, else this machine.
    pub(crate) fn host(&self, base: &Docker) -> String {
        if let Some(a) = &self.address {
            return a.clone();
        }
        if self.context.is_none() {
            return "127.0.0.1".to_owned();
        }
        context_host(&self.docker(base)).unwrap_or_else(|| "127.0.0.1".to_owned())
    }

    /// The address the slot's ports are published on: the loopback on this
    /// machine, every interface on another host (else nothing reaches them).
    pub(crate) fn bind_ip(&self) -> &'static str {
        if self.is_local() {
            "127.0.0.1"
        } else {
            "0.0.0.0"
        }
    }

    /// Whether the engine sees `path`: the local one does, another one
    /// through `path_map`.
    pub(crate) fn sees(&self, path: &Path) -> bool {
        self.is_local() || self.mapped(path).is_some()
    }

    /// Where another engine sees `path`, by the longest `path_map` prefix
    /// that holds it; `None` on the local engine or without one.
    pub(crate) fn mapped(&self, path: &Path) -> Option<PathBuf> {
        if self.is_local() {
            return None;
        }
        self.path_map
            .iter()
            .filter(|(from, _)| path.starts_with(from))
            .max_by_key(|(from, _)| from.components().count())
            .map(|(from, to)| to.join(path.strip_prefix(from).unwrap_or(path)))
    }
}

/// `[engines.NAME]` of a project file: `context`, `address`, `path_map`,
/// `max_slots`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngine {
    context: Option<String>,
    address: Option<String>,
    path_map: Option<BTreeMap<String, String>>,
    max_slots: Option<i64>,
}

/// The pool's engines, `local` first, then the others by name.
pub(crate) fn from_raw(
    raw: Option<BTreeMap<String, RawEngine>>,
    bad: &impl Fn(String) -> anyhow::Error,
) -> Result<Vec<EngineSpec>> {
    let mut engines = vec![EngineSpec::local()];
    for (name, raw) in raw.unwrap_or_default() {
        if !valid_name(&name) {
            return Err(bad(format!(
                "[engines.{name}]: an engine's name is lowercase letters, digits and `-`"
            )));
        }
        let local = name == LOCAL;
        let context = match (raw.context, local) {
            (Some(_), true) => {
                return Err(bad(
                    "[engines.local] is docker's own engine (its context or DOCKER_HOST): it takes no `context`; name another engine for a context".into(),
                ));
            }
            (None, false) => {
                return Err(bad(format!(
                    "[engines.{name}] needs `context`, the docker context that reaches it (`docker context ls` lists them)"
                )));
            }
            (Some(c), false) if c.trim().is_empty() || c == "default" => {
                return Err(bad(format!(
                    "[engines.{name}] context `{c}` is not another engine's context: the local engine is `local`"
                )));
            }
            (c, _) => c,
        };
        if let Some(a) = &raw.address
            && (a.is_empty()
                || a.contains("://")
                || a.contains('/')
                || a.contains(char::is_whitespace))
        {
            return Err(bad(format!(
                "[engines.{name}] address `{a}` is not a host name or IP address (no scheme, no port, no path)"
            )));
        }
        let max_slots = match raw.max_slots {
            None => None,
            Some(n) if (0..=u32::MAX as i64).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(bad(format!(
                    "[engines.{name}] max_slots = {n}: it is a count of slots, 0 or more"
                )));
            }
        };
        let mut path_map = Vec::new();
        for (from, to) in raw.path_map.unwrap_or_default() {
            if !from.starts_with('/') || !to.starts_with('/') {
                return Err(bad(format!(
                    "[engines.{name}] path_map `{from}` = `{to}`: both paths must be absolute"
                )));
            }
            path_map.push((PathBuf::from(from), PathBuf::from(to)));
        }
        let spec = EngineSpec {
            name,
            context,
            address: raw.address,
            path_map,
            max_slots,
        };
        if local {
            engines[0] = spec;
        } else {
            engines.push(spec);
        }
    }
    Ok(engines)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The engine of a slot record (`None` is the local one); an engine the
/// pool no longer names is an error that names it.
pub(crate) fn find<'e>(engines: &'e [EngineSpec], name: Option<&str>) -> Result<&'e EngineSpec> {
    let name = name.unwrap_or(LOCAL);
    engines.iter().find(|e| e.name == name).ok_or_else(|| {
        fail(
            format!(
                "engine `{name}` is not one of the pool's engines: {}",
                names(engines)
            ),
            "add it back as [engines.NAME] in the project file, or release the slot with `--force`",
        )
    })
}

fn names(engines: &[EngineSpec]) -> String {
    engines
        .iter()
        .map(|e| format!("`{}`", e.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The engines a new claim may go to, in the order it tries them: the one
/// asked for alone, else every engine with room (claims on it below its
/// `max_slots`), `local` first.
pub(crate) fn candidates<'e>(
    engines: &'e [EngineSpec],
    requested: Option<&str>,
    claims: &BTreeMap<String, u32>,
) -> Result<Vec<&'e EngineSpec>> {
    let room = |e: &EngineSpec| {
        e.max_slots
            .is_none_or(|m| claims.get(&e.name).copied().unwrap_or(0) < m)
    };
    if let Some(name) = requested {
        let Some(e) = engines.iter().find(|e| e.name == name) else {
            return Err(fail(
                format!(
                    "--engine `{name}` is not one of the pool's engines: {}",
                    names(engines)
                ),
                "name one of them, or add `[engines.NAME] context = \"...\"` to the project file",
            ));
        };
        if !room(e) {
            return Err(crate::error::UserError::new(
                crate::claim::NO_FREE_SLOT,
                format!(
                    "engine `{name}` is full: {} of its max_slots = {} are claimed",
                    claims.get(name).copied().unwrap_or(0),
                    e.max_slots.unwrap_or(0)
                ),
            )
            .hint("release a slot there, or leave out --engine to use another engine")
            .into());
        }
        return Ok(vec![e]);
    }
    let open: Vec<&EngineSpec> = engines.iter().filter(|e| room(e)).collect();
    if open.is_empty() {
        return Err(crate::error::UserError::new(
            crate::claim::NO_FREE_SLOT,
            format!("every engine of the pool is full: {}", names(engines)),
        )
        .hint("release a slot, or raise an engine's max_slots")
        .into());
    }
    Ok(open)
}

/// The host of a context's tcp or ssh endpoint (`tcp://h:2375`,
/// `ssh://user@h:22`), as docker's context store says (read directly, else
/// asked of the docker CLI).
fn context_host(docker: &Docker) -> Option<String> {
    let context = docker.global(&["-c", "--context"])?;
    if let Some(host) = docker
        .config_dir()
        .and_then(|dir| super::api::context_host(&dir, &context))
    {
        return endpoint_host(&host);
    }
    let out = docker
        .command()
        .args([
            "context",
            "inspect",
            &context,
            "--format",
            "{{.Endpoints.docker.Host}}",
        ])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(())?;
    endpoint_host(String::from_utf8_lossy(&out.stdout).trim())
}

/// `tcp://10.0.0.2:2375` -> `10.0.0.2`; `ssh://root@h` -> `h`; a unix socket
/// is this machine.
pub(crate) fn endpoint_host(endpoint: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    if scheme == "unix" || scheme == "npipe" {
        return Some("127.0.0.1".to_owned());
    }
    let rest = rest.split('/').next()?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => rest.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// What a throwaway container in the host's network namespace sees of an
/// engine's host: the ports taken there and its routing table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostProbe {
    /// Those something listens on or is bound to, and those the engine's
    /// containers publish.
    pub(crate) ports: BTreeSet<u16>,
    /// `/proc/net/route` of that host, for the overlap check of the pool's
    /// subnets.
    pub(crate) routes: Vec<Route>,
}

/// What the probe reads in the host's network namespace: the routes, then
/// the socket tables.
const PROBED: [&str; 5] = [
    "/proc/net/route",
    "/proc/net/tcp",
    "/proc/net/tcp6",
    "/proc/net/udp",
    "/proc/net/udp6",
];

/// The label of the probe's throwaway container.
const PROBE_LABEL: &str = "org.docker-sandbox.probe";

/// The engine's host as one throwaway container in its network namespace
/// sees it (its TCP and UDP listeners and its routes), and the ports its
/// containers publish. The image is one the engine has (nothing is pulled).
/// An engine whose API is reached directly runs it through the API, else
/// `docker run` does.
pub(crate) fn probe_host(docker: &Docker, containers: &[Container]) -> Result<HostProbe> {
    let mut ports: BTreeSet<u16> = containers
        .iter()
        .flat_map(|c| c.ports.iter().map(|p| p.public))
        .collect();
    let text = match super::Engine::new(docker) {
        super::Engine::Api(endpoint) => probe_over_api(&endpoint)?,
        super::Engine::Cli(_) => probe_with_cli(docker)?,
    };
    let (routes, sockets) = split_probe(&text);
    ports.extend(listening(sockets));
    Ok(HostProbe {
        ports,
        routes: parse_routes(routes),
    })
}

/// The refusal of a probe that did not run.
fn probe_failed(image: &str, why: &str) -> anyhow::Error {
    fail(
        format!(
            "cannot see the listeners and routes of the engine's host: `docker run --network host {image} cat /proc/net/route /proc/net/tcp ...` failed: {why}"
        ),
        "the engine must be able to run a container with `--network host`",
    )
}

/// The probe's output, by `docker run --rm`.
fn probe_with_cli(docker: &Docker) -> Result<String> {
    let out = docker
        .command()
        .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let image = probe_image(text.lines().map(str::trim))?;
    let out = docker
        .command()
        .args(["run", "--rm", "--network", "host", "--entrypoint", "cat"])
        .args(["--label", &format!("{PROBE_LABEL}=1"), &image])
        .args(PROBED)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{}`", docker.bin.display()))?;
    if !out.status.success() {
        return Err(probe_failed(
            &image,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The probe's output, through the engine API: the container is created,
/// started, waited for, its output read, and removed (also when a step
/// fails).
fn probe_over_api(endpoint: &super::Endpoint) -> Result<String> {
    let call = |method: &str, path: &str, body: Option<&serde_json::Value>, ok: &[u16]| {
        let r = endpoint
            .send(method, path, body)
            .map_err(|e| super::no_engine(&endpoint.shown(), &e))?;
        if !ok.contains(&r.status) {
            anyhow::bail!(
                "{method} {path} answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body).trim()
            );
        }
        Ok(r.body)
    };
    let listed: serde_json::Value =
        serde_json::from_slice(&call("GET", "/images/json", None, &[200])?)
            .context("unexpected /images/json answer")?;
    let tags = listed
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["RepoTags"].as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_str);
    let image = probe_image(tags)?;
    let spec = serde_json::json!({
        "Image": image,
        "Entrypoint": ["cat"],
        "Cmd": PROBED,
        "Labels": { PROBE_LABEL: "1" },
        "HostConfig": { "NetworkMode": "host" },
    });
    let made: serde_json::Value =
        serde_json::from_slice(&call("POST", "/containers/create", Some(&spec), &[201])?)
            .context("unexpected /containers/create answer")?;
    let id = made["Id"]
        .as_str()
        .context("/containers/create gave no Id")?
        .to_owned();
    let remove = || {
        let _ = endpoint.request("DELETE", &format!("/containers/{id}?force=1"));
    };
    let ran = (|| -> Result<String> {
        call(
            "POST",
            &format!("/containers/{id}/start"),
            None,
            &[204, 304],
        )?;
        let waited: serde_json::Value = serde_json::from_slice(&call(
            "POST",
            &format!("/containers/{id}/wait"),
            None,
            &[200],
        )?)
        .context("unexpected /wait answer")?;
        let logs = call(
            "GET",
            &format!("/containers/{id}/logs?stdout=1&stderr=1"),
            None,
            &[200],
        )?;
        let (stdout, stderr) = demux(&logs);
        match waited["StatusCode"].as_i64() {
            Some(0) => Ok(stdout),
            code => Err(probe_failed(
                &image,
                &format!(
                    "exit {}: {}",
                    code.map_or("?".to_owned(), |c| c.to_string()),
                    stderr.trim()
                ),
            )),
        }
    })();
    remove();
    ran.map_err(|e| match crate::error::user(&e) {
        Some(_) => e,
        None => probe_failed(&image, &format!("{e:#}")),
    })
}

/// A container's logs as the engine API sends them without a TTY: frames
/// of an 8-byte header (stream 1 or 2, then the length, big-endian) and
/// the bytes; stdout and stderr apart.
fn demux(mut raw: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while raw.len() >= 8 {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let end = (8 + len).min(raw.len());
        match raw[0] {
            2 => err.extend_from_slice(&raw[8..end]),
            _ => out.extend_from_slice(&raw[8..end]),
        }
        raw = &raw[end..];
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The probe's output cut in two: `/proc/net/route`, then the socket tables,
/// the first of which starts with its `sl local_address ...` header.
fn split_probe(text: &str) -> (&str, &str) {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("sl ") {
            return text.split_at(at);
        }
        at += line.len();
    }
    (text, "")
}

/// An image of the engine's own with a `cat`, among its `name:tag`s: a
/// small one by name if it has one, else the first.
fn probe_image<'a>(tags: impl Iterator<Item = &'a str>) -> Result<String> {
    let images: Vec<&str> = tags
        .filter(|t| !t.is_empty() && !t.contains("<none>"))
        .collect();
    ["busybox", "alpine", "debian", "ubuntu"]
        .iter()
        .find_map(|small| images.iter().find(|i| i.contains(small)))
        .or(images.first())
        .map(|i| (*i).to_owned())
        .ok_or_else(|| {
            fail(
                "the engine has no image to probe its host's ports with",
                "load or pull any image there (`docker --context NAME pull busybox`)",
            )
        })
}

/// The local ports of `/proc/net/{tcp,udp}{,6}` lines that listen (TCP
/// state 0A) or are bound (UDP, state 07).
fn listening(text: &str) -> BTreeSet<u16> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            if *state != "0A" && *state != "07" {
                return None;
            }
            let port = local.rsplit_once(':')?.1;
            u16::from_str_radix(port, 16).ok().filter(|p| *p != 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn raw(text: &str) -> Result<Vec<EngineSpec>> {
        #[derive(serde::Deserialize)]
        struct File {
            engines: Option<BTreeMap<String, RawEngine>>,
        }
        let f: File = toml::from_str(text)?;
        from_raw(f.engines, &|r| anyhow::anyhow!(r))
    }

    #[test]
    fn engines_read_with_local_first() {
        let e = raw(
            "[engines.b]\ncontext = \"b-ssh\"\naddress = \"10.0.0.2\"\nmax_slots = 2\n\
             path_map = { \"/src\" = \"/mnt/src\" }\n[engines.a]\ncontext = \"a\"\n",
        )
        .unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["local", "a", "b"]);
        assert_eq!(e[2].context.as_deref(), Some("b-ssh"));
        assert_eq!(e[2].max_slots, Some(2));
        assert!(e[2].sees(Path::new("/src/app")));
        assert_eq!(
            e[2].mapped(Path::new("/src/app")),
            Some(PathBuf::from("/mnt/src/app"))
        );
        assert_eq!(e[2].mapped(Path::new("/srcx")), None);
        assert_eq!(e[0].mapped(Path::new("/src/app")), None);
        assert!(!e[1].sees(Path::new("/src/app")));
        assert!(e[0].sees(Path::new("/anywhere")));
        let local = raw("[engines.local]\nmax_slots = 1\naddress = \"h\"").unwrap();
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].max_slots, Some(1));
        assert!(local[0].is_local());
    }

    #[test]
    fn bad_engines_are_refused_clearly() {
        let err = |t: &str| raw(t).unwrap_err().to_string();
        assert!(err("[engines.x]\naddress = \"h\"").contains("[engines.x] needs `context`"));
        assert!(err("[engines.local]\ncontext = \"c\"").contains("takes no `context`"));
        assert!(err("[engines.x]\ncontext = \"default\"").contains("is not another engine's"));
        assert!(err("[engines.X_Y]\ncontext = \"c\"").contains("lowercase letters"));
        assert!(err("[engines.x]\ncontext = \"c\"\naddress = \"tcp://h:1\"").contains("no scheme"));
        assert!(err("[engines.x]\ncontext = \"c\"\nmax_slots = -1").contains("0 or more"));
        assert!(
            err("[engines.x]\ncontext = \"c\"\npath_map = { \"src\" = \"/m\" }")
                .contains("must be absolute")
        );
        assert!(err("[engines.x]\ncontext = \"c\"\nhost = \"h\"").contains("unknown field"));
    }

    #[test]
    fn a_claim_goes_to_the_first_engine_with_room() {
        let e = raw("[engines.local]\nmax_slots = 1\n[engines.a]\ncontext = \"a\"\nmax_slots = 1\n[engines.b]\ncontext = \"b\"")
            .unwrap();
        let claims = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
        };
        let order = |c: &BTreeMap<String, u32>, r: Option<&str>| -> Vec<String> {
            candidates(&e, r, c)
                .unwrap()
                .iter()
                .map(|e| e.name.clone())
                .collect()
        };
        assert_eq!(order(&claims(&[]), None), ["local", "a", "b"]);
        assert_eq!(order(&claims(&[("local", 1)]), None), ["a", "b"]);
        assert_eq!(order(&claims(&[("local", 1), ("a", 1)]), None), ["b"]);
        assert_eq!(order(&claims(&[]), Some("b")), ["b"]);
        let full = candidates(&e, Some("a"), &claims(&[("a", 1)])).unwrap_err();
        assert!(full.to_string().contains("engine `a` is full"), "{full}");
        let unknown = candidates(&e, Some("z"), &claims(&[])).unwrap_err();
        assert!(
            unknown.to_string().contains("`local`, `a`, `b`"),
            "{unknown}"
        );
        let all = raw("[engines.local]\nmax_slots = 0").unwrap();
        assert!(candidates(&all, None, &claims(&[])).is_err());
    }

    #[test]
    fn an_engine_gets_its_own_context_in_place_of_the_host() {
        let base = Docker {
            bin: "docker".into(),
            globals: [
                "-H",
                "tcp://h:1",
                "--config",
                "/c",
                "--tlsverify",
                "-l=warn",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
        };
        let mut spec = EngineSpec::local();
        assert_eq!(spec.docker(&base).globals, base.globals);
        spec.name = "a".into();
        spec.context = Some("a-ssh".into());
        let globals: Vec<String> = spec
            .docker(&base)
            .globals
            .iter()
            .map(|g| g.to_string_lossy().into_owned())
            .collect();
        assert_eq!(globals, ["--config", "/c", "-l=warn", "--context", "a-ssh"]);
    }

    #[test]
    fn endpoints_give_their_host() {
        assert_eq!(
            endpoint_host("tcp://10.0.0.2:2375").as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(
            endpoint_host("ssh://root@h.example").as_deref(),
            Some("h.example")
        );
        assert_eq!(
            endpoint_host("ssh://u@[fe80::1]:22").as_deref(),
            Some("fe80::1")
        );
        assert_eq!(
            endpoint_host("unix:///var/run/docker.sock").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(endpoint_host("nonsense"), None);
    }

    #[test]
    fn the_probe_gives_the_hosts_routes_and_listeners() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101E70A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
lo\t00008B0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000\n\
  sl  local_address rem_address   st\n\
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A\n";
        let (routes, sockets) = split_probe(text);
        let shown: Vec<String> = parse_routes(routes)
            .iter()
            .map(|r| format!("{} {}", r.iface, r.net))
            .collect();
        assert_eq!(shown, ["eth0 0.0.0.0/0", "lo 10.139.0.0/16"]);
        assert_eq!(listening(sockets), BTreeSet::from([8080, 8081]));
        assert!(listening(routes).is_empty(), "no route reads as a listener");
        assert_eq!(split_probe("no tables\n"), ("no tables\n", ""));
    }

    #[test]
    fn listeners_are_read_from_proc_net() {
        let text = "  sl  local_address rem_address   st\n\
           0: 00000000:1F90 00000000:0000 0A 00000000:00000000\n\
           1: 0100007F:0035 0100007F:9C40 01 00000000:00000000\n\
           2: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A\n\
           3: 00000000:14E9 00000000:0000 07 00000000:00000000\n";
        assert_eq!(listening(text), BTreeSet::from([8080, 8081, 5353]));
    }

    /// An engine API on a unix socket that answers the probe's requests in
    /// turn, as an engine does, and records them (method, path, body).
    fn probe_engine(
        dir: &Path,
        exit: i64,
    ) -> (super::super::Endpoint, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let path = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let (seen, asked) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let frame = |stream: u8, text: &str| {
                let mut f = vec![stream, 0, 0, 0];
                f.extend_from_slice(&(text.len() as u32).to_be_bytes());
                f.extend_from_slice(text.as_bytes());
                f
            };
            for s in listener.incoming() {
                let mut s = s.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                let mut body = vec![0u8; length];
                s.read_exact(&mut body).unwrap();
                let line = head.lines().next().unwrap().to_owned();
                let request = line.rsplit_once(' ').unwrap().0.to_owned();
                let (status, answer): (&str, Vec<u8>) = match request.as_str() {
                    "GET /images/json" => (
                        "200 OK",
                        br#"[{"RepoTags":["app:1"]},{"RepoTags":["<none>:<none>"]},{"RepoTags":["busybox:1"]}]"#.to_vec(),
                    ),
                    "POST /containers/create" => ("201 Created", br#"{"Id":"p1"}"#.to_vec()),
                    "POST /containers/p1/start" => ("204 No Content", Vec::new()),
                    "POST /containers/p1/wait" => {
                        ("200 OK", format!("{{\"StatusCode\":{exit}}}").into_bytes())
                    }
                    "GET /containers/p1/logs?stdout=1&stderr=1" => {
                        let mut f = frame(1, "Iface\tDestination\n");
                        f.extend(frame(2, "cat: oops\n"));
                        f.extend(frame(1, "  sl  local_address\n"));
                        ("200 OK", f)
                    }
                    _ => ("204 No Content", Vec::new()),
                };
                seen.send(format!("{request} {}", String::from_utf8_lossy(&body)))
                    .unwrap();
                let _ = s.write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes());
                let _ = s.write_all(&answer);
            }
        });
        (super::super::Endpoint::Unix(path), asked)
    }

    #[test]
    fn the_probe_runs_through_the_engine_api_and_its_container_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, asked) = probe_engine(dir.path(), 0);
        let out = probe_over_api(&endpoint).unwrap();
        assert_eq!(out, "Iface\tDestination\n  sl  local_address\n");
        let asked: Vec<String> = asked.try_iter().collect();
        assert_eq!(asked.len(), 6, "{asked:#?}");
        assert_eq!(asked[0], "GET /images/json ");
        let create = asked[1].strip_prefix("POST /containers/create ").unwrap();
        let create: serde_json::Value = serde_json::from_str(create).unwrap();
        assert_eq!(create["Image"], "busybox:1", "a small image first");
        assert_eq!(create["Entrypoint"], serde_json::json!(["cat"]));
        assert_eq!(create["Cmd"][0], "/proc/net/route");
        assert_eq!(create["HostConfig"]["NetworkMode"], "host");
        assert_eq!(create["Labels"][PROBE_LABEL], "1");
        assert_eq!(
            &asked[2..],
            [
                "POST /containers/p1/start ",
                "POST /containers/p1/wait ",
                "GET /containers/p1/logs?stdout=1&stderr=1 ",
                "DELETE /containers/p1?force=1 ",
            ]
        );
    }

    #[test]
    fn a_probe_that_fails_says_why_and_is_removed_too() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, asked) = probe_engine(dir.path(), 1);
        let err = probe_over_api(&endpoint).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("`docker run --network host busybox:1 cat /proc/net/route")
                && text.contains("exit 1: cat: oops"),
            "{text}"
        );
        let last = asked.try_iter().last().unwrap();
        assert_eq!(last, "DELETE /containers/p1?force=1 ");
    }

    #[test]
    fn logs_are_split_by_stream() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"out");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 3]);
        raw.extend_from_slice(b"err");
        // A frame cut short keeps what came.
        raw.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 9]);
        raw.extend_from_slice(b"more");
        assert_eq!(demux(&raw), ("outmore".to_owned(), "err".to_owned()));
    }
}
