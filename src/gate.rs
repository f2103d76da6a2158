//! The startability gate: after `up`, the stack is ready only when its
//! containers run (and are healthy where they have a healthcheck) and the
//! pool's checks pass: TCP connect, HTTP status, HTTP JSON list length. One
//! deadline for all; polls back off; a line per check as it passes.

use std::time::{Duration, Instant};

use crate::config::{Count, GateCheck};
use crate::engine::{Container, Engine};
use crate::http;
use crate::interrupt::{self, Interrupt};

/// What the gate checks, for one slot.
pub(crate) struct Target<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) project: &'a str,
    pub(crate) ports: &'a std::collections::BTreeMap<String, u16>,
    pub(crate) workers: u32,
    pub(crate) checks: &'a [GateCheck],
    /// Stops waiting when a signal arrives.
    pub(crate) interrupt: Option<&'a Interrupt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Passed(String),
    Failed(String),
}

#[derive(Debug, Clone)]
pub(crate) struct CheckResult {
    pub(crate) label: String,
    pub(crate) outcome: Outcome,
    /// Services whose logs explain a failure.
    pub(crate) services: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) results: Vec<CheckResult>,
    pub(crate) elapsed: Duration,
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Passed(_)))
    }

    /// The first check that failed, said as what went wrong, with what it saw.
    pub(crate) fn first_failure(&self, target: &Target<'_>) -> Option<String> {
        steps(target)
            .zip(&self.results)
            .find_map(|(step, r)| match &r.outcome {
                Outcome::Failed(seen) => Some(format!("{} ({seen})", step.failed_label(target))),
                Outcome::Passed(_) => None,
            })
    }

    pub(crate) fn failing_services(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .results
            .iter()
            .flat_map(|r| r.services.clone())
            .collect();
        s.sort();
        s.dedup();
        s
    }
}

/// One poll of a check.
enum Poll {
    Pass(String),
    /// Not yet; the text says what was seen.
    Wait(String, Blame),
    /// Will not pass by waiting (a container exited with an error).
    Fatal(String, Blame),
}

/// Whose logs explain a check that did not pass. A port's services are looked
/// up only when the check fails for good, not on every wait.
enum Blame {
    Services(Vec<String>),
    Port(u16),
}

impl Blame {
    fn services(self, target: &Target<'_>) -> Vec<String> {
        match self {
            Blame::Services(s) => s,
            Blame::Port(port) => publishers(target, port),
        }
    }
}

/// The gate's steps in order: the containers, then the pool's checks.
#[derive(Clone, Copy)]
enum Step<'a> {
    Containers,
    Check(&'a GateCheck),
}

impl Step<'_> {
    fn label(self, target: &Target<'_>) -> String {
        match self {
            Step::Containers => "containers are running and healthy".to_owned(),
            Step::Check(c) => c.label(target.ports),
        }
    }

    /// The label of a check that did not pass: what failed, not what was hoped.
    fn failed_label(self, target: &Target<'_>) -> String {
        match self {
            Step::Containers => "not every container is running and healthy".to_owned(),
            Step::Check(c) => c.failed_label(target.ports),
        }
    }

    fn poll(self, target: &Target<'_>) -> Poll {
        match self {
            Step::Containers => containers(target),
            Step::Check(c) => check(target, c),
        }
    }
}

fn steps<'a>(target: &Target<'a>) -> impl Iterator<Item = Step<'a>> + use<'a> {
    std::iter::once(Step::Containers).chain(target.checks.iter().map(Step::Check))
}

impl GateCheck {
    pub(crate) fn label(&self, ports: &std::collections::BTreeMap<String, u16>) -> String {
        let port = |n: &str| ports.get(n).copied().unwrap_or_default();
        match self {
            GateCheck::Tcp { port: p } => format!("{p} accepts TCP on 127.0.0.1:{}", port(p)),
            GateCheck::Http {
                port: p,
                path,
                status,
            } => format!("GET http://127.0.0.1:{}{path} answers {status}", port(p)),
            GateCheck::HttpCount {
                port: p,
                path,
                count,
            } => {
                let what = match count {
                    Count::Workers => "the slot's workers".to_owned(),
                    Count::Fixed(n) => format!("{n} entries"),
                };
                format!("GET http://127.0.0.1:{}{path} lists {what}", port(p))
            }
        }
    }
}

