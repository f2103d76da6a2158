//! The slot lifecycle against a fake docker: claim, up, down, logs, release and
//! gc, with the exact docker and compose command lines each one runs, docker's
//! global flags, compose discovery, and many claims at once.
//!
//! Port probing is real (the plugin binds each port to see if it is free), so
//! every test moves the whole pool into a port block of its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

use crate::fake_docker::*;
use crate::support::*;

const LABEL: &str = "label=com.docker.compose.project";

/// `item` (a container, volume or network of the fake) with this registry's
/// id among its labels, as a slot's rendered files give it.
fn ours(sb: &Sandbox, mut item: serde_json::Value) -> serde_json::Value {
    let id = sb.ctx.registry()["id"]
        .as_str()
        .expect("the registry has an id")
        .to_owned();
    let labels = item["Labels"].as_str().unwrap().to_owned();
    item["Labels"] = format!("{labels},org.docker-sandbox.registry={id}").into();
    item
}

/// Blocks of 100 ports from 10000 up to 20400: below Linux's ephemeral range
/// (32768 up), so an outgoing connection never holds one, and below the
/// real-engine suite's blocks (20500 up).
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

pub fn port_block() -> u16 {
    let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
    assert!(
        n < 104,
        "out of port blocks: give the blocks a smaller size"
    );
    10_000 + 100 * n
}

/// The default pool with every port moved to `base`...`base + 99`: named
/// ports at +1..+30, workers at +40..+97 (slot N's at +30+10N, at most 8),
/// and the OTLP pair in the last two ports of each slot's ten (+48, +49 ...).
pub fn ports_toml(base: u16) -> String {
    let b = u32::from(base);
    format!(
        "[ports]\napi = [{b}, 1]\ndb = [{}, 1]\ngrafana = [{}, 1]\njaeger_ui = [{}, 1]\n\
         prometheus = [{}, 1]\njaeger_otlp_grpc = [{}, 10]\njaeger_otlp_http = [{}, 10]\n\
         workers = [{}, 10]\n",
        b + 6,
        b + 12,
        b + 18,
        b + 24,
        b + 38,
        b + 39,
        b + 30,
    )
}

/// A provisioned pool in a git repository (the test's cwd), a fake docker on
/// PATH, and the engine reached through the docker CLI.
struct Sandbox {
    ctx: TestContext,
    fake: FakeDocker,
    base: u16,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox::with_top(NO_STEPS)
    }

    /// `top` goes before the project file's `[ports]` table (`gate = []`).
    fn with_top(top: &str) -> Sandbox {
        let ctx = TestContext::new();
        ctx.git_init();
        let base = port_block();
        ctx.write_project_file(&format!("{top}{}", ports_toml(base)));
        let fake = FakeDocker::install(&ctx);
        let sb = Sandbox { ctx, fake, base };
        sb.run(&["provision"]).success();
        // Provisioning asks the engine only whether the pool's subnets are free.
        assert_calls(&sb.calls(), &[sb.lines().all_networks()]);
        sb
    }

    fn project_file(&self) -> PathBuf {
        self.ctx.cwd.join("docker-sandbox.toml")
    }

    /// The plugin run in `dir`; an ssh DOCKER_HOST makes it use the docker CLI
    /// (our fake) for engine queries. Other worktrees share the project file.
    fn cmd_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.ctx.cmd();
        self.fake.apply(&mut cmd);
        cmd.current_dir(dir)
            .env("DOCKER_HOST", "ssh://fake-engine")
            .args(args);
        if dir != self.ctx.cwd {
            cmd.env("DOCKER_SANDBOX_CONFIG", self.project_file());
        }
        cmd
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_in(&self.ctx.cwd, args)
    }

    fn run(&self, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd(args))
    }

    fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd_in(dir, args))
    }

    /// The fake's calls so far; forgets them.
    fn calls(&self) -> Vec<Vec<String>> {
        let calls = self.fake.calls();
        self.fake.clear();
        calls
    }

    /// Another git repository next to the main one: another worktree.
    fn worktree(&self, name: &str) -> PathBuf {
        let dir = self.ctx.root.join(name);
        if dir.join(".git").exists() {
            return dir;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let st = self
            .ctx
            .command("git")
            .current_dir(&dir)
            .args(["init", "-q", "-b", "main"])
            .status()
            .unwrap();
        assert!(st.success());
        dir
    }

    fn slot_dir(&self, slot: u32) -> PathBuf {
        self.ctx.state.join(format!("slot-{slot}"))
    }

    fn api_port(&self, slot: u32) -> u16 {
        self.base + slot as u16
    }

    fn claimed_by(&self, slot: u32) -> serde_json::Value {
        self.ctx.registry()["slots"][slot.to_string()]["claimed_by"].clone()
    }

    /// Expected command lines with no docker globals.
    fn lines(&self) -> Lines<'_> {
        self.lines_with(self.fake.docker.to_str().unwrap(), &[])
    }

    fn lines_with(&self, docker: &str, globals: &[&str]) -> Lines<'_> {
        Lines {
            sb: self,
            docker: docker.to_owned(),
            globals: globals.iter().map(|s| s.to_string()).collect(),
            compose: None,
        }
    }
}

/// Builds the command lines the plugin should run.
struct Lines<'a> {
    sb: &'a Sandbox,
    docker: String,
    globals: Vec<String>,
    /// A standalone `docker-compose` in place of `docker compose`.
    compose: Option<String>,
}

type Line = Vec<String>;

impl Lines<'_> {
    fn standalone(mut self, path: &Path) -> Self {
        self.compose = Some(path.to_str().unwrap().to_owned());
        self
    }

    fn docker(&self, args: &[&str]) -> Line {
        let mut line = vec![self.docker.clone()];
        line.extend(self.globals.iter().cloned());
        line.extend(args.iter().map(|s| s.to_string()));
        line
    }

    fn ping(&self) -> Line {
        self.docker(&["version", "--format", "{{.Server.Version}}"])
    }

    fn compose_version(&self) -> Line {
        match &self.compose {
            None => self.docker(&["compose", "version", "--short"]),
            Some(bin) => vec![bin.clone(), "version".into(), "--short".into()],
        }
    }

    fn label(project: Option<u32>) -> String {
        match project {
            Some(slot) => format!("{LABEL}=ktrdr-slot-{slot}"),
            None => LABEL.to_owned(),
        }
    }

    /// `docker ps` of one slot's project, or of every compose project.
    fn ps(&self, slot: Option<u32>) -> Line {
        let label = Self::label(slot);
        self.docker(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &label,
            "--format",
            "{{json .}}",
        ])
    }

    fn volume_ls(&self, slot: Option<u32>) -> Line {
        let label = Self::label(slot);
        self.docker(&["volume", "ls", "--filter", &label, "--format", "{{json .}}"])
    }

    fn network_ls(&self, slot: Option<u32>) -> Line {
        let label = Self::label(slot);
        self.docker(&[
            "network",
            "ls",
            "--no-trunc",
            "--filter",
            &label,
            "--format",
            "{{json .}}",
        ])
    }

    /// compose's model of the slot's files, read before an `up` starts
    /// anything (the fake answers none: the checks on it are skipped).
    fn model(&self, slot: u32) -> Line {
        self.compose(slot, &["--profile", "*", "config", "--format", "json"])
    }

    /// Every network of the engine, whose subnets the slot's must not meet.
    fn all_networks(&self) -> Line {
        self.docker(&["network", "ls", "-q", "--no-trunc"])
    }

    /// Every volume of the engine: what existed before an `up` starts anything.
    fn all_volumes(&self) -> Line {
        self.docker(&["volume", "ls", "--format", "{{json .}}"])
    }

    /// Clearing a slot's project that has nothing left.
    fn clear_empty(&self, slot: u32) -> Vec<Line> {
        vec![
            self.ps(Some(slot)),
            self.volume_ls(Some(slot)),
            self.network_ls(Some(slot)),
        ]
    }

    /// `compose -p ktrdr-slot-N --project-directory DIR --env-file DIR/.env.sandbox
    /// -f <state>/slot-N/docker-compose.yml -f <state>/slot-N/networks.yml <verb>`.
    fn compose_in(&self, slot: u32, dir: &Path, verb: &[&str]) -> Line {
        let mut line = match &self.compose {
            None => self.docker(&["compose"]),
            Some(bin) => vec![bin.clone()],
        };
        let file = self.sb.slot_dir(slot).join("docker-compose.yml");
        let networks = self.sb.slot_dir(slot).join("networks.yml");
        line.extend(
            [
                "-p",
                &format!("ktrdr-slot-{slot}"),
                "--project-directory",
                dir.to_str().unwrap(),
                "--env-file",
                dir.join(".env.sandbox").to_str().unwrap(),
                "-f",
                file.to_str().unwrap(),
                "-f",
                networks.to_str().unwrap(),
            ]
            .map(String::from),
        );
        line.extend(verb.iter().map(|s| s.to_string()));
        line
    }

    /// A compose call of the main worktree.
    fn compose(&self, slot: u32, verb: &[&str]) -> Line {
        self.compose_in(slot, &self.sb.ctx.cwd, verb)
    }
}

/// Every line `up --no-wait` runs for a fresh claim of an empty slot.
fn fresh_up(l: &Lines<'_>, slot: u32, verb: &[&str]) -> Vec<Line> {
    let mut calls = vec![l.ping(), l.compose_version(), l.ps(None)];
    calls.extend(l.clear_empty(slot));
    calls.push(l.ps(None));
    calls.push(l.model(slot));
    calls.push(l.all_volumes());
    calls.push(l.all_networks());
    calls.push(l.compose(slot, verb));
    calls
}

const UP: &[&str] = &["up", "-d", "--remove-orphans"];
const DOWN_V: &[&str] = &["down", "-v", "--remove-orphans"];
/// A failed `up` takes its stack down without compose's `-v`: it removes
/// only the volumes it made itself.
const DOWN: &[&str] = &["down", "--remove-orphans"];

