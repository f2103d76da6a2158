//! Slots across several engines (`[engines.NAME]`): claims placed on the
//! local engine and on the two extra ones of `engines.sh`, each stack
//! answering on its own engine's address, and `release` leaving nothing on
//! any of them; a port a foreign process holds on another engine's host is
//! seen as taken there; an engine that stops makes its slots unknown and
//! blocks nothing on the others; `gc` frees a claim there; a bind of the
//! worktree is refused where the engine does not see it; an adopted pool's
//! slot answers on its engine's address; a route of another engine's host
//! refuses a range that overlaps it there only. Numbers 30 to 34, and 37 to
//! 39 (pools `remote<N>`).

use crate::engines::{Engines, engines};
use crate::support::*;

/// The pool's three engines, two slots each in the six-slot pool of test 30
/// (one in the three-slot pools of the others): the first extra engine
/// through ssh, the second through its unix socket (so its address is given).
const ENGINES: &str = r#"
[[gate]]
http = "api"
path = "/slot"
status = 200

[engines.local]
max_slots = 1

[engines.dse1]
context = "dse1-ssh"
max_slots = 1

[engines.dse2]
context = "dse2"
address = "10.231.2.2"
max_slots = 1
"#;

fn env_of(e: &Engines) -> Vec<(String, String)> {
    e.env()
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Six slots instead of the world's three.
fn six_slots(w: &World) {
    let file = w.repo.join("docker-sandbox.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let more: String = (SLOTS + 1..=6)
        .map(|s| format!("{s} = \"light\"\n"))
        .collect();
    let last = format!("{SLOTS} = \"light\"\n");
    std::fs::write(&file, text.replacen(&last, &(last.clone() + &more), 1)).unwrap();
    w.git(&w.repo, &["commit", "-q", "-am", "six slots"]);
    w.run(&w.repo, &["provision"]).success();
    assert_eq!(w.slots()["slots"].as_array().unwrap().len(), 6);
}

/// Removes from the extra engines what an earlier, failed run of test `n`
/// left there (the world cleans the local engine).
fn clean_extra(e: &Engines, n: u32) {
    clean_pool(e, &format!("e2e{n}"));
}

/// `clean_extra` for the slots of pool `pool`.
fn clean_pool(e: &Engines, pool: &str) {
    for context in ["dse1", "dse2"] {
        e.clean_slots(context, pool, 6);
    }
}

/// What of project `project` engine `context` still has.
fn left_on(e: &Engines, context: &str, project: &str) -> String {
    let label = format!("label=com.docker.compose.project={project}");
    ["ps -aq", "volume ls -q", "network ls -q"]
        .iter()
        .map(|what| {
            let mut args: Vec<&str> = what.split(' ').collect();
            args.extend(["--filter", &label]);
            e.docker_ok(context, &args)
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn claims_land_on_every_engine_and_answer_on_its_address() {
    let e = engines();
    let _shared = e.shared();
    let tables = ENGINES.replace("max_slots = 1", "max_slots = 2");
    let w = World::with_pool_stack(30, Compose::V2, "e2e30", "templates-engines", &tables);
    six_slots(&w);
    clean_extra(e, 30);
    let env = env_of(e);
    let env = pairs(&env);
    let trees: Vec<_> = (1..=6).map(|i| w.worktree(&format!("m{i}"))).collect();
    // Three at a time: each claim takes the registry's lock and finds room.
    for batch in trees.chunks(3) {
        let ups: Vec<_> = batch
            .iter()
            .map(|wt| w.spawn_with(wt, &["up"], &env))
            .collect();
        for up in ups {
            up.wait()
                .success()
                .assert_stdout_contains("is up and ready");
        }
    }
    let slots = w
        .run_with(&w.repo, &["slots", "--format", "json"], &env)
        .success()
        .json();
    let mut on = Vec::new();
    for s in slots["slots"].as_array().unwrap() {
        on.push((
            s["engine"].as_str().unwrap().to_owned(),
            s["slot"].as_u64().unwrap() as u32,
        ));
        assert_eq!(s["status"], "running", "{slots}");
    }
    let mut engines: Vec<&str> = on.iter().map(|(e, _)| e.as_str()).collect();
    engines.sort();
    assert_eq!(
        engines,
        ["dse1", "dse1", "dse2", "dse2", "local", "local"],
        "{slots}"
    );
    for (engine, slot) in &on {
        let port = w.port(*slot, "api");
        let wt = trees.iter().find(|t| w.slot_of(t) == Some(*slot)).unwrap();
        let env_file = std::fs::read_to_string(wt.join(".env.sandbox")).unwrap();
        let host = match engine.as_str() {
            "local" => None,
            other => Some(format!("SANDBOX_HOST=10.231.{}.2\n", &other[3..])),
        };
        assert!(
            host.as_deref().is_none_or(|h| env_file.contains(h)),
            "{engine}: {env_file}"
        );
        let answer = match engine.as_str() {
            "local" => http_get(port, "/slot"),
            other => {
                let n: u8 = other[3..].parse().unwrap();
                assert!(
                    http_get(port, "/slot").is_err(),
                    "slot {slot} on {other} answers on 127.0.0.1:{port}"
                );
                http_get_at(Engines::address(n), port, "/slot")
            }
        };
        let (status, body) = answer.unwrap_or_else(|err| panic!("slot {slot} on {engine}: {err}"));
        assert_eq!((status, body.trim()), (200, slot.to_string().as_str()));
    }
    // A seventh claim finds every engine full.
    let more = w.worktree("m7");
    w.run_with(&more, &["claim"], &env)
        .code(1)
        .assert_stderr_contains("every engine of the pool is full");
    for wt in &trees {
        w.run_with(wt, &["release"], &env).success();
    }
    for (engine, slot) in &on {
        let context = if engine == "local" { "default" } else { engine };
        assert_eq!(
            left_on(e, context, &w.project(*slot)),
            "",
            "left on {engine}"
        );
    }
}

/// A process of another engine's host (a container there in the host's
/// network namespace) holds slot 1's port: a claim there sees it, though a
/// bind on this machine would find the port free.
#[test]
fn a_port_taken_on_another_engines_host_is_seen_as_taken() {
    let e = engines();
    let tables = format!(
        "{}\n[engines.local]\nmax_slots = 0\n\n[engines.dse1]\ncontext = \"dse1-tcp\"\n",
        &ENGINES[..ENGINES.find("[engines.local]").unwrap()]
    );
    let _shared = e.shared();
    let w = World::with_pool_stack(31, Compose::V2, "e2e31", "templates-engines", &tables);
    clean_extra(e, 31);
    let env = env_of(e);
    let env = pairs(&env);
    let port = w.port(1, "api");
    let holder = "e2e31-foreign";
    let _ = e.docker("dse1", &["rm", "-f", holder]).output();
    e.docker_ok(
        "dse1",
        &[
            "run",
            "-d",
            "--init",
            "--name",
            holder,
            "--network",
            "host",
            "docker-sandbox-test/busybox:1",
            "nc",
            "-ll",
            "-p",
            &port.to_string(),
            "-e",
            "true",
        ],
    );
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} is free on this machine"
    );
    let wt = w.worktree("held");
    w.run_with(&wt, &["claim", "--slot", "1"], &env)
        .code(3)
        .assert_stderr_contains(&format!("port {port} of slot 1 is in use"));
    // Without --slot the claim passes over slot 1.
    let got = w
        .run_with(&wt, &["claim", "--format", "json"], &env)
        .success()
        .json();
    assert_eq!(got["engine"], "dse1", "{got}");
    assert_eq!(got["host"], "10.231.1.2", "{got}");
    assert_ne!(got["slot"], 1, "{got}");
    w.run_with(&wt, &["release"], &env).success();
    e.docker_ok("dse1", &["rm", "-f", holder]);
}

/// With one extra engine stopped, its slot is `unknown` (exit 0, a
/// warning), and `slots`, `claim`, `up` and `release` on the other engines
/// go on; started again, its slot is released and `gc` leaves nothing on
/// any engine. Compose 1.29 here, through DOCKER_CONTEXT.
#[test]
fn a_stopped_engine_makes_its_slots_unknown_and_blocks_nothing_else() {
    let e = engines();
    let tables = format!(
        "{}\n[engines.local]\nmax_slots = 1\n\n[engines.dse1]\ncontext = \"dse1\"\naddress = \"10.231.1.2\"\nmax_slots = 1\n\n[engines.dse2]\ncontext = \"dse2\"\naddress = \"10.231.2.2\"\nmax_slots = 1\n",
        &ENGINES[..ENGINES.find("[engines.local]").unwrap()]
    );
    let _alone = e.alone();
    let w = World::with_pool_stack(32, Compose::V1, "e2e32", "templates-engines", &tables);
    clean_extra(e, 32);
    let env = env_of(e);
    let env = pairs(&env);
    let (a, b, c) = (w.worktree("a"), w.worktree("b"), w.worktree("c"));
    w.run_with(&a, &["up", "--engine", "dse2"], &env).success();
    w.run_with(&b, &["up"], &env).success();
    let on_dse2 = w.slot_of(&a).unwrap();
    let local = w.slot_of(&b).unwrap();
    {
        let _stopped = e.stopped(2);
        let slots = w
            .run_with(&w.repo, &["slots", "--format", "json"], &env)
            .success();
        slots.assert_stderr_contains("warning: engine `dse2` does not answer");
        let json = slots.json();
        let status = |id: u32| json["slots"][(id - 1) as usize]["status"].clone();
        assert_eq!(status(on_dse2), "unknown", "{json}");
        assert_eq!(status(local), "running", "{json}");
        let doctor = w
            .run_with(&w.repo, &["doctor", "--format", "json"], &env)
            .json();
        let engines = doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "engines")
            .cloned()
            .unwrap_or_else(|| panic!("no engines check: {doctor}"));
        assert_eq!(engines["level"], "warn", "{engines}");
        assert!(
            engines["detail"]
                .as_str()
                .unwrap()
                .contains("`dse2` does not answer (1 claim(s))"),
            "{engines}"
        );
        w.run_with(&a, &["status"], &env)
            .success()
            .assert_stderr_contains("engine `dse2` does not answer");
        // The third claim goes to dse1, the one engine with room that answers.
        let up = w
            .run_with(&c, &["up", "--format", "json"], &env)
            .success()
            .json();
        let id = up["slot"].as_u64().unwrap() as u32;
        let (status, body) = http_get_at(Engines::address(1), w.port(id, "api"), "/slot").unwrap();
        assert_eq!((status, body.trim()), (200, id.to_string().as_str()));
        w.run_with(&b, &["release"], &env).success();
        w.run_with(&c, &["release"], &env).success();
    }
    w.run_with(&a, &["release"], &env).success();
    w.run_with(&w.repo, &["gc"], &env).success();
    for context in ["default", "dse1", "dse2"] {
        for id in 1..=3 {
            assert_eq!(
                left_on(e, context, &w.project(id)),
                "",
                "slot {id} left on {context}"
            );
        }
    }
}

/// A claim on another engine whose worktree is gone is freed by `gc`,
/// which takes its stack down on that engine and leaves nothing there.
#[test]
fn gc_frees_an_orphaned_claim_on_another_engine() {
    let e = engines();
    let _shared = e.shared();
    let w = World::with_pool_stack(33, Compose::V2, "e2e33", "templates-engines", ENGINES);
    clean_extra(e, 33);
    let env = env_of(e);
    let env = pairs(&env);
    let wt = w.worktree("gone");
    w.run_with(&wt, &["up", "--engine", "dse2"], &env).success();
    let slot = w.slot_of(&wt).unwrap();
    assert_ne!(
        left_on(e, "dse2", &w.project(slot)),
        "",
        "the stack runs on dse2"
    );
    std::fs::remove_dir_all(&wt).unwrap();
    let gc = w
        .run_with(&w.repo, &["gc", "--format", "json"], &env)
        .success()
        .json();
    assert_eq!(gc["freed"][0]["slot"], slot, "{gc}");
    assert_eq!(left_on(e, "dse2", &w.project(slot)), "", "left on dse2");
    assert_eq!(w.slot(slot)["claimed_by"], serde_json::Value::Null);
}

/// A stack that bind-mounts the worktree is refused on an engine that does
/// not see it, naming the mount, before anything starts there; the same
/// stack runs on the local engine.
#[test]
fn a_bind_of_the_worktree_is_refused_on_an_engine_that_does_not_see_it() {
    let e = engines();
    let _shared = e.shared();
    let w = World::with_pool_stack(34, Compose::V2, "e2e34", "templates-engines-bind", ENGINES);
    clean_extra(e, 34);
    let env = env_of(e);
    let env = pairs(&env);
    let far = w.worktree("far");
    let up = w.run_with(&far, &["up", "--engine", "dse1"], &env).code(1);
    up.assert_stderr_contains(&format!(
        "engine `dse1` does not see the worktree `{}`, and service `web` bind-mounts `{}`",
        far.display(),
        far.display()
    ));
    let slot = w.slot_of(&far).unwrap();
    assert_eq!(
        left_on(e, "dse1", &w.project(slot)),
        "",
        "nothing started on dse1"
    );
    w.run_with(&far, &["release"], &env).success();
    let near = w.worktree("near");
    w.run_with(&near, &["up"], &env).success();
    w.run_with(&near, &["release"], &env).success();
}

/// A web server on a published port, and a worker with none: a project's
/// own compose file, adopted.
fn adopted_compose_file(base: u16) -> String {
    format!(
        r#"services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - "{base}:8080"
  worker:
    image: {IMAGE}
    command: ["sleep", "100000"]
"#
    )
}

/// The host addresses `project`'s web container publishes on, on engine
/// `context` (`default`: this machine's).
fn published_on(e: &Engines, context: &str, project: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={project}");
    let id = e.docker_ok(
        context,
        &[
            "ps",
            "-q",
            "--filter",
            &label,
            "--filter",
            "label=com.docker.compose.service=web",
        ],
    );
    assert!(
        !id.is_empty() && !id.contains('\n'),
        "{project} on {context}: {id:?}"
    );
    e.docker_ok(context, &["port", &id])
        .lines()
        .map(|l| {
            l.split_once(" -> ")
                .unwrap()
                .1
                .rsplit_once(':')
                .unwrap()
                .0
                .to_owned()
        })
        .collect()
}

/// An adopted pool (the repository's own compose file, no templates) with a
/// slot on another engine: its slot file publishes on every interface of
/// that host, so the stack answers on the engine's address (and not on this
/// host's loopback), `status` says where; a slot on the local engine stays
/// on 127.0.0.1, even from a shell that holds the other claim's
/// `SANDBOX_HOST_IP`; `release` leaves nothing on either engine.
#[test]
fn an_adopted_pools_slot_on_another_engine_answers_on_its_address() {
    let e = engines();
    let _shared = e.shared();
    let w = adopted_world(e, 37);
    let b = w.base;
    std::fs::write(w.repo.join("compose.yaml"), adopted_compose_file(b)).unwrap();
    let slots: String = (1..=SLOTS).map(|s| format!("{s} = \"light\"\n")).collect();
    std::fs::write(
        w.repo.join("docker-sandbox.toml"),
        format!(
            "[pool]\nname = \"remote37\"\ncompose = [\"compose.yaml\"]\ngate_timeout = 60\n\n\
             [slots]\n{slots}\n[engines.dse1]\ncontext = \"dse1\"\naddress = \"10.231.1.2\"\n"
        ),
    )
    .unwrap();
    w.git(&w.repo, &["add", "-A"]);
    w.git(&w.repo, &["commit", "-q", "-m", "the project"]);
    let env = env_of(e);
    let env = pairs(&env);

    let far = w.worktree("far");
    w.run_with(&far, &["up", "--engine", "dse1"], &env)
        .success()
        .assert_stdout_contains("is up and ready");
    let slot = w.slot_of(&far).unwrap();
    let port = w.port(slot, "web");
    let project = w.project(slot);
    assert_eq!(published_on(e, "dse1", &project), ["0.0.0.0"]);
    let (status, body) = http_get_at(Engines::address(1), port, "/")
        .unwrap_or_else(|err| panic!("slot {slot} on dse1: {err}"));
    assert_eq!((status, body.trim()), (200, "hello"));
    assert!(
        http_get(port, "/").is_err(),
        "slot {slot} on dse1 answers on 127.0.0.1:{port}"
    );
    let status = w
        .run_with(&far, &["status", "--format", "json"], &env)
        .success()
        .json();
    assert_eq!(
        (&status["engine"], &status["host"]),
        (&"dse1".into(), &"10.231.1.2".into()),
        "{status}"
    );
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(
        status["urls"]["web"],
        format!("http://10.231.1.2:{port}"),
        "{status}"
    );

    // A shell that ran `env` of the far claim holds its SANDBOX_HOST_IP: a
    // local slot is published on the loopback all the same.
    let near = w.worktree("near");
    let mut leaked = env.clone();
    leaked.push(("SANDBOX_HOST_IP", "0.0.0.0"));
    w.run_with(&near, &["up"], &leaked)
        .success()
        .assert_stdout_contains("is up and ready");
    let local = w.slot_of(&near).unwrap();
    assert_eq!(published_on(e, "default", &w.project(local)), ["127.0.0.1"]);
    let (status, body) = http_get(w.port(local, "web"), "/").unwrap();
    assert_eq!((status, body.trim()), (200, "hello"));

    w.run_with(&far, &["release"], &env).success();
    w.run_with(&near, &["release"], &env).success();
    assert_eq!(left_on(e, "dse1", &project), "", "left on dse1");
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

/// An adopted pool whose web server serves a folder of the worktree, bound
/// in, on dse1 with a `path_map` to another copy of the worktrees (as
/// another host would hold them): the slot there serves that copy's files,
/// its env file says where it sees the worktree; a local slot serves the
/// worktree's own; `release` leaves nothing on either engine.
#[test]
fn a_bind_of_the_worktree_follows_the_engines_path_map() {
    let e = engines();
    let _shared = e.shared();
    let w = adopted_world(e, 38);
    let b = w.base;
    std::fs::write(
        w.repo.join("compose.yaml"),
        format!(
            r#"services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
      - "{b}:8080"
    volumes:
      - ./www:/www:ro
"#
        ),
    )
    .unwrap();
    std::fs::create_dir_all(w.repo.join("www")).unwrap();
    std::fs::write(w.repo.join("www/index.html"), "the worktree's own\n").unwrap();
    let mirror = tempfile::Builder::new()
        .prefix("ds-e2e38-mirror-")
        .tempdir()
        .unwrap();
    let mirror_root = mirror.path().canonicalize().unwrap();
    let slots: String = (1..=SLOTS).map(|s| format!("{s} = \"light\"\n")).collect();
    std::fs::write(
        w.repo.join("docker-sandbox.toml"),
        format!(
            "[pool]\nname = \"remote38\"\ncompose = [\"compose.yaml\"]\ngate_timeout = 60\n\n\
             [slots]\n{slots}\n[engines.dse1]\ncontext = \"dse1\"\naddress = \"10.231.1.2\"\n\
             path_map = {{ \"{}\" = \"{}\" }}\n",
            w.root.display(),
            mirror_root.display()
        ),
    )
    .unwrap();
    w.git(&w.repo, &["add", "-A"]);
    w.git(&w.repo, &["commit", "-q", "-m", "the project"]);
    let env = env_of(e);
    let env = pairs(&env);

    let far = w.worktree("far");
    let seen_there = mirror_root.join("repo--far");
    std::fs::create_dir_all(seen_there.join("www")).unwrap();
    std::fs::write(seen_there.join("www/index.html"), "the engine's copy\n").unwrap();
    w.run_with(&far, &["up", "--engine", "dse1"], &env)
        .success()
        .assert_stdout_contains("is up and ready");
    let slot = w.slot_of(&far).unwrap();
    let env_file = env_file(&far.join(".env.sandbox"));
    assert_eq!(
        env_file.get("SANDBOX_ENGINE_WORKTREE").map(String::as_str),
        Some(seen_there.to_str().unwrap()),
        "{env_file:?}"
    );
    let (status, body) = http_get_at(Engines::address(1), w.port(slot, "web"), "/")
        .unwrap_or_else(|err| panic!("slot {slot} on dse1: {err}"));
    assert_eq!((status, body.trim()), (200, "the engine's copy"));

    let near = w.worktree("near");
    w.run_with(&near, &["up"], &env)
        .success()
        .assert_stdout_contains("is up and ready");
    let local = w.slot_of(&near).unwrap();
    let (status, body) = http_get(w.port(local, "web"), "/").unwrap();
    assert_eq!((status, body.trim()), (200, "the worktree's own"));

    w.run_with(&far, &["release"], &env).success();
    w.run_with(&near, &["release"], &env).success();
    assert_eq!(left_on(e, "dse1", &w.project(slot)), "", "left on dse1");
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

/// A route on engine dse1's host only (`ip route` in its namespace, taken
/// out again at the end).
struct RouteOnDse1(&'static str);

impl RouteOnDse1 {
    fn add(net: &'static str) -> RouteOnDse1 {
        let ip = |verb: &str| {
            std::process::Command::new("nsenter")
                .args([
                    "--net=/run/netns/dse1",
                    "ip",
                    "route",
                    verb,
                    net,
                    "dev",
                    "lo",
                ])
                .output()
                .unwrap()
        };
        let _ = ip("del");
        let out = ip("add");
        assert!(
            out.status.success(),
            "ip route add {net} in dse1: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        RouteOnDse1(net)
    }
}

impl Drop for RouteOnDse1 {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nsenter")
            .args([
                "--net=/run/netns/dse1",
                "ip",
                "route",
                "del",
                self.0,
                "dev",
                "lo",
            ])
            .output();
    }
}

/// A route of dse1's host over the pool's range refuses a slot there, naming
/// the route and the engine, before anything starts; this machine has no
/// such route, so the same pool runs locally.
#[test]
fn a_route_of_another_engines_host_refuses_an_overlapping_range_there_only() {
    let e = engines();
    let _shared = e.shared();
    let tables = format!(
        "{}\n[engines.dse1]\ncontext = \"dse1\"\naddress = \"10.231.1.2\"\n",
        &ENGINES[..ENGINES.find("[engines.local]").unwrap()]
    );
    let w = World::with_pool_stack(39, Compose::V2, "remote39", "templates-engines", &tables);
    clean_pool(e, &w.pool);
    let env = env_of(e);
    let env = pairs(&env);
    let range = subnets(39);
    assert_eq!(range, "10.139.0.0/16");
    let route = RouteOnDse1::add("10.139.0.0/16");
    let far = w.worktree("far");
    let up = w.run_with(&far, &["up", "--engine", "dse1"], &env).code(1);
    up.assert_stderr_contains(&format!(
        "of `[pool] subnets` (`{range}`) overlap route 10.139.0.0/16 on `lo` (engine `dse1`)"
    ));
    let slot = w.slot_of(&far).unwrap();
    assert_eq!(
        left_on(e, "dse1", &w.project(slot)),
        "",
        "nothing started on dse1"
    );
    w.run_with(&far, &["release"], &env).success();
    // doctor asks every engine: the range fails there, and only there.
    let doctor = w
        .run_with(&far, &["doctor", "--format", "json"], &env)
        .code(1);
    let checks: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    let subnets = checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "subnets")
        .unwrap_or_else(|| panic!("no subnets check: {}", doctor.stdout));
    assert_eq!(subnets["level"], "fail", "{subnets}");
    let detail = subnets["detail"].as_str().unwrap();
    assert!(
        detail.contains("route 10.139.0.0/16 on `lo` (engine `dse1`)")
            && !detail.contains("(engine `local`)"),
        "{detail}"
    );
    let near = w.worktree("near");
    w.run_with(&near, &["up"], &env)
        .success()
        .assert_stdout_contains("is up and ready");
    w.run_with(&near, &["release"], &env).success();
    drop(route);
    let routes = std::process::Command::new("nsenter")
        .args(["--net=/run/netns/dse1", "ip", "route"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&routes.stdout).contains("10.139."),
        "the route is gone from dse1"
    );
}

/// A world of test `n` for an adopted pool `remote<n>` (no templates: its
/// state in the platform's folder), clean on every engine.
fn adopted_world(e: &Engines, n: u32) -> World {
    let mut w = World::bare(n, Compose::V2);
    w.pool = format!("remote{n}");
    w.state = w
        .home
        .join(format!(".local/state/docker-sandbox/remote{n}"));
    w.cleanup();
    clean_pool(e, &w.pool);
    w
}
