//! Slots across several engines (`[engines.NAME]`): claims placed on the
//! local engine and on the two extra ones of `engines.sh`, each stack
//! answering on its own engine's address, and `release` leaving nothing on
//! any of them. Number 30.

use crate::engines::{Engines, engines};
use crate::support::*;

/// The pool's three engines, one slot each: the first extra engine through
/// its unix socket (so its address is given), the second through ssh.
const ENGINES: &str = r#"
[[gate]]
http = "api"
path = "/slot"
status = 200

[engines.local]
max_slots = 1

[engines.dse1]
context = "dse1"
address = "10.231.1.2"
max_slots = 1

[engines.dse2]
context = "dse2-ssh"
max_slots = 1
"#;

fn env(e: &Engines) -> Vec<(String, String)> {
    let path = format!(
        "{}:{}",
        e.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    vec![
        ("DOCKER_CONFIG".into(), e.config.display().to_string()),
        ("PATH".into(), path),
    ]
}

/// What of project `project` engine `context` still has.
fn left_on(e: &Engines, context: &str, project: &str) -> String {
    let label = format!("label=com.docker.compose.project={project}");
    ["ps -aq", "volume ls -q", "network ls -q"]
        .iter()
        .map(|what| {
            let mut args: Vec<&str> = what.split(' ').collect();
            args.extend(["--filter", &label]);
            e.docker_ok(context, &args)
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn claims_land_on_every_engine_and_answer_on_its_address() {
    let e = engines();
    let w = World::with_pool_stack(30, Compose::V2, "e2e30", "templates-engines", ENGINES);
    let env = env(e);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let trees: Vec<_> = (1..=3).map(|i| w.worktree(&format!("m{i}"))).collect();
    for wt in &trees {
        w.run_with(wt, &["up"], &env)
            .success()
            .assert_stdout_contains("is up and ready");
    }
    let slots = w
        .run_with(&w.repo, &["slots", "--format", "json"], &env)
        .success()
        .json();
    let mut on = std::collections::BTreeMap::new();
    for s in slots["slots"].as_array().unwrap() {
        on.insert(
            s["engine"].as_str().unwrap().to_owned(),
            s["slot"].as_u64().unwrap() as u32,
        );
        assert_eq!(s["status"], "running", "{s}");
    }
    assert_eq!(
        on.keys().map(String::as_str).collect::<Vec<_>>(),
        ["dse1", "dse2", "local"],
        "{slots}"
    );
    for (engine, slot) in &on {
        let port = w.port(*slot, "api");
        let answer = match engine.as_str() {
            "local" => http_get(port, "/slot"),
            other => {
                let n: u8 = other[3..].parse().unwrap();
                assert!(
                    http_get(port, "/slot").is_err(),
                    "slot {slot} on {other} answers on 127.0.0.1:{port}"
                );
                http_get_at(Engines::address(n), port, "/slot")
            }
        };
        let (status, body) = answer.unwrap_or_else(|err| panic!("slot {slot} on {engine}: {err}"));
        assert_eq!((status, body.trim()), (200, slot.to_string().as_str()));
    }
    // A fourth claim finds every engine full.
    let more = w.worktree("m4");
    w.run_with(&more, &["claim"], &env)
        .code(1)
        .assert_stderr_contains("every engine of the pool is full");
    for wt in &trees {
        w.run_with(wt, &["release"], &env).success();
    }
    for (engine, slot) in &on {
        let context = if engine == "local" { "default" } else { engine };
        assert_eq!(
            left_on(e, context, &w.project(*slot)),
            "",
            "left on {engine}"
        );
    }
}
