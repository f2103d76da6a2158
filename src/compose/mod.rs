//! Every compose call is built here: discovery of the compose binary (`docker
//! compose` v2 and later, else a standalone `docker-compose`, v2 or the legacy
//! v1), and the one command line all verbs share:
//! `docker [globals] compose -p P --project-directory W --env-file E -f F
//! [-f N] <verb>`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::engine::Docker;
use crate::error::fail;

mod known;

/// Which compose program runs the verbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    /// `docker [globals] compose`.
    Plugin,
    /// A `docker-compose` binary, v2 standalone or the legacy v1.
    Standalone(PathBuf),
}

#[derive(Debug, Clone)]
pub(crate) struct Compose {
    pub(crate) docker: Docker,
    pub(crate) program: Program,
    /// As `version --short` prints it: `2.29.7`, `5.0.1`, `1.29.2`.
    pub(crate) version: String,
}

/// One slot's compose project, with absolute paths.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub(crate) name: String,
    pub(crate) directory: PathBuf,
    pub(crate) env_file: PathBuf,
    pub(crate) file: PathBuf,
    /// The slot's networks file, after `file`, when it has one.
    pub(crate) networks: Option<PathBuf>,
    /// An adopted pool's own compose files, ahead of the slot's override.
    pub(crate) base_files: Vec<PathBuf>,
    /// The project's own `.env`, read ahead of the slot's env file (the later
    /// wins), with an override.
    pub(crate) base_env: Option<PathBuf>,
    /// `[secrets] pass`: variables compose gets from the user's environment
    /// when set there, and from no file.
    pub(crate) pass: Vec<String>,
}

impl Compose {
    /// Finds compose: `DOCKER_SANDBOX_COMPOSE` if set (`plugin` for `docker
    /// compose`, else a standalone binary's name or path), else `docker compose
    /// version --short`, else `docker-compose`; what was found before is
    /// reused while the programs that answered are the same (`known`).
    pub(crate) fn discover(docker: &Docker) -> Result<Compose> {
        let key = known::key(docker);
        if let Some(known) = known::recall(docker, key.as_deref()) {
            return Ok(known);
        }
        let found = Self::ask(docker)?;
        known::keep(&found, key.as_deref());
        Ok(found)
    }

    /// Discovery itself: asks each candidate its version.
    fn ask(docker: &Docker) -> Result<Compose> {
        match std::env::var_os("DOCKER_SANDBOX_COMPOSE").filter(|v| !v.is_empty()) {
            Some(choice) if choice == "plugin" => Self::plugin(docker).ok_or_else(|| {
                fail(
                    "DOCKER_SANDBOX_COMPOSE=plugin, but `docker compose version --short` does not answer",
                    "install the compose plugin, or unset DOCKER_SANDBOX_COMPOSE to use `docker-compose`",
                )
            }),
            Some(choice) => {
                let bin = which::which(&choice).map_err(|e| {
                    fail(
                        format!(
                            "DOCKER_SANDBOX_COMPOSE=`{}` names no program that can be run ({e})",
                            choice.to_string_lossy()
                        ),
                        "set DOCKER_SANDBOX_COMPOSE to `plugin` (for `docker compose`) or to the name or path of a docker-compose binary, or unset it to find compose by itself",
                    )
                })?;
                Self::standalone(docker, bin.clone())?.ok_or_else(|| {
                    fail(
                        format!("`{} version --short` does not answer like compose", bin.display()),
                        "set DOCKER_SANDBOX_COMPOSE to `plugin` or to a docker-compose binary, or unset it",
                    )
                })
            }
            None => {
                if let Some(c) = Self::plugin(docker) {
                    return Ok(c);
                }
                if let Ok(bin) = which::which("docker-compose")
                    && let Some(c) = Self::standalone(docker, bin)?
                {
                    return Ok(c);
                }
                Err(fail(
                    "no Docker Compose found: neither `docker compose` nor `docker-compose` answers `version --short`",
                    "install the compose plugin (Debian/Ubuntu: docker-compose-plugin; or Docker Desktop), or a `docker-compose` binary on PATH",
                ))
            }
        }
    }

