//! The Docker CLI plugin protocol: metadata, docker's argv, other names, and
//! discovery by the real docker CLI.

use crate::support::*;

fn docker_available() -> bool {
    std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the binary as `docker-<name>` where docker looks for plugins.
fn install_plugin(ctx: &TestContext, name: &str) {
    let dir = ctx.home.join(".docker/cli-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(BIN, dir.join(format!("docker-{name}"))).unwrap();
}

#[test]
fn metadata_is_one_json_object() {
    let ctx = TestContext::new();
    let run = ctx.run(&["docker-cli-plugin-metadata"]).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["SchemaVersion"], "0.1.0");
    assert_eq!(v["Vendor"], "docker-sandbox project");
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
    assert!(
        v["ShortDescription"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(v["URL"].as_str().is_some_and(|s| s.starts_with("https://")));
    assert_eq!(v.as_object().unwrap().len(), 5);
    assert!(run.stderr.is_empty());
    // Metadata never needs a home, a pool or an engine.
    let mut cmd = ctx.cmd();
    cmd.arg("docker-cli-plugin-metadata")
        .env_remove("HOME")
        .env("PATH", "/nonexistent");
    TestContext::run_cmd(cmd).success();
}

#[test]
fn docker_globals_before_the_plugin_name_are_accepted() {
    let ctx = TestContext::new();
    let mut cmd = ctx.cmd();
    cmd.args([
        "--context",
        "other",
        "-H",
        "unix:///nowhere.sock",
        "--debug",
        "--tlsverify=false",
        "-l",
        "warn",
        "sandbox",
        "provision",
        "--dry-run",
    ])
    .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker");
    let run = TestContext::run_cmd(cmd).success();
    assert!(
        run.stdout.contains("Would create slot 1 (light)"),
        "{}",
        run.stdout
    );
}

#[test]
fn running_directly_works_the_same() {
    let ctx = TestContext::new();
    let run = ctx.run(&["provision", "--dry-run"]).success();
    assert!(run.stdout.contains("Would create slot 6 (heavy)"));
}

#[test]
fn help_and_usage_errors() {
    let ctx = TestContext::new();
    let run = ctx.run(&["--help"]).success();
    assert!(
        run.stdout.contains("Usage: docker sandbox <COMMAND>"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Exit codes:"));
    // `docker help sandbox provision` reaches us as `help sandbox provision`.
    let run = ctx.run(&["help", "sandbox", "provision"]).success();
    assert!(
        run.stdout.contains("Usage: docker sandbox provision"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("--dry-run"));
    let run = ctx.run(&["provision", "--nope"]).code(64);
    assert!(run.stderr.contains("--nope"));
    ctx.run(&["no-such-command"]).code(64);
    // No command at all: the help, and a usage exit.
    let run = ctx.run(&[]).code(64);
    assert!(run.stderr.contains("Usage: docker sandbox"));
    let run = ctx.run(&["slots", "--format", "yaml"]).code(64);
    assert!(run.stderr.contains("yaml"));
}

#[test]
fn another_name_is_taken_from_the_file_name() {
    let ctx = TestContext::new();
    let kit = ctx.bin.join("docker-kit");
    std::fs::copy(BIN, &kit).unwrap();
    let mut cmd = ctx.command(&kit);
    cmd.args(["kit", "--help"])
        .env("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "docker");
    let run = TestContext::run_cmd(cmd).success();
    assert!(
        run.stdout.contains("Usage: docker kit <COMMAND>"),
        "{}",
        run.stdout
    );
    let run = TestContext::run_cmd({
        let mut c = ctx.command(&kit);
        c.arg("slots");
        c
    })
    .success();
    assert!(
        run.stdout.contains("Run `docker kit provision`"),
        "{}",
        run.stdout
    );
}

#[test]
fn real_docker_discovers_and_runs_the_plugin() {
    assert!(docker_available(), "the docker CLI is needed for this test");
    let ctx = TestContext::new();
    install_plugin(&ctx, "sandbox");
    let help = TestContext::run_cmd({
        let mut c = ctx.command("docker");
        c.arg("--help");
        c
    })
    .success();
    assert!(
        help.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("sandbox*") && l.contains("worktree")),
        "docker --help does not list the plugin:\n{}",
        help.stdout
    );
    let run = TestContext::run_cmd({
        let mut c = ctx.command("docker");
        c.args(["--context", "default", "sandbox", "provision", "--dry-run"]);
        c
    })
    .success();
    assert!(run.stdout.contains("Would create slot 1 (light)"));
    let run = TestContext::run_cmd({
        let mut c = ctx.command("docker");
        c.args(["help", "sandbox"]);
        c
    })
    .success();
    assert!(
        run.stdout.contains("Usage: docker sandbox <COMMAND>"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // The plugin's exit code becomes docker's.
    let run = TestContext::run_cmd({
        let mut c = ctx.command("docker");
        c.args(["sandbox", "slots", "--format", "bogus"]);
        c
    });
    assert_eq!(run.code, 64, "{}", run.stderr);
}

#[test]
fn real_docker_completes_the_plugins_commands_flags_and_values() {
    assert!(docker_available(), "the docker CLI is needed for this test");
    let ctx = TestContext::new();
    install_plugin(&ctx, "sandbox");
    // What docker's completion scripts (bash, zsh, fish) run on a TAB after
    // `docker sandbox`: docker asks the plugin, and passes its answer on.
    let complete = |words: &[&str]| {
        let run = TestContext::run_cmd({
            let mut c = ctx.command("docker");
            c.args(["__complete", "sandbox"]).args(words);
            c
        })
        .success();
        let mut lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
        let directive = lines.pop().unwrap_or_default();
        (lines, directive)
    };
    let (lines, directive) = complete(&[""]);
    assert!(
        lines.contains(
            &"up\tStart this worktree's slot (claiming one if needed) and wait until it is ready"
                .to_owned()
        ),
        "{lines:?}"
    );
    assert_eq!(directive, ":4", "no file names among commands");
    assert_eq!(
        complete(&["rel"]).0,
        ["release\tStop a slot, remove its containers and volumes, and free its claim"]
    );
    let (flags, _) = complete(&["up", "--"]);
    let flags: Vec<&str> = flags
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    for f in ["--build", "--no-wait", "--timeout", "--profile", "--format"] {
        assert!(flags.contains(&f), "{f} in {flags:?}");
    }
    assert_eq!(
        complete(&["claim", "--profile", ""]).0,
        ["light", "standard", "heavy"]
    );
    assert_eq!(complete(&["slots", "--format", "j"]).0, ["json"]);
    // A command to run is completed by the shell itself (directive 0).
    assert_eq!(complete(&["run", "--", ""]), (vec![], ":0".to_owned()));
    // Slot numbers come from the pool, with profile and holder.
    let (slots, _) = complete(&["release", ""]);
    assert_eq!(slots.len(), 6, "{slots:?}");
    assert_eq!(slots[0], "1\tlight, free");
    assert_eq!(slots[5], "6\theavy, free");
    assert_eq!(complete(&["claim", "--slot", "5"]).0, ["5\tstandard, free"]);
}

#[test]
fn real_docker_runs_the_plugin_under_another_name() {
    assert!(docker_available(), "the docker CLI is needed for this test");
    let ctx = TestContext::new();
    install_plugin(&ctx, "kit");
    let run = TestContext::run_cmd({
        let mut c = ctx.command("docker");
        c.args(["kit", "provision"]);
        c
    })
    .success();
    assert!(run.stdout.contains("Created 6 slot(s)"), "{}", run.stdout);
    let run = TestContext::run_cmd({
        let mut c = ctx.command("docker");
        c.args(["kit", "--help"]);
        c
    })
    .success();
    assert!(
        run.stdout.contains("Usage: docker kit <COMMAND>"),
        "{}",
        run.stdout
    );
}
