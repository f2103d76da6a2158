//! Seed 003's workflow end to end on the real engine: shared data, create,
//! up, list, status, run, logs, down, destroy; and `create --up` in one go.
//! Nothing of the worktrees' stacks is left after `destroy`.

use crate::support::*;

#[test]
fn create_up_status_run_logs_down_destroy() {
    let w = World::new(21);
    // A new machine: the shared data folders first.
    w.run(&w.repo, &["init-shared", "--minimal"]).success();
    for folder in ["data", "models", "strategies"] {
        assert!(
            w.home.join(format!(".{}/shared/{folder}", w.pool)).is_dir(),
            "{folder}"
        );
    }

    let run = w.run(&w.repo, &["create", "my-feature"]).success();
    let wt = w.root.join("repo--my-feature");
    run.assert_stdout_contains(&format!(
        "Created worktree `{}` on new branch `my-feature`",
        wt.display()
    ));
    run.assert_stdout_contains("Claimed slot 1 (light)");
    assert_eq!(w.slot_of(&wt), Some(1));
    assert_eq!(mode(&wt.join(".env.sandbox")), 0o600);
    assert_eq!(
        w.git(&wt, &["status", "--porcelain"]),
        "",
        "the env file is ignored by git"
    );

    w.run(&wt, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    let project = w.project(1);
    assert_stack_running(&project);
    let api = w.port(1, "api");
    assert_healthy(api);

    let list = w
        .run(&w.repo, &["list", "--format", "json"])
        .success()
        .json();
    let row = list["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == wt.display().to_string())
        .unwrap_or_else(|| panic!("list lacks the worktree: {list}"))
        .clone();
    assert_eq!(row["slot"], 1);
    assert_eq!(row["branch"], "my-feature");
    assert_eq!(row["status"], "running");
    assert_eq!(row["urls"]["api"], format!("http://127.0.0.1:{api}"));

    let status = w.run(&wt, &["status", "--format", "json"]).success().json();
    assert_eq!(status["status"], "running");
    assert_eq!(status["project"], project);
    assert!(
        status["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "running"),
        "{status}"
    );

    // `run` gives a command the slot's environment; its exit code comes back.
    let prefix = w.pool.to_ascii_uppercase();
    let out = w
        .run(
            &wt,
            &[
                "run",
                "--",
                "sh",
                "-c",
                &format!("echo \"$SLOT_ID ${prefix}_API_PORT\"; exit 3"),
            ],
        )
        .code(3);
    assert_eq!(out.stdout.trim(), format!("1 {api}"));
    let env = w.run(&wt, &["env", "--format", "json"]).success().json();
    assert_eq!(env[format!("{prefix}_API_PORT")], api.to_string());

    w.run(&wt, &["logs", "--tail", "50", "db"])
        .success()
        .assert_stdout_contains("ready to accept connections");

    // down stops the stack and keeps the claim and the database volume.
    w.run(&wt, &["down"]).success();
    assert!(
        containers(&project).is_empty(),
        "down removes the containers"
    );
    assert_eq!(volumes(&project).len(), 1, "down keeps the volume");
    assert_eq!(w.slot_of(&wt), Some(1));

    // destroy removes the worktree, then releases the slot with its volume.
    let run = w.run(&wt, &["destroy"]).success();
    run.assert_stdout_contains("Released slot 1");
    assert!(!wt.exists(), "the worktree folder is gone");
    assert_eq!(w.slot_of(&wt), None);
    assert!(
        w.git(&w.repo, &["branch", "--list", "my-feature"])
            .contains("my-feature"),
        "the branch is kept"
    );
    assert_nothing_left(&project);
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn create_with_up_starts_the_stack_in_one_command() {
    let w = World::new(22);
    let run = w.run(&w.repo, &["create", "quick", "--up"]).success();
    run.assert_stdout_contains("is up and ready");
    let wt = w.root.join("repo--quick");
    assert_healthy(w.port(1, "api"));
    assert_stack_running(&w.project(1));
    // Uncommitted work stops destroy; --force goes on.
    std::fs::write(wt.join("notes.txt"), "wip").unwrap();
    w.run(&wt, &["destroy"])
        .code(1)
        .assert_stderr_contains("uncommitted changes");
    assert_stack_running(&w.project(1));
    w.run(&wt, &["destroy", "--force"]).success();
    assert!(!wt.exists());
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
