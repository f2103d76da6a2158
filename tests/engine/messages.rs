//! What `up` prints on a real stack: compose's own progress only when asked
//! for (`--verbose`, or a terminal), not in every agent's log; with v2 and v1.

use crate::support::*;

/// `db` is how this compose names slot 1's db container in its progress.
fn progress_only_with_verbose(n: u32, compose: Compose, db: &str) {
    let w = World::with_compose(n, compose);
    let a = w.worktree("a");
    let db = format!("{}{db}", w.project(1));
    let up = w.run(&a, &["up"]).success();
    assert!(
        !up.stderr.contains(&db),
        "compose's progress off a terminal, without --verbose:\n{}",
        up.stderr
    );
    up.assert_stderr_contains("Starting slot 1 with");
    up.assert_stdout_contains("Slot 1 (light) is up and ready");
    w.run(&a, &["down"]).success();
    let up = w.run(&a, &["up", "--verbose"]).success();
    up.assert_stderr_contains(&db);
    up.assert_stdout_contains("Slot 1 (light) is up and ready");
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn up_shows_compose_progress_only_with_verbose_v2() {
    progress_only_with_verbose(75, Compose::V2, "-db-1");
}

#[test]
fn up_shows_compose_progress_only_with_verbose_v1() {
    progress_only_with_verbose(76, Compose::V1, "_db_1");
}
