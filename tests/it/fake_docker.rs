//! A fake `docker` (and `docker-compose`) for the lifecycle tests: a bash
//! script that records every call's argv and answers from files, so tests can
//! assert the exact command lines the plugin runs without an engine.
//!
//! The script lives in the test context's `bin/` (first on PATH). Its folder,
//! `$FAKE_DOCKER_DIR`, holds:
//! - `calls.log`: one line per call, the program's path then each argument,
//!   joined with tabs (an argument holding a tab or newline is logged as
//!   `!!UNSAFE-ARG!!`, so such an argument fails the test instead of hiding);
//! - `compose.env`: the environment (`env -0`) of the last compose verb call;
//! - answers: `ps.jsonl`, `volumes.jsonl`, `networks.jsonl` (filtered by the
//!   `--filter label=...` given; `-q` prints their `ID`s), `network-inspect.json`
//!   (what `network inspect` prints), `compose-version` (default `2.29.7`),
//!   `compose-services` (what `compose config --services` prints; nothing by
//!   default); with `$FAKE_REAL_COMPOSE` set (a real compose binary: v2's
//!   plugin, or legacy 1.29), `compose ... config --format json`, and a bare
//!   `config` (1.29's model), are answered by that real compose;
//! - `exit.<key>` / `stderr.<key>`: make the call with that key fail. Keys:
//!   `version`, `ps`, `rm`, `volume-ls`, `volume-rm`, `network-ls`,
//!   `network-rm`, `compose-<verb>` (`compose-version`, `compose-up`, ...) and,
//!   for a script named `docker-compose`, `docker-compose-<verb>`;
//! - `hang.<key>`: make the call with that key wait (`sleep`) until it is
//!   killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestContext, write_executable};

const SCRIPT: &str = r#"#!/bin/bash
# A fake docker for docker-sandbox's tests: see tests/it/fake_docker.rs.
dir="${FAKE_DOCKER_DIR:?FAKE_DOCKER_DIR is not set: the fake docker needs its folder}"
# The plugin may run us with a bare PATH; our own helpers come after it.
PATH="$PATH:/usr/local/bin:/usr/bin:/bin"

line="$0"
for a in "$@"; do
  case "$a" in *$'\t'* | *$'\n'*) a='!!UNSAFE-ARG!!' ;; esac
  line+=$'\t'"$a"
done
# One write per call, so concurrent calls never interleave within a line.
printf '%s\n' "$line" >>"$dir/calls.log"

# Fails the call if the test asked for it: exit.<key> holds the exit code.
maybe_fail() {
  if [ -f "$dir/exit.$1" ]; then
    [ -f "$dir/stderr.$1" ] && cat "$dir/stderr.$1" >&2
    exit "$(cat "$dir/exit.$1")"
  fi
}

# The lines of an answer file that carry the label filter's label.
answer() {
  local file="$dir/$1" label="" i
  for ((i = 2; i <= $#; i++)); do
    if [ "${!i}" = --filter ]; then
      local j=$((i + 1))
      label="${!j#label=}"
    fi
  done
  [ -f "$file" ] || return 0
  if [ -z "$label" ]; then
    cat "$file"
  elif [[ "$label" == *=* ]]; then
    grep -F -e "\"$label\"" -e "\"$label," -e ",$label," -e ",$label\"" "$file"
  else
    grep -F -e "\"$label=" -e ",$label=" "$file"
  fi
  return 0
}

compose() {
  local prefix="$1"
  shift
  local all=("$@")
  while [ $# -gt 0 ]; do
    case "$1" in
      -p | --project-name | --project-directory | --env-file | -f | --file | --profile) shift 2 ;;
      *) break ;;
    esac
  done
  local verb="${1:-none}"
  [ -f "$dir/hang.$prefix-$verb" ] && exec sleep 600
  maybe_fail "$prefix-$verb"
  case "$verb" in
    version)
      if [ -f "$dir/compose-version" ]; then cat "$dir/compose-version"; else echo 2.29.7; fi
      ;;
    config)
      # A real compose reads the files when the test gives one.
      if [ -n "${FAKE_REAL_COMPOSE:-}" ] && { [[ " ${all[*]} " == *" --format json "* ]] || [ $# -eq 1 ]; }; then
        exec "$FAKE_REAL_COMPOSE" "${all[@]}"
      fi
      if [ -f "$dir/compose-services" ]; then cat "$dir/compose-services"; fi
      ;;
    *)
      env -0 >"$dir/compose.env"
      [ "$verb" = logs ] && echo "backend-1  | fake log line"
      ;;
  esac
  exit 0
}

