//! Rendered slot files are derived: a changed template or project file
//! reaches provisioned slots, a lost file comes back with the slot's own
//! password, `provision --force`, "restart to apply", retired slots, and env
//! values that reach compose as written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};

use serde_json::Value;

use crate::fake_docker::*;
use crate::support::*;

/// Blocks of 200 ports from 6000 to 7800: apart from the lifecycle tests'
/// blocks (10000 up) and the real-engine suite's (20500 up).
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// The default pool moved into a port block of its own, with `api` at
/// `base + api_offset`; `extra` is added at the end of the file.
fn project(base: u16, api_offset: u16, top: &str, extra: &str) -> String {
    let b = u32::from(base);
    format!(
        "{NO_STEPS}{top}[ports]\napi = [{}, 1]\ndb = [{}, 1]\ngrafana = [{}, 1]\njaeger_ui = [{}, 1]\n\
         prometheus = [{}, 1]\njaeger_otlp_grpc = [{}, 10]\njaeger_otlp_http = [{}, 10]\n\
         workers = [{}, 10]\n{extra}",
        b + u32::from(api_offset),
        b + 10,
        b + 20,
        b + 30,
        b + 40,
        b + 60,
        b + 61,
        b + 130,
    )
}

struct Pool {
    ctx: TestContext,
    fake: FakeDocker,
    base: u16,
}

impl Pool {
    fn new(top: &str, extra: &str) -> Pool {
        let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        assert!(n < 9, "out of port blocks");
        let ctx = TestContext::new();
        ctx.git_init();
        let base = 6000 + 200 * n;
        ctx.write_project_file(&project(base, 0, top, extra));
        let fake = FakeDocker::install(&ctx);
        let p = Pool { ctx, fake, base };
        p.run(&["provision"]).success();
        p
    }

    fn rewrite(&self, api_offset: u16, top: &str, extra: &str) {
        self.ctx
            .write_project_file(&project(self.base, api_offset, top, extra));
    }

    fn cmd_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.ctx.cmd();
        self.fake.apply(&mut cmd);
        cmd.current_dir(dir)
            .env("DOCKER_HOST", "ssh://fake-engine")
            .env(
                "DOCKER_SANDBOX_CONFIG",
                self.ctx.cwd.join("docker-sandbox.toml"),
            )
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd_in(&self.ctx.cwd, args))
    }

    fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd_in(dir, args))
    }

    fn worktree(&self, name: &str) -> PathBuf {
        let dir = self.ctx.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        self.ctx.git(&dir, &["init", "-q", "-b", "main"]);
        dir
    }

    fn slot_dir(&self, slot: u32) -> PathBuf {
        self.ctx.state.join(format!("slot-{slot}"))
    }

    fn slot_env(&self, slot: u32) -> std::collections::BTreeMap<String, String> {
        env_file(&self.slot_dir(slot).join(".env.sandbox"))
    }

    fn password(&self, slot: u32) -> String {
        self.slot_env(slot)["DB_PASSWORD"].clone()
    }

    /// The slot's own JWT secret, a `[secrets] random` value of the default pool.
    fn jwt(&self, slot: u32) -> String {
        self.slot_env(slot)["KTRDR_AUTH_JWT_SECRET"].clone()
    }

    fn slots(&self) -> Vec<Value> {
        let run = self.run(&["slots", "--format", "json"]).success();
        let v: Value = serde_json::from_str(&run.stdout).unwrap();
        v["slots"].as_array().unwrap().clone()
    }

    fn slot(&self, id: u32) -> Value {
        self.slots()
            .into_iter()
            .find(|s| s["slot"] == id)
            .unwrap_or_else(|| panic!("no slot {id}"))
    }
}

