//! The worktree workflow as people use it: `create`, `init`, `destroy`,
//! `list`, `env`, `run`, `completion`, `init-shared` and `doctor`, against a
//! real git repository and the fake engine (no Docker needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake_docker::FakeDocker;
use crate::fake_engine::FakeEngine;
use crate::support::*;

/// The ports every test here uses (api at +1..+6, db +11..+16, ..., workers
/// +70..+127; a templated pool's `web` at +201..+206). Nothing in these tests
/// listens on them, so tests can share the block, which keeps the snapshots
/// stable. It lies above Linux's ephemeral range (up to 60999) and above the
/// blocks `agents::project_file` hands out today (61000 up to about 64000, 300
/// ports a call; that counter cannot give one to each test here).
const BLOCK: u32 = 64_500;
/// A block of its own for the one test that holds a port of it.
const BUSY_BLOCK: u32 = 65_100;

/// The default pool with its ports moved to `b` and up, so the fixed ports
/// make the output snapshots stable.
fn pool_toml(b: u32) -> String {
    format!(
        "[ports]\napi = [{b}, 1]\ndb = [{}, 1]\ngrafana = [{}, 1]\njaeger_ui = [{}, 1]\n\
         prometheus = [{}, 1]\njaeger_otlp_grpc = [{}, 1]\njaeger_otlp_http = [{}, 1]\n\
         workers = [{}, 10]\n",
        b + 10,
        b + 20,
        b + 30,
        b + 40,
        b + 50,
        b + 60,
        b + 60,
    )
}

/// Makes `dir` a repository whose one commit holds the project file (and
/// `files`), so its linked worktrees see the same pool.
fn repo_at(ctx: &TestContext, dir: &Path, project: &str, files: &[(&str, &str)]) {
    init_at(ctx, dir, &[], project, files);
}

/// `repo_at`, with more arguments for `git init`.
fn init_at(ctx: &TestContext, dir: &Path, init: &[&str], project: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec!["init", "-q", "-b", "main"];
    args.extend_from_slice(init);
    ctx.git(dir, &args);
    std::fs::write(dir.join("docker-sandbox.toml"), project).unwrap();
    for (path, text) in files {
        write(&dir.join(path), text);
    }
    ctx.git(dir, &["add", "-A"]);
    ctx.git(dir, &["commit", "-qm", "init"]);
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Every file below `dir` outside `.git` folders: what the user sees. Git's
/// own files are left out because `git status` may rewrite an index; tests
/// check git's state through git.
fn user_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| !p.components().any(|c| c.as_os_str() == ".git"))
        .collect()
}

/// A provisioned pool, the context's cwd (`work`) a repository with one
/// commit, and a fake engine.
struct Repo {
    ctx: TestContext,
    engine: FakeEngine,
}

impl Repo {
    fn new() -> Repo {
        Repo::with_project(&pool_toml(BLOCK))
    }

    fn with_project(project: &str) -> Repo {
        Repo::with_files(project, &[])
    }

    fn with_files(project: &str, files: &[(&str, &str)]) -> Repo {
        let ctx = TestContext::new();
        repo_at(&ctx, &ctx.cwd, project, files);
        Repo::provisioned(ctx)
    }

    /// Like `new`, but the repository lives in `<root>/git/repo.git`, outside
    /// the checkout (`git init --separate-git-dir`).
    fn with_separate_git_dir() -> Repo {
        let ctx = TestContext::new();
        let gitdir = ctx.root.join("git/repo.git");
        std::fs::create_dir_all(gitdir.parent().unwrap()).unwrap();
        let init = ["--separate-git-dir", gitdir.to_str().unwrap()];
        init_at(&ctx, &ctx.cwd, &init, &pool_toml(BLOCK), &[]);
        assert!(ctx.cwd.join(".git").is_file());
        Repo::provisioned(ctx)
    }

    fn provisioned(ctx: TestContext) -> Repo {
        ctx.run(&["provision"]).success();
        let engine = FakeEngine::start(&ctx.root);
        Repo { ctx, engine }
    }

    /// The plugin, run in `dir` with the fake engine.
    fn cmd_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.ctx.cmd();
        cmd.current_dir(dir)
            .env("DOCKER_HOST", self.engine.host())
            .env_remove("DOCKER_SANDBOX_COMPOSE")
            .args(args);
        cmd
    }

    fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd_in(dir, args))
    }

    /// The plugin, run in the main checkout.
    fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.ctx.cwd, args)
    }

    /// Where `create NAME` puts its worktree: beside the main checkout.
    fn wt(&self, name: &str) -> PathBuf {
        self.ctx.root.join(format!("work--{name}"))
    }

    /// `create NAME` from the main checkout; its folder.
    fn create(&self, name: &str, extra: &[&str]) -> PathBuf {
        let mut args = vec!["create", name];
        args.extend_from_slice(extra);
        self.run(&args).success();
        self.wt(name)
    }

    /// The worktree holding `slot`, from the registry.
    fn holder(&self, slot: u32) -> Option<PathBuf> {
        self.ctx.registry()["slots"][slot.to_string()]["claimed_by"]
            .as_str()
            .map(PathBuf::from)
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        self.ctx.git(dir, args)
    }

    /// The paths `git worktree list` reports.
    fn git_worktrees(&self) -> Vec<PathBuf> {
        self.git(&self.ctx.cwd, &["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree "))
            .map(PathBuf::from)
            .collect()
    }
}

