//! Interrupts: SIGINT and SIGTERM sent to the plugin alone (as `kill`, a CI
//! runner or an agent's timeout does), and docker's plugin socket closing
//! (what docker does when it gets one), during `run -- CMD`, `logs -f` and
//! `up`. The child must hear it, be waited for, and give its exit code.

use std::io::{BufRead, BufReader, Read};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::fake_docker::*;
use crate::support::*;

/// Port blocks of 100 from 63000: above the ephemeral range (up to 60999)
/// and the agents' blocks, below the workflow tests'.
static BLOCK: AtomicU32 = AtomicU32::new(0);

/// A child's script: traps SIGINT and SIGTERM (saying which and exiting 7 or
/// 8), and says `ready <its pid>` once the traps are set. It waits in short
/// foreground sleeps, after each of which the shell runs a trap that came:
/// dash's `wait` builtin can miss a trapped signal that lands just before it
/// blocks, which would leave the test waiting on a child that was told.
const TRAPPING: &str = r#"trap 'echo "child got INT"; exit 7' INT
trap 'echo "child got TERM"; exit 8' TERM
echo "ready $$"
while :; do sleep 0.1; done"#;

/// A provisioned pool in a git repository, a slot claimed by it, and the fake
/// docker on PATH (the engine reached through the docker CLI).
struct Claimed {
    ctx: TestContext,
    fake: FakeDocker,
}

impl Claimed {
    fn new(top: &str) -> Claimed {
        let ctx = TestContext::new();
        ctx.git_init();
        let b = 63_000 + 100 * BLOCK.fetch_add(1, Ordering::SeqCst);
        assert!(b < 64_000, "out of port blocks");
        ctx.write_project_file(&format!(
            "{NO_STEPS}{top}[ports]\napi = [{b}, 1]\ndb = [{}, 1]\ngrafana = [{}, 1]\njaeger_ui = [{}, 1]\n\
             prometheus = [{}, 1]\njaeger_otlp_grpc = [{}, 1]\njaeger_otlp_http = [{}, 1]\n\
             workers = [{}, 10]\n",
            b + 10,
            b + 20,
            b + 30,
            b + 40,
            b + 50,
            b + 60,
            b + 70,
        ));
        let fake = FakeDocker::install(&ctx);
        let claimed = Claimed { ctx, fake };
        TestContext::run_cmd(claimed.cmd(&["provision"])).success();
        TestContext::run_cmd(claimed.cmd(&["claim"])).success();
        claimed.fake.clear();
        claimed
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.ctx.cmd();
        self.fake.apply(&mut cmd);
        cmd.env("DOCKER_HOST", "ssh://fake-engine").args(args);
        cmd
    }

    /// The fake docker, except that `compose ... <verb>` runs [`TRAPPING`].
    fn trapping(&self, verb: &str) {
        let real = self.ctx.root.join("fake-docker-real");
        std::fs::rename(&self.fake.docker, &real).unwrap();
        write_executable(
            &self.fake.docker,
            &format!(
                "#!/bin/bash\ncase \" $* \" in\n  *' compose '*' {verb} '*) {TRAPPING} ;;\n  \
                 *) exec '{}' \"$@\" ;;\nesac\n",
                real.display()
            ),
        );
    }
}

/// Processes a test started that must be gone when it ends: killed if not,
/// so that a failing test leaves nothing behind.
struct Pids(Vec<u32>);

impl Pids {
    fn alive(&self) -> Vec<u32> {
        self.0
            .iter()
            .copied()
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .collect()
    }
}

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in self.alive() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Starts `cmd` with its stdout piped and reads it up to the child's `ready`
/// line: from then on the child's traps are set.
fn start_until_ready(mut cmd: Command) -> (Child, BufReader<ChildStdout>, Pids) {
    let mut plugin = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(plugin.stdout.take().unwrap());
    let mut line = String::new();
    assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "no ready line");
    let pids = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("not the ready line: {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (plugin, stdout, Pids(pids))
}

