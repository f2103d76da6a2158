//! Ctrl-C (SIGINT) and SIGTERM while a command changes a stack: the first one
//! is noted, so that the command can undo what it started (a half-started
//! stack) and then exit; a second one ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Which signal arrived, once one has.
pub(crate) struct Interrupt {
    /// The number of the first signal; 0 until one arrives.
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// From now on, SIGINT and SIGTERM no longer end the process; the first
    /// is recorded and a second ends it with 128 + its number.
    pub(crate) fn watch() -> Result<Interrupt> {
        let seen = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            // Handlers run in the order they were registered: the shutdown
            // looks at the flag before the flag is set, so only a second
            // signal finds it set.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&seen))
                .and_then(|_| {
                    signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                })
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&seen)))
                .context("failed to install the signal handlers")?;
        }
        Ok(Interrupt { signal })
    }

    /// The signal that arrived, if one has.
    pub(crate) fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

/// The usual name of a signal this module watches.
pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
