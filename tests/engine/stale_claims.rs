//! The original tool's first failure: claims of deleted worktrees stayed
//! forever, holding their slots and their running stacks. Here such a claim is
//! shown as orphaned, and `gc` or `release N` frees it with everything it ran.

use serde_json::Value;

use crate::support::*;

#[test]
fn gc_frees_a_deleted_worktrees_claim_and_removes_stray_projects() {
    let w = World::new(2);
    let a = w.worktree("a");
    let b = w.worktree("b");
    w.run(&a, &["up"]).success();
    w.run(&b, &["up"]).success();
    let sa = w.slot_of(&a).unwrap();
    let sb = w.slot_of(&b).unwrap();

    // The worktree's folder goes, behind git's back; its stack still runs.
    std::fs::remove_dir_all(&a).unwrap();
    assert_stack_running(&w.project(sa));

    let table = w.run(&w.repo, &["slots"]).success();
    table.assert_stdout_contains("repo--a (orphaned)");
    table.assert_stderr_contains("1 claim(s) orphaned");
    let orphan = w.slot(sa);
    assert_eq!(orphan["orphaned"], true, "{orphan}");
    assert_eq!(orphan["claimed_by"], a.display().to_string(), "{orphan}");
    assert_eq!(orphan["status"], "running", "{orphan}");
    assert_eq!(w.slot(sb)["orphaned"], false);

    // A compose project of this registry that no claim owns (slot 9 is not
    // even in the pool any more): a volume and a container.
    let stray = w.project(9);
    let own = w.own_labels(9);
    stale_db_volume(&stray, "nobody-remembers", &own);
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    stray_container(&stray, "db", &own);

    let dry = w.run(&w.repo, &["gc", "--dry-run"]).success();
    dry.assert_stdout_contains(&format!("Would free slot {sa}"));
    dry.assert_stdout_contains(&format!("Would remove compose project `{stray}`"));
    assert!(!dry.stdout.contains(&w.project(sb)), "{}", dry.stdout);
    assert_eq!(containers(&stray).len(), 1, "--dry-run changes nothing");
    assert_stack_running(&w.project(sa));
    assert_eq!(w.slot(sa)["orphaned"], true);

    let gc = w.run(&w.repo, &["gc"]).success();
    gc.assert_stdout_contains(&format!("Freed slot {sa}"));
    gc.assert_stdout_contains(&format!("Removed compose project `{stray}`"));
    assert_nothing_left(&w.project(sa));
    assert_nothing_left(&stray);
    let freed = w.slot(sa);
    assert_eq!(freed["claimed_by"], Value::Null, "{freed}");
    assert_eq!(freed["orphaned"], false, "{freed}");
    assert_eq!(freed["status"], "stopped", "{freed}");

    // The live claim is untouched.
    assert_stack_running(&w.project(sb));
    assert_healthy(w.port(sb, "api"));
    assert_eq!(w.slot(sb)["claimed_by"], b.display().to_string());

    w.run(&w.repo, &["gc"])
        .success()
        .assert_stdout_contains("Nothing to clean up");
    w.run(&b, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn release_frees_an_orphaned_claim_without_force_but_not_a_live_one() {
    let w = World::new(3);
    let a = w.worktree("a");
    let b = w.worktree("b");
    w.run(&a, &["up"]).success();
    w.run(&b, &["claim"]).success();
    let sa = w.slot_of(&a).unwrap();
    let sb = w.slot_of(&b).unwrap();

    // A claim whose worktree still exists is not taken from elsewhere...
    let refused = w.run(&w.repo, &["release", &sb.to_string()]).code(1);
    refused.assert_stderr_contains(&format!(
        "slot {sb} is claimed by `{}` which still exists",
        b.display()
    ));
    refused.assert_stderr_contains("--force");
    assert_eq!(w.slot(sb)["claimed_by"], b.display().to_string());

    // ...but one whose worktree is gone is, and with it its stack.
    w.git(
        &w.repo,
        &["worktree", "remove", "--force", &a.display().to_string()],
    );
    assert!(!a.exists());
    let orphan = w.slot(sa);
    assert_eq!(orphan["orphaned"], true, "{orphan}");
    assert_eq!(orphan["status"], "running", "{orphan}");

    w.run(&w.repo, &["release", &sa.to_string()])
        .success()
        .assert_stdout_contains(&format!("Released slot {sa}"));
    assert_nothing_left(&w.project(sa));
    let freed = w.slot(sa);
    assert_eq!(freed["claimed_by"], Value::Null, "{freed}");
    assert_eq!(freed["orphaned"], false, "{freed}");

    // --force takes the live one, and its worktree loses the env file. Its
    // stack goes even when the slot's compose file is gone, so compose
    // cannot take it down: it is removed by its label.
    w.run(&b, &["up"]).success();
    assert_stack_running(&w.project(sb));
    std::fs::remove_file(w.slot_dir(sb).join("docker-compose.yml")).unwrap();
    assert!(b.join(".env.sandbox").is_file());
    w.run(&w.repo, &["release", &sb.to_string(), "--force"])
        .success()
        .assert_stdout_contains(&format!("Released slot {sb}"));
    assert_nothing_left(&w.project(sb));
    assert_eq!(w.slot(sb)["claimed_by"], Value::Null);
    assert!(!b.join(".env.sandbox").exists());
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
