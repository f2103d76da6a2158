//! `adopt`, `provision` and `config` through the built binary, with the real
//! compose binaries (no fake docker, no engine: compose's `config` reads
//! files only), over every project of `tests/corpus/`: each copied into a git
//! repository of its own and adopted; then compose's own `config` of slots 1
//! and 2 shows that they share no host port, container name, volume or
//! network name, and publish every port on 127.0.0.1. plex is refused
//! (host networking). No engine is reachable: none is needed.
//!
//! `bash tests/engine/setup.sh` installs both composes: `docker compose` v2
//! and the legacy `docker-compose` 1.29. A missing one fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Which compose the binary is told to use (`DOCKER_SANDBOX_COMPOSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compose {
    V2,
    Legacy,
}

impl Compose {
    pub(crate) fn choice(self) -> &'static str {
        match self {
            Compose::V2 => "plugin",
            Compose::Legacy => "docker-compose",
        }
    }

    /// Fails the test unless this compose answers, as the engine suite's setup
    /// installs it.
    pub(crate) fn require(self) {
        let mut cmd = match self {
            Compose::V2 => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            Compose::Legacy => Command::new("docker-compose"),
        };
        let out = cmd.args(["version", "--short"]).output();
        let version = out
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match (self, version.as_deref()) {
            (Compose::V2, Some(v)) if !v.starts_with("1.") => {}
            (Compose::Legacy, Some(v)) if v.starts_with("1.") => {}
            _ => panic!(
                "{self:?} compose is missing ({version:?}); run `bash tests/engine/setup.sh`"
            ),
        }
    }
}

/// A corpus project in a git repository of its own, named after its folder.
struct Project {
    ctx: TestContext,
    name: String,
    repo: PathBuf,
    compose: Compose,
}

impl Project {
    /// `src` copied into a fresh repository and committed, with the folders
    /// `dirs` (build contexts legacy compose insists on) created in it.
    fn new(src: &Path, compose: Compose, dirs: &[PathBuf]) -> Project {
        let ctx = TestContext::new();
        let folder = src.file_name().unwrap();
        let repo = ctx.root.join(folder);
        std::fs::create_dir_all(&repo).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, repo.join(p.file_name().unwrap())).unwrap();
        }
        ctx.git(&repo, &["init", "-q", "-b", "main"]);
        ctx.git(&repo, &["add", "."]);
        ctx.git(&repo, &["commit", "-q", "-m", "the project"]);
        for dir in dirs {
            std::fs::create_dir_all(repo.join(dir)).unwrap();
        }
        Project {
            ctx,
            name: folder.to_string_lossy().to_ascii_lowercase(),
            repo,
            compose,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.ctx.cmd();
        // No engine: adopting, provisioning and `config` read files only.
        let no_engine = format!("unix://{}/no-engine.sock", self.ctx.root.display());
        cmd.current_dir(&self.repo)
            .env("DOCKER_SANDBOX_COMPOSE", self.compose.choice())
            .env("DOCKER_HOST", no_engine)
            .args(args);
        TestContext::run_cmd(cmd)
    }

    /// compose's JSON of a slot's model, as `config` prints it.
    fn config(&self, slot: u32) -> Value {
        let run = self
            .run(&["config", "--slot", &slot.to_string(), "--format", "json"])
            .success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!("{}: `config` is not JSON ({e}):\n{}", self.name, run.stdout)
        })
    }

    fn what(&self) -> String {
        format!("{} with {:?}", self.name, self.compose)
    }
}

/// What one slot's stack holds, from compose's own output.
#[derive(Debug, Default)]
struct Facts {
    /// `port/protocol` of each host port.
    host_ports: BTreeSet<String>,
    /// Published ports not on 127.0.0.1.
    not_loopback: Vec<String>,
    container_names: BTreeSet<String>,
    volume_names: BTreeSet<String>,
    network_names: BTreeSet<String>,
    services: BTreeSet<String>,
    /// Services, volumes and networks without the slot's labels.
    unlabelled: Vec<String>,
}

