//! Bad input: each a clear error, the documented exit code, and nothing on
//! disk changed.

use std::path::Path;

use crate::agents::project_file;
use crate::fake_engine::FakeEngine;
use crate::support::*;

/// Runs the plugin in the context's repo with the fake engine.
fn run_in(ctx: &TestContext, engine: &FakeEngine, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = ctx.cmd();
    cmd.current_dir(dir)
        .env("DOCKER_HOST", engine.host())
        .args(args);
    TestContext::run_cmd(cmd)
}

fn commit(ctx: &TestContext) {
    ctx.git(&ctx.cwd, &["commit", "-qm", "init", "--allow-empty"]);
}

#[test]
fn bad_worktree_names_are_refused() {
    let ctx = TestContext::new();
    project_file(&ctx);
    commit(&ctx);
    ctx.run(&["provision"]).success();
    let engine = FakeEngine::start(&ctx.root);
    let long = "a".repeat(64);
    let cases: &[(&str, &str)] = &[
        ("feat/x", "contains `/`"),
        ("..", "contains `..`"),
        ("a..b", "contains `..`"),
        ("has space", "contains a space"),
        ("Upper", "contains upper case"),
        (&long, "longer than 63"),
        ("_under", "must start with a letter or a digit"),
        ("semi;colon", "only a-z"),
    ];
    let before = tree(&ctx.root);
    for (name, why) in cases {
        let run = run_in(&ctx, &engine, &ctx.cwd, &["create", name]).code(64);
        assert!(run.stderr.contains(why), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains("is not a worktree name"),
            "{}",
            run.stderr
        );
    }
    // A branch name given as the name: the command that was meant.
    let run = run_in(&ctx, &engine, &ctx.cwd, &["create", "feat/login"]).code(64);
    assert!(
        run.stderr
            .contains("for branch `feat/login`, run `create login --branch feat/login`"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&ctx.root), before, "nothing may change");
    ctx.run(&["create", &"a".repeat(63), "--help"]).success();
}

#[test]
fn bad_slot_numbers_and_profiles_are_refused() {
    let ctx = TestContext::new();
    project_file(&ctx);
    ctx.run(&["provision"]).success();
    let engine = FakeEngine::start(&ctx.root);
    let before = tree(&ctx.root);
    for (slot, code) in [("0", 64), ("-1", 64), ("abc", 64), ("100", 64), ("7", 1)] {
        let run = run_in(&ctx, &engine, &ctx.cwd, &["claim", "--slot", slot]).code(code);
        if code == 64 {
            assert!(
                run.stderr
                    .contains("is not a slot number: slots are numbered 1 to 99"),
                "{slot}: {}",
                run.stderr
            );
        } else {
            assert!(
                run.stderr.contains("slot 7 does not exist"),
                "{}",
                run.stderr
            );
            assert!(
                run.stderr
                    .contains("hint: the pool's slots are 1, 2, 3, 4, 5, 6"),
                "{}",
                run.stderr
            );
        }
        let run = run_in(&ctx, &engine, &ctx.cwd, &["release", slot]).code(code);
        assert!(!run.stderr.is_empty());
    }
    let run = run_in(&ctx, &engine, &ctx.cwd, &["claim", "--profile", "huge"]).code(64);
    assert!(
        run.stderr.contains("huge") && run.stderr.contains("light, standard, heavy"),
        "{}",
        run.stderr
    );
    let run = run_in(&ctx, &engine, &ctx.cwd, &["up", "--profile", "Heavy"]).code(64);
    assert!(run.stderr.contains("Heavy"), "{}", run.stderr);
    assert_eq!(tree(&ctx.root), before, "nothing may change");
}

