//! `adopt [FILE...] [--slots N] [--dry-run] [--force]`: read a project's own
//! compose files with compose, derive each slot's ports, show them with every
//! warning, and write the `docker-sandbox.toml` that adopts the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::Format;
use crate::commands::Ctx;
use crate::error::fail;
use crate::fsutil;
use crate::model::{self, DerivedPorts, Model};
use crate::output::{self, Tone};
use crate::pool::{self, PROJECT_FILE, Pool, STANDARD_COMPOSE_FILES};
use crate::worktree;

/// What the command line asks for, as plain values.
pub(crate) struct Options {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) slots: u32,
    pub(crate) dry_run: bool,
    pub(crate) force: bool,
    pub(crate) format: Format,
}

/// `adopt --format json`: field names are part of the interface.
#[derive(Serialize)]
struct AdoptJson<'a> {
    pool: PoolJson<'a>,
    files: &'a [String],
    slots: Vec<SlotJson>,
    ports: Vec<PortJson<'a>>,
    warnings: Vec<String>,
    /// The project file written; `null` on a dry run.
    written: Option<&'a Path>,
}

#[derive(Serialize)]
struct PoolJson<'a> {
    name: &'a str,
    state_dir: &'a Path,
}

#[derive(Serialize)]
struct SlotJson {
    slot: u32,
    ports: BTreeMap<String, u16>,
}

#[derive(Serialize)]
struct PortJson<'a> {
    name: &'a str,
    service: &'a str,
    target: u16,
    protocol: &'a str,
    base: u16,
    stride: u32,
    env: &'a str,
}

/// A project's compose files read and its slot ports derived.
struct Adoption {
    top: PathBuf,
    files: Vec<String>,
    pool: Pool,
    ports: DerivedPorts,
    warnings: Vec<String>,
    /// The project file that adopts the files.
    text: String,
}

pub(crate) fn exec(ctx: &Ctx, opts: &Options) -> Result<u8> {
    let top = ctx.worktree()?;
    let path = top.join(PROJECT_FILE);
    let write_it = !opts.dry_run;
    if write_it && !opts.force && path.exists() {
        return Err(fail(
            format!("`{}` already exists", path.display()),
            format!(
                "run `{} adopt --force` to replace it, or `--dry-run` to see the ports",
                ctx.cmd_name()
            ),
        ));
    }
    let files = files(&top, &ctx.env.cwd, &opts.files)?;
    let adoption = adoption(ctx, top, files, opts.slots, opts.dry_run)?;
    let written = if write_it {
        fsutil::write_atomic(&path, adoption.text.as_bytes(), 0o644)?;
        Some(path.as_path())
    } else {
        None
    };
    if opts.format == Format::Json {
        print_json(&adoption, opts.slots, written);
    } else {
        print_table(&adoption, opts.slots, written);
    }
    Ok(0)
}

/// The files to adopt, relative to the top level: those given (relative to
/// the current folder), else the standard compose file there.
fn files(top: &Path, cwd: &Path, given: &[PathBuf]) -> Result<Vec<String>> {
    if given.is_empty() {
        let Some(found) = pool::standard_compose_file(top) else {
            return Err(fail(
                format!("no compose file at the top of `{}`", top.display()),
                format!(
                    "name the files to adopt (`adopt FILE...`), or add one of {}",
                    STANDARD_COMPOSE_FILES.join(", ")
                ),
            ));
        };
        return Ok(vec![found.to_owned()]);
    }
    given
        .iter()
        .map(|f| {
            let path = cwd.join(f);
            let path = path.canonicalize().map_err(|e| {
                fail(
                    format!("cannot read compose file `{}`: {e}", path.display()),
                    "name compose files that exist in this worktree",
                )
            })?;
            let inside = path.strip_prefix(top).map_err(|_| {
                fail(
                    format!(
                        "compose file `{}` is outside the worktree `{}`",
                        path.display(),
                        top.display()
                    ),
                    "a pool adopts files of the repository, so that each worktree has its own",
                )
            })?;
            Ok(inside.to_string_lossy().into_owned())
        })
        .collect()
}

/// Reads the model with compose, refuses what cannot be isolated, and makes
/// the project file.
fn adoption(
    ctx: &Ctx,
    top: PathBuf,
    files: Vec<String>,
    slots: u32,
    dry_run: bool,
) -> Result<Adoption> {
    let name = pool::name_from_folder(&worktree::main_top(&top));
    let bare = project_file(&name, &files, slots, None);
    let mut pool = pool::from_toml(&bare, None, &ctx.env)?;
    let model = read(ctx, &pool, &top, dry_run)?;
    let ports = model::derive_ports(&model, &pool.prefix(), slots)?;
    let external = pool.adopted().map(|a| a.external).unwrap_or_default();
    let analysis = model::analyse(&model, external, Some(&ports));
    if let Some(refusal) = analysis.refusals.first() {
        return Err(fail(
            format!("`{}` cannot be adopted: {refusal}", files.join("`, `")),
            "a sandbox needs its own network namespace per slot: change the service, or leave it out of the files to adopt",
        ));
    }
    let text = project_file(&name, &files, slots, Some(&ports));
    // What is written must load as the pool it describes.
    pool = pool::from_toml(&text, Some(&top.join(PROJECT_FILE)), &ctx.env)
        .context("the project file made for these compose files does not load")?;
    Ok(Adoption {
        top,
        files,
        pool,
        ports,
        warnings: analysis.warnings.iter().map(ToString::to_string).collect(),
        text,
    })
}

