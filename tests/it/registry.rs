//! The registry on disk: unreadable files are errors left as they are, newer
//! versions are refused, v1 files migrate.

use crate::support::*;

/// Registries that must never be overwritten, with what the error says.
const BAD: &[(&str, &[u8], &str)] = &[
    ("corrupt", b"{ this is not json", "is not valid JSON"),
    ("truncated", b"{\n  \"version\": 2,\n  \"pool\": \"ktrdr\",\n  \"slots\": {\n    \"1\": {\n      \"slot_id\": 1,\n      \"infrastr", "is not valid JSON"),
    ("empty", b"", "is not valid JSON"),
    ("newer", b"{\"version\": 3, \"pool\": \"ktrdr\", \"slots\": {}, \"whatever\": true}\n", "has schema version 3"),
    ("wrong shape", b"{\"version\": 2, \"pool\": \"ktrdr\", \"slots\": {\"1\": {\"slot_id\": \"one\"}}}", "does not match schema v2"),
    ("other pool", b"{\"version\": 2, \"pool\": \"other\", \"slots\": {}}", "belongs to pool `other`"),
];

#[test]
fn unreadable_registries_are_errors_and_left_byte_for_byte() {
    for (what, bytes, needle) in BAD {
        for args in [
            &["provision"][..],
            &["provision", "--dry-run"],
            &["slots"],
            &["slots", "--format", "json"],
        ] {
            let ctx = TestContext::new();
            std::fs::create_dir_all(&ctx.state).unwrap();
            std::fs::write(ctx.registry_path(), bytes).unwrap();
            let before = tree(&ctx.root);
            let run = ctx.run(args).code(1);
            let file = ctx.registry_path().display().to_string();
            assert!(
                run.stderr.contains(&file),
                "{what} {args:?}: error must name the file: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains(needle),
                "{what} {args:?}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("hint: "), "{what}: {}", run.stderr);
            if args.contains(&"json") {
                // With --format json the failure is a JSON object too.
                let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
                assert_eq!(v["exit_code"], 1, "{what}: {}", run.stdout);
                assert!(v["error"].as_str().unwrap().contains(needle));
            } else {
                assert!(run.stdout.is_empty(), "{what} {args:?}: {}", run.stdout);
            }
            assert_eq!(
                std::fs::read(ctx.registry_path()).unwrap(),
                *bytes,
                "{what} {args:?}: file changed"
            );
            // Nothing else appears either: no slot folders, no stray files.
            let after = tree(&ctx.root);
            let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            assert!(
                added.iter().all(|p| p.ends_with("registry.lock")),
                "{what} {args:?}: created {added:?}"
            );
        }
    }
}

#[test]
fn a_newer_registry_says_to_upgrade() {
    let ctx = TestContext::new();
    std::fs::create_dir_all(&ctx.state).unwrap();
    std::fs::write(ctx.registry_path(), BAD[3].1).unwrap();
    let run = ctx.run(&["slots"]).code(1);
    assert!(run.stderr.contains("upgrade the plugin"), "{}", run.stderr);
}

const V1: &str = r#"{
  "instances": {
    "ktrdr--feat-a": {
      "slot": 2,
      "path": "/src/ktrdr--feat-a",
      "created_at": "2024-01-15T10:30:00Z",
      "is_worktree": true,
      "parent_repo": "/src/ktrdr2"
    }
  },
  "allocated_slots": [2],
  "local_prod": {"path": "/src/ktrdr-prod"}
}
"#;

fn assert_migrated(reg: &serde_json::Value) {
    assert_eq!(reg["version"], 2);
    assert_eq!(reg["pool"], "ktrdr");
    assert_eq!(reg["instances"]["ktrdr--feat-a"]["slot"], 2);
    assert_eq!(
        reg["instances"]["ktrdr--feat-a"]["parent_repo"],
        "/src/ktrdr2"
    );
    assert_eq!(reg["local_prod"]["path"], "/src/ktrdr-prod");
    assert_eq!(reg["slots"].as_object().unwrap().len(), 6);
    assert!(reg.get("allocated_slots").is_none());
}

#[test]
fn the_original_tools_v1_registry_is_migrated() {
    let ctx = TestContext::new().use_default_state();
    let v1 = ctx.home.join(".ktrdr/sandbox/instances.json");
    std::fs::create_dir_all(v1.parent().unwrap()).unwrap();
    std::fs::write(&v1, V1).unwrap();
    ctx.run(&["provision"]).success();
    assert_migrated(&ctx.registry());
    assert_eq!(
        std::fs::read_to_string(&v1).unwrap(),
        V1,
        "the old file is left for the old tool"
    );
}