#[test]
fn up_claims_writes_the_env_file_and_runs_compose_up() {
    let sb = Sandbox::new();
    let cwd = &sb.ctx.cwd;
    let run = sb.run(&["up", "--no-wait"]).success();
    let l = sb.lines();
    assert_calls(&sb.calls(), &fresh_up(&l, 1, UP));

    assert!(
        run.stdout
            .starts_with("Slot 1 (light) started (the gate was not run): project ktrdr-slot-1 in "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "  api                http://127.0.0.1:{}\n",
            sb.api_port(1)
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("Claimed slot 1 (light) for `{}`", cwd.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "Starting slot 1 with docker compose 2.29.7: {}",
            l.compose(1, UP).join(" ")
        )),
        "{}",
        run.stderr
    );

    let reg = sb.ctx.registry();
    let rec = &reg["slots"]["1"];
    assert_eq!(rec["claimed_by"], serde_json::json!(cwd));
    assert_eq!(rec["status"], "running");

    // The worktree's env file: the slot's values and the claim's identity.
    let env_path = cwd.join(".env.sandbox");
    assert_eq!(mode(&env_path), 0o600);
    let env = env_file(&env_path);
    let slot_env = env_file(&sb.slot_dir(1).join(".env.sandbox"));
    for (k, v) in &slot_env {
        assert_eq!(env.get(k), Some(v), "the slot's `{k}`");
    }
    assert_eq!(env["SLOT_ID"], "1");
    assert_eq!(env["KTRDR_API_PORT"], sb.api_port(1).to_string());
    assert_eq!(env["COMPOSE_PROJECT_NAME"], "ktrdr-slot-1");
    assert!(env["DB_PASSWORD"].len() >= 16);
    assert_eq!(env["INSTANCE_ID"], "work");
    assert_eq!(env["SANDBOX_WORKTREE"], cwd.display().to_string());
    assert_eq!(env["SANDBOX_VERSION"], env!("CARGO_PKG_VERSION"));
    let claimed_at = rec["claimed_at"].as_str().unwrap();
    assert_eq!(env["CREATED_AT"].len(), "2026-01-01T00:00:00Z".len());
    assert_eq!(env["CREATED_AT"][..19], claimed_at[..19]);

    // Git ignores it: it holds a password.
    let git = |args: &[&str]| sb.ctx.command("git").args(args).output().unwrap();
    assert!(
        git(&["check-ignore", "-q", ".env.sandbox"])
            .status
            .success()
    );
    let status = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains(".env.sandbox"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // Again, with --build: the same slot, no new claim, nothing cleared.
    let run = sb.run(&["up", "--build", "--no-wait"]).success();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.model(1),
            l.all_volumes(),
            l.all_networks(),
            l.compose(1, &["up", "-d", "--remove-orphans", "--build"]),
        ],
    );
    assert!(!run.stderr.contains("Claimed"), "{}", run.stderr);
    assert_eq!(sb.claimed_by(1), serde_json::json!(cwd));
}

#[test]
fn a_failed_compose_up_takes_the_stack_down_and_keeps_the_claim() {
    let sb = Sandbox::new();
    sb.fake.fail(
        "compose-up",
        1,
        "Error response from daemon: no such image\n",
    );
    let run = sb.run(&["up", "--no-wait"]).code(1);
    let l = sb.lines();
    let mut expected = fresh_up(&l, 1, UP);
    expected.extend(l.clear_empty(1));
    expected.push(l.compose(1, DOWN));
    expected.extend(l.clear_empty(1));
    assert_calls(&sb.calls(), &expected);
    assert!(
        run.stderr.contains(
            "error: `compose up` failed for slot 1 (exit status: 1); its containers and volumes were removed"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: the claim is kept: fix the stack and run `docker sandbox up` again"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("no such image"),
        "compose's own error is shown: {}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "stopped");
    assert!(sb.ctx.cwd.join(".env.sandbox").is_file());
}

#[test]
fn a_failed_up_removes_only_the_volumes_it_created() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    // The slot's database volume was there before this `up`; the anonymous
    // volume its container mounts was not: `up` made it.
    let mut db = ours(
        &sb,
        container("c1", "ktrdr-slot-1", "db", "created", "Created", ""),
    );
    db["Mounts"] = serde_json::json!("ktrdr-slot-1_pgdata,0a1b2c3d");
    sb.fake.answer("ps.jsonl", &[db]);
    sb.fake.answer(
        "volumes.jsonl",
        &[volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1")],
    );
    sb.fake.fail("compose-up", 1, "Error: no such image\n");
    sb.fake.clear();
    let run = sb.run(&["up", "--no-wait"]).code(1);
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.model(1),
            l.all_volumes(),
            l.all_networks(),
            l.compose(1, UP),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.compose(1, DOWN),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.docker(&["rm", "-f", "c1"]),
            l.docker(&["volume", "rm", "-f", "0a1b2c3d"]),
        ],
    );
    for part in [
        "Kept the volume(s) that existed before this `up`: `ktrdr-slot-1_pgdata`\n",
        "error: `compose up` failed for slot 1 (exit status: 1); its containers and the volumes \
         this `up` created were removed; those that existed before were kept\n",
    ] {
        assert!(run.stderr.contains(part), "{part}\n---\n{}", run.stderr);
    }
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
}

#[test]
fn up_refuses_a_timeout_of_zero() {
    let sb = Sandbox::new();
    // A gate with no time at all could only fail, and take the stack down.
    let zero = sb.run(&["up", "--timeout", "0"]);
    let usage = sb.run(&["up", "--no-such-flag"]);
    assert_ne!(zero.code, 0, "{}", zero.stderr);
    assert_eq!(zero.code, usage.code, "exits as any usage error does");
    assert!(
        zero.stderr
            .contains("invalid value '0' for '--timeout <S>': 0 is not in 1.."),
        "{}",
        zero.stderr
    );
    assert_calls(&sb.calls(), &[]);
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null);
    sb.run(&["up", "--timeout", "1", "--no-wait"]).success();
}

#[test]
fn down_keeps_the_claim_and_removes_volumes_when_asked() {
    let sb = Sandbox::new();
    sb.run(&["up", "--no-wait"]).success();
    sb.fake.clear();
    let l = sb.lines();

    let run = sb.run(&["down"]).success();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.compose_version(),
            l.compose(1, &["down", "--remove-orphans"]),
        ],
    );
    assert_eq!(
        run.stdout,
        "Stopped slot 1; this worktree still holds it (`docker sandbox release` frees it)\n"
    );
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "stopped");
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));

    for flag in ["--volumes", "-v"] {
        let run = sb.run(&["down", flag]).success();
        assert_calls(
            &sb.calls(),
            &[
                l.ping(),
                l.compose_version(),
                l.compose(1, &["down", "--remove-orphans", "--volumes"]),
            ],
        );
        assert_eq!(
            run.stdout,
            "Stopped slot 1 and removed its volumes; this worktree still holds it (`docker sandbox release` frees it)\n"
        );
    }

    sb.fake.fail("compose-down", 3, "");
    let run = sb.run(&["down"]).code(1);
    assert!(
        run.stderr
            .contains("error: `compose down` failed for slot 1 (exit status: 3)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "the command was: {}",
            l.compose(1, &["down", "--remove-orphans"]).join(" ")
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn logs_maps_its_flags_and_passes_the_exit_code_through() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    sb.fake.clear();
    let l = sb.lines();

    // Into a pipe, compose is told not to colour (compose v1 would).
    let run = sb.run(&["logs"]).success();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.compose_version(),
            l.compose(1, &["logs", "--no-color"]),
        ],
    );
    assert_eq!(run.stdout, "backend-1  | fake log line\n");

    sb.run(&["logs", "backend", "-f", "--tail", "5"]).success();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.compose_version(),
            l.compose(
                1,
                &["logs", "--no-color", "--follow", "--tail=5", "backend"],
            ),
        ],
    );
    sb.run(&["logs", "--follow", "-n", "0", "db"]).success();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.compose_version(),
            l.compose(1, &["logs", "--no-color", "--follow", "--tail=0", "db"]),
        ],
    );

    sb.fake.fail("compose-logs", 7, "");
    sb.run(&["logs"]).code(7);
    sb.run(&["logs", "--tail", "x"]).code(64);
}

#[test]
fn release_takes_the_stack_down_removes_everything_and_frees_the_claim() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    let api = format!("127.0.0.1:{}->8000/tcp", sb.api_port(1));
    sb.fake.answer(
        "ps.jsonl",
        &[
            ours(
                &sb,
                container(
                    "c1",
                    "ktrdr-slot-1",
                    "backend",
                    "running",
                    "Up 2 minutes",
                    &api,
                ),
            ),
            container(
                "c2",
                "ktrdr-slot-2",
                "backend",
                "running",
                "Up 2 minutes",
                "",
            ),
        ],
    );
    sb.fake.answer(
        "volumes.jsonl",
        &[ours(&sb, volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1"))],
    );
    sb.fake.answer(
        "networks.jsonl",
        &[ours(
            &sb,
            network("n1", "ktrdr-slot-1_default", "ktrdr-slot-1"),
        )],
    );
    sb.fake.clear();

    let run = sb.run(&["release"]).success();
    let l = sb.lines();
    let mut expected = l.clear_empty(1);
    expected.insert(0, l.ping());
    expected.extend([
        l.compose_version(),
        l.compose(1, DOWN_V),
        l.ps(Some(1)),
        l.volume_ls(Some(1)),
        l.network_ls(Some(1)),
        l.docker(&["rm", "-f", "-v", "c1"]),
        l.docker(&["volume", "rm", "-f", "ktrdr-slot-1_pgdata"]),
        l.docker(&["network", "rm", "n1"]),
    ]);
    assert_calls(&sb.calls(), &expected);
    assert_eq!(
        run.stdout,
        format!(
            "Released slot 1 (claimed by `{}`): removed 1 container(s), 1 volume(s), 1 network(s)\n",
            sb.ctx.cwd.display()
        )
    );
    assert!(!sb.ctx.cwd.join(".env.sandbox").exists());
    let rec = &sb.ctx.registry()["slots"]["1"];
    assert_eq!(rec["claimed_by"], serde_json::Value::Null);
    assert_eq!(rec["claimed_at"], serde_json::Value::Null);

    // Nothing left to release: said so, and docker is not asked.
    let run = sb.run(&["release"]).success();
    assert_eq!(
        run.stdout,
        format!(
            "This worktree holds no slot: nothing to release (`{}`)\n",
            sb.ctx.cwd.display()
        )
    );
    assert_calls(&sb.calls(), &[]);
}

#[test]
fn releasing_a_slot_another_live_worktree_holds_needs_force() {
    let sb = Sandbox::new();
    let other = sb.worktree("other");
    sb.run_in(&other, &["claim", "--slot", "2"]).success();
    sb.fake.clear();
    let state_before = tree(&sb.ctx.state);

    let run = sb.run(&["release", "2"]).code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: slot 2 is claimed by `{}` which still exists\n\
             hint: run `docker sandbox release 2 --force` to free it anyway\n",
            other.display()
        )
    );
    assert_calls(&sb.calls(), &[]);
    assert_eq!(tree(&sb.ctx.state), state_before);
    assert!(other.join(".env.sandbox").is_file());

    let run = sb.run(&["release", "2", "--force"]).success();
    let l = sb.lines();
    let mut expected = vec![l.ping()];
    // Nothing is left in the slot: one look, no compose down, no sweep.
    expected.extend(l.clear_empty(2));
    assert_calls(&sb.calls(), &expected);
    assert_eq!(
        run.stdout,
        format!(
            "Released slot 2 (claimed by `{}`): removed 0 container(s), 0 volume(s), 0 network(s)\n",
            other.display()
        )
    );
    assert_eq!(sb.claimed_by(2), serde_json::Value::Null);
    assert!(!other.join(".env.sandbox").exists());

    let run = sb.run(&["release", "2"]).success();
    assert_eq!(run.stdout, "Slot 2 is not claimed: nothing to release\n");
    let run = sb.run(&["release", "7"]).code(1);
    assert!(
        run.stderr.contains("error: slot 7 does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_orphaned_claim_is_released_without_force() {
    let sb = Sandbox::new();
    let gone = sb.worktree("gone");
    sb.run_in(&gone, &["claim", "--slot", "3"]).success();
    std::fs::remove_dir_all(&gone).unwrap();
    sb.fake.clear();
    let run = sb.run(&["release", "3"]).success();
    assert!(
        run.stdout.starts_with("Released slot 3 (claimed by `"),
        "{}",
        run.stdout
    );
    assert_eq!(sb.claimed_by(3), serde_json::Value::Null);
}

#[test]
fn docker_globals_before_the_plugin_name_reach_every_docker_call() {
    let sb = Sandbox::new();
    let globals = ["--context", "ctx", "--debug", "-l=warn"];
    let mut cmd = sb.cmd(&[]);
    // Docker runs the plugin as `docker-sandbox <globals> sandbox <args>`;
    // a non-default context alone sends engine queries through the CLI.
    cmd.env_remove("DOCKER_HOST")
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker")
        .args(globals)
        .args(["sandbox", "up", "--no-wait"]);
    TestContext::run_cmd(cmd).success();
    let l = sb.lines_with(sb.fake.docker.to_str().unwrap(), &globals);
    let calls = sb.calls();
    assert_calls(&calls, &fresh_up(&l, 1, UP));
    assert_eq!(
        calls.last().unwrap()[..7],
        [
            sb.fake.docker.to_str().unwrap(),
            "--context",
            "ctx",
            "--debug",
            "-l=warn",
            "compose",
            "-p"
        ]
    );

    for args in [["down"].as_slice(), &["logs"], &["release"]] {
        let mut cmd = sb.cmd(&[]);
        cmd.env_remove("DOCKER_HOST")
            .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker")
            .args(globals)
            .arg("sandbox")
            .args(args);
        TestContext::run_cmd(cmd).success();
        let calls = sb.calls();
        assert!(!calls.is_empty());
        for call in &calls {
            assert_eq!(call[1..5], globals, "{args:?}: {call:?}");
        }
    }
}

#[test]
fn the_docker_that_ran_the_plugin_runs_the_children() {
    let sb = Sandbox::new();
    // Not on PATH: only DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND names it.
    let other = sb.ctx.root.join("docker-cli/docker");
    write_script(&other);
    let mut cmd = sb.cmd(&["-H", "ssh://me@10.9.9.9", "sandbox", "up", "--no-wait"]);
    cmd.env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", &other);
    TestContext::run_cmd(cmd).success();
    let l = sb.lines_with(other.to_str().unwrap(), &["-H", "ssh://me@10.9.9.9"]);
    assert_calls(&sb.calls(), &fresh_up(&l, 1, UP));
}

#[test]
fn a_standalone_compose_gets_docker_globals_as_environment() {
    let sb = Sandbox::new();
    let compose = sb.ctx.root.join("compose-bin/docker-compose");
    write_script(&compose);

    let mut cmd = sb.cmd(&["--context", "ctx", "sandbox", "up", "--no-wait"]);
    cmd.env_remove("DOCKER_HOST")
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker")
        .env("DOCKER_SANDBOX_COMPOSE", &compose);
    let run = TestContext::run_cmd(cmd).success();
    let l = sb
        .lines_with(sb.fake.docker.to_str().unwrap(), &["--context", "ctx"])
        .standalone(&compose);
    assert_calls(&sb.calls(), &fresh_up(&l, 1, UP));
    assert!(
        run.stderr.contains(&format!(
            "Starting slot 1 with {} 2.29.7: {}",
            compose.display(),
            l.compose(1, UP).join(" ")
        )),
        "{}",
        run.stderr
    );
    let env = sb.fake.compose_env();
    assert_eq!(env.get("DOCKER_CONTEXT").map(String::as_str), Some("ctx"));
    assert_eq!(env.get("DOCKER_HOST"), None);

    // `-H` becomes DOCKER_HOST, over the one the plugin inherited.
    let mut cmd = sb.cmd(&["-H", "ssh://x", "sandbox", "down"]);
    cmd.env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker")
        .env("DOCKER_SANDBOX_COMPOSE", &compose);
    TestContext::run_cmd(cmd).success();
    let l = sb
        .lines_with(sb.fake.docker.to_str().unwrap(), &["-H", "ssh://x"])
        .standalone(&compose);
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.compose_version(),
            l.compose(1, &["down", "--remove-orphans"]),
        ],
    );
    let env = sb.fake.compose_env();
    assert_eq!(env.get("DOCKER_HOST").map(String::as_str), Some("ssh://x"));
    assert_eq!(env.get("DOCKER_CONTEXT"), None);
}