/// compose's model of the files in `top`, cached where the pool keeps its
/// models; a dry run reads that cache but writes nothing there.
fn read(ctx: &Ctx, pool: &Pool, top: &Path, dry_run: bool) -> Result<Model> {
    let files = pool::adopt::files_in(pool, top);
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(fail(
            format!("compose file `{}` does not exist", missing.display()),
            "name compose files that exist in this worktree",
        ));
    }
    let source = model::Source {
        project: &pool.name,
        directory: top,
        files: &files,
        env_files: &[],
        hidden: &[],
    };
    let cache = pool::adopt::cache_dir(pool);
    if !dry_run {
        return model::read(ctx.compose()?, &source, &cache);
    }
    if let Some(known) = model::cached(&source, &cache) {
        return Ok(known);
    }
    let scratch = tempfile::tempdir().context("failed to make a temporary folder")?;
    model::read(ctx.compose()?, &source, scratch.path())
}

/// The project file that adopts `files`: with the derived `[ports]` once
/// they are known.
fn project_file(name: &str, files: &[String], slots: u32, ports: Option<&DerivedPorts>) -> String {
    let quoted: Vec<String> = files.iter().map(|f| toml_string(f)).collect();
    let mut text = format!(
        "# Written by `docker sandbox adopt`: the pool that adopts this project's own\n\
         # compose files. Edit it as you need, and commit it so every clone shares it.\n\
         \n[pool]\nname = {}\ncompose = [{}]\n\n[slots]\n",
        toml_string(name),
        quoted.join(", ")
    );
    for id in 1..=slots {
        text.push_str(&format!("{id} = \"light\"\n"));
    }
    if let Some(derived) = ports {
        text.push_str("\n[ports]    # name = [base, stride]: slot N's port is base + stride * N\n");
        let rules: Vec<String> = derived
            .ports
            .iter()
            .map(|p| format!("{} = [{}, {}]", p.name, p.base, derived.stride))
            .collect();
        let width = rules.iter().map(String::len).max().unwrap_or(0);
        for (rule, p) in rules.iter().zip(&derived.ports) {
            text.push_str(&format!(
                "{rule:width$}    # service {}, container port {}/{}\n",
                p.service, p.target, p.protocol
            ));
        }
    }
    text
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Every slot's named ports.
fn slot_ports(ports: &DerivedPorts, slots: u32) -> Vec<(u32, Vec<(&str, u16)>)> {
    (1..=slots)
        .map(|id| {
            let list = ports
                .slot_ports(id)
                .into_iter()
                .map(|(p, n)| (p.name.as_str(), n))
                .collect();
            (id, list)
        })
        .collect()
}

fn print_json(a: &Adoption, slots: u32, written: Option<&Path>) {
    output::json(&AdoptJson {
        pool: PoolJson {
            name: &a.pool.name,
            state_dir: &a.pool.state_dir,
        },
        files: &a.files,
        slots: slot_ports(&a.ports, slots)
            .into_iter()
            .map(|(slot, list)| SlotJson {
                slot,
                ports: list.into_iter().map(|(n, p)| (n.to_owned(), p)).collect(),
            })
            .collect(),
        ports: a
            .ports
            .ports
            .iter()
            .map(|p| PortJson {
                name: &p.name,
                service: &p.service,
                target: p.target,
                protocol: &p.protocol,
                base: p.base,
                stride: a.ports.stride,
                env: &p.env,
            })
            .collect(),
        warnings: a.warnings.clone(),
        written,
    });
}

fn print_table(a: &Adoption, slots: u32, written: Option<&Path>) {
    output::line(&format!(
        "pool {} (adopted {})",
        a.pool.name,
        a.files.join(", ")
    ));
    if a.ports.ports.is_empty() {
        output::line("No published ports: the slots need no ports of their own.");
    } else {
        let mut headers = vec!["Slot"];
        headers.extend(a.ports.ports.iter().map(|p| p.name.as_str()));
        let rows = slot_ports(&a.ports, slots)
            .into_iter()
            .map(|(id, list)| {
                let mut row = vec![(id.to_string(), Tone::Plain)];
                row.extend(list.into_iter().map(|(_, n)| (n.to_string(), Tone::Plain)));
                row
            })
            .collect();
        output::table(&headers, rows);
    }
    for warning in &a.warnings {
        output::note(&format!("warning: {warning}"));
    }
    match written {
        Some(path) => output::line(&format!(
            "Wrote `{}`: edit it as you need, and commit it",
            path.display()
        )),
        None => output::line(&format!(
            "Dry run: `{}` not written",
            a.top.join(PROJECT_FILE).display()
        )),
    }
}