#[test]
fn a_v1_registry_json_is_migrated_in_place() {
    let ctx = TestContext::new();
    std::fs::create_dir_all(&ctx.state).unwrap();
    std::fs::write(ctx.registry_path(), V1).unwrap();
    // Reading does not rewrite it...
    let run = ctx.run(&["slots"]).success();
    assert!(
        run.stdout.contains("No slots provisioned"),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read_to_string(ctx.registry_path()).unwrap(), V1);
    // ...a change writes it as v2.
    ctx.run(&["provision"]).success();
    assert_migrated(&ctx.registry());
    let text = std::fs::read_to_string(ctx.registry_path()).unwrap();
    assert!(
        text.starts_with("{\n  \"version\": 2,"),
        "pretty-printed v2: {text}"
    );
}

#[test]
fn the_registry_has_the_v2_shape() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let reg = ctx.registry();
    let s6 = &reg["slots"]["6"];
    assert_eq!(s6["slot_id"], 6);
    assert_eq!(s6["profile"], "heavy");
    assert_eq!(
        s6["workers"],
        serde_json::json!({"backtest": 4, "training": 4})
    );
    assert_eq!(s6["ports"]["api"], 8006);
    assert_eq!(s6["ports"]["db"], 5438);
    assert_eq!(s6["ports"]["jaeger_otlp_http"], 4378);
    assert_eq!(s6["ports"]["worker_8"], 5067);
    assert_eq!(
        s6["infrastructure_path"],
        serde_json::json!(ctx.state.join("slot-6"))
    );
    assert_eq!(s6["claimed_by"], serde_json::Value::Null);
    assert_eq!(s6["claimed_at"], serde_json::Value::Null);
    assert_eq!(s6["status"], "stopped");
    assert_eq!(reg["instances"], serde_json::json!({}));
    assert_eq!(reg["local_prod"], serde_json::Value::Null);
}

#[test]
fn a_held_lock_makes_writers_wait_then_time_out() {
    let ctx = TestContext::new();
    std::fs::create_dir_all(&ctx.state).unwrap();
    // Hold the lock from another process: flock(1) is in util-linux.
    let mut holder = std::process::Command::new("flock")
        .arg(ctx.state.join("registry.lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut cmd = ctx.cmd();
    cmd.arg("provision").env("DOCKER_SANDBOX_LOCK_TIMEOUT", "1");
    let run = TestContext::run_cmd(cmd).code(1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(run.stderr.contains("waiting for lock on"), "{}", run.stderr);
    assert!(run.stderr.contains("timed out after"), "{}", run.stderr);
    assert!(!ctx.registry_path().exists());
    // Readers never wait for the lock.
    ctx.run(&["slots"]).success();
}

#[test]
fn a_held_slot_lock_makes_gc_say_it_waits_then_time_out() {
    let ctx = TestContext::new();
    ctx.git_init();
    ctx.write_project_file("[slots]\n1 = \"light\"\n2 = \"light\"\n");
    ctx.run(&["provision"]).success();
    // Slot 2 retired: `gc` frees it under its lifecycle lock.
    ctx.write_project_file("[slots]\n1 = \"light\"\n");
    let fake = crate::fake_docker::FakeDocker::install(&ctx);
    let lock = ctx.state.join("slot-2").join(".lifecycle.lock");
    let ready = ctx.root.join("lock-held");
    // Held by another process (flock(1) is in util-linux), which says when.
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "touch \"$0\"; exec sleep 30"])
        .arg(&ready)
        .spawn()
        .expect("flock(1) from util-linux");
    while !ready.exists() {
        assert!(holder.try_wait().unwrap().is_none(), "flock(1) ended early");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut cmd = ctx.cmd();
    fake.apply(&mut cmd);
    cmd.arg("gc")
        .env("DOCKER_HOST", "ssh://fake-engine")
        .env("DOCKER_SANDBOX_LOCK_TIMEOUT", "1");
    let run = TestContext::run_cmd(cmd).code(1);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        run.stderr
            .contains(&format!("waiting for lock on `{}`...", lock.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("timed out after"), "{}", run.stderr);
    assert!(ctx.registry()["slots"]["2"].is_object(), "slot 2 is kept");
}