/// A port of compose's output: the long form (v2, and legacy for ports it
/// read without an address) or legacy's `ip:published:target/protocol`.
fn host_port(port: &Value) -> (Option<String>, Option<String>, String) {
    if let Some(text) = port.as_str() {
        let (spec, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
        let parts: Vec<&str> = spec.split(':').collect();
        let (ip, published) = match parts.as_slice() {
            [ip, published, _] => (Some((*ip).to_owned()), Some((*published).to_owned())),
            [published, _] => (None, Some((*published).to_owned())),
            _ => (None, None),
        };
        return (ip, published.filter(|p| !p.is_empty()), protocol.to_owned());
    }
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    (
        port.get("host_ip").and_then(text),
        port.get("published").and_then(text),
        port.get("protocol")
            .and_then(text)
            .unwrap_or_else(|| "tcp".into()),
    )
}

fn facts(config: &Value, project: &str, slot: u32) -> Facts {
    let mut f = Facts::default();
    let entries = |kind: &str| config[kind].as_object().cloned().unwrap_or_default();
    for (name, s) in entries("services") {
        f.services.insert(name.clone());
        for p in s["ports"].as_array().into_iter().flatten() {
            let (ip, published, protocol) = host_port(p);
            if ip.as_deref() != Some("127.0.0.1") {
                f.not_loopback.push(format!("{name} {p}"));
            }
            if let Some(published) = published {
                let (lo, hi) = published
                    .split_once('-')
                    .unwrap_or((&published, &published));
                let (lo, hi): (u32, u32) = (lo.parse().unwrap(), hi.parse().unwrap());
                for n in lo..=hi {
                    f.host_ports.insert(format!("{n}/{protocol}"));
                }
            }
        }
        if let Some(c) = s["container_name"].as_str() {
            f.container_names.insert(c.to_owned());
        }
    }
    // compose names what the file does not: `<project>_<key>`.
    let named = |key: &str, v: &Value| {
        v["name"]
            .as_str()
            .map_or_else(|| format!("{project}_{key}"), str::to_owned)
    };
    for (key, v) in entries("volumes") {
        f.volume_names.insert(named(&key, &v));
    }
    for (key, v) in entries("networks") {
        f.network_names.insert(named(&key, &v));
    }
    for kind in ["services", "volumes", "networks"] {
        for (key, v) in entries(kind) {
            let external = v.get("external").is_some_and(|e| e != &Value::Bool(false));
            if !external && !labelled(&v, slot) {
                f.unlabelled.push(format!("{kind}.{key}"));
            }
        }
    }
    f
}

/// Whether `v` carries the pool's, the registry's and the slot's labels.
fn labelled(v: &Value, slot: u32) -> bool {
    let labels: Vec<String> = match v.get("labels") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect(),
        Some(Value::Array(l)) => l
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let has = |prefix: &str| labels.iter().any(|l| l.starts_with(prefix));
    has("org.docker-sandbox.pool=")
        && has("org.docker-sandbox.registry=")
        && labels.contains(&format!("org.docker-sandbox.slot={slot}"))
}

/// Adopts the project, provisions its pool, and checks compose's view of
/// slots 1 and 2.
fn adopt_and_check(p: &Project) {
    let what = p.what();
    let run = p.run(&["adopt", "--format", "json"]);
    if p.name == "plex" {
        let run = run.code(1);
        assert!(
            run.stderr.contains("`plex` uses host networking"),
            "{what}: {}",
            run.stderr
        );
        assert!(
            !p.repo.join("docker-sandbox.toml").exists(),
            "{what}: nothing written"
        );
        return;
    }
    let run = run.success();
    let adopted: Value = serde_json::from_str(&run.stdout).unwrap();
    let warnings: Vec<&str> = adopted["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if p.name == "pihole-cloudflared-doh" {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("static address 172.20.0.2")),
            "{what}: {warnings:#?}"
        );
    }
    let written = p.repo.join("docker-sandbox.toml");
    assert_eq!(adopted["written"], written.to_str().unwrap(), "{what}");
    assert_eq!(adopted["pool"]["name"], p.name.as_str(), "{what}");

    p.run(&["provision"]).success();
    let slots: Vec<(Value, Facts)> = [1, 2]
        .iter()
        .map(|&slot| {
            let config = p.config(slot);
            let project = format!("{}-slot-{slot}", p.name);
            let f = facts(&config, &project, slot);
            (config, f)
        })
        .collect();
    for (slot, (config, f)) in slots.iter().enumerate() {
        let slot = slot + 1;
        assert!(!f.services.is_empty(), "{what} slot {slot}: no services");
        assert!(
            f.not_loopback.is_empty(),
            "{what} slot {slot}: {:?}",
            f.not_loopback
        );
        assert!(
            f.container_names.is_empty(),
            "{what} slot {slot}: {:?}",
            f.container_names
        );
        assert!(
            f.unlabelled.is_empty(),
            "{what} slot {slot}: no labels on {:?}",
            f.unlabelled
        );
        // The ports adopt showed are the ones the slot publishes.
        let shown = &adopted["slots"][slot - 1]["ports"];
        for (name, port) in shown.as_object().unwrap() {
            let protocol = if name.ends_with("_udp") { "udp" } else { "tcp" };
            assert!(
                f.host_ports.contains(&format!("{port}/{protocol}")),
                "{what} slot {slot}: `{name}` {port} is not published: {:?}",
                f.host_ports
            );
        }
        if p.name == "postgresql-pgadmin" {
            // The project's own `.env` still reaches the stack.
            let user = &config["services"]["postgres"]["environment"]["POSTGRES_USER"];
            assert_eq!(user, "yourUser", "{what} slot {slot}");
        }
    }
    let (x, y) = (&slots[0].1, &slots[1].1);
    assert_eq!(x.services, y.services, "{what}");
    let disjoint = |kind: &str, x: &BTreeSet<String>, y: &BTreeSet<String>| {
        let both: Vec<&String> = x.intersection(y).collect();
        assert!(
            both.is_empty(),
            "{what}: slots 1 and 2 share {kind} {both:?}"
        );
    };
    disjoint("host ports", &x.host_ports, &y.host_ports);
    disjoint("container names", &x.container_names, &y.container_names);
    disjoint("volume names", &x.volume_names, &y.volume_names);
    disjoint("network names", &x.network_names, &y.network_names);
}

