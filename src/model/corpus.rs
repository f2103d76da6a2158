//! The real compose files of `tests/corpus/` adopted with a materialised copy
//! on compose v2 (as an older v2 gets it), and the edge cases the corpus does
//! not hold, with every kind of slot file: slots 1 and 2 of a pool of 4, as
//! compose itself reads each slot (`config`), share no host port, container
//! name, volume or network name, and publish every port on 127.0.0.1; what
//! cannot be isolated is refused. The corpus with the override (v2) and with
//! legacy 1.29 is adopted through the built binary, in `tests/it/adopt.rs`.
//!
//! Compose is found as the engine suite finds it (`docker compose` for v2,
//! `docker-compose` 1.x on PATH for the legacy one), and a missing one fails
//! the test: `bash tests/engine/setup.sh` installs both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{
    Dialect, External, Flavour, Model, SlotInputs, Source, analyse, derive_ports, read,
    render_slot, yaml,
};
use crate::compose::{Compose, Program};
use crate::engine::Docker;

const SLOTS: u32 = 4;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn docker() -> Docker {
    Docker {
        bin: which::which("docker")
            .expect("`docker` is not on PATH; run `bash tests/engine/setup.sh`"),
        globals: Vec::new(),
    }
}

fn version_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.arg("version").arg("--short").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('v')
        .to_owned();
    (out.status.success() && v.starts_with(|c: char| c.is_ascii_digit())).then_some(v)
}

fn compose_v2() -> Compose {
    let docker = docker();
    let version = version_of(docker.command().arg("compose"))
        .expect("`docker compose` (v2) is missing; run `bash tests/engine/setup.sh`");
    Compose {
        docker,
        program: Program::Plugin,
        version,
    }
}

fn compose_legacy() -> Compose {
    let bin = which::which("docker-compose")
        .expect("the legacy `docker-compose` 1.29 is missing; run `bash tests/engine/setup.sh`");
    let version = version_of(&mut Command::new(&bin))
        .filter(|v| v.starts_with("1."))
        .expect("`docker-compose` on PATH is not the legacy 1.x; run `bash tests/engine/setup.sh`");
    Compose {
        docker: docker(),
        program: Program::Standalone(bin),
        version,
    }
}

/// What one slot's stack holds, from compose's own output.
#[derive(Debug, Default)]
struct Facts {
    /// `port/protocol` of each fixed host port.
    host_ports: BTreeSet<String>,
    /// Published ports not on 127.0.0.1.
    not_loopback: Vec<String>,
    container_names: BTreeSet<String>,
    volume_names: BTreeSet<String>,
    network_names: BTreeSet<String>,
    services: BTreeSet<String>,
}

fn facts(project: &str, model: &Model) -> Facts {
    let mut f = Facts::default();
    for s in model.services.values() {
        f.services.insert(s.name.clone());
        for p in &s.ports {
            if p.host_ip.as_deref() != Some("127.0.0.1") {
                f.not_loopback.push(format!("{} {p:?}", s.name));
            }
            if let Some((lo, hi)) = p.published {
                for n in lo..=hi {
                    f.host_ports.insert(format!("{n}/{}", p.protocol));
                }
            }
        }
        f.container_names.extend(s.container_name.clone());
    }
    // compose names what the file does not: `<project>_<key>`.
    let name = |key: &str, fixed: &Option<String>| {
        fixed.clone().unwrap_or_else(|| format!("{project}_{key}"))
    };
    for (k, v) in &model.volumes {
        f.volume_names.insert(name(k, &v.fixed_name));
    }
    for (k, n) in &model.networks {
        f.network_names.insert(name(k, &n.fixed_name));
    }
    f
}

/// compose's `config` of a slot: the original files and the override (v2), or
/// the materialised copy alone (legacy), with the original's project folder.
fn slot_config(
    compose: &Compose,
    work: &Path,
    files: &[PathBuf],
    slot_file: &Path,
    project: &str,
) -> Model {
    slot_config_with(compose, work, files, slot_file, project, None)
}

