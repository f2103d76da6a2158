//! `slots`: the table, JSON, orphaned claims and the empty pool.

use crate::support::*;

#[test]
fn an_empty_pool_says_to_provision() {
    let ctx = TestContext::new();
    let run = ctx.run(&["slots"]).success();
    assert_eq!(
        run.stdout,
        format!(
            "pool ktrdr (built-in default)\nNo slots provisioned in `{}`. Run `docker sandbox provision` to create them.\n",
            ctx.state.display()
        )
    );
    assert!(!ctx.state.exists(), "listing creates nothing");
    let run = ctx.run(&["slots", "--format", "json"]).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["slots"], serde_json::json!([]));
}

#[test]
fn the_table_shows_every_slot() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let run = ctx.run(&["slots"]).success();
    insta::assert_snapshot!("slots_table", run.stdout);
}

#[test]
fn claims_and_orphans_are_shown() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let live = ctx.root.join("ktrdr--feat-live");
    std::fs::create_dir_all(&live).unwrap();
    let mut reg = ctx.registry();
    reg["slots"]["1"]["claimed_by"] = serde_json::json!(live);
    reg["slots"]["1"]["claimed_at"] = serde_json::json!("2026-11-20T09:00:00Z");
    reg["slots"]["1"]["status"] = serde_json::json!("running");
    reg["slots"]["3"]["claimed_by"] = serde_json::json!(ctx.root.join("ktrdr--feat-gone"));
    reg["slots"]["3"]["claimed_at"] = serde_json::json!("2026-11-19T09:00:00Z");
    std::fs::write(
        ctx.registry_path(),
        serde_json::to_string_pretty(&reg).unwrap(),
    )
    .unwrap();

    // Without an engine, the status column is the registry's hint, said so.
    let no_engine = || {
        let mut cmd = ctx.cmd();
        cmd.env(
            "DOCKER_HOST",
            format!("unix://{}/no-engine.sock", ctx.root.display()),
        );
        cmd
    };
    let run = TestContext::run_cmd({
        let mut c = no_engine();
        c.arg("slots");
        c
    })
    .success();
    insta::assert_snapshot!("slots_claims", run.stdout);
    assert!(run.stderr.contains("1 claim(s) orphaned"), "{}", run.stderr);
    assert!(run.stderr.contains("gc` frees them"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: status is the registry's last known state"),
        "{}",
        run.stderr
    );

    let run = TestContext::run_cmd({
        let mut c = no_engine();
        c.args(["slots", "--format", "json"]);
        c
    })
    .success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["pool"]["name"], "ktrdr");
    assert_eq!(v["live"], false);
    assert_eq!(v["state_dir"], serde_json::json!(ctx.state));
    let slots = v["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 6);
    let s1 = &slots[0];
    assert_eq!(s1["slot"], 1);
    assert_eq!(s1["profile"], "light");
    assert_eq!(s1["project"], "ktrdr-slot-1");
    assert_eq!(s1["path"], serde_json::json!(ctx.state.join("slot-1")));
    assert_eq!(s1["ports"]["api"], 8001);
    assert_eq!(s1["workers"]["backtest"], 1);
    assert_eq!(s1["claimed_by"], serde_json::json!(live));
    assert_eq!(s1["claimed_at"], "2026-11-20T09:00:00Z");
    assert_eq!(s1["orphaned"], false);
    assert_eq!(s1["status"], "running");
    assert_eq!(slots[2]["orphaned"], true);
    assert_eq!(slots[1]["claimed_by"], serde_json::Value::Null);
    assert_eq!(slots[1]["orphaned"], false);
    let keys: std::collections::BTreeSet<&str> =
        s1.as_object().unwrap().keys().map(String::as_str).collect();
    let documented = [
        "slot",
        "profile",
        "project",
        "path",
        "ports",
        "workers",
        "claimed_by",
        "claimed_at",
        "engine",
        "orphaned",
        "status",
        "retired",
        "restart_to_apply",
        "pending_ports",
    ];
    assert_eq!(
        keys,
        documented.into_iter().collect(),
        "exactly the documented fields"
    );
}

#[test]
fn a_pool_without_an_api_port_shows_its_first_port() {
    let ctx = TestContext::new();
    ctx.git_init();
    let tpl = ctx.cwd.join("t");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(tpl.join("docker-compose.yml.hbs"), "services: {}\n").unwrap();
    std::fs::write(tpl.join("env.sandbox.hbs"), "X={{ports.web}}\n").unwrap();
    ctx.write_project_file("[pool]\nname = \"web\"\ntemplates = \"t\"\n[slots]\n1 = \"light\"\n[ports]\nweb = [7000, 1]\n");
    ctx.run(&["provision"]).success();
    let run = ctx.run(&["slots"]).success();
    assert!(
        run.stdout.contains("web port") && run.stdout.contains("7001"),
        "{}",
        run.stdout
    );
}

#[test]
fn colour_only_on_a_terminal() {
    let ctx = TestContext::new();
    ctx.run(&["provision"]).success();
    let mut cmd = ctx.cmd();
    cmd.arg("slots").env_remove("NO_COLOR");
    let run = TestContext::run_cmd(cmd).success();
    assert!(!run.stdout.contains('\x1b'), "no escape codes into a pipe");
}
