//! Identity: two state folders with the same pool name on one engine (two
//! `DOCKER_SANDBOX_HOME`s, a branch whose project file moves `state_dir`),
//! and a project started by hand under a slot's project name. Compose goes
//! by the project name alone; the plugin must not: `claim`, `release` and
//! `gc` of one registry leave the other's running stack and its data alone.
//!
//! Each test has a pool name of its own (`e2eid<N>`), so that the two worlds
//! of a test share it and no other test does.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// `docker exec` in the `db` container of `project`.
fn in_db(project: &str, script: &str) -> String {
    let db = containers(project)
        .into_iter()
        .find(|c| c.service == "db")
        .unwrap_or_else(|| panic!("no db container in `{project}`"));
    docker_ok(&["exec", &db.id, "sh", "-c", script])
}

/// A's stack is up, every container running, the volume's data in place.
#[track_caller]
fn intact(a: &World, project: &str, after: &str) {
    let c = containers(project);
    assert!(
        !c.is_empty() && c.iter().all(|c| c.state == "running"),
        "after {after}: A's containers should all run: {c:?}"
    );
    assert_stack_running(project);
    assert_eq!(
        in_db(project, "cat /data/marker").trim(),
        "precious",
        "after {after}: A's volume lost its data"
    );
    assert_eq!(
        assert_healthy(a.port(1, "api"))["db"],
        "ok",
        "after {after}"
    );
}

/// Gives `slot` of `w`'s registry to `holder`, as a claim made earlier
/// would have (the plugin no longer hands that slot out).
fn hold(w: &World, slot: u32, holder: &Path) {
    let registry = w.state.join("registry.json");
    let mut reg: Value =
        serde_json::from_str(&std::fs::read_to_string(&registry).unwrap()).unwrap();
    reg["slots"][slot.to_string()]["claimed_by"] = holder.display().to_string().into();
    reg["slots"][slot.to_string()]["claimed_at"] = "2026-11-19T09:00:00Z".into();
    std::fs::write(&registry, serde_json::to_string_pretty(&reg).unwrap()).unwrap();
}

fn two_state_folders(n: u32, compose: Compose) {
    let a = World::with_pool(n, compose, &format!("e2eid{n}"));
    let b = a.twin();
    assert_eq!(a.pool, b.pool);
    assert_ne!(a.registry_id(), b.registry_id());
    // B holds slot 1 before A starts its stack there.
    let wb = b.worktree("b");
    b.run(&wb, &["claim"]).success();
    assert_eq!(b.slot_of(&wb), Some(1));
    let wa = a.worktree("a");
    a.run(&wa, &["up"]).success();
    assert_eq!(a.slot_of(&wa), Some(1));
    let project = a.project(1);
    in_db(&project, "echo precious >/data/marker");
    intact(&a, &project, "up in A");
    let theirs = format!(
        "in use by another registry (state folder `{}`)",
        a.state.display()
    );

    // B's release runs no `compose down` on the shared name.
    let release = b.run(&wb, &["release", "--format", "json"]).success();
    intact(&a, &project, "release in B");
    let json = release.json();
    assert_eq!(json["released"], true, "{json:#}");
    assert_eq!(
        json["removed"],
        serde_json::json!({"containers": 0, "volumes": 0, "networks": 0})
    );
    let left = json["left_alone"].as_array().unwrap();
    assert_eq!(left.len(), 6, "4 containers, a volume, a network: {json:#}");
    assert!(
        left.iter()
            .all(|l| l["registry"] == a.registry_id().as_str()),
        "{json:#}"
    );
    assert!(
        left.iter()
            .any(|l| l["state_dir"] == a.state.display().to_string()),
        "{json:#}"
    );

    // B's claims pass slot 1 over, with or without asking for it.
    let wc = b.worktree("c");
    let claim = b.run(&wc, &["claim", "--slot", "1"]);
    intact(&a, &project, "claim --slot 1 in B");
    claim.code(1).assert_stderr_contains(&theirs);
    b.run(&wc, &["claim"]).success();
    intact(&a, &project, "claim in B");
    assert_eq!(b.slot_of(&wc), Some(2));

    // B's gc: an orphaned claim on slot 1 (its worktree deleted), then a
    // project no claim owns.
    hold(&b, 1, &b.root.join("repo--gone"));
    let gc = b.run(&b.repo, &["gc", "--format", "json"]).success();
    intact(&a, &project, "gc in B freeing an orphan");
    let gc = gc.json();
    assert_eq!(gc["freed"][0]["slot"], 1, "{gc:#}");
    assert_eq!(gc["freed"][0]["left_alone"].as_array().unwrap().len(), 6);
    let gc = b.run(&b.repo, &["gc"]).success();
    intact(&a, &project, "gc in B");
    gc.assert_stdout_contains(&format!(
        "left alone: 4 containers, 1 volume and 1 network of `{project}` that belong to another registry (state folder `{}`)",
        a.state.display()
    ));
    assert!(!gc.stdout.contains("Removed"), "{}", gc.stdout);
    let gc = b.run(&b.repo, &["gc", "--format", "json"]).success().json();
    assert_eq!(gc["removed_projects"], serde_json::json!([]), "{gc:#}");
    assert_eq!(gc["left_alone"][0]["project"], project.as_str(), "{gc:#}");
    intact(&a, &project, "gc --format json in B");

    // B's `up` of a slot 1 it holds does not let compose take A's
    // containers over.
    let wd = b.worktree("d");
    hold(&b, 1, &wd);
    let up = b.run(&wd, &["up"]);
    intact(&a, &project, "up in B");
    up.code(1)
        .assert_stderr_contains(&format!("slot 1's compose project `{project}` is {theirs}"));
    b.run(&wd, &["release"]).success();
    intact(&a, &project, "release of the refused slot in B");

    // A still removes all of its own.
    b.run(&wc, &["release"]).success();
    a.run(&wa, &["release"]).success();
    assert_nothing_left(&project);
    assert_eq!(a.leftovers(), Vec::<String>::new());
}

