//! The world of one real-engine test: a temp root with its own HOME, state
//! folder and git repository whose `docker-sandbox.toml` points at the fixture
//! templates, a pool name and a block of ports no other test uses, and a guard
//! that removes every container, volume and network of the pool's compose
//! projects when the test ends, passed or failed. Plus the engine, HTTP and
//! database probes the tests check the plugin's work with.
//!
//! It does not skip anything: a missing engine, image or compose is a panic
//! that says to run `tests/engine/setup.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_docker-sandbox");
/// Built by `tests/engine/setup.sh`; there is no registry to pull from.
pub const IMAGE: &str = "docker-sandbox-test/busybox:1";
/// A real PostgreSQL 15 (Debian's package), built by `tests/engine/setup.sh`.
/// Its entrypoint behaves like the official image's: an empty data folder
/// (`/var/lib/postgresql/data`) is initialised with `POSTGRES_USER`,
/// `POSTGRES_PASSWORD` and `POSTGRES_DB`, TCP logins need that password, and
/// an existing one is started as it is. It listens on 5432.
pub const PG_IMAGE: &str = "docker-sandbox-test/postgres:1";
/// The images the embedded default pool names, as `tests/engine/setup.sh`
/// makes them: stand-ins (`fixtures/standins`) under KTRDR's real names.
pub const STANDIN_IMAGES: [&str; 5] = [
    "ktrdr-backend:dev",
    "timescale/timescaledb:latest-pg16",
    "jaegertracing/all-in-one:1.53",
    "prom/prometheus:latest",
    "grafana/grafana:latest",
];
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Slots of every test pool, all `light`: one backtest and one training worker.
pub const SLOTS: u32 = 3;
/// The services of a light slot of the fixture stack.
pub const SERVICES: [&str; 4] = ["backend", "backtest-worker-1", "db", "training-worker-1"];

/// The fixture stack's readiness checks (`World::new`).
pub const DEFAULT_GATE: &str = r#"
[[gate]]
tcp = "db"

[[gate]]
http = "api"
path = "/api/v1/health"
status = 200

[[gate]]
http = "api"
path = "/api/v1/workers"
count = "workers"
"#;

/// Environment the plugin must not inherit from whoever runs the suite: our
/// own settings, docker's endpoint (the suite uses the default engine, as its
/// own `docker` calls do), and the fixture's knobs, which tests set per run.
const SCRUBBED: &[&str] = &[
    "DOCKER_SANDBOX_CONFIG",
    "DOCKER_SANDBOX_COMPOSE",
    "DOCKER_SANDBOX_LOCK_TIMEOUT",
    "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND",
    "DOCKER_CLI_PLUGIN_SOCKET",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_FILE",
    "BACKEND_FAIL",
    "BACKEND_USER",
    "BACKEND_START_DELAY",
    "WORKER_REGISTER_DELAY",
    "WORKER_TTL",
    "DB_PASSWORD",
];

/// Which compose the plugin drives (`DOCKER_SANDBOX_COMPOSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compose {
    /// Unset: the plugin's own discovery, which finds `docker compose`.
    Discover,
    /// `plugin`: `docker compose` (v2; 5.6.1 here).
    V2,
    /// `docker-compose`: Debian's legacy 1.29.
    V1,
}

/// Fails the test, loudly, when the machine cannot run the suite.
pub fn preflight() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = CHECK.get_or_init(check_machine) {
        panic!("the real-engine suite cannot run on this machine: {e}");
    }
}

