//! The `[[after_up]]` steps of an `up`: each waits for its service's
//! containers (within the deadline the gate shares), then runs in one of
//! them through `compose exec -T`, its output kept to be shown if it fails.
//! A signal stops a step as it stops the gate. It takes nothing down and
//! prints nothing itself: `up` does both.

use std::io::Read;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::compose::{self, Compose, Project};
use crate::gate::{self, CheckResult, Deadline, Event, Outcome, Target};
use crate::interrupt::Interrupt;
use crate::pool::AfterUp;

/// How many of a failed step's last output lines are shown.
pub(crate) const TAIL: usize = 40;

/// How the steps ended.
pub(crate) enum End {
    Passed,
    Failed(Box<Failed>),
    /// A signal came; the step running was stopped.
    Interrupted(i32),
}

/// What ran, in order: the steps that passed, and how the last one ended.
pub(crate) struct Steps {
    pub(crate) results: Vec<CheckResult>,
    pub(crate) end: End,
}

/// A step that did not pass.
pub(crate) struct Failed {
    /// 1-based, as the project file counts `[[after_up]]` tables.
    pub(crate) number: usize,
    pub(crate) step: AfterUp,
    pub(crate) label: String,
    /// What went wrong: `exited with exit status: 1`, `` `db` is not running ``.
    pub(crate) detail: String,
    /// The command line, when it ran.
    pub(crate) command: Option<String>,
    pub(crate) exit_code: Option<i32>,
    /// The last lines of its output (stdout and stderr as they came).
    pub(crate) output: Vec<String>,
    /// Services whose logs explain a failure before the step could run.
    pub(crate) services: Vec<String>,
}

impl Failed {
    /// The failed step as a gate result.
    pub(crate) fn result(&self) -> CheckResult {
        CheckResult {
            label: self.label.clone(),
            outcome: Outcome::Failed(self.detail.clone()),
            services: self.services.clone(),
        }
    }
}

/// `after_up: `alembic upgrade head` in `backend``.
pub(crate) fn label(step: &AfterUp) -> String {
    let words: Vec<String> = step.run.iter().map(|w| compose::quote(w)).collect();
    format!("after_up: `{}` in `{}`", words.join(" "), step.service)
}