#[test]
fn without_the_compose_plugin_docker_compose_on_path_is_used() {
    let sb = Sandbox::new();
    sb.fake.fail(
        "compose-version",
        1,
        "docker: 'compose' is not a docker command.\n",
    );
    let compose = sb.ctx.bin.join("docker-compose");
    write_script(&compose);
    std::fs::write(sb.fake.dir.join("compose-version"), "1.29.2\n").unwrap();
    let run = sb.run(&["up", "--no-wait"]).success();
    let l = sb.lines().standalone(&compose);
    let mut expected = fresh_up(&l, 1, UP);
    // `docker compose` is asked first.
    expected.insert(1, sb.lines().compose_version());
    // 1.29 has no JSON: its model is its YAML.
    let model = expected.iter().position(|c| *c == l.model(1)).unwrap();
    expected[model] = l.compose(1, &["config"]);
    assert_calls(&sb.calls(), &expected);
    assert!(
        run.stderr.contains(&format!(
            "Starting slot 1 with {} 1.29.2:",
            compose.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn no_compose_at_all_is_a_clear_error() {
    let sb = Sandbox::new();
    sb.fake.fail(
        "compose-version",
        1,
        "docker: 'compose' is not a docker command.\n",
    );
    let l = sb.lines();

    // PATH holds only our bin/: no docker-compose of the machine's is found.
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    cmd.env("PATH", &sb.ctx.bin);
    let run = TestContext::run_cmd(cmd).code(1);
    assert_eq!(
        run.stderr,
        "error: no Docker Compose found: neither `docker compose` nor `docker-compose` answers `version --short`\n\
         hint: install the compose plugin (Debian/Ubuntu: docker-compose-plugin; or Docker Desktop), or a `docker-compose` binary on PATH\n"
    );
    assert_calls(&sb.calls(), &[l.ping(), l.compose_version()]);
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null, "nothing claimed");
    assert!(!sb.ctx.cwd.join(".env.sandbox").exists());

    // Asked for the plugin by name: the same, said about the plugin.
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    cmd.env("DOCKER_SANDBOX_COMPOSE", "plugin");
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr.starts_with(
            "error: DOCKER_SANDBOX_COMPOSE=plugin, but `docker compose version --short` does not answer\n"
        ),
        "{}",
        run.stderr
    );
    assert_calls(&sb.calls(), &[l.ping(), l.compose_version()]);

    // A standalone compose that is not there.
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    cmd.env("DOCKER_SANDBOX_COMPOSE", "no-such-compose");
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr.starts_with(
            "error: DOCKER_SANDBOX_COMPOSE=`no-such-compose` names no program that can be run"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null);
}

#[test]
fn commands_outside_a_git_worktree_say_so() {
    let sb = Sandbox::new();
    let outside = sb.ctx.root.join("not-a-repo");
    std::fs::create_dir_all(&outside).unwrap();
    for args in [
        ["up", "--no-wait"].as_slice(),
        &["claim"],
        &["down"],
        &["status"],
        &["logs"],
        &["release"],
    ] {
        let run = sb.run_in(&outside, args).code(1);
        assert!(
            run.stderr.starts_with(&format!(
                "error: not inside a git worktree: `{}`\n",
                outside.display()
            )),
            "{args:?}: {}",
            run.stderr
        );
        assert_calls(&sb.calls(), &[]);
    }
}

#[test]
fn commands_need_a_slot_held_by_this_worktree() {
    let sb = Sandbox::new();
    for args in [["down"].as_slice(), &["status"], &["logs"]] {
        let run = sb.run(args).code(1);
        assert_eq!(
            run.stderr,
            format!(
                "error: this worktree holds no slot: `{}`\n\
                 hint: run `docker sandbox up` to claim one and start it, or `docker sandbox slots` to see who holds what\n",
                sb.ctx.cwd.display()
            ),
            "{args:?}"
        );
        assert_calls(&sb.calls(), &[]);
    }
}

#[test]
fn twelve_worktrees_claim_six_slots_at_once() {
    let sb = Sandbox::new();
    let worktrees: Vec<PathBuf> = (1..=12)
        .map(|i| sb.worktree(&format!("wt-{i:02}")))
        .collect();
    let children: Vec<_> = worktrees
        .iter()
        .map(|wt| {
            sb.cmd_in(wt, &["claim", "--format", "json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut won = Vec::new();
    let mut lost = 0;
    for (wt, child) in worktrees.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["worktree"], serde_json::json!(wt));
                assert_eq!(v["fresh"], true);
                let slot = v["slot"].as_u64().unwrap();
                let env = env_file(&wt.join(".env.sandbox"));
                assert_eq!(env["SLOT_ID"], slot.to_string());
                won.push((slot, wt.clone()));
            }
            Some(1) => {
                assert!(
                    stderr.contains("error: no free slot with profile `light` or heavier:"),
                    "{stderr}"
                );
                assert!(!wt.join(".env.sandbox").exists());
                lost += 1;
            }
            other => panic!("claim in {} exited {other:?}: {stderr}", wt.display()),
        }
    }
    assert_eq!(won.len(), 6, "{won:?}");
    assert_eq!(lost, 6);
    let slots: BTreeSet<u64> = won.iter().map(|(s, _)| *s).collect();
    assert_eq!(slots, (1..=6).collect());

    let text = std::fs::read_to_string(sb.ctx.registry_path()).unwrap();
    let reg: serde_json::Value = serde_json::from_str(&text).expect("the registry is whole");
    let claims: Vec<(u64, PathBuf)> = reg["slots"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| !r["claimed_by"].is_null())
        .map(|r| {
            (
                r["slot_id"].as_u64().unwrap(),
                PathBuf::from(r["claimed_by"].as_str().unwrap()),
            )
        })
        .collect();
    won.sort();
    assert_eq!(claims, won);
}

#[test]
fn claims_take_the_lightest_free_slot_that_fits() {
    let sb = Sandbox::new();
    let claim = |name: &str, args: &[&str]| {
        let wt = sb.worktree(name);
        let mut all = vec!["claim"];
        all.extend(args);
        (sb.run_in(&wt, &all), wt)
    };

    let (run, standard) = claim("standard", &["--profile", "standard"]);
    let run = run.success();
    assert!(
        run.stdout.starts_with(&format!(
            "Claimed slot 5 (standard) for `{}`\n",
            standard.display()
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with(&format!(
            "Env file: {}\n",
            standard.join(".env.sandbox").display()
        )),
        "{}",
        run.stdout
    );
    let (run, _) = claim("heavy", &["--profile", "heavy"]);
    assert!(run.success().stdout.starts_with("Claimed slot 6 (heavy)"));
    let (run, _) = claim("heavy-2", &["--profile", "heavy"]);
    let run = run.code(1);
    insta::assert_snapshot!("no_free_heavy_slot", sb.ctx.redact(&run.stderr));
    let (run, _) = claim("three", &["--slot", "3"]);
    assert!(run.success().stdout.starts_with("Claimed slot 3 (light)"));
    let (run, light) = claim("light", &[]);
    assert!(run.success().stdout.starts_with("Claimed slot 1 (light)"));

    // A taken slot, one that does not exist, one too light.
    let (run, _) = claim("x1", &["--slot", "3"]);
    assert!(run.code(1).stderr.starts_with(&format!(
        "error: slot 3 is claimed by `{}`\nhint: pick another slot",
        sb.ctx.root.join("three").display()
    )),);
    let (run, _) = claim("x2", &["--slot", "7"]);
    assert_eq!(
        run.code(1).stderr,
        "error: slot 7 does not exist\nhint: the pool's slots are 1, 2, 3, 4, 5, 6\n"
    );
    let (run, _) = claim("x3", &["--slot", "2", "--profile", "standard"]);
    assert!(
        run.code(1)
            .stderr
            .starts_with("error: slot 2 is `light`, lighter than the `standard` asked for\n"),
    );
    // Usage errors: exit code 64 (EX_USAGE).
    for bad in ["0", "abc", "-1", "100", ""] {
        let (run, _) = claim("x4", &["--slot", bad]);
        let run = run.code(64);
        assert!(
            run.stderr.contains("is not a slot number"),
            "{bad}: {}",
            run.stderr
        );
    }
    let (run, _) = claim("x5", &["--profile", "huge"]);
    run.code(64);

    // The holder of a slot keeps it, and cannot quietly change it.
    let again = sb.run_in(&light, &["claim"]).success();
    assert!(
        again
            .stdout
            .starts_with("This worktree already holds slot 1 (light)\n"),
        "{}",
        again.stdout
    );
    let run = sb.run_in(&light, &["claim", "--slot", "2"]).code(1);
    assert!(
        run.stderr
            .starts_with("error: this worktree already holds slot 1, not slot 2\n"),
        "{}",
        run.stderr
    );
    let run = sb.run_in(&light, &["claim", "--profile", "heavy"]).code(1);
    assert!(
        run.stderr
            .starts_with("error: this worktree holds slot 1 (light), lighter than `heavy`\n"),
        "{}",
        run.stderr
    );

    let reg = sb.ctx.registry();
    let held: Vec<u64> = reg["slots"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| !r["claimed_by"].is_null())
        .map(|r| r["slot_id"].as_u64().unwrap())
        .collect();
    assert_eq!(held, [1, 3, 5, 6]);
}

/// A slot-1 container, volume and network left by an earlier holder, and a
/// container of slot 2 that must stay.
fn leftovers(sb: &Sandbox) {
    sb.fake.answer(
        "ps.jsonl",
        &[
            ours(
                sb,
                container(
                    "old1",
                    "ktrdr-slot-1",
                    "db",
                    "exited",
                    "Exited (0) 2 days ago",
                    "",
                ),
            ),
            container("keep2", "ktrdr-slot-2", "db", "running", "Up 1 hour", ""),
        ],
    );
    sb.fake.answer(
        "volumes.jsonl",
        &[ours(sb, volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1"))],
    );
    sb.fake.answer(
        "networks.jsonl",
        &[ours(
            sb,
            network("net1", "ktrdr-slot-1_default", "ktrdr-slot-1"),
        )],
    );
}

#[test]
fn a_new_claim_clears_what_the_slots_last_holder_left() {
    let sb = Sandbox::new();
    leftovers(&sb);
    let run = sb.run(&["claim"]).success();
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.docker(&["rm", "-f", "-v", "old1"]),
            l.docker(&["volume", "rm", "-f", "ktrdr-slot-1_pgdata"]),
            l.docker(&["network", "rm", "net1"]),
        ],
    );
    assert!(
        run.stderr.contains(
            "Cleared what the slot's last holder left: 1 container(s), 1 volume(s), 1 network(s)"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stdout.starts_with("Claimed slot 1 (light)"));

    // The holder claiming again keeps its slot as it is.
    let run = sb.run(&["claim"]).success();
    assert_calls(&sb.calls(), &[l.ping()]);
    assert!(!run.stderr.contains("Cleared"), "{}", run.stderr);
}

#[test]
fn a_slot_that_cannot_be_cleared_is_not_handed_over() {
    let sb = Sandbox::new();
    leftovers(&sb);
    sb.fake
        .fail("rm", 1, "Error response from daemon: permission denied\n");
    let run = sb.run(&["claim"]).code(1);
    assert!(
        run.stderr.starts_with(
            "error: failed to clear slot 1 before handing it over; the claim was undone\n  \
             caused by: failed to remove container `old1`: Error response from daemon: permission denied\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null);
    assert!(!sb.ctx.cwd.join(".env.sandbox").exists());

    // A container already gone is what removal wanted.
    sb.fake.fail(
        "rm",
        1,
        "Error response from daemon: No such container: old1\n",
    );
    sb.run(&["claim"]).success();
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
}

#[test]
fn compose_never_sees_the_env_files_keys_from_the_shell() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    // As after `eval "$(docker sandbox env)"` in another worktree's shell.
    cmd.env("KTRDR_API_PORT", "1")
        .env("KTRDR_DB_PORT", "2")
        .env("DB_PASSWORD", "another-slots-password")
        .env("SLOT_ID", "9")
        .env("COMPOSE_PROJECT_NAME", "ktrdr-slot-9")
        .env("COMPOSE_FILE", "/elsewhere/docker-compose.yml")
        .env("UNRELATED_SETTING", "kept");
    TestContext::run_cmd(cmd).success();
    let env = sb.fake.compose_env();
    let file = env_file(&sb.ctx.cwd.join(".env.sandbox"));
    assert!(file.contains_key("KTRDR_API_PORT") && file.contains_key("DB_PASSWORD"));
    let leaked: Vec<&String> = file.keys().filter(|k| env.contains_key(*k)).collect();
    assert!(leaked.is_empty(), "compose inherited {leaked:?}");
    assert_eq!(env.get("COMPOSE_FILE"), None);
    assert_eq!(env.get("COMPOSE_PROJECT_NAME"), None);
    assert_eq!(env["UNRELATED_SETTING"], "kept");
}

#[test]
fn gc_frees_orphaned_claims_and_removes_projects_no_claim_owns() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    // Slot 2 was claimed by a worktree that has since been deleted.
    let gone = sb.ctx.root.join("ktrdr--feat-gone");
    let mut reg = sb.ctx.registry();
    reg["slots"]["2"]["claimed_by"] = serde_json::json!(gone);
    reg["slots"]["2"]["claimed_at"] = serde_json::json!("2026-11-19T09:00:00Z");
    std::fs::write(
        sb.ctx.registry_path(),
        serde_json::to_string_pretty(&reg).unwrap(),
    )
    .unwrap();
    sb.fake.answer(
        "ps.jsonl",
        &[
            container("c1", "ktrdr-slot-1", "backend", "running", "Up 1 hour", ""),
            ours(
                &sb,
                container(
                    "c2",
                    "ktrdr-slot-2",
                    "backend",
                    "exited",
                    "Exited (0) 1 day ago",
                    "",
                ),
            ),
            ours(
                &sb,
                container("c4", "ktrdr-slot-4", "db", "running", "Up 3 days", ""),
            ),
            container("o4", "other-slot-4", "db", "running", "Up 3 days", ""),
            container("x1", "ktrdr-slot-1x", "db", "running", "Up 3 days", ""),
        ],
    );
    sb.fake.answer(
        "volumes.jsonl",
        &[
            volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1"),
            ours(&sb, volume("ktrdr-slot-4_pgdata", "ktrdr-slot-4")),
        ],
    );
    sb.fake.answer(
        "networks.jsonl",
        &[ours(
            &sb,
            network("n4", "ktrdr-slot-4_default", "ktrdr-slot-4"),
        )],
    );
    sb.fake.clear();
    let l = sb.lines();

    let state_before = tree(&sb.ctx.state);
    let run = sb.run(&["gc", "--dry-run"]).success();
    assert_eq!(
        sb.ctx.redact(&run.stdout),
        "Would free slot 2 (its worktree `[ROOT]/ktrdr--feat-gone` is gone)\n\
         Would remove compose project `ktrdr-slot-4`: no claim owns it\n"
    );
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.volume_ls(None),
            l.network_ls(None),
            l.ps(Some(4)),
            l.volume_ls(Some(4)),
            l.network_ls(Some(4)),
        ],
    );
    assert_eq!(
        tree(&sb.ctx.state),
        state_before,
        "a dry run changes nothing"
    );

    let run = sb.run(&["gc"]).success();
    assert_eq!(
        sb.ctx.redact(&run.stdout),
        "Freed slot 2 (its worktree `[ROOT]/ktrdr--feat-gone` is gone): removed 1 container(s), 0 volume(s), 0 network(s)\n\
         Removed compose project `ktrdr-slot-4` (no claim owns it): 1 container(s), 1 volume(s), 1 network(s)\n"
    );
    // The orphan's stack is taken down from the slot's own folder.
    let slot2 = sb.slot_dir(2);
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(Some(2)),
            l.volume_ls(Some(2)),
            l.network_ls(Some(2)),
            l.compose_version(),
            l.compose_in(2, &slot2, DOWN_V),
            l.ps(Some(2)),
            l.volume_ls(Some(2)),
            l.network_ls(Some(2)),
            l.docker(&["rm", "-f", "-v", "c2"]),
            l.ps(None),
            l.volume_ls(None),
            l.network_ls(None),
            l.ps(Some(4)),
            l.volume_ls(Some(4)),
            l.network_ls(Some(4)),
            l.docker(&["rm", "-f", "-v", "c4"]),
            l.docker(&["volume", "rm", "-f", "ktrdr-slot-4_pgdata"]),
            l.docker(&["network", "rm", "n4"]),
        ],
    );
    assert_eq!(sb.claimed_by(2), serde_json::Value::Null);
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
}

#[test]
fn gc_with_nothing_to_do_says_so() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    sb.fake.clear();
    let run = sb.run(&["gc"]).success();
    assert_eq!(run.stdout, "Nothing to clean up\n");
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[l.ping(), l.ps(None), l.volume_ls(None), l.network_ls(None)],
    );
}

