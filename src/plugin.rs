//! The Docker CLI plugin protocol: the metadata answer, the plugin's own name,
//! the argv docker hands us (its global flags first, then our name, then our
//! args), and docker's plugin socket. It does not run docker; `compose.rs`
//! does, with the globals kept here. What a closed socket means is
//! `interrupt.rs`'s.

use std::ffi::{OsStr, OsString};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

const METADATA: &str = include_str!("../plugin-metadata/metadata.json");

/// Where docker, when it runs a plugin, listens for the plugin to connect.
pub(crate) const SOCKET_VAR: &str = "DOCKER_CLI_PLUGIN_SOCKET";

/// The name used when the binary's file name does not say (`docker-<name>`).
pub(crate) const DEFAULT_NAME: &str = "sandbox";

/// Docker's global flags that take a value (`--flag v` or `--flag=v`).
const VALUE_FLAGS: &[&str] = &[
    "--config",
    "-c",
    "--context",
    "-H",
    "--host",
    "-l",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];
/// Docker's global flags that take no value (but accept `--flag=bool`).
const BOOL_FLAGS: &[&str] = &["-D", "--debug", "--tls", "--tlsverify"];

/// What one run of the binary was asked to do, with docker's part taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The plugin's name: `sandbox` for `docker-sandbox`.
    pub(crate) name: String,
    /// Docker's global flags, as given, to pass on to every docker call.
    pub(crate) globals: Vec<OsString>,
    /// Our own arguments, starting with the program name clap should show.
    pub(crate) args: Vec<OsString>,
    pub(crate) request: Request,
}

/// What docker asks of the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// A command: `args` is for clap.
    Run,
    /// `docker-cli-plugin-metadata`.
    Metadata,
    /// Shell completion (`__complete`, or `__completeNoDesc` without
    /// descriptions): `args` after the program name are the words typed, the
    /// last one the word being completed.
    Complete { descriptions: bool },
}

/// The metadata JSON docker asks every plugin for. Never touches the engine.
pub(crate) fn metadata_json() -> String {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(METADATA).expect("embedded plugin metadata is valid JSON");
    map.insert("Version".into(), env!("CARGO_PKG_VERSION").into());
    serde_json::to_string_pretty(&map).expect("metadata serialises")
}

/// The vendor string that tells our plugin from another one of the same name.
pub(crate) fn vendor() -> String {
    let map: serde_json::Value = serde_json::from_str(METADATA).unwrap();
    map["Vendor"].as_str().unwrap().to_owned()
}

/// The plugin name from the file name we were run as: `docker-kit` gives `kit`.
pub(crate) fn name_from_argv0(argv0: &OsStr) -> String {
    Path::new(argv0)
        .file_stem()
        .and_then(OsStr::to_str)
        .and_then(|stem| stem.strip_prefix("docker-"))
        .filter(|name| !name.is_empty())
        .unwrap_or(DEFAULT_NAME)
        .to_owned()
}

/// Splits docker's argv into globals and our arguments.
///
/// Docker runs a plugin with its own whole argv after the program name, so
/// `docker --context x sandbox up` arrives as `[--context, x, sandbox, up]`, and
/// `docker help sandbox up` as `[help, sandbox, up]`. Run directly
/// (`docker-sandbox up`) the name is simply absent.
pub(crate) fn parse_argv(argv: impl IntoIterator<Item = OsString>) -> Invocation {
    let mut argv = argv.into_iter();
    let argv0 = argv
        .next()
        .unwrap_or_else(|| OsString::from("docker-sandbox"));
    let name = name_from_argv0(&argv0);
    let mut rest: Vec<OsString> = argv.collect();

    let request = match rest.first().and_then(|a| a.to_str()) {
        Some("docker-cli-plugin-metadata") => Request::Metadata,
        Some("__complete") => Request::Complete { descriptions: true },
        Some("__completeNoDesc") => Request::Complete {
            descriptions: false,
        },
        _ => Request::Run,
    };
    match request {
        Request::Metadata => {
            return Invocation {
                name,
                globals: Vec::new(),
                args: Vec::new(),
                request,
            };
        }
        // Docker runs `docker-NAME __complete NAME WORDS...`: the rest is as
        // for a command.
        Request::Complete { .. } => {
            rest.remove(0);
        }
        Request::Run => {}
    }

    let mut globals = Vec::new();
    let mut i = 0;
    while let Some(arg) = rest.get(i).and_then(|a| a.to_str()) {
        let flag = arg.split_once('=').map_or(arg, |(f, _)| f);
        if VALUE_FLAGS.contains(&flag) {
            globals.push(rest[i].clone());
            if flag == arg {
                if let Some(value) = rest.get(i + 1) {
                    globals.push(value.clone());
                }
                i += 1;
            }
        } else if BOOL_FLAGS.contains(&flag) {
            globals.push(rest[i].clone());
        } else {
            break;
        }
        i += 1;
    }

    let mut ours: Vec<OsString> = rest[i..].to_vec();
    if ours.first().is_some_and(|a| a == name.as_str()) {
        ours.remove(0);
    } else if ours.len() >= 2 && ours[0] == "help" && ours[1] == name.as_str() {
        // `docker help sandbox [cmd]`: help for us, or for one of our commands.
        ours.drain(..2);
        ours.push("--help".into());
    }

    let mut args = vec![OsString::from(format!("docker {name}"))];
    args.extend(ours);
    Invocation {
        name,
        globals,
        args,
        request,
    }
}