fn check_machine() -> Result<(), String> {
    let hint = "run `bash tests/engine/setup.sh` (it needs a running Docker engine)";
    let version = docker_output(&["version", "--format", "{{.Server.Version}}"]);
    if !version.status.success() {
        return Err(format!(
            "the Docker engine does not answer `docker version`: {}; {hint}",
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    for image in [IMAGE, PG_IMAGE] {
        let found = docker_output(&["image", "inspect", "--format", "{{.Id}}", image]);
        if !found.status.success() {
            return Err(format!("the test image `{image}` is missing; {hint}"));
        }
    }
    match Command::new("psql").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(format!(
                "`psql` (postgresql-client) is missing on the host; {hint}"
            ));
        }
    }
    let v2 = docker_output(&["compose", "version", "--short"]);
    if !v2.status.success() {
        return Err(format!("`docker compose` (v2) is missing; {hint}"));
    }
    let v1 = Command::new("docker-compose")
        .args(["version", "--short"])
        .output();
    match v1 {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("1.") => {
            Ok(())
        }
        _ => Err(format!(
            "the legacy `docker-compose` 1.x is missing; {hint}"
        )),
    }
}

/// Fails the test, loudly, when a stand-in image is missing or is not ours.
fn standins_preflight() {
    for image in STANDIN_IMAGES {
        let labels = docker_output(&[
            "image",
            "inspect",
            "--format",
            "{{ index .Config.Labels \"org.docker-sandbox.test.inputs\" }}",
            image,
        ]);
        let ours =
            labels.status.success() && !String::from_utf8_lossy(&labels.stdout).trim().is_empty();
        assert!(
            ours,
            "the stand-in image `{image}` is missing or is not the suite's; run `bash tests/engine/setup.sh`"
        );
    }
}

/// A finished run of the plugin.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub what: String,
}