/// `slot_config` with `--env-file env`, as a claim's worktree gives it.
fn slot_config_with(
    compose: &Compose,
    work: &Path,
    files: &[PathBuf],
    slot_file: &Path,
    project: &str,
    env: Option<&Path>,
) -> Model {
    let dialect = Dialect::of(compose);
    let mut cmd = super::read::base_command(compose);
    let flavour = super::flavour(compose);
    cmd.current_dir(work)
        .args(["-p", project, "--project-directory"])
        .arg(work);
    if let Some(env) = env {
        cmd.arg("--env-file").arg(env);
    }
    if flavour == Flavour::Override {
        for f in files {
            cmd.arg("-f").arg(f);
        }
    }
    cmd.arg("-f").arg(slot_file);
    match dialect {
        Dialect::Json => cmd.args(["--profile", "*", "config", "--format", "json"]),
        Dialect::Legacy => cmd.arg("config"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "`{}` failed:\n{}\n--- slot file:\n{}",
        crate::compose::display(&cmd),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(slot_file).unwrap()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let raw = match dialect {
        Dialect::Json => serde_json::from_str(&text).unwrap(),
        Dialect::Legacy => yaml::to_json(&text).unwrap(),
    };
    super::normalise::model(project, work, dialect, raw).unwrap()
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Isolated,
    Refused(String),
    /// This compose does not accept the original file.
    Rejected(String),
}

/// The outcome and the warnings.
type Adopted = (Outcome, Vec<String>);

/// A project adopted, and compose's own view of its slots 1 and 2.
struct Adoption {
    model: Model,
    warnings: Vec<String>,
    /// `(project, compose's config of the slot)`.
    slots: Vec<(String, Model)>,
}

/// Reads `work`'s compose file with `compose`, and renders and reads back
/// slots 1 and 2; what cannot be adopted is an `Outcome`.
fn adopt(
    compose: &Compose,
    name: &str,
    work: &Path,
    file: &Path,
    external: External,
) -> Result<Adoption, Outcome> {
    let files = [file.to_path_buf()];
    let state = work.join(".state");
    let source = Source {
        project: name,
        directory: work,
        files: &files,
        env_files: &[],
        hidden: &[],
    };
    let model = read(compose, &source, &state).map_err(|e| Outcome::Rejected(format!("{e:#}")))?;
    let ports = derive_ports(&model, "P", SLOTS).unwrap();
    let analysis = analyse(&model, external, Some(&ports));
    if !analysis.can_isolate() {
        let msg: Vec<String> = analysis
            .refusals
            .iter()
            .map(|r| r.message.clone())
            .collect();
        return Err(Outcome::Refused(msg.join("; ")));
    }
    let flavour = super::flavour(compose);
    let mut slots = Vec::new();
    for slot in [1, 2] {
        let project = format!("{name}-slot-{slot}");
        let inputs = SlotInputs {
            pool: name,
            slot,
            project: &project,
            registry_id: "0123abcd",
            ports: &ports,
            pinned: None,
            external,
            worktree: Some(work),
        };
        let text = render_slot(&model, &inputs, flavour).unwrap();
        let dir = state.join(format!("slot-{slot}"));
        std::fs::create_dir_all(&dir).unwrap();
        let slot_file = dir.join("docker-compose.yml");
        std::fs::write(&slot_file, text).unwrap();
        let seen = slot_config(compose, work, &files, &slot_file, &project);
        slots.push((project, seen));
    }
    let warnings = analysis
        .warnings
        .iter()
        .map(|w| w.message.clone())
        .collect();
    Ok(Adoption {
        model,
        warnings,
        slots,
    })
}

/// The isolation every adopted project must show; `shared` names volumes
/// and networks the slots are meant to share.
fn check_isolated(compose: &Compose, name: &str, a: &Adoption, shared: &[&str]) {
    let c = &compose.version;
    let slots: Vec<Facts> = a.slots.iter().map(|(p, m)| facts(p, m)).collect();
    for (f, (project, seen)) in slots.iter().zip(&a.slots) {
        assert_eq!(
            f.services,
            a.model.services.keys().cloned().collect(),
            "{name} ({c}): every service"
        );
        assert!(
            f.not_loopback.is_empty(),
            "{name} ({c}): {:?}",
            f.not_loopback
        );
        assert!(
            f.container_names.is_empty(),
            "{name} ({c}): {:?}",
            f.container_names
        );
        let missing = unlabelled(seen, project);
        assert!(missing.is_empty(), "{name} ({c}): no labels on {missing:?}");
    }
    let (x, y) = (&slots[0], &slots[1]);
    let disjoint = |what: &str, x: &BTreeSet<String>, y: &BTreeSet<String>| {
        let both: Vec<&String> = x
            .intersection(y)
            .filter(|n| !shared.contains(&n.as_str()))
            .collect();
        assert!(
            both.is_empty(),
            "{name} ({c}): slots 1 and 2 share {what} {both:?}"
        );
    };
    disjoint("host ports", &x.host_ports, &y.host_ports);
    disjoint("volume names", &x.volume_names, &y.volume_names);
    disjoint("network names", &x.network_names, &y.network_names);
}

/// Services, volumes and networks of `seen` without our three labels (an
/// external one is not ours to label).
fn unlabelled(seen: &Model, project: &str) -> Vec<String> {
    let slot = project.rsplit('-').next().unwrap();
    let has_ours = |v: &Value| {
        let labels = match v.get("labels") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect(),
            Some(Value::Array(l)) => l
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::<String>::new(),
        };
        [
            "org.docker-sandbox.registry=0123abcd".to_owned(),
            format!("org.docker-sandbox.slot={slot}"),
        ]
        .iter()
        .all(|l| labels.contains(l))
            && labels
                .iter()
                .any(|l| l.starts_with("org.docker-sandbox.pool="))
    };
    let mut missing = Vec::new();
    for kind in ["services", "volumes", "networks"] {
        for (key, v) in seen.raw[kind].as_object().into_iter().flatten() {
            let external = v.get("external").is_some_and(|e| e != &Value::Bool(false));
            if !external && !has_ours(v) {
                missing.push(format!("{kind}.{key}"));
            }
        }
    }
    missing
}

/// Adopts a corpus project and checks it: the outcome and the warnings.
fn adopt_corpus(compose: &Compose, name: &str, work: &Path, file: &Path) -> Adopted {
    match adopt(compose, name, work, file, External::Shared) {
        Ok(a) => {
            check_isolated(compose, name, &a, &[]);
            if name == "postgresql-pgadmin" {
                // The project's `.env`, in the model and in each slot.
                let user = |m: &Model| m.services["postgres"].environment["POSTGRES_USER"].clone();
                assert_eq!(
                    user(&a.model).as_deref(),
                    Some("yourUser"),
                    "{}",
                    compose.version
                );
                for (_, seen) in &a.slots {
                    assert_eq!(
                        user(seen).as_deref(),
                        Some("yourUser"),
                        "{}",
                        compose.version
                    );
                }
            }
            (Outcome::Isolated, a.warnings)
        }
        Err(outcome) => (outcome, Vec::new()),
    }
}

/// A copy of a corpus project in a folder of its own.
fn project_copy(src: &Path, into: &Path) -> PathBuf {
    let work = into.join(src.file_name().unwrap());
    std::fs::create_dir_all(&work).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, work.join(p.file_name().unwrap())).unwrap();
    }
    work
}

