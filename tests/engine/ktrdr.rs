//! The embedded default pool runs KTRDR: two worktrees of a KTRDR-shaped
//! checkout (`tests/fixtures/ktrdr-checkout`) `up` at once with no templates
//! of their own, on stand-in images under KTRDR's real names (setup.sh,
//! `fixtures/standins`): a backend whose `uvicorn` starts only from the
//! mounted `./ktrdr` and logs in to its database, workers that register with
//! it at the URL they are given, a real PostgreSQL. Each slot passes the
//! default gate after its `after_up` migrations made their tables in its own
//! database, its backend lists its own workers at its own services' URLs
//! and has reached them there, its Prometheus config names them, its Grafana
//! has the checkout's data sources, and `release` leaves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// Every port of the embedded pool's map, moved into the test's block: api
/// base+slot, db base+100+slot, workers from base+200+10*slot, the single
/// UIs from base+50, the OTLP pair from base+300 on stride 10.
fn ports(b: u16) -> String {
    [
        ("api", b, 1),
        ("db", b + 100, 1),
        ("grafana", b + 50, 1),
        ("jaeger_ui", b + 60, 1),
        ("prometheus", b + 70, 1),
        ("jaeger_otlp_grpc", b + 300, 10),
        ("jaeger_otlp_http", b + 301, 10),
        ("workers", b + 200, 10),
    ]
    .iter()
    .map(|(name, base, stride)| format!("{name} = [{base}, {stride}]\n"))
    .collect()
}

/// `GET` of a JSON document on 127.0.0.1:`port`.
#[track_caller]
fn get_json(port: u16, path: &str) -> Value {
    match http_get(port, path) {
        Ok((200, body)) => serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET :{port}{path} is not JSON ({e}): {body}")),
        other => panic!("GET http://127.0.0.1:{port}{path}: {other:?}"),
    }
}

/// The environment of `service`'s container in `project`, as a map.
fn container_env(project: &str, service: &str) -> BTreeMap<String, String> {
    let id = container_of(project, service).id;
    let out = docker_ok(&["inspect", "--format", "{{json .Config.Env}}", &id]);
    let list: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    list.into_iter()
        .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[track_caller]
fn container_of(project: &str, service: &str) -> Ctr {
    let c: Vec<Ctr> = containers(project)
        .into_iter()
        .filter(|c| c.service == service)
        .collect();
    assert_eq!(c.len(), 1, "{project} {service}: {c:?}");
    c.into_iter().next().unwrap()
}

/// Where `destination` of `service`'s container is bind-mounted from.
fn bind_source(project: &str, service: &str, destination: &str) -> Option<String> {
    let id = container_of(project, service).id;
    let out = docker_ok(&["inspect", "--format", "{{json .Mounts}}", &id]);
    let mounts: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    mounts
        .iter()
        .find(|m| m["Type"] == "bind" && m["Destination"] == destination)
        .map(|m| m["Source"].as_str().unwrap().to_owned())
}

/// The host ports every container of `project` publishes.
fn published(project: &str) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    for c in containers(project) {
        for line in docker_ok(&["port", &c.id]).lines() {
            let (_, host) = line.split_once(" -> ").unwrap();
            assert!(host.starts_with("127.0.0.1:"), "{project} publishes {line}");
            ports.insert(host.rsplit(':').next().unwrap().parse().unwrap());
        }
    }
    ports
}

/// The slot's database password, from the worktree's env file.
fn db_password(env: &BTreeMap<String, String>) -> String {
    env.get("KTRDR_DB_PASSWORD")
        .or_else(|| env.get("DB_PASSWORD"))
        .unwrap_or_else(|| panic!("no database password in the env file: {env:?}"))
        .clone()
}

