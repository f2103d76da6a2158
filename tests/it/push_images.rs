//! `push-images`: which images of the slot's compose model (read by real
//! compose v2) are copied to another engine, by image ID, with `docker save |
//! docker --context far load`; its JSON; and its bad input. The docker here
//! is a fake that keeps each engine's images as files and passes `compose`
//! to the real one.

use std::path::{Path, PathBuf};

use crate::lifecycle::port_block;
use crate::support::*;

const DOCKER: &str = r#"#!/bin/bash
# A docker whose engines' images are files: $FAKE_IMAGES/<context>/<ref> holds
# `<id> <size>`; `save` prints the ref and that line, `load` files them. An
# engine with a file $FAKE_IMAGES/<context>.down does not answer.
dir="${FAKE_IMAGES:?}"
ctx=local
line="$0"
for a in "$@"; do line+=$'\t'"$a"; done
printf '%s\n' "$line" >>"$dir/calls.log"
while [ $# -gt 0 ]; do
  case "$1" in
    --context | -c) ctx=$2; shift 2 ;;
    -H | --host | --config) shift 2 ;;
    --*=*) shift ;;
    *) break ;;
  esac
done
key() { printf '%s' "$1" | tr '/:' '%+'; }
if [ -f "$dir/$ctx.down" ] && [ "$1" != compose ]; then
  echo "Cannot connect to the Docker daemon at tcp://10.0.0.9:2375. Is the docker daemon running?" >&2
  exit 1
fi
case "$1" in
  compose) shift; exec "$REAL_COMPOSE" "$@" ;;
  version) echo 20.10.24 ;;
  image)
    [ "$2" = inspect ] || exit 0
    ref="${*: -1}"
    f="$dir/$ctx/$(key "$ref")"
    if [ -f "$f" ]; then cat "$f"; else echo "Error response from daemon: No such image: $ref" >&2; exit 1; fi
    ;;
  save)
    f="$dir/$ctx/$(key "$2")"
    [ -f "$f" ] || { echo "Error response from daemon: reference does not exist" >&2; exit 1; }
    printf '%s\n' "$2"
    cat "$f"
    ;;
  load)
    read -r ref
    read -r rest
    mkdir -p "$dir/$ctx"
    printf '%s\n' "$rest" >"$dir/$ctx/$(key "$ref")"
    echo "Loaded image: $ref"
    ;;
  *) exit 0 ;;
esac
"#;

