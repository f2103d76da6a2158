//! A user's data survives what `up` does: a database that `down` kept is
//! still there after an `up` whose gate fails, an `up` stopped by Ctrl-C and
//! a failed `up --build` of a running slot (a failed `up` removes only what
//! it created: a fresh claim's new volumes go, older ones stay), and after
//! `git worktree move` the moved worktree's `up` finds its slot and its data.
//! Each with compose v2 and the legacy v1, and once with a real PostgreSQL
//! whose rows, written with `psql` from the host, outlive a failed `up`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;

use crate::support::*;

const PRECIOUS: &str = "rows-that-took-a-week-to-load";

/// The slot's database volume, if it exists.
fn db_volume(w: &World, slot: u32) -> Option<String> {
    volumes(&w.project(slot))
        .into_iter()
        .find(|v| v.ends_with("_dbdata"))
}

/// Writes `text` into the slot's database volume (it must exist).
#[track_caller]
fn write_data(w: &World, slot: u32, text: &str) {
    let volume = db_volume(w, slot).expect("the slot has a database volume");
    docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        &format!("printf '%s\\n' '{text}' >/data/user-data"),
    ]);
}

/// What the slot's database volume holds, or why nothing: only asked of a
/// volume that exists, so that the probe never makes one.
fn read_data(w: &World, slot: u32) -> Result<String, String> {
    let Some(volume) = db_volume(w, slot) else {
        return Err(format!(
            "no database volume of `{}`: {:?}",
            w.project(slot),
            volumes(&w.project(slot))
        ));
    };
    Ok(docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        "cat /data/user-data 2>&1 || true",
    ])
    .trim()
    .to_owned())
}

/// Nothing of slot 1 runs and no network is left, its volumes stay, and the
/// data in its database volume is what was written.
#[track_caller]
fn assert_stopped_with_data(w: &World) {
    let project = w.project(1);
    assert_eq!(containers(&project).len(), 0, "{:?}", containers(&project));
    assert_eq!(networks(&project), Vec::<String>::new());
    assert_eq!(read_data(w, 1).as_deref(), Ok(PRECIOUS));
}

/// `up` of `dir` with the backend knob `BACKEND_FAIL=1` (the gate never
/// passes), stopped with SIGINT while the gate waits.
fn interrupted_up(w: &World, dir: &Path) -> (Option<i32>, String) {
    let mut child = w
        .cmd(dir, &["up", "--timeout", "120"])
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
    // `compose up -d` has returned: the stack's containers exist.
    assert!(!containers(&w.project(1)).is_empty(), "{seen}");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    stderr.read_to_string(&mut seen).unwrap();
    (child.wait().unwrap().code(), seen)
}

