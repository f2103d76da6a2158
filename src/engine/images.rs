//! Images on an engine, through the docker CLI: which image a reference names
//! there (its ID and size), and the copy of one from an engine to another
//! with `docker save REF | docker load`, streamed from one child process to
//! the other (no temporary file, nothing through this process), for engines
//! that share no registry. Which images a stack needs is the model's; which
//! engine a slot runs on is `placement`'s.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Docker;
use crate::compose::display;
use crate::error::fail;

/// An image as an engine has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    /// `sha256:...`: the same image has the same ID on every engine that
    /// loaded it from another.
    pub(crate) id: String,
    /// Bytes, as `docker image ls` counts them.
    pub(crate) size: u64,
}

/// The image `reference` names on the engine `docker` reaches; `None` when
/// the engine has none of that name. An engine that does not answer is an
/// error naming it (`engine`).
pub(crate) fn inspect(docker: &Docker, engine: &str, reference: &str) -> Result<Option<Image>> {
    let mut cmd = docker.command();
    cmd.args([
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Size}}",
        reference,
    ])
    .stdin(Stdio::null());
    let shown = display(&cmd);
    let out = cmd
        .output()
        .with_context(|| format!("failed to run `{shown}`"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.to_ascii_lowercase().contains("no such image") {
            return Ok(None);
        }
        return Err(fail(
            format!(
                "cannot ask engine `{engine}` for image `{reference}`: `{shown}` failed ({}): {}",
                out.status,
                tail(&stderr, 5)
            ),
            "check that the engine answers (`docker sandbox doctor`)",
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_inspect(&text).map(Some).ok_or_else(|| {
        anyhow::anyhow!(
            "`{shown}` printed `{}`, not an image ID and size",
            text.trim()
        )
    })
}

/// `sha256:abc 1234` -> the image.
fn parse_inspect(text: &str) -> Option<Image> {
    let mut words = text.split_whitespace();
    let id = words.next().filter(|id| id.contains(':'))?;
    let size = words.next()?.parse().ok()?;
    Some(Image {
        id: id.to_owned(),
        size,
    })
}

/// Copies `reference` from the engine `from` reaches to the one `to`
/// reaches: `docker save` writes the image's archive straight into `docker
/// load`'s standard input. Both processes' stderr is read while they run; a
/// failure shows the command line, exit status and the end of its stderr.
/// What it took.
pub(crate) fn copy(from: &Docker, to: &Docker, reference: &str) -> Result<Duration> {
    let start = Instant::now();
    let mut save_cmd = from.command();
    save_cmd
        .args(["save", reference])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let save_shown = display(&save_cmd);
    let mut save = save_cmd
        .spawn()
        .with_context(|| format!("failed to run `{save_shown}`"))?;
    let archive = save.stdout.take().expect("save's stdout is piped");
    let save_err = drain(&mut save);
    let (load, load_shown) = {
        // The command holds its own end of the pipe until it is dropped:
        // dropped here, `save` sees a `load` that died as a broken pipe
        // instead of writing on for ever.
        let mut load_cmd = to.command();
        load_cmd
            .args(["load", "--quiet"])
            .stdin(Stdio::from(archive))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = display(&load_cmd);
        match load_cmd.spawn() {
            Ok(child) => (child, shown),
            Err(e) => {
                let _ = save.kill();
                let _ = save.wait();
                return Err(e).with_context(|| format!("failed to run `{shown}`"));
            }
        }
    };
    let loaded = load.wait_with_output();
    let saved = save.wait();
    let save_stderr = save_err.join().unwrap_or_default();
    let saved = saved.with_context(|| format!("failed to wait for `{save_shown}`"))?;
    let loaded = loaded.with_context(|| format!("failed to wait for `{load_shown}`"))?;
    if !saved.success() {
        return Err(failed(&save_shown, saved, &save_stderr));
    }
    if !loaded.status.success() {
        return Err(failed(
            &load_shown,
            loaded.status,
            &String::from_utf8_lossy(&loaded.stderr),
        ));
    }
    Ok(start.elapsed())
}

/// A child's stderr, read to its end on a thread of its own.
fn drain(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text);
        }
        text
    })
}

fn failed(shown: &str, status: ExitStatus, stderr: &str) -> anyhow::Error {
    fail(
        format!(
            "copying the image failed: `{shown}` failed ({status}): {}",
            tail(stderr, 10)
        ),
        "check that both engines answer and that the target has room for the image (`docker system df`)",
    )
}

/// The last `n` lines of `text`, joined by newlines.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `docker save ... | docker load` as the user would type it, for hints.
pub(crate) fn copy_line(from: &Docker, to: &Docker, reference: &str) -> String {
    let line = |d: &Docker, args: &[&str]| {
        let mut cmd: Command = d.command();
        cmd.args(args);
        display(&cmd)
    };
    format!(
        "{} | {}",
        line(from, &["save", reference]),
        line(to, &["load"])
    )
}

/// `4.4 MB`, `312 kB`, `1.2 GB`: decimal units, as docker prints sizes.
pub(crate) fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn inspect_output_parses() {
        assert_eq!(
            parse_inspect("sha256:ab12 4400000\n"),
            Some(Image {
                id: "sha256:ab12".into(),
                size: 4_400_000
            })
        );
        assert_eq!(parse_inspect(""), None);
        assert_eq!(parse_inspect("ab12 x"), None);
    }

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(312_000), "312 kB");
        assert_eq!(human_size(4_400_000), "4.4 MB");
        assert_eq!(human_size(1_234_000_000), "1.2 GB");
    }

    /// A `docker` that saves by printing its context's name and loads by
    /// writing what it reads to a file: the archive goes from one process to
    /// the other.
    fn fake_docker(dir: &std::path::Path) -> std::path::PathBuf {
        let bin = dir.join("docker");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\nctx=$2; shift 2\ncase \"$1\" in\n  save) [ \"$2\" = gone ] && {{ echo 'no such image' >&2; exit 1; }}; printf 'archive of %s from %s' \"$2\" \"$ctx\" ;;\n  load) cat > '{}/loaded' ;;\nesac\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    fn on(bin: &std::path::Path, context: &str) -> Docker {
        Docker {
            bin: bin.to_owned(),
            globals: vec![OsString::from("--context"), OsString::from(context)],
        }
    }

    #[test]
    fn the_archive_streams_from_save_into_load() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_docker(dir.path());
        copy(&on(&bin, "default"), &on(&bin, "far"), "app:1").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("loaded")).unwrap(),
            "archive of app:1 from default"
        );
        let err = copy(&on(&bin, "default"), &on(&bin, "far"), "gone").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("save gone` failed"), "{text}");
        assert!(text.contains("no such image"), "{text}");
    }
}
