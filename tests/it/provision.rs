//! `provision`: messages, dry run, idempotence, repair, modes, project files,
//! and many processes at once.

use crate::support::*;

const CREATED: &str = "\
Created slot 1 (light)
Created slot 2 (light)
Created slot 3 (light)
Created slot 4 (light)
Created slot 5 (standard)
Created slot 6 (heavy)
Created 6 slot(s)
";

const SKIPPED: &str = "\
Slot 1: already exists, skipping
Slot 2: already exists, skipping
Slot 3: already exists, skipping
Slot 4: already exists, skipping
Slot 5: already exists, skipping
Slot 6: already exists, skipping
Skipped 6 existing slot(s)
";

#[test]
fn first_run_creates_six_slots_then_skips_them() {
    let ctx = TestContext::new();
    let run = ctx.run(&["provision"]).success();
    assert_eq!(run.stdout, CREATED);
    assert_eq!(run.stderr, "");
    for id in 1..=6 {
        let dir = ctx.state.join(format!("slot-{id}"));
        assert!(
            std::fs::metadata(dir.join("docker-compose.yml"))
                .unwrap()
                .len()
                > 0
        );
        let env = env_file(&dir.join(".env.sandbox"));
        assert_eq!(env["SLOT_ID"], id.to_string());
        assert_eq!(env["KTRDR_API_PORT"], (8000 + id).to_string());
        assert_eq!(env["COMPOSE_PROJECT_NAME"], format!("ktrdr-slot-{id}"));
    }
    let before = tree(&ctx.state);
    let run = ctx.run(&["provision"]).success();
    assert_eq!(run.stdout, SKIPPED);
    assert_eq!(tree(&ctx.state), before, "a second run changes nothing");
}

#[test]
fn dry_run_touches_nothing() {
    let ctx = TestContext::new();
    let before = tree(&ctx.root);
    let run = ctx.run(&["provision", "--dry-run"]).success();
    insta::assert_snapshot!("dry_run_fresh", ctx.redact(&run.stdout));
    assert_eq!(tree(&ctx.root), before);
    assert!(!ctx.state.exists(), "not even the state folder is created");

    ctx.run(&["provision"]).success();
    std::fs::remove_file(ctx.state.join("slot-2/.env.sandbox")).unwrap();
    let before = tree(&ctx.root);
    let run = ctx.run(&["provision", "--dry-run"]).success();
    assert!(
        run.stdout
            .contains("Would repair slot 2 (light): missing .env.sandbox\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Would repair 1 slot(s)\nSkipped 5 existing slot(s)\n"),
        "{}",
        run.stdout
    );
    assert_eq!(tree(&ctx.root), before);
}

#[test]
fn missing_parts_are_repaired_and_said() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let env_path = |id: u32| ctx.state.join(format!("slot-{id}/.env.sandbox"));
    let password = |id: u32| env_file(&env_path(id))["DB_PASSWORD"].clone();
    let kept = password(1);
    let old3 = password(3);

    std::fs::remove_file(env_path(3)).unwrap();
    std::fs::remove_file(ctx.state.join("slot-4/docker-compose.yml")).unwrap();
    let run = ctx.run(&["provision"]).success();
    assert!(
        run.stdout
            .contains("Repaired slot 3 (light): missing .env.sandbox\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Repaired slot 4 (light): missing docker-compose.yml\n")
    );
    assert!(
        run.stdout
            .contains("Repaired 2 slot(s)\nSkipped 4 existing slot(s)\n")
    );
    assert!(!run.stdout.contains("Created"));
    assert_eq!(mode(&env_path(3)), 0o600);
    assert_ne!(password(3), old3, "a new env file gets a new password");
    assert_eq!(password(1), kept, "other slots keep theirs");
    assert!(ctx.state.join("slot-4/docker-compose.yml").is_file());

    // A registry entry lost (say, by hand-editing) is written again.
    let mut reg = ctx.registry();
    reg["slots"].as_object_mut().unwrap().remove("5");
    std::fs::write(
        ctx.registry_path(),
        serde_json::to_string_pretty(&reg).unwrap(),
    )
    .unwrap();
    let run = ctx.run(&["provision"]).success();
    assert!(
        run.stdout
            .contains("Repaired slot 5 (standard): missing registry entry\n"),
        "{}",
        run.stdout
    );
    assert_eq!(ctx.registry()["slots"]["5"]["profile"], "standard");
}