fn compose_file(dir: &Path) -> PathBuf {
    [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yml",
        "docker-compose.yaml",
    ]
    .iter()
    .map(|f| dir.join(f))
    .find(|f| f.is_file())
    .unwrap_or_else(|| panic!("no compose file in `{}`", dir.display()))
}

/// Every corpus project adopted with `compose`, in parallel: its name (the
/// folder's, lower-cased, as a pool name) and what it gives.
fn adopt_the_corpus(compose: &Compose) -> Vec<(String, Adopted)> {
    let tmp = tempfile::tempdir().unwrap();
    let mut projects: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    projects.sort();
    assert_eq!(projects.len(), 20, "the corpus has 20 projects");
    std::thread::scope(|scope| {
        let handles: Vec<_> = projects
            .iter()
            .map(|src| {
                let tmp = tmp.path();
                scope.spawn(move || {
                    let name = src
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .to_ascii_lowercase();
                    let work = project_copy(src, tmp);
                    let file = compose_file(&work);
                    let adopted = adopt_corpus(compose, &name, &work, &file);
                    // `cargo test model::corpus -- --nocapture` shows them.
                    println!("{name} with {}: {:?}", compose.version, adopted.0);
                    for w in &adopted.1 {
                        println!("  warning: {w}");
                    }
                    (name, adopted)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// plex is refused, naming host networking; every other project is isolated.
fn check_the_corpus(compose: &Compose, results: &[(String, Adopted)]) {
    let c = &compose.version;
    for (name, (outcome, warnings)) in results {
        if name == "plex" {
            let Outcome::Refused(msg) = outcome else {
                panic!("plex is refused with {c}: {outcome:?}")
            };
            assert!(msg.contains("`plex` uses host networking"), "{msg}");
        } else {
            assert_eq!(*outcome, Outcome::Isolated, "{name} with {c}");
        }
        if name == "pihole-cloudflared-doh" {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("static address 172.20.0.2")),
                "{warnings:#?}"
            );
        }
    }
}

/// compose v2 as if it were older than 2.24.4: the profiles named one by
/// one, and a materialised copy of v2's own model instead of an override.
fn compose_v2_as_older() -> Compose {
    Compose {
        version: "2.20.0".into(),
        ..compose_v2()
    }
}

#[test]
fn the_corpus_is_isolated_with_a_materialised_copy_on_v2() {
    let compose = compose_v2_as_older();
    assert_eq!(super::flavour(&compose), Flavour::Materialised);
    check_the_corpus(&compose, &adopt_the_corpus(&compose));
}

/// What the corpus does not hold: fixed names, externals, static addresses on
/// a list of networks, labels as a list, a bind from outside the project.
const EDGES: &str = r#"
services:
  app:
    image: busybox
    container_name: app
    ports: ["8080:80", "127.0.0.1:9000:9000/udp", "3000"]
    labels: ["a=b"]
    networks: [front, back]
    volumes:
      - data:/data
      - ext:/ext
      - /srv/shared:/srv
      - ./local:/local
    environment:
      API: http://localhost:8080/
  db:
    image: busybox
    container_name: db
    networks:
      back:
        ipv4_address: 10.5.0.5
  side:
    image: busybox
    network_mode: "service:db"
  lone:
    image: busybox
    container_name: lone
    profiles: [extra]
volumes:
  data:
    name: fixed-data
  ext:
    external: true
    name: shared-ext
networks:
  front:
    name: fixed-front
  back:
    ipam:
      config:
        - subnet: 10.5.0.0/24
"#;

/// A claim on another engine publishes the slot's ports on every interface
/// of that host, and binds the worktree where that host sees it: its
/// worktree's env file says `SANDBOX_HOST_IP=0.0.0.0` and
/// `SANDBOX_ENGINE_WORKTREE=<mapped path>`, which every kind of slot file
/// takes (a bind's options kept); without them the ports stay on 127.0.0.1
/// and the binds on the worktree.
#[test]
fn ports_and_binds_follow_the_claims_engine_with_each_kind_of_slot_file() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, compose) in [compose_v2(), compose_v2_as_older(), compose_legacy()]
        .iter()
        .enumerate()
    {
        let work = tmp.path().join(i.to_string());
        std::fs::create_dir_all(&work).unwrap();
        let file = work.join("compose.yaml");
        std::fs::write(
            &file,
            "services:\n  web:\n    image: x\n    ports: [\"8080:80\", \"9000/udp\"]\n    volumes: [\"./www:/www:ro\", \"/srv/other:/other\"]\n",
        )
        .unwrap();
        std::fs::create_dir_all(work.join("www")).unwrap();
        let c = &compose.version;
        let a = adopt(compose, "hostip", &work, &file, External::Shared)
            .unwrap_or_else(|o| panic!("{c}: {o:?}"));
        check_isolated(compose, "hostip", &a, &[]);
        let env = work.join("claim.env");
        let binds = |m: &Model| -> Vec<(String, String)> {
            let mut b: Vec<(String, String)> = m.services["web"]
                .volumes
                .iter()
                .map(|v| (v.source.clone().unwrap(), v.target.clone()))
                .collect();
            b.sort();
            b
        };
        let here = work.join("www").display().to_string();
        let (_, plain) = &a.slots[0];
        assert_eq!(
            binds(plain),
            [
                ("/srv/other".to_owned(), "/other".to_owned()),
                (here, "/www".to_owned())
            ],
            "{c}"
        );
        std::fs::write(
            &env,
            "SANDBOX_HOST_IP=0.0.0.0\nSANDBOX_ENGINE_WORKTREE=/mnt/on-engine\n",
        )
        .unwrap();
        let seen = slot_config_with(
            compose,
            &work,
            std::slice::from_ref(&file),
            &work.join(".state/slot-1/docker-compose.yml"),
            "hostip-slot-1",
            Some(&env),
        );
        let ips: Vec<Option<&str>> = seen.services["web"]
            .ports
            .iter()
            .map(|p| p.host_ip.as_deref())
            .collect();
        assert_eq!(ips, [Some("0.0.0.0"), Some("0.0.0.0")], "{c}");
        assert_eq!(
            binds(&seen),
            [
                ("/mnt/on-engine/www".to_owned(), "/www".to_owned()),
                ("/srv/other".to_owned(), "/other".to_owned())
            ],
            "{c}"
        );
        let www = seen.raw["services"]["web"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["target"] == "/www" || v.as_str().is_some_and(|t| t.contains(":/www")))
            .cloned()
            .unwrap();
        assert!(
            www["read_only"] == true || www.as_str().is_some_and(|t| t.ends_with(":ro")),
            "{c}: the bind stays read-only: {www}"
        );
    }
}

#[test]
fn fixed_names_and_externals_are_isolated_by_each_kind_of_slot_file() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, compose) in [compose_v2(), compose_v2_as_older(), compose_legacy()]
        .iter()
        .enumerate()
    {
        for external in [External::Shared, External::PerSlot] {
            let work = tmp.path().join(format!("{i}-{external:?}"));
            std::fs::create_dir_all(&work).unwrap();
            let file = work.join("compose.yaml");
            std::fs::write(&file, EDGES).unwrap();
            let c = format!("{} {external:?}", compose.version);
            let a = adopt(compose, "edges", &work, &file, external)
                .unwrap_or_else(|o| panic!("{c}: {o:?}"));
            let shared: &[&str] = match external {
                External::Shared => &["shared-ext"],
                External::PerSlot => &[],
            };
            check_isolated(compose, "edges", &a, shared);
            for (project, seen) in &a.slots {
                let app = &seen.services["app"];
                let binds: Vec<&str> = app
                    .volumes
                    .iter()
                    .filter_map(|m| m.source.as_deref())
                    .collect();
                assert_eq!(
                    binds.contains(&"/srv/shared"),
                    external == External::Shared,
                    "{c}: {binds:?}"
                );
                assert!(
                    binds.contains(&work.join("local").to_str().unwrap()),
                    "{c}: {binds:?}"
                );
                for net in ["front", "back"] {
                    assert_eq!(app.networks[net].aliases, ["app"], "{c} {project}: {net}");
                }
                assert_eq!(
                    seen.services["lone"].networks["default"].aliases,
                    ["lone"],
                    "{c}"
                );
                assert_eq!(
                    seen.services["db"].networks["back"].ipv4_address, None,
                    "{c}"
                );
                assert!(seen.networks["back"].subnets.is_empty(), "{c}");
                let ext = &seen.volumes["ext"];
                assert_eq!(ext.external, external == External::Shared, "{c}");
                let app_raw = &seen.raw["services"]["app"]["labels"];
                let own = app_raw.get("a").or_else(|| {
                    app_raw
                        .as_array()
                        .and_then(|l| l.iter().find(|x| x == &"a=b"))
                });
                assert!(own.is_some(), "{c}: the file's own labels stay: {app_raw}");
                let side = &seen.raw["services"]["side"]["network_mode"];
                assert_eq!(side, "service:db", "{c}");
            }
            let warned = |s: &str| a.warnings.iter().any(|w| w.contains(s));
            assert!(warned("static address 10.5.0.5"), "{c}: {:#?}", a.warnings);
            assert!(warned("subnet 10.5.0.0/24"), "{c}");
            assert!(warned("`/srv/shared`"), "{c}");
            assert!(warned("volume `ext` is external"), "{c}");
            assert!(warned("`API` names localhost port 8080"), "{c}");
            assert!(warned("fixed name `fixed-front`"), "{c}");
        }
    }
}
