//! `up`: claim if needed, check ports, `compose up -d`, then the startability
//! gate; on failure, report and leave no half-started stack behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::after_up::{self, End, Failed};
use crate::claim::{self, Claimed, Want};
use crate::cli::Format;
use crate::commands::{Ctx, addresses, mark, project};
use crate::compose::{self, Compose, Project};
use crate::engine::{Container, Engine};
use crate::error::{UserError, code, with_slot};
use crate::gate::{self, CheckResult, Deadline, Outcome, Report};
use crate::interrupt::{self, Interrupt};
use crate::output;
use crate::owner::{Owner, Survey, describe_left_alone};
use crate::pool::{Pool, Profile};
use crate::registry::Store;

pub(crate) const GATE_FAILED: u8 = 2;

/// The exit code after a signal: 128 + its number, as a shell reports it.
fn interrupt_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(code::FAILURE)
}

/// Prints `up`'s JSON result in a caller's own object.
pub(crate) type PrintJson = dyn Fn(&UpJson);

pub(crate) struct Options {
    pub(crate) build: bool,
    pub(crate) wait: bool,
    pub(crate) timeout: Option<u64>,
    pub(crate) profile: Option<Profile>,
    /// When claiming: the engine asked for.
    pub(crate) engine: Option<String>,
    pub(crate) format: Format,
    /// Show compose's own progress even off a terminal.
    pub(crate) verbose: bool,
    /// On another engine, copy the images it lacks first (`push-images`).
    pub(crate) push_images: bool,
    /// With `--format json`, prints the result instead of printing it on its
    /// own (`create --up` puts it in its object).
    pub(crate) print_json: Option<Box<PrintJson>>,
}

/// `up --format json`.
#[derive(Serialize)]
pub(crate) struct UpJson {
    slot: u32,
    profile: Profile,
    project: String,
    worktree: std::path::PathBuf,
    /// `started`, `already-up` or `started-no-wait`.
    result: &'static str,
    seconds: f64,
    urls: std::collections::BTreeMap<String, String>,
    checks: Vec<CheckJson>,
}

/// What a `--format json` error of a failed gate adds to `slot`.
#[derive(Serialize)]
struct GateFailedJson {
    project: String,
    /// `gate-failed`.
    result: &'static str,
    seconds: f64,
    checks: Vec<CheckJson>,
    /// The `after_up` step that failed, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_step: Option<StepJson>,
}

/// What a `--format json` error of missing bind sources adds to `slot`.
#[derive(Serialize)]
struct MissingBindsJson {
    project: String,
    missing_binds: Vec<crate::model::MissingBind>,
}