#[test]
fn a_deleted_slot_folder_is_rebuilt_and_its_claim_kept() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let mut reg = ctx.registry();
    reg["slots"]["2"]["claimed_by"] = serde_json::json!(ctx.cwd);
    reg["slots"]["2"]["claimed_at"] = serde_json::json!("2026-11-01T10:00:00Z");
    std::fs::write(
        ctx.registry_path(),
        serde_json::to_string_pretty(&reg).unwrap(),
    )
    .unwrap();
    std::fs::remove_dir_all(ctx.state.join("slot-2")).unwrap();
    let run = ctx.run(&["provision"]).success();
    assert!(
        run.stdout.contains(
            "Repaired slot 2 (light): missing docker-compose.yml, .env.sandbox, prometheus.yml\n"
        ),
        "{}",
        run.stdout
    );
    let reg = ctx.registry();
    assert_eq!(reg["slots"]["2"]["claimed_by"], serde_json::json!(ctx.cwd));
    assert_eq!(reg["slots"]["2"]["claimed_at"], "2026-11-01T10:00:00Z");
}

#[test]
fn file_modes() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    for id in 1..=6 {
        let dir = ctx.state.join(format!("slot-{id}"));
        assert_eq!(
            mode(&dir.join(".env.sandbox")),
            0o600,
            "slot {id} env file holds a password"
        );
        assert_eq!(mode(&dir.join("docker-compose.yml")), 0o644);
    }
    assert_eq!(mode(&ctx.registry_path()), 0o644);
    // No temporary files are left beside them.
    let stray: Vec<_> = tree(&ctx.state)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn passwords_differ_per_slot() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let mut seen = std::collections::BTreeSet::new();
    for id in 1..=6 {
        let pw =
            env_file(&ctx.state.join(format!("slot-{id}/.env.sandbox")))["DB_PASSWORD"].clone();
        assert!(pw.len() >= 24, "{pw}");
        assert!(seen.insert(pw), "slot {id} repeats a password");
    }
}

#[test]
fn default_state_is_under_home() {
    let ctx = TestContext::new().use_default_state();
    ctx.run(&["provision"]).success();
    assert!(ctx.home.join(".ktrdr/sandboxes/registry.json").is_file());
    assert!(
        ctx.home
            .join(".ktrdr/sandboxes/slot-6/docker-compose.yml")
            .is_file()
    );
}

