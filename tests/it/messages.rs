//! What scripts, agents and people read: exit codes, JSON (errors too, key
//! order as the README documents it), compose's progress, and the messages of
//! the less travelled paths (no engine, bad variables, bad names).

use std::path::Path;
use std::process::Command;

use crate::fake_docker::*;
use crate::lifecycle::{port_block, ports_toml};
use crate::support::*;

/// A provisioned pool in a git repository with a fake docker on PATH, reached
/// through the docker CLI (an ssh DOCKER_HOST).
struct Sandbox {
    ctx: TestContext,
    fake: FakeDocker,
}

impl Sandbox {
    fn new(top: &str) -> Sandbox {
        let ctx = TestContext::new();
        ctx.git_init();
        ctx.git(&ctx.cwd, &["commit", "-qm", "init", "--allow-empty"]);
        ctx.write_project_file(&format!("{NO_STEPS}{top}{}", ports_toml(port_block())));
        let fake = FakeDocker::install(&ctx);
        let sb = Sandbox { ctx, fake };
        sb.run(&["provision"]).success();
        sb
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.ctx.cmd();
        self.fake.apply(&mut cmd);
        cmd.env("DOCKER_HOST", "ssh://fake-engine")
            .env(
                "DOCKER_SANDBOX_CONFIG",
                self.ctx.cwd.join("docker-sandbox.toml"),
            )
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd(args))
    }

    /// `docker ps` lists one container of slot 1's project in `state`,
    /// started from the slot's own compose file, as compose labels it.
    fn backend(&self, state: &str, status: &str) {
        let mut c = container("c1", "ktrdr-slot-1", "backend", state, status, "");
        let file = self.ctx.state.join("slot-1/docker-compose.yml");
        let labels = c["Labels"].as_str().unwrap().to_owned();
        c["Labels"] = format!(
            "{labels},com.docker.compose.project.config_files={}",
            file.display()
        )
        .into();
        self.fake.answer("ps.jsonl", &[c]);
    }
}

/// The keys of a pretty-printed JSON object at `indent` spaces, in the order
/// printed (`serde_json::Value` would sort them).
fn keys_at(text: &str, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut keys: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&pad)
            && let Some(rest) = rest.strip_prefix('"')
            && let Some((key, _)) = rest.split_once("\":")
            && !keys.iter().any(|k| k == key)
        {
            keys.push(key.to_owned());
        }
    }
    keys
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not one JSON value ({e}):\n{text}"))
}

#[test]
fn usage_errors_exit_64_and_help_and_version_exit_0() {
    let ctx = TestContext::new();
    for args in [
        &["claim", "--bogus"][..],
        &["up", "--timeout", "soon"],
        &["no-such-command"],
        &[],
    ] {
        let run = ctx.run(args).code(64);
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    for args in [
        &["--help"][..],
        &["up", "--help"],
        &["--version"],
        &["help", "up"],
    ] {
        ctx.run(args).success();
    }
    let run = ctx.run(&["version"]).success();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(run.stdout, format!("docker-sandbox {version}\n"));
    let run = ctx.run(&["version", "--format", "json"]).success();
    assert_eq!(keys_at(&run.stdout, 2), ["name", "version"]);
    assert_eq!(json(&run.stdout)["version"], version);
}

#[test]
fn a_usage_error_with_format_json_is_a_json_object() {
    let ctx = TestContext::new();
    let run = ctx.run(&["slots", "--format", "json", "--bogus"]).code(64);
    assert_eq!(
        keys_at(&run.stdout, 2),
        ["error", "hint", "exit_code", "slot"]
    );
    let v = json(&run.stdout);
    assert_eq!(v["exit_code"], 64);
    assert!(v["error"].as_str().unwrap().contains("--bogus"), "{v}");
    assert!(run.stderr.contains("--bogus"), "{}", run.stderr);
}

#[test]
fn a_failed_gate_with_format_json_is_one_object_in_the_readme_order() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    sb.backend("exited", "Exited (1) 3 seconds ago");
    let run = sb.run(&["up", "--format", "json"]).code(2);
    assert_eq!(
        keys_at(&run.stdout, 2),
        [
            "error",
            "hint",
            "exit_code",
            "slot",
            "project",
            "result",
            "seconds",
            "checks"
        ],
        "{}",
        run.stdout
    );
    assert_eq!(keys_at(&run.stdout, 6), ["check", "passed", "detail"]);
    let v = json(&run.stdout);
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["slot"], 1);
    assert_eq!(v["result"], "gate-failed");
    // The failed check is named by what failed, not by what was hoped for.
    let error = v["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "slot 1 did not become ready: not every container is running and healthy \
             (service `backend` exited with code 1)"
        ),
        "{error}"
    );
    assert!(
        !error.contains("containers are running and healthy"),
        "{error}"
    );
    assert!(v["hint"].as_str().unwrap().contains("the claim is kept"));
    // People still read the report and the error on stderr.
    assert!(
        run.stderr.contains("error: slot 1 did not become ready"),
        "{}",
        run.stderr
    );
}

