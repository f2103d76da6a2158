//! The original tool's second failure: a slot handed to a new worktree kept
//! the old database volume, whose database remembered the old password and
//! refused the new one. The fixture's db does the same (it exits with
//! `password authentication failed` on a volume initialised with another
//! password), so a slot that passes the gate here really started clean.

use crate::support::*;

#[test]
fn a_released_slot_hands_out_a_fresh_database_even_with_a_new_password() {
    let w = World::new(4);
    let project = w.project(1);
    let db = w.port(1, "db");
    let a = w.worktree("a");
    w.run(&a, &["claim", "--slot", "1"]).success();
    w.run(&a, &["up"]).success();
    let p1 = w.slot_env(1)["DB_PASSWORD"].clone();
    assert!(db_auth(db, &p1).ends_with("AUTH OK"));

    // `down` keeps the data: the volume with the first password is the trap.
    w.run(&a, &["down"]).success();
    assert!(containers(&project).is_empty());
    assert_eq!(volumes(&project), [format!("{project}_dbdata")]);
    w.run(&a, &["release"])
        .success()
        .assert_stdout_contains("1 volume(s)");
    assert_nothing_left(&project);

    // The slot gets a new password with its next claim, whose volumes start
    // empty.
    let b = w.worktree("b");
    w.run(&b, &["claim", "--slot", "1"]).success();
    let p2 = w.slot_env(1)["DB_PASSWORD"].clone();
    assert_ne!(p1, p2, "a new claim should give the slot a new password");
    assert_eq!(env_file(&b.join(".env.sandbox"))["DB_PASSWORD"], p2);
    w.run(&b, &["up"]).success();
    assert!(db_auth(db, &p2).ends_with("AUTH OK"));
    assert!(db_auth(db, &p1).contains("AUTH FAILED"));
    assert_eq!(assert_healthy(w.port(1, "api"))["db"], "ok");

    // The control: a holder that keeps its volume across a password change
    // does get the fixture's failure, so the success above means something.
    // (Rendering the slot again keeps its password, so it is changed by hand.)
    w.run(&b, &["down"]).success();
    let slot_env = w.slot_dir(1).join(".env.sandbox");
    let text = std::fs::read_to_string(&slot_env).unwrap();
    std::fs::write(&slot_env, text.replace(&p2, "changed-by-hand")).unwrap();
    let broken = w.run(&b, &["up", "--timeout", "30"]).code(2);
    broken.assert_stderr_contains("password authentication failed");
    broken.assert_stderr_contains("service `db` exited with code 1");
    // The failed `up` keeps the volume that was there before it.
    assert!(containers(&project).is_empty());
    assert_eq!(volumes(&project), [format!("{project}_dbdata")]);
    w.run(&b, &["release"]).success();
    assert_nothing_left(&project);
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn a_new_claim_clears_what_an_earlier_holder_left_on_the_slot() {
    let w = World::new(5);
    // What a crashed run of this registry leaves on slots 1 and 2: a
    // database volume with an earlier holder's password, a container using
    // it, and the project's network, all with this registry's labels.
    for slot in [1, 2] {
        let project = w.project(slot);
        let own = w.own_labels(slot);
        let vol = stale_db_volume(&project, "password-of-an-earlier-holder", &own);
        let mount = format!("{vol}:/data");
        let mut extra: Vec<&str> = vec!["-v", &mount];
        extra.extend(own.iter().map(String::as_str));
        stray_container(&project, "db", &extra);
        let project_label = format!("{PROJECT_LABEL}={project}");
        let name = format!("{project}_default");
        let mut args = vec![
            "network",
            "create",
            "--label",
            &project_label,
            "--label",
            "com.docker.compose.network=default",
        ];
        args.extend(own.iter().map(String::as_str));
        args.push(&name);
        docker_ok(&args);
    }

    // `claim` clears slot 1 before handing it over...
    let a = w.worktree("a");
    w.run(&a, &["claim", "--slot", "1"])
        .success()
        .assert_stderr_contains(
            "Cleared what the slot's last holder left: 1 container(s), 1 volume(s), 1 network(s)",
        );
    assert_nothing_left(&w.project(1));
    w.run(&a, &["up"]).success();
    assert!(db_auth(w.port(1, "db"), &w.slot_env(1)["DB_PASSWORD"]).ends_with("AUTH OK"));

    // ...and so does `up` when it claims (slot 2, the next free one).
    let b = w.worktree("b");
    w.run(&b, &["up"]).success();
    assert_eq!(w.slot_of(&b), Some(2));
    assert!(db_auth(w.port(2, "db"), &w.slot_env(2)["DB_PASSWORD"]).ends_with("AUTH OK"));
    assert_stack_running(&w.project(2));
    assert_eq!(volumes(&w.project(2)), [format!("{}_dbdata", w.project(2))]);

    w.run(&a, &["release"]).success();
    w.run(&b, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