/// Runs `steps` in order, each once its service is ready, until one fails,
/// the deadline passes or a signal comes (`target.interrupt`).
pub(crate) fn run(
    steps: &[AfterUp],
    compose: &Compose,
    project: &Project,
    target: &Target<'_>,
    deadline: Deadline,
    mut progress: impl FnMut(Event<'_>),
) -> Steps {
    let mut results = Vec::new();
    let signal = || target.interrupt.and_then(Interrupt::signal);
    for (i, step) in steps.iter().enumerate() {
        let label = label(step);
        let failed = |detail: String| Failed {
            number: i + 1,
            step: step.clone(),
            label: label.clone(),
            detail,
            command: None,
            exit_code: None,
            output: Vec::new(),
            services: Vec::new(),
        };
        let waited = gate::wait_for_service(target, &step.service, deadline, &mut progress);
        if let Some(sig) = signal() {
            return Steps {
                results,
                end: End::Interrupted(sig),
            };
        }
        if let Err((detail, services)) = waited {
            let end = End::Failed(Box::new(Failed {
                services,
                ..failed(detail)
            }));
            return Steps { results, end };
        }
        progress(Event::Waiting(&format!("running {label}")));
        let started = Instant::now();
        let mut args = vec!["exec", "-T", step.service.as_str()];
        args.extend(step.run.iter().map(String::as_str));
        let mut cmd = compose.command(project, &args);
        let shown = compose::display(&cmd);
        let ran = exec(&mut cmd, deadline, target.interrupt);
        if let Some(sig) = signal() {
            return Steps {
                results,
                end: End::Interrupted(sig),
            };
        }
        let detail = match &ran.end {
            Ok(status) if status.success() => {
                let detail = format!("exit 0 after {:.1}s", started.elapsed().as_secs_f64());
                progress(Event::Passed(&format!("  ✓ {label} ({detail})")));
                results.push(CheckResult {
                    label,
                    outcome: Outcome::Passed(detail),
                    services: vec![],
                });
                continue;
            }
            Ok(status) => format!("exited with {status}"),
            Err(why) => why.clone(),
        };
        let end = End::Failed(Box::new(Failed {
            command: Some(shown),
            exit_code: ran.end.as_ref().ok().and_then(ExitStatus::code),
            output: tail(&ran.output),
            services: vec![step.service.clone()],
            ..failed(detail)
        }));
        return Steps { results, end };
    }
    Steps {
        results,
        end: End::Passed,
    }
}

/// A step's command, run to its end, the deadline, or a signal.
struct Exec {
    /// How it exited, or why it has no exit of its own.
    end: Result<ExitStatus, String>,
    output: Vec<u8>,
}

/// Output past this is dropped from the front: only the tail is shown.
const KEEP: usize = 256 * 1024;

/// Runs `cmd` with its output kept, both streams read while it runs so that
/// neither can block it. A signal or the deadline kills it: the container it
/// ran in goes with the stack.
fn exec(
    cmd: &mut std::process::Command,
    deadline: Deadline,
    interrupt: Option<&Interrupt>,
) -> Exec {
    let kept = Arc::new(Mutex::new(Vec::new()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Exec {
                end: Err(format!("could not be started: {e}")),
                output: Vec::new(),
            };
        }
    };
    let readers = [
        child.stdout.take().map(|s| keep(s, &kept)),
        child.stderr.take().map(|s| keep(s, &kept)),
    ];
    let end = wait(&mut child, deadline, interrupt);
    // A killed child's own children may hold its output open (docker's
    // compose plugin, until it sees docker go): its readers are left to end
    // on their own.
    if end.is_ok() {
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }
    }
    let output = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
    Exec { end, output }
}

/// Appends what `from` writes to `kept`, from a thread of its own.
fn keep(
    mut from: impl Read + Send + 'static,
    kept: &Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    let kept = Arc::clone(kept);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                    k.extend_from_slice(&buf[..n]);
                    if k.len() > KEEP {
                        let cut = k.len() - KEEP / 2;
                        k.drain(..cut);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

/// Polls `child` until it exits, a signal comes or the deadline passes.
fn wait(
    child: &mut Child,
    deadline: Deadline,
    interrupt: Option<&Interrupt>,
) -> Result<ExitStatus, String> {
    let mut pause = Duration::from_millis(20);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
        let stopped = interrupt.and_then(Interrupt::signal).is_some();
        let late = Instant::now() >= deadline.at;
        if stopped || late {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if late {
                format!(
                    "did not finish within the {:.0}s `up` may wait",
                    deadline.timeout.as_secs_f64()
                )
            } else {
                "stopped by a signal".to_owned()
            });
        }
        std::thread::sleep(pause.min(deadline.at.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The last `TAIL` lines of `output`.
fn tail(output: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(TAIL);
    lines[from..].iter().map(|l| (*l).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_shows_the_words_as_a_shell_would_read_them() {
        let step = AfterUp {
            service: "db".into(),
            run: vec!["psql".into(), "-c".into(), "create table t ()".into()],
        };
        assert_eq!(
            label(&step),
            "after_up: `psql -c 'create table t ()'` in `db`"
        );
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        let t = tail(text.as_bytes());
        assert_eq!(t.len(), TAIL);
        assert_eq!(t[0], "line 11");
        assert_eq!(t[TAIL - 1], "line 50");
    }

    #[test]
    fn a_command_past_the_deadline_is_killed() {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("600");
        let ran = exec(&mut cmd, Deadline::after(Duration::from_millis(100)), None);
        let why = ran.end.unwrap_err();
        assert!(why.starts_with("did not finish within"), "{why}");
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let ran = exec(&mut cmd, Deadline::after(Duration::from_secs(600)), None);
        assert_eq!(ran.end.unwrap().code(), Some(3));
        let text = String::from_utf8(ran.output).unwrap();
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
    }
}