#[test]
fn other_json_errors_name_the_slot_when_it_is_known() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    sb.fake.fail("compose-down", 3, "");
    let run = sb.run(&["down", "--format", "json"]).code(1);
    let v = json(&run.stdout);
    assert_eq!(v["slot"], 1, "{v}");
    assert_eq!(v["exit_code"], 1);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("`compose down` failed"),
        "{v}"
    );
    // Not in a worktree: no slot.
    let outside = sb.ctx.root.join("plain");
    std::fs::create_dir_all(&outside).unwrap();
    let mut cmd = sb.cmd(&["status", "--format", "json"]);
    cmd.current_dir(&outside);
    let run = TestContext::run_cmd(cmd).code(1);
    let v = json(&run.stdout);
    assert_eq!(v["slot"], serde_json::Value::Null);
    assert!(v["hint"].is_string() || v["hint"].is_null());
}

#[test]
fn down_doctor_and_destroy_json_keys_follow_the_readme() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    let run = sb.run(&["down", "--format", "json"]).success();
    assert_eq!(
        keys_at(&run.stdout, 2),
        ["slot", "project", "worktree", "volumes_removed"]
    );
    let run = sb.run(&["doctor", "--format", "json"]);
    assert_eq!(keys_at(&run.stdout, 2), ["ok", "checks"], "{}", run.stdout);
    assert_eq!(
        keys_at(&run.stdout, 6),
        ["check", "level", "detail", "hint"]
    );
    let run = sb
        .run(&["destroy", "--keep-worktree", "--format", "json"])
        .success();
    assert_eq!(
        keys_at(&run.stdout, 2),
        ["worktree", "worktree_removed", "slot", "removed"],
        "{}",
        run.stdout
    );
    let v = json(&run.stdout);
    assert_eq!(v["slot"], 1);
    assert_eq!(v["worktree_removed"], false);
    assert_eq!(v["worktree"], serde_json::json!(sb.ctx.cwd));
}

#[test]
fn env_json_keeps_the_files_order() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    let run = sb.run(&["env", "--format", "json"]).success();
    let file = std::fs::read_to_string(sb.ctx.cwd.join(".env.sandbox")).unwrap();
    let in_file: Vec<String> = file
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| l.split_once('=').unwrap().0.to_owned())
        .collect();
    assert_eq!(keys_at(&run.stdout, 2), in_file);
    assert_eq!(in_file[0], "SLOT_ID", "{file}");
}

#[test]
fn create_up_with_format_json_keeps_the_create_fields() {
    let sb = Sandbox::new("gate = []\n");
    // The fake engine lists the new slot's container as up and healthy.
    sb.backend("running", "Up 5 seconds (healthy)");
    let run = sb
        .run(&["create", "feat-x", "--up", "--format", "json"])
        .success();
    assert_eq!(
        keys_at(&run.stdout, 2),
        ["worktree", "branch", "new_branch", "claim", "up"],
        "{}",
        run.stdout
    );
    let v = json(&run.stdout);
    assert_eq!(v["branch"], "feat-x");
    assert_eq!(v["claim"]["slot"], 1);
    assert_eq!(v["up"]["slot"], 1);
    assert!(v["up"]["result"].is_string(), "{v}");
}