#[test]
fn a_failed_gate_shows_the_logs_and_takes_the_stack_down() {
    let sb = Sandbox::with_top(&format!("gate = []\n{NO_STEPS}"));
    sb.run(&["claim"]).success();
    sb.fake.answer(
        "ps.jsonl",
        &[ours(
            &sb,
            container(
                "c1",
                "ktrdr-slot-1",
                "backend",
                "exited",
                "Exited (1) 3 seconds ago",
                "",
            ),
        )],
    );
    sb.fake.clear();
    let run = sb.run(&["up"]).code(2);
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.model(1),
            l.all_volumes(),
            l.all_networks(),
            l.compose(1, UP),
            l.ps(Some(1)),
            l.compose(1, &["logs", "--no-color", "--tail=15", "backend"]),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.compose(1, DOWN),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.docker(&["rm", "-f", "c1"]),
        ],
    );
    for part in [
        "Startability gate: FAILED after ",
        "  ✗ containers are running and healthy\n      → service `backend` exited with code 1\n",
        "Last log lines (backend):\n    backend-1  | fake log line\n",
        "error: slot 1 did not become ready: not every container is running and healthy (service `backend` exited with code 1); the stack was taken down with its volumes\n",
        "hint: the claim is kept: fix the cause above and run `docker sandbox up` again\n",
    ] {
        assert!(run.stderr.contains(part), "{part}\n---\n{}", run.stderr);
    }
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "stopped");
}

