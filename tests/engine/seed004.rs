//! Seed 004's end-to-end scenario with our tool: two worktrees start their
//! stacks at the same moment on one machine, each gets its own ports,
//! database and volume, and releasing them leaves nothing behind.

use std::collections::BTreeSet;

use crate::support::*;

#[test]
fn two_worktrees_up_at_once_get_their_own_stacks_and_release_leaves_nothing() {
    let w = World::new(1);
    let a = w.worktree("a");
    let b = w.worktree("b");

    // Both `up`s at once: two processes racing for the registry and the engine.
    let up_a = w.spawn(&a, &["up"]);
    let up_b = w.spawn(&b, &["up"]);
    let (up_a, up_b) = (up_a.wait().success(), up_b.wait().success());
    let sa = w.slot_of(&a).expect("a holds a slot");
    let sb = w.slot_of(&b).expect("b holds a slot");
    assert_ne!(sa, sb, "two worktrees must never share a slot");
    up_a.assert_stdout_contains(&format!("Slot {sa} (light) is up and ready"));
    up_b.assert_stdout_contains(&format!("Slot {sb} (light) is up and ready"));

    // No port conflicts: the two slots publish disjoint ports, and every
    // port each container publishes is one of its own slot's.
    let (pa, pb) = (w.ports(sa), w.ports(sb));
    let set_a: BTreeSet<u16> = pa.values().copied().collect();
    let set_b: BTreeSet<u16> = pb.values().copied().collect();
    assert!(set_a.is_disjoint(&set_b), "ports overlap: {pa:?} / {pb:?}");

    for (wt, slot, ports) in [(&a, sa, &pa), (&b, sb, &pb)] {
        let project = w.project(slot);
        // The health endpoint answers on this slot's own port, from this slot.
        let health = assert_healthy(ports["api"]);
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["slot"], slot.to_string(), "{health}");
        assert_eq!(health["db"], "ok", "{health}");
        assert_eq!(health["workers"], 2, "{health}");
        // Its own database container and volume.
        let dbs: Vec<Ctr> = containers(&project)
            .into_iter()
            .filter(|c| c.service == "db")
            .collect();
        assert_eq!(dbs.len(), 1, "one db container for `{project}`: {dbs:?}");
        assert_eq!(dbs[0].state, "running");
        assert_eq!(volumes(&project), [format!("{project}_dbdata")]);
        assert_stack_running(&project);
        // The worktree's env file carries this slot's ports.
        let env = env_file(&wt.join(".env.sandbox"));
        let prefix = w.pool.to_uppercase();
        assert_eq!(env[&format!("{prefix}_API_PORT")], ports["api"].to_string());
        assert_eq!(env["COMPOSE_PROJECT_NAME"], project);
        assert_eq!(w.slot(slot)["status"], "running");
    }
    let db_a = containers(&w.project(sa));
    let db_b = containers(&w.project(sb));
    assert!(
        db_a.iter().all(|x| db_b.iter().all(|y| x.id != y.id)),
        "the stacks share a container"
    );
    // Each database has its own password: a's is refused by b's database.
    let pw_a = env_file(&a.join(".env.sandbox"))["DB_PASSWORD"].clone();
    let pw_b = env_file(&b.join(".env.sandbox"))["DB_PASSWORD"].clone();
    assert_ne!(pw_a, pw_b);
    assert!(db_auth(pa["db"], &pw_a).ends_with("AUTH OK"));
    assert!(db_auth(pb["db"], &pw_a).contains("AUTH FAILED"));

    // Both released (at once, too): nothing of either is left.
    let rel_a = w.spawn(&a, &["release"]);
    let rel_b = w.spawn(&b, &["release"]);
    rel_a
        .wait()
        .success()
        .assert_stdout_contains(&format!("Released slot {sa}"));
    rel_b
        .wait()
        .success()
        .assert_stdout_contains(&format!("Released slot {sb}"));
    assert_nothing_left(&w.project(sa));
    assert_nothing_left(&w.project(sb));
    assert_eq!(w.leftovers(), Vec::<String>::new());
    for slot in [sa, sb] {
        let s = w.slot(slot);
        assert_eq!(s["claimed_by"], serde_json::Value::Null, "{s}");
        assert_eq!(s["status"], "stopped", "{s}");
    }
    assert!(!a.join(".env.sandbox").exists());
    assert!(!b.join(".env.sandbox").exists());
}

#[test]
fn many_worktrees_claiming_at_once_never_share_a_slot() {
    let w = World::new(17);
    let trees: Vec<_> = (0..SLOTS + 3)
        .map(|i| w.worktree(&format!("t{i}")))
        .collect();
    let running: Vec<_> = trees
        .iter()
        .map(|t| w.spawn(t, &["claim", "--format", "json"]))
        .collect();
    let runs: Vec<Run> = running.into_iter().map(Running::wait).collect();

    let mut won = BTreeSet::new();
    let mut lost = 0;
    for run in &runs {
        match run.code {
            0 => assert!(
                won.insert(run.json()["slot"].as_u64().unwrap()),
                "slot given twice: {runs:#?}"
            ),
            1 => {
                run.assert_stderr_contains("no free slot");
                lost += 1;
            }
            _ => panic!("unexpected exit code: {run:#?}"),
        }
    }
    assert_eq!(won.len() as u32, SLOTS, "{runs:#?}");
    assert_eq!(lost, 3, "{runs:#?}");
    // The registry agrees: each slot held by exactly one of the worktrees.
    let holders: BTreeSet<String> = w.slots()["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["claimed_by"]
                .as_str()
                .expect("every slot is claimed")
                .to_owned()
        })
        .collect();
    assert_eq!(holders.len() as u32, SLOTS);
    for t in &trees {
        let holds = holders.contains(&t.display().to_string());
        assert_eq!(t.join(".env.sandbox").is_file(), holds, "{}", t.display());
    }

    // A worktree that lost: `up` has no slot to start (exit 1), and asking
    // for a taken slot is refused (exit 1, not a port conflict).
    let loser = trees
        .iter()
        .find(|t| !holders.contains(&t.display().to_string()))
        .unwrap();
    w.run(loser, &["up"])
        .code(1)
        .assert_stderr_contains("no free slot");
    w.run(loser, &["claim", "--slot", "1"])
        .code(1)
        .assert_stderr_contains("slot 1 is claimed by");
    assert_eq!(w.leftovers(), Vec::<String>::new(), "nothing was started");
}

/// Two `up`s of one worktree at the same moment (an agent that retries, two
/// terminals): without the slot's lifecycle lock both ran `compose up -d` on
/// one project, compose raced itself ("network ... is ambiguous", "container
/// name ... is already in use") and both took the stack down. With it, the
/// second waits for the first, then finds the stack up: both exit 0.
#[test]
fn two_ups_of_one_worktree_at_once_both_succeed() {
    let w = World::new(18);
    let a = w.worktree("a");
    let first = w.spawn(&a, &["up"]);
    let second = w.spawn(&a, &["up"]);
    let (first, second) = (first.wait(), second.wait());
    let api = w.port(1, "api");
    let health = http_get(api, "/api/v1/health");
    assert!(
        first.code == 0 && second.code == 0 && matches!(health, Ok((200, _))),
        "both `up`s should succeed and leave the stack up; got exit codes {} and {}, \
         health {health:?}\n--- first stderr:\n{}\n--- second stderr:\n{}",
        first.code,
        second.code,
        first.stderr,
        second.stderr
    );
    assert_stack_running(&w.project(1));
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