/// A failed `after_up` step, in a `--format json` error.
#[derive(Serialize)]
struct StepJson {
    /// 1-based, as the project file counts `[[after_up]]` tables.
    number: usize,
    service: String,
    run: Vec<String>,
    /// Its exit code, when it ran to an end.
    exit_code: Option<i32>,
    detail: String,
    /// The last lines of its output.
    output: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct CheckJson {
    check: String,
    passed: bool,
    detail: String,
}

pub(crate) fn exec(ctx: &Ctx, opts: Options) -> Result<u8> {
    let start = Instant::now();
    let worktree = ctx.worktree()?;
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    super::ping_for_claim(ctx, &pool, &store, &worktree, opts.engine.as_deref())?;
    super::provision::on_first_use(&pool, &store)?;
    let cmd = ctx.cmd_name();
    let claimed = claim_slot(ctx, &pool, &store, &opts, &worktree, &cmd)?;
    let slot = claimed.slot;
    let route = ctx.route(&pool, claimed.record.engine.as_deref())?;
    let engine = &route.engine;
    // One `up`, `down` or `release` at a time per slot: a second `up` of the
    // same worktree waits, then finds the stack up.
    let _lock = store.slot_lock(&pool.slot_dir(slot))?;
    let up = Up {
        ctx,
        opts: &opts,
        start,
        pool: &pool,
        store: &store,
        engine,
        route: &route,
        worktree: &worktree,
        cmd: &cmd,
        slot,
        claimed: &claimed,
        project: project(&pool, slot, &worktree),
    };
    let containers = engine.containers(None)?;
    up.refuse_a_foreign_stack(&containers)?;
    if let Some(report) = up.already_up(&containers) {
        return up.finish("already-up", &report.results);
    }
    // Only a stack about to start needs its ports free (on another engine,
    // asking costs a container there).
    let host = up.check_ports_are_free(&containers)?;
    up.start_stack(&host)
}

/// Claims a slot for the worktree, or finds the one it holds, and says what
/// was done to it.
fn claim_slot(
    ctx: &Ctx,
    pool: &Pool,
    store: &Store,
    opts: &Options,
    worktree: &Path,
    cmd: &str,
) -> Result<Claimed> {
    // Compose is found before a new claim, so that a missing compose changes
    // nothing; a worktree that holds its slot looks for it only when the
    // stack is not up already.
    if store.read()?.claim_of(worktree).is_none() {
        ctx.compose()?;
    }
    let claimed = claim::claim(
        pool,
        store,
        &ctx.docker(),
        opts.engine.as_deref(),
        worktree,
        Want {
            profile: opts.profile,
            slot: None,
        },
        cmd,
    )?;
    let slot = claimed.slot;
    if claimed.fresh {
        output::note(&format!(
            "Claimed slot {slot} ({}) for `{}`",
            claimed.record.profile,
            worktree.display()
        ));
        if let Some(text) = describe_left_alone(&pool.project(slot), &claimed.cleaned.left_alone) {
            output::note(&text);
        }
    }
    if claimed.rerendered && !claimed.fresh {
        output::note(&format!(
            "Rendered slot {slot}'s files again: the templates or the project file changed"
        ));
    }
    Ok(claimed)
}

/// One `up` of a claimed slot, under the slot's lock: what its steps share.
struct Up<'a> {
    ctx: &'a Ctx,
    opts: &'a Options,
    start: Instant,
    pool: &'a Pool,
    store: &'a Store,
    engine: &'a Engine,
    route: &'a super::Route,
    worktree: &'a Path,
    cmd: &'a str,
    slot: u32,
    claimed: &'a Claimed,
    project: Project,
}