/// `bin/docker` becomes a wrapper that prints compose-like progress on
/// stderr for `compose up`, then runs the fake.
fn chatty_compose(sb: &Sandbox) {
    let real = sb.ctx.bin.join("fake-docker");
    std::fs::rename(&sb.fake.docker, &real).unwrap();
    write_executable(
        &sb.fake.docker,
        &format!(
            "#!/bin/bash\nfor a in \"$@\"; do [ \"$a\" = up ] && echo ' ✔ Container PROGRESS-LINE Started' >&2; done\nexec {} \"$@\"\n",
            real.display()
        ),
    );
}

#[test]
fn compose_progress_is_shown_off_a_terminal_only_when_compose_fails_or_verbose() {
    let sb = Sandbox::new("gate = []\n");
    chatty_compose(&sb);
    let run = sb.run(&["up", "--no-wait"]).success();
    assert!(!run.stderr.contains("PROGRESS-LINE"), "{}", run.stderr);
    assert!(run.stderr.contains("Starting slot 1"), "{}", run.stderr);
    let run = sb.run(&["up", "--no-wait", "--verbose"]).success();
    assert_eq!(
        run.stderr.matches("PROGRESS-LINE").count(),
        1,
        "{}",
        run.stderr
    );
    sb.fake.fail(
        "compose-up",
        1,
        "Error response from daemon: no such image\n",
    );
    let run = sb.run(&["up", "--no-wait"]).code(1);
    for part in [
        "compose's output:\n",
        "PROGRESS-LINE",
        "no such image",
        "error: `compose up` failed for slot 1",
    ] {
        assert!(run.stderr.contains(part), "{part}\n---\n{}", run.stderr);
    }
}

#[test]
fn up_help_does_not_claim_a_fixed_gate_timeout() {
    let ctx = TestContext::new();
    let run = ctx.run(&["up", "--help"]).success();
    let words = run.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("(default: the pool's gate_timeout, 120 s unless set)"),
        "{}",
        run.stdout
    );
}

/// Every exit code a command's `--help` lists is in the README's table or
/// its text about that command; the README lists every command.
#[test]
fn the_readme_matches_each_commands_help() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table: String = readme
        .split("## Exit codes")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("the README has an exit code section")
        .to_owned();
    let ctx = TestContext::new();
    let top = ctx.run(&["--help"]).success().stdout;
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(commands.len() > 15, "{commands:?}");
    assert!(
        !readme.contains("Seed 003"),
        "the README speaks of the codes themselves, not of where they came from"
    );
    for command in &commands {
        assert!(
            readme.contains(&format!("| `{command}")),
            "the README's command table lacks `{command}`"
        );
        let help = ctx.run(&[command, "--help"]).success().stdout;
        let Some(codes) = help.split("Exit codes").nth(1) else {
            continue;
        };
        for code in codes
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .filter(|w| *w != "0")
        {
            // A code in the table's first column, or next to the command's name.
            let in_table = table.contains(&format!("| {code} |"))
                || table.contains(&format!("| {code}, "))
                || table.contains(&format!(", {code} |"))
                || table.contains(&format!("| {code}+"));
            assert!(
                in_table,
                "`{command} --help` lists exit code {code}, which the README's table lacks"
            );
        }
    }
}

#[test]
fn list_without_an_engine_says_the_state_is_unknown() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    sb.backend("running", "Up 5 seconds (healthy)");
    sb.run(&["up"]).success();
    assert_eq!(sb.ctx.registry()["slots"]["1"]["status"], "running");
    sb.fake.fail(
        "ps",
        1,
        "Cannot connect to the Docker daemon at tcp://127.0.0.1:1.\n",
    );
    let run = sb.run(&["list"]).success();
    assert!(run.stdout.contains("unknown"), "{}", run.stdout);
    assert!(!run.stdout.contains("running"), "{}", run.stdout);
    assert!(
        run.stderr
            .starts_with("warning: the slots' state is unknown: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("\nhint: start Docker"),
        "{}",
        run.stderr
    );
    let run = sb.run(&["list", "--format", "json"]).success();
    let v = json(&run.stdout);
    assert_eq!(v["live"], false);
    assert_eq!(v["worktrees"][0]["status"], "unknown", "{v}");
}