if [ "${0##*/}" = docker-compose ]; then
  compose docker-compose "$@"
fi

# Docker's global flags come before the command.
while [ $# -gt 0 ]; do
  case "$1" in
    --config | -c | --context | -H | --host | -l | --log-level | --tlscacert | --tlscert | --tlskey) shift 2 ;;
    -D | --debug | --tls | --tlsverify | --*=* | -?=*) shift ;;
    *) break ;;
  esac
done

case "$1" in
  compose)
    shift
    compose compose "$@"
    ;;
  version)
    maybe_fail version
    echo 20.10.24
    ;;
  ps)
    maybe_fail ps
    answer ps.jsonl "$@"
    ;;
  rm) maybe_fail rm ;;
  volume | network)
    maybe_fail "$1-$2"
    if [ "$2" = ls ] && [[ " $* " == *" -q "* ]]; then
      answer "$1s.jsonl" "$@" | sed -n 's/.*"ID":"\([^"]*\)".*/\1/p'
    elif [ "$2" = ls ]; then
      answer "$1s.jsonl" "$@"
    elif [ "$2" = inspect ] && [ -f "$dir/$1-inspect.json" ]; then
      cat "$dir/$1-inspect.json"
    fi
    ;;
  *) maybe_fail "$1" ;;
esac
exit 0
"#;

/// The fake's folder and where the script is installed.
pub struct FakeDocker {
    pub dir: PathBuf,
    /// `bin/docker` of the test context.
    pub docker: PathBuf,
}

impl FakeDocker {
    /// Writes the fake as `bin/docker` and makes its folder.
    pub fn install(ctx: &TestContext) -> FakeDocker {
        let dir = ctx.root.join("fake-docker");
        std::fs::create_dir_all(&dir).unwrap();
        let docker = ctx.bin.join("docker");
        write_script(&docker);
        FakeDocker { dir, docker }
    }