fn data_survives_failed_ups(n: u32, compose: Compose) {
    let w = World::with_compose(n, compose);
    let a = w.worktree("a");
    let project = w.project(1);

    // A fresh claim's failed `up` removes the volumes it made itself.
    let up = w
        .run_with(&a, &["up", "--timeout", "30"], &[("BACKEND_FAIL", "exit")])
        .code(2);
    up.assert_stderr_contains("the stack was taken down with its volumes");
    assert_nothing_left(&project);

    // Data written, then `down`: the volume stays, as `down` promises.
    w.run(&a, &["up"]).success();
    write_data(&w, 1, PRECIOUS);
    w.run(&a, &["down"]).success();
    assert_stopped_with_data(&w);
    let volume = db_volume(&w, 1).unwrap();

    // An `up` whose gate fails keeps it.
    let up = w
        .run_with(&a, &["up", "--timeout", "30"], &[("BACKEND_FAIL", "exit")])
        .code(2);
    assert_stopped_with_data(&w);
    up.assert_stderr_contains("slot 1 did not become ready");
    up.assert_stderr_contains("the stack was taken down; its volumes were kept");
    up.assert_stderr_contains(&format!(
        "Kept the volume(s) that existed before this `up`: `{volume}`"
    ));

    // So does one stopped by Ctrl-C while the gate waits.
    let (code, seen) = interrupted_up(&w, &a);
    assert_eq!(code, Some(130), "{seen}");
    assert_stopped_with_data(&w);
    assert!(
        seen.contains(
            "`up` of slot 1 was stopped by SIGINT (Ctrl-C); the stack was taken down; its volumes were kept"
        ),
        "{seen}"
    );

    // And a failed `up --build` of a broken change on the running slot.
    w.run(&a, &["up"]).success();
    assert_stack_running(&project);
    let up = w
        .run_with(
            &a,
            &["up", "--build", "--timeout", "30"],
            &[("BACKEND_FAIL", "exit")],
        )
        .code(2);
    assert_stopped_with_data(&w);
    up.assert_stderr_contains("the stack was taken down; its volumes were kept");

    // The fix made, the same data is served again.
    w.run(&a, &["up"]).success();
    assert_healthy(w.port(1, "api"));
    assert_eq!(read_data(&w, 1).as_deref(), Ok(PRECIOUS));
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn data_survives_down_and_failed_or_interrupted_ups_v2() {
    data_survives_failed_ups(53, Compose::V2);
}

#[test]
fn data_survives_down_and_failed_or_interrupted_ups_v1() {
    data_survives_failed_ups(54, Compose::V1);
}

/// The PostgreSQL stack's gate: the database's port, and an HTTP check of
/// it that can never pass (it speaks no HTTP): every `up` that runs the gate
/// fails, `up --no-wait` starts it.
const FAILING_PG_GATE: &str = r#"
[[gate]]
tcp = "db"

[[gate]]
http = "db"
path = "/"
status = 200
"#;

/// `psql` as the slot's user, retried while the server is still starting
/// (`up --no-wait` does not wait for it) until it answers or 60 s pass.
fn psql_when_up(w: &World, worktree: &Path, sql: &str) -> Result<String, String> {
    let env = env_file(&worktree.join(".env.sandbox"));
    let port = w.port(1, "db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match psql(port, "sandbox", &env["DB_PASSWORD"], "sandbox", sql) {
            Err(e) if std::time::Instant::now() < deadline && !e.contains("does not exist") => {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

#[test]
fn a_postgres_database_survives_down_and_a_failed_up() {
    let w = World::with_stack(57, Compose::V2, "templates-pg", FAILING_PG_GATE);
    let a = w.worktree("a");
    w.run(&a, &["up", "--no-wait"]).success();
    psql_when_up(
        &w,
        &a,
        &format!("create table kept (v text); insert into kept values ('{PRECIOUS}')"),
    )
    .unwrap();
    w.run(&a, &["down"]).success();

    let up = w.run(&a, &["up", "--timeout", "5"]).code(2);
    assert_eq!(containers(&w.project(1)).len(), 0);

    // The same server, started on the volume it kept, still has the row.
    w.run(&a, &["up", "--no-wait"]).success();
    assert_eq!(
        psql_when_up(&w, &a, "select v from kept").as_deref(),
        Ok(PRECIOUS)
    );
    up.assert_stderr_contains("the stack was taken down; its volumes were kept");
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

fn a_moved_worktree_keeps_its_data(n: u32, compose: Compose) {
    let w = World::with_compose(n, compose);
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    write_data(&w, 1, PRECIOUS);
    w.run(&a, &["down"]).success();

    let moved = w.root.join("moved-a");
    w.git(
        &w.repo,
        &[
            "worktree",
            "move",
            &a.display().to_string(),
            &moved.display().to_string(),
        ],
    );
    let up = w.run(&moved, &["up"]).success();
    assert_eq!(w.slot_of(&moved), Some(1));
    assert_eq!(read_data(&w, 1).as_deref(), Ok(PRECIOUS));
    up.assert_stderr_contains(&format!(
        "Slot 1 moved with its worktree from `{}` to `{}`; its stack and volumes are kept",
        a.display(),
        moved.display()
    ));
    assert_eq!(w.slot(1)["orphaned"], false);
    assert_stack_running(&w.project(1));
    assert_healthy(w.port(1, "api"));
    let env = env_file(&moved.join(".env.sandbox"));
    assert_eq!(env["SANDBOX_WORKTREE"], moved.display().to_string());

    // `gc` has no orphan to free.
    w.run(&w.repo, &["gc"]).success();
    assert_eq!(w.slot_of(&moved), Some(1));
    assert_stack_running(&w.project(1));
    assert_eq!(read_data(&w, 1).as_deref(), Ok(PRECIOUS));

    w.run(&moved, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn a_moved_worktree_keeps_its_slot_and_data_v2() {
    a_moved_worktree_keeps_its_data(55, Compose::V2);
}

#[test]
fn a_moved_worktree_keeps_its_slot_and_data_v1() {
    a_moved_worktree_keeps_its_data(56, Compose::V1);
}