impl Run {
    fn from(out: Output, elapsed: Duration, what: String) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
            what,
        }
    }

    #[track_caller]
    pub fn success(self) -> Run {
        self.code(0)
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "`{}`: unexpected exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}`: stdout is not JSON ({e})\n--- stdout:\n{}\n--- stderr:\n{}",
                self.what, self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "`{}`: stderr lacks {needle:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "`{}`: stdout lacks {needle:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A plugin process started with `World::spawn`.
pub struct Running {
    child: Child,
    start: Instant,
    what: String,
}

impl Running {
    pub fn wait(self) -> Run {
        let out = self.child.wait_with_output().unwrap();
        Run::from(out, self.start.elapsed(), self.what)
    }
}

/// What a world's repository holds besides its git history.
enum Project {
    /// A project file naming the fixture templates of `fixtures/<folder>`
    /// and these `[[gate]]` tables.
    Templates(String, String),
    /// A checkout from `tests/fixtures` and a project file for the embedded
    /// pool (`World::embedded`).
    Embedded {
        checkout: String,
        gate_timeout: u64,
        ports: String,
    },
}

pub struct World {
    pub root: PathBuf,
    pub home: PathBuf,
    /// `DOCKER_SANDBOX_HOME`.
    pub state: PathBuf,
    /// The main checkout; holds the committed `docker-sandbox.toml`.
    pub repo: PathBuf,
    /// `e2e<N>`: compose projects are `e2e<N>-slot-<slot>`.
    pub pool: String,
    /// The first port of this test's block.
    pub base: u16,
    /// The test's number.
    pub number: u32,
    pub compose: Compose,
    /// No project file and no `DOCKER_SANDBOX_HOME`: the repository's own
    /// compose file, adopted, with its state in the platform state folder.
    pub bare: bool,
    _tmp: tempfile::TempDir,
}

impl World {
    /// The world of test number `n`: unique per test, it picks the pool name
    /// and the ports, so tests run in parallel without meeting.
    pub fn new(n: u32) -> World {
        World::with_compose(n, Compose::Discover)
    }

    pub fn with_compose(n: u32, compose: Compose) -> World {
        World::with_stack(n, compose, "templates", DEFAULT_GATE)
    }

    /// A world whose pool uses the templates in `fixtures/<templates>` and
    /// the `[[gate]]` tables `gate` instead of the default ones.
    pub fn with_stack(n: u32, compose: Compose, templates: &str, gate: &str) -> World {
        World::build(n, compose, format!("e2e{n}"), true, templates, gate)
    }

    /// The world of test `n` on the embedded default pool, in a repository
    /// that holds the files of `tests/fixtures/<checkout>`: its project file
    /// only names the pool `e2eN`, gives it the suite's light slots and
    /// `gate_timeout`, and moves its ports into this test's block with
    /// `ports` (the `[ports]` lines, given the block's first port), so the
    /// default templates, profiles, env and gate apply.
    pub fn embedded(
        n: u32,
        compose: Compose,
        checkout: &str,
        gate_timeout: u64,
        ports: fn(u16) -> String,
    ) -> World {
        standins_preflight();
        let project = Project::Embedded {
            checkout: checkout.to_owned(),
            gate_timeout,
            ports: ports(base_port(n)),
        };
        World::build_project(n, compose, format!("e2e{n}"), true, project)
    }

    /// The world of test `n` on a pool named `pool` instead of `e2eN`.
    pub fn with_pool(n: u32, compose: Compose, pool: &str) -> World {
        World::build(n, compose, pool.to_owned(), true, "templates", DEFAULT_GATE)
    }

    /// The world of test `n` on pool `pool` with the templates in
    /// `fixtures/<templates>` and `tables` (`[[gate]]`, `[[after_up]]`) at
    /// the end of its project file.
    pub fn with_pool_stack(
        n: u32,
        compose: Compose,
        pool: &str,
        templates: &str,
        tables: &str,
    ) -> World {
        World::build(n, compose, pool.to_owned(), true, templates, tables)
    }

    /// A second world with the same pool name and ports as this one: its own
    /// HOME, state folder (another registry) and repository, on one engine.
    pub fn twin(&self) -> World {
        World::build(
            self.number,
            self.compose,
            self.pool.clone(),
            false,
            "templates",
            DEFAULT_GATE,
        )
    }

    /// The world of test `n` with a repository of its own and nothing else:
    /// no project file, no slots, no state folder given. The repository's
    /// folder is named after the pool (`e2eN`), as a pool found with no
    /// configuration is.
    pub fn bare(n: u32, compose: Compose) -> World {
        preflight();
        machine_lock();
        claim_number(n);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("ds-e2e{n}-"))
            .tempdir()
            .unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let pool = format!("e2e{n}");
        let home = root.join("home");
        let world = World {
            state: home.join(".local/state/docker-sandbox").join(&pool),
            repo: root.join(&pool),
            root,
            home,
            pool,
            base: base_port(n),
            number: n,
            compose,
            bare: true,
            _tmp: tmp,
        };
        std::fs::create_dir_all(&world.home).unwrap();
        std::fs::create_dir_all(&world.repo).unwrap();
        world.cleanup();
        world.git(&world.repo, &["init", "-q", "-b", "main"]);
        world
    }

    fn build(
        n: u32,
        compose: Compose,
        pool: String,
        first: bool,
        templates: &str,
        gate: &str,
    ) -> World {
        let project = Project::Templates(templates.to_owned(), gate.to_owned());
        World::build_project(n, compose, pool, first, project)
    }

    fn build_project(
        n: u32,
        compose: Compose,
        pool: String,
        first: bool,
        project: Project,
    ) -> World {
        preflight();
        machine_lock();
        if first {
            claim_number(n);
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("ds-e2e{n}-"))
            .tempdir()
            .unwrap();
        // Canonical, as the plugin keys claims by canonical paths.
        let root = tmp.path().canonicalize().unwrap();
        let home = root.join("home");
        let state = root.join("state");
        let repo = root.join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        let world = World {
            root,
            home,
            state,
            repo,
            pool,
            base: base_port(n),
            number: n,
            compose,
            bare: false,
            _tmp: tmp,
        };
        // Anything an earlier, killed run of this test left behind.
        if first {
            world.cleanup();
        }
        let text = match &project {
            Project::Templates(templates, gate) => world.project_file(templates, gate),
            Project::Embedded {
                checkout,
                gate_timeout,
                ports,
            } => {
                let from = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures")
                    .join(checkout);
                copy_tree(&from, &world.repo);
                world.embedded_project_file(*gate_timeout, ports)
            }
        };
        std::fs::write(world.repo.join("docker-sandbox.toml"), text).unwrap();
        world.git(&world.repo, &["init", "-q", "-b", "main"]);
        world.git(&world.repo, &["add", "-A"]);
        world.git(&world.repo, &["commit", "-q", "-m", "sandbox pool"]);
        world
            .run(&world.repo, &["provision"])
            .success()
            .assert_stdout_contains(&format!("Created {SLOTS} slot(s)"));
        world
    }

    fn project_file(&self, templates: &str, gate: &str) -> String {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/engine/fixtures")
            .join(templates);
        let b = self.base;
        let slots: String = (1..=SLOTS).map(|s| format!("{s} = \"light\"\n")).collect();
        format!(
            r#"# The real-engine suite's pool: the fixture stack on this test's own ports.
[pool]
name = "{pool}"
templates = "{templates}"
gate_timeout = 60

[slots]
{slots}
[ports]
api = [{api}, 1]
db = [{db}, 1]
workers = [{workers}, 10]
{gate}"#,
            pool = self.pool,
            templates = templates.display(),
            api = b,
            db = b + 100,
            workers = b + 200,
        )
    }

    fn embedded_project_file(&self, gate_timeout: u64, ports: &str) -> String {
        let slots: String = (1..=SLOTS).map(|s| format!("{s} = \"light\"\n")).collect();
        format!(
            r#"# The embedded default pool, on this test's own pool name and ports.
[pool]
name = "{pool}"
gate_timeout = {gate_timeout}

[slots]
{slots}
[ports]
{ports}"#,
            pool = self.pool,
        )
    }

    /// `git worktree add <root>/repo--<name> -b <name>`.
    pub fn worktree(&self, name: &str) -> PathBuf {
        let path = self.root.join(format!("repo--{name}"));
        self.git(
            &self.repo,
            &[
                "worktree",
                "add",
                "-q",
                &path.display().to_string(),
                "-b",
                name,
            ],
        );
        path
    }

    /// A git command in `dir`; panics unless it succeeds; returns stdout.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args([
                "-c",
                "user.name=e2e",
                "-c",
                "user.email=e2e@example.invalid",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The plugin, run in `dir` with this world's environment.
    pub fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .args(args)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for key in SCRUBBED {
            cmd.env_remove(key);
        }
        cmd.env_remove("XDG_STATE_HOME");
        if !self.bare {
            cmd.env("DOCKER_SANDBOX_HOME", &self.state);
        }
        // Each test's pool has an address range of its own: tests run in
        // parallel on one engine, whose networks must never overlap.
        cmd.env("DOCKER_SANDBOX_SUBNETS", subnets(self.number));
        match self.compose {
            Compose::Discover => {}
            Compose::V2 => {
                cmd.env("DOCKER_SANDBOX_COMPOSE", "plugin");
            }
            Compose::V1 => {
                cmd.env("DOCKER_SANDBOX_COMPOSE", "docker-compose");
            }
        }
        cmd
    }

    pub fn run(&self, dir: &Path, args: &[&str]) -> Run {
        self.run_with(dir, args, &[])
    }

    /// With extra environment (the fixture's knobs reach compose this way).
    pub fn run_with(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.cmd(dir, args);
        cmd.envs(env.iter().copied());
        let start = Instant::now();
        let out = cmd.output().unwrap();
        Run::from(out, start.elapsed(), self.describe(dir, args, env))
    }

    pub fn spawn(&self, dir: &Path, args: &[&str]) -> Running {
        self.spawn_with(dir, args, &[])
    }

    /// `spawn` with more environment variables.
    pub fn spawn_with(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let child = self
            .cmd(dir, args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running {
            child,
            start: Instant::now(),
            what: self.describe(dir, args, env),
        }
    }

    fn describe(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        format!(
            "{}docker-sandbox {} (in {})",
            env.concat(),
            args.join(" "),
            dir.display()
        )
    }

    /// `slots --format json`, the whole object.
    pub fn slots(&self) -> Value {
        let v = self
            .run(&self.repo, &["slots", "--format", "json"])
            .success()
            .json();
        assert_eq!(v["live"], true, "slots should ask the engine: {v:#}");
        v
    }

    /// One slot of `slots --format json`.
    pub fn slot(&self, id: u32) -> Value {
        self.slots()["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["slot"] == id)
            .unwrap_or_else(|| panic!("no slot {id} in `slots --format json`"))
            .clone()
    }

    /// The slot's ports as `slots` reports them (`api`, `db`, `worker_1`, ...).
    pub fn ports(&self, id: u32) -> BTreeMap<String, u16> {
        serde_json::from_value(self.slot(id)["ports"].clone()).unwrap()
    }

    pub fn port(&self, id: u32, name: &str) -> u16 {
        self.ports(id)[name]
    }

    /// The slot that `worktree` holds, from `slots --format json`.
    pub fn slot_of(&self, worktree: &Path) -> Option<u32> {
        self.slots()["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["claimed_by"] == worktree.display().to_string())
            .map(|s| s["slot"].as_u64().unwrap() as u32)
    }

    pub fn project(&self, id: u32) -> String {
        format!("{}-slot-{id}", self.pool)
    }

    /// The registry's id (`org.docker-sandbox.registry`).
    pub fn registry_id(&self) -> String {
        let text = std::fs::read_to_string(self.state.join("registry.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["id"].as_str().expect("the registry has an id").to_owned()
    }

    /// `--label` arguments that make a resource this registry's own, as the
    /// slot's rendered files would.
    pub fn own_labels(&self, slot: u32) -> Vec<String> {
        [
            format!("org.docker-sandbox.registry={}", self.registry_id()),
            format!("org.docker-sandbox.pool={}", self.pool),
            format!("org.docker-sandbox.slot={slot}"),
        ]
        .into_iter()
        .flat_map(|l| ["--label".to_owned(), l])
        .collect()
    }

    pub fn slot_dir(&self, id: u32) -> PathBuf {
        self.state.join(format!("slot-{id}"))
    }

    /// The slot's own env file (what `provision` wrote).
    pub fn slot_env(&self, id: u32) -> BTreeMap<String, String> {
        env_file(&self.slot_dir(id).join(".env.sandbox"))
    }

    /// Every container, volume and network of this pool's slot projects, as
    /// `<kind> <id> (<project>)`.
    #[track_caller]
    pub fn leftovers(&self) -> Vec<String> {
        self.try_leftovers().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `leftovers` without panicking, for `drop`: a panic there while a
    /// failed test unwinds would abort the whole run.
    fn try_leftovers(&self) -> Result<Vec<String>, String> {
        let prefix = format!("{}-slot-", self.pool);
        let label = format!("label={PROJECT_LABEL}");
        let mut out = Vec::new();
        for (kind, list, id) in [
            ("container", &["ps", "-a"][..], "{{.ID}}"),
            ("volume", &["volume", "ls"], "{{.Name}}"),
            ("network", &["network", "ls"], "{{.ID}}"),
        ] {
            let format = format!("{id}\t{{{{.Label \"{PROJECT_LABEL}\"}}}}");
            let mut args = list.to_vec();
            args.extend(["--filter", &label, "--format", &format]);
            let o = docker_cmd(&args)
                .output()
                .map_err(|e| format!("cannot run docker: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "`docker {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                if let Some((id, project)) = line.split_once('\t')
                    && project.starts_with(&prefix)
                {
                    out.push(format!("{kind} {id} ({project})"));
                }
            }
        }
        Ok(out)
    }

    /// Removes whatever `leftovers` lists. Never panics: it runs in `drop`.
    pub fn cleanup(&self) {
        let Ok(list) = self.try_leftovers() else {
            return;
        };
        // Containers first: a volume in use cannot go.
        for kind in ["container", "volume", "network"] {
            for item in list.iter().filter(|l| l.starts_with(kind)) {
                let id = item.split(' ').nth(1).unwrap_or_default();
                let args: &[&str] = match kind {
                    "container" => &["rm", "-f", "-v", id],
                    "volume" => &["volume", "rm", "-f", id],
                    _ => &["network", "rm", id],
                };
                let _ = docker_cmd(args).output();
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// One run of the suite at a time on a machine: two runs would use the same
/// pool names and ports, and each test's start removes what its pool left.
/// The lock is held until the test process exits.
fn machine_lock() {
    static LOCK: OnceLock<std::fs::File> = OnceLock::new();
    LOCK.get_or_init(|| {
        let path = std::env::temp_dir().join("docker-sandbox-engine-suite.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        if file.try_lock().is_err() {
            eprintln!(
                "waiting for another run of the real-engine suite to finish (lock {})",
                path.display()
            );
            file.lock()
                .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        }
        file
    });
}

/// Each test's number picks its pool name and ports: two tests with the same
/// number would meet, so that is refused at once.
pub fn claim_number(n: u32) {
    static USED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    assert!(used.insert(n), "test number {n} is used by two tests");
}

/// Test `n` owns ports `base..base+500`: api at base+slot, db at
/// base+100+slot, workers from base+200+10*slot. The blocks of 1 to 25 stay
/// below Linux's ephemeral range (32768 and up), where an outgoing
/// connection could hold a port a slot wants to publish; those above 25 are
/// in it, where such a clash is possible but rare (the suite's own probes
/// are short connections), and shows as a port conflict naming the port.
pub fn base_port(n: u32) -> u16 {
    assert!((1..=90).contains(&n), "test numbers are 1 to 90, not {n}");
    (20_000 + 500 * n) as u16
}

/// Test `n`'s address range, `10.(100+n).0.0/16`: the default range of its
/// pools (`DOCKER_SANDBOX_SUBNETS`), apart from every other test's, from
/// Docker's own pools and from the extra engines' 10.231.x.
pub fn subnets(n: u32) -> String {
    assert!((1..=90).contains(&n), "test numbers are 1 to 90, not {n}");
    format!("10.{}.0.0/16", 100 + n)
}

// ---------------------------------------------------------------------------
// The engine, asked directly (not through the plugin).
// ---------------------------------------------------------------------------

fn docker_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null());
    cmd
}

fn docker_output(args: &[&str]) -> Output {
    docker_cmd(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker`: {e}; run `bash tests/engine/setup.sh`"))
}

/// Runs docker; panics unless it succeeds; returns stdout.
#[track_caller]
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A container of a compose project, as `docker ps -a` lists it.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub id: String,
    pub name: String,
    pub service: String,
    pub state: String,
}

/// `docker ps -a` of one compose project, by label.
pub fn containers(project: &str) -> Vec<Ctr> {
    let format =
        format!("{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label \"{SERVICE_LABEL}\"}}}}\t{{{{.State}}}}");
    docker_ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label={PROJECT_LABEL}={project}"),
        "--format",
        &format,
    ])
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        (f.len() == 4).then(|| Ctr {
            id: f[0].to_owned(),
            name: f[1].to_owned(),
            service: f[2].to_owned(),
            state: f[3].to_owned(),
        })
    })
    .collect()
}

/// `docker volume ls` of one compose project, by label: the volume names.
pub fn volumes(project: &str) -> Vec<String> {
    docker_ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label={PROJECT_LABEL}={project}"),
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `docker network ls` of one compose project, by label: the network names.
pub fn networks(project: &str) -> Vec<String> {
    docker_ok(&[
        "network",
        "ls",
        "--filter",
        &format!("label={PROJECT_LABEL}={project}"),
        "--format",
        "{{.Name}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Nothing of `project` in `docker ps -a`, `docker volume ls`, `docker network ls`.
#[track_caller]
pub fn assert_nothing_left(project: &str) {
    let c = containers(project);
    let v = volumes(project);
    let n = networks(project);
    assert!(
        c.is_empty() && v.is_empty() && n.is_empty(),
        "compose project `{project}` left behind: containers {:?}, volumes {v:?}, networks {n:?}",
        c.iter()
            .map(|c| format!("{} ({})", c.name, c.state))
            .collect::<Vec<_>>()
    );
}

/// The running stack of a light slot: every service's container runs.
#[track_caller]
pub fn assert_stack_running(project: &str) {
    let c = containers(project);
    let mut services: Vec<&str> = c.iter().map(|c| c.service.as_str()).collect();
    services.sort_unstable();
    assert_eq!(services, SERVICES, "services of `{project}`: {c:?}");
    assert!(
        c.iter().all(|c| c.state == "running"),
        "every container of `{project}` should run: {c:?}"
    );
}

/// Makes a labelled volume `<project>_dbdata` holding a database password, as
/// the fixture's db would have left it; `labels` are more `--label` arguments.
pub fn stale_db_volume(project: &str, password: &str, labels: &[String]) -> String {
    let name = format!("{project}_dbdata");
    let project_label = format!("{PROJECT_LABEL}={project}");
    let mut args = vec![
        "volume",
        "create",
        "--label",
        &project_label,
        "--label",
        "com.docker.compose.volume=dbdata",
    ];
    args.extend(labels.iter().map(String::as_str));
    args.push(&name);
    docker_ok(&args);
    docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{name}:/data"),
        IMAGE,
        "sh",
        "-c",
        &format!("printf '%s\\n' '{password}' >/data/password"),
    ]);
    name
}

/// A running container labelled as `service` of `project`.
pub fn stray_container(project: &str, service: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "run".to_owned(),
        "-d".to_owned(),
        "--network".to_owned(),
        "none".to_owned(),
        "--label".to_owned(),
        format!("{PROJECT_LABEL}={project}"),
        "--label".to_owned(),
        format!("{SERVICE_LABEL}={service}"),
        "--name".to_owned(),
        format!("{project}-{service}-1"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([IMAGE.to_owned(), "sleep".to_owned(), "3600".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args).trim().to_owned()
}

// ---------------------------------------------------------------------------
// Probes of a running slot.
// ---------------------------------------------------------------------------

/// `GET http://127.0.0.1:<port><path>`: status and body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    http_get_at(std::net::Ipv4Addr::LOCALHOST, port, path)
}

/// `GET http://<ip>:<port><path>`: status and body.
pub fn http_get_at(ip: std::net::Ipv4Addr, port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from((ip, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {raw:?}"))?;
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.trim().to_owned()))
}

/// `GET /api/v1/health` must answer 200; returns the JSON body.
#[track_caller]
pub fn assert_healthy(port: u16) -> Value {
    match http_get(port, "/api/v1/health") {
        Ok((200, body)) => serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("health on {port} is not JSON ({e}): {body}")),
        other => panic!("GET http://127.0.0.1:{port}/api/v1/health: {other:?}"),
    }
}

/// The fixture db's protocol: read its greeting, send `AUTH <password>`,
/// return both lines.
pub fn db_auth(port: u16, password: &str) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return format!("connect {addr}: {e}"),
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut greeting = String::new();
    let _ = reader.read_line(&mut greeting);
    let _ = (&s).write_all(format!("AUTH {password}\n").as_bytes());
    let mut answer = String::new();
    let _ = reader.read_line(&mut answer);
    format!("{}\n{}", greeting.trim_end(), answer.trim_end())
}

/// `psql` from the host: logs in over TCP to 127.0.0.1:`port` as `user`
/// with `password`, runs `sql` in database `db`, and returns what it printed
/// (unaligned, tuples only, trimmed), or psql's error. It never prompts and
/// reads no `~/.pgpass` or `PG*` settings of whoever runs the suite.
pub fn psql(port: u16, user: &str, password: &str, db: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("PGPASSWORD", password)
        .env("PGPASSFILE", "/dev/null")
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-t", "-A"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
        ])
        .args(["-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `psql`: {e}; run `bash tests/engine/setup.sh`"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "psql -h 127.0.0.1 -p {port} -U {user} -d {db} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A listener on 127.0.0.1:`port`, as a foreign program would hold it.
pub fn occupy(port: u16) -> std::net::TcpListener {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:{port} for the test: {e}"))
}

// ---------------------------------------------------------------------------
// Files.
// ---------------------------------------------------------------------------

/// Copies the folder `from` into `to`, recursively, with the files' modes.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        }
    }
}

/// An env file as a map (comments and blank lines skipped).
pub fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