fn kill(signal: &str, pid: u32) {
    let kill = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

/// Waits for the plugin and checks its code, that the child is gone (only
/// then can its output be read to the end) and what the child said.
fn assert_passed_on(
    mut plugin: Child,
    mut stdout: BufReader<ChildStdout>,
    pids: Pids,
    code: i32,
    said: &str,
) {
    let status = plugin.wait().unwrap();
    assert_eq!(status.code(), Some(code), "{status}");
    assert_eq!(pids.alive(), Vec::<u32>::new(), "the child was left behind");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, format!("{said}\n"));
    let mut stderr = String::new();
    let mut pipe = plugin.stderr.take().unwrap();
    pipe.read_to_string(&mut stderr).unwrap();
    assert_eq!(stderr, "");
}

/// An abstract unix socket, as docker makes for a plugin, and its
/// `DOCKER_CLI_PLUGIN_SOCKET` spelling.
fn docker_socket() -> (UnixListener, String) {
    let name = format!("ds-it-{}-{}", std::process::id(), rand_suffix());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    (UnixListener::bind_addr(&addr).unwrap(), format!("@{name}"))
}

fn rand_suffix() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// The plugin's connection: it connects as it starts, before it runs
/// anything, so by the time its child is ready the connection is waiting.
fn accept_plugin(listener: &UnixListener) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Ok((conn, _)) => conn,
        Err(e) => panic!("the plugin did not connect to docker's socket: {e}"),
    }
}

fn run_trapping(claimed: &Claimed) -> Command {
    claimed.cmd(&["run", "--", "sh", "-c", TRAPPING])
}

#[test]
fn run_passes_sigint_to_the_child_and_exits_with_its_code() {
    let claimed = Claimed::new("");
    let (plugin, stdout, pids) = start_until_ready(run_trapping(&claimed));
    kill("-INT", plugin.id());
    assert_passed_on(plugin, stdout, pids, 7, "child got INT");
}

#[test]
fn run_passes_sigterm_to_the_child_and_exits_with_its_code() {
    let claimed = Claimed::new("");
    let (plugin, stdout, pids) = start_until_ready(run_trapping(&claimed));
    kill("-TERM", plugin.id());
    assert_passed_on(plugin, stdout, pids, 8, "child got TERM");
}

#[test]
fn run_passes_docker_closing_its_socket_on_as_sigint() {
    let claimed = Claimed::new("");
    let (listener, address) = docker_socket();
    let mut cmd = run_trapping(&claimed);
    cmd.env("DOCKER_CLI_PLUGIN_SOCKET", &address);
    let (plugin, stdout, pids) = start_until_ready(cmd);
    let conn = accept_plugin(&listener);
    drop(conn);
    assert_passed_on(plugin, stdout, pids, 7, "child got INT");
}

#[test]
fn run_does_not_hand_docker_s_socket_to_the_child() {
    let claimed = Claimed::new("");
    let (_listener, address) = docker_socket();
    let mut cmd = claimed.cmd(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo \"${DOCKER_CLI_PLUGIN_SOCKET-unset}\"",
    ]);
    cmd.env("DOCKER_CLI_PLUGIN_SOCKET", &address);
    let run = TestContext::run_cmd(cmd).success();
    assert_eq!(run.stdout, "unset\n");
}

#[test]
fn a_socket_that_cannot_be_reached_changes_nothing() {
    let claimed = Claimed::new("");
    for address in ["@ds-it-nobody-listens", "/no/such/socket", "not a socket"] {
        let mut cmd = claimed.cmd(&["run", "--", "sh", "-c", "exit 5"]);
        cmd.env("DOCKER_CLI_PLUGIN_SOCKET", address);
        TestContext::run_cmd(cmd).code(5);
    }
}