impl Up<'_> {
    /// The gate's checks of the slot's stack.
    fn target(&self) -> gate::Target<'_> {
        let record = &self.claimed.record;
        gate::Target {
            engine: self.engine,
            host: &self.route.host,
            project: &self.project.name,
            ports: &record.ports,
            workers: record.workers.values().sum(),
            checks: &self.pool.gate,
            // Compose has just made every service's containers when the gate runs.
            services: None,
            interrupt: None,
        }
    }

    /// Another registry's stack on the slot stops `up` before it looks at
    /// anything else.
    fn refuse_a_foreign_stack(&self, containers: &[Container]) -> Result<()> {
        match claim::foreign_stack(
            self.pool,
            &self.claimed.owner,
            self.slot,
            containers,
            self.cmd,
        ) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A port of the slot that something else holds stops `up` before it
    /// starts anything. What was found taken on the engine's host (and, on
    /// another host, its routes).
    fn check_ports_are_free(&self, containers: &[Container]) -> Result<claim::Taken> {
        let slot = self.slot;
        let taken = claim::Taken::of(&self.route.spec, &self.route.docker, containers)?;
        let busy = claim::busy_ports(self.pool, &self.claimed.record, containers, &taken);
        if !busy.is_empty() {
            return Err(with_slot(claim::port_conflict(slot, &busy), slot));
        }
        Ok(taken)
    }

    /// A running, healthy stack that passes every check at once is left as it
    /// is, unless it was started from files that have changed since: the
    /// report of its checks.
    fn already_up(&self, containers: &[Container]) -> Option<Report> {
        let (pool, slot) = (self.pool, self.slot);
        let own: Vec<_> = containers
            .iter()
            .filter(|c| c.project == self.project.name)
            .collect();
        let files_changed = self.claimed.rerendered
            || crate::slot::started_fingerprint(pool, slot)
                .is_some_and(|f| Some(f) != crate::slot::files_fingerprint(pool, slot));
        let running = !self.opts.build
            && !files_changed
            && self.opts.wait
            && !own.is_empty()
            && own.iter().all(|c| c.state == "running");
        if !running {
            return None;
        }
        // A service whose container was removed leaves no trace among the
        // containers: the compose model shows it, and compose recreates it.
        let services = super::status::model_services(self.ctx, &self.project, &pool.slot_dir(slot));
        let target = gate::Target {
            services: services.as_deref(),
            ..self.target()
        };
        gate::passes_now(&target)
    }

    /// Marks the slot running and shows the result: the slot and its
    /// addresses, and in JSON what was checked.
    fn finish(&self, result: &'static str, checks: &[CheckResult]) -> Result<u8> {
        let (slot, record) = (self.slot, &self.claimed.record);
        mark(self.store, slot, "running")?;
        let urls = addresses(self.pool, &record.ports, &self.route.host);
        if self.opts.format == Format::Json {
            let up = UpJson {
                slot,
                profile: record.profile,
                project: self.project.name.clone(),
                worktree: self.worktree.to_owned(),
                result,
                seconds: self.start.elapsed().as_secs_f64(),
                urls: urls.into_iter().collect(),
                checks: checks_json(checks),
            };
            match &self.opts.print_json {
                Some(print) => print(&up),
                None => output::json(&up),
            }
        } else {
            let how = match result {
                "already-up" => "is already up",
                "started-no-wait" => "started (the gate was not run)",
                _ => "is up and ready",
            };
            output::line(&format!(
                "Slot {slot} ({}) {how}: project {} in {:.1}s",
                record.profile,
                self.project.name,
                self.start.elapsed().as_secs_f64()
            ));
            for (name, addr) in urls {
                output::line(&format!("  {name:<18} {addr}"));
            }
        }
        Ok(0)
    }

    /// Starts the stack, runs the `after_up` steps and, unless `--no-wait`,
    /// waits for the gate, the steps and the gate within one deadline. From
    /// the first thing started on, a failure or a signal takes down what
    /// this `up` made. `host` is what `check_slot_is_free` saw of the
    /// engine's host.
    fn start_stack(&self, host: &claim::Taken) -> Result<u8> {
        let compose = &self.ctx.compose_on(self.route)?;
        let model = self.slot_model(compose);
        if let Some(e) = model
            .as_ref()
            .and_then(|m| claim::unseen_binds(m, &self.route.spec, self.worktree))
        {
            return Err(with_slot(e, self.slot));
        }
        self.check_binds(model.as_ref())?;
        self.check_after_up_services(model.as_ref())?;
        let stack = model
            .as_ref()
            .map(|m| crate::model::stack_images(m, &crate::model::active_profiles()));
        self.push_images_first(stack.as_deref())?;
        // The template mounts the shared folders; made here, they belong to the
        // user rather than to the root-owned folders docker would create.
        for folder in &self.pool.shared_folders {
            crate::fsutil::create_dir_all(&self.pool.shared_dir.join(folder))?;
        }
        // A failure takes down what this `up` made, never a volume that was
        // there before it: the database that `down` kept, above all.
        let before = self.engine.volume_names()?;
        if self.project.networks.is_some() {
            let registry = self.claimed.owner.registry.as_deref().unwrap_or_default();
            let mut conflicts =
                super::subnet_conflicts(self.pool, self.engine, host, registry, &[self.slot])?;
            let spec = &self.route.spec;
            if !spec.is_local() {
                for c in &mut conflicts {
                    c.push_str(&format!(" (engine `{}`)", spec.name));
                }
            }
            super::refuse_subnet_conflicts(
                self.pool,
                &conflicts,
                &format!("the subnets of slot {}", self.slot),
            )
            .map_err(|e| with_slot(e, self.slot))?;
        }
        // From here on a signal does not leave a half-started stack behind: the
        // first one takes it down, a second one exits at once.
        let interrupt = Interrupt::watch()?;
        self.compose_up(compose, &before, &interrupt, stack.as_deref())?;
        crate::slot::mark_started(self.pool, self.slot)?;
        let steps = &self.pool.after_up;
        if !self.opts.wait && steps.is_empty() {
            return self.finish("started-no-wait", &[]);
        }
        let deadline = Deadline::after(self.timeout());
        let slot = self.slot;
        output::note(&if self.opts.wait {
            format!(
                "Waiting for slot {slot} to be ready (at most {}s):",
                deadline.timeout.as_secs()
            )
        } else {
            format!(
                "Running slot {slot}'s after_up steps (at most {}s):",
                deadline.timeout.as_secs()
            )
        });
        let spinner = output::Spinner::start("waiting for the containers");
        let target = gate::Target {
            interrupt: Some(&interrupt),
            ..self.target()
        };
        let ran = after_up::run(steps, compose, &self.project, &target, deadline, |event| {
            show(&spinner, event)
        });
        let mut checks = ran.results;
        match ran.end {
            End::Passed => {}
            End::Interrupted(sig) => {
                spinner.finish();
                return Err(self.interrupted(compose, &before, sig)?);
            }
            End::Failed(failed) => {
                spinner.finish();
                checks.push(failed.result());
                return Err(self.step_failed(compose, &before, &failed, &checks)?);
            }
        }
        if !self.opts.wait {
            spinner.finish();
            return self.finish("started-no-wait", &checks);
        }
        self.wait_for_gate(compose, &before, &target, deadline, spinner, checks)
    }

    /// `--timeout`, else the pool's `gate_timeout`.
    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.opts
                .timeout
                .unwrap_or(self.pool.gate_timeout.as_secs()),
        )
    }

    /// The compose model of exactly what the slot runs, read by compose (and
    /// cached by the content of what it read); `None` when compose cannot
    /// read the files, which `compose up` then says.
    fn slot_model(&self, compose: &Compose) -> Option<crate::model::Model> {
        let cache = crate::pool::adopt::cache_dir(self.pool);
        crate::model::of_project(&|| Ok(compose.clone()), &self.project, &cache)
            .ok()
            .filter(|m| !m.services.is_empty())
    }

    /// Every bind source of the slot's model exists, or is a shared folder
    /// `up` makes (or lies in the slot's own folder): compose would make a
    /// missing one an empty folder owned by root, in the worktree for a
    /// relative path. Checked before anything is made or started.
    fn check_binds(&self, model: Option<&crate::model::Model>) -> Result<()> {
        let Some(model) = model else {
            return Ok(());
        };
        let mut missing = self.pool.missing_binds(model);
        // On an engine that sees the worktree elsewhere (`path_map`), a bind
        // of it names that path: the worktree's own file is the one to find.
        if let Some(on) = self.route.spec.mapped(self.worktree) {
            missing.retain(|m| match m.source.strip_prefix(&on) {
                Ok(rest) => !self.worktree.join(rest).exists(),
                Err(_) => true,
            });
        }
        if missing.is_empty() {
            return Ok(());
        }
        let slot = self.slot;
        let lines: Vec<String> = missing
            .iter()
            .map(|m| {
                format!(
                    "  service `{}` mounts `{}` at `{}`",
                    m.service,
                    crate::model::shown_source(&m.source, self.worktree),
                    m.target
                )
            })
            .collect();
        let what = if missing.len() == 1 {
            "a bind mount whose source does not exist"
        } else {
            "bind mounts whose sources do not exist"
        };
        Err(UserError::new(
            code::FAILURE,
            format!(
                "slot {slot}'s stack has {what} (compose would create it as an empty folder owned by root):\n{}",
                lines.join("\n")
            ),
        )
        .hint(format!(
            "create the missing file or folder in `{}` (or fix the mount in {}) and run `{} up` again; nothing was started",
            self.worktree.display(),
            self.pool.origin(),
            self.cmd
        ))
        .slot(slot)
        .json(MissingBindsJson {
            project: self.project.name.clone(),
            missing_binds: missing,
        })
        .into())
    }

    /// Every `after_up` step names a service of the slot's compose model,
    /// checked before anything starts. An adopted pool's model was checked
    /// when the pool was loaded; where compose could not give the model,
    /// the services it lists are asked for.
    fn check_after_up_services(&self, model: Option<&crate::model::Model>) -> Result<()> {
        let steps = &self.pool.after_up;
        if steps.is_empty() {
            return Ok(());
        }
        let slot = self.slot;
        let services: Vec<String> = match model {
            Some(m) => m.services.keys().cloned().collect(),
            None if self.pool.adopted().is_some() => return Ok(()),
            None => {
                let slot_dir = self.pool.slot_dir(slot);
                let Some(list) = super::status::model_services(self.ctx, &self.project, &slot_dir)
                else {
                    // Compose cannot read the files: `compose up` says why.
                    return Ok(());
                };
                list
            }
        };
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        let Some((number, service)) = crate::pool::adopt::unknown_service(steps, &names) else {
            return Ok(());
        };
        Err(UserError::new(
            code::FAILURE,
            format!(
                "[[after_up]] number {number} of {} runs in service `{service}`, which slot {slot}'s compose file `{}` does not have (it has {})",
                self.pool.origin(),
                self.project.file.display(),
                crate::pool::adopt::ticked(&names)
            ),
        )
        .hint(format!(
            "fix [[after_up]] in {} or the service's name in the compose file; nothing was started",
            self.pool.origin()
        ))
        .slot(slot)
        .into())
    }

    /// `compose up -d`; when it fails or a signal came, the stack is taken down.
    fn compose_up(
        &self,
        compose: &Compose,
        before: &BTreeSet<String>,
        interrupt: &Interrupt,
        stack: Option<&[crate::model::StackImage]>,
    ) -> Result<()> {
        let slot = self.slot;
        let mut args = vec!["up", "-d", "--remove-orphans"];
        if self.opts.build {
            args.push("--build");
        }
        let mut up = compose.command(&self.project, &args);
        output::note(&format!(
            "Starting slot {slot} with {}: {}",
            compose.describe(),
            compose::display(&up)
        ));
        let status = run_compose_up(&mut up, self.opts.verbose || output::stderr_is_terminal())?;
        // On a terminal, Ctrl-C reaches compose too, which then fails.
        if let Some(sig) = interrupt.signal() {
            return Err(self.interrupted(compose, before, sig)?);
        }
        if status.success() {
            return Ok(());
        }
        let taken = self.take_down(compose, before)?;
        let hint = self.compose_failed_hint(&compose::display(&up), stack);
        Err(UserError::new(
            code::FAILURE,
            format!(
                "`compose up` failed for slot {slot} ({status}); {}",
                taken.containers()
            ),
        )
        .hint(hint)
        .slot(slot)
        .into())
    }

    /// `--push-images` on another engine: the images of the stack that it
    /// lacks are copied there from the local engine, before anything starts.
    fn push_images_first(&self, stack: Option<&[crate::model::StackImage]>) -> Result<()> {
        match stack {
            Some(stack) if self.opts.push_images && !self.route.spec.is_local() => {
                super::push_images::before_up(&self.ctx.docker(), &self.route.spec, stack)
                    .map_err(|e| with_slot(e, self.slot))
            }
            _ => Ok(()),
        }
    }

    /// What to do after a failed `compose up` (`line`): on another engine
    /// that lacks images the local one has, copy them there, the likely cause.
    fn compose_failed_hint(
        &self,
        line: &str,
        stack: Option<&[crate::model::StackImage]>,
    ) -> String {
        let lacking = match stack {
            Some(stack) if !self.route.spec.is_local() => {
                super::push_images::lacking(&self.ctx.docker(), &self.route.spec, stack)
            }
            _ => Vec::new(),
        };
        let cmd = self.cmd;
        if lacking.is_empty() {
            return format!(
                "the claim is kept: fix the stack and run `{cmd} up` again. The command was: {line}"
            );
        }
        let names: Vec<String> = lacking.iter().map(|i| format!("`{i}`")).collect();
        format!(
            "engine `{engine}` lacks {images} that the local engine has: run `{cmd} push-images` (or `{cmd} up --push-images`) to copy {them} there; the claim is kept. The command was: {line}",
            engine = self.route.spec.name,
            images = names.join(", "),
            them = if names.len() == 1 { "it" } else { "them" },
        )
    }

    /// Runs the gate until it passes or the deadline passes; a stack that
    /// fails it is taken down. `checks` are the steps that ran before it.
    fn wait_for_gate(
        &self,
        compose: &Compose,
        before: &BTreeSet<String>,
        target: &gate::Target<'_>,
        deadline: Deadline,
        spinner: output::Spinner,
        mut checks: Vec<CheckResult>,
    ) -> Result<u8> {
        let slot = self.slot;
        let report = gate::run(target, deadline, |event| show(&spinner, event));
        spinner.finish();
        if let Some(sig) = target.interrupt.and_then(Interrupt::signal) {
            return Err(self.interrupted(compose, before, sig)?);
        }
        checks.extend(report.results.iter().cloned());
        if report.passed() {
            return self.finish("started", &checks);
        }
        print_failure(&report, compose, &self.project);
        let taken = self.take_down(compose, before)?;
        let failed = report.first_failure(target).unwrap_or_default();
        Err(UserError::new(
            GATE_FAILED,
            format!(
                "slot {slot} did not become ready: {failed}; {}",
                taken.stack()
            ),
        )
        .hint(format!(
            "the claim is kept: fix the cause above and run `{} up` again",
            self.cmd
        ))
        .slot(slot)
        .json(GateFailedJson {
            project: self.project.name.clone(),
            result: "gate-failed",
            seconds: self.start.elapsed().as_secs_f64(),
            checks: checks_json(&checks),
            failed_step: None,
        })
        .into())
    }

    /// Shows a failed `after_up` step and takes the stack down, as a failed
    /// gate does: the error `up` ends with.
    fn step_failed(
        &self,
        compose: &Compose,
        before: &BTreeSet<String>,
        failed: &Failed,
        checks: &[CheckResult],
    ) -> Result<anyhow::Error> {
        let slot = self.slot;
        let mut text = format!("  ✗ {}\n      → {}\n", failed.label, failed.detail);
        if let Some(command) = &failed.command {
            text.push_str(&format!("The command was: {command}\n"));
            if failed.output.is_empty() {
                text.push_str("It printed nothing.\n");
            } else {
                let cut = failed.output.len() >= after_up::TAIL;
                text.push_str(&format!(
                    "Its output{}:\n",
                    if cut {
                        format!(" (last {} lines)", after_up::TAIL)
                    } else {
                        String::new()
                    }
                ));
                for line in &failed.output {
                    text.push_str(&format!("    {line}\n"));
                }
            }
        } else {
            text.push_str(&log_lines(compose, &self.project, &failed.services));
        }
        output::note(text.trim_end());
        let taken = self.take_down(compose, before)?;
        Ok(UserError::new(
            GATE_FAILED,
            format!(
                "slot {slot} did not become ready: after_up step {} (`{}` in `{}`) failed: {}; {}",
                failed.number,
                failed.step.run.join(" "),
                failed.step.service,
                failed.detail,
                taken.stack()
            ),
        )
        .hint(format!(
            "the claim is kept: fix the cause above and run `{} up` again",
            self.cmd
        ))
        .slot(slot)
        .json(GateFailedJson {
            project: self.project.name.clone(),
            result: "gate-failed",
            seconds: self.start.elapsed().as_secs_f64(),
            checks: checks_json(checks),
            failed_step: Some(StepJson {
                number: failed.number,
                service: failed.step.service.clone(),
                run: failed.step.run.clone(),
                exit_code: failed.exit_code,
                detail: failed.detail.clone(),
                output: failed.output.clone(),
            }),
        })
        .into())
    }

    /// Takes the stack down after a signal: the error `up` ends with.
    fn interrupted(
        &self,
        compose: &Compose,
        before: &BTreeSet<String>,
        sig: i32,
    ) -> Result<anyhow::Error> {
        let taken = self.take_down(compose, before)?;
        Ok(UserError::new(
            interrupt_code(sig),
            format!(
                "`up` of slot {} was stopped by {}; {}",
                self.slot,
                interrupt::name(sig),
                taken.stack()
            ),
        )
        .hint(format!("the claim is kept: run `{} up` again", self.cmd))
        .slot(self.slot)
        .into())
    }

    /// Takes down what this `up` made and marks the slot stopped.
    fn take_down(&self, compose: &Compose, before: &BTreeSet<String>) -> Result<TakenDown> {
        let taken = take_down(
            compose,
            &self.project,
            self.engine,
            &self.claimed.owner,
            before,
        );
        mark(self.store, self.slot, "stopped")?;
        Ok(taken)
    }
}