#[test]
fn a_moved_port_reaches_unclaimed_slots_and_a_claim_keeps_its_own_until_released() {
    let p = Pool::new("", "");
    let b = p.base;
    p.run(&["claim"]).success();
    let compose_before = std::fs::read_to_string(p.slot_dir(1).join("docker-compose.yml")).unwrap();

    p.rewrite(50, "", "");
    let run = p.run(&["provision"]).success();
    assert!(
        run.stdout.contains("Slot 1: already exists, skipping\n"),
        "the claimed slot's files keep its pinned ports: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Re-rendered slot 2 (light)")
            && run.stdout.contains("Re-rendered 5 slot(s)\n"),
        "{}",
        run.stdout
    );
    for slot in 2..=6u16 {
        let key = slot.to_string();
        assert_eq!(
            p.ctx.registry()["slots"][&key]["ports"]["api"],
            b + 50 + slot
        );
        assert_eq!(
            p.slot_env(u32::from(slot))["KTRDR_API_PORT"],
            (b + 50 + slot).to_string()
        );
    }
    assert_eq!(
        std::fs::read_to_string(p.slot_dir(1).join("docker-compose.yml")).unwrap(),
        compose_before
    );
    let s1 = p.slot(1);
    assert_eq!(s1["ports"]["api"], b + 1, "pinned while claimed");
    assert_eq!(s1["pending_ports"], serde_json::json!({"api": b + 51}));
    assert_eq!(p.slot(2)["pending_ports"], serde_json::json!({}));
    let run = p.run(&["slots"]).success();
    assert!(
        run.stderr.contains(&format!(
            "slot 1 keeps its ports until released (then api {})",
            b + 51
        )),
        "{}",
        run.stderr
    );
    let status = p.run(&["status"]).success();
    assert!(
        status.stdout.contains(&format!(
            "The claim keeps its ports until released; the project file now gives api {}",
            b + 51
        )),
        "{}",
        status.stdout
    );

    // Released, the slot takes the pool's ports: registry and env file alike.
    p.run(&["release"]).success();
    assert_eq!(p.ctx.registry()["slots"]["1"]["ports"]["api"], b + 51);
    assert_eq!(p.slot_env(1)["KTRDR_API_PORT"], (b + 51).to_string());
    assert_eq!(p.slot(1)["pending_ports"], serde_json::json!({}));
}

#[test]
fn a_lost_slot_file_comes_back_with_the_slots_own_password() {
    let p = Pool::new("", "");
    p.run(&["claim"]).success();
    let pw = p.password(1);
    let jwt = p.jwt(1);
    let worktree_env = p.ctx.cwd.join(".env.sandbox");

    std::fs::remove_file(p.slot_dir(1).join("docker-compose.yml")).unwrap();
    let run = p.run(&["env", "--format", "json"]).success();
    let vars: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(vars["DB_PASSWORD"], pw.as_str());
    assert!(
        p.slot_dir(1).join("docker-compose.yml").is_file(),
        "rendered again on use"
    );
    assert_eq!(p.password(1), pw);

    // The slot's env file lost: its holder's copy still knows the password.
    std::fs::remove_file(p.slot_dir(1).join(".env.sandbox")).unwrap();
    let run = p.run(&["provision"]).success();
    assert!(
        run.stdout
            .contains("Repaired slot 1 (light): missing .env.sandbox\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        p.password(1),
        pw,
        "a repaired file keeps the volume's password"
    );
    assert_eq!(mode(&p.slot_dir(1).join(".env.sandbox")), 0o600);
    assert_eq!(env_file(&worktree_env)["DB_PASSWORD"], pw);
    assert_eq!(p.jwt(1), jwt, "and every secret of the slot");
    assert_eq!(env_file(&worktree_env)["KTRDR_AUTH_JWT_SECRET"], jwt);

    // The registry record lost too: written again, agreeing with the files.
    let mut reg = p.ctx.registry();
    let ports = reg["slots"]["1"]["ports"].clone();
    reg["slots"].as_object_mut().unwrap().remove("1");
    std::fs::write(p.ctx.registry_path(), reg.to_string()).unwrap();
    std::fs::remove_file(p.slot_dir(1).join(".env.sandbox")).unwrap();
    p.run(&["provision"]).success();
    assert_eq!(p.ctx.registry()["slots"]["1"]["ports"], ports);
    assert_eq!(p.slot_env(1)["KTRDR_API_PORT"], ports["api"].to_string());
}

#[test]
fn provision_force_renders_every_slot_again_and_keeps_every_password() {
    let p = Pool::new("", "");
    let before: Vec<String> = (1..=6).map(|s| p.password(s)).collect();
    let jwts: Vec<String> = (1..=6).map(|s| p.jwt(s)).collect();
    // A hand edit is not a second source of truth: it is rendered away.
    let compose = p.slot_dir(3).join("docker-compose.yml");
    let rendered = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(&compose, format!("{rendered}# edited by hand\n")).unwrap();
    let run = p.run(&["provision"]).success();
    assert!(
        run.stdout.contains("Re-rendered slot 3 (light)")
            && run
                .stdout
                .contains("Re-rendered 1 slot(s)\nSkipped 5 existing slot(s)\n"),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read_to_string(&compose).unwrap(), rendered);

    let files = tree(&p.ctx.state);
    let run = p.run(&["provision", "--force", "--dry-run"]).success();
    assert!(
        run.stdout.contains("Would re-render 6 slot(s)\n"),
        "{}",
        run.stdout
    );
    assert_eq!(tree(&p.ctx.state), files, "a dry run writes nothing");

    std::fs::remove_file(p.slot_dir(2).join(".env.sandbox")).unwrap();
    let run = p
        .run(&["provision", "--force", "--format", "json"])
        .success();
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let actions: Vec<&str> = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "rerendered",
            "repaired",
            "rerendered",
            "rerendered",
            "rerendered",
            "rerendered"
        ]
    );
    for s in 1..=6u32 {
        assert_eq!(mode(&p.slot_dir(s).join(".env.sandbox")), 0o600);
        if s != 2 {
            assert_eq!(
                p.password(s),
                before[s as usize - 1],
                "slot {s} keeps its password"
            );
            assert_eq!(p.jwt(s), jwts[s as usize - 1], "slot {s} keeps its secret");
        }
    }
    let first = std::fs::read_to_string(p.slot_dir(1).join(".env.sandbox")).unwrap();
    assert!(
        first.starts_with("# docker-sandbox fingerprint "),
        "{first}"
    );
}