/// The docker binary for child calls: the one docker itself was run as, when it
/// ran us, else `docker` from PATH.
pub(crate) fn docker_binary() -> PathBuf {
    let original = std::env::var_os("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("docker"));
    let path = PathBuf::from(&original);
    if path.components().count() > 1 {
        return path;
    }
    which::which(&original).unwrap_or(path)
}

/// A connection to docker's plugin socket, when docker ran us and it can be
/// reached: docker closes it when it gets SIGINT or SIGTERM. Run directly, or
/// when anything fails, `None`: the command runs as it would without it.
pub(crate) fn connect_to_docker() -> Option<UnixStream> {
    let address = std::env::var_os(SOCKET_VAR).filter(|v| !v.is_empty())?;
    connect(&address).ok()
}

/// Docker gives a Linux abstract socket as `@name` (Go's spelling of a name
/// that starts with a NUL byte), elsewhere a file's path. Connecting to a
/// socket that listens is immediate.
fn connect(address: &OsStr) -> std::io::Result<UnixStream> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::net::SocketAddr;
        if let Some(name) = address.as_bytes().strip_prefix(b"@") {
            return UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?);
        }
    }
    UnixStream::connect(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Invocation {
        parse_argv(args.iter().map(OsString::from))
    }

    fn strs(v: &[OsString]) -> Vec<&str> {
        v.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn name_comes_from_the_file_name() {
        assert_eq!(name_from_argv0(OsStr::new("/x/docker-sandbox")), "sandbox");
        assert_eq!(name_from_argv0(OsStr::new("docker-kit")), "kit");
        assert_eq!(name_from_argv0(OsStr::new("docker-kit.exe")), "kit");
        assert_eq!(name_from_argv0(OsStr::new("/tmp/it-123")), "sandbox");
        assert_eq!(name_from_argv0(OsStr::new("docker-")), "sandbox");
    }

    #[test]
    fn docker_globals_come_off_before_the_plugin_name() {
        let inv = parse(&[
            "/p/docker-sandbox",
            "--context",
            "x",
            "-H=tcp://h:1",
            "--debug",
            "--tlsverify=false",
            "-l",
            "warn",
            "sandbox",
            "slots",
            "--format",
            "json",
        ]);
        assert_eq!(
            strs(&inv.globals),
            [
                "--context",
                "x",
                "-H=tcp://h:1",
                "--debug",
                "--tlsverify=false",
                "-l",
                "warn"
            ]
        );
        assert_eq!(
            strs(&inv.args),
            ["docker sandbox", "slots", "--format", "json"]
        );
        assert_eq!(inv.request, Request::Run);
    }

    #[test]
    fn direct_run_has_no_plugin_name() {
        let inv = parse(&["docker-sandbox", "provision", "--dry-run"]);
        assert!(inv.globals.is_empty());
        assert_eq!(
            strs(&inv.args),
            ["docker sandbox", "provision", "--dry-run"]
        );
    }

    #[test]
    fn other_names_are_honoured() {
        let inv = parse(&["/p/docker-kit", "-c", "ctx", "kit", "slots"]);
        assert_eq!(inv.name, "kit");
        assert_eq!(strs(&inv.globals), ["-c", "ctx"]);
        assert_eq!(strs(&inv.args), ["docker kit", "slots"]);
    }

    #[test]
    fn docker_help_plugin_becomes_our_help() {
        let inv = parse(&["docker-sandbox", "help", "sandbox"]);
        assert_eq!(strs(&inv.args), ["docker sandbox", "--help"]);
        let inv = parse(&["docker-sandbox", "help", "sandbox", "provision"]);
        assert_eq!(strs(&inv.args), ["docker sandbox", "provision", "--help"]);
    }

    #[test]
    fn completion_requests_lose_the_plugin_name() {
        let inv = parse(&["/p/docker-kit", "__complete", "kit", "up", "--p"]);
        assert_eq!(inv.request, Request::Complete { descriptions: true });
        assert_eq!(strs(&inv.args), ["docker kit", "up", "--p"]);
        let inv = parse(&["docker-sandbox", "__completeNoDesc", "sandbox", ""]);
        assert_eq!(
            inv.request,
            Request::Complete {
                descriptions: false
            }
        );
        assert_eq!(strs(&inv.args), ["docker sandbox", ""]);
    }

    #[test]
    fn metadata_is_recognised_and_complete() {
        assert_eq!(
            parse(&["docker-sandbox", "docker-cli-plugin-metadata"]).request,
            Request::Metadata
        );
        let v: serde_json::Value = serde_json::from_str(&metadata_json()).unwrap();
        assert_eq!(v["SchemaVersion"], "0.1.0");
        assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["Vendor"], vendor());
        assert!(v["ShortDescription"].as_str().unwrap().len() > 10);
        assert!(v["URL"].as_str().unwrap().starts_with("https://"));
    }
}
