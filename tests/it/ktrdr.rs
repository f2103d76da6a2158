//! The embedded default pool in a KTRDR-shaped checkout
//! (`tests/fixtures/ktrdr-checkout`: the folders, files and module paths of
//! the real repository, with stand-in contents), held against the facts of
//! the real KTRDR repository (`ktrdr-facts.md`, section 12's checklist)
//! item by item. The model is compose's own `config` (v2 and 1.29) of a
//! claimed slot, through the built binary; claims ask a fake engine, and
//! compose reads files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::adopt::Compose;
use crate::fake_engine::FakeEngine;
use crate::support::*;

/// What the user's environment holds for the pool's passed-through names.
const ANTHROPIC: &str = "sk-ant-passed-through-4f1c";
const FRED: &str = "fred-passed-through-9d2e";

/// Deprecated names of KTRDR's settings (facts, section 4): the canonical
/// `KTRDR_*` ones are what a service must be given.
const OLD_NAMES: &[&str] = &[
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_ECHO",
    "OTLP_ENDPOINT",
    "KTRDR_API_URL",
    "WORKER_ID",
    "WORKER_PORT",
    "WORKER_PUBLIC_BASE_URL",
    "WORKER_ENDPOINT_URL",
    "CHECKPOINT_DIR",
    "DATA_DIR",
    "MODELS_DIR",
    "USE_IB_HOST_SERVICE",
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ktrdr-checkout")
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

/// Several KTRDR checkouts sharing the embedded pool, one state folder and a
/// fake engine.
struct Ktrdr {
    ctx: TestContext,
    engine: FakeEngine,
    compose: Compose,
}

impl Ktrdr {
    fn new(compose: Compose) -> Ktrdr {
        compose.require();
        let ctx = TestContext::new();
        let engine = FakeEngine::start(&ctx.root);
        Ktrdr {
            ctx,
            engine,
            compose,
        }
    }

    /// The fixture copied into a git repository of its own, committed.
    fn checkout(&self, name: &str) -> PathBuf {
        let repo = self.ctx.root.join(name);
        copy_tree(&fixture(), &repo);
        self.ctx.git(&repo, &["init", "-q", "-b", "main"]);
        self.ctx.git(&repo, &["add", "."]);
        self.ctx.git(&repo, &["commit", "-q", "-m", "ktrdr"]);
        repo
    }

    fn run(&self, repo: &Path, args: &[&str]) -> Run {
        let mut cmd = self.ctx.cmd();
        cmd.current_dir(repo)
            .env("DOCKER_SANDBOX_COMPOSE", self.compose.choice())
            .env("DOCKER_HOST", self.engine.host())
            .env("ANTHROPIC_API_KEY", ANTHROPIC)
            .env("KTRDR_FRED_API_KEY", FRED)
            .args(args);
        TestContext::run_cmd(cmd)
    }

    /// `repo` claims `slot`; compose's model of it, as `config` prints it.
    fn claim_and_config(&self, repo: &Path, slot: u32) -> Value {
        self.run(repo, &["claim", "--slot", &slot.to_string()])
            .success();
        let run = self.run(repo, &["config", "--format", "json"]).success();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("`config` is not JSON ({e}):\n{}", run.stdout))
    }
}

/// One bind mount or volume of a service, from either compose's output.
#[derive(Debug)]
struct Mount {
    source: String,
    target: String,
    read_only: bool,
    bind: bool,
}

fn mounts(service: &Value) -> Vec<Mount> {
    let list = service["volumes"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|v| match v {
            // Legacy compose: `source:target[:mode]`.
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                Mount {
                    source: parts[0].to_owned(),
                    target: parts[1].to_owned(),
                    read_only: parts
                        .get(2)
                        .is_some_and(|m| m.split(',').any(|o| o == "ro")),
                    bind: parts[0].starts_with('/'),
                }
            }
            _ => Mount {
                source: v["source"].as_str().unwrap_or_default().to_owned(),
                target: v["target"].as_str().unwrap().to_owned(),
                read_only: v["read_only"].as_bool().unwrap_or(false),
                bind: v["type"] == "bind",
            },
        })
        .collect()
}

fn mount<'m>(mounts: &'m [Mount], target: &str, what: &str) -> &'m Mount {
    mounts
        .iter()
        .find(|m| m.target == target)
        .unwrap_or_else(|| panic!("{what}: nothing mounted at {target}: {mounts:?}"))
}

