//! The test context: a temp root with its own HOME, state folder and `bin/` on
//! PATH, and helpers to run the built binary in it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_docker-sandbox");

pub struct TestContext {
    _root: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    /// `DOCKER_SANDBOX_HOME`, unless `use_default_state` was called.
    pub state: PathBuf,
    pub bin: PathBuf,
    pub cwd: PathBuf,
    state_override: bool,
}

/// A finished run: exit code and both streams as text.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl TestContext {
    pub fn new() -> TestContext {
        let dir = tempfile::Builder::new().prefix("ds-it-").tempdir().unwrap();
        // Canonical, so paths printed by the binary match paths built here.
        let root = dir.path().canonicalize().unwrap();
        let home = root.join("home");
        let state = root.join("state");
        let bin = root.join("bin");
        let cwd = root.join("work");
        for d in [&home, &bin, &cwd] {
            std::fs::create_dir_all(d).unwrap();
        }
        TestContext {
            _root: dir,
            root,
            home,
            state,
            bin,
            cwd,
            state_override: true,
        }
    }

    /// State goes where the tool puts it by default: `$HOME/.ktrdr/sandboxes`.
    pub fn use_default_state(mut self) -> TestContext {
        self.state = self.home.join(".ktrdr/sandboxes");
        self.state_override = false;
        self
    }

    /// PATH: our `bin/` first, then the system's.
    pub fn path_env(&self) -> std::ffi::OsString {
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(paths).unwrap()
    }

    /// A command with this context's environment, running `program`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.cwd)
            .env("HOME", &self.home)
            .env("PATH", self.path_env())
            .env("NO_COLOR", "1")
            .env_remove("DOCKER_SANDBOX_CONFIG")
            .env_remove("DOCKER_SANDBOX_LOCK_TIMEOUT")
            .env_remove("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND")
            .env_remove("DOCKER_CLI_PLUGIN_SOCKET")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_CONFIG")
            .env_remove("DOCKER_SANDBOX_SUBNETS")
            // The fake docker answers `compose version` as each test says, not
            // by its files: every command asks it (a test of the cache says
            // otherwise).
            .env("DOCKER_SANDBOX_COMPOSE_CACHE", "0")
            // No test meets this machine's engine (its networks would decide
            // whether `provision` accepts the pool's subnets) nor its routes:
            // a test that wants an engine gives its own.
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.root.join("no-engine.sock").display()),
            )
            .env("DOCKER_SANDBOX_ROUTES", self.root.join("no-routes"));
        if self.state_override {
            cmd.env("DOCKER_SANDBOX_HOME", &self.state);
        } else {
            cmd.env_remove("DOCKER_SANDBOX_HOME");
        }
        cmd
    }

    /// The plugin binary, run directly.
    pub fn cmd(&self) -> Command {
        self.command(BIN)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().unwrap())
    }

    pub fn run_cmd(mut cmd: Command) -> Run {
        // A program the test just wrote can be "busy" for a moment: a child
        // another test thread forked meanwhile holds the writing descriptor
        // until it execs. That passes; anything else fails the test.
        const ETXTBSY: i32 = 26;
        let mut tries = 0;
        loop {
            match cmd.output() {
                Ok(out) => return Run::from(out),
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 500 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cannot run {cmd:?}: {e}"),
            }
        }
    }

    /// Runs git in `dir` (with the context's HOME, so no user config leaks
    /// in, and a committer identity) and returns its stdout; a failure fails
    /// the test.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .command("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Makes `cwd` a git repository (so a project file there is found).
    pub fn git_init(&self) {
        let st = self
            .command("git")
            .args(["init", "-q", "-b", "main"])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn write_project_file(&self, text: &str) -> PathBuf {
        let p = self.cwd.join("docker-sandbox.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn registry_path(&self) -> PathBuf {
        self.state.join("registry.json")
    }

    pub fn registry(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.registry_path()).unwrap()).unwrap()
    }

    /// Replaces the temp root in output, for snapshots.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[ROOT]")
    }
}

/// Writes an executable script.
pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file below `dir` with its bytes, for "nothing changed" checks.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let p = entry.path();
            // Sockets (a fake engine's) have no content to compare.
            if !entry.file_type().unwrap().is_dir() && !p.is_file() {
                continue;
            }
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Parses an env file into a map (comments and blank lines skipped).
pub fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The real compose v2 binary, docker's compose plugin, which `bash
/// tests/engine/setup.sh` installs: for a test whose docker is a fake but
/// whose compose `config` must read files for real. Fails the test when it
/// is missing.
pub fn real_compose_v2() -> PathBuf {
    let out = Command::new("docker")
        .args([
            "info",
            "--format",
            "{{range .ClientInfo.Plugins}}{{if eq .Name \"compose\"}}{{.Path}}{{end}}{{end}}",
        ])
        .output()
        .expect("docker runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        !path.is_empty() && Path::new(&path).is_file(),
        "docker has no compose plugin; run `bash tests/engine/setup.sh`"
    );
    PathBuf::from(path)
}

/// Turns off the default pool's step after start (its migrations, run with
/// `compose exec` in the backend) for the fake-docker tests of other things,
/// whose exact command lines it would join; tests/it/lifecycle.rs tests the
/// steps themselves. Goes at the top of a project file.
pub const NO_STEPS: &str = "after_up = []\n";

/// A slot's networks file as JSON: it is JSON inside YAML, one mapping per
/// network, each written as JSON (lines of other indentation are skipped).
pub fn networks_file_json(text: &str) -> serde_json::Value {
    let mut networks = serde_json::Map::new();
    for line in text.lines().filter(|l| l.starts_with("  ")) {
        let (key, def) = line.trim().split_once(": ").unwrap();
        let key: String = serde_json::from_str(key).unwrap();
        networks.insert(key, serde_json::from_str(def).unwrap());
    }
    serde_json::json!({ "networks": networks })
}
