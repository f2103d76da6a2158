//! Errors that decide an exit code or carry a hint. Everything else is a plain
//! `anyhow::Error` and exits with code 1.

use std::fmt;

/// Exit codes shared by every command. Command-specific codes are documented in
/// each command's `--help` and in the README.
pub(crate) mod code {
    pub(crate) const FAILURE: u8 = 1;
}

/// An error the user can act on: a message, an optional hint, and the exit code.
#[derive(Debug)]
pub(crate) struct UserError {
    pub(crate) code: u8,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl UserError {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
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
