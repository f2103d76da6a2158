//! `push-images [--engine NAME | --all] [--format json]`: copies the images
//! this worktree's slot needs from the local engine to an engine that lacks
//! them (`docker save | docker load`), for engines that share no registry;
//! `up --push-images` does the same before it starts the stack.

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;
use crate::commands::{Ctx, held};
use crate::compose::Project;
use crate::engine::images::{self, Image};
use crate::engine::{Docker, EngineSpec};
use crate::error::{UserError, code, fail};
use crate::model::{self, StackImage};
use crate::output;
use crate::pool::Pool;

pub(crate) struct Options {
    pub(crate) engine: Option<String>,
    pub(crate) all: bool,
    pub(crate) format: Format,
}

/// `push-images --format json`, and the fields a failure's error object adds.
#[derive(Serialize)]
struct PushJson {
    slot: u32,
    project: String,
    engines: Vec<EngineJson>,
}

#[derive(Serialize)]
struct EngineJson {
    engine: String,
    images: Vec<Pushed>,
}

/// What became of one image of the stack on one engine.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Pushed {
    image: String,
    services: Vec<String>,
    result: Outcome,
    /// Its size on the local engine, in bytes, when it is there.
    size: Option<u64>,
    /// How long the copy took.
    seconds: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Outcome {
    /// The engine had no image of that name; it has the local one now.
    Copied,
    /// The engine had another image of that name (another ID); it has the
    /// local one now.
    Replaced,
    /// The engine has the local image (the same ID).
    AlreadyThere,
    /// A service builds it, and it is not on the local engine either:
    /// compose builds it on the engine, from the build context it streams.
    BuiltOnEngine,
    /// Named by digest (`name@sha256:...`), and not on the engine: `docker
    /// load` gives an image no digest, so only a registry can (compose pulls
    /// it there).
    Pinned,
    /// Neither built by the stack nor on the local engine.
    Missing,
}

impl Pushed {
    /// The table's words for it.
    fn describe(&self, engine: &str) -> String {
        let size = self.size.map(images::human_size).unwrap_or_default();
        let seconds = self.seconds.unwrap_or_default();
        match self.result {
            Outcome::Copied => format!("copied ({size} in {seconds:.1}s)"),
            Outcome::Replaced => format!(
                "copied ({size} in {seconds:.1}s), replacing another image of that name on `{engine}`"
            ),
            Outcome::AlreadyThere => "already there".to_owned(),
            Outcome::BuiltOnEngine => format!(
                "skipped: built by compose on `{engine}` ({} has `build:`)",
                services(&self.services)
            ),
            Outcome::Pinned => format!(
                "skipped: a digest reference, which `docker load` cannot give `{engine}` (compose pulls it there)"
            ),
            Outcome::Missing => "missing on the local engine".to_owned(),
        }
    }
}

pub(crate) fn exec(ctx: &Ctx, opts: Options) -> Result<u8> {
    let held = held(ctx)?;
    let pool = &held.pool;
    let targets = targets(pool, &held.record, &opts)?;
    let project = held.project();
    let stack = stack_images(ctx, pool, &project)?;
    let base = ctx.docker();
    let mut report = PushJson {
        slot: held.slot(),
        project: project.name.clone(),
        engines: Vec::new(),
    };
    for target in &targets {
        let pushed = push(&base, target, &stack)?;
        if opts.format == Format::Table {
            print_table(target, &pushed);
        }
        report.engines.push(EngineJson {
            engine: target.name.clone(),
            images: pushed,
        });
    }
    let missing: Vec<&Pushed> = report
        .engines
        .iter()
        .flat_map(|e| &e.images)
        .filter(|p| p.result == Outcome::Missing)
        .collect();
    if let Some(err) = missing_error(ctx, &missing, held.slot()) {
        return Err(err.json(report).into());
    }
    if opts.format == Format::Json {
        output::json(&report);
    }
    Ok(0)
}