#[test]
fn home_unset_is_a_clear_error() {
    let ctx = TestContext::new().use_default_state();
    let mut cmd = ctx.cmd();
    cmd.arg("provision").env_remove("HOME");
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr
            .contains("error: cannot find the home folder: HOME is not set"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "));
}

#[test]
fn a_project_file_defines_the_pool() {
    let ctx = TestContext::new();
    ctx.git_init();
    let tpl = ctx.cwd.join("sandbox");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("docker-compose.yml.hbs"),
        "services:\n{{#each workers}}  {{service}}:\n    image: busybox\n    ports: [\"127.0.0.1:{{port}}:80\"]\n{{/each}}",
    )
    .unwrap();
    std::fs::write(
        tpl.join("env.sandbox.hbs"),
        "{{prefix}}_WEB_PORT={{ports.web}}\nPW={{password}}\n",
    )
    .unwrap();
    ctx.write_project_file(
        r#"
[pool]
name = "demo"
templates = "sandbox"

[slots]
1 = "light"
2 = "heavy"

[profiles]
heavy = { job = 3 }
light = { job = 1 }

[ports]
web = [7000, 1]
workers = [7100, 10]

[env]
FEATURE = "on"
"#,
    );
    let sub = ctx.cwd.join("deep/inside");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = ctx.cmd();
    cmd.arg("provision").current_dir(&sub);
    let run = TestContext::run_cmd(cmd).success();
    assert_eq!(
        run.stdout,
        "Created slot 1 (light)\nCreated slot 2 (heavy)\nCreated 2 slot(s)\n"
    );
    let env = env_file(&ctx.state.join("slot-2/.env.sandbox"));
    assert_eq!(env["DEMO_WEB_PORT"], "7002");
    assert_eq!(env["FEATURE"], "on");
    let compose = std::fs::read_to_string(ctx.state.join("slot-2/docker-compose.yml")).unwrap();
    assert!(
        compose.contains("job-worker-3:") && compose.contains("127.0.0.1:7122:80"),
        "{compose}"
    );
    let reg = ctx.registry();
    assert_eq!(reg["pool"], "demo");
    assert_eq!(reg["slots"]["2"]["ports"]["web"], 7002);
    assert_eq!(reg["slots"]["2"]["ports"]["worker_3"], 7122);
    assert_eq!(reg["slots"]["2"]["workers"]["job"], 3);
}

