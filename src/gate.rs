//! The startability gate: after `up`, the stack is ready only when every
//! service of its compose model has its containers, they run (and are
//! healthy where they have a healthcheck), and the pool's checks pass: TCP
//! accept, HTTP status, HTTP JSON list length. One deadline for all; the
//! containers are looked at again when the engine says one changed (its
//! events), polls back off where it says nothing; a line per check as it
//! passes.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::engine::{Container, Engine, Watch};
use crate::http;
use crate::interrupt::{self, Interrupt};
use crate::pool::{Count, GateCheck};

/// What the gate checks, for one slot.
pub(crate) struct Target<'a> {
    pub(crate) engine: &'a Engine,
    /// The host the slot's published ports answer on: `127.0.0.1` for the
    /// local engine, the engine's address for another.
    pub(crate) host: &'a str,
    pub(crate) project: &'a str,
    pub(crate) ports: &'a std::collections::BTreeMap<String, u16>,
    pub(crate) workers: u32,
    pub(crate) checks: &'a [GateCheck],
    /// The services of the compose model, where known: each must have a
    /// container.
    pub(crate) services: Option<&'a [String]>,
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

/// The gate's steps in order: the containers, then the pool's checks. A
/// `Service` step is waited for alone, before an `after_up` step runs in it.
#[derive(Clone, Copy)]
enum Step<'a> {
    Containers,
    Check(&'a GateCheck),
    Service(&'a str),
}

impl Step<'_> {
    fn label(self, target: &Target<'_>) -> String {
        match self {
            Step::Containers => "containers are running and healthy".to_owned(),
            Step::Check(c) => c.label(target.ports, target.host),
            Step::Service(s) => format!("`{s}` is running and healthy"),
        }
    }

    /// The label of a check that did not pass: what failed, not what was hoped.
    fn failed_label(self, target: &Target<'_>) -> String {
        match self {
            Step::Containers => "not every container is running and healthy".to_owned(),
            Step::Check(c) => c.failed_label(target.ports, target.host),
            Step::Service(s) => format!("`{s}` is not running and healthy"),
        }
    }

    fn poll(self, target: &Target<'_>) -> Poll {
        match self {
            Step::Containers => containers(target),
            Step::Check(c) => check(target, c),
            Step::Service(s) => service(target, s),
        }
    }
}

fn steps<'a>(target: &Target<'a>) -> impl Iterator<Item = Step<'a>> + use<'a> {
    std::iter::once(Step::Containers).chain(target.checks.iter().map(Step::Check))
}

impl GateCheck {
    pub(crate) fn label(
        &self,
        ports: &std::collections::BTreeMap<String, u16>,
        host: &str,
    ) -> String {
        let port = |n: &str| ports.get(n).copied().unwrap_or_default();
        match self {
            GateCheck::Tcp { port: p } => format!("{p} accepts TCP on {host}:{}", port(p)),
            GateCheck::Http {
                port: p,
                path,
                status,
            } => format!("GET http://{host}:{}{path} answers {status}", port(p)),
            GateCheck::HttpCount {
                port: p,
                path,
                count,
            } => {
                let what = match count {
                    Count::Workers => "the slot's workers".to_owned(),
                    Count::Fixed(n) => format!("{n} entries"),
                };
                format!("GET http://{host}:{}{path} lists {what}", port(p))
            }
        }
    }
}

impl GateCheck {
    /// The name of the port it checks.
    fn port(&self) -> &str {
        match self {
            GateCheck::Tcp { port }
            | GateCheck::Http { port, .. }
            | GateCheck::HttpCount { port, .. } => port,
        }
    }