/// The build contexts `config` names inside `repo`, relative to it.
fn build_contexts(config: &Value, repo: &Path) -> Vec<PathBuf> {
    let services = config["services"].as_object().into_iter().flatten();
    services
        .filter_map(|(_, s)| s.pointer("/build/context").and_then(Value::as_str))
        .filter_map(|c| Path::new(c).strip_prefix(repo).ok().map(Path::to_path_buf))
        .collect()
}

fn projects() -> Vec<PathBuf> {
    let mut projects: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    projects.sort();
    assert_eq!(projects.len(), 20, "the corpus has 20 projects");
    projects
}

/// Runs `each` over every corpus project, one thread each.
fn every_project(each: impl Fn(&Path) + Sync) {
    std::thread::scope(|scope| {
        let each = &each;
        let handles: Vec<_> = projects()
            .into_iter()
            .map(|src| scope.spawn(move || each(&src)))
            .collect();
        let failed = handles.into_iter().filter_map(|h| h.join().err()).count();
        assert_eq!(
            failed, 0,
            "{failed} project(s) failed: their panics are above"
        );
    });
}

#[test]
fn every_corpus_project_is_adopted_and_isolated_with_compose_v2() {
    Compose::V2.require();
    every_project(|src| {
        adopt_and_check(&Project::new(src, Compose::V2, &[]));
    });
}

/// Legacy compose refuses a build context that does not exist (the corpus
/// holds compose files, not applications): v2's reading of the project says
/// which to create.
#[test]
fn every_corpus_project_is_adopted_and_isolated_with_legacy_compose() {
    Compose::V2.require();
    Compose::Legacy.require();
    every_project(|src| {
        adopt_and_check(&Project::new(src, Compose::Legacy, &build_dirs(src)));
    });
}