/// Runs `compose up`. Its progress is for a terminal (or `--verbose`): in an
/// agent's log it is noise, and compose v5 prints it twice off a terminal.
/// Otherwise it is kept, and shown only when compose fails.
fn run_compose_up(up: &mut std::process::Command, show: bool) -> Result<std::process::ExitStatus> {
    let shown = compose::display(up);
    let failed_to_run = || format!("failed to run `{shown}`");
    up.stdin(Stdio::null());
    if show {
        // Compose's progress goes to stderr, keeping stdout for our result.
        return up
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .with_context(failed_to_run);
    }
    let out = up.output().with_context(failed_to_run)?;
    if !out.status.success() {
        const TAIL: usize = 40;
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(TAIL);
        output::note(&format!(
            "compose's output{}:\n{}",
            if from > 0 {
                format!(" (last {TAIL} lines)")
            } else {
                String::new()
            },
            lines[from..].join("\n")
        ));
    }
    Ok(out.status)
}

/// `compose down -v --remove-orphans`, quiet unless it fails; whatever it
/// leaves is removed by label afterwards.
pub(crate) fn compose_down(compose: &Compose, project: &Project) {
    run_down(compose, project, &["down", "-v", "--remove-orphans"]);
}

fn run_down(compose: &Compose, project: &Project, args: &[&str]) {
    let mut down = compose.command(project, args);
    match down.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => output::note(&format!(
            "warning: `{}` failed ({}); removing the project's resources directly\n{}",
            compose::display(&down),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )),
        Err(e) => output::note(&format!(
            "warning: could not run compose ({e}); removing the project's resources directly"
        )),
    }
}

