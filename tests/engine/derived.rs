//! Slot files are derived from the templates and the project file, on the
//! real engine: a port moved in the project file reaches the next `up` of an
//! unclaimed slot (registry, env file and the port compose publishes), a lost
//! slot file comes back with the slot's own password so that its real
//! PostgreSQL still logs in, and env values reach the container exactly as
//! written, through compose v2 and 1.29.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;

/// Replaces the main checkout's project file and commits it (worktrees made
/// afterwards carry it), then provisions the pool from nothing: its state
/// folder is new, as if the file had been there from the start.
fn start_over(w: &World, text: &str) {
    std::fs::write(w.repo.join("docker-sandbox.toml"), text).unwrap();
    w.git(&w.repo, &["commit", "-q", "-am", "another pool"]);
    std::fs::remove_dir_all(&w.state).unwrap();
    w.run(&w.repo, &["provision"]).success();
}

/// Writes a template folder holding `compose` and `env` under the world's root.
fn templates(w: &World, name: &str, compose: &str, env: &str) -> PathBuf {
    let dir = w.root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml.hbs"), compose).unwrap();
    std::fs::write(dir.join("env.sandbox.hbs"), env).unwrap();
    dir
}

/// `psql` until it answers or `deadline` passes: a server that just became
/// healthy may still be finishing its start.
fn psql_until(port: u16, password: &str, sql: &str, deadline: Duration) -> Result<String, String> {
    let start = Instant::now();
    loop {
        match psql(port, "sandbox", password, "sandbox", sql) {
            Ok(out) => return Ok(out),
            Err(e) if e.contains("password authentication failed") => return Err(e),
            Err(e) if start.elapsed() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

#[test]
fn a_port_moved_in_the_project_file_reaches_an_unclaimed_slot_on_the_next_up() {
    let w = World::with_compose(66, Compose::V2);
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    let old_api = w.port(1, "api");
    assert_healthy(old_api);
    w.run(&a, &["release"]).success();

    let text = std::fs::read_to_string(w.repo.join("docker-sandbox.toml")).unwrap();
    let moved_base = w.base + 50;
    let text = text.replace(
        &format!("api = [{}, 1]", w.base),
        &format!("api = [{moved_base}, 1]"),
    );
    std::fs::write(w.repo.join("docker-sandbox.toml"), text).unwrap();
    w.git(&w.repo, &["commit", "-q", "-am", "move the api port"]);

    let b = w.worktree("b");
    w.run(&b, &["up"]).success();
    assert_eq!(w.slot_of(&b), Some(1));
    let new_api = moved_base + 1;
    assert_eq!(w.port(1, "api"), new_api, "the registry");
    let prefix = w.pool.to_ascii_uppercase();
    assert_eq!(
        w.slot_env(1)[&format!("{prefix}_API_PORT")],
        new_api.to_string()
    );
    assert_eq!(
        env_file(&b.join(".env.sandbox"))[&format!("{prefix}_API_PORT")],
        new_api.to_string()
    );
    assert_healthy(new_api);
    assert!(
        http_get(old_api, "/api/v1/health").is_err(),
        "nothing on the old port"
    );
    w.run(&b, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

const PG_COMPOSE: &str = r#"services:
  db:
    image: docker-sandbox-test/postgres:1
    environment:
      POSTGRES_USER: sandbox
      POSTGRES_DB: sandbox
      POSTGRES_PASSWORD: ${DB_PASSWORD}
    ports:
      - "127.0.0.1:${ {{~prefix}}_DB_PORT}:5432"
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -p 5432 -U sandbox -d sandbox"]
      interval: 1s
      timeout: 3s
      retries: 120
volumes:
  pgdata:
"#;

const PG_ENV: &str =
    "COMPOSE_PROJECT_NAME={{project}}\n{{prefix}}_DB_PORT={{ports.db}}\nDB_PASSWORD={{password}}\n";

#[test]
fn a_lost_slot_file_is_rendered_again_and_the_database_still_logs_in() {
    let w = World::with_compose(67, Compose::V2);
    let dir = templates(&w, "pg-templates", PG_COMPOSE, PG_ENV);
    start_over(
        &w,
        &format!(
            "gate = []\n[pool]\nname = \"{}\"\ntemplates = \"{}\"\ngate_timeout = 120\n\
             [slots]\n1 = \"light\"\n[profiles]\nlight = {{}}\n[ports]\ndb = [{}, 1]\n",
            w.pool,
            dir.display(),
            w.base + 100
        ),
    );
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    let port = w.port(1, "db");
    let pw = w.slot_env(1)["DB_PASSWORD"].clone();
    psql_until(
        port,
        &pw,
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
        Duration::from_secs(60),
    )
    .unwrap();
    w.run(&a, &["down"]).success();

    // The compose file lost: `up` renders it again, with the same password.
    std::fs::remove_file(w.slot_dir(1).join("docker-compose.yml")).unwrap();
    w.run(&a, &["up"]).success();
    assert_eq!(w.slot_env(1)["DB_PASSWORD"], pw);
    assert_eq!(
        psql_until(port, &pw, "SELECT x FROM kept", Duration::from_secs(60)).unwrap(),
        "42"
    );
    w.run(&a, &["down"]).success();

    // The env file lost and repaired by `provision`: the password is the
    // volume's still, read back from the worktree's copy.
    std::fs::remove_file(w.slot_dir(1).join(".env.sandbox")).unwrap();
    w.run(&w.repo, &["provision"])
        .success()
        .assert_stdout_contains("Repaired slot 1");
    assert_eq!(w.slot_env(1)["DB_PASSWORD"], pw);
    w.run(&a, &["up"]).success();
    assert_eq!(env_file(&a.join(".env.sandbox"))["DB_PASSWORD"], pw);
    assert_eq!(
        psql_until(port, &pw, "SELECT x FROM kept", Duration::from_secs(60)).unwrap(),
        "42"
    );
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

const PROBE_COMPOSE: &str = r#"services:
  probe:
    image: docker-sandbox-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    environment:
      PASSWORD: ${PASSWORD}
      QUOTES: ${QUOTES}
      SANDBOX_WORKTREE: ${SANDBOX_WORKTREE}
"#;

const PROBE_ENV: &str = "COMPOSE_PROJECT_NAME={{project}}\n{{prefix}}_PROBE_PORT={{ports.probe}}\n";

const PASSWORD: &str = "a b$c#d";
const QUOTES: &str = "it's \"quoted\" $HOME # not a comment";

/// The container environment of the probe service of `project`.
fn probe_env(project: &str) -> Vec<String> {
    let c = containers(project);
    let probe = c
        .iter()
        .find(|c| c.service == "probe")
        .unwrap_or_else(|| panic!("no probe container in {c:?}"));
    let json = docker_ok(&["inspect", "--format", "{{json .Config.Env}}", &probe.id]);
    serde_json::from_str(json.trim()).unwrap()
}

fn env_values_arrive_exactly(n: u32, compose: Compose) {
    let w = World::with_compose(n, compose);
    let dir = templates(&w, "probe-templates", PROBE_COMPOSE, PROBE_ENV);
    let toml_str = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    start_over(
        &w,
        &format!(
            "gate = []\n[pool]\nname = \"{}\"\ntemplates = \"{}\"\n[slots]\n1 = \"light\"\n\
             [profiles]\nlight = {{}}\n[ports]\nprobe = [{}, 1]\n\
             [env]\nPASSWORD = \"{}\"\nQUOTES = \"{}\"\n",
            w.pool,
            dir.display(),
            w.base + 1,
            toml_str(PASSWORD),
            toml_str(QUOTES)
        ),
    );
    let a = w.worktree("x$y");
    w.run(&a, &["up"]).success();
    let env = probe_env(&w.project(1));
    for (key, value) in [
        ("PASSWORD", PASSWORD),
        ("QUOTES", QUOTES),
        ("SANDBOX_WORKTREE", a.to_str().unwrap()),
    ] {
        let want = format!("{key}={value}");
        assert!(
            env.contains(&want),
            "{compose:?}: {want:?} not in the container's {env:?}"
        );
    }
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn env_values_reach_the_container_as_written_with_compose_v2() {
    env_values_arrive_exactly(68, Compose::V2);
}

#[test]
fn env_values_reach_the_container_as_written_with_compose_v1() {
    env_values_arrive_exactly(69, Compose::V1);
}

#[test]
fn a_service_added_to_the_template_reaches_a_running_slot_on_the_next_up() {
    let w = World::with_compose(70, Compose::V1);
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine/fixtures/templates");
    let compose = std::fs::read_to_string(fixture.join("docker-compose.yml.hbs")).unwrap();
    let env = std::fs::read_to_string(fixture.join("env.sandbox.hbs")).unwrap();
    let dir = templates(&w, "own-templates", &compose, &env);
    let text = std::fs::read_to_string(w.repo.join("docker-sandbox.toml"))
        .unwrap()
        .replace(&fixture.display().to_string(), &dir.display().to_string());
    start_over(&w, &text);
    let a = w.worktree("a");
    w.run(&a, &["up"]).success();
    assert_stack_running(&w.project(1));
    assert_eq!(w.slot(1)["restart_to_apply"], false);

    // A service added to the template: the running stack is now stale.
    let added = compose.replace(
        "\nvolumes:\n  dbdata:\n",
        "  extra:\n    image: docker-sandbox-test/busybox:1\n    init: true\n    stop_grace_period: 1s\n    command: [\"sleep\", \"3600\"]\n\nvolumes:\n  dbdata:\n",
    );
    assert_ne!(added, compose, "the fixture's volumes block moved");
    std::fs::write(dir.join("docker-compose.yml.hbs"), added).unwrap();
    assert_eq!(w.slot(1)["restart_to_apply"], true);
    let status = w.run(&a, &["status"]).success();
    status.assert_stdout_contains("Restart to apply");
    let doctor = w.run(&a, &["doctor", "--format", "json"]).json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "slots")
        .cloned()
        .unwrap();
    assert_eq!(check["level"], "warn", "{check}");

    let up = w.run(&a, &["up"]).success();
    assert!(!up.stdout.contains("already up"), "{}", up.stdout);
    let services: Vec<String> = containers(&w.project(1))
        .into_iter()
        .filter(|c| c.state == "running")
        .map(|c| c.service)
        .collect();
    assert!(services.contains(&"extra".to_owned()), "{services:?}");
    assert_eq!(w.slot(1)["restart_to_apply"], false);
    assert_healthy(w.port(1, "api"));
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
