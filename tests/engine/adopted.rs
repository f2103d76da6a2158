//! A repository with nothing but its own compose file: `up` finds the pool
//! (named after the repository's folder), provisions it, starts a slot from
//! the file as it is, with the slot's ports and names, and gates it; each
//! worktree runs its own version of the file; `release` leaves nothing.

use std::path::Path;

use crate::support::*;

/// A web server with a fixed container name and a named volume, and a worker
/// with no ports: what a small real project holds. `extra` adds a second
/// published port to the web server.
fn compose_file(base: u16, extra: Option<u16>) -> String {
    let extra = extra.map_or(String::new(), |p| format!("\n      - \"{p}:8080\""));
    format!(
        r#"services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
    container_name: web-{base}
    ports:
      - "{base}:8080"{extra}
    volumes:
      - data:/data
  worker:
    image: {IMAGE}
    command: ["sleep", "100000"]
volumes:
  data:
"#
    )
}

fn commit(w: &World, dir: &Path, text: &str, message: &str) {
    std::fs::write(dir.join("compose.yaml"), text).unwrap();
    w.git(dir, &["add", "compose.yaml"]);
    w.git(dir, &["commit", "-q", "-m", message]);
}

/// The host ports `project`'s web container publishes, sorted.
fn web_ports(project: &str) -> Vec<u16> {
    let web: Vec<Ctr> = containers(project)
        .into_iter()
        .filter(|c| c.service == "web")
        .collect();
    assert_eq!(web.len(), 1, "{project}: {web:?}");
    let id = &web[0].id;
    let out = docker_ok(&["port", id]);
    let mut ports: Vec<u16> = out
        .lines()
        .map(|l| {
            let (_, host) = l.split_once(" -> ").unwrap();
            assert!(host.starts_with("127.0.0.1:"), "{project} publishes {l}");
            host.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[track_caller]
fn answers(port: u16) {
    let (status, body) = http_get(port, "/").unwrap_or_else(|e| panic!("port {port}: {e}"));
    assert_eq!((status, body.as_str()), (200, "hello"), "port {port}");
}

fn zero_configuration(n: u32, compose: Compose) {
    let w = World::bare(n, compose);
    let b = w.base;
    commit(&w, &w.repo, &compose_file(b, None), "the project");

    let run = w.run(&w.repo, &["up"]).success();
    run.assert_stdout_contains("is up and ready");
    run.assert_stderr_contains(&format!("Provisioned 6 slots of pool {}", w.pool));
    assert!(
        w.state.join("registry.json").is_file(),
        "{}",
        w.state.display()
    );
    // Every reporting command says which pool and why.
    let table = w.run(&w.repo, &["slots"]).success();
    assert_eq!(
        table.stdout.lines().next(),
        Some(format!("pool {} (adopted compose.yaml)", w.pool).as_str()),
        "{}",
        table.stdout
    );
    let status = w
        .run(&w.repo, &["status", "--format", "json"])
        .success()
        .json();
    assert_eq!(status["pool"]["source"], "adopted", "{status:#}");
    assert_eq!(
        status["pool"]["compose"],
        serde_json::json!(["compose.yaml"])
    );
    // Nothing in the repository but the ignored env file.
    let status = w.git(&w.repo, &["status", "--porcelain", "--ignored"]);
    assert_eq!(status.trim(), "!! .env.sandbox", "{status}");

    let one = format!("{}-slot-1", w.pool);
    let mut running: Vec<(String, String)> = containers(&one)
        .into_iter()
        .map(|c| (c.service, c.state))
        .collect();
    running.sort();
    assert_eq!(
        running,
        [
            ("web".into(), "running".into()),
            ("worker".into(), "running".into())
        ],
        "{one}"
    );
    assert_eq!(web_ports(&one), [b + 1]);
    answers(b + 1);
    // Its network has slot 1's subnet of the pool's range.
    let subnet = docker_ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &format!("{one}_default"),
    ]);
    assert_eq!(subnet.trim(), subnets(n).replace(".0.0/16", ".0.0/26"));
    let named = docker_ok(&["ps", "-a", "--filter", &format!("name=^web-{b}$"), "-q"]);
    assert_eq!(
        named.trim(),
        "",
        "the fixed container name is the slot's own"
    );

    // A branch that adds a port runs its own version of the file, at once
    // with the main checkout's.
    let other = w.worktree("other");
    commit(&w, &other, &compose_file(b, Some(b + 50)), "a second port");
    w.run(&other, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    let two = format!("{}-slot-2", w.pool);
    assert_eq!(web_ports(&two), [b + 2, b + 52]);
    answers(b + 2);
    answers(b + 52);
    assert_eq!(
        web_ports(&one),
        [b + 1],
        "the main checkout's slot is as it was"
    );
    answers(b + 1);

    // The main checkout takes the change too: the next `up` applies it.
    commit(&w, &w.repo, &compose_file(b, Some(b + 50)), "a second port");
    w.run(&w.repo, &["up"])
        .success()
        .assert_stdout_contains("is up and ready");
    assert_eq!(web_ports(&one), [b + 1, b + 51]);
    answers(b + 51);

    w.run(&other, &["release"]).success();
    w.run(&w.repo, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn a_repository_with_only_a_compose_file_runs_a_slot_per_worktree_v2() {
    zero_configuration(80, Compose::V2);
}

#[test]
fn a_repository_with_only_a_compose_file_runs_a_slot_per_worktree_v1() {
    zero_configuration(81, Compose::V1);
}

/// A project whose network has fixed IPv4 and IPv6 subnets: two worktrees'
/// slots are up at once (one fixed IPv6 subnet would be refused the second
/// time), each network with its slot's IPv4 subnet and an IPv6 /64 of its
/// own; `release` leaves nothing.
#[test]
fn fixed_ipv6_subnets_become_each_slots_own_v2() {
    fixed_ipv6(24, Compose::V2);
}

#[test]
fn fixed_ipv6_subnets_become_each_slots_own_v1() {
    fixed_ipv6(25, Compose::V1);
}

fn fixed_ipv6(n: u32, compose: Compose) {
    let w = World::bare(n, compose);
    let b = w.base;
    let file = format!(
        r#"services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - "{b}:8080"
    networks: [dual]
networks:
  dual:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 172.29.{n}.0/24
        - subnet: fd00:{n}::/64
"#
    );
    commit(&w, &w.repo, &file, "the project");
    let other = w.worktree("other");
    let mut seen = Vec::new();
    for (dir, slot) in [(&w.repo, 1), (&other, 2)] {
        w.run(dir, &["up"])
            .success()
            .assert_stdout_contains("is up and ready");
        let subnets = docker_ok(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            &format!("{}-slot-{slot}_dual", w.pool),
        ]);
        let subnets: Vec<String> = subnets.split_whitespace().map(str::to_owned).collect();
        assert_eq!(subnets.len(), 2, "{subnets:?}");
        assert!(
            subnets[0].starts_with(&format!("10.{}.", 100 + n)),
            "{subnets:?}"
        );
        assert!(
            subnets[1].starts_with("fd") && subnets[1].ends_with("::/64"),
            "{subnets:?}"
        );
        assert!(!subnets.contains(&format!("fd00:{n}::/64")));
        seen.push(subnets);
    }
    assert_ne!(seen[0], seen[1], "each slot has its own");
    w.run(&other, &["release"]).success();
    w.run(&w.repo, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