/// An image named by digest.
const PIN: &str =
    "demo/pin@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const COMPOSE: &str = r#"x-labels: &labels
{{#each labels}}
  {{@key}}: "{{this}}"
{{/each}}
services:
  web:
    image: demo/web:${WEB_TAG}
    labels: *labels
  api:
    image: demo/api:2
    labels: *labels
  worker:
    image: demo/api:2
    labels: *labels
  builder:
    build: .
    labels: *labels
  pinned:
    image: demo/pin@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    labels: *labels
  debug:
    image: demo/debug:1
    profiles: [debug]
    labels: *labels
networks:
  default:
    labels: *labels
"#;

struct Pool {
    ctx: TestContext,
    images: PathBuf,
}

impl Pool {
    /// A one-slot pool whose stack is `COMPOSE`, with an engine `far`; its
    /// slot claimed by the context's worktree.
    fn new() -> Pool {
        let ctx = TestContext::new();
        ctx.git_init();
        let tpl = ctx.root.join("tpl");
        std::fs::create_dir_all(&tpl).unwrap();
        std::fs::write(tpl.join("docker-compose.yml.hbs"), COMPOSE).unwrap();
        std::fs::write(
            tpl.join("env.sandbox.hbs"),
            "COMPOSE_PROJECT_NAME={{project}}\nWEB_TAG=3\nAPI_PORT={{ports.api}}\n",
        )
        .unwrap();
        let base = port_block();
        ctx.write_project_file(&format!(
            "{NO_STEPS}gate = []\n\n[pool]\nname = \"pi\"\ntemplates = \"{}\"\n\n[slots]\n1 = \"light\"\n\n\
             [ports]\napi = [{base}, 1]\n\n[engines.far]\ncontext = \"far\"\n",
            tpl.display()
        ));
        ctx.git(&ctx.cwd, &["add", "-A"]);
        ctx.git(&ctx.cwd, &["commit", "-qm", "pool"]);
        let images = ctx.root.join("images");
        std::fs::create_dir_all(images.join("local")).unwrap();
        std::fs::create_dir_all(images.join("far")).unwrap();
        write_executable(&ctx.bin.join("docker"), DOCKER);
        let pool = Pool { ctx, images };
        pool.run(&["provision"]).success();
        pool.run(&["claim"]).success();
        pool
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.ctx.cmd();
        cmd.env("FAKE_IMAGES", &self.images)
            .env("REAL_COMPOSE", real_compose_v2())
            // The docker CLI (the fake) for every engine query.
            .env("DOCKER_HOST", "ssh://fake-engine")
            .env_remove("COMPOSE_PROFILES")
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        TestContext::run_cmd(self.cmd(args))
    }

    /// Engine `engine` has `image` with `id`.
    fn has(&self, engine: &str, image: &str, id: &str) {
        std::fs::write(self.image_file(engine, image), format!("{id} 4400000\n")).unwrap();
    }

    fn image_file(&self, engine: &str, image: &str) -> PathBuf {
        self.images
            .join(engine)
            .join(image.replace('/', "%").replace(':', "+"))
    }

    fn id_on(&self, engine: &str, image: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.image_file(engine, image)).ok()?;
        text.split_whitespace().next().map(str::to_owned)
    }

    /// The save and load lines the fake saw.
    fn copies(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.images.join("calls.log")).unwrap_or_default();
        log.lines()
            .map(|l| {
                let words: Vec<&str> = l.split('\t').skip(1).collect();
                words.join(" ")
            })
            .filter(|l| l.contains("save ") || l.ends_with("load --quiet"))
            .collect()
    }

    fn forget_calls(&self) {
        let _ = std::fs::remove_file(self.images.join("calls.log"));
    }

    fn cwd(&self) -> &Path {
        &self.ctx.cwd
    }
}

#[test]
fn images_the_engine_lacks_are_copied_and_the_json_says_what_became_of_each() {
    let p = Pool::new();
    p.has("local", "demo/web:3", "sha256:web");
    p.has("local", "demo/api:2", "sha256:api");
    p.has("far", "demo/api:2", "sha256:older");
    p.has("local", PIN, "sha256:pin");
    p.forget_calls();
    let run = p
        .run(&["push-images", "--engine", "far", "--format", "json"])
        .success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "slot": 1,
            "project": "pi-slot-1",
            "engines": [{
                "engine": "far",
                "images": [
                    {"image": "demo/api:2", "services": ["api", "worker"], "result": "replaced",
                     "size": 4400000, "seconds": json["engines"][0]["images"][0]["seconds"]},
                    {"image": PIN,
                     "services": ["pinned"], "result": "pinned", "size": 4400000, "seconds": null},
                    {"image": "demo/web:3", "services": ["web"], "result": "copied",
                     "size": 4400000, "seconds": json["engines"][0]["images"][2]["seconds"]},
                    {"image": "pi-slot-1-builder", "services": ["builder"],
                     "result": "built-on-engine", "size": null, "seconds": null},
                ]
            }]
        }),
        "{}",
        run.stderr
    );
    assert!(json["engines"][0]["images"][2]["seconds"].is_f64());
    // Streamed from the local engine's docker into far's, one image at a
    // time (the two of a pair start together).
    let pairs: Vec<Vec<String>> = p
        .copies()
        .chunks(2)
        .map(|pair| {
            let mut pair = pair.to_vec();
            pair.sort();
            pair
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ["--context far load --quiet", "save demo/api:2"],
            ["--context far load --quiet", "save demo/web:3"],
        ]
    );
    assert_eq!(p.id_on("far", "demo/api:2").as_deref(), Some("sha256:api"));
    assert_eq!(p.id_on("far", "demo/web:3").as_deref(), Some("sha256:web"));
    assert!(
        run.stderr
            .contains("Copying `demo/web:3` (4.4 MB) to engine `far`"),
        "{}",
        run.stderr
    );

    // A second run copies nothing; the table says so.
    p.forget_calls();
    let run = p.run(&["push-images", "--engine", "far"]).success();
    assert!(p.copies().is_empty(), "{:?}", p.copies());
    let table = |header: &str, rows: &[(&str, &str)]| {
        let width = rows.iter().map(|(i, _)| i.len()).max().unwrap();
        let lines: String = rows
            .iter()
            .map(|(image, what)| format!("  {image:<width$}  {what}\n"))
            .collect();
        format!("{header}\n{lines}")
    };
    assert_eq!(
        run.stdout,
        table(
            "Engine `far` (context `far`):",
            &[
                ("demo/api:2", "already there"),
                (
                    PIN,
                    "skipped: a digest reference, which `docker load` cannot give `far` (compose pulls it there)"
                ),
                ("demo/web:3", "already there"),
                (
                    "pi-slot-1-builder",
                    "skipped: built by compose on `far` (service `builder` has `build:`)"
                ),
            ]
        )
    );

    // A profile's service counts once its profile is enabled; `--all` is
    // every engine but the local one.
    let mut cmd = p.cmd(&["push-images", "--all", "--format", "json"]);
    cmd.env("COMPOSE_PROFILES", "debug");
    let run = TestContext::run_cmd(cmd).code(1);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["exit_code"], 1, "{json}");
    assert_eq!(json["slot"], 1, "{json}");
    assert_eq!(json["engines"][0]["engine"], "far", "{json}");
    assert_eq!(
        json["engines"][0]["images"][1],
        serde_json::json!({"image": "demo/debug:1", "services": ["debug"], "result": "missing",
                           "size": null, "seconds": null}),
        "{json}"
    );
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains(
            "the local engine has no image to copy for:\n  `demo/debug:1` of service `debug`"
        ),
        "{error}"
    );
    assert!(
        json["hint"]
            .as_str()
            .unwrap()
            .contains("`docker pull demo/debug:1`"),
        "{json}"
    );
}