/// Shows a wait's events on the spinner.
fn show(spinner: &output::Spinner, event: gate::Event<'_>) {
    match event {
        gate::Event::Passed(line) => spinner.line(line),
        gate::Event::Waiting(what) => spinner.set(what),
    }
}

fn checks_json(checks: &[CheckResult]) -> Vec<CheckJson> {
    checks
        .iter()
        .map(|r| {
            let (passed, detail) = match &r.outcome {
                Outcome::Passed(d) => (true, d.clone()),
                Outcome::Failed(d) => (false, d.clone()),
            };
            CheckJson {
                check: r.label.clone(),
                passed,
                detail,
            }
        })
        .collect()
}

/// The gate's report, and the last log lines of the services behind failures.
fn print_failure(report: &Report, compose: &Compose, project: &Project) {
    let mut text = format!(
        "Startability gate: FAILED after {:.1}s\n",
        report.elapsed.as_secs_f64()
    );
    for r in &report.results {
        match &r.outcome {
            Outcome::Passed(d) => text.push_str(&format!("  ✓ {} ({d})\n", r.label)),
            Outcome::Failed(d) => text.push_str(&format!("  ✗ {}\n      → {d}\n", r.label)),
        }
    }
    text.push_str(&log_lines(compose, project, &report.failing_services()));
    output::note(text.trim_end());
}

