//! Errors that decide an exit code or carry a hint. Everything else is a plain
//! `anyhow::Error` and exits with code 1.

use std::fmt;

/// Exit codes shared by every command. Command-specific codes are documented in
/// each command's `--help` and in the README.
pub(crate) mod code {
    pub(crate) const FAILURE: u8 = 1;
    /// A bad command line (EX_USAGE of sysexits.h), so that 2 can keep its
    /// meaning for `up`: the gate failed.
    pub(crate) const USAGE: u8 = 64;
}

/// An error the user can act on: a message, an optional hint, and the exit code.
#[derive(Debug)]
pub(crate) struct UserError {
    pub(crate) code: u8,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    /// The slot concerned, when one is: `--format json` reports it.
    pub(crate) slot: Option<u32>,
    /// More fields for the `--format json` error object, in order.
    pub(crate) json: Option<More>,
}

/// What every `--format json` error object starts with.
#[derive(serde::Serialize)]
pub(crate) struct JsonHead<'a> {
    /// The message with its causes, `: `-separated.
    pub(crate) error: String,
    pub(crate) hint: Option<&'a str>,
    pub(crate) exit_code: u8,
    pub(crate) slot: Option<u32>,
}

/// The head, then a command's own fields, in their declared order (a
/// `serde_json::Map` would sort them).
#[derive(serde::Serialize)]
struct WithMore<'a, T> {
    #[serde(flatten)]
    head: &'a JsonHead<'a>,
    #[serde(flatten)]
    more: &'a T,
}

type Render = dyn Fn(&JsonHead<'_>) -> String + Send + Sync;

/// A command's own fields of a JSON error, kept until it is printed.
pub(crate) struct More(Box<Render>);

impl fmt::Debug for More {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("More(..)")
    }
}

impl UserError {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
            slot: None,
            json: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn slot(mut self, slot: u32) -> Self {
        self.slot = Some(slot);
        self
    }

    /// Adds `value`'s fields (a struct's) to the JSON error, after the head.
    pub(crate) fn json<T: serde::Serialize + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.json = Some(More(Box::new(move |head| {
            serde_json::to_string_pretty(&WithMore { head, more: &value })
                .expect("output serialises")
        })));
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Shorthand for a code-1 error with a hint.
pub(crate) fn fail(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UserError::new(code::FAILURE, message).hint(hint).into()
}

/// Gives a user error another exit code (a command whose contract numbers the
/// same failure differently); other errors pass unchanged.
pub(crate) fn with_code(mut err: anyhow::Error, code: u8) -> anyhow::Error {
    if let Some(u) = err.downcast_mut::<UserError>() {
        u.code = code;
    }
    err
}

/// Names the slot a user error is about; other errors pass unchanged.
pub(crate) fn with_slot(mut err: anyhow::Error, slot: u32) -> anyhow::Error {
    if let Some(u) = err.downcast_mut::<UserError>() {
        u.slot.get_or_insert(slot);
    }
    err
}

/// Adds the field `key` (after those it has) to the JSON object of a user
/// error; other errors pass unchanged.
pub(crate) fn with_json_field<T: serde::Serialize + Send + Sync + 'static>(
    mut err: anyhow::Error,
    key: &'static str,
    value: T,
) -> anyhow::Error {
    if let Some(u) = err.downcast_mut::<UserError>() {
        let before = u.json.take();
        u.json = Some(More(Box::new(move |head| {
            let mut text = match &before {
                Some(More(render)) => render(head),
                None => serde_json::to_string_pretty(head).expect("output serialises"),
            };
            // A pretty object ends with "\n}"; the field goes before it,
            // indented one level.
            let field = serde_json::to_string_pretty(&value).expect("output serialises");
            text.truncate(text.len() - 2);
            text.push_str(&format!(
                ",\n  {key:?}: {}\n}}",
                field.replace('\n', "\n  ")
            ));
            text
        })));
    }
    err
}

/// The user error in `err`'s chain, if there is one.
pub(crate) fn user(err: &anyhow::Error) -> Option<&UserError> {
    // A user error given as context is found by `downcast_ref`, not in the chain.
    err.downcast_ref::<UserError>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<UserError>()))
}

/// The exit code `err` ends the program with.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    user(err).map_or(code::FAILURE, |u| u.code)
}

/// `err` as the `--format json` error object, pretty-printed.
pub(crate) fn to_json(err: &anyhow::Error) -> String {
    let user = user(err);
    let head = JsonHead {
        error: format!("{err:#}"),
        hint: user.and_then(|u| u.hint.as_deref()),
        exit_code: exit_code(err),
        slot: user.and_then(|u| u.slot),
    };
    match user.and_then(|u| u.json.as_ref()) {
        Some(More(render)) => render(&head),
        None => serde_json::to_string_pretty(&head).expect("output serialises"),
    }
}