#[test]
fn the_default_target_is_the_claims_engine_and_bad_input_is_refused() {
    let p = Pool::new();
    p.has("local", "demo/web:3", "sha256:web");
    p.has("local", "demo/api:2", "sha256:api");
    p.has("local", PIN, "sha256:pin");
    // The claim is on the local engine: nothing to copy, and nothing copied.
    p.forget_calls();
    let run = p.run(&["push-images"]).success();
    assert!(
        run.stdout.starts_with("Engine `local`:\n  demo/api:2 "),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("already there").count(),
        3,
        "{}",
        run.stdout
    );
    assert!(p.copies().is_empty(), "{:?}", p.copies());

    p.forget_calls();
    let files = || {
        let mut t = tree(&p.ctx.root);
        t.retain(|path, _| !path.ends_with("calls.log"));
        t
    };
    let before = files();
    let run = p.run(&["push-images", "--engine", "nope"]).code(1);
    assert!(
        run.stderr
            .contains("--engine `nope` is not one of the pool's engines: `local`, `far`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    for args in [
        &["push-images", "--engine", "far", "--all"][..],
        &["push-images", "--format", "yaml"],
        &["push-images", "--engine"],
        &["push-images", "extra"],
    ] {
        let run = p.run(args).code(64);
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
    let run = p
        .run(&["push-images", "--engine", "nope", "--format", "json"])
        .code(1);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["exit_code"], 1, "{json}");
    let calls = std::fs::read_to_string(p.images.join("calls.log")).unwrap_or_default();
    assert!(!calls.contains("inspect"), "no engine is asked: {calls}");
    assert_eq!(files(), before, "nothing may change");

    // An engine that does not answer is named; nothing is copied.
    std::fs::write(p.images.join("far.down"), "").unwrap();
    let run = p.run(&["push-images", "--engine", "far"]).code(1);
    assert!(
        run.stderr
            .contains("cannot ask engine `far` for image `demo/api:2`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Cannot connect to the Docker daemon"),
        "{}",
        run.stderr
    );
    assert!(p.copies().is_empty(), "{:?}", p.copies());

    // A worktree that holds no slot has no stack to copy.
    let other = p.ctx.root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    p.ctx.git(&other, &["init", "-q", "-b", "main"]);
    let mut cmd = p.cmd(&["push-images"]);
    cmd.current_dir(&other)
        .env("DOCKER_SANDBOX_CONFIG", p.cwd().join("docker-sandbox.toml"));
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr.contains("this worktree holds no slot"),
        "{}",
        run.stderr
    );
}
