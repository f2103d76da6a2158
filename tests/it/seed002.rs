//! Seed 002's E2E test (cli/kinfra-slot-provisioning), step for step, with
//! `uv run kinfra sandbox` replaced by `docker sandbox`: the real docker CLI
//! finds the plugin in `$HOME/.docker/cli-plugins`, HOME is a temp folder.

use std::path::Path;

use crate::support::*;

fn docker_sandbox(ctx: &TestContext, args: &[&str]) -> Run {
    let mut cmd = ctx.command("docker");
    cmd.arg("sandbox").args(args);
    TestContext::run_cmd(cmd)
}

fn grep(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle)
}

#[test]
fn seed_002_slot_provisioning() {
    let ctx = TestContext::new().use_default_state();
    let plugins = ctx.home.join(".docker/cli-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(BIN, plugins.join("docker-sandbox")).unwrap();
    // The test runs from a repository root.
    ctx.git_init();
    let sandboxes = ctx.home.join(".ktrdr/sandboxes");

    // Step 1: clean up an existing sandboxes folder.
    if sandboxes.exists() {
        std::fs::remove_dir_all(&sandboxes).unwrap();
    }
    assert!(!sandboxes.exists());

    // Step 2: provision --dry-run shows what would be created, creates nothing.
    let out = docker_sandbox(&ctx, &["provision", "--dry-run"]).success();
    for id in 1..=6 {
        assert!(
            grep(&out.stdout, &format!("Would create slot {id}")),
            "{}",
            out.stdout
        );
    }
    assert!(
        grep(&out.stdout, "API=8001, DB=5433"),
        "dry run shows port allocations"
    );
    assert!(!sandboxes.join("slot-1").exists(), "dry run created files");

    // Step 3: provision creates the slots.
    let out = docker_sandbox(&ctx, &["provision"]).success();
    for (id, profile) in [
        (1, "light"),
        (2, "light"),
        (3, "light"),
        (4, "light"),
        (5, "standard"),
        (6, "heavy"),
    ] {
        assert!(
            grep(&out.stdout, &format!("Created slot {id} ({profile})")),
            "{}",
            out.stdout
        );
    }
    assert!(grep(&out.stdout, "Created 6 slot(s)"));

    // Step 4: all six slot folders exist.
    for id in 1..=6 {
        assert!(
            sandboxes.join(format!("slot-{id}")).is_dir(),
            "slot-{id} missing"
        );
    }

    // Step 5: each .env.sandbox has the slot's id and ports.
    let env = |id: u32| env_file(&sandboxes.join(format!("slot-{id}/.env.sandbox")));
    assert_eq!(env(1)["SLOT_ID"], "1");
    assert_eq!(env(1)["KTRDR_API_PORT"], "8001");
    assert_eq!(env(5)["SLOT_ID"], "5");
    assert_eq!(env(5)["KTRDR_API_PORT"], "8005");
    assert_eq!(env(6)["SLOT_ID"], "6");
    assert_eq!(env(6)["KTRDR_API_PORT"], "8006");
    assert_eq!(env(6)["KTRDR_DB_PORT"], "5438");
    for id in 1..=6u32 {
        let e = env(id);
        assert_eq!(e["KTRDR_API_PORT"], (8000 + id).to_string());
        assert_eq!(e["KTRDR_DB_PORT"], (5432 + id).to_string());
        assert_eq!(e["KTRDR_GRAFANA_PORT"], (3000 + id).to_string());
        assert_eq!(e["KTRDR_JAEGER_UI_PORT"], (16686 + id).to_string());
        assert_eq!(e["KTRDR_PROMETHEUS_PORT"], (9090 + id).to_string());
    }

    // Step 6: each docker-compose.yml exists, is non-empty and defines services.
    for id in 1..=6 {
        let p = sandboxes.join(format!("slot-{id}/docker-compose.yml"));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.is_empty(), "slot-{id} compose file empty");
        assert!(
            text.contains("\nservices:\n"),
            "slot-{id} compose file has no services"
        );
    }

    // Step 7: registry.json is v2 with six slots and the three profiles.
    let reg_path = sandboxes.join("registry.json");
    let reg_text = std::fs::read_to_string(&reg_path).unwrap();
    assert!(grep(&reg_text, "\"version\": 2"));
    assert_eq!(reg_text.matches("\"slot_id\":").count(), 6);
    assert!(grep(&reg_text, "\"profile\": \"light\""));
    assert!(grep(&reg_text, "\"profile\": \"standard\""));
    assert!(grep(&reg_text, "\"profile\": \"heavy\""));
    let reg: serde_json::Value = serde_json::from_str(&reg_text).unwrap();
    let profiles: Vec<&str> = (1..=6)
        .map(|i| reg["slots"][i.to_string()]["profile"].as_str().unwrap())
        .collect();
    assert_eq!(
        profiles,
        ["light", "light", "light", "light", "standard", "heavy"],
        "4:1:1"
    );

    // Step 8: slots shows a table of six slots, all stopped.
    let out = docker_sandbox(&ctx, &["slots"]).success();
    assert!(grep(&out.stdout, "Slot"), "table header");
    for col in ["Profile", "API Port", "Claimed By", "Status"] {
        assert!(grep(&out.stdout, col), "column {col}");
    }
    for id in 1..=6 {
        let row = out
            .stdout
            .lines()
            .find(|l| l.contains(&format!("{}", 8000 + id)))
            .unwrap_or_else(|| panic!("slot {id} row"));
        assert!(row.contains(&format!(" {id} ")), "{row}");
        assert!(row.contains("stopped"), "{row}");
    }
    assert!(
        grep(&out.stdout, "light") && grep(&out.stdout, "standard") && grep(&out.stdout, "heavy")
    );

    // Step 9: a second provision is idempotent.
    let out = docker_sandbox(&ctx, &["provision"]).success();
    assert!(grep(&out.stdout, "already exists, skipping"));
    assert!(
        !out.stdout.contains("Created"),
        "should not create new slots: {}",
        out.stdout
    );
    assert!(grep(&out.stdout, "Skipped 6"));

    // Step 10: clean up.
    std::fs::remove_dir_all(&sandboxes).unwrap();
    assert!(!Path::new(&sandboxes).exists());
}
