//! `create NAME [--branch B] [--profile P] [--slot N] [--up]`: a git worktree
//! beside the main checkout, with a slot claimed for it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::claim::{self, Want};
use crate::cli::Format;
use crate::commands::Ctx;
use crate::commands::claim_cmd::{ClaimJson, print_claim};
use crate::commands::up::{self, UpJson};
use crate::error::{UserError, code, with_code, with_json_field};
use crate::pool::{Environment, Profile};
use crate::slot::ENV_FILE;
use crate::{output, worktree};

pub(crate) const GIT_FAILED: u8 = 2;
pub(crate) const EXISTS: u8 = 3;

/// `create --format json`.
#[derive(Serialize)]
struct CreateJson {
    worktree: PathBuf,
    branch: String,
    new_branch: bool,
    claim: ClaimJson,
}

/// `create --up --format json`: the create fields, and `up` as `up` prints it.
#[derive(Serialize)]
struct WithUp<'a> {
    #[serde(flatten)]
    created: &'a CreateJson,
    up: &'a UpJson,
}

/// The create fields, also kept for an error of `up`.
struct Shared(std::sync::Arc<CreateJson>);

impl Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

pub(crate) struct Options {
    pub(crate) name: String,
    pub(crate) branch: Option<String>,
    pub(crate) engine: Option<String>,
    pub(crate) profile: Option<Profile>,
    pub(crate) slot: Option<u32>,
    pub(crate) up: bool,
    pub(crate) format: Format,
}

pub(crate) fn exec(ctx: &Ctx, opts: Options) -> Result<u8> {
    let (main, path) = new_worktree_path(ctx, &opts.name)?;
    let pool = ctx.pool()?;
    let store = ctx.store(&pool);
    let docker = ctx.docker();
    if let Some(r) = opts.engine.as_deref()
        && !pool.engines.iter().any(|e| e.name == r)
    {
        crate::engine::placement::candidates(&pool.engines, Some(r), &Default::default())?;
    }
    if pool.engines.len() == 1 || opts.engine.is_some() {
        ctx.route(&pool, opts.engine.as_deref())?.engine.ping()?;
    }
    let cmd = ctx.cmd_name();
    let want = Want {
        profile: opts.profile,
        slot: opts.slot,
    };
    // Nothing is created when no slot could be had. Seed 003 gives `create`
    // one code, 1, for "no slot" and "port conflict".
    claim::check_available(&pool, &store, &docker, opts.engine.as_deref(), want, &cmd)
        .map_err(|e| with_code(e, code::FAILURE))?;

    let branch = opts.branch.clone().unwrap_or_else(|| opts.name.clone());
    let new_branch = !worktree::branch_exists(&main, &branch);
    let path = add_worktree(&main, path, &branch, new_branch)?;
    let claimed = match claim::claim(
        &pool,
        &store,
        &docker,
        opts.engine.as_deref(),
        &path,
        want,
        &cmd,
    ) {
        Ok(c) => c,
        Err(e) => {
            // Undo the worktree, so a failed create leaves nothing behind.
            let _ = std::fs::remove_file(path.join(ENV_FILE));
            let _ = worktree::remove(&main, &path, true);
            if new_branch {
                let _ = worktree::delete_branch(&main, &branch);
            }
            return Err(with_code(e, code::FAILURE));
        }
    };
    let route = ctx.route(&pool, claimed.record.engine.as_deref())?;
    let created = CreateJson {
        worktree: path.clone(),
        branch: branch.clone(),
        new_branch,
        claim: ClaimJson::new(&pool, &claimed, &path, &route.host),
    };
    if opts.format == Format::Json && !opts.up {
        output::json(&created);
    } else if opts.format != Format::Json {
        let how = if new_branch { "new branch" } else { "branch" };
        output::line(&format!(
            "Created worktree `{}` on {how} `{branch}`",
            path.display()
        ));
        print_claim(&pool, &claimed, &path, &route);
    }
    if !opts.up {
        if opts.format != Format::Json {
            output::note(&format!("Next: cd {} && {cmd} up", path.display()));
        }
        return Ok(0);
    }
    up_there(ctx, &opts, created)
}

/// The main checkout, and the new worktree's path beside it:
/// `<repo>--<name>`, which must not exist yet.
fn new_worktree_path(ctx: &Ctx, name: &str) -> Result<(PathBuf, PathBuf)> {
    let here = ctx.worktree().map_err(|e| with_code(e, GIT_FAILED))?;
    let main =
        worktree::main_checkout(&here).map_err(|e| UserError::new(GIT_FAILED, format!("{e:#}")))?;
    let repo_name = main
        .file_name()
        .map_or_else(|| "repo".to_owned(), |n| n.to_string_lossy().into_owned());
    let parent = main.parent().unwrap_or(&main);
    let path = parent.join(format!("{repo_name}--{name}"));
    if path.exists() {
        return Err(
            UserError::new(EXISTS, format!("`{}` already exists", path.display()))
                .hint(format!(
                    "pick another name, or `cd` there and run `{} init`",
                    ctx.cmd_name()
                ))
                .into(),
        );
    }
    Ok((main, path))
}

/// `git worktree add`; the worktree's path as git made it.
fn add_worktree(main: &Path, path: PathBuf, branch: &str, new_branch: bool) -> Result<PathBuf> {
    worktree::add(main, &path, branch, new_branch).map_err(|e| {
        UserError::new(
            GIT_FAILED,
            format!("cannot create worktree `{}`: {e:#}", path.display()),
        )
        .hint("a branch can be checked out in one worktree only: give another with --branch")
    })?;
    Ok(path.canonicalize().unwrap_or(path))
}

/// `up` in the new worktree, with the create fields in its JSON object.
fn up_there(ctx: &Ctx, opts: &Options, created: CreateJson) -> Result<u8> {
    let there = Ctx::new(
        ctx.invocation.clone(),
        Environment {
            cwd: created.worktree.clone(),
            ..ctx.env.clone()
        },
    );
    let as_json = opts.format == Format::Json;
    let created = std::sync::Arc::new(created);
    let for_up = std::sync::Arc::clone(&created);
    up::exec(
        &there,
        up::Options {
            build: false,
            wait: true,
            timeout: None,
            profile: opts.profile,
            engine: None,
            format: opts.format,
            verbose: false,
            push_images: false,
            // One object: what was created, and how it was started.
            print_json: Some(Box::new(move |up| {
                output::json(&WithUp {
                    created: &for_up,
                    up,
                });
            })),
        },
    )
    // The worktree and its claim stay when `up` fails: a script learns of them.
    .map_err(|e| {
        if as_json {
            with_json_field(e, "create", Shared(created))
        } else {
            e
        }
    })
}