impl GateCheck {
    fn failed_label(&self, ports: &std::collections::BTreeMap<String, u16>) -> String {
        let port = |n: &str| ports.get(n).copied().unwrap_or_default();
        match self {
            GateCheck::Tcp { port: p } => {
                format!("{p} does not accept connections on 127.0.0.1:{}", port(p))
            }
            GateCheck::Http {
                port: p,
                path,
                status,
            } => format!(
                "GET http://127.0.0.1:{}{path} does not answer {status}",
                port(p)
            ),
            GateCheck::HttpCount {
                port: p,
                path,
                count,
            } => {
                let what = match count {
                    Count::Workers => "the slot's workers".to_owned(),
                    Count::Fixed(n) => format!("{n} entries"),
                };
                format!(
                    "GET http://127.0.0.1:{}{path} does not list {what}",
                    port(p)
                )
            }
        }
    }
}

/// What the gate tells its caller while it runs.
pub(crate) enum Event<'a> {
    /// A check passed: a line to keep.
    Passed(&'a str),
    /// Still waiting: what for, and what was seen.
    Waiting(&'a str),
}

/// The report of a gate that passes right now: one poll per step, and
/// `None` at the first step that does not pass.
pub(crate) fn passes_now(target: &Target<'_>) -> Option<Report> {
    let start = Instant::now();
    let results = steps(target)
        .map(|step| match step.poll(target) {
            Poll::Pass(detail) => Some(CheckResult {
                label: step.label(target),
                outcome: Outcome::Passed(detail),
                services: vec![],
            }),
            Poll::Wait(..) | Poll::Fatal(..) => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Report {
        results,
        elapsed: start.elapsed(),
    })
}

/// Runs every check in order until it passes, the deadline passes, or a
/// container fails for good; after a failure, the remaining checks are polled
/// once each for the report (none after a signal). `progress` hears of each
/// pass and each wait.
pub(crate) fn run(
    target: &Target<'_>,
    timeout: Duration,
    mut progress: impl FnMut(Event<'_>),
) -> Report {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut results = Vec::new();
    let mut failed = false;
    for step in steps(target) {
        let label = step.label(target);
        if failed {
            // One look at the rest, so the report says what each one sees.
            let (outcome, services) = match step.poll(target) {
                Poll::Pass(d) => (Outcome::Passed(d), vec![]),
                Poll::Wait(d, b) | Poll::Fatal(d, b) => (Outcome::Failed(d), b.services(target)),
            };
            results.push(CheckResult {
                label,
                outcome,
                services,
            });
            continue;
        }
        let mut pause = Duration::from_millis(50);
        let result = loop {
            match step.poll(target) {
                Poll::Pass(detail) => {
                    progress(Event::Passed(&format!("  ✓ {label} ({detail})")));
                    break CheckResult {
                        label,
                        outcome: Outcome::Passed(detail),
                        services: vec![],
                    };
                }
                Poll::Fatal(detail, blame) => {
                    break CheckResult {
                        label,
                        outcome: Outcome::Failed(detail),
                        services: blame.services(target),
                    };
                }
                Poll::Wait(detail, blame) => {
                    progress(Event::Waiting(&format!("{label}: {detail}")));
                    if let Some(sig) = target.interrupt.and_then(Interrupt::signal) {
                        results.push(CheckResult {
                            label,
                            outcome: Outcome::Failed(format!(
                                "{detail} (stopped by {})",
                                interrupt::name(sig)
                            )),
                            services: blame.services(target),
                        });
                        return Report {
                            results,
                            elapsed: start.elapsed(),
                        };
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        let detail =
                            format!("{detail} (gave up after {:.0}s)", timeout.as_secs_f64());
                        break CheckResult {
                            label,
                            outcome: Outcome::Failed(detail),
                            services: blame.services(target),
                        };
                    }
                    std::thread::sleep(pause.min(deadline - now));
                    // A poll costs about a millisecond; a long pause would only
                    // report readiness late.
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        };
        failed = !matches!(result.outcome, Outcome::Passed(_));
        results.push(result);
    }
    Report {
        results,
        elapsed: start.elapsed(),
    }
}

fn containers(target: &Target<'_>) -> Poll {
    let list = match target.engine.containers(Some(target.project)) {
        Ok(l) => l,
        Err(e) => return Poll::Wait(format!("{e:#}"), Blame::Services(vec![])),
    };
    if list.is_empty() {
        return Poll::Wait("no containers yet".into(), Blame::Services(vec![]));
    }
    let mut waiting = Vec::new();
    for c in &list {
        match (c.state.as_str(), c.exit_code(), c.health()) {
            ("running", _, None | Some("healthy")) => {}
            // A one-shot service that finished its job.
            ("exited", Some(0), _) => {}
            ("exited" | "dead", code, _) => {
                let code = code.map_or("?".to_owned(), |c| c.to_string());
                return Poll::Fatal(
                    format!("service `{}` exited with code {code}", c.service),
                    Blame::Services(vec![c.service.clone()]),
                );
            }
            (_, _, Some(h)) if c.state == "running" => waiting.push((c, h.to_owned())),
            (state, _, _) => waiting.push((c, state.to_owned())),
        }
    }
    if waiting.is_empty() {
        let healthy = list
            .iter()
            .filter(|c| c.health() == Some("healthy"))
            .count();
        let running = list.iter().filter(|c| c.state == "running").count();
        return Poll::Pass(format!("{running} running, {healthy} healthy"));
    }
    let what: Vec<String> = waiting
        .iter()
        .map(|(c, s)| format!("`{}` is {s}", c.service))
        .collect();
    Poll::Wait(
        what.join(", "),
        Blame::Services(waiting.iter().map(|(c, _)| c.service.clone()).collect()),
    )
}

/// The services publishing `port`, for logs.
fn publishers(target: &Target<'_>, port: u16) -> Vec<String> {
    let list: Vec<Container> = target
        .engine
        .containers(Some(target.project))
        .unwrap_or_default();
    list.into_iter()
        .filter(|c| c.ports.iter().any(|p| p.public == port))
        .map(|c| c.service)
        .collect()
}

fn check(target: &Target<'_>, check: &GateCheck) -> Poll {
    const IO: Duration = Duration::from_secs(3);
    let port_of = |name: &str| target.ports.get(name).copied().unwrap_or_default();
    match check {
        GateCheck::Tcp { port } => {
            let p = port_of(port);
            match std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], p).into(), IO) {
                Ok(_) => Poll::Pass("connected".into()),
                Err(e) => Poll::Wait(format!("connect: {e}"), Blame::Port(p)),
            }
        }
        GateCheck::Http { port, path, status } => {
            let p = port_of(port);
            match http::get_local(p, path, IO) {
                Ok(r) if r.status == *status => Poll::Pass(format!("{}", r.status)),
                Ok(r) => Poll::Wait(format!("returned {}", r.status), Blame::Port(p)),
                Err(e) => Poll::Wait(format!("{e:#}"), Blame::Port(p)),
            }
        }
        GateCheck::HttpCount { port, path, count } => {
            let p = port_of(port);
            let need = match count {
                Count::Workers => target.workers as usize,
                Count::Fixed(n) => *n as usize,
            };
            match http::get_local(p, path, IO) {
                Ok(r) if r.status == 200 => match list_len(&r.body) {
                    Some(n) if n >= need => Poll::Pass(format!("{n} of {need}")),
                    Some(n) => Poll::Wait(format!("expected {need}, found {n}"), Blame::Port(p)),
                    None => Poll::Wait("the answer is not a JSON list".into(), Blame::Port(p)),
                },
                Ok(r) => Poll::Wait(format!("returned {}", r.status), Blame::Port(p)),
                Err(e) => Poll::Wait(format!("{e:#}"), Blame::Port(p)),
            }
        }
    }
}

/// The length of a JSON list, or of the `workers` list of an object.
fn list_len(body: &[u8]) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match &v {
        serde_json::Value::Array(a) => Some(a.len()),
        serde_json::Value::Object(o) => o.get("workers").and_then(|w| w.as_array()).map(Vec::len),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_counted_bare_or_under_workers() {
        assert_eq!(list_len(b"[1,2,3]"), Some(3));
        assert_eq!(list_len(br#"{"workers": [{}, {}]}"#), Some(2));
        assert_eq!(list_len(br#"{"count": 2}"#), None);
        assert_eq!(list_len(b"not json"), None);
    }
}