#[test]
fn a_new_claim_gets_a_new_password_and_a_held_one_keeps_it() {
    let p = Pool::new("", "");
    let provisioned = p.password(1);
    let provisioned_jwt = p.jwt(1);
    p.run(&["claim"]).success();
    let first = p.password(1);
    let first_jwt = p.jwt(1);
    assert_ne!(first, provisioned, "a new claim's volumes start empty");
    assert_ne!(first_jwt, provisioned_jwt, "and it gets new secrets");
    assert_ne!(first_jwt, first);
    assert_eq!(
        env_file(&p.ctx.cwd.join(".env.sandbox"))["DB_PASSWORD"],
        first
    );
    p.run(&["claim"]).success();
    assert_eq!(p.password(1), first, "claiming again keeps it");
    assert_eq!(p.jwt(1), first_jwt);
    p.run(&["release"]).success();
    p.run(&["claim"]).success();
    let second = p.password(1);
    assert_ne!(second, first);
    assert_ne!(p.jwt(1), first_jwt);
    assert_eq!(
        env_file(&p.ctx.cwd.join(".env.sandbox"))["KTRDR_AUTH_JWT_SECRET"],
        p.jwt(1)
    );
    assert_eq!(
        env_file(&p.ctx.cwd.join(".env.sandbox"))["DB_PASSWORD"],
        second
    );
    assert_eq!(mode(&p.ctx.cwd.join(".env.sandbox")), 0o600);
}

#[test]
fn slots_no_longer_in_the_project_file_are_retired_and_freed_by_gc() {
    let p = Pool::new("", "");
    let other = p.worktree("other");
    p.run_in(&other, &["claim", "--slot", "6"]).success();
    p.rewrite(0, "", "[slots]\n1 = \"light\"\n2 = \"light\"\n");

    let slots = p.slots();
    let retired: Vec<u64> = slots
        .iter()
        .filter(|s| s["retired"] == true)
        .map(|s| s["slot"].as_u64().unwrap())
        .collect();
    assert_eq!(retired, [3, 4, 5, 6]);
    let run = p.run(&["slots"]).success();
    assert!(run.stdout.contains("stopped, retired"), "{}", run.stdout);
    assert!(
        run.stderr.contains("slot(s) 3, 4, 5, 6 retired"),
        "{}",
        run.stderr
    );
    let run = p.run(&["provision"]).success();
    assert!(
        run.stdout
            .contains("Slot 3: retired (no longer in [slots])"),
        "{}",
        run.stdout
    );
    // Not handed out again.
    let run = p.run(&["claim", "--slot", "4"]).code(1);
    assert!(run.stderr.contains("slot 4 is retired"), "{}", run.stderr);

    let files = tree(&p.ctx.state);
    let run = p.run(&["gc", "--dry-run"]).success();
    assert!(
        run.stdout.contains("Would free retired slot 3"),
        "{}",
        run.stdout
    );
    assert_eq!(tree(&p.ctx.state), files);
    let run = p.run(&["gc"]).success();
    for s in [3, 4, 5] {
        assert!(
            run.stdout
                .contains(&format!("Freed retired slot {s} (no longer in [slots])")),
            "{}",
            run.stdout
        );
        assert!(!p.slot_dir(s).exists());
    }
    let reg = p.ctx.registry();
    let ids: Vec<&String> = reg["slots"].as_object().unwrap().keys().collect();
    assert_eq!(
        ids,
        ["1", "2", "6"],
        "the claimed retired slot stays until released"
    );
    assert!(p.slot_dir(6).is_dir());

    p.run_in(&other, &["release"]).success();
    p.run(&["gc"]).success();
    assert!(!p.slot_dir(6).exists());
    assert!(p.ctx.registry()["slots"].get("6").is_none());
}

