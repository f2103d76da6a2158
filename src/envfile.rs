//! The env-file syntax that compose v2 and 1.29 read alike: how a value is
//! written (`quote_env`), which values cannot be (`env_value_problem`), and
//! how a file's text is read back (`parse_env`). It touches no file.

/// A value as an env file line must hold it so that compose v2 and 1.29 both
/// read it back exactly. Compose v2 interpolates `$` in unquoted and
/// double-quoted values and cuts unquoted ones at ` #`; both versions take a
/// single-quoted value literally, except `\'` (a quote) and, in 1.29 only,
/// `\\`. So: plain values as they are, everything else in single quotes.
pub(crate) fn quote_env(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+,=".contains(c);
    if value.chars().all(plain) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "\\'"))
}

/// Why `value` cannot be written so that both compose versions read it alike:
/// a backslash before a backslash or a quote, or at the end.
pub(crate) fn env_value_problem(value: &str) -> Option<&'static str> {
    let bytes = value.as_bytes();
    let bad = bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\\' && matches!(bytes.get(i + 1), None | Some(b'\\' | b'\'')));
    bad.then_some(
        "a backslash before another backslash or a quote, or at the end, is read differently by compose v2 and 1.29",
    )
}

/// A template's env output with every `KEY=value` value quoted by
/// `quote_env`; a value the template quoted itself is left as written.
pub(crate) fn quote_env_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let t = body.trim_start();
        match body.split_once('=') {
            Some((key, value)) if !t.starts_with('#') && valid_key(key) && !self_quoted(value) => {
                out.push_str(key);
                out.push('=');
                out.push_str(&quote_env(value));
            }
            _ => out.push_str(body),
        }
        out.push_str(end);
    }
    out
}

fn valid_key(key: &str) -> bool {
    let k = key.trim().trim_start_matches("export ").trim();
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn self_quoted(value: &str) -> bool {
    let v = value.as_bytes();
    v.len() >= 2 && matches!(v[0], b'\'' | b'"') && v[v.len() - 1] == v[0]
}

/// An env file value as compose reads it: quotes taken off, `\'` (single)
/// or `\"` and `\\` (double) undone; an unquoted value as it stands.
fn unquote(raw: &str) -> String {
    let quote = match raw.as_bytes().first() {
        Some(q @ (b'\'' | b'"')) => *q as char,
        _ => return raw.to_owned(),
    };
    let mut out = String::new();
    let mut chars = raw[1..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n == quote || (quote == '"' && n == '\\') => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            c if c == quote => break,
            c => out.push(c),
        }
    }
    out
}

/// The variables of an env file's text, in file order: `KEY=value` lines
/// (`export KEY=value` too), comments and blank lines skipped, quoted values
/// read as compose reads them.
pub(crate) fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().trim_start_matches("export ").trim().to_owned(),
                unquote(v),
            )
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_and_others_are_single_quoted() {
        assert_eq!(quote_env("abc-1.2:3/x@y%z+w,v=u"), "abc-1.2:3/x@y%z+w,v=u");
        assert_eq!(quote_env(""), "");
        assert_eq!(quote_env("a b$c#d"), "'a b$c#d'");
        assert_eq!(quote_env("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(quote_env("a\\b"), "'a\\b'");
    }

    #[test]
    fn quoted_values_read_back_as_written() {
        for v in [
            "a b$c#d",
            "it's \"x\" $HOME",
            "",
            "plain",
            "  pad  ",
            "a\\b",
            "é ü",
            "'",
        ] {
            let text = format!("K={}\n", quote_env(v));
            assert_eq!(parse_env(&text), [("K".to_owned(), v.to_owned())], "{text}");
        }
    }

    #[test]
    fn template_lines_are_quoted_unless_quoted_already() {
        let text = "# c $x\nA=plain\nB=a b\nC=\"kept as is\"\n\nnot a line\nD=x$y";
        assert_eq!(
            quote_env_text(text),
            "# c $x\nA=plain\nB='a b'\nC=\"kept as is\"\n\nnot a line\nD='x$y'"
        );
    }

    #[test]
    fn backslashes_compose_reads_two_ways_are_found() {
        assert!(env_value_problem("a\\b $c").is_none());
        assert!(env_value_problem("a\\\\b").is_some());
        assert!(env_value_problem("a\\'b").is_some());
        assert!(env_value_problem("end\\").is_some());
    }
}
