//! Real projects' compose files, adopted unchanged (from `tests/corpus/`), run
//! in two worktrees at once: a test-only extra compose file puts the suite's
//! own images (a real PostgreSQL, busybox's httpd) in place of theirs, and the
//! project file moves their ports into this test's block. Each slot answers
//! on its own ports with its own database; a branch that edits the compose
//! file runs its edit at its next `up`; `release` leaves nothing.

use std::path::Path;

use crate::support::*;

/// Copies `tests/corpus/<project>` (its compose file and `.env`) into the
/// world's repository, with the extra file and a project file, and commits.
fn adopt_project(w: &World, project: &str, extra: &str, ports: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(project);
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), w.repo.join(entry.file_name())).unwrap();
    }
    std::fs::write(w.repo.join("test-images.yml"), extra).unwrap();
    let slots: String = (1..=SLOTS).map(|s| format!("{s} = \"light\"\n")).collect();
    std::fs::write(
        w.repo.join("docker-sandbox.toml"),
        format!(
            "[pool]\nname = \"{}\"\ncompose = [\"compose.yaml\", \"test-images.yml\"]\n\
             gate_timeout = 90\n\n[slots]\n{slots}\n[ports]\n{ports}",
            w.pool
        ),
    )
    .unwrap();
    w.git(&w.repo, &["add", "-A"]);
    w.git(&w.repo, &["commit", "-q", "-m", project]);
}

/// The environment of `service`'s container in `project`.
fn env_of(project: &str, service: &str) -> Vec<String> {
    let c: Vec<Ctr> = containers(project)
        .into_iter()
        .filter(|c| c.service == service)
        .collect();
    assert_eq!(c.len(), 1, "{project} {service}: {c:?}");
    let out = docker_ok(&["inspect", "--format", "{{json .Config.Env}}", &c[0].id]);
    serde_json::from_str(out.trim()).unwrap()
}

/// Adds `NAME=VALUE` to the `environment` list of `service` in the branch's
/// compose file, and commits it there.
fn edit_environment(w: &World, dir: &Path, service: &str, line: &str) {
    let path = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find(&format!("  {service}:\n"))
        .unwrap_or_else(|| panic!("no service {service}"));
    let env = at + text[at..].find("    environment:\n").unwrap() + "    environment:\n".len();
    let edited = format!("{}      - {line}\n{}", &text[..env], &text[env..]);
    std::fs::write(&path, edited).unwrap();
    w.git(dir, &["commit", "-q", "-am", "an edit of the compose file"]);
}

/// The worktree `other` (slot 2) edits `service`'s environment in its
/// compose file: its next `up` runs the edit; slot 1 runs as it was.
#[track_caller]
fn a_branch_edit_reaches_only_its_slot(w: &World, other: &Path, service: &str) {
    edit_environment(w, other, service, "SANDBOX_BRANCH=other");
    w.run(other, &["up"]).success();
    let two = format!("{}-slot-2", w.pool);
    let one = format!("{}-slot-1", w.pool);
    assert!(env_of(&two, service).contains(&"SANDBOX_BRANCH=other".to_owned()));
    assert!(
        !env_of(&one, service)
            .iter()
            .any(|e| e.starts_with("SANDBOX_BRANCH"))
    );
}

#[track_caller]
fn serves(port: u16, body: &str) {
    let (status, got) = http_get(port, "/").unwrap_or_else(|e| panic!("port {port}: {e}"));
    assert_eq!((status, got.as_str()), (200, body), "port {port}");
}

fn httpd(port: u16, body: &str) -> String {
    format!(
        "    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {port} -h /www\"]\n"
    )
}

fn postgres(user: &str) -> String {
    format!(
        "    image: {PG_IMAGE}\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready -h 127.0.0.1 -U {user}\"]\n      interval: 1s\n      retries: 90\n"
    )
}

/// postgresql-pgadmin: both services with a fixed `container_name`, the
/// database's settings from the project's `.env`.
#[test]
fn postgresql_pgadmin_runs_in_two_worktrees_each_with_its_own_database_v2() {
    let w = World::bare(82, Compose::V2);
    let b = w.base;
    let extra = format!(
        "services:\n  postgres:\n{}  pgadmin:\n{}",
        postgres("yourUser"),
        httpd(80, "pgadmin")
    );
    let ports = format!("postgres = [{b}, 1]\npgadmin = [{}, 1]\n", b + 100);
    adopt_project(&w, "postgresql-pgadmin", &extra, &ports);
    let other = w.worktree("other");
    w.run(&w.repo, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    w.run(&other, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");

    // The `.env` of the project gives the user, password and database.
    let sql = |port: u16, q: &str| {
        psql(port, "yourUser", "changeit", "postgres", q).unwrap_or_else(|e| panic!("{e}"))
    };
    sql(
        b + 1,
        "create table t (v text); insert into t values ('one')",
    );
    sql(
        b + 2,
        "create table t (v text); insert into t values ('two')",
    );
    assert_eq!(sql(b + 1, "select v from t"), "one");
    assert_eq!(sql(b + 2, "select v from t"), "two");
    serves(b + 101, "pgadmin");
    serves(b + 102, "pgadmin");
    for name in ["postgres", "pgadmin"] {
        let fixed = docker_ok(&["ps", "-a", "-q", "--filter", &format!("name=^{name}$")]);
        assert_eq!(fixed.trim(), "", "no slot takes the name `{name}`");
    }

    a_branch_edit_reaches_only_its_slot(&w, &other, "pgadmin");
    assert_eq!(sql(b + 2, "select v from t"), "two", "the database stays");

    w.run(&other, &["release"]).success();
    w.run(&w.repo, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

/// gitea-postgres: named volumes, a database only the application reaches.
#[test]
fn gitea_postgres_runs_in_two_worktrees_each_with_its_own_volumes_v1() {
    let w = World::bare(83, Compose::V1);
    let b = w.base;
    let extra = format!(
        "services:\n  gitea:\n{}  db:\n{}",
        httpd(3000, "gitea"),
        postgres("gitea")
    );
    adopt_project(&w, "gitea-postgres", &extra, &format!("gitea = [{b}, 1]\n"));
    let other = w.worktree("other");
    w.run(&w.repo, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    w.run(&other, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    serves(b + 1, "gitea");
    serves(b + 2, "gitea");
    for slot in [1, 2] {
        let project = format!("{}-slot-{slot}", w.pool);
        let mut own = volumes(&project);
        own.sort();
        assert_eq!(
            own,
            [format!("{project}_db_data"), format!("{project}_git_data")],
            "{project}"
        );
    }

    a_branch_edit_reaches_only_its_slot(&w, &other, "gitea");
    serves(b + 2, "gitea");

    w.run(&other, &["release"]).success();
    w.run(&w.repo, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
