//! Everything the user reads goes through here: result lines on stdout, notes
//! and errors on stderr, tables, JSON, and the colour rules (a terminal, and no
//! `NO_COLOR`). A closed pipe (`| head`) is not an error.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde::Serialize;

/// Whether stdout gets colour.
pub(crate) fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        && std::io::stdout().is_terminal()
}

/// Whether stderr is a terminal a person watches (not `TERM=dumb`).
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A result line on stdout.
pub(crate) fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Text on stdout, as it is.
pub(crate) fn text(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// A note on stderr: progress, warnings, waiting.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A value as pretty JSON on stdout.
pub(crate) fn json(value: &impl Serialize) {
    let text = serde_json::to_string_pretty(value).expect("output serialises");
    line(&text);
}

/// A tone for a table cell; colour is applied only when `color()` allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Plain,
    Good,
    Dim,
    Warn,
}

/// The width tables fit in on a terminal: `COLUMNS` when set, else the
/// terminal's; one that reports no width (0 columns, as some ptys of CI
/// runners and `script` do) gets 80. Off a terminal, tables do not wrap.
fn table_width(terminal: Option<u16>) -> Option<u16> {
    const FALLBACK: u16 = 80;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|&c| c > 0);
    Some(columns.or(terminal.filter(|&w| w > 0)).unwrap_or(FALLBACK))
}

/// A table with a header row, sized to the terminal when there is one.
pub(crate) fn table(headers: &[&str], rows: Vec<Vec<(String, Tone)>>) {
    let colored = color();
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .apply_modifier(comfy_table::modifiers::UTF8_ROUND_CORNERS)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().map(Cell::new));
    // Measured before colour is turned off: that also hides the terminal.
    if let Some(width) = table_width(t.width()) {
        t.set_width(width);
    }
    if !colored {
        t.force_no_tty();
    }
    for row in rows {
        t.add_row(row.into_iter().map(|(text, tone)| {
            let cell = Cell::new(text);
            match (colored, tone) {
                (true, Tone::Good) => cell.fg(Color::Green),
                (true, Tone::Dim) => cell.fg(Color::DarkGrey),
                (true, Tone::Warn) => cell.fg(Color::Yellow),
                _ => cell,
            }
        }));
    }
    line(&t.to_string());
}

/// Prints an error with its causes and hint, cargo style.
pub(crate) fn error(err: &anyhow::Error) {
    let colored = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal();
    let (red, yellow, reset) = if colored {
        ("\x1b[1;31m", "\x1b[1;33m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let mut text = format!("{red}error{reset}: {err}\n");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    if let Some(hint) = crate::error::user(err).and_then(|u| u.hint.as_ref()) {
        text.push_str(&format!("{yellow}hint{reset}: {hint}\n"));
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A failure with `--format json`: the JSON object on stdout for the script,
/// and the message on stderr for whoever reads the log.
pub(crate) fn error_json(err: &anyhow::Error) {
    error(err);
    line(&crate::error::to_json(err));
}

/// A usage error (clap's): its own text on stderr, and with `--format json`
/// the JSON object on stdout too.
pub(crate) fn usage_error(err: &clap::Error, as_json: bool) {
    let _ = err.print();
    if !as_json {
        return;
    }
    let rendered = err.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    json(&crate::error::JsonHead {
        error: message,
        hint: Some("`--help` shows the command's options"),
        exit_code: crate::error::code::USAGE,
        slot: None,
    });
}

/// A spinner line on stderr while something is awaited, on a terminal only;
/// elsewhere (a pipe, a log, CI) only the permanent lines are printed.
pub(crate) struct Spinner {
    live: Option<Live>,
}

/// The spinner's text, its stop flag and its drawing thread.
type Live = (
    Arc<Mutex<String>>,
    Arc<AtomicBool>,
    std::thread::JoinHandle<()>,
);

impl Spinner {
    pub(crate) fn start(text: &str) -> Spinner {
        if !stderr_is_terminal() {
            return Spinner { live: None };
        }
        let shown = Arc::new(Mutex::new(text.to_owned()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&shown), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let start = std::time::Instant::now();
            let mut i = 0;
            while !st.load(Ordering::Relaxed) {
                if let Ok(text) = s.lock() {
                    let _ = write!(
                        std::io::stderr().lock(),
                        "\r\x1b[2K{} {} ({}s)",
                        FRAMES[i % FRAMES.len()],
                        text,
                        start.elapsed().as_secs()
                    );
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(80));
            }
        });
        Spinner {
            live: Some((shown, stop, handle)),
        }
    }

    /// What is being waited for now; cut to fit one line of a narrow terminal,
    /// since a wrapped line cannot be redrawn in place.
    pub(crate) fn set(&self, text: &str) {
        const WIDTH: usize = 70;
        if let Some((shown, ..)) = &self.live
            && let Ok(mut t) = shown.lock()
        {
            *t = match text.char_indices().nth(WIDTH) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text.to_owned(),
            };
        }
    }

    /// A line that stays, printed above the spinner.
    pub(crate) fn line(&self, text: &str) {
        match &self.live {
            Some((shown, ..)) => {
                if let Ok(mut t) = shown.lock() {
                    let _ = writeln!(std::io::stderr().lock(), "\r\x1b[2K{text}");
                    "checking".clone_into(&mut t);
                }
            }
            None => note(text),
        }
    }

    pub(crate) fn finish(self) {
        if let Some((_, stop, handle)) = self.live {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}
