//! A port of a slot held by something the pool does not know (another
//! program, a stack started by hand): a fresh `up` goes to another slot, asking
//! for that slot is a port conflict (exit 3), and so is starting it.

use crate::support::*;

#[test]
fn a_foreign_listener_on_a_slot_port_is_avoided_or_refused_with_exit_3() {
    let w = World::new(10);
    let api1 = w.port(1, "api");
    let db1 = w.port(1, "db");
    let a = w.worktree("a");
    let b = w.worktree("b");
    let c = w.worktree("c");

    let listener = occupy(api1);
    // Asking for slot 1 names the port and how to find its owner.
    let refused = w.run(&b, &["claim", "--slot", "1"]).code(3);
    refused.assert_stderr_contains(&format!("port {api1} of slot 1 is in use"));
    refused.assert_stderr_contains(&format!("sport = :{api1}"));
    assert_eq!(w.slot_of(&b), None, "a refused claim records nothing");

    // A fresh `up` passes over slot 1 and starts slot 2.
    w.run(&a, &["up"])
        .success()
        .assert_stdout_contains("Slot 2 (light) is up and ready");
    assert_eq!(w.slot_of(&a), Some(2));
    assert_healthy(w.port(2, "api"));
    assert_eq!(assert_healthy(w.port(2, "api"))["slot"], "2");
    assert_nothing_left(&w.project(1));
    drop(listener);

    // A worktree that holds slot 1 cannot start it while a port is taken.
    w.run(&c, &["claim", "--slot", "1"]).success();
    let listener = occupy(db1);
    let up = w.run(&c, &["up", "--timeout", "20"]).code(3);
    up.assert_stderr_contains(&format!("port {db1} of slot 1 is in use"));
    assert_nothing_left(&w.project(1));
    assert_eq!(w.slot_of(&c), Some(1), "the claim is kept");
    drop(listener);

    // Freed, it starts.
    w.run(&c, &["up"]).success();
    assert_eq!(assert_healthy(api1)["slot"], "1");
    w.run(&a, &["release"]).success();
    w.run(&c, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