/// The last log lines of `services` (of all when empty), indented.
fn log_lines(compose: &Compose, project: &Project, services: &[String]) -> String {
    let mut args: Vec<&str> = vec!["logs", "--no-color", "--tail=15"];
    args.extend(services.iter().map(String::as_str));
    let logs = compose
        .command(project, &args)
        .stdin(Stdio::null())
        .output();
    let which = if services.is_empty() {
        "all services".to_owned()
    } else {
        services.join(", ")
    };
    let mut text = String::new();
    match logs {
        Ok(out) => {
            text.push_str(&format!("Last log lines ({which}):\n"));
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                text.push_str(&format!("    {line}\n"));
            }
        }
        Err(e) => text.push_str(&format!("(could not read the logs: {e})\n")),
    }
    text
}

/// What a failed `up` took down: the volumes it made went with the stack,
/// those that were there before it stayed.
struct TakenDown {
    /// Volumes removed; `None` when the removal did not finish.
    removed: Option<usize>,
    kept: Vec<String>,
}

impl TakenDown {
    /// `the stack was taken down ...`, for a failed gate or an interrupt.
    fn stack(&self) -> String {
        match (self.removed, self.kept.is_empty()) {
            (None, _) => "the stack was taken down, not completely (see the warning above)".into(),
            (Some(_), true) => "the stack was taken down with its volumes".into(),
            (Some(0), false) => "the stack was taken down; its volumes were kept".into(),
            (Some(_), false) => "the stack was taken down with the volumes this `up` created; \
                                 those that existed before were kept"
                .into(),
        }
    }

