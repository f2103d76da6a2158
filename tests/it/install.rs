//! `install.sh`: where it installs, under which name, and that it never overwrites
//! or removes a `docker-<name>` plugin that is not ours (Docker Desktop ships its
//! own `docker-sandbox`). The script is run with `--binary`, so no release build.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const OUR_VENDOR: &str = "docker-sandbox project";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh")
}

fn docker_available() -> bool {
    Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn install_cmd(ctx: &TestContext, args: &[&str]) -> Command {
    let mut cmd = ctx.command("bash");
    cmd.arg(script()).args(args);
    cmd
}

fn install(ctx: &TestContext, args: &[&str]) -> Run {
    TestContext::run_cmd(install_cmd(ctx, args))
}

/// `install.sh --binary <the test binary> <args>`.
fn install_bin(ctx: &TestContext, args: &[&str]) -> Run {
    let mut all = vec!["--binary", BIN];
    all.extend_from_slice(args);
    install(ctx, &all)
}

/// Docker's default plugin folder in the test home.
fn plugins(ctx: &TestContext) -> PathBuf {
    ctx.home.join(".docker/cli-plugins")
}

/// A plugin that answers the metadata question with `vendor`, as compact JSON
/// or pretty-printed with spaces around the colon.
fn write_fake_plugin(path: &Path, vendor: &str, pretty: bool) {
    let json = if pretty {
        format!(
            "{{\n  \"SchemaVersion\" : \"0.1.0\",\n  \"Vendor\" : \"{vendor}\",\n  \"ShortDescription\" : \"Docker Sandbox\"\n}}"
        )
    } else {
        format!(
            r#"{{"SchemaVersion":"0.1.0","Vendor":"{vendor}","ShortDescription":"Docker Sandbox","URL":"https://example.com"}}"#
        )
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_executable(
        path,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = docker-cli-plugin-metadata ]; then\ncat <<'EOF'\n{json}\nEOF\nfi\n"
        ),
    );
}

/// The Vendor the installed file answers with.
fn vendor_of(ctx: &TestContext, plugin: &Path) -> String {
    let mut cmd = ctx.command(plugin);
    cmd.arg("docker-cli-plugin-metadata");
    let run = TestContext::run_cmd(cmd).success();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    v["Vendor"].as_str().unwrap().to_owned()
}

/// The file names in a folder, sorted (to see that no temp file is left).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn bin_bytes() -> Vec<u8> {
    std::fs::read(BIN).unwrap()
}

#[test]
fn installs_into_dockers_plugin_folder_by_default() {
    assert!(docker_available(), "the docker CLI is needed for this test");
    let ctx = TestContext::new();
    let run = install_bin(&ctx, &[]).success();
    let target = plugins(&ctx).join("docker-sandbox");
    assert_eq!(names(&plugins(&ctx)), ["docker-sandbox"]);
    assert_eq!(mode(&target), 0o755);
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert_eq!(vendor_of(&ctx, &target), OUR_VENDOR);
    assert_eq!(
        run.stdout,
        format!(
            "installed docker-sandbox {} as `{}`\nnext: run `docker sandbox provision`\n",
            env!("CARGO_PKG_VERSION"),
            target.display()
        )
    );
    // Docker found the plugin, so there is no warning.
    assert_eq!(run.stderr, "");
}

#[test]
fn docker_config_moves_the_default_folder() {
    let ctx = TestContext::new();
    let config = ctx.root.join("docker-config");
    let mut cmd = install_cmd(&ctx, &["--binary", BIN]);
    cmd.env("DOCKER_CONFIG", &config);
    let run = TestContext::run_cmd(cmd).success();
    let target = config.join("cli-plugins/docker-sandbox");
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert_eq!(mode(&target), 0o755);
    assert!(!ctx.home.join(".docker").exists());
    assert!(
        run.stdout.contains(&format!("`{}`", target.display())),
        "{}",
        run.stdout
    );
}