/// A project file whose ports collide is refused before anything is written.
#[test]
fn a_port_collision_is_refused_naming_both_owners() {
    let ctx = TestContext::new();
    ctx.git_init();
    let file = ctx.write_project_file(
        "# the seeds' OTLP formula\n[ports]\njaeger_otlp_grpc = [4317, 1]\njaeger_otlp_http = [4318, 1]\n",
    );
    let before = tree(&ctx.root);
    for args in [&["provision"][..], &["provision", "--dry-run"], &["slots"]] {
        let run = ctx.run(args).code(1);
        assert!(
            run.stderr
                .contains(&format!("invalid project file `{}`", file.display())),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("port 4319 is given twice"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("slot 1 `jaeger_otlp_http`"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("slot 2 `jaeger_otlp_grpc`"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
    assert_eq!(tree(&ctx.root), before);
}

#[test]
fn bad_project_files_name_the_file_and_the_key() {
    let cases: &[(&str, &str)] = &[
        ("[pool]\nname = \"Has Space\"", "[pool] name `Has Space`"),
        ("[slots]\n0 = \"light\"", "[slots] key `0`"),
        ("[slots]\n7 = \"giant\"", "unknown profile"),
        (
            "[pool]\ntemplates = \"nowhere\"",
            "nowhere/docker-compose.yml.hbs` is missing",
        ),
        ("[pool]\nunknown_key = 1", "unknown_key"),
        ("[ports]\napi = \"8000\"", "[ports] api"),
        ("[[gate]]\nhttp = \"nope\"", "port `nope` is not in [ports]"),
        ("not toml at all", "docker-sandbox.toml"),
    ];
    for (text, needle) in cases {
        let ctx = TestContext::new();
        ctx.git_init();
        let file = ctx.write_project_file(text);
        let before = tree(&ctx.root);
        let run = ctx.run(&["provision"]).code(1);
        assert!(
            run.stderr.contains(&file.display().to_string()),
            "{text}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(needle),
            "{text}: expected `{needle}` in {}",
            run.stderr
        );
        assert!(run.stderr.contains("hint: "), "{}", run.stderr);
        assert_eq!(tree(&ctx.root), before, "{text}: nothing may change");
    }
}

#[test]
fn an_explicit_project_file_must_exist() {
    let ctx = TestContext::new();
    let mut cmd = ctx.cmd();
    cmd.arg("slots")
        .env("DOCKER_SANDBOX_CONFIG", ctx.root.join("missing.toml"));
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr.contains("cannot read project file") && run.stderr.contains("missing.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_template_error_writes_nothing() {
    let ctx = TestContext::new();
    ctx.git_init();
    let tpl = ctx.cwd.join("tpl");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(tpl.join("docker-compose.yml.hbs"), "x: {{ports.missing}}\n").unwrap();
    std::fs::write(tpl.join("env.sandbox.hbs"), "A=1\n").unwrap();
    ctx.write_project_file("[pool]\ntemplates = \"tpl\"\n");
    let run = ctx.run(&["provision"]).code(1);
    assert!(
        run.stderr.contains("docker-compose.yml.hbs"),
        "{}",
        run.stderr
    );
    assert!(!ctx.state.exists());
}

/// Twenty processes provisioning at once leave one valid registry and six
/// complete slots, each created exactly once.
#[test]
fn concurrent_provisions_leave_one_valid_registry() {
    let ctx = TestContext::new();
    let children: Vec<_> = (0..20)
        .map(|_| {
            ctx.cmd()
                .arg("provision")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut created = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        created += stdout
            .lines()
            .filter(|l| l.starts_with("Created slot "))
            .count();
    }
    assert_eq!(created, 6, "each slot is created by exactly one process");
    let reg = ctx.registry();
    assert_eq!(reg["version"], 2);
    assert_eq!(reg["slots"].as_object().unwrap().len(), 6);
    for id in 1..=6 {
        let env = env_file(&ctx.state.join(format!("slot-{id}/.env.sandbox")));
        assert_eq!(env["SLOT_ID"], id.to_string());
    }
    let names: Vec<String> = std::fs::read_dir(&ctx.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("slot-"))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["registry.json", "registry.lock"],
        "no temporary files are left"
    );
}

#[test]
fn the_default_compose_file_is_valid_for_compose() {
    // Every compose on the machine (the legacy v1 and v2, whichever of them
    // are installed and in whatever order PATH finds them) parses and
    // interpolates the rendered default stack.
    let found = every_compose();
    assert!(
        !found.is_empty(),
        "no compose on this machine: install docker-compose (Debian) or the compose plugin"
    );
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    for (compose, legacy) in &found {
        for id in [1, 6] {
            let dir = ctx.state.join(format!("slot-{id}"));
            let mut cmd = ctx.command(&compose[0]);
            cmd.args(&compose[1..]).args([
                "-p",
                &format!("ktrdr-slot-{id}"),
                "--project-directory",
                ctx.cwd.to_str().unwrap(),
                "--env-file",
                dir.join(".env.sandbox").to_str().unwrap(),
                "-f",
                dir.join("docker-compose.yml").to_str().unwrap(),
                "config",
            ]);
            // v2 prints ports in long form; its JSON says the same plainly.
            if !legacy {
                cmd.args(["--format", "json"]);
            }
            let run = TestContext::run_cmd(cmd).success();
            let published = if *legacy {
                run.stdout
                    .contains(&format!("127.0.0.1:{}:8000", 8000 + id))
            } else {
                let model: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
                model["services"]["backend"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| {
                        p["host_ip"] == "127.0.0.1"
                            && p["target"] == 8000
                            && p["published"].as_str() == Some(format!("{}", 8000 + id).as_str())
                    })
            };
            assert!(published, "{compose:?}, slot {id}: {}", run.stdout);
            assert!(
                !run.stderr.contains("is not set"),
                "{compose:?}: every variable comes from the env file: {}",
                run.stderr
            );
        }
    }
}

/// Every compose that answers `version --short`, and whether it is the
/// legacy v1.
fn every_compose() -> Vec<(Vec<String>, bool)> {
    [&["docker-compose"][..], &["docker", "compose"]]
        .into_iter()
        .filter_map(|cand| {
            let out = std::process::Command::new(cand[0])
                .args(&cand[1..])
                .args(["version", "--short"])
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let version = String::from_utf8_lossy(&out.stdout);
            let legacy = version.trim().trim_start_matches('v').starts_with("1.");
            Some((cand.iter().map(|s| s.to_string()).collect(), legacy))
        })
        .collect()
}