    fn plugin(docker: &Docker) -> Option<Compose> {
        let out = docker
            .command()
            .args(["compose", "version", "--short"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let version = parse_version(&out.stdout).filter(|_| out.status.success())?;
        Some(Compose {
            docker: docker.clone(),
            program: Program::Plugin,
            version,
        })
    }

    fn standalone(docker: &Docker, bin: PathBuf) -> Result<Option<Compose>> {
        let out = Command::new(&bin)
            .args(["version", "--short"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to run `{}`", bin.display()))?;
        Ok(parse_version(&out.stdout)
            .filter(|_| out.status.success())
            .map(|version| Compose {
                docker: docker.clone(),
                program: Program::Standalone(bin),
                version,
            }))
    }

    /// A one-line description for `doctor` and messages.
    pub(crate) fn describe(&self) -> String {
        match &self.program {
            Program::Plugin => format!("docker compose {}", self.version),
            Program::Standalone(bin) => format!("{} {}", bin.display(), self.version),
        }
    }

    /// `... compose -p P --project-directory W --env-file E -f F <args>`.
    ///
    /// Variables the env file defines are removed from the child's environment:
    /// compose lets the shell override `--env-file`, and a shell that ran
    /// `eval "$(docker sandbox env)"` in another worktree would otherwise give
    /// this stack the other slot's ports. The claim's engine variables
    /// (`SANDBOX_HOST_IP` and the others) never come from the shell either: a
    /// shell that ran it for a claim on another engine holds
    /// `SANDBOX_HOST_IP=0.0.0.0`, which would publish a local slot's ports on
    /// every interface. The pool's passed-through secrets
    /// reach compose this way only: from the user's environment to the
    /// child's, never through a file.
    pub(crate) fn command(&self, project: &Project, args: &[&str]) -> Command {
        let mut cmd = match &self.program {
            Program::Plugin => {
                let mut c = self.docker.command();
                c.arg("compose");
                c
            }
            Program::Standalone(bin) => {
                let mut c = Command::new(bin);
                self.globals_as_env(&mut c);
                // The legacy v1 reads no DOCKER_CONTEXT: it takes the flag.
                if self.version.starts_with("1.")
                    && let Some(context) = self.docker.global(&["-c", "--context"])
                {
                    c.arg("--context").arg(context);
                }
                c
            }
        };
        // Run from the project's folder: the caller's may be gone (`destroy`
        // runs inside the worktree it removes).
        cmd.current_dir(&project.directory)
            .arg("-p")
            .arg(&project.name)
            .arg("--project-directory")
            .arg(&project.directory);
        if let Some(env) = &project.base_env {
            cmd.arg("--env-file").arg(env);
        }
        cmd.arg("--env-file").arg(&project.env_file);
        for file in &project.base_files {
            cmd.arg("-f").arg(file);
        }
        cmd.arg("-f").arg(&project.file);
        if let Some(networks) = &project.networks {
            cmd.arg("-f").arg(networks);
        }
        cmd.args(args);
        for key in env_keys(&project.env_file) {
            cmd.env_remove(key);
        }
        for key in ENGINE_KEYS {
            cmd.env_remove(key);
        }
        cmd.env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_FILE");
        for name in &project.pass {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd
    }

    /// A standalone compose takes no docker global flags; their environment
    /// variables say the same to both compose v1 and v2.
    fn globals_as_env(&self, cmd: &mut Command) {
        let docker = &self.docker;
        if let Some(host) = docker.global(&["-H", "--host"]) {
            cmd.env("DOCKER_HOST", host);
        }
        if let Some(context) = docker.global(&["-c", "--context"]) {
            cmd.env("DOCKER_CONTEXT", context);
            // An inherited DOCKER_HOST would win over the context (docker
            // itself refuses -H with --context).
            if !docker.has_global(&["-H", "--host"]) {
                cmd.env_remove("DOCKER_HOST");
            }
        }
        if let Some(config) = docker.global(&["--config"]) {
            cmd.env("DOCKER_CONFIG", config);
        }
        // A flag without a value: `global` would take the next flag for it.
        if docker.globals.iter().any(|a| {
            let a = a.to_string_lossy();
            a == "--tlsverify" || (a.starts_with("--tlsverify=") && a != "--tlsverify=false")
        }) {
            cmd.env("DOCKER_TLS_VERIFY", "1");
        }
        if let Some(ca) = docker.global(&["--tlscacert"])
            && let Some(dir) = Path::new(&ca).parent()
        {
            cmd.env("DOCKER_CERT_PATH", dir);
        }
    }
}

/// The variables a claim's env file sets for its engine: only that file
/// gives them.
const ENGINE_KEYS: [&str; 4] = [
    "SANDBOX_ENGINE",
    "SANDBOX_HOST",
    "SANDBOX_HOST_IP",
    crate::model::ENGINE_WORKTREE,
];

/// The keys an env file defines.
pub(crate) fn env_keys(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    crate::envfile::parse_env(&text)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// `v2.29.7`, `2.29.7-desktop.1`, `1.29.2` -> the version text, if it is one.
fn parse_version(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    let v = text.trim().trim_start_matches('v');
    v.chars().next().filter(char::is_ascii_digit)?;
    Some(v.to_owned())
}

/// Shows a command line as the user could type it, for error messages.
pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word as a shell would read it back: quoted when it must be.
pub(crate) fn quote(s: &str) -> String {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
        format!("'{}'", s.replace('\'', "'\\''"))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn compose(program: Program, globals: &[&str]) -> Compose {
        Compose {
            docker: Docker {
                bin: "/usr/bin/docker".into(),
                globals: globals.iter().map(OsString::from).collect(),
            },
            program,
            version: "2.29.7".into(),
        }
    }

    fn project(dir: &Path) -> Project {
        Project {
            base_files: Vec::new(),
            base_env: None,
            pass: Vec::new(),
            name: "ktrdr-slot-2".into(),
            directory: "/src/app--feat".into(),
            env_file: dir.join(".env.sandbox"),
            file: "/state/slot-2/docker-compose.yml".into(),
            networks: None,
        }
    }

    fn argv(cmd: &Command) -> Vec<String> {
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_plugin_gets_globals_and_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let c = compose(Program::Plugin, &["--context", "x"]);
        let cmd = c.command(&project(dir.path()), &["up", "-d"]);
        let env = dir.path().join(".env.sandbox").display().to_string();
        assert_eq!(
            argv(&cmd),
            [
                "/usr/bin/docker",
                "--context",
                "x",
                "compose",
                "-p",
                "ktrdr-slot-2",
                "--project-directory",
                "/src/app--feat",
                "--env-file",
                &env,
                "-f",
                "/state/slot-2/docker-compose.yml",
                "up",
                "-d",
            ]
        );
    }

    #[test]
    fn a_standalone_compose_gets_globals_as_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env.sandbox"),
            "# c\nKTRDR_API_PORT=8002\nDB_PASSWORD=x\n",
        )
        .unwrap();
        let envs = |globals: &[&str]| -> Vec<(String, Option<String>)> {
            let c = compose(
                Program::Standalone("/usr/bin/docker-compose".into()),
                globals,
            );
            let cmd = c.command(&project(dir.path()), &["down"]);
            assert_eq!(argv(&cmd)[..2], ["/usr/bin/docker-compose", "-p"]);
            cmd.get_envs()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.map(|v| v.to_string_lossy().into_owned()),
                    )
                })
                .collect()
        };
        let host = envs(&["-H", "tcp://h:2375", "--debug"]);
        assert!(host.contains(&("DOCKER_HOST".into(), Some("tcp://h:2375".into()))));
        // The env file's own keys are taken out of the inherited environment.
        assert!(host.contains(&("KTRDR_API_PORT".into(), None)));
        assert!(host.contains(&("DB_PASSWORD".into(), None)));
        // So are the claim's engine variables, which the file of a local
        // claim does not set.
        assert!(host.contains(&("SANDBOX_HOST_IP".into(), None)));
        let v1 = Compose {
            version: "1.29.2".into(),
            ..compose(
                Program::Standalone("/usr/bin/docker-compose".into()),
                &["--context=c"],
            )
        };
        let cmd = v1.command(&project(dir.path()), &["down"]);
        assert_eq!(
            argv(&cmd)[..4],
            ["/usr/bin/docker-compose", "--context", "c", "-p"]
        );
        let context = envs(&["--context=c"]);
        assert!(context.contains(&("DOCKER_CONTEXT".into(), Some("c".into()))));
        assert!(
            context.contains(&("DOCKER_HOST".into(), None)),
            "an inherited DOCKER_HOST is removed"
        );
        let both = envs(&["-H=tcp://h:1", "-c", "c"]);
        assert!(both.contains(&("DOCKER_HOST".into(), Some("tcp://h:1".into()))));
        assert!(!both.contains(&("DOCKER_HOST".into(), None)));
        let tls = envs(&[
            "--config",
            "/cfg",
            "--tlsverify",
            "--tlscacert=/certs/ca.pem",
        ]);
        assert!(tls.contains(&("DOCKER_CONFIG".into(), Some("/cfg".into()))));
        assert!(tls.contains(&("DOCKER_TLS_VERIFY".into(), Some("1".into()))));
        assert!(tls.contains(&("DOCKER_CERT_PATH".into(), Some("/certs".into()))));
        let off = envs(&["--tlsverify=false", "-l", "warn"]);
        assert!(
            !off.iter().any(|(k, _)| k == "DOCKER_TLS_VERIFY"),
            "{off:?}"
        );
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version(b"v2.29.7\n").as_deref(), Some("2.29.7"));
        assert_eq!(parse_version(b"5.0.1").as_deref(), Some("5.0.1"));
        assert_eq!(parse_version(b"1.29.2\n").as_deref(), Some("1.29.2"));
        assert_eq!(parse_version(b"unknown command").as_deref(), None);
        assert!(
            compose(Program::Plugin, &[])
                .describe()
                .contains("docker compose 2.29.7")
        );
    }

    #[test]
    fn command_lines_display_quoted() {
        let mut cmd = Command::new("docker");
        cmd.args(["compose", "-f", "/a b/c.yml", "it's"]);
        assert_eq!(display(&cmd), "docker compose -f '/a b/c.yml' 'it'\\''s'");
    }
}