#[test]
fn down_and_logs_without_an_engine_say_so_as_everywhere() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    let raw =
        "Cannot connect to the Docker daemon at tcp://127.0.0.1:1. Is the docker daemon running?\n";
    sb.fake.fail("version", 1, raw);
    sb.fake.fail("compose-down", 1, raw);
    sb.fake.fail("compose-logs", 1, raw);
    for args in [&["down"][..], &["logs"], &["logs", "-f", "backend"]] {
        let run = sb.run(args).code(1);
        assert!(
            run.stderr
                .starts_with("error: cannot reach the Docker engine"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("\nhint: start Docker"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("compose down"), "{}", run.stderr);
    }
    // Nothing was asked of compose.
    assert!(
        !sb.fake
            .calls()
            .iter()
            .any(|c| c.iter().any(|a| a == "down" || a == "logs")),
        "{:?}",
        sb.fake.calls()
    );
}

#[test]
fn home_unset_is_fine_when_docker_sandbox_home_is_set() {
    let ctx = TestContext::new();
    ctx.git_init();
    for args in [&["provision"][..], &["slots"], &["doctor"]] {
        let mut cmd = ctx.cmd();
        cmd.args(args)
            .env_remove("HOME")
            .env("DOCKER_HOST", "ssh://fake-engine");
        let run = TestContext::run_cmd(cmd);
        assert!(
            !run.stderr.contains("HOME is not set"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("HOME is not set"),
            "{args:?}: {}",
            run.stdout
        );
    }
    assert!(ctx.state.join("slot-1").is_dir());
    let env = env_file(&ctx.state.join("slot-1/.env.sandbox"));
    assert_eq!(
        env["KTRDR_SHARED_DIR"],
        ctx.state.join("shared").display().to_string()
    );
}

#[test]
fn a_bad_docker_sandbox_compose_hints_at_the_variable() {
    let sb = Sandbox::new("gate = []\n");
    let mut cmd = sb.cmd(&["up"]);
    cmd.env("DOCKER_SANDBOX_COMPOSE", "nosuch");
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr
            .starts_with("error: DOCKER_SANDBOX_COMPOSE=`nosuch` names no program that can be run"),
        "{}",
        run.stderr
    );
    let hint = run
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap();
    assert!(
        hint.contains("set DOCKER_SANDBOX_COMPOSE to `plugin`"),
        "{hint}"
    );
    let mut cmd = sb.cmd(&["doctor"]);
    cmd.env("DOCKER_SANDBOX_COMPOSE", "nosuch");
    let run = TestContext::run_cmd(cmd).code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("✗ compose"))
        .unwrap();
    assert!(
        lines[at + 1].contains("hint: set DOCKER_SANDBOX_COMPOSE to `plugin`"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("install the compose plugin"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bad_lock_timeout_is_an_error_naming_the_variable() {
    let sb = Sandbox::new("gate = []\n");
    let before = tree(&sb.ctx.root);
    for value in ["abc", "-1", "1s"] {
        let mut cmd = sb.cmd(&["claim"]);
        cmd.env("DOCKER_SANDBOX_LOCK_TIMEOUT", value);
        let run = TestContext::run_cmd(cmd).code(1);
        assert!(
            run.stderr.starts_with(&format!(
                "error: DOCKER_SANDBOX_LOCK_TIMEOUT=`{value}` is not a number of seconds\n"
            )),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("hint: set DOCKER_SANDBOX_LOCK_TIMEOUT to the seconds"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(tree(&sb.ctx.root), before, "nothing may change");
    let mut cmd = sb.cmd(&["slots"]);
    cmd.env("DOCKER_SANDBOX_LOCK_TIMEOUT", "2.5");
    TestContext::run_cmd(cmd).success();
}

#[test]
fn template_errors_are_plain_words() {
    let ctx = TestContext::new();
    ctx.git_init();
    let tpl = ctx.cwd.join("tpl");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("docker-compose.yml.hbs"),
        "services:\n  app:\n    image: {{worker}}\n",
    )
    .unwrap();
    std::fs::write(tpl.join("env.sandbox.hbs"), "SLOT_ID={{slot}}\n").unwrap();
    ctx.write_project_file("gate = []\n[pool]\ntemplates = \"tpl\"\n[ports]\nweb = [7000, 1]\n");
    let run = ctx.run(&["provision"]).code(1);
    let file = tpl.join("docker-compose.yml.hbs");
    assert!(
        run.stderr.starts_with(&format!(
            "error: template `{}`, line 3: variable `worker` is not defined (slot 1)\n",
            file.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Some("), "{}", run.stderr);
    assert!(!run.stderr.contains("strict mode"), "{}", run.stderr);
    std::fs::write(tpl.join("docker-compose.yml.hbs"), "a: {{#if}}\n").unwrap();
    let run = ctx.run(&["provision"]).code(1);
    assert!(
        run.stderr.contains("does not parse, line "),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("-->"), "{}", run.stderr);
}

/// Runs `args` on a pseudo-terminal that reports `cols` columns.
fn on_a_terminal(ctx: &TestContext, cols: u16, columns: Option<&str>, args: &str) -> String {
    let mut cmd = ctx.command("script");
    let columns = match columns {
        Some(c) => format!("export COLUMNS={c}"),
        None => "unset COLUMNS".to_owned(),
    };
    cmd.args([
        "-qec",
        &format!("stty cols {cols} rows 0; {columns}; DOCKER_HOST=ssh://fake-engine {BIN} {args}"),
        "/dev/null",
    ]);
    let run = TestContext::run_cmd(cmd).success();
    // The terminal shows stderr too: keep the table.
    run.stdout
        .replace('\r', "")
        .lines()
        .filter(|l| l.starts_with(['╭', '│', '╞', '├', '╰']))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn tables_on_a_terminal_of_no_width_take_80_columns_or_columns() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let out = on_a_terminal(&ctx, 0, None, "slots");
    assert!(out.contains("│ Slot ┆ Profile "), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    let out = on_a_terminal(&ctx, 0, Some("50"), "slots");
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 50 && widest > 40, "{widest}\n{out}");
    // A terminal's own width holds when COLUMNS is not set.
    let out = on_a_terminal(&ctx, 60, None, "slots");
    assert!(out.lines().all(|l| l.chars().count() <= 60), "{out}");
}

#[test]
fn the_worktrees_env_file_says_it_is_generated_and_keeps_added_lines() {
    let sb = Sandbox::new("gate = []\n");
    sb.run(&["claim"]).success();
    let path = sb.ctx.cwd.join(".env.sandbox");
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(
        first.starts_with("# Generated by docker sandbox for slot 1: do not edit;"),
        "{first}"
    );
    let port = env_file(&path)["DB_PORT"].clone();
    let edited = first.replace(&format!("\nDB_PORT={port}\n"), "\nDB_PORT=1\n") + "MY_FLAG=on\n";
    std::fs::write(&path, edited).unwrap();
    let run = sb.run(&["claim"]).success();
    assert!(
        run.stderr.contains(&format!(
            "warning: `{}`: the slot's values were written again over DB_PORT (",
            path.display()
        )),
        "{}",
        run.stderr
    );
    let now = std::fs::read_to_string(&path).unwrap();
    assert_eq!(now, format!("{first}# Added by hand, kept\nMY_FLAG=on\n"));
    assert_eq!(mode(&path), 0o600);
    // Written again, the kept line stays once.
    sb.run(&["claim"]).success();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), now);
}

#[test]
fn init_shared_says_whether_any_slot_mounts_the_folders() {
    let ctx = TestContext::new();
    ctx.git_init();
    let run = ctx.run(&["init-shared", "--minimal"]).success();
    assert!(
        run.stdout.contains("; every slot mounts it."),
        "{}",
        run.stdout
    );
    let tpl = ctx.cwd.join("tpl");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("docker-compose.yml.hbs"),
        "services:\n  app:\n    image: x\n",
    )
    .unwrap();
    std::fs::write(tpl.join("env.sandbox.hbs"), "SLOT_ID={{slot}}\n").unwrap();
    ctx.write_project_file(
        "[pool]\nname = \"app\"\ntemplates = \"tpl\"\n[ports]\nweb = [7000, 1]\n",
    );
    let run = ctx.run(&["init-shared", "--minimal"]).success();
    assert!(
        !run.stdout.contains("every slot mounts it"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "; no slot mounts it: the pool's compose template uses neither `{{shared_dir}}` nor `${APP_SHARED_DIR}`."
        ),
        "{}",
        run.stdout
    );
}

/// The top-level keys the README's "JSON output" section lists for `command`.
fn readme_keys(command: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## JSON output")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    // Bullets with their continuation lines joined.
    let text = section.replace("\n  ", " ");
    let bullet = text
        .lines()
        .find(|l| l.starts_with(&format!("- `{command}`: `{{")))
        .unwrap_or_else(|| panic!("the README documents no JSON for `{command}`"));
    let object = &bullet[bullet.find("`{").unwrap() + 2..];
    let (mut depth, mut keys, mut key) = (0, Vec::new(), String::new());
    for c in object.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' if depth == 0 => break,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => keys.push(std::mem::take(&mut key)),
            _ if depth == 0 => key.push(c),
            _ => {}
        }
    }
    keys.push(key);
    keys.iter()
        .map(|k| k.split(':').next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn every_json_output_has_the_readmes_keys_in_its_order() {
    let sb = Sandbox::new("gate = []\n");
    let check = |command: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let run = sb.run(&all);
        assert_eq!(
            keys_at(&run.stdout, 2),
            readme_keys(command),
            "{all:?}\n{}\n{}",
            run.stdout,
            run.stderr
        );
    };
    check("provision", &["provision"]);
    check("slots", &["slots"]);
    check("claim", &["claim"]);
    sb.backend("running", "Up 5 seconds (healthy)");
    check("up", &["up"]);
    check("status", &["status"]);
    check("list", &["list"]);
    check("doctor", &["doctor"]);
    check("down", &["down"]);
    check("release", &["release"]);
    check("gc", &["gc"]);
    check("claim", &["init"]);
    check("create", &["create", "other"]);
    check("destroy", &["destroy", "--keep-worktree"]);
    check("version", &["version"]);
}

#[test]
fn a_failed_create_up_with_format_json_still_names_what_was_created() {
    let sb = Sandbox::new("gate = []\n");
    sb.backend("exited", "Exited (1) 3 seconds ago");
    let run = sb
        .run(&["create", "feat-y", "--up", "--format", "json"])
        .code(2);
    assert_eq!(
        keys_at(&run.stdout, 2),
        [
            "error",
            "hint",
            "exit_code",
            "slot",
            "project",
            "result",
            "seconds",
            "checks",
            "create"
        ],
        "{}",
        run.stdout
    );
    assert_eq!(
        keys_at(&run.stdout, 4)[..4],
        ["worktree", "branch", "new_branch", "claim"]
    );
    let v = json(&run.stdout);
    assert_eq!(v["result"], "gate-failed");
    let worktree = sb.ctx.root.join("work--feat-y");
    assert_eq!(v["create"]["worktree"], serde_json::json!(worktree));
    assert_eq!(v["create"]["claim"]["slot"], 1);
    assert!(worktree.is_dir(), "the worktree stays, with its claim");
}

#[test]
fn compose_progress_is_shown_on_a_terminal() {
    let sb = Sandbox::new("gate = []\n");
    chatty_compose(&sb);
    let mut cmd = sb.ctx.command("script");
    sb.fake.apply(&mut cmd);
    cmd.env("DOCKER_HOST", "ssh://fake-engine")
        .env(
            "DOCKER_SANDBOX_CONFIG",
            sb.ctx.cwd.join("docker-sandbox.toml"),
        )
        .args(["-qec", &format!("{BIN} up --no-wait"), "/dev/null"]);
    let run = TestContext::run_cmd(cmd).success();
    assert!(run.stdout.contains("PROGRESS-LINE"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Slot 1 (light) started"),
        "{}",
        run.stdout
    );
}