#[test]
fn dir_installs_elsewhere_and_creates_the_folder() {
    let ctx = TestContext::new();
    let dir = ctx.root.join("opt/plugins");
    let run = install_bin(&ctx, &["--dir", dir.to_str().unwrap()]).success();
    assert_eq!(names(&dir), ["docker-sandbox"]);
    let target = dir.join("docker-sandbox");
    assert_eq!(mode(&target), 0o755);
    assert_eq!(vendor_of(&ctx, &target), OUR_VENDOR);
    assert!(!ctx.home.join(".docker").exists());
    assert!(
        run.stdout.contains(&format!("as `{}`", target.display())),
        "{}",
        run.stdout
    );
    // Docker does not look there unless told to: say so.
    assert!(
        run.stdout.contains("note: docker looks for plugins in"),
        "{}",
        run.stdout
    );
    // `--dir=DIR` works too.
    let other = ctx.root.join("other");
    install_bin(&ctx, &[&format!("--dir={}", other.display())]).success();
    assert_eq!(names(&other), ["docker-sandbox"]);
}

#[test]
fn name_installs_docker_name_that_docker_runs() {
    assert!(docker_available(), "the docker CLI is needed for this test");
    let ctx = TestContext::new();
    let run = install_bin(&ctx, &["--name", "kit"]).success();
    assert_eq!(names(&plugins(&ctx)), ["docker-kit"]);
    assert!(
        run.stdout.contains("next: run `docker kit provision`"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "");
    // Through docker's own plugin discovery.
    let mut cmd = ctx.command("docker");
    cmd.args(["kit", "--help"]);
    let help = TestContext::run_cmd(cmd).success();
    assert!(
        help.stdout.contains("Usage: docker kit <COMMAND>"),
        "{}",
        help.stdout
    );
    let mut cmd = ctx.command("docker");
    cmd.arg("--help");
    let help = TestContext::run_cmd(cmd).success();
    assert!(
        help.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("kit*")),
        "{}",
        help.stdout
    );
}

#[test]
fn a_foreign_plugin_is_never_replaced_without_force() {
    for pretty in [false, true] {
        let ctx = TestContext::new();
        let target = plugins(&ctx).join("docker-sandbox");
        write_fake_plugin(&target, "Docker Inc.", pretty);
        let before = tree(&ctx.home);
        let run = install_bin(&ctx, &[]).code(1);
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.contains(&format!(
                "error: `{}` is another plugin, not docker-sandbox (Vendor \"Docker Inc.\")",
                target.display()
            )),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!(
                "hint: install under another name: {} --name <name>",
                script().display()
            )),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("--force"), "{}", run.stderr);
        // Byte for byte unchanged, and no temp file left behind.
        assert_eq!(tree(&ctx.home), before);
    }
}

#[test]
fn a_plugin_that_does_not_answer_is_foreign() {
    let ctx = TestContext::new();
    let target = plugins(&ctx).join("docker-sandbox");
    std::fs::create_dir_all(plugins(&ctx)).unwrap();
    write_executable(&target, "#!/bin/sh\nexit 3\n");
    let before = tree(&ctx.home);
    let run = install_bin(&ctx, &[]).code(1);
    assert!(
        run.stderr
            .contains("Vendor unknown: it does not answer docker-cli-plugin-metadata"),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&ctx.home), before);
}

