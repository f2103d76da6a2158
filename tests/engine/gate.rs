//! The startability gate against real services: a TCP check passes only when
//! the service behind the published port accepts (Docker's userland proxy
//! accepts every connection on its own), and a stack with a service's
//! container removed is `partial`, which `up` repairs.

use crate::support::*;

const TCP_GATE: &str = "\n[[gate]]\ntcp = \"db\"\n";

/// A db that runs `sleep infinity`: its port is published, so docker-proxy
/// accepts connections on it, but nothing listens inside. The gate must say
/// so, with v2 and v1 (one world, one after the other). `--timeout 5`: the
/// gate can only fail here, so a short wait proves as much as a long one.
#[test]
fn a_db_that_does_not_listen_fails_the_tcp_check() {
    let mut w = World::with_stack(45, Compose::V2, "templates-sleepdb", TCP_GATE);
    let wt = w.worktree("nolisten");
    for compose in [Compose::V2, Compose::V1] {
        w.compose = compose;
        let up = w.run(&wt, &["up", "--timeout", "5"]).code(2);
        let slot = w.slot_of(&wt).expect("the claim is kept");
        let port = w.port(slot, "db");
        up.assert_stderr_contains(&format!("  ✗ db accepts TCP on 127.0.0.1:{port}\n"))
            .assert_stderr_contains(&format!(
                "slot {slot} did not become ready: db does not accept connections on 127.0.0.1:{port}"
            ))
            .assert_stderr_contains("nothing listens on");
        assert!(
            !up.stdout.contains("ready"),
            "{compose:?}: up must not say ready:\n{}",
            up.stdout
        );
        assert!(
            containers(&w.project(slot)).is_empty(),
            "{compose:?}: the failed up takes its stack down"
        );
    }
}

/// A real PostgreSQL without a healthcheck: while `initdb` runs it listens
/// only on its unix socket, yet docker-proxy accepts on the published port
/// from the first moment. When `up` says ready, a login works at once.
fn postgres_is_ready_when_up_says_so(n: u32, compose: Compose) {
    let w = World::with_stack(n, compose, "templates-pg", TCP_GATE);
    let wt = w.worktree("pg");
    let up = w.run(&wt, &["up"]).success();
    up.assert_stdout_contains("is up and ready");
    let slot = w.slot_of(&wt).unwrap();
    let port = w.port(slot, "db");
    let password = env_file(&wt.join(".env.sandbox"))["DB_PASSWORD"].clone();
    // One try, no retry: ready means ready.
    let got = psql(port, "sandbox", &password, "sandbox", "select 40 + 2");
    assert_eq!(
        got.as_deref(),
        Ok("42"),
        "{compose:?}: `up` said ready, but psql cannot log in\n--- up stderr:\n{}",
        up.stderr
    );
    // A second `up` finds it up, through the same check.
    w.run(&wt, &["up"])
        .success()
        .assert_stdout_contains("is already up");
    w.run(&wt, &["down", "--volumes"]).success();
}

#[test]
fn postgres_is_ready_when_up_says_so_v2() {
    postgres_is_ready_when_up_says_so(46, Compose::V2);
}

#[test]
fn postgres_is_ready_when_up_says_so_v1() {
    postgres_is_ready_when_up_says_so(47, Compose::V1);
}

/// `docker rm -f` of one service's container: the other containers still
/// run, so only the compose model shows what is missing. `status` says
/// `partial` (exit 0: it reports), `up` runs compose, and the container is
/// back, with the gate passing.
fn a_removed_container_makes_the_slot_partial_and_up_recreates_it(n: u32, compose: Compose) {
    let w = World::with_compose(n, compose);
    let wt = w.worktree("removed");
    w.run(&wt, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    let slot = w.slot_of(&wt).unwrap();
    let project = w.project(slot);
    let victim = containers(&project)
        .into_iter()
        .find(|c| c.service == "backtest-worker-1")
        .expect("the worker's container");
    docker_ok(&["rm", "-f", &victim.id]);

    let status = w.run(&wt, &["status", "--format", "json"]).success().json();
    assert_eq!(status["status"], "partial", "{compose:?}: {status:#}");
    assert_eq!(
        status["missing"],
        serde_json::json!(["backtest-worker-1"]),
        "{status:#}"
    );
    w.run(&wt, &["status"])
        .success()
        .assert_stdout_contains("partial")
        .assert_stdout_contains("No container for `backtest-worker-1`");
    assert_eq!(w.slot(slot)["status"], "partial", "`slots` agrees");
    let list = w
        .run(&w.repo, &["list", "--format", "json"])
        .success()
        .json();
    let row = list["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == wt.display().to_string())
        .unwrap_or_else(|| panic!("no row for {} in {list:#}", wt.display()))
        .clone();
    assert_eq!(row["status"], "partial", "`list` agrees: {row:#}");

    let up = w.run(&wt, &["up"]).success();
    up.assert_stdout_contains("is up and ready")
        .assert_stderr_contains(&format!("Starting slot {slot}"));
    assert_stack_running(&project);
    assert_eq!(
        w.run(&wt, &["status", "--format", "json"]).success().json()["status"],
        "running"
    );
    w.run(&wt, &["down", "--volumes"]).success();
}

#[test]
fn a_removed_container_makes_the_slot_partial_and_up_recreates_it_v2() {
    a_removed_container_makes_the_slot_partial_and_up_recreates_it(48, Compose::V2);
}

#[test]
fn a_removed_container_makes_the_slot_partial_and_up_recreates_it_v1() {
    a_removed_container_makes_the_slot_partial_and_up_recreates_it(49, Compose::V1);
}