/// The build contexts of a project as compose v2 reads it.
fn build_dirs(src: &Path) -> Vec<PathBuf> {
    let p = Project::new(src, Compose::V2, &[]);
    let out = Command::new("docker")
        .current_dir(&p.repo)
        .args(["compose", "--profile", "*", "config", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        p.name,
        String::from_utf8_lossy(&out.stderr)
    );
    build_contexts(&serde_json::from_slice(&out.stdout).unwrap(), &p.repo)
}

/// The project file: shown, not written, on a dry run; written once, and
/// replaced only with `--force`; `slots` then shows the ports `adopt` gave.
/// `config` needs a slot: this worktree's claim or `--slot`.
#[test]
fn adopt_writes_the_project_file_that_slots_then_loads() {
    Compose::V2.require();
    let p = Project::new(&corpus().join("flask-redis"), Compose::V2, &[]);
    let file = p.repo.join("docker-sandbox.toml");
    let dry = p.run(&["adopt", "--dry-run"]).success();
    assert!(!file.exists(), "a dry run writes nothing");
    let written: Vec<PathBuf> = walk(&p.ctx.state)
        .into_iter()
        .chain(walk(&p.ctx.home.join(".local")))
        .collect();
    assert_eq!(written, Vec::<PathBuf>::new(), "a dry run writes no state");
    assert!(
        dry.stdout.contains("│ Slot ┆ redis ┆ web  │"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("│ 2    ┆ 6381  ┆ 8002 │"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stderr
            .contains("warning: service `web`: port 8000/tcp is published on all interfaces"),
        "{}",
        dry.stderr
    );

    let run = p.run(&["adopt", "--format", "json"]).success();
    let adopted: Value = serde_json::from_str(&run.stdout).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("# Written by `docker sandbox adopt`"),
        "{text}"
    );
    assert!(text.contains("compose = [\"compose.yaml\"]\n"), "{text}");
    assert!(text.contains("\nweb = [8000, 1]"), "{text}");
    assert_eq!(
        adopted["ports"][1],
        serde_json::json!({
            "name": "web", "service": "web", "target": 8000, "protocol": "tcp",
            "base": 8000, "stride": 1, "env": "FLASK_REDIS_WEB_PORT"
        })
    );

    let again = p.run(&["adopt"]).code(1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert!(again.stderr.contains("adopt --force"), "{}", again.stderr);
    p.run(&["adopt", "--force"]).success();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    p.run(&["provision"]).success();
    let slots = p.run(&["slots", "--format", "json"]).success();
    let slots: Value = serde_json::from_str(&slots.stdout).unwrap();
    for (i, slot) in slots["slots"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            slot["ports"],
            adopted["slots"][i]["ports"],
            "slot {}",
            i + 1
        );
    }
    assert_eq!(slots["slots"].as_array().unwrap().len(), 6);

    let none = p.run(&["config"]).code(1);
    assert!(
        none.stderr.contains("this worktree holds no slot"),
        "{}",
        none.stderr
    );
    assert!(none.stderr.contains("config --slot N"), "{}", none.stderr);
    let yaml = p.run(&["config", "--slot", "3"]).success();
    assert!(
        yaml.stdout.starts_with("name: flask-redis-slot-3\n"),
        "{}",
        yaml.stdout
    );
    assert!(
        yaml.stdout.contains("published: \"8003\""),
        "{}",
        yaml.stdout
    );
}

/// An adopted pool's `[[after_up]]` steps are checked against its compose
/// model when the pool is loaded: a service the files do not have is refused
/// before any slot is made, with v2 and legacy compose alike.
#[test]
fn an_after_up_step_must_name_a_service_of_the_adopted_files() {
    for compose in [Compose::V2, Compose::Legacy] {
        compose.require();
        let p = Project::new(&corpus().join("flask-redis"), compose, &[]);
        p.run(&["adopt"]).success();
        let file = p.repo.join("docker-sandbox.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let step =
            "after_up = [{ service = \"backend\", run = [\"flask\", \"db\", \"upgrade\"] }]\n";
        std::fs::write(&file, format!("{step}{text}")).unwrap();
        let run = p.run(&["provision"]).code(1);
        assert!(
            run.stderr.contains(
                "[[after_up]] number 1: service `backend` is not a service of the compose files (they have `redis`, `web`)"
            ),
            "{}: {}",
            p.what(),
            run.stderr
        );
        assert!(
            !p.ctx.state.join("slot-1").exists(),
            "{}: no slot was made",
            p.what()
        );
        std::fs::write(&file, format!("{}{text}", step.replace("backend", "web"))).unwrap();
        p.run(&["provision"]).success();
    }
}

/// Every file under `dir`, none when it does not exist.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}
