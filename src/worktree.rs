//! Git worktrees: finding the top level of the checkout we run in, and the git
//! calls we make on it (keeping `.env.sandbox` out of git).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::error::fail;

/// The top level of the git checkout holding `start`: the nearest folder, going
/// up, with a `.git` entry (a folder in a clone, a file in a linked worktree).
/// Walking the tree costs a few stat calls, where `git rev-parse` costs a process.
pub(crate) fn find_top(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_owned)
}

/// The main checkout of the repository whose worktree's top is `top`, read
/// from git's own files without running git: a linked worktree's `.git` file
/// names its folder under the main `.git`, whose `commondir` leads back. `top`
/// itself when it is the main checkout or the files say nothing clear.
pub(crate) fn main_top(top: &Path) -> PathBuf {
    let dot_git = top.join(".git");
    if dot_git.is_dir() {
        return top.to_owned();
    }
    let linked = std::fs::read_to_string(&dot_git).ok().and_then(|text| {
        let gitdir = top.join(text.strip_prefix("gitdir:")?.trim());
        let common = std::fs::read_to_string(gitdir.join("commondir")).ok()?;
        let common = gitdir.join(common.trim()).canonicalize().ok()?;
        common.parent().map(Path::to_owned)
    });
    linked.unwrap_or_else(|| top.to_owned())
}

/// The worktree the user is in: its top level, canonical, as the claim key.
pub(crate) fn current(cwd: &Path) -> Result<PathBuf> {
    let top = find_top(cwd).ok_or_else(|| {
        fail(
            format!("not inside a git worktree: `{}`", cwd.display()),
            "run this inside a checkout of your project (a clone or a `git worktree add` folder)",
        )
    })?;
    top.canonicalize()
        .with_context(|| format!("failed to resolve `{}`", top.display()))
}

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).stdin(Stdio::null());
    cmd
}