    /// `its containers ... were removed`, for a failed `compose up`.
    fn containers(&self) -> String {
        match (self.removed, self.kept.is_empty()) {
            (None, _) => {
                "its containers were removed, not completely (see the warning above)".into()
            }
            (Some(_), true) => "its containers and volumes were removed".into(),
            (Some(0), false) => "its containers were removed; its volumes were kept".into(),
            (Some(_), false) => "its containers and the volumes this `up` created were removed; \
                                 those that existed before were kept"
                .into(),
        }
    }
}

/// Leaves no half-started stack, and no loss: compose down without volumes,
/// then what is left of the project that is this registry's, with the
/// volumes that were not in `before` (the engine's volumes before this `up`
/// started anything). Another registry's resources of the same project name
/// are left alone.
fn take_down(
    compose: &Compose,
    project: &Project,
    engine: &Engine,
    owner: &Owner,
    before: &BTreeSet<String>,
) -> TakenDown {
    output::note(&format!("Taking down `{}`", project.name));
    // Asked before compose removes the containers: an anonymous volume is
    // known only by the container that mounts it.
    let earlier = engine.survey(&project.name, owner).unwrap_or_else(|e| {
        output::note(&format!(
            "warning: could not list the resources of `{}`: {e:#}",
            project.name
        ));
        Survey::default()
    });
    // Compose goes by the project's name alone: with another registry's
    // resources under that name, only ours are removed, one by one.
    if earlier.foreign.is_empty() {
        run_down(compose, project, &["down", "--remove-orphans"]);
    }
    match engine.remove_project_keeping(&project.name, owner, &earlier, before) {
        Ok((cleared, kept)) => {
            if !kept.is_empty() {
                let names: Vec<String> = kept.iter().map(|k| format!("`{k}`")).collect();
                output::note(&format!(
                    "Kept the volume(s) that existed before this `up`: {}",
                    names.join(", ")
                ));
            }
            if let Some(text) = describe_left_alone(&project.name, &cleared.left_alone) {
                output::note(&text);
            }
            TakenDown {
                removed: Some(cleared.removed.volumes),
                kept,
            }
        }
        Err(e) => {
            output::note(&format!(
                "warning: could not remove all of `{}`: {e:#}",
                project.name
            ));
            TakenDown {
                removed: None,
                kept: Vec::new(),
            }
        }
    }
}
