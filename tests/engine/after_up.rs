//! `[[after_up]]` against real services: a step runs in its service's
//! container once `up` has started the stack and before the gate (a table
//! made in the slot's real PostgreSQL is there when `up` returns); a failing
//! step fails the gate, shows what it printed, and takes down what that `up`
//! made, keeping the database volume an earlier `up` made. Pools
//! `afterup86` (compose v2) and `afterup87` (legacy 1.29).

use crate::support::*;

const TCP_GATE: &str = "\n[[gate]]\ntcp = \"db\"\n";

/// Makes a table in the slot's database, through the unix socket inside
/// the db container (which trusts), and a marker in the tools container.
const MIGRATE: &str = r#"
[[after_up]]
service = "db"
run = ["psql", "-v", "ON_ERROR_STOP=1", "-U", "sandbox", "-d", "sandbox", "-c", "CREATE TABLE IF NOT EXISTS migrated (id int)"]

[[after_up]]
service = "tools"
run = ["sh", "-c", "echo seeded >/tmp/marker"]
"#;

/// A step that prints a few lines and fails.
const FAILING: &str = r#"
[[after_up]]
service = "tools"
run = ["sh", "-c", "echo checking the schema; echo 'schema check failed: no table seeds' >&2; exit 3"]
"#;

fn tables(port: u16, password: &str) -> Result<String, String> {
    psql(
        port,
        "sandbox",
        password,
        "sandbox",
        "select string_agg(tablename, ',') from pg_tables where schemaname = 'public'",
    )
}

#[test]
fn a_step_makes_a_table_in_the_slots_database_before_up_says_ready() {
    let w = World::with_pool_stack(
        86,
        Compose::V2,
        "afterup86",
        "templates-afterup",
        &format!("{MIGRATE}{TCP_GATE}"),
    );
    let wt = w.worktree("migrate");
    let up = w.run(&wt, &["up", "--format", "json"]).success();
    let slot = w.slot_of(&wt).unwrap();
    let port = w.port(slot, "db");
    let password = env_file(&wt.join(".env.sandbox"))["DB_PASSWORD"].clone();
    assert_eq!(
        tables(port, &password).as_deref(),
        Ok("migrated"),
        "the step's table is there when `up` returns\n--- up stderr:\n{}",
        up.stderr
    );
    up.assert_stderr_contains("  ✓ after_up: `psql -v ON_ERROR_STOP=1 -U sandbox -d sandbox -c 'CREATE TABLE IF NOT EXISTS migrated (id int)'` in `db` (exit 0 after ")
        .assert_stderr_contains("  ✓ after_up: `sh -c 'echo seeded >/tmp/marker'` in `tools` (exit 0 after ");
    let checks: Vec<String> = up.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        checks[0].ends_with("in `db`") && checks[1].ends_with("in `tools`"),
        "the steps come first, in order: {checks:?}"
    );
    assert_eq!(
        docker_ok(&[
            "exec",
            &format!("{}-tools-1", w.project(slot)),
            "cat",
            "/tmp/marker"
        ])
        .trim(),
        "seeded"
    );

    // A second `up` finds the stack up and runs no step: the marker, removed
    // by hand, stays removed.
    docker_ok(&[
        "exec",
        &format!("{}-tools-1", w.project(slot)),
        "rm",
        "/tmp/marker",
    ]);
    let again = w.run(&wt, &["up"]).success();
    again.assert_stdout_contains("is already up");
    assert!(!again.stderr.contains("after_up"), "{}", again.stderr);
    let marker = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("{}-tools-1", w.project(slot)),
            "test",
            "-e",
            "/tmp/marker",
        ])
        .status()
        .unwrap();
    assert!(!marker.success(), "no step ran again");
    w.run(&wt, &["release"]).success();
    assert_nothing_left(&w.project(slot));
}

#[test]
fn a_failing_step_fails_the_gate_and_keeps_the_database_an_earlier_up_made() {
    let w = World::with_pool_stack(
        87,
        Compose::V1,
        "afterup87",
        "templates-afterup",
        &format!("{MIGRATE}{TCP_GATE}"),
    );
    let wt = w.worktree("fails");
    w.run(&wt, &["up"]).success();
    w.run(&wt, &["down"]).success();
    let slot = w.slot_of(&wt).unwrap();
    let project = w.project(slot);
    let kept = volumes(&project);
    assert_eq!(kept.len(), 1, "`down` keeps the database: {kept:?}");

    // The same pool with a step that fails, after the one that migrates.
    let file = wt.join("docker-sandbox.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(TCP_GATE, &format!("{FAILING}{TCP_GATE}")),
    )
    .unwrap();
    let up = w.run(&wt, &["up", "--format", "json"]).code(2);
    up.assert_stderr_contains("  ✓ after_up: `psql ")
        .assert_stderr_contains(
            "  ✗ after_up: `sh -c 'echo checking the schema; echo '\\''schema check failed: no table seeds'\\'' >&2; exit 3'` in `tools`\n      → exited with exit status: 3\n",
        )
        .assert_stderr_contains("    checking the schema\n")
        .assert_stderr_contains("    schema check failed: no table seeds\n")
        .assert_stderr_contains(&format!(
            "Kept the volume(s) that existed before this `up`: `{}`",
            kept[0]
        ));
    let json = up.json();
    assert_eq!(json["exit_code"], 2);
    assert_eq!(json["failed_step"]["number"], 3);
    assert_eq!(json["failed_step"]["service"], "tools");
    assert_eq!(json["failed_step"]["exit_code"], 3);
    assert!(
        containers(&project).is_empty(),
        "the failed up takes its containers down: {:?}",
        containers(&project)
    );
    assert!(networks(&project).is_empty(), "{:?}", networks(&project));
    assert_eq!(volumes(&project), kept, "the database volume survives");

    // Without the failing step, the next `up` finds the table of the first.
    std::fs::write(&file, text).unwrap();
    w.run(&wt, &["up"]).success();
    let port = w.port(slot, "db");
    let password = env_file(&wt.join(".env.sandbox"))["DB_PASSWORD"].clone();
    assert_eq!(tables(port, &password).as_deref(), Ok("migrated"));
    w.run(&wt, &["release"]).success();
    assert_nothing_left(&project);
}