/// Makes git ignore `name` at the top of `worktree`, through the repository's
/// `info/exclude` (shared by all its worktrees), unless it is ignored already.
pub(crate) fn exclude(worktree: &Path, name: &str) -> Result<()> {
    let ignored = git(worktree)
        .args(["check-ignore", "-q", "--no-index", name])
        .stderr(Stdio::null())
        .status()
        .context("failed to run `git check-ignore`; is git installed?")?;
    if ignored.success() {
        return Ok(());
    }
    let out = git(worktree)
        .args(["rev-parse", "--git-common-dir"])
        .output()
        .context("failed to run `git rev-parse`")?;
    if !out.status.success() {
        return Err(git_error("rev-parse --git-common-dir", &out)
            .context(format!("in `{}`", worktree.display())));
    }
    let common = worktree.join(String::from_utf8_lossy(&out.stdout).trim());
    let info = common.join("info");
    crate::fsutil::create_dir_all(&info)?;
    let path = info.join("exclude");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("failed to open `{}`", path.display()))?;
    // Worktrees share this file: claims made at once add the line once.
    file.lock()
        .with_context(|| format!("failed to lock `{}`", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let line = format!("/{name}");
    if text.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    file.write_all(
        format!("\n# docker sandbox: per-worktree env file with a password\n{line}\n").as_bytes(),
    )
    .with_context(|| format!("failed to write `{}`", path.display()))
}

/// A failed git command: its command line and what it said.
pub(crate) fn git_error(what: &str, out: &std::process::Output) -> anyhow::Error {
    anyhow::anyhow!(
        "`git {what}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Whether `worktree` is its repository's main checkout, not a linked
/// worktree: its git dir is the common one (also with `--separate-git-dir`).
pub(crate) fn is_main(worktree: &Path) -> Result<bool> {
    let out = git(worktree)
        .args([
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
            "--git-common-dir",
        ])
        .output()
        .context("failed to run git")?;
    if !out.status.success() {
        return Err(git_error("rev-parse --git-dir --git-common-dir", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    Ok(lines.next() == lines.next())
}

/// The main checkout of the repository holding `worktree`: itself when it is
/// the main one, else the first entry of `git worktree list`.
pub(crate) fn main_checkout(worktree: &Path) -> Result<PathBuf> {
    let main = if is_main(worktree)? {
        worktree.to_owned()
    } else {
        list(worktree)?
            .into_iter()
            .next()
            .map(|w| w.path)
            .with_context(|| {
                format!(
                    "`git worktree list` in `{}` names no main checkout",
                    worktree.display()
                )
            })?
    };
    Ok(main.canonicalize().unwrap_or(main))
}

pub(crate) fn branch_exists(repo: &Path, branch: &str) -> bool {
    git(repo)
        .args([
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// `git worktree add`: check out `branch`, or create it from HEAD when `new`.
pub(crate) fn add(repo: &Path, path: &Path, branch: &str, new: bool) -> Result<(), anyhow::Error> {
    let mut cmd = git(repo);
    cmd.args(["worktree", "add", "--quiet"]);
    if new {
        cmd.args(["-b", branch]).arg(path);
    } else {
        cmd.arg(path).arg(branch);
    }
    let out = cmd.output().context("failed to run git")?;
    if !out.status.success() {
        return Err(git_error("worktree add", &out));
    }
    Ok(())
}

/// `git worktree remove [--force]`.
pub(crate) fn remove(repo: &Path, path: &Path, force: bool) -> Result<()> {
    let mut cmd = git(repo);
    cmd.args(["worktree", "remove"]);
    if force {
        cmd.arg("--force");
    }
    let out = cmd.arg(path).output().context("failed to run git")?;
    if !out.status.success() {
        return Err(git_error("worktree remove", &out));
    }
    Ok(())
}

pub(crate) fn delete_branch(repo: &Path, branch: &str) -> Result<()> {
    let out = git(repo)
        .args(["branch", "-D", branch])
        .output()
        .context("failed to run git")?;
    if !out.status.success() {
        return Err(git_error("branch -D", &out));
    }
    Ok(())
}

/// Uncommitted changes (ignored files, such as `.env.sandbox`, do not count).
pub(crate) fn changes(worktree: &Path) -> Result<Vec<String>> {
    let out = git(worktree)
        .args(["status", "--porcelain"])
        .output()
        .context("failed to run git")?;
    if !out.status.success() {
        return Err(git_error("status", &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// One entry of `git worktree list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) path: PathBuf,
    /// `main`, or `None` when detached.
    pub(crate) branch: Option<String>,
}

pub(crate) fn list(repo: &Path) -> Result<Vec<Listed>> {
    let out = git(repo)
        .args(["worktree", "list", "--porcelain"])
        .output()
        .context("failed to run git")?;
    if !out.status.success() {
        return Err(git_error("worktree list", &out));
    }
    let mut found = Vec::new();
    for block in String::from_utf8_lossy(&out.stdout).split("\n\n") {
        let mut path = None;
        let mut branch = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(PathBuf::from(p));
            } else if let Some(b) = line.strip_prefix("branch ") {
                branch = Some(b.trim_start_matches("refs/heads/").to_owned());
            }
        }
        if let Some(path) = path {
            found.push(Listed { path, branch });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linked_worktree_leads_to_its_main_checkout_through_gits_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let main = root.join("My_App");
        std::fs::create_dir_all(&main).unwrap();
        let run = |dir: &Path, args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&main, &["init", "-q"]);
        run(&main, &["commit", "-q", "--allow-empty", "-m", "x"]);
        let linked = root.join("elsewhere/feature");
        run(
            &main,
            &[
                "worktree",
                "add",
                "-q",
                &linked.display().to_string(),
                "-b",
                "f",
            ],
        );
        assert_eq!(main_top(&linked), main);
        assert_eq!(main_top(&main), main);
        // As git itself says.
        assert_eq!(main_checkout(&linked).unwrap(), main);
    }

    #[test]
    fn finds_the_nearest_git_entry() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("a/b")).unwrap();
        assert_eq!(find_top(&repo.join("a/b")), Some(repo.clone()));
        let wt = t.path().join("wt");
        std::fs::create_dir_all(wt.join("src")).unwrap();
        std::fs::write(wt.join(".git"), "gitdir: ../repo/.git/worktrees/wt\n").unwrap();
        assert_eq!(find_top(&wt.join("src")), Some(wt));
    }

    #[test]
    fn exclude_makes_git_ignore_the_file_once() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path();
        assert!(git(repo).args(["init", "-q"]).status().unwrap().success());
        std::fs::write(repo.join(".env.sandbox"), "X=1\n").unwrap();
        exclude(repo, ".env.sandbox").unwrap();
        exclude(repo, ".env.sandbox").unwrap();
        let status = git(repo).args(["status", "--porcelain"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&status.stdout), "");
        let text = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
        assert_eq!(text.matches("/.env.sandbox").count(), 1);
        assert!(current(&repo.join("nowhere/..")).is_ok());
        let msg = format!("{:#}", current(Path::new("/")).unwrap_err());
        assert!(msg.contains("not inside a git worktree"), "{msg}");
    }
}