/// `(host_ip, published)` of each published port, from either output.
fn ports(service: &Value) -> Vec<(String, String)> {
    let list = service["ports"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|p| match p {
            Value::String(s) => {
                let s = s.split('/').next().unwrap();
                let parts: Vec<&str> = s.split(':').collect();
                assert_eq!(parts.len(), 3, "port without a host address: {s}");
                (parts[0].to_owned(), parts[1].to_owned())
            }
            _ => (
                p["host_ip"].as_str().unwrap_or_default().to_owned(),
                match &p["published"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            ),
        })
        .collect()
}

fn env(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The file of a Python module, under the container's /app (the checkout).
fn module_file(repo: &Path, module: &str) -> PathBuf {
    repo.join(module.replace('.', "/") + ".py")
}

/// `uvicorn <module>:app` of a command: the module.
fn uvicorn_module<'c>(command: &'c [String], what: &str) -> &'c str {
    assert_eq!(command[0], "uvicorn", "{what}: {command:?}");
    command[1]
        .strip_suffix(":app")
        .unwrap_or_else(|| panic!("{what}: not `<module>:app`: {command:?}"))
}

fn arg_after<'c>(command: &'c [String], flag: &str) -> Option<&'c str> {
    let i = command.iter().position(|a| a == flag)?;
    command.get(i + 1).map(String::as_str)
}

fn depends_on(service: &Value, on: &str) -> Option<String> {
    match &service["depends_on"] {
        Value::Array(list) => list.iter().any(|d| d == on).then(String::new),
        Value::Object(map) => map
            .get(on)
            .map(|d| d["condition"].as_str().unwrap_or_default().to_owned()),
        _ => None,
    }
}

/// A claimed slot's model and what it is checked against.
struct Slot<'a> {
    slot: u32,
    what: String,
    repo: &'a Path,
    services: serde_json::Map<String, Value>,
    /// The worktree's env file.
    slot_env: BTreeMap<String, String>,
    /// The registry's ports of the slot.
    slot_ports: BTreeMap<String, u64>,
    state: PathBuf,
    shared: PathBuf,
    workers: Vec<String>,
    /// The services that run KTRDR's code: backend, workers, mcp-local.
    apps: Vec<String>,
}

/// Every check of section 12 on the model of `slot`, held by `repo`.
fn check_slot(k: &Ktrdr, repo: &Path, slot: u32, per_kind: usize, provisioned: bool) {
    let model = k.claim_and_config(repo, slot);
    let services = model["services"].as_object().unwrap().clone();
    let registry = k.ctx.registry();
    let workers: Vec<String> = services
        .keys()
        .filter(|s| s.contains("-worker-"))
        .cloned()
        .collect();
    let apps = std::iter::once("backend".to_owned())
        .chain(workers.iter().cloned())
        .chain(["mcp-local".to_owned()])
        .collect();
    let s = Slot {
        slot,
        what: format!("slot {slot} with {:?}", k.compose),
        repo,
        services,
        slot_env: env_file(&repo.join(".env.sandbox")),
        slot_ports: serde_json::from_value(registry["slots"][slot.to_string()]["ports"].clone())
            .unwrap(),
        state: k.ctx.state.clone(),
        shared: k.ctx.home.join(".ktrdr/shared"),
        workers,
        apps,
    };
    services_follow_the_profile(&s, per_kind);
    ports_are_the_slots_on_loopback(&s);
    bind_sources_exist(&s);
    apps_run_the_dev_image_with_the_code(&s);
    database_settings_are_the_slots(&s);
    backend_runs_ktrdrs_api(&s);
    backend_has_what_alembic_needs(&s);
    workers_run_ktrdrs_worker_modules(&s);
    prometheus_scrapes_this_slot(&s);
    grafana_has_ktrdrs_provisioning_where_the_checkout_has_it(&s, provisioned);
    mcp_local_serves_ktrdrs_mcp(&s);
    secrets_reach_the_containers_and_no_file(&s, k);
}

