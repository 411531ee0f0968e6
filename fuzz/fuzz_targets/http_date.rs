//! HTTP dates: any bytes never panic; a date that parses is whole seconds
//! and reads the same once written again as an IMF-fixdate; whatever
//! `httpdate` (strict) accepts reads the same here; and any time written in
//! each of the three formats (any case, any weekday name) reads back as
//! itself.
//!
//! The input is the text of a date. The same bytes, read as structured
//! choices, give the time written in the three formats.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tower_tagged_cache::fuzzing::http_date;

/// 9999-12-31T23:59:59Z: the last second an IMF-fixdate can write.
const LAST_SECOND: u64 = 253_402_300_799;

#[derive(Debug, Arbitrary)]
struct Written {
    secs: u64,
    /// Which letters are written in upper case (bit i: letter i, cycling).
    case: u32,
    /// Shifts the weekday name (never checked against the date).
    weekday_shift: u8,
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn imf_fixdate(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The same time in the three formats of RFC 9110 §5.6.7 (RFC 850 only for
/// the years its two digits read back: 1970 to 2069).
fn formats(secs: u64, weekday_shift: u8) -> Vec<String> {
    let imf = imf_fixdate(secs);
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (wd, rest) = imf.split_once(", ").unwrap();
    let f: Vec<&str> = rest.split(' ').collect();
    let (day, month, year, time) = (f[0], f[1], f[2], f[3]);
    let i = SHORT_DAYS.iter().position(|d| *d == wd).unwrap();
    let i = (i + usize::from(weekday_shift)) % 7;
    let (short, long) = (SHORT_DAYS[i], LONG_DAYS[i]);
    let mut out = vec![
        format!("{short}, {day} {month} {year} {time} GMT"),
        format!(
            "{short} {month} {:>2} {time} {year}",
            day.trim_start_matches('0')
        ),
        format!("{short} {month} {day} {time} {year}"),
    ];
    let y: u32 = year.parse().unwrap();
    if (1970..2070).contains(&y) {
        out.push(format!("{long}, {day}-{month}-{:02} {time} GMT", y % 100));
    }
    out
}

fn recase(text: &str, case: u32) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if case >> (i % 32) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let parsed = http_date(data);
    if let Some(ms) = parsed {
        assert_eq!(ms % 1000, 0);
        let secs = ms / 1000;
        if secs <= LAST_SECOND {
            let again = imf_fixdate(secs);
            assert_eq!(http_date(again.as_bytes()), Some(ms), "{again}");
        }
    }
    // What the strict parser reads from a field value (visible text and
    // spaces, trimmed), this one reads the same.
    if let Ok(text) = std::str::from_utf8(data)
        && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && text.trim() == text
        && let Ok(t) = httpdate::parse_http_date(text)
    {
        let ms = t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        // httpdate does not check the space between an RFC 850 date and
        // its time; this parser does.
        let lax_rfc850 = text
            .split_once(", ")
            .is_some_and(|(_, rest)| rest.len() == 22 && rest.as_bytes()[9] != b' ');
        if !lax_rfc850 {
            assert_eq!(parsed.map(u128::from), Some(ms), "{text:?}");
        }
    }

    let Ok(w) = Written::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let secs = w.secs % (LAST_SECOND + 1);
    for text in formats(secs, w.weekday_shift) {
        let text = recase(&text, w.case);
        assert_eq!(http_date(text.as_bytes()), Some(secs * 1000), "{text:?}");
        // Anything but one space between the fields is not a date.
        assert_eq!(
            http_date(text.replacen(' ', "  ", 1).as_bytes()),
            None,
            "{text:?}"
        );
    }
});