    /// Points `cmd` (the plugin, usually) at this fake's folder.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("FAKE_DOCKER_DIR", &self.dir);
    }

    /// Every call since the last `clear`: program path, then each argument.
    pub fn calls(&self) -> Vec<Vec<String>> {
        match std::fs::read_to_string(self.dir.join("calls.log")) {
            Ok(text) => text
                .lines()
                .map(|l| l.split('\t').map(str::to_owned).collect())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("cannot read the fake's log: {e}"),
        }
    }

    /// Forgets the calls made so far (`compose.env` stays until the next
    /// compose call replaces it).
    pub fn clear(&self) {
        let _ = std::fs::remove_file(self.dir.join("calls.log"));
    }

    /// What `docker ps` (`ps.jsonl`), `volume ls` or `network ls` list.
    pub fn answer(&self, file: &str, items: &[serde_json::Value]) {
        let text: String = items.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    /// Makes calls with `key` (see the module docs) exit with `code`.
    pub fn fail(&self, key: &str, code: i32, stderr: &str) {
        std::fs::write(self.dir.join(format!("exit.{key}")), code.to_string()).unwrap();
        std::fs::write(self.dir.join(format!("stderr.{key}")), stderr).unwrap();
    }

    /// The environment of the last compose call that was not `version`.
    pub fn compose_env(&self) -> BTreeMap<String, String> {
        let raw = std::fs::read(self.dir.join("compose.env")).expect("a compose call was made");
        String::from_utf8(raw)
            .unwrap()
            .split('\0')
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Writes the fake at `path`; named `docker-compose` it plays a standalone compose.
pub fn write_script(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_executable(path, SCRIPT);
}

/// A container as `docker ps --format '{{json .}}'` prints it.
pub fn container(
    id: &str,
    project: &str,
    service: &str,
    state: &str,
    status: &str,
    ports: &str,
) -> serde_json::Value {
    serde_json::json!({
        "ID": id,
        "Names": format!("{project}-{service}-1"),
        "Image": format!("{project}-{service}"),
        "Labels": format!(
            "com.docker.compose.oneoff=False,com.docker.compose.project={project},com.docker.compose.service={service}"
        ),
        "State": state,
        "Status": status,
        "Ports": ports,
    })
}

/// A volume as `docker volume ls --format '{{json .}}'` prints it.
pub fn volume(name: &str, project: &str) -> serde_json::Value {
    serde_json::json!({
        "Driver": "local",
        "Labels": format!("com.docker.compose.project={project},com.docker.compose.volume=pgdata"),
        "Name": name,
    })
}

/// A network as `docker network ls --no-trunc --format '{{json .}}'` prints it.
pub fn network(id: &str, name: &str, project: &str) -> serde_json::Value {
    serde_json::json!({
        "Driver": "bridge",
        "ID": id,
        "Labels": format!("com.docker.compose.network=default,com.docker.compose.project={project}"),
        "Name": name,
    })
}

/// Asserts two lists of command lines are equal, showing both readably.
#[track_caller]
pub fn assert_calls(actual: &[Vec<String>], expected: &[Vec<String>]) {
    if actual != expected {
        let show = |calls: &[Vec<String>]| -> String {
            calls
                .iter()
                .map(|c| format!("  {}\n", c.join(" ")))
                .collect()
        };
        panic!(
            "the fake docker saw other calls\nexpected:\n{}actual:\n{}",
            show(expected),
            show(actual)
        );
    }
}

#[cfg(test)]
mod tests {
    //! The fake itself: what it logs and answers, so the lifecycle tests can
    //! trust it.

    use super::*;

    fn run_fake(ctx: &TestContext, fake: &FakeDocker, args: &[&str]) -> std::process::Output {
        let mut cmd = ctx.command(&fake.docker);
        fake.apply(&mut cmd);
        cmd.args(args).output().unwrap()
    }

    #[test]
    fn it_logs_argv_exactly_and_answers_by_label() {
        let ctx = TestContext::new();
        let fake = FakeDocker::install(&ctx);
        fake.answer(
            "ps.jsonl",
            &[
                container("aaa", "p-slot-1", "db", "running", "Up", ""),
                container("bbb", "p-slot-10", "db", "running", "Up", ""),
            ],
        );
        let out = run_fake(
            &ctx,
            &fake,
            &[
                "--context",
                "x",
                "ps",
                "-a",
                "--filter",
                "label=com.docker.compose.project=p-slot-1",
                "--format",
                "{{json .}}",
            ],
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.contains("\"aaa\""));
        let out = run_fake(
            &ctx,
            &fake,
            &["ps", "--filter", "label=com.docker.compose.project"],
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
        run_fake(&ctx, &fake, &["a b", "", "c=d"]);
        let docker = fake.docker.display().to_string();
        assert_eq!(
            fake.calls()[2],
            [docker.as_str(), "a b", "", "c=d"].map(String::from)
        );
        run_fake(&ctx, &fake, &["x\ty"]);
        assert_eq!(fake.calls()[3][1], "!!UNSAFE-ARG!!");
    }

    #[test]
    fn it_plays_compose_and_fails_on_request() {
        let ctx = TestContext::new();
        let fake = FakeDocker::install(&ctx);
        let out = run_fake(
            &ctx,
            &fake,
            &["-H=tcp://h:1", "compose", "version", "--short"],
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "2.29.7\n");
        fake.fail("compose-up", 4, "boom\n");
        let out = run_fake(&ctx, &fake, &["compose", "-p", "x", "-f", "y", "up", "-d"]);
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(String::from_utf8(out.stderr).unwrap(), "boom\n");
        let standalone = ctx.root.join("c/docker-compose");
        write_script(&standalone);
        let mut cmd = ctx.command(&standalone);
        fake.apply(&mut cmd);
        cmd.args(["-p", "x", "down"]).env("MARK", "1");
        assert!(cmd.status().unwrap().success());
        assert_eq!(fake.compose_env()["MARK"], "1");
        fake.clear();
        assert!(fake.calls().is_empty());
    }
}