/// Checklist item 6: one service per worker, as many as the profile gives.
fn services_follow_the_profile(s: &Slot<'_>, per_kind: usize) {
    let what = &s.what;
    let services = &s.services;
    let workers = &s.workers;
    let count = |kind: &str| workers.iter().filter(|w| w.starts_with(kind)).count();
    assert_eq!(
        (count("backtest-worker-"), count("training-worker-")),
        (per_kind, per_kind),
        "{what}: {workers:?}"
    );
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.retain(|n| !n.contains("-worker-"));
    assert_eq!(
        names,
        [
            "backend",
            "db",
            "grafana",
            "jaeger",
            "mcp-local",
            "prometheus"
        ],
        "{what}"
    );
}

/// Checklist item 6: no container_name; every port on 127.0.0.1 at the registry's values.
fn ports_are_the_slots_on_loopback(s: &Slot<'_>) {
    let what = &s.what;
    let services = &s.services;
    let slot_ports = &s.slot_ports;
    let published: Vec<u64> = slot_ports.values().copied().collect();
    for (name, svc) in services {
        assert!(svc.get("container_name").is_none(), "{what}: {name}");
        for (ip, port) in ports(svc) {
            assert_eq!(ip, "127.0.0.1", "{what}: {name} publishes {port} on {ip:?}");
            let port: u64 = port.parse().unwrap();
            assert!(
                published.contains(&port),
                "{what}: {name}: {port} is not the slot's"
            );
        }
    }
    assert_eq!(
        ports(&services["backend"]),
        [("127.0.0.1".to_owned(), slot_ports["api"].to_string())]
    );
}

/// Checklist item 4: every bind source exists, in the checkout or the pool's own folders;
/// nothing of the paths a fresh checkout lacks.
fn bind_sources_exist(s: &Slot<'_>) {
    let what = &s.what;
    let repo = s.repo;
    let services = &s.services;
    let state = &s.state;
    let shared = &s.shared;
    for (name, svc) in services {
        for m in mounts(svc).iter().filter(|m| m.bind) {
            let src = Path::new(&m.source);
            assert!(
                src.exists(),
                "{what}: {name} mounts {src:?}, which does not exist"
            );
            assert!(
                src.starts_with(repo) || src.starts_with(state) || src.starts_with(shared),
                "{what}: {name} mounts {src:?}, outside the checkout and the pool's folders"
            );
            for absent in [
                "research_agents",
                "logs",
                "output",
                "training_analytics",
                "monitoring",
            ] {
                assert!(
                    !src.starts_with(repo.join(absent)),
                    "{what}: {name} mounts {src:?}"
                );
            }
        }
    }
}

/// Checklist item 1: the dev image, built from the checkout's Dockerfile.dev; ./ktrdr
/// mounted wherever the code runs.
fn apps_run_the_dev_image_with_the_code(s: &Slot<'_>) {
    let what = &s.what;
    let repo = s.repo;
    let services = &s.services;
    let apps: Vec<&str> = s.apps.iter().map(String::as_str).collect();
    for name in &apps {
        let svc = &services[*name];
        assert_eq!(svc["image"], "ktrdr-backend:dev", "{what}: {name}");
        let context = Path::new(svc["build"]["context"].as_str().unwrap());
        assert_eq!(context, repo, "{what}: {name}: build context");
        let dockerfile = context.join(svc["build"]["dockerfile"].as_str().unwrap());
        assert!(dockerfile.is_file(), "{what}: {name}: {dockerfile:?}");
        assert!(dockerfile.ends_with("deploy/docker/Dockerfile.dev"));
        let ms = mounts(svc);
        let code = mount(&ms, "/app/ktrdr", &format!("{what}: {name}"));
        assert_eq!(
            Path::new(&code.source),
            repo.join("ktrdr"),
            "{what}: {name}"
        );
        // 7. ./config, read-only.
        let config = mount(&ms, "/app/config", &format!("{what}: {name}"));
        assert_eq!(Path::new(&config.source), repo.join("config"));
        assert!(
            config.read_only,
            "{what}: {name}: ./config is not read-only"
        );
    }
}