/// The backend's worker list once it has health-checked every worker at
/// the URL it registered with (KTRDR's registry polls every 10 s).
fn workers_reached(api: u16, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = get_json(api, "/api/v1/workers");
        let list = list.as_array().expect("a bare JSON array").clone();
        let reached = list.len() == expected
            && list.iter().all(|w| {
                w["status"] == "available"
                    && w["health_check_failures"] == 0
                    && w["last_healthy_at"].is_string()
            });
        if reached {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "the backend on {api} never reached its {expected} workers: {list:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What one slot of the pair must show, after both `up`s. Returns the
/// workers' `host:port` and the slot's Prometheus config.
fn check_slot(w: &World, wt: &Path, slot: u32, other: (u32, &str)) -> (Vec<String>, String) {
    let project = w.project(slot);
    let ports = w.ports(slot);
    let b = w.base;
    // Every service runs, each port it publishes is in the test's block.
    let all = containers(&project);
    assert!(
        all.iter().all(|c| c.state == "running"),
        "every container of `{project}` should run: {all:?}"
    );
    let services: BTreeSet<String> = all.iter().map(|c| c.service.clone()).collect();
    for service in [
        "db",
        "backend",
        "jaeger",
        "prometheus",
        "grafana",
        "mcp-local",
    ] {
        assert!(
            services.contains(service),
            "`{project}` has no {service}: {services:?}"
        );
    }
    let outside: Vec<u16> = published(&project)
        .into_iter()
        .filter(|p| !(b..b + 500).contains(p))
        .collect();
    assert!(
        outside.is_empty(),
        "`{project}` publishes {outside:?}, outside {b}..{}",
        b + 500
    );

    // The default gate's endpoints, on this slot's own port.
    let health = get_json(ports["api"], "/api/v1/health");
    assert_eq!(health["status"], "ok", "{health}");

    // The code the backend runs is this worktree's.
    let code = wt.join("ktrdr").display().to_string();
    assert_eq!(
        bind_source(&project, "backend", "/app/ktrdr").as_deref(),
        Some(code.as_str()),
        "{project} backend"
    );

    // after_up ran the migrations in this slot's own database: log in from
    // the host with the slot's password, as the database was made.
    let env = env_file(&wt.join(".env.sandbox"));
    let password = db_password(&env);
    let db_env = container_env(&project, "db");
    let (user, db) = (&db_env["POSTGRES_USER"], &db_env["POSTGRES_DB"]);
    assert_eq!(db_env["POSTGRES_PASSWORD"], password, "{project} db");
    let tables = psql(
        ports["db"],
        user,
        &password,
        db,
        "select string_agg(tablename, ',' order by tablename) from pg_tables where schemaname = 'public'",
    )
    .unwrap_or_else(|e| panic!("{project}: {e}"));
    let tables: BTreeSet<&str> = tables.split(',').collect();
    for table in ["operations", "checkpoints"] {
        assert!(
            tables.contains(table),
            "{project}: no table {table}: {tables:?}"
        );
    }
    // The other slot's password does not open this one.
    let (other_slot, other_password) = other;
    assert_ne!(
        password, other_password,
        "slots {slot} and {other_slot} share a password"
    );
    assert!(
        psql(ports["db"], user, other_password, db, "select 1").is_err(),
        "slot {other_slot}'s password logs in to slot {slot}'s database"
    );

    // The backend lists its own workers, one per worker of the light
    // profile, at URLs of this slot's services, and has reached them there.
    let workers = workers_reached(ports["api"], 2);
    let mut kinds: Vec<&str> = workers
        .iter()
        .map(|w| w["worker_type"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["backtesting", "training"],
        "{project}: {workers:#?}"
    );
    let mut targets = Vec::new();
    for worker in &workers {
        let url = worker["endpoint_url"].as_str().unwrap();
        let target = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("{url}"));
        let (host, _) = target.split_once(':').unwrap_or_else(|| panic!("{url}"));
        assert!(
            services.contains(host),
            "{project}: {url} is not one of {services:?}"
        );
        let kind = if worker["worker_type"] == "backtesting" {
            "backtest"
        } else {
            "training"
        };
        assert!(
            host.starts_with(kind),
            "{project}: a {kind} worker at {url}"
        );
        assert_eq!(
            bind_source(&project, host, "/app/ktrdr").as_deref(),
            Some(code.as_str()),
            "{project} {host}"
        );
        targets.push(target.trim_end_matches('/').to_owned());
    }

    // This slot's Prometheus was given a config that names those targets.
    let config = get_json(ports["prometheus"], "/api/v1/status/config");
    let yaml = config["data"]["yaml"].as_str().unwrap().to_owned();
    for target in targets.iter().chain([&"backend:8000".to_owned()]) {
        assert!(
            yaml.contains(target.as_str()),
            "{project}: prometheus config lacks {target}:\n{yaml}"
        );
    }

    // Its Jaeger and Grafana answer on its own ports; Grafana has the data
    // sources of the checkout's provisioning, this slot's by service name.
    assert!(
        matches!(http_get(ports["jaeger_ui"], "/"), Ok((200, _))),
        "{project} jaeger"
    );
    let health = get_json(ports["grafana"], "/api/health");
    assert_eq!(health["database"], "ok", "{project} grafana: {health}");
    let sources = get_json(ports["grafana"], "/api/datasources");
    let urls: Vec<&str> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        ["http://prometheus:9090", "http://jaeger:16686"],
        "{project} grafana"
    );

    // Nothing in the worktree but its env file.
    let status = w.git(wt, &["status", "--porcelain", "--ignored"]);
    assert_eq!(
        status.trim(),
        "!! .env.sandbox",
        "{}: {status}",
        wt.display()
    );
    (targets, yaml)
}

fn two_ktrdr_worktrees(n: u32, compose: Compose) {
    let w = World::embedded(n, compose, "ktrdr-checkout", 300, ports);
    let a = w.worktree("a");
    let b = w.worktree("b");

    let up_a = w.spawn(&a, &["up"]);
    let up_b = w.spawn(&b, &["up"]);
    let (up_a, up_b) = (up_a.wait().success(), up_b.wait().success());
    let sa = w.slot_of(&a).expect("a holds a slot");
    let sb = w.slot_of(&b).expect("b holds a slot");
    assert_ne!(sa, sb);
    up_a.assert_stdout_contains(&format!("Slot {sa} (light) is up and ready"));
    up_b.assert_stdout_contains(&format!("Slot {sb} (light) is up and ready"));

    let pa = db_password(&env_file(&a.join(".env.sandbox")));
    let pb = db_password(&env_file(&b.join(".env.sandbox")));
    let (targets_a, config_a) = check_slot(&w, &a, sa, (sb, &pb));
    let (targets_b, config_b) = check_slot(&w, &b, sb, (sa, &pa));
    // Where the slots' workers listen on ports of their own slot, each
    // Prometheus config names only its own.
    for (config, ours, theirs) in [
        (&config_a, &targets_a, &targets_b),
        (&config_b, &targets_b, &targets_a),
    ] {
        for target in theirs.iter().filter(|t| !ours.contains(t)) {
            assert!(!config.contains(target.as_str()), "{target} in:\n{config}");
        }
    }

    w.run(&a, &["release"]).success();
    w.run(&b, &["release"]).success();
    assert_nothing_left(&w.project(sa));
    assert_nothing_left(&w.project(sb));
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn the_default_pool_runs_ktrdr_in_two_worktrees_at_once_v2() {
    two_ktrdr_worktrees(84, Compose::V2);
}

#[test]
fn the_default_pool_runs_ktrdr_in_two_worktrees_at_once_v1() {
    two_ktrdr_worktrees(85, Compose::V1);
}
