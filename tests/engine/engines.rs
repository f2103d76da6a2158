//! The suite's extra Docker engines, each as if it were another host
//! (`engines.sh`: its own network namespace, address and dockerd), started
//! once per run of the suite, and the proof that they are: a published port
//! answers on the engine's own address and not on this host's loopback, and
//! each engine is reached through a unix socket, tcp and ssh context alike.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::support::*;

/// Where `engines.sh` keeps its engines and their docker config folder.
pub struct Engines {
    /// `DOCKER_CONFIG` holding the contexts `dse1`, `dse2` (and `-tcp`, `-ssh`).
    pub config: PathBuf,
    /// Comes first on PATH for the `-ssh` contexts: its `ssh` finds the key.
    pub bin: PathBuf,
}

impl Engines {
    /// Removes what the first `slots` slots of pool `pool` left on engine
    /// `context`: their containers, volumes and networks, by compose label.
    pub fn clean_slots(&self, context: &str, pool: &str, slots: u32) {
        for id in 1..=slots {
            let label = format!("label=com.docker.compose.project={pool}-slot-{id}");
            for (list, rm) in [
                ("ps -aq", "rm -f -v"),
                ("volume ls -q", "volume rm -f"),
                ("network ls -q", "network rm"),
            ] {
                let mut args: Vec<&str> = list.split(' ').collect();
                args.extend(["--filter", &label]);
                let found = self.docker_ok(context, &args);
                for item in found.lines().filter(|l| !l.is_empty()) {
                    let mut args: Vec<&str> = rm.split(' ').collect();
                    args.push(item);
                    self.docker_ok(context, &args);
                }
            }
        }
    }

    /// Engine `n`'s address, as another host's would be.
    pub fn address(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, n, 2)
    }

    /// `docker --context <context> args...` with this folder's contexts.
    pub fn docker(&self, context: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("DOCKER_CONFIG", &self.config)
            .env("PATH", path)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .arg("--context")
            .arg(context)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// The environment the plugin needs for these contexts: their config
    /// folder, and the `ssh` that finds the key first on PATH.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        vec![
            ("DOCKER_CONFIG".into(), self.config.display().to_string()),
            ("PATH".into(), path),
        ]
    }

    /// Held by a test that uses the extra engines, so that none runs while
    /// another stops one (`alone`).
    pub fn shared(&self) -> std::sync::RwLockReadGuard<'static, ()> {
        USE.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Held by a test that stops an engine: no other test uses them meanwhile.
    pub fn alone(&self) -> std::sync::RwLockWriteGuard<'static, ()> {
        USE.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops engine `n`'s dockerd until the guard is dropped (a failing
    /// test included), which starts it again.
    pub fn stopped(&self, n: u8) -> Stopped {
        script(&["stop", &n.to_string()]);
        Stopped(n)
    }

    /// What `docker --context <context> args...` printed; a failure fails the test.
    pub fn docker_ok(&self, context: &str, args: &[&str]) -> String {
        let out = self.docker(context, args).output().unwrap();
        assert!(
            out.status.success(),
            "`docker --context {context} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

static USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// An extra engine stopped by `Engines::stopped`.
pub struct Stopped(u8);

impl Drop for Stopped {
    fn drop(&mut self) {
        script(&["start", &self.0.to_string()]);
    }
}

fn script(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine/engines.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`bash tests/engine/engines.sh {}` failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Both extra engines, started by the first test that needs them (a running
/// pair is kept: `bash tests/engine/engines.sh down` removes them, as
/// `.ci/run` does at its end).
pub fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let run = std::env::var_os("DOCKER_SANDBOX_TEST_ENGINES").map_or_else(
            || PathBuf::from("/tmp/docker-sandbox-engines"),
            PathBuf::from,
        );
        script(&["up"]);
        Engines {
            config: run.join("docker"),
            bin: run.join("bin"),
        }
    })
}

#[test]
fn extra_engines_are_hosts_of_their_own() {
    preflight();
    claim_number(88);
    let e = engines();
    let _shared = e.shared();
    let port = base_port(88);
    for n in [1u8, 2] {
        let name = format!("dse{n}");
        let ctr = format!("e2e88-smoke-{n}");
        let _ = e.docker(&name, &["rm", "-f", &ctr]).output();
        e.docker_ok(
            &name,
            &[
                "run",
                "-d",
                "--init",
                "--name",
                &ctr,
                "-p",
                &format!("{port}:80"),
                "docker-sandbox-test/busybox:1",
                "httpd",
                "-f",
                "-p",
                "80",
                "-h",
                "/etc",
            ],
        );
        // The engine's own address answers, with the container's files.
        let ip = Engines::address(n);
        let mut answer = http_get_at(ip, port, "/hostname");
        for _ in 0..100 {
            if answer.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            answer = http_get_at(ip, port, "/hostname");
        }
        let (status, body) = answer.unwrap_or_else(|e| panic!("engine {n} at {ip}: {e}"));
        assert_eq!(status, 200, "{body}");
        let id = e.docker_ok(&name, &["inspect", "-f", "{{.Config.Hostname}}", &ctr]);
        assert_eq!(body, id);
        // This host's loopback does not: the port is the other host's.
        assert!(
            http_get(port, "/hostname").is_err(),
            "port {port} answers on 127.0.0.1"
        );
        // The same engine through tcp and ssh.
        for via in [format!("{name}-tcp"), format!("{name}-ssh")] {
            let names = e.docker_ok(&via, &["ps", "--format", "{{.Names}}"]);
            assert!(names.lines().any(|l| l == ctr), "{via}: {names}");
        }
        e.docker_ok(&name, &["rm", "-f", &ctr]);
        // And the host engine never saw it.
        let here = docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={ctr}"),
            "--format",
            "{{.Names}}",
        ]);
        assert_eq!(here, "", "the host engine has the extra engine's container");
    }
}