#[test]
fn logs_follow_passes_sigint_to_compose_and_exits_with_its_code() {
    let claimed = Claimed::new("");
    claimed.trapping("logs");
    let (plugin, stdout, pids) = start_until_ready(claimed.cmd(&["logs", "-f"]));
    kill("-INT", plugin.id());
    assert_passed_on(plugin, stdout, pids, 7, "child got INT");
}

#[test]
fn logs_follow_passes_docker_closing_its_socket_on_to_compose() {
    let claimed = Claimed::new("");
    claimed.trapping("logs");
    let (listener, address) = docker_socket();
    let mut cmd = claimed.cmd(&["logs", "-f"]);
    cmd.env("DOCKER_CLI_PLUGIN_SOCKET", &address);
    let (plugin, stdout, pids) = start_until_ready(cmd);
    drop(accept_plugin(&listener));
    assert_passed_on(plugin, stdout, pids, 7, "child got INT");
}

#[test]
fn up_stopped_by_docker_closing_its_socket_takes_the_stack_down() {
    let claimed = Claimed::new("gate = []\n");
    // The slot's own container: it carries this registry's id.
    let mut backend = container(
        "c1",
        "ktrdr-slot-1",
        "backend",
        "running",
        "Up 2 seconds (health: starting)",
        "",
    );
    let id = claimed.ctx.registry()["id"].as_str().unwrap().to_owned();
    let labels = backend["Labels"].as_str().unwrap().to_owned();
    backend["Labels"] = format!("{labels},org.docker-sandbox.registry={id}").into();
    claimed.fake.answer("ps.jsonl", &[backend]);
    let (listener, address) = docker_socket();
    let mut up = claimed
        .cmd(&["up", "--timeout", "60"])
        .env("DOCKER_CLI_PLUGIN_SOCKET", &address)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _up_guard = Pids(vec![up.id()]);
    let mut stderr = BufReader::new(up.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Waiting for slot 1") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "{seen}");
        seen.push_str(&line);
    }
    drop(accept_plugin(&listener));
    stderr.read_to_string(&mut seen).unwrap();
    let status = up.wait().unwrap();
    // The socket does not say which signal docker got: 130, as compose does.
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains(
            "error: `up` of slot 1 was stopped by a signal to `docker` (it closed the plugin \
             socket); the stack was taken down with its volumes\n\
             hint: the claim is kept: run `docker sandbox up` again\n"
        ),
        "{seen}"
    );
    let calls = claimed.fake.calls();
    let down = calls
        .iter()
        .position(|c| c.iter().any(|a| a == "compose") && c.iter().any(|a| a == "down"));
    assert!(down.is_some(), "{calls:?}");
    assert_eq!(claimed.ctx.registry()["slots"]["1"]["status"], "stopped");
}

#[test]
fn another_command_ends_at_once_with_130_when_docker_closes_its_socket() {
    let claimed = Claimed::new("");
    claimed.trapping("down");
    let (listener, address) = docker_socket();
    let mut down = claimed
        .cmd(&["down"])
        .env("DOCKER_CLI_PLUGIN_SOCKET", &address)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = Pids(vec![down.id()]);
    // `down` sends compose's output to stderr.
    let mut stderr = BufReader::new(down.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("ready ") {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no ready line");
    }
    let _compose = Pids(
        line["ready ".len()..]
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect(),
    );
    drop(accept_plugin(&listener));
    // As a SIGINT would end it, with the code a shell gives one.
    assert_eq!(down.wait().unwrap().code(), Some(130));
}

#[test]
fn metadata_and_completion_never_connect() {
    let ctx = TestContext::new();
    let (listener, address) = docker_socket();
    for args in [
        &["docker-cli-plugin-metadata"][..],
        &["__complete", "sandbox", "u"][..],
    ] {
        let mut cmd = ctx.cmd();
        cmd.args(args).env("DOCKER_CLI_PLUGIN_SOCKET", &address);
        TestContext::run_cmd(cmd).success();
    }
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept().map(|_| ());
    assert_eq!(
        accepted.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );
}