/// Checklist item 3: the database: the db's own settings are the slot's password, and
/// every app service connects with them.
fn database_settings_are_the_slots(s: &Slot<'_>) {
    let what = &s.what;
    let services = &s.services;
    let slot_env = &s.slot_env;
    let apps: Vec<&str> = s.apps.iter().map(String::as_str).collect();
    let db = env(&services["db"]);
    let password = &slot_env["DB_PASSWORD"];
    assert_eq!(
        slot_env["KTRDR_DB_PASSWORD"], *password,
        "{what}: the seeds' name"
    );
    assert_eq!(password.len(), 32, "{what}: a random password");
    assert_eq!(db["POSTGRES_PASSWORD"], *password, "{what}");
    assert_eq!(
        services["db"]["image"], "timescale/timescaledb:latest-pg16",
        "{what}"
    );
    let jwt = &slot_env["KTRDR_AUTH_JWT_SECRET"];
    assert!(jwt.len() >= 32 && jwt != password, "{what}: {jwt}");
    let common = [
        ("KTRDR_DB_HOST", "db"),
        ("KTRDR_DB_PORT", "5432"),
        ("KTRDR_DB_NAME", db["POSTGRES_DB"].as_str()),
        ("KTRDR_DB_USER", db["POSTGRES_USER"].as_str()),
        ("KTRDR_DB_PASSWORD", password.as_str()),
        ("KTRDR_OTEL_OTLP_ENDPOINT", "http://jaeger:4317"),
        ("KTRDR_API_ENVIRONMENT", "development"),
        ("KTRDR_LOG_LEVEL", "INFO"),
        ("KTRDR_API_CLIENT_BASE_URL", "http://backend:8000/api/v1"),
        ("KTRDR_AUTH_JWT_SECRET", jwt.as_str()),
        ("KTRDR_IB_HOST_HOST", "host.docker.internal"),
        ("PYTHONPATH", "/app"),
    ];
    for name in apps.iter().filter(|n| **n != "mcp-local") {
        let svc = &services[*name];
        let e = env(svc);
        for (key, value) in common {
            assert_eq!(
                e.get(key).map(String::as_str),
                Some(value),
                "{what}: {name}: {key}"
            );
        }
        // 2. Canonical names only; the backend's DB_HOST is the startup.py quirk.
        for old in OLD_NAMES {
            if *name == "backend" && *old == "DB_HOST" {
                assert_eq!(e[*old], "db", "{what}");
                continue;
            }
            assert!(
                !e.contains_key(*old),
                "{what}: {name} is given the old name {old}"
            );
        }
        // 7. host.docker.internal reaches the host.
        // Compose 1.29 prints a mapping once it merged a second file (the
        // slot's networks file), else a list.
        let hosts: Vec<String> = match svc["extra_hosts"].as_object() {
            Some(map) => map
                .iter()
                .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
                .collect(),
            None => strings(&svc["extra_hosts"]),
        };
        assert!(
            hosts
                .iter()
                .any(|h| h.replace('=', ":") == "host.docker.internal:host-gateway"),
            "{what}: {name}: {}",
            svc["extra_hosts"]
        );
    }
    assert_eq!(db["POSTGRES_DB"], slot_env["KTRDR_DB_NAME"]);
    assert_eq!(db["POSTGRES_USER"], slot_env["KTRDR_DB_USER"]);
}

/// Checklist item 3: the backend: KTRDR's API module, on 8000.
fn backend_runs_ktrdrs_api(s: &Slot<'_>) {
    let what = &s.what;
    let repo = s.repo;
    let services = &s.services;
    let backend = &services["backend"];
    let command = strings(&backend["command"]);
    let module = uvicorn_module(&command, what);
    assert_eq!(module, "ktrdr.api.main");
    assert!(module_file(repo, module).is_file(), "{what}: {module}");
    assert_eq!(arg_after(&command, "--host"), Some("0.0.0.0"));
    assert_eq!(arg_after(&command, "--port"), Some("8000"));
    if let Some(log) = arg_after(&command, "--log-config") {
        let log = log.strip_prefix("/app/").unwrap();
        assert!(repo.join(log).is_file(), "{what}: {log}");
    }
    assert_eq!(
        depends_on(backend, "db").as_deref(),
        Some("service_healthy"),
        "{what}"
    );
}

/// Checklist item 5: what `alembic upgrade head` needs in the backend.
fn backend_has_what_alembic_needs(s: &Slot<'_>) {
    let what = &s.what;
    let repo = s.repo;
    let shared = &s.shared;
    let backend = &s.services["backend"];
    let ms = mounts(backend);
    for (target, src) in [
        ("/app/alembic", "alembic"),
        ("/app/alembic.ini", "alembic.ini"),
        ("/app/tests", "tests"),
        ("/app/memory", "memory"),
    ] {
        let m = mount(&ms, target, what);
        assert_eq!(Path::new(&m.source), repo.join(src), "{what}: {target}");
    }
    assert!(repo.join("alembic/env.py").is_file());
    for (target, folder) in [
        ("/app/data", "data"),
        ("/app/models", "models"),
        ("/app/strategies", "strategies"),
    ] {
        assert_eq!(
            Path::new(&mount(&ms, target, what).source),
            shared.join(folder)
        );
    }
}

