//! Completion through docker: on `docker sandbox up --p<TAB>`, docker runs
//! `docker-sandbox __complete sandbox up --p` and hands the shell what this
//! prints: one candidate per line (a tab, then its description), then
//! `:DIRECTIVE`, cobra's completion protocol. Commands, flags and their fixed
//! values come from the clap definitions in `cli.rs`; slot numbers from the
//! caller, which reads the pool.

use clap::builder::ValueHint;
use clap::{Arg, Command};

/// cobra's directives: what the shell does besides offering the candidates.
const DEFAULT: u32 = 0;
const NO_FILE: u32 = 4;
const DIRS_ONLY: u32 = 16;

/// The answer to a completion request: `words` are the words typed after the
/// plugin's name, `current` the one being completed (may be empty).
pub(crate) fn answer(
    mut root: Command,
    words: &[String],
    current: &str,
    descriptions: bool,
    slots: &dyn Fn() -> Candidates,
) -> String {
    root.build();
    let ask = Ask { slots };
    let (candidates, directive) = ask.complete(&root, words, current);
    let mut out = String::new();
    for (value, help) in candidates {
        out.push_str(&value);
        if descriptions && let Some(help) = help.filter(|h| !h.is_empty()) {
            out.push('\t');
            out.push_str(&help);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Values, each with an optional description.
pub(crate) type Candidates = Vec<(String, Option<String>)>;

struct Ask<'a> {
    /// The pool's slots: for every argument named `slot`.
    slots: &'a dyn Fn() -> Candidates,
}

/// Where the words typed so far leave the command line.
struct Position<'c> {
    /// The innermost subcommand named.
    cmd: &'c Command,
    /// Positional arguments given to it.
    positionals: usize,
    /// After `--` or a trailing command: nothing more to complete.
    after_dashes: bool,
    /// A flag whose value the current word is.
    pending: Option<&'c Arg>,
}

fn walk<'c>(root: &'c Command, words: &[String]) -> Position<'c> {
    let mut cmd = root;
    let mut positionals = 0;
    let mut after_dashes = false;
    let mut pending: Option<&Arg> = None;
    for word in words {
        if pending.take().is_some() {
            continue; // the value of the flag before it
        }
        if after_dashes {
            positionals += 1;
            continue;
        }
        if word == "--" {
            after_dashes = true;
        } else if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') {
                pending = find_long(cmd, long).filter(|a| takes_value(a));
            }
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            // `-f`, `-t5`, `-t 5`: a short flag that takes a value ends the cluster.
            for (i, c) in shorts.char_indices() {
                if let Some(arg) = find_short(cmd, c).filter(|a| takes_value(a)) {
                    if i + c.len_utf8() == shorts.len() {
                        pending = Some(arg);
                    }
                    break;
                }
            }
        } else if let Some(sub) = (positionals == 0).then(|| find_sub(cmd, word)).flatten() {
            cmd = sub;
        } else {
            positionals += 1;
        }
        // A trailing command (`run -- CMD` or `run CMD`) takes everything after.
        if positionals > 0 && trailing(cmd).is_some() {
            after_dashes = true;
        }
    }
    Position {
        cmd,
        positionals,
        after_dashes,
        pending,
    }
}

impl Ask<'_> {
    fn complete(&self, root: &Command, words: &[String], current: &str) -> (Candidates, u32) {
        let Position {
            cmd,
            positionals,
            after_dashes,
            pending,
        } = walk(root, words);
        if let Some(arg) = pending {
            return self.values(arg, current, "");
        }
        if after_dashes {
            return (Vec::new(), DEFAULT);
        }
        if let Some((flag, value)) = current.strip_prefix("--").and_then(|c| c.split_once('=')) {
            return match find_long(cmd, flag) {
                Some(arg) => self.values(arg, value, &format!("--{flag}=")),
                None => (Vec::new(), NO_FILE),
            };
        }
        if current.starts_with('-') {
            let flags = cmd
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .filter_map(|a| {
                    let name = format!("--{}", a.get_long()?);
                    name.starts_with(current).then(|| (name, help(a)))
                })
                .collect();
            return (flags, NO_FILE);
        }
        let mut out: Candidates = Vec::new();
        if positionals == 0 {
            out.extend(
                cmd.get_subcommands()
                    .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
                    .map(|s| {
                        let about = s.get_about().map(|a| first_line(&a.to_string()));
                        (s.get_name().to_owned(), about)
                    }),
            );
        }
        let mut directive = NO_FILE;
        if let Some(arg) = cmd.get_positionals().nth(positionals) {
            let (more, d) = self.values(arg, current, "");
            out.extend(more);
            directive = d;
        }
        (out, directive)
    }

    /// The values a flag or positional takes: the pool's slots, its fixed
    /// choices, else the shell's own completion of paths or commands, else nothing.
    fn values(&self, arg: &Arg, current: &str, prefix: &str) -> (Candidates, u32) {
        if arg.get_id() == "slot" {
            let slots = (self.slots)()
                .into_iter()
                .filter(|(v, _)| v.starts_with(current))
                .map(|(v, help)| (format!("{prefix}{v}"), help))
                .collect();
            return (slots, NO_FILE);
        }
        let possible = arg.get_possible_values();
        if !possible.is_empty() {
            let choices = possible
                .into_iter()
                .filter(|v| !v.is_hide_set() && v.get_name().starts_with(current))
                .map(|v| {
                    let help = v.get_help().map(|h| first_line(&h.to_string()));
                    (format!("{prefix}{}", v.get_name()), help)
                })
                .collect();
            return (choices, NO_FILE);
        }
        match arg.get_value_hint() {
            ValueHint::DirPath => (Vec::new(), DIRS_ONLY),
            ValueHint::AnyPath | ValueHint::FilePath | ValueHint::CommandName => {
                (Vec::new(), DEFAULT)
            }
            _ => (Vec::new(), NO_FILE),
        }
    }
}