#[test]
fn up_leaves_a_stack_that_is_up_and_ready_alone() {
    let sb = Sandbox::with_top(&format!("gate = []\n{NO_STEPS}"));
    sb.run(&["claim"]).success();
    sb.fake.answer(
        "ps.jsonl",
        &[ours(
            &sb,
            container(
                "c1",
                "ktrdr-slot-1",
                "backend",
                "running",
                "Up 5 minutes (healthy)",
                &format!("127.0.0.1:{}->8000/tcp", sb.api_port(1)),
            ),
        )],
    );
    std::fs::write(sb.fake.dir.join("compose-services"), "backend\n").unwrap();
    sb.fake.clear();
    let env = sb.ctx.cwd.join(".env.sandbox");
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&env);
    sb.run(&["up"]).success();
    let l = sb.lines();
    // No `compose up`: the stack is up. Compose is asked once for the
    // model's services, which are then kept with the slot.
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.compose(1, &["config", "--services"]),
            l.ps(Some(1)),
        ],
    );
    sb.fake.clear();
    let run = sb.run(&["up"]).success();
    // No compose at all while the slot's files stay as they are.
    assert_calls(&sb.calls(), &[l.ping(), l.ps(None), l.ps(Some(1))]);
    assert!(
        run.stdout
            .starts_with("Slot 1 (light) is already up: project ktrdr-slot-1 in "),
        "{}",
        run.stdout
    );
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "running");
    // The env file was right: not written again.
    assert_eq!(inode(&env), before);

    // A changed env file is written again, whole.
    std::fs::write(&env, "BROKEN=1\n").unwrap();
    sb.run(&["up"]).success();
    assert_ne!(inode(&env), before);
    assert_eq!(env_file(&env)["SLOT_ID"], "1");
    assert_eq!(mode(&env), 0o600);
}

/// `up` interrupted while the gate waits: `signal` sent to the plugin alone
/// (as `kill` or an agent's timeout does), not to a process group.
fn interrupted_during_the_gate(signal: &str, code: i32, name: &str) {
    use std::io::{BufRead, BufReader};
    let sb = Sandbox::with_top(&format!("gate = []\n{NO_STEPS}"));
    sb.run(&["claim"]).success();
    sb.fake.answer(
        "ps.jsonl",
        &[ours(
            &sb,
            container(
                "c1",
                "ktrdr-slot-1",
                "backend",
                "running",
                "Up 2 seconds (health: starting)",
                "",
            ),
        )],
    );
    sb.fake.clear();
    let mut child = sb
        .cmd(&["up", "--timeout", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Waiting for slot 1") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "{seen}");
        seen.push_str(&line);
    }
    // The gate polls the engine: let it wait at least once.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    seen.push_str(&rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(code), "{seen}");
    assert!(
        seen.contains(&format!(
            "error: `up` of slot 1 was stopped by {name}; the stack was taken down with its volumes\n\
             hint: the claim is kept: run `docker sandbox up` again\n"
        )),
        "{seen}"
    );
    let l = sb.lines();
    let calls = sb.calls();
    let down = l.compose(1, DOWN);
    assert!(calls.contains(&down), "{calls:?}");
    // Nothing after the signal but taking the stack down: no log reading.
    let at = calls.iter().position(|c| *c == down).unwrap();
    assert_calls(
        &calls[at - 3..],
        &[
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            down.clone(),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.docker(&["rm", "-f", "c1"]),
        ],
    );
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "stopped");
}

#[test]
fn ctrl_c_during_the_gate_takes_the_stack_down_and_keeps_the_claim() {
    interrupted_during_the_gate("-INT", 130, "SIGINT (Ctrl-C)");
}

#[test]
fn sigterm_during_the_gate_takes_the_stack_down_and_keeps_the_claim() {
    interrupted_during_the_gate("-TERM", 143, "SIGTERM");
}

#[test]
fn status_asks_the_engine_about_this_slot_only() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    sb.fake.answer(
        "ps.jsonl",
        &[
            container(
                "c1",
                "ktrdr-slot-1",
                "backend",
                "running",
                "Up 5 minutes (healthy)",
                &format!("127.0.0.1:{}->8000/tcp", sb.api_port(1)),
            ),
            container(
                "c2",
                "ktrdr-slot-1",
                "db",
                "exited",
                "Exited (0) 1 minute ago",
                "",
            ),
            container("c9", "ktrdr-slot-2", "db", "running", "Up", ""),
        ],
    );
    std::fs::write(
        sb.fake.dir.join("compose-services"),
        "backend\ndb\nworker\n",
    )
    .unwrap();
    sb.fake.clear();
    sb.run(&["status", "--format", "json"]).success();
    let l = sb.lines();
    // The model's services come from compose once, then from the slot folder.
    assert_calls(
        &sb.calls(),
        &[
            l.ps(Some(1)),
            l.compose_version(),
            l.compose(1, &["config", "--services"]),
        ],
    );
    sb.fake.clear();
    let run = sb.run(&["status", "--format", "json"]).success();
    assert_calls(&sb.calls(), &[l.ps(Some(1))]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["slot"], 1);
    assert_eq!(v["status"], "partial");
    assert_eq!(v["missing"], serde_json::json!(["worker"]));
    assert_eq!(v["worktree"], serde_json::json!(sb.ctx.cwd));
    let services: Vec<&str> = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["backend", "db"]);
    assert_eq!(v["containers"][0]["health"], "healthy");
    assert_eq!(
        v["containers"][0]["ports"],
        serde_json::json!([sb.api_port(1)])
    );
}

/// `status --format json` says which engine the slot runs on and the host
/// its URLs use: the local one, then (the registry's record moved) the one
/// of `[engines.far]`, which the engine query goes to.
#[test]
fn status_json_names_the_slots_engine_and_host() {
    let sb = Sandbox::new();
    let file = sb.project_file();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}\n[engines.far]\ncontext = \"far\"\naddress = \"10.9.9.9\"\n"),
    )
    .unwrap();
    sb.run(&["claim"]).success();
    let status = |engine: &str, host: &str| {
        let run = sb.run(&["status", "--format", "json"]).success();
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            (&v["engine"], &v["host"]),
            (&engine.into(), &host.into()),
            "{v}"
        );
        assert_eq!(
            v["urls"]["api"],
            format!("http://{host}:{}", sb.api_port(1)),
            "{v}"
        );
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "pool",
                "slot",
                "profile",
                "project",
                "worktree",
                "claimed_at",
                "engine",
                "host",
                "status",
                "ports",
                "urls",
                "containers",
                "missing",
                "restart_to_apply",
                "pending_ports"
            ]),
            "exactly the documented fields"
        );
    };
    status("local", "127.0.0.1");
    let path = sb.ctx.registry_path();
    let mut reg = sb.ctx.registry();
    reg["slots"]["1"]["engine"] = "far".into();
    std::fs::write(&path, reg.to_string()).unwrap();
    sb.fake.clear();
    status("far", "10.9.9.9");
    assert!(
        sb.calls()
            .iter()
            .any(|c| c.windows(3).any(|w| w == ["--context", "far", "ps"])),
        "the engine query goes to `far`"
    );
}

#[test]
fn the_current_docker_context_sends_engine_queries_through_the_cli() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    sb.fake.clear();
    // Read-only commands here: were the context ignored, they would only read
    // the machine's engine, and the fake would see no call.
    let status = |mut cmd: Command| {
        cmd.env_remove("DOCKER_HOST");
        TestContext::run_cmd(cmd).success();
    };

    let mut cmd = sb.cmd(&["status"]);
    cmd.env("DOCKER_CONTEXT", "remote");
    status(cmd);
    assert_calls(&sb.calls(), &[sb.lines().ps(Some(1))]);

    // `docker context use remote` writes currentContext into config.json.
    let docker_dir = sb.ctx.home.join(".docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        r#"{"auths": {}, "currentContext": "remote"}"#,
    )
    .unwrap();
    status(sb.cmd(&["status"]));
    assert_calls(&sb.calls(), &[sb.lines().ps(Some(1))]);

    // ...or that of the folder `--config` names.
    std::fs::remove_file(docker_dir.join("config.json")).unwrap();
    let config = sb.ctx.root.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        r#"{"currentContext": "remote"}"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let mut cmd = sb.cmd(&["--config", config, "sandbox", "status"]);
    cmd.env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker");
    status(cmd);
    let l = sb.lines_with(sb.fake.docker.to_str().unwrap(), &["--config", config]);
    assert_calls(&sb.calls(), &[l.ps(Some(1))]);
}

/// Docker gives the `--context` flag precedence over DOCKER_HOST in the
/// environment (`--context`, then `-H`, then `$DOCKER_HOST`, then
/// `$DOCKER_CONTEXT`, then config.json's `currentContext`): the plugin's
/// engine queries follow the same context as its compose calls.
#[test]
fn the_context_flag_wins_over_docker_host_from_the_environment() {
    let sb = Sandbox::new();
    let mut cmd = sb.cmd(&["--context", "ctx", "sandbox", "up", "--no-wait"]);
    cmd.env(
        "DOCKER_HOST",
        format!("unix://{}/no-engine.sock", sb.ctx.root.display()),
    )
    .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker");
    TestContext::run_cmd(cmd).success();
    let l = sb.lines_with(sb.fake.docker.to_str().unwrap(), &["--context", "ctx"]);
    assert_calls(&sb.calls(), &fresh_up(&l, 1, UP));
}

/// The same precedence for a standalone compose: `--context ctx` becomes
/// DOCKER_CONTEXT=ctx, and an inherited DOCKER_HOST (which would win over it)
/// is taken out of compose's environment.
#[test]
fn a_standalone_compose_given_a_context_does_not_inherit_docker_host() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    let compose = sb.ctx.root.join("compose-bin/docker-compose");
    write_script(&compose);
    let mut cmd = sb.cmd(&["--context", "ctx", "sandbox", "down"]);
    cmd.env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker")
        .env("DOCKER_SANDBOX_COMPOSE", &compose);
    TestContext::run_cmd(cmd).success();
    let env = sb.fake.compose_env();
    assert_eq!(env.get("DOCKER_CONTEXT").map(String::as_str), Some("ctx"));
    assert_eq!(
        env.get("DOCKER_HOST"),
        None,
        "DOCKER_HOST would override the context"
    );
}