#[test]
fn another_state_folders_stack_survives_claim_release_and_gc_v2() {
    two_state_folders(60, Compose::V2);
}

#[test]
fn another_state_folders_stack_survives_claim_release_and_gc_v1() {
    two_state_folders(61, Compose::V1);
}

/// `docker compose -p <project> -f <file> <args>`, with v2 or v1.
fn compose_by_hand(compose: Compose, project: &str, file: &Path, args: &[&str]) {
    let mut cmd = match compose {
        Compose::V1 => Command::new("docker-compose"),
        _ => {
            let mut c = Command::new("docker");
            c.arg("compose");
            c
        }
    };
    cmd.args(["-p", project, "-f"])
        .arg(file)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "compose {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn a_hand_started_project(n: u32, compose: Compose) {
    let w = World::with_pool(n, compose, &format!("e2eid{n}"));
    let project = w.project(1);
    let file = w.root.join("by-hand").join("compose.yml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!(
            "services:\n  db:\n    image: {IMAGE}\n    init: true\n    command: [\"sleep\", \"3600\"]\n    \
             volumes:\n      - data:/data\nvolumes:\n  data:\n"
        ),
    )
    .unwrap();
    compose_by_hand(compose, &project, &file, &["up", "-d"]);
    in_db(&project, "echo precious >/data/marker");
    let check = |after: &str| {
        let c = containers(&project);
        assert!(
            c.len() == 1 && c[0].state == "running",
            "after {after}: {c:?}"
        );
        assert_eq!(
            in_db(&project, "cat /data/marker").trim(),
            "precious",
            "after {after}"
        );
    };

    let gc = w.run(&w.repo, &["gc"]).success();
    check("gc");
    gc.assert_stdout_contains(&format!(
        "left alone: 1 container, 1 volume and 1 network of `{project}` that belong to no registry: \
         a project started by hand or by another tool, from `{}`",
        file.display()
    ));
    let json = w.run(&w.repo, &["gc", "--format", "json"]).success().json();
    assert_eq!(json["removed_projects"], serde_json::json!([]), "{json:#}");
    let left: &Value = &json["left_alone"][0];
    assert_eq!(left["project"], project.as_str(), "{json:#}");
    assert_eq!(left["resources"].as_array().unwrap().len(), 3, "{json:#}");
    check("gc --format json");

    // Claims pass that slot over.
    let wt = w.worktree("a");
    let claim = w.run(&wt, &["claim", "--slot", "1"]);
    check("claim --slot 1");
    claim.code(1).assert_stderr_contains(&format!(
        "slot 1's compose project `{project}` is in use by a project started from `{}`",
        file.display()
    ));
    w.run(&wt, &["claim"]).success();
    assert_eq!(w.slot_of(&wt), Some(2));
    check("claim");
    w.run(&wt, &["release"]).success();
    check("release");

    compose_by_hand(compose, &project, &file, &["down", "-v"]);
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn gc_leaves_a_hand_started_project_of_a_slots_name_alone_v2() {
    a_hand_started_project(62, Compose::V2);
}

#[test]
fn gc_leaves_a_hand_started_project_of_a_slots_name_alone_v1() {
    a_hand_started_project(63, Compose::V1);
}
