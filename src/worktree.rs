//! Git worktrees: finding the top level of the checkout we run in. Later, the
//! git calls (`worktree add/remove`, `info/exclude`) live here too.

use std::path::{Path, PathBuf};

/// The top level of the git checkout holding `start`: the nearest folder, going
/// up, with a `.git` entry (a folder in a clone, a file in a linked worktree).
/// Walking the tree costs a few stat calls, where `git rev-parse` costs a process.
pub(crate) fn find_top(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
