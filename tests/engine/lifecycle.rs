//! The everyday commands on a real stack: up → gate → status → down →
//! release under compose v2 and the legacy v1, `up` on a stack that is up,
//! `logs`, and the live status of `status` and `slots`.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// The basic flow under one compose, after a failed start; `announce` is how `up` names it, and
/// `db_name` the db container's name, which differs between v1 and v2.
fn basic_flow(n: u32, compose: Compose, announce: &str, db_name: &str) {
    let w = World::with_compose(n, compose);
    let project = w.project(1);
    let a = w.worktree("a");
    let api = w.port(1, "api");

    // A start that fails first: the same compose cleans it up by label, even
    // with v1's other container names.
    let failed = w
        .run_with(&a, &["up", "--timeout", "30"], &[("BACKEND_FAIL", "exit")])
        .code(2);
    failed.assert_stderr_contains(announce);
    failed.assert_stderr_contains("service `backend` exited with code 1");
    failed.assert_stderr_contains("backend: BACKEND_FAIL=exit, exiting with status 1");
    assert_nothing_left(&project);

    let up = w.run(&a, &["up"]).success();
    up.assert_stderr_contains(announce);
    up.assert_stderr_contains(&format!(
        "✓ GET http://127.0.0.1:{api}/api/v1/health answers 200"
    ));
    up.assert_stderr_contains("lists the slot's workers (2 of 2)");
    up.assert_stdout_contains("Slot 1 (light) is up and ready");
    up.assert_stdout_contains(&format!("http://127.0.0.1:{api}"));
    assert_eq!(assert_healthy(api)["workers"], 2);
    let (code, workers) = http_get(api, "/api/v1/workers").unwrap();
    assert_eq!(code, 200);
    let workers: Value = serde_json::from_str(&workers).unwrap();
    assert_eq!(workers.as_array().map(Vec::len), Some(2), "{workers}");
    assert_stack_running(&project);
    let names: Vec<String> = containers(&project).into_iter().map(|c| c.name).collect();
    assert!(
        names
            .iter()
            .any(|n| n == &db_name.replace("{project}", &project)),
        "the db container's name shows which compose made it: {names:?}"
    );

    let status = w.run(&a, &["status", "--format", "json"]).success().json();
    assert_eq!(status["status"], "running", "{status:#}");
    assert_eq!(w.slot(1)["status"], "running");

    w.run(&a, &["down"])
        .success()
        .assert_stdout_contains("Stopped slot 1");
    assert!(containers(&project).is_empty());
    assert_eq!(
        volumes(&project),
        [format!("{project}_dbdata")],
        "down keeps the data"
    );
    assert_eq!(w.slot(1)["status"], "stopped");
    assert_eq!(w.slot(1)["claimed_by"], a.display().to_string());

    w.run(&a, &["release"]).success();
    assert_nothing_left(&project);
    assert_eq!(w.slot(1)["claimed_by"], Value::Null);
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn basic_flow_with_compose_v2() {
    basic_flow(15, Compose::V2, "with docker compose 5.", "{project}-db-1");
}

#[test]
fn basic_flow_with_compose_v1() {
    basic_flow(16, Compose::V1, "docker-compose 1.29", "{project}_db_1");
}

#[test]
fn up_on_a_stack_that_is_up_is_a_quick_no_op() {
    let w = World::new(11);
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    let ids = |project: &str| {
        let mut v: Vec<String> = containers(project).into_iter().map(|c| c.id).collect();
        v.sort();
        v
    };
    let before = ids(&w.project(1));

    let again = w.run(&a, &["up"]).success();
    again.assert_stdout_contains("Slot 1 (light) is already up");
    assert!(
        !again.stderr.contains("Starting slot"),
        "compose was run again:\n{}",
        again.stderr
    );
    assert!(
        again.elapsed.as_secs_f64() < 5.0,
        "a no-op `up` took {:?}",
        again.elapsed
    );
    assert_eq!(ids(&w.project(1)), before, "the containers were replaced");
    let json = w.run(&a, &["up", "--format", "json"]).success().json();
    assert_eq!(json["result"], "already-up", "{json:#}");
    assert_eq!(ids(&w.project(1)), before);

    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn logs_show_the_stack_and_pass_compose_exit_code_through() {
    let w = World::new(12);
    let a = w.worktree("a");
    w.run(&a, &["logs"])
        .code(1)
        .assert_stderr_contains("this worktree holds no slot");
    w.run(&a, &["up"]).success();

    let all = w.run(&a, &["logs"]).success();
    all.assert_stdout_contains("backend: listening on :8000");
    all.assert_stdout_contains("db: database system is ready to accept connections");
    all.assert_stdout_contains("worker backtest-worker-1: registered with http://backend:8000");
    let db = w.run(&a, &["logs", "db"]).success();
    db.assert_stdout_contains("db: initialised /data");
    assert!(!db.stdout.contains("backend: listening"), "{}", db.stdout);
    let tail = w.run(&a, &["logs", "--tail", "1", "backend"]).success();
    assert_eq!(tail.stdout.lines().count(), 1, "{}", tail.stdout);
    assert!(
        tail.stdout.contains("backend: listening on :8000"),
        "{}",
        tail.stdout
    );

    // An unknown service: whatever compose answers is what we answer. Compose
    // v2 5.6.1 says nothing and exits 0; the legacy v1 exits 1.
    let direct = Command::new("docker")
        .current_dir(&a)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(["compose", "-p", &w.project(1), "--project-directory"])
        .arg(&a)
        .arg("--env-file")
        .arg(a.join(".env.sandbox"))
        .arg("-f")
        .arg(w.slot_dir(1).join("docker-compose.yml"))
        .args(["logs", "nosuchservice"])
        .output()
        .unwrap();
    let ours = w.run(&a, &["logs", "nosuchservice"]);
    assert_eq!(
        Some(ours.code),
        direct.status.code(),
        "compose v2's exit code should pass through: {ours:?}"
    );
    let v1 = w
        .run_with(
            &a,
            &["logs", "nosuchservice"],
            &[("DOCKER_SANDBOX_COMPOSE", "docker-compose")],
        )
        .code(1);
    v1.assert_stderr_contains("No such service: nosuchservice");

    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn status_and_slots_report_the_live_stack() {
    let w = World::new(13);
    let a = w.worktree("a");
    w.run(&a, &["status"])
        .code(1)
        .assert_stderr_contains("this worktree holds no slot");
    w.run(&a, &["up"]).success();
    let ports = w.ports(1);

    let s = w.run(&a, &["status", "--format", "json"]).success().json();
    assert_eq!(s["slot"], 1, "{s:#}");
    assert_eq!(s["profile"], "light", "{s:#}");
    assert_eq!(s["project"], w.project(1), "{s:#}");
    assert_eq!(s["worktree"], a.display().to_string(), "{s:#}");
    assert_eq!(s["status"], "running", "{s:#}");
    assert_eq!(s["ports"]["api"], ports["api"], "{s:#}");
    assert_eq!(
        s["urls"]["api"],
        format!("http://127.0.0.1:{}", ports["api"]),
        "{s:#}"
    );
    let list = s["containers"].as_array().unwrap();
    let mut services: Vec<&str> = list
        .iter()
        .map(|c| c["service"].as_str().unwrap())
        .collect();
    services.sort_unstable();
    assert_eq!(services, SERVICES, "{s:#}");
    for c in list {
        assert_eq!(c["state"], "running", "{c}");
        assert_eq!(c["health"], "healthy", "{c}");
    }
    let published = |service: &str| -> Value {
        list.iter().find(|c| c["service"] == service).unwrap()["ports"].clone()
    };
    assert_eq!(published("backend"), serde_json::json!([ports["api"]]));
    assert_eq!(published("db"), serde_json::json!([ports["db"]]));
    assert_eq!(
        published("backtest-worker-1"),
        serde_json::json!([ports["worker_1"]])
    );
    assert_eq!(w.slot(1)["status"], "running");
    assert_eq!(w.slot(2)["status"], "stopped");

    let table = w.run(&a, &["status"]).success();
    table.assert_stdout_contains("running, project");
    table.assert_stdout_contains("healthy");

    w.run(&a, &["down"]).success();
    let s = w.run(&a, &["status", "--format", "json"]).success().json();
    assert_eq!(s["status"], "stopped", "{s:#}");
    assert_eq!(s["containers"], serde_json::json!([]), "{s:#}");
    assert_eq!(w.slot(1)["status"], "stopped");
    assert_eq!(w.slot(1)["claimed_by"], a.display().to_string());

    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

/// docker-compose 1.29 colours its log prefixes even into a pipe unless
/// given `--no-color` (v2 colours only on a terminal). Colour only on a
/// terminal, never with NO_COLOR: agents read this output, so the plugin
/// passes `--no-color` when stdout is not a terminal or NO_COLOR is set.
#[test]
fn logs_under_compose_v1_have_no_colour_codes_in_a_pipe() {
    let w = World::with_compose(19, Compose::V1);
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    let logs = w.run(&a, &["logs", "db"]).success();
    logs.assert_stdout_contains("db: initialised /data");
    assert!(
        !logs.stdout.contains('\u{1b}'),
        "`logs` with NO_COLOR=1 into a pipe printed colour codes:\n{:?}",
        logs.stdout.lines().take(3).collect::<Vec<_>>()
    );
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn up_repairs_a_stack_with_a_dead_service() {
    let w = World::new(20);
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    let backend = containers(&w.project(1))
        .into_iter()
        .find(|c| c.service == "backend")
        .unwrap();
    docker_ok(&["kill", &backend.id]);

    let s = w.run(&a, &["status", "--format", "json"]).success().json();
    assert_eq!(s["status"], "partial", "{s:#}");
    assert_eq!(w.slot(1)["status"], "partial");

    // Not a no-op: compose starts what is down, and the gate checks it.
    let up = w.run(&a, &["up"]).success();
    up.assert_stdout_contains("is up and ready");
    assert_stack_running(&w.project(1));
    assert_eq!(assert_healthy(w.port(1, "api"))["workers"], 2);
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
