//! The original tool's fourth failure: a start that failed left its
//! containers and volumes behind. Here a failed `up` (a service that exits, a
//! gate that never passes, a compose that fails, a Ctrl-C while it waits) says
//! what failed, leaves nothing of the stack, and keeps the claim for a retry.

use crate::support::*;

/// Nothing of slot 1 runs or is stored, and `worktree` still holds it.
#[track_caller]
fn assert_clean_but_claimed(w: &World, worktree: &std::path::Path) {
    assert_nothing_left(&w.project(1));
    let slot = w.slot(1);
    assert_eq!(slot["claimed_by"], worktree.display().to_string(), "{slot}");
    assert_eq!(slot["status"], "stopped", "{slot}");
}

#[test]
fn a_service_that_exits_fails_the_gate_and_leaves_nothing() {
    let w = World::new(7);
    let a = w.worktree("a");
    // compose starts it fine (`up -d`); the backend exits 1 at once.
    let up = w
        .run_with(&a, &["up", "--timeout", "30"], &[("BACKEND_FAIL", "exit")])
        .code(2);
    up.assert_stderr_contains("Startability gate: FAILED");
    up.assert_stderr_contains("✗ containers are running and healthy");
    up.assert_stderr_contains("service `backend` exited with code 1");
    up.assert_stderr_contains("Last log lines (backend)");
    up.assert_stderr_contains("backend: BACKEND_FAIL=exit, exiting with status 1");
    up.assert_stderr_contains("slot 1 did not become ready");
    assert!(
        up.elapsed.as_secs() < 25,
        "an exited service fails the gate at once, not at the deadline: {:?}",
        up.elapsed
    );
    assert_clean_but_claimed(&w, &a);

    // The cause fixed, the same worktree starts on the claim it kept.
    w.run(&a, &["up"]).success();
    assert_eq!(w.slot_of(&a), Some(1));
    assert_healthy(w.port(1, "api"));
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn a_gate_that_never_passes_names_the_check_and_takes_the_stack_down() {
    let w = World::new(8);
    let a = w.worktree("a");
    let api = w.port(1, "api");
    // The backend runs but its health endpoint answers 500.
    let up = w
        .run_with(
            &a,
            &["up", "--timeout", "8", "--format", "json"],
            &[("BACKEND_FAIL", "1")],
        )
        .code(2);
    up.assert_stderr_contains("Startability gate: FAILED");
    up.assert_stderr_contains(&format!(
        "✗ GET http://127.0.0.1:{api}/api/v1/health answers 200"
    ));
    up.assert_stderr_contains("returned 500");
    up.assert_stderr_contains("gave up after 8s");
    up.assert_stderr_contains("Last log lines");
    up.assert_stderr_contains("backend: listening on :8000");
    up.assert_stderr_contains("the stack was taken down with its volumes");
    assert!(
        up.elapsed.as_secs() >= 8 && up.elapsed.as_secs() < 40,
        "--timeout 8 is the gate's deadline: took {:?}",
        up.elapsed
    );
    // Agents read the same report as JSON.
    let json = up.json();
    assert_eq!(json["result"], "gate-failed", "{json:#}");
    let checks = json["checks"].as_array().unwrap();
    let health = checks
        .iter()
        .find(|c| c["check"].as_str().unwrap().contains("/api/v1/health"))
        .unwrap_or_else(|| panic!("no health check in {json:#}"));
    assert_eq!(health["passed"], false, "{json:#}");
    assert_eq!(health["detail"], "returned 500", "{json:#}");
    assert_clean_but_claimed(&w, &a);
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn a_compose_up_that_fails_leaves_nothing_and_keeps_the_claim() {
    let w = World::new(9);
    let a = w.worktree("a");
    w.run(&a, &["claim"]).success();
    // A user the image does not have: compose creates the network, the
    // volume and the containers, then fails to start the backend. (The slot's
    // files are derived, so the breakage comes through the environment.)
    let broken = [("BACKEND_USER", "no-such-user")];
    let up = w.run_with(&a, &["up", "--timeout", "30"], &broken).code(1);
    up.assert_stderr_contains("`compose up` failed for slot 1");
    up.assert_stderr_contains("no-such-user");
    up.assert_stderr_contains("its containers and volumes were removed");
    up.assert_stderr_contains("the claim is kept");
    assert_clean_but_claimed(&w, &a);

    w.run(&a, &["up"]).success();
    assert_healthy(w.port(1, "api"));
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn an_up_stopped_by_ctrl_c_while_the_gate_waits_leaves_nothing() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let w = World::new(23);
    let a = w.worktree("a");
    // The backend answers 500 for ever: the gate would wait its whole timeout.
    let mut child = w
        .cmd(&a, &["up", "--timeout", "120"])
        .env("BACKEND_FAIL", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Waiting for slot 1") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "{seen}");
        seen.push_str(&line);
    }
    // The containers are created and starting: a real half-started stack.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!containers(&w.project(1)).is_empty(), "{seen}");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("`up` of slot 1 was stopped by SIGINT (Ctrl-C); the stack was taken down with its volumes"),
        "{seen}"
    );
    assert_clean_but_claimed(&w, &a);
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
