//! The original tool's third failure: a worktree whose `.env.sandbox` was lost
//! could not drive its stack any more. Here every command that needs it writes
//! it again, the same as before, private, and ignored by git.

use crate::support::*;

#[test]
fn a_lost_env_file_comes_back_on_up_status_and_down() {
    let w = World::new(6);
    let a = w.worktree("a");
    w.run(&a, &["claim"]).success();
    let env = a.join(".env.sandbox");
    let original = std::fs::read_to_string(&env).unwrap();
    let check = |after: &str| {
        let text = std::fs::read_to_string(&env)
            .unwrap_or_else(|e| panic!("after `{after}`, {}: {e}", env.display()));
        assert_eq!(text, original, "after `{after}`, the env file changed");
        assert_eq!(mode(&env), 0o600, "after `{after}`");
        assert_eq!(
            w.git(&a, &["status", "--porcelain", "--untracked-files=all"]),
            "",
            "after `{after}`, git sees the env file"
        );
    };
    check("claim");
    let values = env_file(&env);
    assert_eq!(values["COMPOSE_PROJECT_NAME"], w.project(1));
    assert_eq!(values["SANDBOX_WORKTREE"], a.display().to_string());
    assert_eq!(values["DB_PASSWORD"], w.slot_env(1)["DB_PASSWORD"]);

    std::fs::remove_file(&env).unwrap();
    w.run(&a, &["up"]).success();
    check("up");
    assert_healthy(w.port(1, "api"));

    std::fs::remove_file(&env).unwrap();
    let status = w.run(&a, &["status", "--format", "json"]).success().json();
    assert_eq!(status["status"], "running", "{status}");
    check("status");

    std::fs::remove_file(&env).unwrap();
    w.run(&a, &["down"]).success();
    check("down");
    assert!(containers(&w.project(1)).is_empty());

    // `release` is the one command that removes it.
    w.run(&a, &["release"]).success();
    assert!(!env.exists());
    assert_nothing_left(&w.project(1));
}
