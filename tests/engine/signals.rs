//! Signals sent to the `docker` process, as a CI runner or an agent harness
//! sends them, with the plugin installed where docker finds it (a config
//! folder of its own, `docker --config DIR sandbox ...`). Docker does not pass
//! them on: it closes the plugin socket, which the plugin must treat as an
//! interrupt.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// The real docker CLI (28 here), not a test's fake.
const DOCKER: &str = "/usr/local/bin/docker";

/// A docker config folder whose `cli-plugins/` holds the built plugin.
fn docker_config(w: &World) -> PathBuf {
    let config = w.root.join("docker-config");
    let plugins = config.join("cli-plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::os::unix::fs::symlink(BIN, plugins.join("docker-sandbox")).unwrap();
    config
}

/// `docker --config <config> sandbox <args>` in `dir`, with the world's
/// environment (what `World::cmd` gives the plugin run directly).
fn through_docker(w: &World, config: &Path, dir: &Path, args: &[&str]) -> Command {
    let direct = w.cmd(dir, &[]);
    let mut cmd = Command::new(DOCKER);
    cmd.current_dir(dir).stdin(Stdio::null());
    for (key, value) in direct.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.arg("--config").arg(config).arg("sandbox").args(args);
    cmd
}

fn kill(signal: &str, pid: u32) {
    let kill = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

/// Reads `from` into `seen` up to a line holding `needle`.
fn read_until(from: &mut impl BufRead, seen: &mut String, needle: &str) {
    while !seen.contains(needle) {
        let mut line = String::new();
        assert_ne!(from.read_line(&mut line).unwrap(), 0, "{seen}");
        seen.push_str(&line);
    }
}

/// `up` through docker while the gate waits (the backend answers 500 for
/// ever, so only an interrupt ends it before the deadline); `signal` goes to
/// the docker process alone.
fn up_stopped_through_docker(n: u32, compose: Compose, signal: &str) {
    let w = World::with_compose(n, compose);
    let a = w.worktree("a");
    let config = docker_config(&w);
    let mut docker: Child = through_docker(&w, &config, &a, &["up", "--timeout", "60"])
        .env("BACKEND_FAIL", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(docker.stderr.take().unwrap());
    let mut seen = String::new();
    read_until(&mut stderr, &mut seen, "Waiting for slot 1");
    assert!(!containers(&w.project(1)).is_empty(), "{seen}");
    kill(signal, docker.id());
    stderr.read_to_string(&mut seen).unwrap();
    let status = docker.wait().unwrap();
    // Docker's exit code is the plugin's: 130, whichever signal docker got
    // (its socket does not say), as compose exits.
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains(
            "`up` of slot 1 was stopped by a signal to `docker` (it closed the plugin socket); \
             the stack was taken down with its volumes"
        ),
        "{seen}"
    );
    assert!(!seen.contains("forcefully exiting"), "{seen}");
    assert_nothing_left(&w.project(1));
    let slot = w.slot(1);
    assert_eq!(slot["claimed_by"], a.display().to_string(), "{slot}");
    assert_eq!(slot["status"], "stopped", "{slot}");
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

#[test]
fn sigterm_to_docker_stops_up_and_leaves_nothing_with_compose_v2() {
    up_stopped_through_docker(40, Compose::V2, "-TERM");
}

#[test]
fn sigint_to_docker_stops_up_and_leaves_nothing_with_compose_v1() {
    up_stopped_through_docker(41, Compose::V1, "-INT");
}

#[test]
fn sigterm_to_docker_reaches_the_child_of_run() {
    let w = World::with_compose(42, Compose::V2);
    let a = w.worktree("a");
    let config = docker_config(&w);
    w.run(&a, &["claim"]).success();
    // Short foreground sleeps, after each of which the shell runs a trap
    // that came (dash's `wait` can miss a signal that lands just before it
    // blocks); about two minutes in all.
    let script = r#"trap 'echo "child got INT"; exit 7' INT
echo ready
i=0; while [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"#;
    let mut docker = through_docker(&w, &config, &a, &["run", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(docker.stdout.take().unwrap());
    let mut seen = String::new();
    read_until(&mut stdout, &mut seen, "ready");
    kill("-TERM", docker.id());
    let status = docker.wait().unwrap();
    // Docker closed the socket; the plugin passed it on as SIGINT. (Unheard,
    // the child would end when its sleep does, with 0.)
    assert_eq!(status.code(), Some(7), "{seen}");
    stdout.read_to_string(&mut seen).unwrap();
    assert_eq!(seen, "ready\nchild got INT\n");
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}

/// Processes whose command line names `project` and `verb`: compose's own
/// children of `logs -f` must not outlive it.
fn processes_of(project: &str, verb: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == project) && args.iter().any(|a| a == verb) {
            found.push(args.join(" "));
        }
    }
    found
}

#[test]
fn sigterm_to_docker_stops_logs_follow_and_its_compose() {
    let w = World::with_compose(43, Compose::V2);
    let a = w.worktree("a");
    let config = docker_config(&w);
    w.run(&a, &["up"]).success();
    let mut docker = through_docker(&w, &config, &a, &["logs", "-f", "backend"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(docker.stdout.take().unwrap());
    let mut seen = String::new();
    read_until(&mut stdout, &mut seen, "backend: slot=1");
    kill("-TERM", docker.id());
    // Unheard, `logs -f` would follow for ever: if docker has not exited
    // after long, stop the backend, which ends the logs with 0.
    let (done, stopped) = std::sync::mpsc::channel::<()>();
    let project = w.project(1);
    let guard = std::thread::spawn(move || {
        if stopped.recv_timeout(Duration::from_secs(120)).is_err() {
            for c in containers(&project)
                .iter()
                .filter(|c| c.service == "backend")
            {
                docker_ok(&["stop", &c.id]);
            }
        }
    });
    let status = docker.wait().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    let mut stderr = String::new();
    docker
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // Compose, told through docker in turn, exits 130 when cancelled.
    assert_eq!(status.code(), Some(130), "{seen}\n{stderr}");
    assert_eq!(
        processes_of(&w.project(1), "logs"),
        Vec::<String>::new(),
        "left behind"
    );
    w.run(&a, &["release"]).success();
    assert_eq!(w.leftovers(), Vec::<String>::new());
}
