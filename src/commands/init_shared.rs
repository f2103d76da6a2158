//! `init-shared [--from PATH] [--minimal]`: the shared data folders every slot
//! mounts, created and filled from a checkout.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::commands::Ctx;
use crate::error::fail;
use crate::{fsutil, output, template, worktree};

#[derive(Default)]
struct Copied {
    files: usize,
    kept: usize,
}

pub(crate) fn exec(ctx: &Ctx, from: Option<PathBuf>, minimal: bool) -> Result<u8> {
    let pool = ctx.pool()?;
    let source = match (from, minimal) {
        (_, true) => None,
        (Some(p), false) => {
            let p = ctx.env.cwd.join(p);
            let p = p.canonicalize().unwrap_or(p);
            if !p.is_dir() {
                return Err(fail(
                    format!("--from `{}` is not a folder", p.display()),
                    "give the path of a checkout that has data/, models/ or strategies/",
                ));
            }
            Some(p)
        }
        (None, false) => worktree::find_top(&ctx.env.cwd),
    };
    for folder in &pool.shared_folders {
        let dst = pool.shared_dir.join(folder);
        let existed = dst.is_dir();
        fsutil::create_dir_all(&dst)?;
        let Some(src) = source
            .as_ref()
            .map(|s| s.join(folder))
            .filter(|s| s.is_dir())
        else {
            let what = if existed { "already there" } else { "created" };
            output::line(&format!("{}: {what}", dst.display()));
            continue;
        };
        let mut copied = Copied::default();
        copy_tree(&src, &dst, &mut copied)?;
        output::line(&format!(
            "{}: {} file(s) copied from `{}`, {} existing kept",
            dst.display(),
            copied.files,
            src.display(),
            copied.kept
        ));
    }
    let mounted = template::compose_text(&pool).is_ok_and(|t| mounts_shared(&pool, &t));
    let how = if mounted {
        "every slot mounts it".to_owned()
    } else {
        format!(
            "no slot mounts it: the pool's compose template uses neither `{{{{shared_dir}}}}` nor `${{{}_SHARED_DIR}}`",
            pool.prefix()
        )
    };
    output::line(&format!(
        "Shared data is in `{}`; {how}.",
        pool.shared_dir.display()
    ));
    Ok(0)
}

/// Whether a compose template uses the shared folder: through Handlebars, or
/// through the slot env file's `<PREFIX>_SHARED_DIR` or a folder's own
/// `<PREFIX>_<FOLDER>_DIR` (`KTRDR_DATA_DIR`), the prefix written out or as
/// `{{prefix}}`.
fn mounts_shared(pool: &crate::pool::Pool, template: &str) -> bool {
    let prefix = pool.prefix();
    let names = |var: &str| {
        template.contains(&format!("{prefix}_{var}"))
            || template.contains(&format!("prefix}}}}_{var}"))
    };
    template.contains("shared_dir")
        || names("SHARED_DIR")
        || pool.shared_folders.iter().any(|f| {
            let folder = f.to_ascii_uppercase().replace('-', "_");
            names(&format!("{folder}_DIR"))
        })
}

/// Copies `src` into `dst`, keeping files that exist there already.
fn copy_tree(src: &Path, dst: &Path, n: &mut Copied) -> Result<()> {
    for entry in
        std::fs::read_dir(src).with_context(|| format!("failed to read `{}`", src.display()))?
    {
        let entry = entry.with_context(|| format!("failed to read `{}`", src.display()))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        if from.is_dir() {
            fsutil::create_dir_all(&to)?;
            copy_tree(&from, &to, n)?;
        } else if to.exists() {
            n.kept += 1;
        } else {
            std::fs::copy(&from, &to).with_context(|| {
                format!("failed to copy `{}` to `{}`", from.display(), to.display())
            })?;
            n.files += 1;
        }
    }
    Ok(())
}