/// Checklist item 2: workers: KTRDR's worker modules, listening on KTRDR_WORKER_PORT,
/// advertising their service name, with healthchecks and a grace period.
fn workers_run_ktrdrs_worker_modules(s: &Slot<'_>) {
    let what = &s.what;
    let repo = s.repo;
    let services = &s.services;
    let workers: Vec<&String> = s.workers.iter().collect();
    for name in &workers {
        let svc = &services[*name];
        let w = format!("{what}: {name}");
        let e = env(svc);
        let command = strings(&svc["command"]);
        let module = uvicorn_module(&command, &w);
        assert!(module_file(repo, module).is_file(), "{w}: {module}");
        let (want_module, want_type) = if name.starts_with("backtest-") {
            ("ktrdr.backtesting.backtest_worker", "backtesting")
        } else {
            ("ktrdr.training.training_worker", "training")
        };
        assert_eq!(module, want_module, "{w}");
        assert_eq!(e["WORKER_TYPE"], want_type, "{w}");
        assert_eq!(arg_after(&command, "--host"), Some("0.0.0.0"), "{w}");
        let port = &e["KTRDR_WORKER_PORT"];
        assert_eq!(arg_after(&command, "--port"), Some(port.as_str()), "{w}");
        assert_eq!(ports(svc), [("127.0.0.1".to_owned(), port.clone())], "{w}");
        assert_eq!(e["KTRDR_WORKER_ID"], **name, "{w}");
        assert_eq!(
            e["KTRDR_WORKER_PUBLIC_BASE_URL"],
            format!("http://{name}:{port}"),
            "{w}"
        );
        let health = strings(&svc["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains(&format!("curl -f http://localhost:{port}/health")),
            "{w}: {health}"
        );
        assert_eq!(svc["stop_grace_period"], "30s", "{w}");
        assert_eq!(
            depends_on(svc, "db").as_deref(),
            Some("service_healthy"),
            "{w}"
        );
        assert!(depends_on(svc, "backend").is_some(), "{w}");
        let ms = mounts(svc);
        let models = mount(&ms, "/app/models", &w);
        assert_eq!(
            models.read_only,
            name.starts_with("backtest-"),
            "{w}: models"
        );
        assert!(mount(&ms, "/app/strategies", &w).read_only, "{w}");
        if name.starts_with("training-") {
            assert_eq!(e["KTRDR_FRED_API_KEY"], FRED, "{w}: passed through");
        }
    }
}

/// Checklist item 4: prometheus reads a file of the slot folder listing this slot's
/// backend and workers.
fn prometheus_scrapes_this_slot(s: &Slot<'_>) {
    let what = &s.what;
    let services = &s.services;
    let state = &s.state;
    let workers: Vec<&String> = s.workers.iter().collect();
    let prometheus = &services["prometheus"];
    assert!(
        strings(&prometheus["command"])
            .contains(&"--config.file=/etc/prometheus/prometheus.yml".into()),
        "{what}"
    );
    let pm = mounts(prometheus);
    let config = mount(&pm, "/etc/prometheus/prometheus.yml", what);
    let config_file = state.join(format!("slot-{}/prometheus.yml", s.slot));
    assert_eq!(Path::new(&config.source), config_file, "{what}");
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(text.contains("\"backend:8000\""), "{what}: {text}");
    assert!(text.contains("metrics_path: /metrics/"), "{what}: {text}");
    for name in &workers {
        let port = &env(&services[*name])["KTRDR_WORKER_PORT"];
        assert!(
            text.contains(&format!("\"{name}:{port}\"")),
            "{what}: {name}: {text}"
        );
    }
    assert_eq!(
        text.matches("-worker-").count(),
        workers.len(),
        "{what}: {text}"
    );
}

/// Checklist item 7: grafana: anonymous, and KTRDR's provisioning where the checkout has it.
fn grafana_has_ktrdrs_provisioning_where_the_checkout_has_it(s: &Slot<'_>, provisioned: bool) {
    let what = &s.what;
    let repo = s.repo;
    let services = &s.services;
    let grafana = &services["grafana"];
    assert_eq!(env(grafana)["GF_AUTH_ANONYMOUS_ENABLED"], "true");
    let gm = mounts(grafana);
    let provisioning: Vec<&Mount> = gm
        .iter()
        .filter(|m| m.source.contains("deploy/shared/grafana"))
        .collect();
    if provisioned {
        assert_eq!(provisioning.len(), 3, "{what}: {gm:?}");
        let ds = mount(
            &gm,
            "/etc/grafana/provisioning/datasources/datasources.yml",
            what,
        );
        assert_eq!(
            Path::new(&ds.source),
            repo.join("deploy/shared/grafana/datasources.yml")
        );
        mount(&gm, "/var/lib/grafana/dashboards", what);
    } else {
        assert!(provisioning.is_empty(), "{what}: {gm:?}");
    }
}

/// Checklist item 7: mcp-local: the backend image idling, KTRDR's MCP server at /mcp.
fn mcp_local_serves_ktrdrs_mcp(s: &Slot<'_>) {
    let what = &s.what;
    let repo = s.repo;
    let services = &s.services;
    let mcp = &services["mcp-local"];
    assert_eq!(strings(&mcp["command"]), ["sleep", "infinity"], "{what}");
    assert_eq!(mcp["stdin_open"], true, "{what}");
    assert_eq!(mcp["working_dir"], "/mcp", "{what}");
    assert_eq!(env(mcp)["PYTHONPATH"], "/app:/mcp", "{what}");
    let mm = mounts(mcp);
    let code = mount(&mm, "/mcp", what);
    assert_eq!(Path::new(&code.source), repo.join("mcp"));
    assert!(code.read_only && repo.join("mcp/src/main.py").is_file());
    assert_eq!(
        depends_on(mcp, "backend").as_deref(),
        Some("service_healthy"),
        "{what}"
    );
}

/// Secrets: a passed-through value reaches the container, and no file.
fn secrets_reach_the_containers_and_no_file(s: &Slot<'_>, k: &Ktrdr) {
    let what = &s.what;
    let repo = s.repo;
    let state = &s.state;
    let backend = &s.services["backend"];
    assert_eq!(env(backend)["ANTHROPIC_API_KEY"], ANTHROPIC, "{what}");
    for dir in [repo, state.as_path()] {
        for (path, bytes) in tree(dir) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(ANTHROPIC) && !text.contains(FRED),
                "{what}: a passed-through value is in {path:?}"
            );
        }
    }
    // The slot's env files are private, and git does not see the worktree's.
    assert_eq!(mode(&repo.join(".env.sandbox")), 0o600);
    assert_eq!(
        mode(&state.join(format!("slot-{}/.env.sandbox", s.slot))),
        0o600
    );
    let status = k.ctx.git(repo, &["status", "--porcelain", "--ignored=no"]);
    assert_eq!(status, "", "{what}: git sees {status}");
}

fn the_default_pool_runs_ktrdr_as_its_repository_defines_it(compose: Compose) {
    let k = Ktrdr::new(compose);
    let light = k.checkout("ktrdr");
    let standard = k.checkout("ktrdr--standard");
    let heavy = k.checkout("ktrdr--heavy");
    // A checkout from before KTRDR's Grafana provisioning.
    std::fs::remove_dir_all(standard.join("deploy/shared/grafana")).unwrap();
    k.ctx
        .git(&standard, &["commit", "-q", "-a", "-m", "no grafana"]);
    k.run(&light, &["provision"]).success();
    k.run(&light, &["init-shared", "--minimal"]).success();
    check_slot(&k, &light, 1, 1, true);
    check_slot(&k, &standard, 5, 2, false);
    check_slot(&k, &heavy, 6, 4, true);
}

#[test]
fn the_default_pool_runs_ktrdr_as_its_repository_defines_it_with_compose_v2() {
    the_default_pool_runs_ktrdr_as_its_repository_defines_it(Compose::V2);
}

#[test]
fn the_default_pool_runs_ktrdr_as_its_repository_defines_it_with_legacy_compose() {
    the_default_pool_runs_ktrdr_as_its_repository_defines_it(Compose::Legacy);
}