/// The positional that takes the rest of the line (`run`'s command).
fn trailing(cmd: &Command) -> Option<&Arg> {
    cmd.get_positionals()
        .find(|a| a.is_trailing_var_arg_set() || a.is_last_set())
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn find_long<'a>(cmd: &'a Command, long: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long))
    })
}

fn find_short(cmd: &Command, short: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(short))
}

fn find_sub<'a>(cmd: &'a Command, name: &str) -> Option<&'a Command> {
    cmd.get_subcommands()
        .find(|s| s.get_name() == name || s.get_all_aliases().any(|a| a == name))
}

fn help(arg: &Arg) -> Option<String> {
    arg.get_help().map(|h| first_line(&h.to_string()))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn ask(line: &[&str]) -> (Vec<String>, u32) {
        let (current, words) = line.split_last().unwrap();
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let slots = || {
            vec![
                ("1".to_owned(), None),
                ("12".to_owned(), None),
                ("2".to_owned(), None),
            ]
        };
        let text = answer(crate::cli::Cli::command(), &words, current, false, &slots);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let directive = lines.pop().unwrap();
        (lines, directive.trim_start_matches(':').parse().unwrap())
    }

    #[test]
    fn commands_flags_and_values() {
        let (cmds, d) = ask(&[""]);
        assert!(cmds.contains(&"up".to_owned()) && cmds.contains(&"release".to_owned()));
        assert_eq!(d, NO_FILE);
        assert_eq!(ask(&["pro"]).0, ["provision"]);
        let (flags, _) = ask(&["up", "--"]);
        for f in [
            "--build",
            "--no-wait",
            "--timeout",
            "--profile",
            "--format",
            "--help",
        ] {
            assert!(flags.contains(&f.to_owned()), "{f} in {flags:?}");
        }
        assert_eq!(
            ask(&["up", "--profile", ""]).0,
            ["light", "standard", "heavy"]
        );
        assert_eq!(ask(&["up", "--profile", "h"]).0, ["heavy"]);
        assert_eq!(ask(&["up", "--format=j"]).0, ["--format=json"]);
        assert_eq!(ask(&["completion", ""]).0, ["bash", "zsh", "fish"]);
        // After a flag and its value, the command's flags again.
        assert!(ask(&["up", "--timeout", "5", "--b"]).0 == ["--build"]);
        // A command to run is the shell's to complete.
        assert_eq!(ask(&["run", "--", ""]), (vec![], DEFAULT));
        assert_eq!(ask(&["run", "--", "make", "-"]), (vec![], DEFAULT));
        assert_eq!(ask(&["init-shared", "--from", ""]), (vec![], DIRS_ONLY));
        // Slot numbers come from the pool.
        assert_eq!(
            ask(&["release", "1"]),
            (vec!["1".to_owned(), "12".to_owned()], NO_FILE)
        );
        assert_eq!(ask(&["claim", "--slot", "2"]).0, ["2"]);
        assert_eq!(ask(&["init", "--slot=1"]).0, ["--slot=1", "--slot=12"]);
        // Nothing to offer is not an error.
        assert_eq!(ask(&["logs", ""]), (vec![], NO_FILE));
        assert_eq!(ask(&["nosuch", ""]).1, NO_FILE);
    }

    #[test]
    fn descriptions_follow_a_tab() {
        let none = Vec::new;
        let text = answer(crate::cli::Cli::command(), &[], "sl", true, &none);
        assert!(text.starts_with("slots\t"), "{text}");
        assert!(text.ends_with("\n:4\n"), "{text}");
        let bare = answer(crate::cli::Cli::command(), &[], "sl", false, &none);
        assert_eq!(bare, "slots\n:4\n");
    }
}
