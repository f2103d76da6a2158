//! A worktree moved with `git worktree move` keeps its slot: its env file
//! names the slot and the old path, git names the new one. The claim follows
//! the worktree, the env file is rewritten, and nothing of the slot's stack
//! or volumes is touched; `slots` does not call it orphaned and `gc` leaves it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake_docker::*;
use crate::support::*;

/// The pool's ports, in a block no other test binds: named ports at
/// 6001..6046, OTLP at 6070..6121, workers at 6140..6197.
const PORTS: &str = "[ports]\napi = [6000, 1]\ndb = [6010, 1]\ngrafana = [6020, 1]\n\
    jaeger_ui = [6030, 1]\nprometheus = [6040, 1]\njaeger_otlp_grpc = [6060, 10]\n\
    jaeger_otlp_http = [6061, 10]\nworkers = [6130, 10]\n";

/// A provisioned pool in a repository (the context's cwd), a fake docker, and
/// a linked worktree `wt-a` that holds slot 1.
struct Moved {
    ctx: TestContext,
    fake: FakeDocker,
    a: PathBuf,
}

impl Moved {
    fn new() -> Moved {
        let ctx = TestContext::new();
        ctx.git_init();
        ctx.write_project_file(PORTS);
        ctx.git(&ctx.cwd, &["add", "docker-sandbox.toml"]);
        ctx.git(&ctx.cwd, &["commit", "-q", "-m", "pool"]);
        let fake = FakeDocker::install(&ctx);
        let a = ctx.root.join("wt-a");
        ctx.git(
            &ctx.cwd,
            &["worktree", "add", "-q", a.to_str().unwrap(), "-b", "a"],
        );
        let m = Moved { ctx, fake, a };
        m.run(&m.ctx.cwd, &["provision"]).success();
        m.run(&m.a, &["claim"]).success();
        // A database volume the slot's stack made.
        m.fake.answer(
            "volumes.jsonl",
            &[volume("ktrdr-slot-1_pgdata", "ktrdr-slot-1")],
        );
        m.fake.clear();
        m
    }

    fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.ctx.cmd();
        self.fake.apply(&mut cmd);
        cmd.current_dir(dir)
            .env("DOCKER_HOST", "ssh://fake-engine")
            .args(args);
        cmd
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd(dir, args))
    }

    /// `git worktree move wt-a wt-b`.
    fn move_to(&self, name: &str) -> PathBuf {
        let to = self.ctx.root.join(name);
        self.ctx.git(
            &self.ctx.cwd,
            &[
                "worktree",
                "move",
                self.a.to_str().unwrap(),
                to.to_str().unwrap(),
            ],
        );
        to
    }

    fn slot(&self, id: u32) -> serde_json::Value {
        self.ctx.registry()["slots"][id.to_string()].clone()
    }

    /// Calls that remove something from the engine.
    fn removals(&self) -> Vec<Vec<String>> {
        self.fake
            .calls()
            .into_iter()
            .filter(|c| c.iter().any(|a| a == "rm" || a == "down" || a == "prune"))
            .collect()
    }
}

