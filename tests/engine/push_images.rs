//! Images on an engine without a registry: a stack whose image only the
//! local engine has fails to start on the extra engine `dse1` until
//! `push-images` copies it there (`docker save | docker load`); a second
//! run copies nothing; an image of the same name with another ID is copied
//! again; `up --push-images` copies before it starts (compose 1.29).
//! Numbers 35 and 36, pools `push35` and `push36`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engines::{Engines, engines};
use crate::support::*;

/// Every claim on `dse1` (through its unix socket, so its address is given).
const TABLES: &str = r#"
[[gate]]
http = "api"
path = "/slot"
status = 200

[engines.local]
max_slots = 0

[engines.dse1]
context = "dse1"
address = "10.231.1.2"
"#;

/// The images this test made, removed from both engines when it ends,
/// passed or failed: only those (by ID), never the suite's own.
struct Made<'e> {
    e: &'e Engines,
    image: String,
    local: Vec<String>,
    remote: Vec<String>,
}

impl Made<'_> {
    /// A new image `image` on the local engine: the test busybox committed
    /// with a label of this run, so no engine has its ID yet. Its ID.
    fn commit(&mut self) -> String {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let source = format!("{}-source", self.image.replace(['/', ':'], "-"));
        let _ = local_docker(&["rm", "-f", &source]).output();
        docker_ok(&[
            "create",
            "--name",
            &source,
            "docker-sandbox-test/busybox:1",
            "true",
        ]);
        docker_ok(&[
            "commit",
            "--change",
            &format!("LABEL org.docker-sandbox.test={nonce}"),
            &source,
            &self.image,
        ]);
        docker_ok(&["rm", &source]);
        let id = docker_ok(&["image", "inspect", "-f", "{{.Id}}", &self.image])
            .trim()
            .to_owned();
        self.local.push(id.clone());
        id
    }

    /// The ID `dse1` has for the image, if any.
    fn on_dse1(&self) -> Option<String> {
        let out = self
            .e
            .docker("dse1", &["image", "inspect", "-f", "{{.Id}}", &self.image])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.on_dse1() {
            self.remote.push(id);
        }
        let _ = self.e.docker("dse1", &["rmi", &self.image]).output();
        for id in &self.remote {
            let _ = self.e.docker("dse1", &["rmi", id]).output();
        }
        let _ = local_docker(&["rmi", &self.image]).output();
        for id in &self.local {
            let _ = local_docker(&["rmi", id]).output();
        }
    }
}

/// What an earlier, failed run of test `n` left on `dse1`: its stacks, and
/// the image of its pool's name (the world cleans the local engine).
fn clean_dse1(e: &Engines, n: u32, image: &str) {
    e.clean_slots("dse1", &format!("push{n}"), 3);
    let _ = e.docker("dse1", &["rmi", image]).output();
}

/// `docker args...` on the local engine, whatever the caller's DOCKER_HOST.
fn local_docker(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("docker");
    cmd.args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(std::process::Stdio::null());
    cmd
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn push_images_copies_what_the_engine_lacks_and_then_up_runs_there() {
    let e = engines();
    let _shared = e.shared();
    let w = World::with_pool_stack(35, Compose::V2, "push35", "templates-push", TABLES);
    let image = "push35/only-here:1";
    clean_dse1(e, 35, image);
    let mut made = Made {
        e,
        image: image.to_owned(),
        local: Vec::new(),
        remote: Vec::new(),
    };
    let first = made.commit();
    let env = e.env();
    let env = pairs(&env);
    let wt = w.worktree("p1");

    // Without the image there, compose cannot start the stack on dse1, and
    // the error says why and what to run.
    let run = w.run_with(&wt, &["up"], &env).code(1);
    run.assert_stderr_contains("`compose up` failed");
    run.assert_stderr_contains(&format!(
        "engine `dse1` lacks `{image}` that the local engine has"
    ));
    run.assert_stderr_contains("push-images");
    assert_eq!(made.on_dse1(), None);

    // push-images copies it: the same image ID on dse1.
    let run = w
        .run_with(&wt, &["push-images", "--format", "json"], &env)
        .success();
    let json = run.json();
    assert_eq!(json["slot"], 1, "{json}");
    assert_eq!(json["project"], "push35-slot-1", "{json}");
    let pushed = &json["engines"][0];
    assert_eq!(pushed["engine"], "dse1", "{json}");
    let one = &pushed["images"][0];
    assert_eq!(pushed["images"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(one["image"], image, "{json}");
    assert_eq!(one["services"], serde_json::json!(["web"]), "{json}");
    assert_eq!(one["result"], "copied", "{json}");
    assert!(one["size"].as_u64().unwrap() > 1_000_000, "{json}");
    assert!(one["seconds"].as_f64().is_some(), "{json}");
    run.assert_stderr_contains(&format!("Copying `{image}`"));
    assert_eq!(made.on_dse1().as_deref(), Some(first.as_str()));

    // A second run copies nothing.
    let run = w.run_with(&wt, &["push-images"], &env).success();
    run.assert_stdout_contains("Engine `dse1` (context `dse1`):");
    run.assert_stdout_contains(&format!("{image}  already there"));
    assert!(!run.stderr.contains("Copying"), "{}", run.stderr);

    // The same name with another ID locally: copied again, replacing it.
    let second = made.commit();
    assert_ne!(first, second);
    made.remote.push(first.clone());
    let json = w
        .run_with(&wt, &["push-images", "--format", "json"], &env)
        .success()
        .json();
    assert_eq!(
        json["engines"][0]["images"][0]["result"], "replaced",
        "{json}"
    );
    assert_eq!(made.on_dse1().as_deref(), Some(second.as_str()));

    // And now the stack runs on dse1, answering on its address.
    w.run_with(&wt, &["up"], &env)
        .success()
        .assert_stdout_contains("is up and ready");
    let port = w.port(1, "api");
    let (status, body) = http_get_at(Engines::address(1), port, "/slot").unwrap();
    assert_eq!((status, body.trim()), (200, "1"));
    w.run_with(&wt, &["release"], &env).success();
}

#[test]
fn up_push_images_copies_before_it_starts_with_compose_1_29() {
    let e = engines();
    let _shared = e.shared();
    let w = World::with_pool_stack(36, Compose::V1, "push36", "templates-push", TABLES);
    let image = "push36/only-here:1";
    clean_dse1(e, 36, image);
    let mut made = Made {
        e,
        image: image.to_owned(),
        local: Vec::new(),
        remote: Vec::new(),
    };
    let id = made.commit();
    let env = e.env();
    let env = pairs(&env);
    let wt = w.worktree("p1");
    let run = w.run_with(&wt, &["up", "--push-images"], &env).success();
    run.assert_stdout_contains("is up and ready");
    run.assert_stderr_contains(&format!("Copying `{image}`"));
    assert_eq!(made.on_dse1().as_deref(), Some(id.as_str()));
    let port = w.port(1, "api");
    let (status, body) = http_get_at(Engines::address(1), port, "/slot").unwrap();
    assert_eq!((status, body.trim()), (200, "1"));
    // Already there: a second `up --push-images` of the running stack copies
    // nothing (it returns at once), nor does one after `down`.
    w.run_with(&wt, &["down"], &env).success();
    let run = w.run_with(&wt, &["up", "--push-images"], &env).success();
    assert!(!run.stderr.contains("Copying"), "{}", run.stderr);
    w.run_with(&wt, &["release"], &env).success();
}