#[test]
fn force_replaces_a_foreign_plugin() {
    let ctx = TestContext::new();
    let target = plugins(&ctx).join("docker-sandbox");
    write_fake_plugin(&target, "Docker Inc.", false);
    let run = install_bin(&ctx, &["--force"]).success();
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert_eq!(mode(&target), 0o755);
    assert_eq!(names(&plugins(&ctx)), ["docker-sandbox"]);
    assert!(
        run.stderr.contains(&format!(
            "warning: replaced `{}` (Vendor \"Docker Inc.\") because of --force",
            target.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn force_replaces_a_symlink_without_touching_what_it_points_to() {
    let ctx = TestContext::new();
    // Docker Desktop links its plugins into ~/.docker/cli-plugins.
    let desktop = ctx.root.join("desktop/cli-plugins/docker-sandbox");
    write_fake_plugin(&desktop, "Docker Inc.", false);
    let desktop_bytes = std::fs::read(&desktop).unwrap();
    let target = plugins(&ctx).join("docker-sandbox");
    std::fs::create_dir_all(plugins(&ctx)).unwrap();
    std::os::unix::fs::symlink(&desktop, &target).unwrap();

    install_bin(&ctx, &[]).code(1);
    assert_eq!(std::fs::read_link(&target).unwrap(), desktop);

    install_bin(&ctx, &["--force"]).success();
    assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert_eq!(std::fs::read(&desktop).unwrap(), desktop_bytes);
}

#[test]
fn reinstall_over_our_own_plugin_needs_no_force() {
    let ctx = TestContext::new();
    let target = plugins(&ctx).join("docker-sandbox");
    // An older build of ours: same Vendor, other bytes.
    write_fake_plugin(&target, OUR_VENDOR, true);
    let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
    std::fs::set_permissions(&target, owner_only).unwrap();
    let run = install_bin(&ctx, &[]).success();
    assert!(!run.stderr.contains("warning: replaced"), "{}", run.stderr);
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert_eq!(mode(&target), 0o755);
    // And again over the real thing.
    install_bin(&ctx, &[]).success();
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert_eq!(names(&plugins(&ctx)), ["docker-sandbox"]);
}

#[test]
fn uninstall_removes_ours_and_only_ours() {
    let ctx = TestContext::new();
    let target = plugins(&ctx).join("docker-sandbox");
    install_bin(&ctx, &[]).success();
    install_bin(&ctx, &["--name", "kit"]).success();

    let run = install(&ctx, &["--uninstall"]).success();
    assert_eq!(run.stdout, format!("removed `{}`\n", target.display()));
    assert_eq!(names(&plugins(&ctx)), ["docker-kit"]);

    let run = install(&ctx, &["--uninstall"]).success();
    assert_eq!(
        run.stdout,
        format!("nothing to remove: `{}` does not exist\n", target.display())
    );

    // A foreign one stays.
    write_fake_plugin(&target, "Docker Inc.", false);
    let before = tree(&ctx.home);
    let run = install(&ctx, &["--uninstall"]).code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: `{}` is another plugin, not docker-sandbox (Vendor \"Docker Inc.\"); refusing to remove it",
            target.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&ctx.home), before);

    // Unless forced.
    let run = install(&ctx, &["--uninstall", "--force"]).success();
    assert!(
        run.stdout
            .starts_with(&format!("removed `{}`", target.display())),
        "{}",
        run.stdout
    );
    assert!(!target.exists());

    // Other names and folders.
    install(&ctx, &["--uninstall", "--name", "kit"]).success();
    assert_eq!(names(&plugins(&ctx)), Vec::<String>::new());
    let dir = ctx.root.join("elsewhere");
    install_bin(&ctx, &["--dir", dir.to_str().unwrap()]).success();
    install(&ctx, &["--uninstall", "--dir", dir.to_str().unwrap()]).success();
    assert_eq!(names(&dir), Vec::<String>::new());
}

#[test]
fn names_docker_cannot_use_are_usage_errors() {
    let ctx = TestContext::new();
    // Docker itself ignores plugin names outside ^[a-z][a-z0-9]*$ (no hyphen).
    for name in ["Bad/Name", "my-kit", "9lives", "", "-x"] {
        let run = install_bin(&ctx, &["--name", name]).code(2);
        assert!(
            run.stderr.contains("[a-z][a-z0-9]*"),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
    assert!(docker_available(), "the docker CLI is needed for this test");
    let run = install_bin(&ctx, &["--name", "run"]).code(2);
    assert!(
        run.stderr.contains("`run` is a built-in docker command"),
        "{}",
        run.stderr
    );
    // Nothing written anywhere.
    assert!(tree(&ctx.home).is_empty(), "{:?}", tree(&ctx.home));
}

#[test]
fn usage_errors_and_help() {
    let ctx = TestContext::new();
    let run = install(&ctx, &["--bogus"]).code(2);
    assert!(
        run.stderr.contains("error: unexpected argument `--bogus`"),
        "{}",
        run.stderr
    );
    let run = install(&ctx, &["--dir"]).code(2);
    assert!(
        run.stderr.contains("`--dir` needs a value"),
        "{}",
        run.stderr
    );
    install(&ctx, &["--dir="]).code(2);
    install(&ctx, &["extra"]).code(2);
    install(&ctx, &["--uninstall", "--binary", BIN]).code(2);
    assert!(tree(&ctx.home).is_empty());

    let run = install(&ctx, &["--help"]).success();
    for option in [
        "--dir DIR",
        "--name NAME",
        "--binary PATH",
        "--force",
        "--uninstall",
        "--help",
    ] {
        assert!(
            run.stdout.contains(option),
            "{option} missing:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("Exit codes:"));
    for code in ["  0  ", "  1  ", "  2  "] {
        assert!(run.stdout.contains(code), "{code} missing:\n{}", run.stdout);
    }
    assert_eq!(install(&ctx, &["-h"]).stdout, run.stdout);
}

#[test]
fn a_binary_that_is_not_ours_is_not_installed() {
    let ctx = TestContext::new();
    let foreign = ctx.root.join("docker-other");
    write_fake_plugin(&foreign, "Docker Inc.", false);
    let run = install(&ctx, &["--binary", foreign.to_str().unwrap()]).code(1);
    assert!(
        run.stderr.contains("its Vendor is \"Docker Inc.\""),
        "{}",
        run.stderr
    );
    let run = install(&ctx, &["--binary", "/nonexistent/docker-sandbox"]).code(1);
    assert!(
        run.stderr.contains("is not an executable file"),
        "{}",
        run.stderr
    );
    assert!(tree(&ctx.home).is_empty());
}

#[test]
fn without_binary_it_builds_with_cargo_in_its_folder() {
    let ctx = TestContext::new();
    // A fake cargo: records its calls; `metadata` points at a target folder
    // that already holds a release build.
    let target_dir = ctx.root.join("cargo-target");
    std::fs::create_dir_all(target_dir.join("release")).unwrap();
    std::fs::copy(BIN, target_dir.join("release/docker-sandbox")).unwrap();
    let log = ctx.root.join("cargo.log");
    write_executable(
        &ctx.bin.join("cargo"),
        &format!(
            "#!/bin/sh\necho \"$PWD: $*\" >> '{log}'\nif [ \"$1\" = metadata ]; then\n\
             printf '{{\"packages\":[],\"target_directory\":\"{target}\",\"version\":1}}'\nfi\n\
             if [ -n \"$FAKE_CARGO_FAIL\" ] && [ \"$1\" = build ]; then exit 101; fi\n",
            log = log.display(),
            target = target_dir.display()
        ),
    );
    let run = install(&ctx, &[]).success();
    let repo = env!("CARGO_MANIFEST_DIR");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().next().unwrap(),
        format!("{repo}: build --release --locked")
    );
    assert!(
        calls
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{repo}: metadata")),
        "{calls}"
    );
    let target = plugins(&ctx).join("docker-sandbox");
    assert_eq!(std::fs::read(&target).unwrap(), bin_bytes());
    assert!(
        run.stdout.contains("cargo build --release --locked"),
        "{}",
        run.stdout
    );

    // A failed build installs nothing.
    std::fs::remove_file(&target).unwrap();
    let mut cmd = install_cmd(&ctx, &[]);
    cmd.env("FAKE_CARGO_FAIL", "1");
    let run = TestContext::run_cmd(cmd).code(1);
    assert!(
        run.stderr
            .contains("`cargo build --release --locked` failed"),
        "{}",
        run.stderr
    );
    assert_eq!(names(&plugins(&ctx)), Vec::<String>::new());
}

#[test]
fn warns_when_docker_finds_another_plugin_of_that_name_first() {
    assert!(docker_available(), "the docker CLI is needed for this test");
    let ctx = TestContext::new();
    // Docker Desktop can add its plugin folder through `cliPluginsExtraDirs`,
    // which docker searches before ~/.docker/cli-plugins.
    let desktop = ctx.root.join("desktop");
    write_fake_plugin(&desktop.join("docker-sandbox"), "Docker Inc.", false);
    std::fs::create_dir_all(ctx.home.join(".docker")).unwrap();
    std::fs::write(
        ctx.home.join(".docker/config.json"),
        serde_json::json!({ "cliPluginsExtraDirs": [desktop] }).to_string(),
    )
    .unwrap();
    let run = install_bin(&ctx, &[]).success();
    assert_eq!(
        std::fs::read(plugins(&ctx).join("docker-sandbox")).unwrap(),
        bin_bytes()
    );
    assert!(
        run.stderr
            .contains("warning: docker runs another `docker-sandbox` as `docker sandbox`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--name <name>"), "{}", run.stderr);
}