#[test]
fn a_port_something_else_holds_is_a_conflict() {
    let sb = Sandbox::new();
    let api = sb.api_port(1);
    let listener = std::net::TcpListener::bind(("127.0.0.1", api)).unwrap();

    // The lightest free slot skips slot 1, whose API port is taken...
    let run = sb.run(&["claim"]).success();
    assert!(
        run.stdout.starts_with("Claimed slot 2 (light)"),
        "{}",
        run.stdout
    );
    sb.run(&["release"]).success();
    // ...and asking for slot 1 says what holds it: exit code 3.
    let run = sb.run(&["claim", "--slot", "1"]).code(3);
    assert_eq!(
        run.stderr,
        format!(
            "error: port {api} of slot 1 is in use by something else: {api} (api)\n\
             hint: this may be a sandbox the registry does not know, or another program: \
             `ss -ltnp 'sport = :{api}'` or `lsof -i :{api}` shows its owner\n"
        )
    );
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null);

    // Held already, `up` refuses to start over a taken port.
    drop(listener);
    sb.run(&["claim", "--slot", "1"]).success();
    let listener = std::net::TcpListener::bind(("127.0.0.1", api)).unwrap();
    sb.fake.answer(
        "ps.jsonl",
        &[container(
            "z9",
            "other",
            "web",
            "running",
            "Up 1 hour",
            &format!("127.0.0.1:{api}->80/tcp"),
        )],
    );
    sb.fake.clear();
    let run = sb.run(&["up", "--no-wait"]).code(3);
    assert!(
        run.stderr.starts_with(&format!(
            "error: port {api} of slot 1 is in use by something else: {api} (api), \
             held by container `other-web-1` of compose project `other`\n"
        )),
        "{}",
        run.stderr
    );
    let l = sb.lines();
    assert_calls(&sb.calls(), &[l.ping(), l.ps(None)]);
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));

    // The slot's own container holding its port is no conflict.
    sb.fake.answer(
        "ps.jsonl",
        &[ours(
            &sb,
            container(
                "c1",
                "ktrdr-slot-1",
                "backend",
                "running",
                "Up 1 minute",
                &format!("127.0.0.1:{api}->8000/tcp"),
            ),
        )],
    );
    sb.run(&["up", "--no-wait"]).success();
    assert_eq!(sb.calls().last().unwrap(), &l.compose(1, UP));
    drop(listener);
}

#[test]
fn no_engine_is_a_clear_error_and_claims_nothing() {
    let sb = Sandbox::new();
    sb.fake.fail(
        "version",
        1,
        "Cannot connect to the Docker daemon at tcp://127.0.0.1:1. Is the docker daemon running?\n",
    );
    for args in [["up", "--no-wait"].as_slice(), &["claim"]] {
        let run = sb.run(args).code(1);
        assert!(
            run.stderr.starts_with(
                "error: cannot reach the Docker engine at the docker CLI's endpoint: \
                 Cannot connect to the Docker daemon at tcp://127.0.0.1:1. Is the docker daemon running?\n"
            ),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("hint: start Docker"), "{}", run.stderr);
        assert_calls(&sb.calls(), &[sb.lines().ping()]);
    }
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null);
    assert!(!sb.ctx.cwd.join(".env.sandbox").exists());
}

#[test]
fn a_lost_env_file_comes_back_as_it_was() {
    let sb = Sandbox::new();
    sb.run(&["claim"]).success();
    let path = sb.ctx.cwd.join(".env.sandbox");
    let before = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    sb.fake.clear();
    sb.run(&["logs"]).success();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    assert_eq!(mode(&path), 0o600);
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.compose_version(),
            l.compose(1, &["logs", "--no-color"]),
        ],
    );
    // Claiming again neither duplicates git's exclusion nor changes the file.
    sb.run(&["claim"]).success();
    sb.run(&["up", "--no-wait"]).success();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    let exclude = std::fs::read_to_string(sb.ctx.cwd.join(".git/info/exclude")).unwrap();
    assert_eq!(exclude.matches("/.env.sandbox").count(), 1, "{exclude}");
}

#[test]
fn a_linked_git_worktree_is_its_own_claim() {
    let sb = Sandbox::new();
    sb.ctx.git(
        &sb.ctx.cwd,
        &["commit", "-q", "--allow-empty", "-m", "init"],
    );
    let feat = sb.ctx.root.join("work--feat");
    sb.ctx.git(
        &sb.ctx.cwd,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "feat",
            feat.to_str().unwrap(),
        ],
    );
    let sub = feat.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();

    sb.run(&["claim"]).success();
    // From a folder inside the linked worktree: the claim is the worktree's.
    let run = sb.run_in(&sub, &["up", "--no-wait"]).success();
    assert!(
        run.stdout.starts_with("Slot 2 (light) started"),
        "{}",
        run.stdout
    );
    assert_eq!(sb.claimed_by(2), serde_json::json!(feat));
    let l = sb.lines();
    assert_eq!(
        sb.calls().last().unwrap(),
        &l.compose_in(2, &feat, UP),
        "the project folder is the worktree's top"
    );
    let env = env_file(&feat.join(".env.sandbox"));
    assert_eq!(env["INSTANCE_ID"], "work--feat");
    assert_eq!(env["SANDBOX_WORKTREE"], feat.display().to_string());
    // Ignored through the shared info/exclude: both worktrees are clean.
    for dir in [&sb.ctx.cwd, &feat] {
        let out = sb
            .ctx
            .command("git")
            .current_dir(dir)
            .args(["status", "--porcelain"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains(".env.sandbox"), "{}: {text}", dir.display());
    }
    let run = sb.run_in(&sub, &["status", "--format", "json"]).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["slot"], 2);
}

#[test]
fn up_reports_json_for_scripts() {
    let sb = Sandbox::new();
    let run = sb.run(&["up", "--no-wait", "--format", "json"]).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["slot"], 1);
    assert_eq!(v["profile"], "light");
    assert_eq!(v["project"], "ktrdr-slot-1");
    assert_eq!(v["worktree"], serde_json::json!(sb.ctx.cwd));
    assert_eq!(v["result"], "started-no-wait");
    assert_eq!(
        v["urls"]["api"],
        format!("http://127.0.0.1:{}", sb.api_port(1))
    );
    assert_eq!(v["checks"], serde_json::json!([]));
}

