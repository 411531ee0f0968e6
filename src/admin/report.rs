//! The text the admin service answers with: one `field: value` per line.

use std::{fmt::Write as _, time::Duration};

/// Lines of `field: value`, values escaped so that none spans two lines.
#[derive(Debug, Default)]
pub(super) struct Report(String);

impl Report {
    /// Adds `name: value`. Control characters of the value are escaped
    /// (`\n`, `\u{1b}`): values may hold bytes from requests and stores.
    pub(super) fn field(&mut self, name: &str, value: impl std::fmt::Display) {
        self.0.push_str(name);
        self.0.push_str(": ");
        let value = value.to_string();
        self.0.push_str(&escape(&value));
        self.0.push('\n');
    }

    pub(super) fn finish(self) -> String {
        self.0
    }
}

/// `s` with its control characters escaped as Rust escapes them.
pub(super) fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A version as one word: escaped, and its spaces too (a version is always
/// the last word of its line).
pub(super) fn word(s: &str) -> String {
    escape(s).replace(' ', "\\x20")
}

/// Seconds with milliseconds: `59.873s`.
pub(super) fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    let mut out = String::new();
    let _ = write!(out, "{}.{:03}s", ms / 1000, ms % 1000);
    out
}

/// Seconds with milliseconds, from milliseconds.
pub(super) fn secs_ms(ms: u64) -> String {
    secs(Duration::from_millis(ms))
}

/// A figure a store may not know.
pub(super) fn known(value: Option<u64>) -> String {
    value.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_field_whatever_the_value() {
        let mut r = Report::default();
        r.field("tag", "User:a\nb\u{1b}[31m");
        r.field("age", secs_ms(61_005));
        r.field("hits", known(Some(3)));
        r.field("keys", known(None));
        assert_eq!(
            r.finish(),
            "tag: User:a\\nb\\u{1b}[31m\nage: 61.005s\nhits: 3\nkeys: unknown\n"
        );
        assert_eq!(word("a b\tc"), "a\\x20b\\tc");
        assert_eq!(secs(Duration::from_micros(999)), "0.000s");
    }
}