#[test]
fn a_running_slot_whose_files_changed_says_restart_to_apply_and_up_applies_them() {
    let p = Pool::new("gate = []\n", "");
    p.run(&["up", "--no-wait"]).success();
    assert!(p.slot_dir(1).join(".stack-fingerprint").is_file());
    // The slot's own containers: they carry this registry's id.
    let id = p.ctx.registry()["id"].as_str().unwrap().to_owned();
    let running: Vec<Value> = ["db", "backend"]
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let mut c = container(
                &format!("c{i}"),
                "ktrdr-slot-1",
                svc,
                "running",
                "Up 1 minute",
                "",
            );
            let labels = c["Labels"].as_str().unwrap().to_owned();
            c["Labels"] = format!("{labels},org.docker-sandbox.registry={id}").into();
            c
        })
        .collect();
    p.fake.answer("ps.jsonl", &running);
    assert_eq!(p.slot(1)["restart_to_apply"], false);
    let run = p.run(&["up"]).success();
    assert!(run.stdout.contains("is already up"), "{}", run.stdout);

    p.rewrite(0, "gate = []\n", "[env]\nFEATURE = \"on\"\n");
    assert_eq!(p.slot(1)["restart_to_apply"], true);
    assert_eq!(p.slot(2)["restart_to_apply"], false, "not running");
    let run = p.run(&["slots"]).success();
    assert!(
        run.stdout.contains("running, restart to apply"),
        "{}",
        run.stdout
    );
    let run = p.run(&["doctor", "--format", "json"]);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "slots")
        .unwrap()
        .clone();
    assert_eq!(check["level"], "warn");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("slot 1 runs from files that changed since (restart to apply)"),
        "{check}"
    );
    let status = p.run(&["status", "--format", "json"]).success();
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["restart_to_apply"], true);
    assert_eq!(
        p.slot_env(1)["FEATURE"],
        "on",
        "status rendered the files again"
    );

    // `up` of a running slot with changed files runs compose to apply them.
    p.fake.clear();
    let run = p.run(&["up"]).success();
    assert!(!run.stdout.contains("already up"), "{}", run.stdout);
    assert!(
        p.fake
            .calls()
            .iter()
            .any(|c| c.contains(&"up".to_owned()) && c.contains(&"-d".to_owned())),
        "compose up should run"
    );
    assert_eq!(p.slot(1)["restart_to_apply"], false);
}