#[test]
fn a_branch_checked_out_elsewhere_is_refused() {
    let ctx = TestContext::new();
    project_file(&ctx);
    commit(&ctx);
    ctx.run(&["provision"]).success();
    let engine = FakeEngine::start(&ctx.root);
    let reg_before = std::fs::read(ctx.registry_path()).unwrap();
    let branches = ctx.git(&ctx.cwd, &["branch", "--list"]);
    let run = run_in(
        &ctx,
        &engine,
        &ctx.cwd,
        &["create", "other", "--branch", "main"],
    )
    .code(2);
    assert!(
        run.stderr.contains("cannot create worktree"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("main"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    let folder = ctx.root.join("work--other");
    assert!(!folder.exists(), "no folder is left");
    assert_eq!(
        std::fs::read(ctx.registry_path()).unwrap(),
        reg_before,
        "no claim is made"
    );
    assert_eq!(ctx.git(&ctx.cwd, &["branch", "--list"]), branches);
    assert_eq!(ctx.git(&ctx.cwd, &["worktree", "list"]).lines().count(), 1);
}

#[test]
fn create_with_no_free_slot_creates_nothing() {
    let ctx = TestContext::new();
    project_file(&ctx);
    commit(&ctx);
    ctx.run(&["provision"]).success();
    let engine = FakeEngine::start(&ctx.root);
    // Take the only heavy slot, then ask for another.
    run_in(&ctx, &engine, &ctx.cwd, &["claim", "--profile", "heavy"]).success();
    let before = tree(&ctx.root);
    let branches = ctx.git(&ctx.cwd, &["branch", "--list"]);
    let run = run_in(
        &ctx,
        &engine,
        &ctx.cwd,
        &["create", "big", "--profile", "heavy"],
    )
    .code(1);
    assert!(
        run.stderr.contains("no free slot with profile `heavy`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("slot 6 (heavy): claimed by"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&ctx.root), before);
    assert_eq!(ctx.git(&ctx.cwd, &["branch", "--list"]), branches);
    // An existing folder is exit 3.
    std::fs::create_dir_all(ctx.root.join("work--taken")).unwrap();
    let run = run_in(&ctx, &engine, &ctx.cwd, &["create", "taken"]).code(3);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
}

#[test]
fn missing_or_unreadable_project_files() {
    let ctx = TestContext::new();
    let mut cmd = ctx.cmd();
    cmd.arg("slots")
        .env("DOCKER_SANDBOX_CONFIG", ctx.root.join("nope.toml"));
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr.contains("cannot read project file") && run.stderr.contains("nope.toml"),
        "{}",
        run.stderr
    );
    // A folder where the file should be cannot be read (root reads any file,
    // so permission bits cannot make one unreadable here).
    let dir = ctx.root.join("dir.toml");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = ctx.cmd();
    cmd.args(["provision"]).env("DOCKER_SANDBOX_CONFIG", &dir);
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr.contains("cannot read project file") && run.stderr.contains("dir.toml"),
        "{}",
        run.stderr
    );
    assert!(!ctx.state.exists());
}

/// Makes a folder immutable (`chattr +i`) for the life of the guard: root
/// ignores permission bits, but not this.
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn set(path: &'a Path) -> Immutable<'a> {
        let st = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr (e2fsprogs)");
        assert!(
            st.success(),
            "chattr +i failed: the file system must support it"
        );
        Immutable(path)
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(self.0)
            .status();
    }
}

#[test]
fn a_read_only_state_folder_is_a_clear_error() {
    let ctx = TestContext::new();
    project_file(&ctx);
    // Empty and read-only: provision cannot create its files.
    std::fs::create_dir_all(&ctx.state).unwrap();
    {
        let _ro = Immutable::set(&ctx.state);
        let run = ctx.run(&["provision"]).code(1);
        assert!(
            run.stderr.contains(&ctx.state.display().to_string()),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("error: "), "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "hint: `{}` cannot be written by this user",
                ctx.state.display()
            )),
            "{}",
            run.stderr
        );
        // doctor fails the check, with the same hint.
        let run = ctx.run(&["doctor"]).code(1);
        let lines: Vec<&str> = run.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("✗ state"))
            .unwrap_or_else(|| panic!("no failed state check:\n{}", run.stdout));
        assert!(
            lines[at + 1].contains("hint: ") && lines[at + 1].contains("cannot be written"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(std::fs::read_dir(&ctx.state).unwrap().count(), 0);
    // Provisioned, then read-only: a claim fails and the registry is untouched.
    ctx.run(&["provision"]).success();
    let engine = FakeEngine::start(&ctx.root);
    let before = tree(&ctx.state);
    {
        let _ro = Immutable::set(&ctx.state);
        let run = run_in(&ctx, &engine, &ctx.cwd, &["claim"]).code(1);
        assert!(
            run.stderr.contains(&ctx.state.display().to_string()),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    }
    assert_eq!(tree(&ctx.state), before);
    assert!(!ctx.cwd.join(".env.sandbox").exists());
}

#[test]
fn home_unset_is_a_clear_error_everywhere() {
    let ctx = TestContext::new().use_default_state();
    ctx.git_init();
    for args in [
        &["provision"][..],
        &["slots"],
        &["claim"],
        &["up"],
        &["list"],
    ] {
        let mut cmd = ctx.cmd();
        cmd.args(args).env_remove("HOME");
        let run = TestContext::run_cmd(cmd);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("HOME is not set"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("hint: set HOME, or set DOCKER_SANDBOX_HOME"),
            "{}",
            run.stderr
        );
    }
    assert!(!ctx.home.join(".ktrdr").exists());
}

#[test]
fn outside_a_git_worktree() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let outside = ctx.root.join("plain");
    std::fs::create_dir_all(&outside).unwrap();
    for (args, code) in [
        (&["claim"][..], 1),
        (&["up"], 1),
        (&["status"], 1),
        (&["env"], 1),
        (&["init"], 2),
    ] {
        let mut cmd = ctx.cmd();
        cmd.current_dir(&outside).args(args);
        let run = TestContext::run_cmd(cmd);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("not inside a git worktree"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// `--engine` naming no engine of the pool, and `[engines.NAME]` tables that
/// do not read: a clear error naming them, exit 1, nothing on disk changed
/// (not even the first use's provisioning).
#[test]
fn unknown_engines_and_bad_engine_tables_are_refused() {
    let ctx = TestContext::new();
    let file = project_file(&ctx);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n[engines.far]\ncontext = \"far\"\n")).unwrap();
    commit(&ctx);
    let engine = FakeEngine::start(&ctx.root);
    let before = tree(&ctx.root);
    for args in [
        &["claim", "--engine", "nope"][..],
        &["up", "--engine", "nope"],
        &["create", "x", "--engine", "nope"],
    ] {
        let run = run_in(&ctx, &engine, &ctx.cwd, args).code(1);
        assert!(
            run.stderr
                .contains("--engine `nope` is not one of the pool's engines: `local`, `far`"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(tree(&ctx.root), before, "nothing may change");
    for (table, why) in [
        (
            "[engines.far]\naddress = \"h\"\n",
            "[engines.far] needs `context`",
        ),
        ("[engines.local]\ncontext = \"c\"\n", "takes no `context`"),
        (
            "[engines.far]\ncontext = \"far\"\nmax_slots = -2\n",
            "0 or more",
        ),
    ] {
        std::fs::write(&file, format!("{text}\n{table}")).unwrap();
        let run = run_in(&ctx, &engine, &ctx.cwd, &["slots"]).code(1);
        assert!(run.stderr.contains(why), "{table}: {}", run.stderr);
        assert!(
            run.stderr.contains("invalid project file"),
            "{}",
            run.stderr
        );
    }
}
