//! `env [--format shell|json]`: the worktree's slot environment, for
//! `eval "$(docker sandbox env)"` and for scripts.

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::cli::EnvFormat;
use crate::commands::{Ctx, Held, held};
use crate::output;
use crate::slot::ENV_FILE;

/// The variables of the worktree's env file, in file order.
pub(crate) fn variables(held: &Held) -> Result<Vec<(String, String)>> {
    let path = held.worktree.join(ENV_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(crate::envfile::parse_env(&text))
}

/// The variables as a JSON object in the file's order; a key the file
/// repeats takes its last value, as compose reads it.
struct InFileOrder<'a>(&'a [(String, String)]);

impl serde::Serialize for InFileOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let last: HashMap<&str, usize> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.as_str(), i))
            .collect();
        s.collect_map(
            self.0
                .iter()
                .enumerate()
                .filter(|(i, (k, _))| last[k.as_str()] == *i)
                .map(|(_, (k, v))| (k, v)),
        )
    }
}

/// A value quoted for POSIX shells.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

pub(crate) fn exec(ctx: &Ctx, format: EnvFormat) -> Result<u8> {
    let held = held(ctx)?;
    let vars = variables(&held)?;
    match format {
        EnvFormat::Json => output::json(&InFileOrder(&vars)),
        EnvFormat::Shell => {
            let text: String = vars
                .iter()
                .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
                .collect();
            output::text(&text);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's $HOME"), "'it'\\''s $HOME'");
    }
}