#[test]
fn env_values_are_written_as_compose_reads_them() {
    let p = Pool::new(
        "",
        "[env]\nPASSWORD = \"a b$c#d 'q' \\\"r\\\"\"\nPLAIN = \"x/y:z\"\n",
    );
    let dollar = p.worktree("a$b c");
    p.run_in(&dollar, &["claim"]).success();
    let text = std::fs::read_to_string(dollar.join(".env.sandbox")).unwrap();
    assert!(
        text.contains("\nPASSWORD='a b$c#d \\'q\\' \"r\"'\n"),
        "{text}"
    );
    assert!(text.contains("\nPLAIN=x/y:z\n"), "{text}");
    assert!(
        text.contains(&format!("\nSANDBOX_WORKTREE='{}'\n", dollar.display())),
        "{text}"
    );
    let run = p.run_in(&dollar, &["env", "--format", "json"]).success();
    let vars: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(vars["PASSWORD"], "a b$c#d 'q' \"r\"");
    assert_eq!(vars["SANDBOX_WORKTREE"], dollar.display().to_string());

    // A value the two compose versions would read differently is refused.
    p.rewrite(0, "", "[env]\nBAD = \"a\\\\\\\\b\"\n");
    let run = p.run(&["slots"]).code(1);
    assert!(
        run.stderr.contains("[env] BAD: a backslash"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_password_only_the_compose_file_holds_is_kept_and_private() {
    let ctx = TestContext::new();
    ctx.git_init();
    let dir = ctx.root.join("tpl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml.hbs"),
        "services:\n  db:\n    image: x\n    environment:\n      PW: \"{{password}}\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("env.sandbox.hbs"), "SLOT_ID={{slot}}\n").unwrap();
    let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
    assert!(n < 9, "out of port blocks");
    let base = 6000 + 200 * n;
    ctx.write_project_file(&format!(
        "gate = []\n[pool]\ntemplates = \"{}\"\n[slots]\n1 = \"light\"\n[profiles]\nlight = {{}}\n[ports]\nweb = [{base}, 1]\n",
        dir.display()
    ));
    let fake = FakeDocker::install(&ctx);
    let p = Pool { ctx, fake, base };
    p.run(&["provision"]).success();
    let compose = p.slot_dir(1).join("docker-compose.yml");
    assert_eq!(mode(&compose), 0o600, "it holds the password");
    p.run(&["claim"]).success();
    let claimed = std::fs::read_to_string(&compose).unwrap();
    for _ in 0..2 {
        p.run(&["env"]).success();
        p.run(&["provision"]).success();
        assert_eq!(
            std::fs::read_to_string(&compose).unwrap(),
            claimed,
            "read back from the compose file, the password stays"
        );
    }
    assert_eq!(mode(&compose), 0o600);
}

/// A network the templates add takes a subnet of its own when the slot's
/// files are rendered again; the networks the slot had keep theirs, though
/// the new one sorts first (their order would otherwise give each the next
/// one along, and every stack a changed network).
#[test]
fn a_network_a_template_adds_moves_no_other_networks_subnet() {
    let ctx = TestContext::new();
    ctx.git_init();
    let dir = ctx.root.join("tpl");
    std::fs::create_dir_all(&dir).unwrap();
    let stack = |networks: &[&str]| {
        let list: String = networks.iter().map(|n| format!("      - {n}\n")).collect();
        let defs: String = networks.iter().map(|n| format!("  {n}: {{}}\n")).collect();
        format!("services:\n  web:\n    image: x\n    networks:\n{list}networks:\n{defs}")
    };
    std::fs::write(
        dir.join("docker-compose.yml.hbs"),
        stack(&["front", "back"]),
    )
    .unwrap();
    std::fs::write(dir.join("env.sandbox.hbs"), "SLOT_ID={{slot}}\n").unwrap();
    let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
    assert!(n < 9, "out of port blocks");
    let base = 6000 + 200 * n;
    ctx.write_project_file(&format!(
        "gate = []\n[pool]\ntemplates = \"{}\"\nsubnets = \"10.66.0.0/16\"\n[slots]\n1 = \"light\"\n[profiles]\nlight = {{}}\n[ports]\nweb = [{base}, 1]\n",
        dir.display()
    ));
    let fake = FakeDocker::install(&ctx);
    let p = Pool { ctx, fake, base };
    p.run(&["provision"]).success();
    let subnets = || {
        let text = std::fs::read_to_string(p.slot_dir(1).join("networks.yml")).unwrap();
        networks_file_json(&text)["networks"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, d)| format!("{k} {}", d["ipam"]["config"][0]["subnet"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(subnets(), ["back 10.66.0.0/26", "front 10.66.0.64/26"]);
    std::fs::write(
        dir.join("docker-compose.yml.hbs"),
        stack(&["front", "back", "api"]),
    )
    .unwrap();
    p.run(&["provision"]).success();
    assert_eq!(
        subnets(),
        [
            "api 10.66.0.128/26",
            "back 10.66.0.0/26",
            "front 10.66.0.64/26"
        ]
    );
}
