//! Files on disk: atomic replace and the exclusive lock around read-modify-write.
//! It knows nothing of what the files hold.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Replaces `path` with `contents` so that a reader sees the old file or the new
/// one, never half of either, and a crash after return keeps the new one.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("`{}` has no parent folder", path.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .suffix(TEMP_SUFFIX)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(|e| {
            not_writable(
                e,
                format!("failed to create a temporary file in `{}`", dir.display()),
                dir,
            )
        })?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("failed to write `{}`", tmp.path().display()))?;
    tmp.persist(path)
        .with_context(|| format!("failed to replace `{}`", path.display()))?;
    // The rename itself must reach the disk too, or a crash can undo it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `write_atomic`'s temporary files for `path` are `.<name>.<random>.tmp`.
const TEMP_SUFFIX: &str = ".tmp";

fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    format!(".{}.", name.as_deref().unwrap_or("tmp"))
}

/// Removes the temporary files `write_atomic` leaves for `path` when a writer
/// dies mid-write (SIGKILL, power loss). Only safe while no writer runs.
pub(crate) fn sweep_temp_files(path: &Path) {
    let (Some(dir), prefix) = (path.parent(), temp_prefix(path)) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` and its parents, naming it when that fails.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| {
        not_writable(
            e,
            format!("failed to create folder `{}`", dir.display()),
            dir,
        )
    })
}

/// An I/O error with `what` as its context; a folder the user may not write
/// gets a hint saying so.
fn not_writable(e: std::io::Error, what: String, dir: &Path) -> anyhow::Error {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    if matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem) {
        let hint = format!(
            "`{}` cannot be written by this user: fix its permissions (`ls -ld` shows them); \
             DOCKER_SANDBOX_HOME moves the state folder elsewhere",
            dir.display()
        );
        return anyhow::Error::new(e)
            .context(crate::error::UserError::new(crate::error::code::FAILURE, what).hint(hint));
    }
    anyhow::Error::new(e).context(what)
}

/// Why `dir` (or, if it does not exist yet, the folder it would be made in)
/// cannot take a new file; `None` when it can. It leaves nothing behind.
pub(crate) fn unwritable(dir: &Path) -> Option<anyhow::Error> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    match tempfile::tempfile_in(existing) {
        Ok(_) => None,
        Err(e) => Some(not_writable(
            e,
            format!("cannot create files in `{}`", existing.display()),
            existing,
        )),
    }
}

/// Seconds to wait for a lock, instead of each lock's default.
const LOCK_TIMEOUT_VAR: &str = "DOCKER_SANDBOX_LOCK_TIMEOUT";

/// The wait `DOCKER_SANDBOX_LOCK_TIMEOUT` sets, if it is set (empty is unset);
/// a value that is not a number of seconds is an error naming it.
pub(crate) fn lock_timeout() -> Result<Option<Duration>> {
    let Some(raw) = std::env::var_os(LOCK_TIMEOUT_VAR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        _ => Err(crate::error::fail(
            format!("{LOCK_TIMEOUT_VAR}=`{text}` is not a number of seconds"),
            format!(
                "set {LOCK_TIMEOUT_VAR} to the seconds to wait for a lock (for example 30, or 0.5), or unset it"
            ),
        )),
    }
}

/// Refuses a bad `DOCKER_SANDBOX_LOCK_TIMEOUT` before a command starts,
/// rather than waiting some default the user did not ask for.
pub(crate) fn check_lock_timeout() -> Result<()> {
    lock_timeout().map(|_| ())
}

/// An exclusive lock on a sidecar lock file; released when dropped.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

/// Why a lock could not be had.
#[derive(Debug)]
pub(crate) struct LockTimeout {
    pub(crate) path: PathBuf,
    pub(crate) waited: Duration,
}

/// Takes an exclusive lock on `path` (created if missing), waiting at most
/// `timeout`. `on_wait` runs once if the lock is still taken after 200 ms, so
/// the user learns why nothing happens.
pub(crate) fn lock_exclusive(
    path: &Path,
    timeout: Duration,
    on_wait: impl FnOnce(),
) -> Result<std::result::Result<LockGuard, LockTimeout>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            not_writable(
                e,
                format!("failed to open lock file `{}`", path.display()),
                path.parent().unwrap_or(path),
            )
        })?;
    let failed = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!("failed to lock `{}`", path.display()))
    };
    match file.try_lock() {
        Ok(()) => return Ok(Ok(LockGuard { _file: file })),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    }
    // Taken: wait in the kernel on another thread, so that this process has
    // the lock as soon as it is released rather than at its next poll. A
    // thread that gets the lock after the timeout finds nobody to hand it
    // to, and drops it at once.
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let got = file.lock().map(|()| file);
        let _ = tx.send(got);
    });
    let wait = |until: Duration| match rx.recv_timeout(until.saturating_sub(start.elapsed())) {
        Ok(Ok(file)) => Ok(Some(LockGuard { _file: file })),
        Ok(Err(e)) => Err(failed(e)),
        Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            anyhow::bail!("the thread waiting for `{}` died", path.display())
        }
    };
    let timed_out = || {
        Ok(Err(LockTimeout {
            path: path.to_owned(),
            waited: start.elapsed(),
        }))
    };
    // Quietly for 200 ms, then saying so until the timeout.
    if let Some(guard) = wait(timeout.min(Duration::from_millis(200)))? {
        return Ok(Ok(guard));
    }
    if start.elapsed() >= timeout {
        return timed_out();
    }
    on_wait();
    match wait(timeout)? {
        Some(guard) => Ok(Ok(guard)),
        None => timed_out(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sweep_removes_only_the_temp_files_of_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("registry.json");
        write_atomic(&p, b"{}", 0o644).unwrap();
        for name in [
            ".registry.json.Ab12.tmp",
            ".other.json.Ab12.tmp",
            "registry.json.tmp",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        sweep_temp_files(&p);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".other.json.Ab12.tmp", "registry.json", "registry.json.tmp"]
        );
    }

    #[test]
    fn lock_times_out_while_held_and_is_free_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = lock_exclusive(&p, Duration::from_secs(1), || {})
            .unwrap()
            .unwrap();
        let mut waited = false;
        let second = lock_exclusive(&p, Duration::from_millis(300), || waited = true).unwrap();
        assert!(second.is_err(), "a second lock must not be granted");
        assert!(waited, "the wait callback runs while blocked");
        drop(held);
        assert!(
            lock_exclusive(&p, Duration::from_millis(300), || {})
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released_and_not_after_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = lock_exclusive(&p, Duration::from_secs(1), || {})
            .unwrap()
            .unwrap();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || {
                lock_exclusive(&p, Duration::from_secs(30), || {})
                    .unwrap()
                    .map(|g| (g, Instant::now()))
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        let released = Instant::now();
        drop(held);
        let (guard, got) = waiter.join().unwrap().expect("the waiter gets the lock");
        assert!(got >= released);
        // A waiter that timed out leaves the lock free once it is released.
        let late = lock_exclusive(&p, Duration::from_millis(50), || {}).unwrap();
        assert!(late.is_err());
        drop(guard);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            lock_exclusive(&p, Duration::from_millis(500), || {})
                .unwrap()
                .is_ok()
        );
    }
}