#[test]
fn a_moved_worktree_keeps_its_slot_and_its_volumes() {
    let m = Moved::new();
    let claimed_at = m.slot(1)["claimed_at"].clone();
    let b = m.move_to("wt-b");

    let run = m.run(&b, &["claim"]).success();
    assert!(
        run.stderr.contains(&format!(
            "Slot 1 moved with its worktree from `{}` to `{}`; its stack and volumes are kept",
            m.a.display(),
            b.display()
        )),
        "{}",
        run.stderr
    );
    // Nothing removed, nothing started: the claim just moved.
    assert_eq!(m.removals(), Vec::<Vec<String>>::new());
    assert!(
        !m.fake
            .calls()
            .iter()
            .any(|c| c.iter().any(|a| a == "compose")),
        "{:?}",
        m.fake.calls()
    );
    let slot = m.slot(1);
    assert_eq!(slot["claimed_by"], serde_json::json!(b));
    assert_eq!(slot["claimed_at"], claimed_at);
    assert_eq!(m.slot(2)["claimed_by"], serde_json::Value::Null);
    let env = env_file(&b.join(".env.sandbox"));
    assert_eq!(env["SANDBOX_WORKTREE"], b.display().to_string());
    assert_eq!(env["INSTANCE_ID"], "wt-b");
    assert_eq!(env["SLOT_ID"], "1");
    assert_eq!(mode(&b.join(".env.sandbox")), 0o600);

    // Said once: the next claim is an ordinary held one.
    let again = m.run(&b, &["claim"]).success();
    assert!(!again.stderr.contains("moved"), "{}", again.stderr);

    // Not an orphan any more, and `gc` leaves it and its volume alone.
    let slots = m.run(&m.ctx.cwd, &["slots", "--format", "json"]).success();
    let v: serde_json::Value = serde_json::from_str(&slots.stdout).unwrap();
    let one = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slot"] == 1)
        .unwrap()
        .clone();
    assert_eq!(one["orphaned"], false, "{one:#}");
    assert_eq!(one["claimed_by"], serde_json::json!(b), "{one:#}");
    m.fake.clear();
    m.run(&m.ctx.cwd, &["gc"]).success();
    assert_eq!(m.removals(), Vec::<Vec<String>>::new());
    assert_eq!(m.slot(1)["claimed_by"], serde_json::json!(b));
}

#[test]
fn down_and_status_in_a_moved_worktree_find_its_slot() {
    let m = Moved::new();
    let b = m.move_to("wt-b");
    let run = m.run(&b, &["down"]).success();
    assert!(
        run.stderr.contains("Slot 1 moved with its worktree"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.starts_with("Stopped slot 1;"), "{}", run.stdout);
    assert_eq!(m.slot(1)["claimed_by"], serde_json::json!(b));
    let env = env_file(&b.join(".env.sandbox"));
    assert_eq!(env["SANDBOX_WORKTREE"], b.display().to_string());
    // The compose call ran from the new path, with the rewritten env file.
    let calls = m.fake.calls();
    let down = calls
        .iter()
        .find(|c| c.iter().any(|a| a == "down"))
        .unwrap_or_else(|| panic!("no compose down in {calls:?}"));
    assert!(
        !down.iter().any(|a| a == "-v" || a == "--volumes"),
        "{down:?}"
    );
    assert!(
        down.contains(&b.join(".env.sandbox").display().to_string()),
        "{down:?}"
    );
}

#[test]
fn a_copied_worktree_does_not_take_the_claim() {
    let m = Moved::new();
    // A copy names the old path in its env file, but that path still exists.
    let copy = m.ctx.root.join("wt-copy");
    let cp = Command::new("cp")
        .args(["-a", m.a.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    let run = m.run(&copy, &["claim"]).success();
    assert!(!run.stderr.contains("moved"), "{}", run.stderr);
    assert_eq!(m.slot(1)["claimed_by"], serde_json::json!(m.a));
    assert_eq!(m.slot(2)["claimed_by"], serde_json::json!(copy));
}

#[test]
fn an_env_file_naming_another_slot_does_not_move_a_claim() {
    let m = Moved::new();
    let b = m.move_to("wt-b");
    // Edited by hand to name slot 2: it no longer matches slot 1's claim.
    let path = b.join(".env.sandbox");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("SLOT_ID=1\n", "SLOT_ID=2\n");
    std::fs::write(&path, text).unwrap();
    let run = m.run(&b, &["claim"]).success();
    assert!(!run.stderr.contains("moved"), "{}", run.stderr);
    assert_eq!(m.slot(1)["claimed_by"], serde_json::json!(m.a));
    assert_eq!(m.slot(2)["claimed_by"], serde_json::json!(b));
}