/// Puts the plugin binary at `path` (a symlink: it runs under that name, and
/// no copy is being written while another thread forks, which could make
/// exec fail with "text file busy").
fn install_bin(path: &Path) {
    std::os::unix::fs::symlink(BIN, path).unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

// ---------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------

#[test]
fn create_makes_a_linked_worktree_with_its_own_claim() {
    let r = Repo::new();
    let run = r.run(&["create", "feat"]).success();
    let wt = r.wt("feat");
    insta::assert_snapshot!("create_table", r.ctx.redact(&run.stdout));
    assert_eq!(
        r.ctx.redact(&run.stderr),
        "Next: cd [ROOT]/work--feat && docker sandbox up\n"
    );

    // A linked worktree (`.git` is a file) on a new branch `feat` at HEAD.
    assert!(wt.join(".git").is_file(), "not a linked worktree");
    assert_eq!(r.git_worktrees(), [r.ctx.cwd.clone(), wt.clone()]);
    assert_eq!(
        r.git(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "feat"
    );
    assert_eq!(
        r.git(&wt, &["rev-parse", "HEAD"]),
        r.git(&r.ctx.cwd, &["rev-parse", "main"])
    );

    // The lightest slot, 1, is now the worktree's.
    assert_eq!(r.holder(1), Some(wt.clone()));
    for slot in 2..=6 {
        assert_eq!(r.holder(slot), None, "slot {slot}");
    }

    // Its env file: private, the slot's values and the claim's identity.
    let env_path = wt.join(".env.sandbox");
    assert_eq!(mode(&env_path), 0o600);
    let env = env_file(&env_path);
    assert_eq!(env["INSTANCE_ID"], "work--feat");
    assert_eq!(env["SANDBOX_WORKTREE"], wt.display().to_string());
    assert_eq!(env["SLOT_ID"], "1");
    assert_eq!(env["KTRDR_API_PORT"], (BLOCK + 1).to_string());
    assert_eq!(env["COMPOSE_PROJECT_NAME"], "ktrdr-slot-1");
    assert_eq!(env["SANDBOX_VERSION"], env!("CARGO_PKG_VERSION"));
    let created = chrono::DateTime::parse_from_rfc3339(&env["CREATED_AT"])
        .unwrap_or_else(|e| panic!("CREATED_AT `{}`: {e}", env["CREATED_AT"]));
    let claimed_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(r.ctx.registry()["slots"]["1"]["claimed_at"].clone()).unwrap();
    assert_eq!(created.timestamp(), claimed_at.timestamp());

    // Git ignores it: the new worktree is clean.
    assert_eq!(r.git(&wt, &["status", "--porcelain"]), "");
    r.git(&wt, &["check-ignore", "-q", ".env.sandbox"]);
    assert_eq!(r.git(&r.ctx.cwd, &["status", "--porcelain"]), "");
}

#[test]
fn create_checks_out_an_existing_branch() {
    let r = Repo::new();
    let cwd = &r.ctx.cwd;
    r.git(cwd, &["checkout", "-q", "-b", "existing"]);
    r.git(cwd, &["commit", "-q", "--allow-empty", "-m", "on existing"]);
    r.git(cwd, &["checkout", "-q", "main"]);
    let tip = r.git(cwd, &["rev-parse", "existing"]);
    let branches = r.git(cwd, &["branch", "--list"]);

    let run = r
        .run(&["create", "ex", "--branch", "existing", "--format", "json"])
        .success();
    let v = json(&run.stdout);
    let wt = r.wt("ex");
    assert_eq!(v["worktree"], wt.display().to_string());
    assert_eq!(v["branch"], "existing");
    assert_eq!(v["new_branch"], false);
    assert_eq!(v["claim"]["slot"], 1);
    assert_eq!(run.stderr, "", "JSON output has no notes");
    assert_eq!(r.git(&wt, &["rev-parse", "HEAD"]), tip);
    assert_eq!(
        r.git(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "existing"
    );
    assert_eq!(
        r.git(cwd, &["branch", "--list"]).replace(['*', '+'], " "),
        branches.replace(['*', '+'], " "),
        "no branch is created"
    );
}

#[test]
fn create_with_a_profile_or_a_slot() {
    let r = Repo::new();
    let run = r
        .run(&["create", "big", "--profile", "heavy", "--format", "json"])
        .success();
    let wt = r.wt("big");
    let v = json(&run.stdout);
    assert_eq!(v["worktree"], wt.display().to_string());
    assert_eq!(v["branch"], "big");
    assert_eq!(v["new_branch"], true);
    let claim = &v["claim"];
    assert_eq!(claim["slot"], 6);
    assert_eq!(claim["profile"], "heavy");
    assert_eq!(claim["project"], "ktrdr-slot-6");
    assert_eq!(claim["fresh"], true);
    assert_eq!(claim["worktree"], wt.display().to_string());
    assert_eq!(
        claim["env_file"],
        wt.join(".env.sandbox").display().to_string()
    );
    assert_eq!(claim["ports"]["api"], BLOCK + 6);
    assert_eq!(claim["ports"]["db"], BLOCK + 16);
    // A heavy slot has 4 + 4 workers.
    assert_eq!(claim["ports"]["worker_8"], BLOCK + 60 + 60 + 7);
    assert_eq!(r.holder(6), Some(wt.clone()));
    assert_eq!(env_file(&wt.join(".env.sandbox"))["SLOT_ID"], "6");

    let run = r.run(&["create", "three", "--slot", "3"]).success();
    assert!(
        run.stdout.contains(&format!(
            "Claimed slot 3 (light) for `{}`",
            r.wt("three").display()
        )),
        "{}",
        run.stdout
    );
    assert_eq!(r.holder(3), Some(r.wt("three")));
    assert_eq!(r.holder(1), None, "the lightest slot was not taken");
}

#[test]
fn create_of_an_existing_name_is_exit_3_and_changes_nothing() {
    let r = Repo::new();
    r.create("feat", &[]);
    let before = user_files(&r.ctx.root);
    let branches = r.git(&r.ctx.cwd, &["branch", "--list"]);
    let run = r.run(&["create", "feat"]).code(3);
    assert_eq!(
        r.ctx.redact(&run.stderr),
        "error: `[ROOT]/work--feat` already exists\n\
         hint: pick another name, or `cd` there and run `docker sandbox init`\n"
    );
    assert_eq!(run.stdout, "");
    assert_eq!(user_files(&r.ctx.root), before);
    assert_eq!(r.git(&r.ctx.cwd, &["branch", "--list"]), branches);
}

#[test]
fn create_from_a_linked_worktree_goes_beside_the_main_checkout() {
    let r = Repo::new();
    let a = r.create("a", &[]);
    let sub = a.join("deep/er");
    std::fs::create_dir_all(&sub).unwrap();
    r.run_in(&sub, &["create", "b"]).success();
    let b = r.wt("b");
    assert!(b.join(".git").is_file());
    assert!(!r.ctx.root.join("work--a--b").exists());
    assert_eq!(r.git_worktrees(), [r.ctx.cwd.clone(), a, b.clone()]);
    assert_eq!(env_file(&b.join(".env.sandbox"))["INSTANCE_ID"], "work--b");
    assert_eq!(r.holder(2), Some(b));
}

#[test]
fn create_with_a_separate_git_dir_goes_beside_the_checkout() {
    // `git init --separate-git-dir` keeps the repository outside the checkout:
    // the main checkout is still `work`, and `create` belongs beside it.
    let r = Repo::with_separate_git_dir();
    let run = r.run(&["create", "feat"]).success();
    assert!(
        r.wt("feat").is_dir(),
        "expected `[ROOT]/work--feat`; the plugin said:\n{}",
        r.ctx.redact(&run.stdout)
    );
    assert!(!r.ctx.root.join("git/repo.git--feat").exists());
}

// ---------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------

#[test]
fn init_claims_a_slot_for_a_clone_once() {
    let r = Repo::new();
    let one = r.ctx.root.join("one");
    let two = r.ctx.root.join("two");
    for clone in [&one, &two] {
        r.git(
            &r.ctx.root,
            &["clone", "-q", "work", clone.to_str().unwrap()],
        );
    }

    let run = r.run_in(&one, &["init"]).success();
    assert!(
        run.stdout
            .starts_with(&format!("Claimed slot 1 (light) for `{}`\n", one.display())),
        "{}",
        run.stdout
    );
    assert_eq!(r.holder(1), Some(one.clone()));
    let env = env_file(&one.join(".env.sandbox"));
    assert_eq!(env["INSTANCE_ID"], "one");
    assert_eq!(env["SLOT_ID"], "1");
    assert_eq!(r.git(&one, &["status", "--porcelain"]), "");

    let before = user_files(&r.ctx.root);
    let run = r.run_in(&one, &["init"]).code(1);
    assert!(
        run.stderr.contains(&format!(
            "`{}` is already initialised: it holds slot 1",
            one.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");

    let run = r
        .run_in(&two, &["init", "--slot", "2", "--format", "json"])
        .success();
    let v = json(&run.stdout);
    assert_eq!(v["slot"], 2);
    assert_eq!(v["fresh"], true);
    assert_eq!(v["worktree"], two.display().to_string());
    assert_eq!(r.holder(2), Some(two));
    assert_eq!(r.holder(1), Some(one));
}

#[test]
fn init_in_a_created_worktree_is_already_initialised() {
    let r = Repo::new();
    let wt = r.create("feat", &[]);
    let run = r.run_in(&wt, &["init"]).code(1);
    assert!(run.stderr.contains("already initialised"), "{}", run.stderr);
    assert_eq!(r.holder(1), Some(wt));
    assert_eq!(r.holder(2), None);
}

#[test]
fn init_outside_a_repository_is_exit_2() {
    let r = Repo::new();
    let plain = r.ctx.root.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let run = r.run_in(&plain, &["init"]).code(2);
    assert!(
        run.stderr.contains("not inside a git worktree"),
        "{}",
        run.stderr
    );
    assert!(!plain.join(".env.sandbox").exists());
}

#[test]
fn a_slot_whose_port_is_taken_is_refused() {
    let r = Repo::with_project(&pool_toml(BUSY_BLOCK));
    let port = BUSY_BLOCK + 1;
    let _hold = std::net::TcpListener::bind(("127.0.0.1", port as u16)).unwrap();
    let before = user_files(&r.ctx.root);
    let run = r.run(&["init", "--slot", "1"]).code(3);
    assert!(
        run.stderr.contains(&format!(
            "error: port {port} of slot 1 is in use by something else: {port} (api)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");

    // `create` has one exit code for "no slot" and "port conflict".
    let run = r.run(&["create", "x", "--slot", "1"]).code(1);
    assert!(
        run.stderr.contains(&format!("port {port} of slot 1")),
        "{}",
        run.stderr
    );
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");
    assert_eq!(r.git_worktrees(), std::slice::from_ref(&r.ctx.cwd));

    // Without --slot the busy slot is passed over.
    r.run(&["init"]).success();
    assert_eq!(r.holder(1), None);
    assert_eq!(r.holder(2), Some(r.ctx.cwd.clone()));
}

// ---------------------------------------------------------------------------
// destroy
// ---------------------------------------------------------------------------

#[test]
fn destroy_releases_the_slot_and_removes_the_worktree_but_keeps_the_branch() {
    let r = Repo::new();
    let wt = r.create("feat", &[]);
    assert_eq!(r.holder(1), Some(wt.clone()));

    let run = r.run_in(&wt, &["destroy"]).success();
    assert_eq!(
        r.ctx.redact(&run.stdout),
        "Removed worktree `[ROOT]/work--feat` (its branch is kept)\n\
         Released slot 1: removed 0 container(s), 0 volume(s), 0 network(s)\n"
    );
    assert_eq!(r.holder(1), None);
    assert!(!wt.exists(), "the folder is removed");
    assert_eq!(r.git_worktrees(), std::slice::from_ref(&r.ctx.cwd));
    assert_eq!(
        r.git(&r.ctx.cwd, &["branch", "--list", "feat"]).trim(),
        "feat"
    );

    // The same name again checks out the kept branch.
    let run = r.run(&["create", "feat"]).success();
    assert!(
        run.stdout.contains("on branch `feat`") && !run.stdout.contains("new branch"),
        "{}",
        run.stdout
    );
    assert_eq!(r.holder(1), Some(wt));
}

#[test]
fn destroy_refuses_uncommitted_changes_until_forced() {
    let r = Repo::new();
    let wt = r.create("dirty", &[]);
    std::fs::write(wt.join("notes.txt"), "work in progress\n").unwrap();
    let before = user_files(&r.ctx.root);

    let run = r.run_in(&wt, &["destroy"]).code(1);
    assert!(
        run.stderr
            .contains("has uncommitted changes (1 path(s), e.g. `?? notes.txt`)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: commit or stash them, or run `docker sandbox destroy --force`"),
        "{}",
        run.stderr
    );
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");
    assert_eq!(r.holder(1), Some(wt.clone()));
    assert!(wt.join(".env.sandbox").is_file());
    assert_eq!(r.git_worktrees(), [r.ctx.cwd.clone(), wt.clone()]);

    r.run_in(&wt, &["destroy", "--force"]).success();
    assert!(!wt.exists());
    assert_eq!(r.holder(1), None);
    assert_eq!(r.git_worktrees(), std::slice::from_ref(&r.ctx.cwd));
}

#[test]
fn destroy_never_removes_the_main_checkout() {
    let r = Repo::new();
    let main = r.ctx.cwd.clone();
    r.run(&["init"]).success();
    assert_eq!(r.holder(1), Some(main.clone()));
    let before = user_files(&r.ctx.root);

    let run = r.run(&["destroy"]).code(1);
    assert_eq!(
        r.ctx.redact(&run.stderr),
        "error: `[ROOT]/work` is the main checkout: destroy removes linked worktrees only\n\
         hint: `docker sandbox destroy --keep-worktree` releases its slot and keeps the folder\n"
    );
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");
    let run = r.run(&["destroy", "--force"]).code(1);
    assert!(
        run.stderr.contains("is the main checkout"),
        "{}",
        run.stderr
    );
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");

    let run = r.run(&["destroy", "--keep-worktree"]).success();
    assert_eq!(
        r.ctx.redact(&run.stdout),
        "Released slot 1: removed 0 container(s), 0 volume(s), 0 network(s)\n\
         Kept worktree `[ROOT]/work`\n"
    );
    assert_eq!(r.holder(1), None);
    assert!(main.join(".git").is_dir());
    assert!(main.join("docker-sandbox.toml").is_file());
    assert!(
        !main.join(".env.sandbox").exists(),
        "the claim's env file goes"
    );
}

#[test]
fn destroy_keep_worktree_in_a_linked_worktree_keeps_the_folder() {
    let r = Repo::new();
    let wt = r.create("keep", &[]);
    r.run_in(&wt, &["destroy", "--keep-worktree"]).success();
    assert_eq!(r.holder(1), None);
    assert!(wt.join(".git").is_file());
    assert_eq!(r.git_worktrees(), [r.ctx.cwd.clone(), wt]);
}

#[test]
fn destroy_of_a_locked_worktree_keeps_its_slot_when_git_refuses() {
    // `git worktree lock` says "do not remove this". `destroy` fails (git
    // refuses), but only after it has released the slot (removing the
    // stack's containers and volumes) and deleted the env file.
    let r = Repo::new();
    let wt = r.create("locked", &[]);
    r.git(&r.ctx.cwd, &["worktree", "lock", wt.to_str().unwrap()]);
    let before = user_files(&r.ctx.root);
    let run = r.run_in(&wt, &["destroy"]).code(1);
    assert!(run.stderr.contains("locked"), "{}", run.stderr);
    assert_eq!(
        r.holder(1),
        Some(wt.clone()),
        "a destroy that fails must keep the claim; stdout:\n{}",
        run.stdout
    );
    assert!(wt.join(".env.sandbox").is_file(), "the env file is kept");
    assert_eq!(user_files(&r.ctx.root), before, "nothing may change");
}

#[test]
fn destroy_in_a_main_checkout_with_a_separate_git_dir_keeps_its_slot() {
    // With `--separate-git-dir` the main checkout is not the git dir's parent;
    // `destroy` takes the checkout for a linked worktree, releases its slot,
    // then fails in `git worktree remove`.
    let r = Repo::with_separate_git_dir();
    r.run(&["init"]).success();
    let run = r.run(&["destroy"]).code(1);
    assert!(
        run.stderr.contains("is the main checkout"),
        "expected the main-checkout refusal; stdout:\n{}stderr:\n{}",
        r.ctx.redact(&run.stdout),
        r.ctx.redact(&run.stderr)
    );
    assert_eq!(r.holder(1), Some(r.ctx.cwd.clone()), "the claim is kept");
    assert!(r.ctx.cwd.join(".env.sandbox").is_file());
}

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

#[test]
fn list_shows_the_main_checkout_and_created_worktrees() {
    let r = Repo::new();
    let a = r.create("a", &[]);
    let big = r.create("big", &["--profile", "heavy"]);

    let run = r.run(&["list"]).success();
    insta::assert_snapshot!("list_table", r.ctx.redact(&run.stdout));

    let run = r.run_in(&a, &["list", "--format", "json"]).success();
    let v = json(&run.stdout);
    assert_eq!(v["pool"]["name"], "ktrdr");
    assert_eq!(v["live"], true);
    let rows = v["worktrees"].as_array().unwrap();
    let paths: Vec<&str> = rows.iter().map(|w| w["path"].as_str().unwrap()).collect();
    let expected = [&r.ctx.cwd, &a, &big].map(|p| p.display().to_string());
    assert_eq!(paths, expected);

    let main = &rows[0];
    assert_eq!(main["branch"], "main");
    assert_eq!(main["slot"], serde_json::Value::Null);
    assert_eq!(main["status"], serde_json::Value::Null);
    assert_eq!(main["urls"], serde_json::json!({}));
    assert_eq!(main["orphaned"], false);

    let row = &rows[1];
    assert_eq!(row["branch"], "a");
    assert_eq!(row["slot"], 1);
    assert_eq!(row["profile"], "light");
    assert_eq!(row["project"], "ktrdr-slot-1");
    assert_eq!(row["status"], "stopped");
    assert_eq!(row["orphaned"], false);
    assert!(row["claimed_at"].is_string());
    assert_eq!(
        row["urls"],
        serde_json::json!({
            "api": format!("http://127.0.0.1:{}", BLOCK + 1),
            "db": format!("127.0.0.1:{}", BLOCK + 11),
            "grafana": format!("http://127.0.0.1:{}", BLOCK + 21),
            "jaeger_ui": format!("http://127.0.0.1:{}", BLOCK + 31),
            "prometheus": format!("http://127.0.0.1:{}", BLOCK + 41),
            "jaeger_otlp_grpc": format!("127.0.0.1:{}", BLOCK + 51),
            "jaeger_otlp_http": format!("http://127.0.0.1:{}", BLOCK + 61),
        })
    );
    assert_eq!(rows[2]["slot"], 6);
    assert_eq!(rows[2]["profile"], "heavy");
    assert_eq!(
        rows[2]["urls"]["api"],
        format!("http://127.0.0.1:{}", BLOCK + 6)
    );
}

#[test]
fn list_marks_a_claim_whose_folder_is_gone_as_orphaned() {
    let r = Repo::new();
    let keep = r.create("keep", &[]);
    let gone = r.create("gone", &[]);
    std::fs::remove_dir_all(&gone).unwrap();

    let run = r.run(&["list", "--format", "json"]).success();
    let v = json(&run.stdout);
    let rows = v["worktrees"].as_array().unwrap();
    let row = |p: &Path| {
        rows.iter()
            .find(|w| w["path"] == p.display().to_string())
            .unwrap_or_else(|| panic!("no row for {}: {v}", p.display()))
    };
    assert_eq!(row(&gone)["orphaned"], true);
    assert_eq!(row(&gone)["slot"], 2);
    assert_eq!(row(&keep)["orphaned"], false);
    assert_eq!(row(&r.ctx.cwd)["orphaned"], false);

    let run = r.run(&["list"]).success();
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("work--gone"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.contains("work--gone (orphaned)"), "{line}");

    // Once git forgets it too, the registry still shows the claim.
    r.git(&r.ctx.cwd, &["worktree", "prune"]);
    let v = json(&r.run(&["list", "--format", "json"]).success().stdout);
    let rows = v["worktrees"].as_array().unwrap();
    let orphan = rows
        .iter()
        .find(|w| w["path"] == gone.display().to_string())
        .unwrap();
    assert_eq!(orphan["orphaned"], true);
    assert_eq!(orphan["branch"], serde_json::Value::Null);
}

#[test]
fn list_without_an_engine_shows_the_registry() {
    let r = Repo::new();
    r.create("a", &[]);
    let mut cmd = r.cmd_in(&r.ctx.cwd, &["list", "--format", "json"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let run = TestContext::run_cmd(cmd).success();
    let v = json(&run.stdout);
    assert_eq!(v["live"], false);
    assert_eq!(v["worktrees"][1]["slot"], 1);
    // Not the registry's last known state, which may be long stale.
    assert_eq!(v["worktrees"][1]["status"], "unknown");
}

// ---------------------------------------------------------------------------
// env
// ---------------------------------------------------------------------------

#[test]
fn env_shell_output_evals_in_a_real_shell() {
    let r = Repo::new();
    // The plugin on PATH under its own name, as `eval "$(docker-sandbox env)"` needs.
    let on_path = r.ctx.bin.join("docker-sandbox");
    install_bin(&on_path);
    // A repository whose folder needs quoting in a shell.
    let odd = r.ctx.root.join("it's a repo");
    repo_at(&r.ctx, &odd, &pool_toml(BLOCK), &[]);
    r.run_in(&odd, &["create", "q"]).success();
    let wt = r.ctx.root.join("it's a repo--q");

    let run = r.run_in(&wt, &["env"]).success();
    for line in run.stdout.lines() {
        let rest = line
            .strip_prefix("export ")
            .unwrap_or_else(|| panic!("not an export line: {line}"));
        let (key, value) = rest.split_once('=').unwrap();
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{line}"
        );
        assert!(value.starts_with('\'') && value.ends_with('\''), "{line}");
    }
    assert!(
        run.stdout.contains("export SLOT_ID='1'\n"),
        "{}",
        run.stdout
    );

    let mut sh = r.ctx.command("sh");
    sh.current_dir(&wt)
        .env("DOCKER_HOST", r.engine.host())
        .args([
            "-c",
            r#"eval "$(docker-sandbox env)" || exit 9; printf '%s|%s|%s|%s' "$SLOT_ID" "$KTRDR_API_PORT" "$INSTANCE_ID" "$SANDBOX_WORKTREE""#,
        ]);
    let run = TestContext::run_cmd(sh).success();
    assert_eq!(
        run.stdout,
        format!("1|{}|it's a repo--q|{}", BLOCK + 1, wt.display())
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn env_json_matches_the_env_file() {
    let r = Repo::new();
    let wt = r.create("feat", &["--slot", "4"]);
    let run = r.run_in(&wt, &["env", "--format", "json"]).success();
    let got: BTreeMap<String, String> = serde_json::from_str(&run.stdout).unwrap();
    let want = env_file(&wt.join(".env.sandbox"));
    assert_eq!(got, want);
    assert_eq!(got["SLOT_ID"], "4");
    assert_eq!(got["KTRDR_API_PORT"], (BLOCK + 4).to_string());
    assert_eq!(got["INSTANCE_ID"], "work--feat");
}

#[test]
fn env_writes_a_lost_env_file_again() {
    let r = Repo::new();
    let wt = r.create("feat", &[]);
    let path = wt.join(".env.sandbox");
    let before = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let run = r.run_in(&wt, &["env", "--format", "json"]).success();
    assert_eq!(std::fs::read(&path).unwrap(), before, "the same content");
    assert_eq!(mode(&path), 0o600);
    let got: BTreeMap<String, String> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(got, env_file(&path));
}

#[test]
fn env_and_run_without_a_claim_are_exit_1() {
    let r = Repo::new();
    let wt = r.ctx.root.join("unclaimed");
    r.git(
        &r.ctx.cwd,
        &["worktree", "add", "-q", "-b", "u", wt.to_str().unwrap()],
    );
    let marker = r.ctx.root.join("ran");
    for dir in [&r.ctx.cwd, &wt] {
        for args in [
            vec!["env"],
            vec!["env", "--format", "json"],
            vec!["run", "--", "touch", marker.to_str().unwrap()],
        ] {
            let run = r.run_in(dir, &args).code(1);
            assert!(
                run.stderr.contains(&format!(
                    "error: this worktree holds no slot: `{}`",
                    dir.display()
                )),
                "{args:?}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("hint: "), "{}", run.stderr);
            if args.contains(&"json") {
                let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
                assert_eq!(v["exit_code"], 1, "{}", run.stdout);
            } else {
                assert_eq!(run.stdout, "");
            }
        }
    }
    assert!(!marker.exists(), "the command must not run");
    assert!(!wt.join(".env.sandbox").exists());
}

// ---------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------

#[test]
fn run_gives_the_command_the_slot_environment() {
    let r = Repo::new();
    let wt = r.create("feat", &["--slot", "2"]);
    // The slot's values win over the caller's.
    let mut cmd = r.cmd_in(
        &wt,
        &[
            "run",
            "--",
            "sh",
            "-c",
            r#"echo "$SLOT_ID $KTRDR_API_PORT $COMPOSE_PROJECT_NAME $SANDBOX_WORKTREE $KEEP""#,
        ],
    );
    cmd.env("SLOT_ID", "99").env("KEEP", "kept");
    let run = TestContext::run_cmd(cmd).success();
    assert_eq!(
        run.stdout,
        format!("2 {} ktrdr-slot-2 {} kept\n", BLOCK + 2, wt.display())
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn run_passes_the_exit_code_through() {
    let r = Repo::new();
    let wt = r.create("feat", &[]);
    r.run_in(&wt, &["run", "--", "sh", "-c", "exit 7"]).code(7);
    r.run_in(&wt, &["run", "--", "sh", "-c", "exit 0"])
        .success();
    r.run_in(&wt, &["run", "--", "false"]).code(1);
    // Killed by SIGTERM: 128 + 15.
    r.run_in(&wt, &["run", "--", "sh", "-c", "kill -TERM $$"])
        .code(143);
}

#[test]
fn run_of_a_missing_command_is_exit_127() {
    let r = Repo::new();
    let wt = r.create("feat", &[]);
    let run = r
        .run_in(&wt, &["run", "--", "no-such-command-here", "x"])
        .code(127);
    assert!(
        run.stderr
            .contains("error: cannot run `no-such-command-here`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: check the command's name and that it is on PATH"),
        "{}",
        run.stderr
    );
}

#[test]
fn run_passes_hyphenated_arguments_through() {
    let r = Repo::new();
    let wt = r.create("feat", &[]);
    let run = r
        .run_in(
            &wt,
            &["run", "--", "sh", "-c", r#"echo "$@""#, "x", "--flag", "-v"],
        )
        .success();
    assert_eq!(run.stdout, "--flag -v\n");
    // Arguments that are the plugin's own flags belong to the command too.
    let run = r
        .run_in(
            &wt,
            &[
                "run",
                "--",
                "sh",
                "-c",
                r#"printf '[%s]' "$@""#,
                "x",
                "--format",
                "json",
                "--help",
                "--",
                "-",
            ],
        )
        .success();
    assert_eq!(run.stdout, "[--format][json][--help][--][-]");
}

// ---------------------------------------------------------------------------
// completion
// ---------------------------------------------------------------------------

/// Whether `word` appears in `text` on its own (not inside a longer name).
fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|w| w == word)
}

/// What bash offers for `words` (the last one being completed), with the
/// completion script sourced.
fn bash_complete(ctx: &TestContext, script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = words[cword - 1];
    let cur = words[cword];
    let code = format!(
        "source '{}' || exit 9\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         f=$(complete -p docker-sandbox | sed -E 's/.*-F ([^ ]+).*/\\1/')\n\
         \"$f\" docker-sandbox '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words.join(" "),
    );
    let run = TestContext::run_cmd({
        let mut cmd = ctx.command("bash");
        cmd.args(["--norc", "--noprofile", "-c", &code]);
        cmd
    })
    .success();
    run.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn completion_scripts_name_the_binary_and_its_commands() {
    let ctx = TestContext::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = ctx.run(&["completion", shell]).success();
        let script = &run.stdout;
        assert_eq!(run.stderr, "", "{shell}");
        assert!(has_word(script, "docker-sandbox"), "{shell}:\n{script}");
        for sub in [
            "provision",
            "slots",
            "up",
            "create",
            "init-shared",
            "doctor",
        ] {
            assert!(has_word(script, sub), "{shell}: no `{sub}`");
        }
    }
    let zsh = ctx.run(&["completion", "zsh"]).success().stdout;
    assert!(zsh.starts_with("#compdef docker-sandbox\n"), "{zsh}");
    let fish = ctx.run(&["completion", "fish"]).success().stdout;
    assert!(fish.contains("complete -c docker-sandbox "), "{fish}");

    let bash = ctx.run(&["completion", "bash"]).success().stdout;
    assert!(
        bash.contains("-o default docker-sandbox\n"),
        "registered for `docker-sandbox`"
    );
    let script = ctx.root.join("docker-sandbox.bash");
    std::fs::write(&script, &bash).unwrap();
    let mut check = ctx.command("bash");
    check.arg("-n").arg(&script);
    TestContext::run_cmd(check).success();
    assert_eq!(
        bash_complete(&ctx, &script, &["docker-sandbox", "pro"]),
        ["provision"]
    );
    assert_eq!(
        bash_complete(&ctx, &script, &["docker-sandbox", "s"]),
        ["slots", "status"]
    );
}

#[test]
fn bash_completion_offers_subcommand_options() {
    // clap_complete's bash script spells a hyphenated binary's state two ways
    // (clap-rs/clap#6421); the plugin makes it for a name without hyphens and
    // registers it for `docker-sandbox`.
    let ctx = TestContext::new();
    let script = ctx.root.join("docker-sandbox.bash");
    std::fs::write(&script, ctx.run(&["completion", "bash"]).success().stdout).unwrap();
    let got = bash_complete(&ctx, &script, &["docker-sandbox", "destroy", "--"]);
    assert!(
        got.contains(&"--keep-worktree".to_owned()) && got.contains(&"--force".to_owned()),
        "`docker-sandbox destroy --<TAB>` offers {got:?}"
    );
    let got = bash_complete(&ctx, &script, &["docker-sandbox", "init-shared", "--m"]);
    assert_eq!(got, ["--minimal"]);
}

#[test]
fn completion_follows_the_installed_name() {
    let ctx = TestContext::new();
    let renamed = ctx.bin.join("docker-devslots");
    install_bin(&renamed);
    let run = TestContext::run_cmd({
        let mut cmd = ctx.command(&renamed);
        cmd.args(["completion", "bash"]);
        cmd
    })
    .success();
    assert!(
        run.stdout.contains("-o default docker-devslots\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("docker-sandbox"), "{}", run.stdout);
}

#[test]
fn completion_of_an_unknown_shell_is_exit_64() {
    let ctx = TestContext::new();
    let run = ctx.run(&["completion", "powershell"]).code(64);
    assert!(
        run.stderr.contains("invalid value 'powershell'")
            && run.stderr.contains("[possible values: bash, zsh, fish]"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    ctx.run(&["completion"]).code(64);
}

// ---------------------------------------------------------------------------
// init-shared
// ---------------------------------------------------------------------------

/// A project file with the shared folder at `<root>/shared`.
fn shared_project(ctx: &TestContext) -> PathBuf {
    let shared = ctx.root.join("shared");
    ctx.git_init();
    ctx.write_project_file(&format!("[shared]\ndir = \"{}\"\n", shared.display()));
    shared
}

#[test]
fn init_shared_minimal_creates_the_empty_folders() {
    let ctx = TestContext::new();
    let shared = shared_project(&ctx);
    // The checkout's own data must not be copied.
    write(&ctx.cwd.join("data/a.csv"), "a\n");
    let run = ctx.run(&["init-shared", "--minimal"]).success();
    assert_eq!(
        ctx.redact(&run.stdout),
        "[ROOT]/shared/data: created\n\
         [ROOT]/shared/models: created\n\
         [ROOT]/shared/strategies: created\n\
         Shared data is in `[ROOT]/shared`; every slot mounts it.\n"
    );
    let want: BTreeMap<PathBuf, Vec<u8>> = ["data", "models", "strategies"]
        .into_iter()
        .map(|d| (shared.join(d), Vec::new()))
        .collect();
    assert_eq!(tree(&shared), want);
}

#[test]
fn init_shared_copies_from_a_checkout_and_keeps_existing_files() {
    let ctx = TestContext::new();
    let shared = shared_project(&ctx);
    let old = ctx.root.join("old");
    write(&old.join("data/a.csv"), "theirs\n");
    write(&old.join("data/sub/b.csv"), "b\n");
    write(&old.join("models/m.bin"), "model\n");
    write(&old.join("other/x"), "not shared\n");
    write(&shared.join("data/a.csv"), "mine\n");

    let run = ctx
        .run(&["init-shared", "--from", old.to_str().unwrap()])
        .success();
    insta::assert_snapshot!("init_shared_from", ctx.redact(&run.stdout));
    assert_eq!(
        std::fs::read_to_string(shared.join("data/a.csv")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("data/sub/b.csv")).unwrap(),
        "b\n"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("models/m.bin")).unwrap(),
        "model\n"
    );
    assert!(shared.join("strategies").is_dir());
    assert!(!shared.join("other").exists());

    // Again, by a relative path: everything is there, nothing is copied.
    let before = tree(&shared);
    let run = ctx.run(&["init-shared", "--from", "../old"]).success();
    assert!(
        run.stdout.contains("data: 0 file(s) copied")
            && run.stdout.contains("2 existing kept")
            && run.stdout.contains("models: 0 file(s) copied"),
        "{}",
        run.stdout
    );
    assert_eq!(tree(&shared), before);
}

#[test]
fn init_shared_defaults_to_this_checkout_and_the_home_folder() {
    let ctx = TestContext::new();
    ctx.git_init();
    write(&ctx.cwd.join("data/a.csv"), "a\n");
    write(&ctx.cwd.join("strategies/s.yaml"), "s: 1\n");
    let sub = ctx.cwd.join("somewhere/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = ctx.cmd();
    cmd.current_dir(&sub).arg("init-shared");
    let run = TestContext::run_cmd(cmd).success();
    let shared = ctx.home.join(".ktrdr/shared");
    assert_eq!(
        ctx.redact(&run.stdout),
        "[ROOT]/home/.ktrdr/shared/data: 1 file(s) copied from `[ROOT]/work/data`, 0 existing kept\n\
         [ROOT]/home/.ktrdr/shared/models: created\n\
         [ROOT]/home/.ktrdr/shared/strategies: 1 file(s) copied from `[ROOT]/work/strategies`, 0 existing kept\n\
         Shared data is in `[ROOT]/home/.ktrdr/shared`; every slot mounts it.\n"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("data/a.csv")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("strategies/s.yaml")).unwrap(),
        "s: 1\n"
    );
    assert!(shared.join("models").is_dir());
}

#[test]
fn init_shared_refuses_a_missing_source_and_both_flags() {
    let ctx = TestContext::new();
    let shared = shared_project(&ctx);
    let file = ctx.root.join("a-file");
    write(&file, "x");
    let before = user_files(&ctx.root);
    let run = ctx.run(&["init-shared", "--from", "../missing"]).code(1);
    assert!(
        run.stderr.contains(&format!(
            "--from `{}` is not a folder",
            ctx.cwd.join("../missing").display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    ctx.run(&["init-shared", "--from", file.to_str().unwrap()])
        .code(1);
    let run = ctx
        .run(&[
            "init-shared",
            "--from",
            ctx.root.to_str().unwrap(),
            "--minimal",
        ])
        .code(64);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    assert_eq!(user_files(&ctx.root), before, "nothing may change");
    assert!(!shared.exists());
}

// ---------------------------------------------------------------------------
// doctor
// ---------------------------------------------------------------------------

/// Runs `doctor` with a fake `docker` whose compose answers.
fn doctor(r: &Repo, fake: &FakeDocker, args: &[&str]) -> Run {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let mut cmd = r.cmd_in(&r.ctx.cwd, &all);
    fake.apply(&mut cmd);
    // The isolation check reads the slot's model with a real compose.
    cmd.env("FAKE_REAL_COMPOSE", real_compose_v2());
    TestContext::run_cmd(cmd)
}

/// Gives `dir` what the default pool's stack mounts from a worktree: the
/// KTRDR-shaped checkout of `tests/fixtures`, and the Prometheus config the
/// default template binds from `./monitoring`, which a KTRDR checkout lacks.
fn with_default_binds(dir: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ktrdr-checkout");
    copy(&fixture, dir);
    std::fs::create_dir_all(dir.join("monitoring")).unwrap();
    std::fs::write(
        dir.join("monitoring/prometheus.yml"),
        "scrape_configs: []\n",
    )
    .unwrap();
}

/// Where docker looks for `docker-sandbox` first: the per-user plugin folder
/// (made here).
fn install_plugin(ctx: &TestContext) -> PathBuf {
    let dir = ctx.home.join(".docker/cli-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("docker-sandbox")
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check: {v}"))
}

#[test]
fn doctor_reports_every_check() {
    let r = Repo::new();
    let fake = FakeDocker::install(&r.ctx);
    let plugin = install_plugin(&r.ctx);
    install_bin(&plugin);
    r.create("a", &[]);
    with_default_binds(&r.ctx.cwd);

    let run = doctor(&r, &fake, &[]).success();
    insta::assert_snapshot!("doctor_table", r.ctx.redact(&run.stdout));

    let run = doctor(&r, &fake, &["--format", "json"]).success();
    let v = json(&run.stdout);
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "engine",
            "compose",
            "plugin",
            "pool",
            "state",
            "registry",
            "ports",
            "orphans",
            "isolation",
            "binds",
            "subnets",
            "slots"
        ]
    );
    for c in checks {
        let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["check", "detail", "hint", "level"], "{c}");
        assert_eq!(c["level"], "ok", "{c}");
        assert_eq!(c["hint"], serde_json::Value::Null, "{c}");
    }
    assert_eq!(check(&v, "compose")["detail"], "docker compose 2.29.7");
    assert_eq!(check(&v, "registry")["detail"], "6 slot(s), 1 claimed");
    assert_eq!(
        check(&v, "plugin")["detail"],
        format!("`docker sandbox` runs `{}`", plugin.display())
    );
}

#[test]
fn doctor_looks_for_the_plugin_in_the_config_folder_docker_is_given() {
    let r = Repo::new();
    let fake = FakeDocker::install(&r.ctx);
    let config = r.ctx.root.join("docker-config");
    std::fs::create_dir_all(config.join("cli-plugins")).unwrap();
    let plugin = config.join("cli-plugins/docker-sandbox");
    install_bin(&plugin);
    // `docker --config DIR sandbox doctor`: docker finds its plugins in DIR.
    let mut cmd = r.cmd_in(
        &r.ctx.cwd,
        &["--config", config.to_str().unwrap(), "sandbox"],
    );
    cmd.args(["doctor", "--format", "json"]);
    fake.apply(&mut cmd);
    let v = json(&TestContext::run_cmd(cmd).stdout);
    assert_eq!(
        check(&v, "plugin")["detail"],
        format!("`docker sandbox` runs `{}`", plugin.display()),
        "{v}"
    );
}

#[test]
fn doctor_fails_on_another_plugin_of_the_same_name() {
    let r = Repo::new();
    let fake = FakeDocker::install(&r.ctx);
    let plugin = install_plugin(&r.ctx);
    write_executable(
        &plugin,
        "#!/bin/sh\n\
         if [ \"$1\" = docker-cli-plugin-metadata ]; then\n\
         echo '{\"SchemaVersion\":\"0.1.0\",\"Vendor\":\"Docker Inc.\",\"Version\":\"v0.1.0\"}'\n\
         fi\n",
    );
    let run = doctor(&r, &fake, &[]).code(1);
    let line = format!(
        "✗ plugin     `docker sandbox` runs `{}`, which is another plugin (vendor \"Docker Inc.\")\n",
        plugin.display()
    );
    assert!(run.stdout.contains(&line), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("hint: install ours under another name: ./install.sh --name"),
        "{}",
        run.stdout
    );

    let v = json(&doctor(&r, &fake, &["--format", "json"]).code(1).stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(check(&v, "plugin")["level"], "fail");
    assert_eq!(check(&v, "engine")["level"], "ok");

    // A plugin that does not answer the metadata call is not ours either.
    write_executable(&plugin, "#!/bin/sh\nexit 1\n");
    let run = doctor(&r, &fake, &[]).code(1);
    assert!(run.stdout.contains("(vendor unknown)"), "{}", run.stdout);
}

#[test]
fn doctor_without_an_engine_fails() {
    let r = Repo::new();
    let fake = FakeDocker::install(&r.ctx);
    let mut cmd = r.cmd_in(&r.ctx.cwd, &["doctor", "--format", "json"]);
    fake.apply(&mut cmd);
    cmd.env("DOCKER_HOST", "unix:///nonexistent");
    let run = TestContext::run_cmd(cmd).code(1);
    let v = json(&run.stdout);
    assert_eq!(v["ok"], false);
    let engine = check(&v, "engine");
    assert_eq!(engine["level"], "fail");
    assert!(
        engine["detail"]
            .as_str()
            .unwrap()
            .contains("unix:///nonexistent"),
        "{engine}"
    );
    assert!(engine["hint"].as_str().unwrap().contains("DOCKER_HOST"));
    // Without an engine the port check cannot tell who holds a port.
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["check"] != "ports")
    );

    let mut cmd = r.cmd_in(&r.ctx.cwd, &["doctor"]);
    fake.apply(&mut cmd);
    cmd.env("DOCKER_HOST", "unix:///nonexistent");
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(run.stdout.starts_with("✗ engine     "), "{}", run.stdout);
}

#[test]
fn doctor_warns_about_an_orphaned_claim() {
    let r = Repo::new();
    let fake = FakeDocker::install(&r.ctx);
    let gone = r.create("gone", &[]);
    std::fs::remove_dir_all(&gone).unwrap();
    with_default_binds(&r.ctx.cwd);
    let run = doctor(&r, &fake, &[]).success();
    assert!(
        run.stdout.contains(&format!(
            "! orphans    claims of vanished worktrees: slot 1 (`{}`)\n             hint: run `docker sandbox gc`\n",
            gone.display()
        )),
        "{}",
        run.stdout
    );
    let v = json(&doctor(&r, &fake, &["--format", "json"]).success().stdout);
    assert_eq!(v["ok"], true, "warnings are not failures");
    assert_eq!(check(&v, "orphans")["level"], "warn");
    assert_eq!(check(&v, "orphans")["hint"], "run `docker sandbox gc`");
}

/// A repository whose pool uses its own templates, the compose one being `compose`.
fn templated(compose: &str) -> (Repo, FakeDocker) {
    let r = Repo::with_files(
        &format!(
            "[pool]\nname = \"app\"\ntemplates = \"tpl\"\n[ports]\nweb = [{}, 1]\n",
            BLOCK + 200
        ),
        &[
            ("tpl/docker-compose.yml.hbs", compose),
            (
                "tpl/env.sandbox.hbs",
                "SLOT_ID={{slot}}\nAPP_WEB_PORT={{ports.web}}\n",
            ),
        ],
    );
    let fake = FakeDocker::install(&r.ctx);
    (r, fake)
}

#[test]
fn doctor_checks_a_template_pools_compose_model() {
    // What compose makes of the template, with the slot's env file: a fixed
    // name, a host port that is not the slot's, a port on every interface, a
    // fixed volume name and a localhost URL of the slot's own port.
    let (r, fake) = templated(
        "services:\n  api:\n    image: x\n    container_name: api\n    ports: # host:container\n      - \"8080:80\"\n      - \"127.0.0.1:${APP_WEB_PORT}:81\"\n    environment:\n      SELF: http://localhost:${APP_WEB_PORT}/\n    volumes:\n      - data:/data\nvolumes:\n  data:\n    name: app-data\n",
    );
    let run = doctor(&r, &fake, &[]).success();
    let web = BLOCK + 201;
    let expected = format!(
        "! isolation  slot 1: service `api`: the fixed `container_name: api` collides between slots; \
         service `api`: host port 8080 (of port 80/tcp) is not one of the slot's ports: every slot publishes it; \
         service `api`: port 80/tcp is published on all interfaces (host port 8080): the network reaches it; bind it to 127.0.0.1; \
         service `api`: `SELF` names localhost port {web}, a host port of the slot: inside a container localhost is the container itself; use the service's name and its container port; \
         volume `data`: the fixed name `app-data` is one volume for every slot\n"
    );
    assert!(run.stdout.contains(&expected), "{}", run.stdout);
    let v = json(&doctor(&r, &fake, &["--format", "json"]).success().stdout);
    assert_eq!(v["ok"], true);
    let t = check(&v, "isolation");
    assert_eq!(t["level"], "warn");
    assert!(
        t["hint"]
            .as_str()
            .unwrap()
            .contains("collide between slots"),
        "{t}"
    );
}

#[test]
fn doctor_fails_a_template_with_host_networking() {
    let (r, fake) = templated("services:\n  c:\n    image: z\n    network_mode: host\n");
    let v = json(&doctor(&r, &fake, &["--format", "json"]).code(1).stdout);
    assert_eq!(v["ok"], false);
    let t = check(&v, "isolation");
    assert_eq!(t["level"], "fail", "{t}");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("service `c` uses host networking"),
        "{t}"
    );
}

#[test]
fn doctor_fails_a_bind_mount_whose_source_is_missing() {
    let (r, fake) = templated(
        "services:\n  app:\n    image: z\n    volumes:\n      - ./missing:/x\n      - ./tpl:/tpl:ro\n",
    );
    let run = doctor(&r, &fake, &[]).code(1);
    assert!(
        run.stdout.contains(
            "✗ binds      missing bind source(s): service `app` mounts `./missing` at `/x`\n"
        ),
        "{}",
        run.stdout
    );
    assert!(!r.ctx.cwd.join("missing").exists());
    let v = json(&doctor(&r, &fake, &["--format", "json"]).code(1).stdout);
    let b = check(&v, "binds");
    assert_eq!(b["level"], "fail", "{b}");
    assert!(
        b["hint"]
            .as_str()
            .unwrap()
            .contains("empty folder owned by root"),
        "{b}"
    );
    std::fs::create_dir(r.ctx.cwd.join("missing")).unwrap();
    let v = json(&doctor(&r, &fake, &["--format", "json"]).success().stdout);
    assert_eq!(check(&v, "binds")["level"], "ok");
}