/// The engines to copy to: `--all` the pool's engines but the local one,
/// `--engine` the one it names, else the engine of the slot's claim.
fn targets(
    pool: &Pool,
    record: &crate::registry::SlotRecord,
    opts: &Options,
) -> Result<Vec<EngineSpec>> {
    let names = || {
        pool.engines
            .iter()
            .map(|e| format!("`{}`", e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if opts.all {
        let others: Vec<EngineSpec> = pool
            .engines
            .iter()
            .filter(|e| !e.is_local())
            .cloned()
            .collect();
        if others.is_empty() {
            return Err(fail(
                "--all: the pool names no engine but the local one, which has the images",
                format!(
                    "add `[engines.NAME] context = \"...\"` to {} to run slots on another engine",
                    pool.origin()
                ),
            ));
        }
        return Ok(others);
    }
    if let Some(name) = &opts.engine {
        return match pool.engines.iter().find(|e| &e.name == name) {
            Some(e) => Ok(vec![e.clone()]),
            None => Err(fail(
                format!(
                    "--engine `{name}` is not one of the pool's engines: {}",
                    names()
                ),
                "name one of them, or add `[engines.NAME] context = \"...\"` to the project file",
            )),
        };
    }
    Ok(vec![
        crate::engine::placement::find(&pool.engines, record.engine.as_deref())?.clone(),
    ])
}

/// The images of the slot's compose model, as compose reads its files.
fn stack_images(ctx: &Ctx, pool: &Pool, project: &Project) -> Result<Vec<StackImage>> {
    let cache = crate::pool::adopt::cache_dir(pool);
    let model = model::of_project(&|| ctx.compose().cloned(), project, &cache)?;
    Ok(model::stack_images(&model, &model::active_profiles()))
}

/// Copies to `target` each image of `stack` that it lacks (or has under
/// another ID), from the local engine. Every image is looked up on both
/// engines at the same time; the copies run one after the other.
pub(crate) fn push(
    base: &Docker,
    target: &EngineSpec,
    stack: &[StackImage],
) -> Result<Vec<Pushed>> {
    let local = EngineSpec::local().docker(base);
    let remote = target.docker(base);
    let found = look_up(&local, &remote, target, stack)?;
    let mut pushed = Vec::new();
    for (wanted, (here, there)) in stack.iter().zip(found) {
        let mut entry = Pushed {
            image: wanted.image.clone(),
            services: wanted.services.clone(),
            result: Outcome::AlreadyThere,
            size: here.as_ref().map(|i| i.size),
            seconds: None,
        };
        match (here, there) {
            (None, _) if wanted.built => entry.result = Outcome::BuiltOnEngine,
            (None, _) => entry.result = Outcome::Missing,
            (Some(h), Some(t)) if h.id == t.id => {}
            (Some(_), _) if by_digest(&wanted.image) => entry.result = Outcome::Pinned,
            (Some(h), there) => {
                output::note(&format!(
                    "Copying `{}` ({}) to engine `{}`: {}",
                    wanted.image,
                    images::human_size(h.size),
                    target.name,
                    images::copy_line(&local, &remote, &wanted.image)
                ));
                let took = images::copy(&local, &remote, &wanted.image)?;
                check_loaded(&remote, target, &wanted.image, &h)?;
                entry.seconds = Some(took.as_secs_f64());
                entry.result = if there.is_some() {
                    Outcome::Replaced
                } else {
                    Outcome::Copied
                };
            }
        }
        pushed.push(entry);
    }
    Ok(pushed)
}

/// `name@sha256:...`: an image named by its registry digest.
fn by_digest(image: &str) -> bool {
    image.contains('@')
}

type Found = (Option<Image>, Option<Image>);

/// Each image on the local engine and on `target` (asked once for the local
/// engine itself).
fn look_up(
    local: &Docker,
    remote: &Docker,
    target: &EngineSpec,
    stack: &[StackImage],
) -> Result<Vec<Found>> {
    std::thread::scope(|s| {
        let asks: Vec<_> = stack
            .iter()
            .map(|wanted| {
                let here = s.spawn(|| images::inspect(local, crate::engine::LOCAL, &wanted.image));
                let there = (!target.is_local())
                    .then(|| s.spawn(|| images::inspect(remote, &target.name, &wanted.image)));
                (here, there)
            })
            .collect();
        asks.into_iter()
            .map(|(here, there)| {
                let joined = |h: std::thread::ScopedJoinHandle<'_, Result<Option<Image>>>| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("the image query panicked")))
                };
                let here = joined(here)?;
                let there = match there {
                    Some(h) => joined(h)?,
                    None => here.clone(),
                };
                Ok((here, there))
            })
            .collect()
    })
}

/// After `docker load` the engine has the image under its name, with the
/// local ID; another ID (an engine with another image store) is said, since
/// the next run will copy it again.
fn check_loaded(remote: &Docker, target: &EngineSpec, image: &str, local: &Image) -> Result<()> {
    match images::inspect(remote, &target.name, image)? {
        Some(t) if t.id == local.id => Ok(()),
        Some(t) => {
            output::note(&format!(
                "warning: engine `{}` gives `{image}` the ID `{}` after loading it, not the local `{}`: its image store differs, and each run copies it again",
                target.name, t.id, local.id
            ));
            Ok(())
        }
        None => Err(fail(
            format!(
                "`docker load` on engine `{}` succeeded, but the engine has no image `{image}` after it",
                target.name
            ),
            "look at the engine's images (`docker --context NAME image ls`)",
        )),
    }
}

fn print_table(target: &EngineSpec, pushed: &[Pushed]) {
    let context = target
        .context
        .as_deref()
        .map_or_else(String::new, |c| format!(" (context `{c}`)"));
    output::line(&format!("Engine `{}`{context}:", target.name));
    if pushed.is_empty() {
        output::line("  the stack names no image");
    }
    let width = pushed.iter().map(|p| p.image.len()).max().unwrap_or(0);
    for p in pushed {
        output::line(&format!(
            "  {:<width$}  {}",
            p.image,
            p.describe(&target.name)
        ));
    }
}

/// The error for images the local engine lacks, naming each and its services.
fn missing_error(ctx: &Ctx, missing: &[&Pushed], slot: u32) -> Option<UserError> {
    let first = missing.first()?;
    let mut seen: Vec<&Pushed> = Vec::new();
    for p in missing {
        if !seen.iter().any(|s| s.image == p.image) {
            seen.push(p);
        }
    }
    let lines: Vec<String> = seen
        .iter()
        .map(|p| format!("  `{}` of {}", p.image, services(&p.services)))
        .collect();
    Some(
        UserError::new(
            code::FAILURE,
            format!(
                "the local engine has no image to copy for:\n{}",
                lines.join("\n")
            ),
        )
        .hint(format!(
            "build it (`docker compose build`, `docker build -t {0} .`) or pull it (`docker pull {0}`), then run `{1} push-images` again",
            first.image,
            ctx.cmd_name()
        ))
        .slot(slot),
    )
}

/// ``service `a` `` or ``services `a`, `b` ``.
fn services(names: &[String]) -> String {
    let ticked: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match ticked.len() {
        1 => format!("service {}", ticked[0]),
        _ => format!("services {}", ticked.join(", ")),
    }
}

/// `up --push-images`: copies what `target` lacks before compose starts the
/// stack; an image the local engine lacks too is left to compose (which may
/// pull it there), with a warning.
pub(crate) fn before_up(base: &Docker, target: &EngineSpec, stack: &[StackImage]) -> Result<()> {
    for p in push(base, target, stack)? {
        if p.result == Outcome::Missing {
            output::note(&format!(
                "warning: `{}` is not on the local engine either: compose pulls it on `{}` if it can",
                p.image, target.name
            ));
        }
    }
    Ok(())
}

/// The images of `stack` the local engine has and `target` lacks (or has
/// under another ID): after a failed `compose up` on another engine, the
/// likely cause. Empty when an engine cannot be asked.
pub(crate) fn lacking(base: &Docker, target: &EngineSpec, stack: &[StackImage]) -> Vec<String> {
    let local = EngineSpec::local().docker(base);
    let remote = target.docker(base);
    let Ok(found) = look_up(&local, &remote, target, stack) else {
        return Vec::new();
    };
    stack
        .iter()
        .zip(found)
        .filter(|(wanted, (here, there))| {
            !by_digest(&wanted.image)
                && here
                    .as_ref()
                    .is_some_and(|h| there.as_ref().is_none_or(|t| t.id != h.id))
        })
        .map(|(w, _)| w.image.clone())
        .collect()
}
