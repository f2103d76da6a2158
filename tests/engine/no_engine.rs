//! No engine at the other end: the commands that need one fail with exit 1
//! and say so, through the socket and through the docker CLI alike, and
//! nothing is claimed.

use serde_json::Value;

use crate::support::*;

#[test]
fn without_an_engine_commands_fail_with_a_clear_message() {
    let w = World::new(14);
    let a = w.worktree("a");
    // A unix socket the plugin talks to itself, and a tcp host it leaves to
    // the docker CLI (port 1 on loopback: refused at once).
    for host in ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"] {
        for args in [&["up"][..], &["claim"], &["gc"]] {
            let run = w.run_with(&a, args, &[("DOCKER_HOST", host)]).code(1);
            run.assert_stderr_contains("cannot reach the Docker engine");
            if host.starts_with("unix") {
                run.assert_stderr_contains("unix:///nonexistent.sock");
            }
        }
    }
    let slot = w.slot(1);
    assert_eq!(slot["claimed_by"], Value::Null, "{slot}");
    assert!(!a.join(".env.sandbox").exists());

    // With a claim: `status` and `release` need the engine too, and a
    // release that could not remove the stack keeps the claim.
    w.run(&a, &["claim"]).success();
    let nowhere = [("DOCKER_HOST", "unix:///nonexistent.sock")];
    w.run_with(&a, &["status"], &nowhere)
        .code(1)
        .assert_stderr_contains("cannot reach the Docker engine");
    w.run_with(&a, &["release"], &nowhere)
        .code(1)
        .assert_stderr_contains("cannot reach the Docker engine");
    assert_eq!(w.slot(1)["claimed_by"], a.display().to_string());
    w.run(&a, &["release"]).success();
}