/// What another state folder of the same pool name started under slot 1's
/// project name: a container (`theirs`), a volume with its registry id and an
/// unlabelled network; and a container of this registry's (`mine`).
fn foreign_stack(sb: &Sandbox, theirs: bool, mine: bool) {
    let other = |mut item: serde_json::Value| {
        let labels = item["Labels"].as_str().unwrap().to_owned();
        item["Labels"] = format!("{labels},org.docker-sandbox.registry=bbbb").into();
        item
    };
    let mut ps = Vec::new();
    if theirs {
        let mut f1 = other(container(
            "f1",
            "ktrdr-slot-1",
            "db",
            "running",
            "Up 1 hour",
            "",
        ));
        f1["Labels"] = format!(
            "{},com.docker.compose.project.config_files=/elsewhere/state/slot-1/docker-compose.yml",
            f1["Labels"].as_str().unwrap()
        )
        .into();
        ps.push(f1);
    }
    if mine {
        ps.push(ours(
            sb,
            container("c1", "ktrdr-slot-1", "backend", "exited", "Exited (0)", ""),
        ));
    }
    sb.fake.answer("ps.jsonl", &ps);
    sb.fake.answer(
        "volumes.jsonl",
        &[other(volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1"))],
    );
    sb.fake.answer(
        "networks.jsonl",
        &[network("n1", "ktrdr-slot-1_default", "ktrdr-slot-1")],
    );
}

#[test]
fn a_slot_whose_project_another_registry_runs_is_neither_handed_out_nor_started() {
    let sb = Sandbox::new();
    sb.run(&["claim", "--slot", "2"]).success();
    foreign_stack(&sb, true, false);
    let wt = sb.worktree("other");
    sb.fake.clear();
    let run = sb.run_in(&wt, &["claim", "--slot", "1"]).code(1);
    let l = sb.lines();
    assert_calls(&sb.calls(), &[l.ping(), l.ps(None)]);
    assert!(
        run.stderr.starts_with(
            "error: slot 1's compose project `ktrdr-slot-1` is in use by another registry \
             (state folder `/elsewhere/state`): 1 container(s), \
             e.g. `ktrdr-slot-1-db-1`\nhint: compose would take those containers over"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(sb.claimed_by(1), serde_json::Value::Null);
    // A claim without --slot passes it over.
    sb.run_in(&wt, &["claim"]).success();
    assert_eq!(sb.claimed_by(3), serde_json::json!(wt));
    // `up` of a slot held already refuses to run compose on the name.
    sb.run_in(&wt, &["release"]).success();
    foreign_stack(&sb, false, false);
    sb.run_in(&wt, &["claim", "--slot", "1"]).success();
    foreign_stack(&sb, true, false);
    sb.fake.clear();
    let run = sb.run_in(&wt, &["up", "--no-wait"]).code(1);
    assert!(
        run.stderr.contains(
            "error: slot 1's compose project `ktrdr-slot-1` is in use by another registry"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !sb.calls().iter().any(|c| c.contains(&"compose".to_owned())),
        "{:?}",
        sb.calls()
    );
}

#[test]
fn another_registrys_resources_under_the_same_name_are_left_alone_and_reported() {
    let sb = Sandbox::new();
    sb.run(&["claim", "--slot", "2"]).success();
    // A claim of slot 1 clears only this registry's own there.
    foreign_stack(&sb, false, true);
    sb.fake.clear();
    let wt = sb.worktree("other");
    let run = sb.run_in(&wt, &["claim", "--slot", "1"]).success();
    let l = sb.lines();
    let survey = l.clear_empty(1);
    let mut expected = vec![l.ping(), l.ps(None)];
    expected.extend(survey.clone());
    expected.push(l.docker(&["rm", "-f", "-v", "c1"]));
    assert_calls(&sb.calls(), &expected);
    assert!(
        run.stderr.contains(
            "left alone: 1 volume and 1 network of `ktrdr-slot-1` that belong to another \
             registry (id bbbb) and no registry: they carry no docker sandbox labels\n\
             hint: docker sandbox removes only what this state folder started"
        ),
        "{}",
        run.stderr
    );

    // `release`: no `compose down` (it goes by the name alone), ours removed.
    foreign_stack(&sb, true, true);
    sb.fake.clear();
    let run = sb.run_in(&wt, &["release", "--format", "json"]).success();
    let mut expected = vec![l.ping()];
    expected.extend(survey.clone());
    expected.extend(survey.clone());
    expected.push(l.docker(&["rm", "-f", "-v", "c1"]));
    assert_calls(&sb.calls(), &expected);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json["removed"],
        serde_json::json!({"containers": 1, "volumes": 0, "networks": 0})
    );
    assert_eq!(
        json["left_alone"],
        serde_json::json!([
            {"kind": "container", "name": "ktrdr-slot-1-db-1", "registry": "bbbb",
             "state_dir": "/elsewhere/state",
             "config_files": ["/elsewhere/state/slot-1/docker-compose.yml"]},
            {"kind": "volume", "name": "ktrdr-slot-1_pgdata", "registry": "bbbb", "state_dir": null},
            {"kind": "network", "name": "ktrdr-slot-1_default", "registry": null, "state_dir": null},
        ])
    );
    assert_eq!(
        sb.claimed_by(1),
        serde_json::Value::Null,
        "the claim is freed"
    );

    // `gc` reports the foreign project and removes nothing of it.
    foreign_stack(&sb, true, false);
    sb.fake.clear();
    let run = sb.run(&["gc", "--format", "json"]).success();
    let mut expected = vec![l.ping(), l.ps(None), l.volume_ls(None), l.network_ls(None)];
    expected.extend(survey.clone());
    assert_calls(&sb.calls(), &expected);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["removed_projects"], serde_json::json!([]));
    assert_eq!(json["left_alone"][0]["project"], "ktrdr-slot-1");
    assert_eq!(
        json["left_alone"][0]["resources"].as_array().unwrap().len(),
        3
    );
    let run = sb.run(&["gc", "--dry-run"]).success();
    assert!(
        run.stdout.starts_with(
            "left alone: 1 container, 1 volume and 1 network of `ktrdr-slot-1` that belong to \
             another registry (state folder `/elsewhere/state`) and no registry"
        ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("Would remove"), "{}", run.stdout);
}

/// A pool with one `[[after_up]]` step in `backend`, whose compose model
/// (`config --services`) has a backend, its container running: an `up
/// --build` starts the stack (a plain `up` would find it up already).
fn after_up_sandbox() -> Sandbox {
    let sb = Sandbox::with_top(
        "gate = []\nafter_up = [{ service = \"backend\", run = [\"alembic\", \"upgrade\", \"head\"] }]\n",
    );
    sb.run(&["claim"]).success();
    std::fs::write(sb.fake.dir.join("compose-services"), "backend\ndb\n").unwrap();
    let mut backend = ours(
        &sb,
        container(
            "c1",
            "ktrdr-slot-1",
            "backend",
            "running",
            "Up 2 seconds",
            "",
        ),
    );
    backend["Mounts"] = serde_json::json!("ktrdr-slot-1_pgdata,0a1b2c3d");
    sb.fake.answer("ps.jsonl", &[backend]);
    // The slot's database volume was there before this `up`.
    sb.fake.answer(
        "volumes.jsonl",
        &[volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1")],
    );
    sb.fake.clear();
    sb
}

const UP_BUILD: &[&str] = &["up", "-d", "--remove-orphans", "--build"];
const MIGRATE: &[&str] = &["exec", "-T", "backend", "alembic", "upgrade", "head"];

#[test]
fn after_up_steps_run_in_their_service_after_compose_up_and_before_the_gate() {
    let sb = after_up_sandbox();
    let run = sb.run(&["up", "--build", "--format", "json"]).success();
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.model(1),
            l.compose(1, &["config", "--services"]),
            l.all_volumes(),
            l.all_networks(),
            l.compose(1, UP_BUILD),
            // The step waits for its service's container, then runs in it.
            l.ps(Some(1)),
            l.compose(1, MIGRATE),
            // The gate.
            l.ps(Some(1)),
        ],
    );
    assert!(
        run.stderr
            .contains("  ✓ after_up: `alembic upgrade head` in `backend` (exit 0 after "),
        "{}",
        run.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["result"], "started");
    assert_eq!(
        v["checks"][0]["check"],
        "after_up: `alembic upgrade head` in `backend`"
    );
    assert_eq!(v["checks"][0]["passed"], true);
    assert_eq!(
        v["checks"][1]["check"],
        "containers are running and healthy"
    );

    // `--no-wait` skips the gate, not the steps.
    let run = sb.run(&["up", "--build", "--no-wait"]).success();
    let calls = sb.calls();
    assert_eq!(calls.last(), Some(&l.compose(1, MIGRATE)), "{calls:?}");
    assert!(
        run.stderr
            .contains("Running slot 1's after_up steps (at most 120s):"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_up_of_a_stack_that_is_up_runs_no_step() {
    let sb = after_up_sandbox();
    // Every service of the model has its container: the stack is up.
    std::fs::write(sb.fake.dir.join("compose-services"), "backend\n").unwrap();
    sb.run(&["up"]).success();
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.compose(1, &["config", "--services"]),
            l.ps(Some(1)),
        ],
    );
    let run = sb.run(&["up"]).success();
    assert_calls(&sb.calls(), &[l.ping(), l.ps(None), l.ps(Some(1))]);
    assert!(!run.stderr.contains("after_up"), "{}", run.stderr);
}

#[test]
fn a_failed_step_is_a_failed_gate_that_shows_its_output_and_keeps_older_volumes() {
    let sb = after_up_sandbox();
    let noise: String = (1..=60).map(|i| format!("migrating {i}\n")).collect();
    sb.fake.fail(
        "compose-exec",
        3,
        &format!("{noise}alembic: Can't locate revision identified by 'abc'\n"),
    );
    let run = sb.run(&["up", "--build"]).code(2);
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.model(1),
            l.compose(1, &["config", "--services"]),
            l.all_volumes(),
            l.all_networks(),
            l.compose(1, UP_BUILD),
            l.ps(Some(1)),
            l.compose(1, MIGRATE),
            // Taken down as after a failed gate: no gate ran.
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.compose(1, DOWN),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.docker(&["rm", "-f", "c1"]),
            l.docker(&["volume", "rm", "-f", "0a1b2c3d"]),
        ],
    );
    for part in [
        "  ✗ after_up: `alembic upgrade head` in `backend`\n      → exited with exit status: 3\n",
        &format!("The command was: {}\n", l.compose(1, MIGRATE).join(" ")),
        "Its output (last 40 lines):\n    migrating 22\n",
        "    migrating 60\n    alembic: Can't locate revision identified by 'abc'\n",
        "Kept the volume(s) that existed before this `up`: `ktrdr-slot-1_pgdata`\n",
        "error: slot 1 did not become ready: after_up step 1 (`alembic upgrade head` in `backend`) \
         failed: exited with exit status: 3; the stack was taken down with the volumes this `up` \
         created; those that existed before were kept\n",
        "hint: the claim is kept: fix the cause above and run `docker sandbox up` again\n",
    ] {
        assert!(run.stderr.contains(part), "{part}\n---\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("migrating 21\n"), "{}", run.stderr);
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "stopped");

    let run = sb.run(&["up", "--build", "--format", "json"]).code(2);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["result"], "gate-failed");
    let step = &v["failed_step"];
    assert_eq!(step["number"], 1);
    assert_eq!(step["service"], "backend");
    assert_eq!(
        step["run"],
        serde_json::json!(["alembic", "upgrade", "head"])
    );
    assert_eq!(step["exit_code"], 3);
    assert_eq!(
        step["output"].as_array().unwrap().last().unwrap(),
        "alembic: Can't locate revision identified by 'abc'"
    );
    assert_eq!(v["checks"][0]["passed"], false);
}

#[test]
fn a_step_naming_a_service_the_stack_lacks_stops_up_before_it_starts_anything() {
    let sb = after_up_sandbox();
    std::fs::write(sb.fake.dir.join("compose-services"), "api\ndb\n").unwrap();
    let run = sb.run(&["up", "--build"]).code(1);
    let l = sb.lines();
    assert_calls(
        &sb.calls(),
        &[
            l.ping(),
            l.ps(None),
            l.compose_version(),
            l.model(1),
            l.compose(1, &["config", "--services"]),
        ],
    );
    let file = sb.slot_dir(1).join("docker-compose.yml");
    for part in [
        format!(
            "error: [[after_up]] number 1 of `{}` runs in service `backend`, which slot 1's \
             compose file `{}` does not have (it has `api`, `db`)\n",
            sb.project_file().display(),
            file.display()
        ),
        "nothing was started".to_owned(),
    ] {
        assert!(run.stderr.contains(&part), "{part}\n---\n{}", run.stderr);
    }
}

/// `up` interrupted while a step runs: the step is stopped and the stack
/// taken down, as during the gate.
#[test]
fn a_signal_during_a_step_takes_the_stack_down_and_keeps_the_claim() {
    let sb = after_up_sandbox();
    std::fs::write(sb.fake.dir.join("hang.compose-exec"), "").unwrap();
    let mut child = sb
        .cmd(&["up", "--build", "--timeout", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let l = sb.lines();
    let migrate = l.compose(1, MIGRATE);
    while !sb.fake.calls().contains(&migrate) {
        assert!(child.try_wait().unwrap().is_none(), "up ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(
            "error: `up` of slot 1 was stopped by SIGTERM; the stack was taken down with the \
             volumes this `up` created; those that existed before were kept\n"
        ),
        "{stderr}"
    );
    let calls = sb.calls();
    let at = calls.iter().position(|c| *c == migrate).unwrap();
    assert_calls(
        &calls[at + 1..],
        &[
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.compose(1, DOWN),
            l.ps(Some(1)),
            l.volume_ls(Some(1)),
            l.network_ls(Some(1)),
            l.docker(&["rm", "-f", "c1"]),
            l.docker(&["volume", "rm", "-f", "0a1b2c3d"]),
        ],
    );
    assert_eq!(sb.claimed_by(1), serde_json::json!(sb.ctx.cwd));
}

/// A template pool whose one service binds `./code` and `./missing` from the
/// worktree, and a shared folder (which `up` makes).
const BINDS_COMPOSE: &str = "services:\n  app:\n    image: docker-sandbox-test/busybox:1\n    \
    volumes:\n      - ./code:/code:ro\n      - ./missing:/x\n      - {{shared_dir}}/data:/data\n";
const BINDS_ENV: &str = "SLOT_ID={{slot}}\nCOMPOSE_PROJECT_NAME={{project}}\n";

/// Which real compose reads the slot's model for the fake.
#[derive(Debug, Clone, Copy)]
enum RealCompose {
    V2,
    Legacy,
}

/// `up` of the bind pool with a real compose reading the model (no engine:
/// `config` reads files only), the fake docker for everything else.
fn up_with_real_model(sb: &Sandbox, compose: RealCompose, args: &[&str]) -> Run {
    let mut cmd = sb.cmd(args);
    match compose {
        RealCompose::V2 => {
            cmd.env("FAKE_REAL_COMPOSE", real_compose_v2());
        }
        RealCompose::Legacy => {
            let real = which_legacy_compose();
            let fake = sb.ctx.root.join("legacy/docker-compose");
            write_script(&fake);
            std::fs::write(sb.fake.dir.join("compose-version"), "1.29.2\n").unwrap();
            cmd.env("FAKE_REAL_COMPOSE", real)
                .env("DOCKER_SANDBOX_COMPOSE", &fake);
        }
    }
    TestContext::run_cmd(cmd)
}

/// The legacy `docker-compose` 1.29 on PATH (not the test's own `bin/`).
fn which_legacy_compose() -> PathBuf {
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("docker-compose"))
        .find(|p| p.is_file())
        .expect("docker-compose 1.29 is on PATH; run `bash tests/engine/setup.sh`");
    let out = Command::new(&real)
        .args(["version", "--short"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("1."),
        "`{}` is not the legacy 1.29",
        real.display()
    );
    real
}

fn binds_refused_before_compose_runs(compose: RealCompose) {
    let ctx = TestContext::new();
    ctx.git_init();
    let tpl = ctx.root.join("tpl");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(tpl.join("docker-compose.yml.hbs"), BINDS_COMPOSE).unwrap();
    std::fs::write(tpl.join("env.sandbox.hbs"), BINDS_ENV).unwrap();
    let base = port_block();
    ctx.write_project_file(&format!(
        "gate = []\n[pool]\ntemplates = \"{}\"\n[shared]\ndir = \"{}\"\n{}",
        tpl.display(),
        ctx.root.join("shared").display(),
        ports_toml(base)
    ));
    let fake = FakeDocker::install(&ctx);
    let sb = Sandbox { ctx, fake, base };
    sb.run(&["provision"]).success();
    let cwd = sb.ctx.cwd.clone();
    std::fs::create_dir(cwd.join("code")).unwrap();
    sb.fake.clear();

    let run = up_with_real_model(&sb, compose, &["up", "--no-wait"]).code(1);
    for part in [
        "error: slot 1's stack has a bind mount whose source does not exist (compose would \
         create it as an empty folder owned by root):\n  service `app` mounts `./missing` at `/x`\n",
        "; nothing was started\n",
    ] {
        assert!(
            run.stderr.contains(part),
            "{compose:?}: {part}\n---\n{}",
            run.stderr
        );
    }
    let calls = sb.calls();
    assert!(
        !calls.iter().any(|c| c.iter().any(|a| a == "up")),
        "{compose:?}: compose up never ran: {calls:?}"
    );
    assert!(
        !cwd.join("missing").exists(),
        "{compose:?}: nothing made `./missing`"
    );
    assert!(
        !sb.ctx.root.join("shared").exists(),
        "{compose:?}: nothing was made at all"
    );
    let run = up_with_real_model(&sb, compose, &["up", "--no-wait", "--format", "json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["exit_code"], 1);
    assert_eq!(
        v["missing_binds"],
        serde_json::json!([{"service": "app", "source": cwd.join("missing"), "target": "/x"}]),
        "{compose:?}"
    );

    // With the folder there, the check passes and compose starts the stack.
    std::fs::create_dir(cwd.join("missing")).unwrap();
    sb.fake.clear();
    up_with_real_model(&sb, compose, &["up", "--no-wait"]).success();
    let calls = sb.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with(&UP.iter().map(|a| a.to_string()).collect::<Vec<_>>())),
        "{compose:?}: {calls:?}"
    );
    assert!(sb.ctx.root.join("shared/data").is_dir());
}

#[test]
fn a_missing_bind_source_stops_up_before_compose_runs_with_compose_v2() {
    binds_refused_before_compose_runs(RealCompose::V2);
}

#[test]
fn a_missing_bind_source_stops_up_before_compose_runs_with_compose_1_29() {
    binds_refused_before_compose_runs(RealCompose::Legacy);
}

/// A network of the fake engine: listed by `network ls`, shown by `network
/// inspect` with its subnet and labels.
fn engine_networks(sb: &Sandbox, networks: &[(&str, &str, &str, Option<&str>)]) {
    let listed: Vec<serde_json::Value> = networks
        .iter()
        .map(|(id, name, _, _)| serde_json::json!({"ID": id, "Name": name, "Labels": ""}))
        .collect();
    sb.fake.answer("networks.jsonl", &listed);
    let inspected: Vec<serde_json::Value> = networks
        .iter()
        .map(|(id, name, subnet, registry)| {
            let labels = match registry {
                Some(r) => serde_json::json!({"org.docker-sandbox.registry": r}),
                None => serde_json::json!({}),
            };
            serde_json::json!({"Id": id, "Name": name, "IPAM": {"Config": [{"Subnet": subnet}]}, "Labels": labels})
        })
        .collect();
    std::fs::write(
        sb.fake.dir.join("network-inspect.json"),
        serde_json::Value::Array(inspected).to_string(),
    )
    .unwrap();
}

#[test]
fn each_slots_networks_get_a_subnet_of_the_pools_own_range() {
    let sb = Sandbox::new();
    sb.run(&["up", "--no-wait"]).success();
    // The embedded template's one network, `default`, in slot 1's block.
    let text = std::fs::read_to_string(sb.slot_dir(1).join("networks.yml")).unwrap();
    let compose = std::fs::read_to_string(sb.slot_dir(1).join("docker-compose.yml")).unwrap();
    assert_eq!(
        text.lines().next().unwrap().split_whitespace().nth(3),
        compose.lines().next().unwrap().split_whitespace().nth(3),
        "it carries the slot's fingerprint: {text}"
    );
    let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
    let v = networks_file_json(&body);
    assert_eq!(
        v["networks"]["default"]["ipam"]["config"][0]["subnet"],
        "10.213.0.0/26"
    );
    // Compose 1.29 replaces a network an extra file names: its labels come along.
    let id = sb.ctx.registry()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        v["networks"]["default"]["labels"]["org.docker-sandbox.registry"],
        id.as_str()
    );
    let six = std::fs::read_to_string(sb.slot_dir(6).join("networks.yml")).unwrap();
    assert!(six.contains(r#""subnet":"10.213.10.0/26""#), "{six}");

    // Another range in the project file renders every slot's file again.
    let file = sb.project_file();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}\n[pool]\nsubnets = \"10.77.0.0/16\"\n"),
    )
    .unwrap();
    let run = sb.run(&["provision"]).success();
    has(&run.stdout, "Re-rendered 6 slot(s)");
    let six = std::fs::read_to_string(sb.slot_dir(6).join("networks.yml")).unwrap();
    assert!(six.contains(r#""subnet":"10.77.10.0/26""#), "{six}");

    // `engine`: no networks file, compose runs the slot's file alone.
    std::fs::write(&file, format!("{text}\n[pool]\nsubnets = \"engine\"\n")).unwrap();
    sb.run(&["provision"]).success();
    assert!(!sb.slot_dir(1).join("networks.yml").exists());
    sb.calls();
    sb.run(&["up", "--no-wait"]).success();
    let up = sb.calls().pop().unwrap();
    assert!(
        up.iter().all(|a| !a.ends_with("networks.yml"))
            && up.ends_with(&["--remove-orphans".to_owned()]),
        "{up:?}"
    );
}

#[test]
fn subnets_another_network_or_a_route_holds_are_refused_before_compose_runs() {
    let sb = Sandbox::new();
    let theirs = "bbbbbbbbbbbb00000000000000000000";
    engine_networks(&sb, &[(theirs, "vpn", "10.213.0.0/24", None)]);
    let run = sb.run(&["up", "--no-wait"]).code(1);
    has(
        &run.stderr,
        "error: the subnets of slot 1 of `[pool] subnets` (`10.213.0.0/16`) overlap network `vpn` (10.213.0.0/24)",
    );
    has(&run.stderr, "set `[pool] subnets` in `");
    assert!(
        sb.calls().iter().all(|c| !c.contains(&"up".to_owned())),
        "compose never ran"
    );
    // `provision` refuses the range too.
    let run = sb.run(&["provision"]).code(1);
    has(
        &run.stderr,
        "the slots' blocks of `[pool] subnets` (`10.213.0.0/16`) overlap network `vpn`",
    );

    // A network of this registry's own is not a conflict, nor its bridge's route.
    let ours_id = "aaaaaaaaaaaa00000000000000000000";
    let id = sb.ctx.registry()["id"].as_str().unwrap().to_owned();
    engine_networks(
        &sb,
        &[(ours_id, "ktrdr-slot-1_default", "10.213.0.0/26", Some(&id))],
    );
    let routes = sb.ctx.root.join("route");
    std::fs::write(
        &routes,
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
         br-aaaaaaaaaaaa\t0000D50A\t00000000\t0001\t0\t0\t0\t00C0FFFF\t0\t0\t0\n",
    )
    .unwrap();
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    cmd.env("DOCKER_SANDBOX_ROUTES", &routes);
    TestContext::run_cmd(cmd).success();
    sb.run(&["down"]).success();

    // A route of the host into the range is.
    std::fs::write(
        &routes,
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         wg0\t0000D50A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
    )
    .unwrap();
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    cmd.env("DOCKER_SANDBOX_ROUTES", &routes);
    let run = TestContext::run_cmd(cmd).code(1);
    has(&run.stderr, "overlap route 10.213.0.0/16 on `wg0`");
}

#[test]
fn a_bad_or_too_small_range_is_refused_and_changes_nothing() {
    for (range, says) in [
        (
            "10.213.0.0",
            "[pool] subnets: `10.213.0.0` is not a range like `10.213.0.0/16`",
        ),
        (
            "10.213.1.0/16",
            "has host bits set: the range starting there is `10.213.0.0/16`",
        ),
        ("10.213.0.0/24", "is smaller than one slot's block (a /23)"),
        (
            "10.213.0.0/22",
            "[pool] subnets: `10.213.0.0/22` holds 2 slot block(s) of a /23, but the pool has slot 6: use a /20 or larger",
        ),
    ] {
        let ctx = TestContext::new();
        ctx.git_init();
        ctx.write_project_file(&format!("[pool]\nsubnets = \"{range}\"\n"));
        let run = ctx.run(&["provision"]).code(1);
        has(&run.stderr, says);
        has(&run.stderr, "invalid project file");
        assert!(!ctx.state.exists(), "nothing written for `{range}`");
    }
}

#[test]
fn a_slot_with_more_networks_than_its_block_holds_is_refused() {
    let ctx = TestContext::new();
    ctx.git_init();
    let dir = ctx.root.join("nine");
    std::fs::create_dir_all(&dir).unwrap();
    let nets: String = (1..=9).map(|i| format!("  n{i}: {{}}\n")).collect();
    std::fs::write(
        dir.join("docker-compose.yml.hbs"),
        format!("services:\n  a:\n    image: x\nnetworks:\n{nets}"),
    )
    .unwrap();
    std::fs::write(dir.join("env.sandbox.hbs"), "SLOT_ID={{slot}}\n").unwrap();
    ctx.write_project_file(&format!(
        "gate = []\n[pool]\ntemplates = \"{}\"\n[slots]\n1 = \"light\"\n3 = \"light\"\n[profiles]\nlight = {{}}\n[ports]\napi = [{}, 1]\n",
        dir.display(),
        port_block()
    ));
    let run = ctx.run(&["provision"]).code(1);
    has(
        &run.stderr,
        "slot 1 has 10 networks (default, n1, n2, n3, n4, n5, n6, n7, n8, n9), but its block `10.213.0.0/23` of `[pool] subnets` holds 8 (a /26 each)",
    );
    assert!(!ctx.state.join("slot-1").exists());
}

fn has(text: &str, needle: &str) {
    assert!(text.contains(needle), "`{needle}` is not in:\n{text}");
}

/// Compose discovery is kept between runs while the programs that answered
/// are the same: a second `up` asks nothing, a changed docker CLI (or a
/// different `DOCKER_SANDBOX_COMPOSE`) is asked again.
#[test]
fn compose_discovery_is_kept_until_the_programs_change() {
    let sb = Sandbox::new();
    let cache = sb.ctx.root.join("cache");
    let up = |extra: &[(&str, &str)]| {
        let mut cmd = sb.cmd(&["up", "--no-wait"]);
        cmd.env_remove("DOCKER_SANDBOX_COMPOSE_CACHE")
            .env("XDG_CACHE_HOME", &cache);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        TestContext::run_cmd(cmd).success();
        let l = sb.lines();
        sb.calls().contains(&l.compose_version())
    };
    assert!(up(&[]), "the first run asks compose");
    let kept = std::fs::read_to_string(cache.join("docker-sandbox/compose.json")).unwrap();
    assert!(kept.contains("\"version\": \"2.29.7\""), "{kept}");
    assert!(!up(&[]), "the second run uses what was found");
    // A docker CLI that changed, as an upgrade changes it.
    let fake = std::fs::read_to_string(&sb.fake.docker).unwrap();
    std::fs::write(&sb.fake.docker, format!("{fake}\n# upgraded\n")).unwrap();
    assert!(up(&[]), "a changed docker CLI is asked again");
    assert!(!up(&[]));
    assert!(up(&[("DOCKER_SANDBOX_COMPOSE", "plugin")]));
    // Off: asked every time.
    let mut cmd = sb.cmd(&["up", "--no-wait"]);
    cmd.env("DOCKER_SANDBOX_COMPOSE_CACHE", "0")
        .env("XDG_CACHE_HOME", &cache);
    TestContext::run_cmd(cmd).success();
    assert!(sb.calls().contains(&sb.lines().compose_version()));
}