    fn failed_label(&self, ports: &std::collections::BTreeMap<String, u16>, host: &str) -> String {
        let port = |n: &str| ports.get(n).copied().unwrap_or_default();
        match self {
            GateCheck::Tcp { port: p } => {
                format!("{p} does not accept connections on {host}:{}", port(p))
            }
            GateCheck::Http {
                port: p,
                path,
                status,
            } => format!(
                "GET http://{host}:{}{path} does not answer {status}",
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
                format!("GET http://{host}:{}{path} does not list {what}", port(p))
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

/// The one deadline of an `up`'s waits: the `after_up` steps and the gate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    /// The whole time allowed, for messages.
    pub(crate) timeout: Duration,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }
}

/// Runs the checks until every one has passed, the deadline passes, or a
/// container fails for good; after a failure, those that have not passed
/// are looked at once more each for the report (none after a signal).
///
/// The checks are not waited for one after the other: each round looks at
/// the containers once, and polls each of the pool's checks whose service
/// is already running and healthy (the containers that publish its port;
/// where none does, once every container is), so a check of a service that
/// was ready early has passed by the time the last container is. Lines are
/// shown in the order of the checks; `progress` hears of each pass and of
/// what the first check not passed is waiting for.
pub(crate) fn run(
    target: &Target<'_>,
    deadline: Deadline,
    mut progress: impl FnMut(Event<'_>),
) -> Report {
    let start = Instant::now();
    let waits = Waits::new(target, deadline.at, deadline.timeout);
    let steps: Vec<Step<'_>> = steps(target).collect();
    let labels: Vec<String> = steps.iter().map(|s| s.label(target)).collect();
    let mut passed: Vec<Option<String>> = vec![None; steps.len()];
    // What each check not passed saw last, and whose logs explain it.
    let mut seen: Vec<Option<(String, Blame)>> = (0..steps.len()).map(|_| None).collect();
    let mut shown = 0;
    let mut pause = Duration::ZERO;
    let end = loop {
        let list = target.engine.containers(Some(target.project));
        let mut fatal = None;
        for (i, step) in steps.iter().enumerate() {
            if passed[i].is_some() {
                continue;
            }
            let poll = match step {
                Step::Containers => containers_in(target, &list),
                Step::Check(c) if ready_behind(c, target, &list, passed[0].is_some()) => {
                    check(target, c)
                }
                _ => continue,
            };
            match poll {
                Poll::Pass(detail) => passed[i] = Some(detail),
                Poll::Wait(d, b) => seen[i] = Some((d, b)),
                Poll::Fatal(d, b) => {
                    fatal = Some(i);
                    seen[i] = Some((d, b));
                    break;
                }
            }
        }
        while shown < steps.len()
            && let Some(detail) = &passed[shown]
        {
            progress(Event::Passed(&format!("  ✓ {} ({detail})", labels[shown])));
            shown += 1;
        }
        if shown == steps.len() {
            break End::Passed;
        }
        if let Some(i) = fatal {
            break End::Fatal(i);
        }
        let first = passed.iter().position(Option::is_none).unwrap_or_default();
        let waiting = seen[first]
            .as_ref()
            .map_or("not looked at yet", |(d, _)| d.as_str());
        progress(Event::Waiting(&format!("{}: {waiting}", labels[first])));
        if let Some(sig) = target.interrupt.and_then(Interrupt::signal) {
            break End::Stopped(first, sig);
        }
        if Instant::now() >= waits.deadline {
            break End::GaveUp(first);
        }
        let checking = steps
            .iter()
            .enumerate()
            .any(|(i, s)| passed[i].is_none() && matches!(s, Step::Check(_)) && seen[i].is_some());
        let (quick, longest) = waits.pauses(checking);
        if pause.is_zero() {
            pause = quick;
        }
        pause = if waits.rest(pause, target.interrupt) {
            quick
        } else {
            (pause * 2).min(longest)
        };
    };
    Report {
        results: results(target, &steps, labels, passed, seen, end, waits.timeout),
        elapsed: start.elapsed(),
    }
}

/// The report's lines once the rounds ended: what passed, what the check
/// that ended them saw (with why it ended), and one more look at each of
/// the others (none after a signal).
fn results(
    target: &Target<'_>,
    steps: &[Step<'_>],
    labels: Vec<String>,
    passed: Vec<Option<String>>,
    seen: Vec<Option<(String, Blame)>>,
    end: End,
    timeout: Duration,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for (((step, label), passed), last) in steps.iter().zip(labels).zip(passed).zip(seen) {
        let i = results.len();
        if let Some(detail) = passed {
            results.push(CheckResult {
                label,
                outcome: Outcome::Passed(detail),
                services: vec![],
            });
            continue;
        }
        let failed = |detail: String, blame: Blame| CheckResult {
            label: label.clone(),
            outcome: Outcome::Failed(detail),
            services: blame.services(target),
        };
        results.push(match (end, last) {
            (End::Stopped(first, sig), Some((d, b))) if first == i => {
                failed(format!("{d} (stopped by {})", interrupt::name(sig)), b)
            }
            (End::Stopped(..), _) => break,
            (End::GaveUp(first), Some((d, b))) if first == i => failed(
                format!("{d} (gave up after {:.0}s)", timeout.as_secs_f64()),
                b,
            ),
            (End::Fatal(at), Some((d, b))) if at == i => failed(d, b),
            _ => look_once(*step, target, label),
        });
    }
    results
}

/// How a gate's rounds ended; the index is of the check that ended them.
#[derive(Clone, Copy)]
enum End {
    Passed,
    Fatal(usize),
    GaveUp(usize),
    Stopped(usize, i32),
}

/// Whether a pool's check can be polled this round: the containers that
/// publish its port run, healthy where they have a healthcheck. A check
/// whose port no container publishes waits for every container.
fn ready_behind(
    check: &GateCheck,
    target: &Target<'_>,
    list: &Result<Vec<Container>>,
    all_ready: bool,
) -> bool {
    if all_ready {
        return true;
    }
    let Some(port) = target.ports.get(check.port()).copied() else {
        return false;
    };
    let Ok(list) = list else { return false };
    let behind: Vec<&Container> = list
        .iter()
        .filter(|c| c.ports.iter().any(|p| p.public == port))
        .collect();
    !behind.is_empty()
        && behind
            .iter()
            .all(|c| c.state == "running" && matches!(c.health(), None | Some("healthy")))
}

/// Waits until `service` has its containers, running and healthy where
/// they have a healthcheck: a container an `after_up` step can run in. The
/// error is what was seen, and whose logs explain it.
pub(crate) fn wait_for_service(
    target: &Target<'_>,
    service: &str,
    deadline: Deadline,
    mut progress: impl FnMut(Event<'_>),
) -> Result<String, (String, Vec<String>)> {
    let step = Step::Service(service);
    let label = step.label(target);
    let waits = Waits::new(target, deadline.at, deadline.timeout);
    let waited = wait_for(step, target, label, &waits, &mut |event| {
        // The step's own line says it passed.
        if let Event::Waiting(_) = event {
            progress(event);
        }
    });
    let (Waited::Done(result) | Waited::Stopped(result)) = waited;
    match result.outcome {
        Outcome::Passed(detail) => Ok(detail),
        Outcome::Failed(detail) => Err((
            format!("{} ({detail})", step.failed_label(target)),
            result.services,
        )),
    }
}

/// One look at a check after another failed, so the report says what each
/// one sees.
fn look_once(step: Step<'_>, target: &Target<'_>, label: String) -> CheckResult {
    let (outcome, services) = match step.poll(target) {
        Poll::Pass(d) => (Outcome::Passed(d), vec![]),
        Poll::Wait(d, b) | Poll::Fatal(d, b) => (Outcome::Failed(d), b.services(target)),
    };
    CheckResult {
        label,
        outcome,
        services,
    }
}

/// How waiting for one check ended.
enum Waited {
    /// It passed, failed for good, or the deadline passed.
    Done(CheckResult),
    /// A signal came: no further check is run.
    Stopped(CheckResult),
}

/// How long the checks may be waited for, and what wakes a wait early.
struct Waits<'t> {
    deadline: Instant,
    timeout: Duration,
    engine: &'t Engine,
    project: &'t str,
    /// The engine's events about the project's containers, where it offers
    /// them: asked for at the first wait (a stack that passes at once needs
    /// none), from a second before on, so nothing since that look is missed.
    watch: std::cell::OnceCell<Option<Watch>>,
}

impl<'t> Waits<'t> {
    fn new(target: &Target<'t>, deadline: Instant, timeout: Duration) -> Waits<'t> {
        Waits {
            deadline,
            timeout,
            engine: target.engine,
            project: target.project,
            watch: std::cell::OnceCell::new(),
        }
    }

    fn watch(&self) -> Option<&Watch> {
        self.watch
            .get_or_init(|| self.engine.watch(self.project))
            .as_ref()
    }

    /// The pauses between two polls: the first, and the longest; quicker
    /// while one of the pool's checks is being polled.
    ///
    /// Containers change state only with an engine event: with events, a
    /// poll follows each one at once (and a few more, quickly, in case the
    /// engine's list lags behind its event), and a slow poll stands in for
    /// an event missed. Without events, polls back off to 200 ms. The pool's
    /// checks ask the service itself, which no event announces: a poll of
    /// one costs well under a millisecond, so they are polled quickly.
    fn pauses(&self, checking: bool) -> (Duration, Duration) {
        let ms = Duration::from_millis;
        match (checking, self.watch()) {
            (true, _) => (ms(10), ms(100)),
            (_, Some(_)) => (ms(10), ms(1000)),
            (_, None) => (ms(50), ms(200)),
        }
    }

    /// Rests up to `pause` (never past the deadline), in steps short enough
    /// to notice a signal; true when an engine event cut it short.
    fn rest(&self, pause: Duration, interrupt: Option<&Interrupt>) -> bool {
        const SLICE: Duration = Duration::from_millis(200);
        let until = (Instant::now() + pause).min(self.deadline);
        loop {
            let now = Instant::now();
            if now >= until || interrupt.and_then(Interrupt::signal).is_some() {
                return false;
            }
            let slice = (until - now).min(SLICE);
            match self.watch() {
                Some(w) => {
                    if w.wait(slice) {
                        return true;
                    }
                }
                None => std::thread::sleep(slice),
            }
        }
    }
}

/// Polls one check until it passes, fails for good, the deadline passes or
/// a signal comes; between polls, waits for the engine's next event or a
/// pause longer than the last.
fn wait_for(
    step: Step<'_>,
    target: &Target<'_>,
    label: String,
    waits: &Waits<'_>,
    progress: &mut impl FnMut(Event<'_>),
) -> Waited {
    // Set at the first wait, when the engine's events are asked for.
    let mut pause = Duration::ZERO;
    loop {
        match step.poll(target) {
            Poll::Pass(detail) => {
                progress(Event::Passed(&format!("  ✓ {label} ({detail})")));
                return Waited::Done(CheckResult {
                    label,
                    outcome: Outcome::Passed(detail),
                    services: vec![],
                });
            }
            Poll::Fatal(detail, blame) => {
                return Waited::Done(CheckResult {
                    label,
                    outcome: Outcome::Failed(detail),
                    services: blame.services(target),
                });
            }
            Poll::Wait(detail, blame) => {
                progress(Event::Waiting(&format!("{label}: {detail}")));
                if let Some(sig) = target.interrupt.and_then(Interrupt::signal) {
                    return Waited::Stopped(CheckResult {
                        label,
                        outcome: Outcome::Failed(format!(
                            "{detail} (stopped by {})",
                            interrupt::name(sig)
                        )),
                        services: blame.services(target),
                    });
                }
                if Instant::now() >= waits.deadline {
                    let detail = format!(
                        "{detail} (gave up after {:.0}s)",
                        waits.timeout.as_secs_f64()
                    );
                    return Waited::Done(CheckResult {
                        label,
                        outcome: Outcome::Failed(detail),
                        services: blame.services(target),
                    });
                }
                let (first, longest) = waits.pauses(matches!(step, Step::Check(_)));
                if pause.is_zero() {
                    pause = first;
                }
                pause = if waits.rest(pause, target.interrupt) {
                    first
                } else {
                    (pause * 2).min(longest)
                };
            }
        }
    }
}

fn containers(target: &Target<'_>) -> Poll {
    containers_in(target, &target.engine.containers(Some(target.project)))
}

/// The containers step, on a list the round has already asked for.
fn containers_in(target: &Target<'_>, list: &Result<Vec<Container>>) -> Poll {
    let list = match list {
        Ok(l) => l,
        Err(e) => return Poll::Wait(format!("{e:#}"), Blame::Services(vec![])),
    };
    if list.is_empty() {
        return Poll::Wait("no containers yet".into(), Blame::Services(vec![]));
    }
    let missing = missing(list, target.services);
    if !missing.is_empty() {
        let what: Vec<String> = missing.iter().map(|s| format!("`{s}`")).collect();
        return Poll::Wait(
            format!("no container for {}", what.join(", ")),
            Blame::Services(missing),
        );
    }
    let mut waiting = Vec::new();
    for c in list {
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

/// `service`'s containers: all running, and healthy where they have a
/// healthcheck. One that exited will not run a step.
fn service(target: &Target<'_>, service: &str) -> Poll {
    let blame = || Blame::Services(vec![service.to_owned()]);
    let list = match target.engine.containers(Some(target.project)) {
        Ok(l) => l,
        Err(e) => return Poll::Wait(format!("{e:#}"), blame()),
    };
    let own: Vec<&Container> = list.iter().filter(|c| c.service == service).collect();
    if own.is_empty() {
        return Poll::Wait(format!("no container for `{service}` yet"), blame());
    }
    for c in &own {
        match (c.state.as_str(), c.exit_code(), c.health()) {
            ("running", _, None | Some("healthy")) => {}
            ("exited" | "dead", code, _) => {
                let code = code.map_or("?".to_owned(), |c| c.to_string());
                return Poll::Fatal(
                    format!("service `{service}` exited with code {code}"),
                    blame(),
                );
            }
            ("running", _, Some(h)) => return Poll::Wait(format!("`{service}` is {h}"), blame()),
            (state, _, _) => return Poll::Wait(format!("`{service}` is {state}"), blame()),
        }
    }
    let healthy = own.iter().any(|c| c.health() == Some("healthy"));
    Poll::Pass(if healthy { "healthy" } else { "running" }.to_owned())
}

/// The services of the compose model that have no container.
pub(crate) fn missing<'a>(
    containers: impl IntoIterator<Item = &'a Container>,
    services: Option<&[String]>,
) -> Vec<String> {
    let present: std::collections::BTreeSet<&str> =
        containers.into_iter().map(|c| c.service.as_str()).collect();
    services
        .unwrap_or_default()
        .iter()
        .filter(|s| !present.contains(s.as_str()))
        .cloned()
        .collect()
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

/// Where a published port of the slot is reached: the engine's host.
fn published(target: &Target<'_>, port: u16) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    (target.host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

fn check(target: &Target<'_>, check: &GateCheck) -> Poll {
    const IO: Duration = Duration::from_secs(3);
    let port_of = |name: &str| target.ports.get(name).copied().unwrap_or_default();
    match check {
        GateCheck::Tcp { port } => tcp(target, port_of(port), IO),
        GateCheck::Http { port, path, status } => {
            let p = port_of(port);
            match http::get(published(target, p), path, IO) {
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
            match http::get(published(target, p), path, IO) {
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

/// How long a connection through the published port must stay open, without a
/// word, to count as accepted where the container cannot be reached directly.
const HOLD: Duration = Duration::from_secs(1);

/// A TCP check: does the service behind the published port accept?
///
/// A bare connect proves nothing. Docker's userland proxy (`docker-proxy`)
/// listens on every published port and accepts every connection at once;
/// only then does it connect to the container, and when nothing listens
/// there it closes the client's connection. A service that accepts either
/// speaks first (a banner) or keeps the connection open, waiting for the
/// client (PostgreSQL does).
///
/// "Closed at once" and "kept open" differ only in time, and the proxy's
/// "at once" is as slow as the machine is loaded: a rule like "still open
/// after 100 ms means accepted" would say ready early on a busy machine. So
/// where it can, the check asks the container itself: when the engine runs
/// on this host and the container's network has its gateway here (a
/// bridge), a connect to the container's own address and port is answered
/// by its kernel, which refuses when nothing listens and completes the
/// handshake when something does, however loaded the machine is. That
/// answer decides; the connection through the published port must succeed
/// too, since that is the way clients come in.
///
/// Elsewhere (a remote engine, Docker Desktop's VM, rootless networking) the
/// container's address is not ours to reach, and the check falls back on
/// the proxy's behaviour: a banner passes, a close fails, and a connection
/// still open after `HOLD` passes.
///
/// This proves TCP acceptance, no more: a server that listens before it can
/// serve (PostgreSQL answers "the database system is starting up" for the
/// few milliseconds between its listen and its "ready") needs a healthcheck
/// for that, which the containers step waits for.
fn tcp(target: &Target<'_>, port: u16, io: Duration) -> Poll {
    let stream = match std::net::TcpStream::connect_timeout(&published(target, port), io) {
        Ok(s) => s,
        Err(e) => return Poll::Wait(format!("connect: {e}"), Blame::Port(port)),
    };
    match inside(target, port) {
        Inside::Listens { service, addr } => {
            Poll::Pass(format!("connected; `{service}` listens on {addr}"))
        }
        Inside::Refused { service, addr } => Poll::Wait(
            format!(
                "the published port connects, but nothing listens on {addr} in `{service}` \
                 (the connection ends at Docker's proxy)"
            ),
            Blame::Services(vec![service]),
        ),
        Inside::Unknown => hold(stream, port),
    }
}

/// What the container behind a published port says, asked directly.
enum Inside {
    Listens {
        service: String,
        addr: String,
    },
    Refused {
        service: String,
        addr: String,
    },
    /// The container cannot be reached from here, or was not found.
    Unknown,
}

fn inside(target: &Target<'_>, port: u16) -> Inside {
    // Only a local engine's containers are on this host's networks.
    if !matches!(target.engine, Engine::Api(e) if e.is_unix()) {
        return Inside::Unknown;
    }
    let Ok(list) = target.engine.containers(Some(target.project)) else {
        return Inside::Unknown;
    };
    let Some((container, private)) = list.iter().find_map(|c| {
        c.ports
            .iter()
            .find(|p| p.public == port)
            .map(|p| (c, p.private))
    }) else {
        return Inside::Unknown;
    };
    let Ok(addresses) = target.engine.addresses(&container.id) else {
        return Inside::Unknown;
    };
    for a in addresses {
        // A network whose gateway is an address of this host is a bridge on
        // this host: binding to an address succeeds only where it is ours.
        let Some(gateway) = a.gateway else { continue };
        if std::net::UdpSocket::bind((gateway, 0)).is_err() {
            continue;
        }
        let addr = std::net::SocketAddr::new(a.ip, private);
        let service = container.service.clone();
        let shown = addr.to_string();
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => {
                return Inside::Listens {
                    service,
                    addr: shown,
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Inside::Refused {
                    service,
                    addr: shown,
                };
            }
            // No answer: try the next network, else fall back.
            Err(_) => {}
        }
    }
    Inside::Unknown
}

/// The fallback: a banner or a connection kept open for `HOLD` passes; one
/// closed by the other end is the proxy finding nothing behind it.
fn hold(mut stream: std::net::TcpStream, port: u16) -> Poll {
    use std::io::{ErrorKind, Read};
    let closed = || {
        Poll::Wait(
            "the connection was closed at once: nothing accepts behind the published port".into(),
            Blame::Port(port),
        )
    };
    if let Err(e) = stream.set_read_timeout(Some(HOLD)) {
        return Poll::Wait(format!("read: {e}"), Blame::Port(port));
    }
    let mut byte = [0u8; 1];
    let read = loop {
        match stream.read(&mut byte) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    match read {
        Ok(0) => closed(),
        Ok(_) => Poll::Pass("connected; it answered".into()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Poll::Pass(format!("connected; kept open for {}s", HOLD.as_secs()))
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            closed()
        }
        Err(e) => Poll::Wait(format!("read: {e}"), Blame::Port(port)),
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

    /// What a test server does with each connection.
    #[derive(Clone, Copy)]
    enum Server {
        /// Closes it at once, as docker-proxy does when nothing listens.
        Closes,
        /// Sends a line and keeps it open.
        Greets,
        /// Keeps it open without a word, waiting for the client.
        Waits,
    }

    /// A loopback server and a client connection to it. One thread serves
    /// every connection (a stray one from another test cannot take our
    /// place) and keeps those it holds open until the test process ends.
    fn served(server: Server) -> (std::net::TcpStream, u16) {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut s in l.incoming().flatten() {
                match server {
                    Server::Closes => drop(s),
                    Server::Greets => {
                        let _ = s.write_all(b"220 ready\r\n");
                        held.push(s);
                    }
                    Server::Waits => held.push(s),
                }
            }
        });
        (
            std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(),
            port,
        )
    }

    fn shown(p: Poll) -> String {
        match p {
            Poll::Pass(d) => format!("pass: {d}"),
            Poll::Wait(d, _) => format!("wait: {d}"),
            Poll::Fatal(d, _) => format!("fatal: {d}"),
        }
    }

    #[test]
    fn without_the_container_a_close_fails_and_a_banner_or_silence_passes() {
        let (s, port) = served(Server::Closes);
        let got = shown(hold(s, port));
        assert!(
            got.starts_with("wait: the connection was closed at once"),
            "{got}"
        );
        let (s, port) = served(Server::Greets);
        assert_eq!(shown(hold(s, port)), "pass: connected; it answered");
        let (s, port) = served(Server::Waits);
        assert_eq!(shown(hold(s, port)), "pass: connected; kept open for 1s");
    }

    #[test]
    fn lists_are_counted_bare_or_under_workers() {
        assert_eq!(list_len(b"[1,2,3]"), Some(3));
        assert_eq!(list_len(br#"{"workers": [{}, {}]}"#), Some(2));
        assert_eq!(list_len(br#"{"count": 2}"#), None);
        assert_eq!(list_len(b"not json"), None);
    }
}
