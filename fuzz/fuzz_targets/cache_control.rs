//! `Cache-Control`, `CDN-Cache-Control` and `Surrogate-Control`: any field
//! lines never panic and give bounded durations; names are read in any
//! case; several lines read as one joined with commas; directives written
//! from known values read back as those values in each of the three fields,
//! quoted strings (with obs-text or not) neither leaking nor hiding
//! directives.
//!
//! The input is text, one field line a line: `cdn-cache-control: ...` and
//! `surrogate-control: ...` lines are those fields, any other line is a
//! `Cache-Control` value. The same bytes, read as structured choices, give
//! the directives written from known values.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tower_tagged_cache::fuzzing::{Directives, cache_control, header_map, response_directives};

/// `delta-seconds` are capped at 2^31 (RFC 9111 §1.2.2).
const CAP: u64 = 1 << 31;

/// The largest integer a structured field holds (RFC 8941 §3.3.1).
const SF_MAX: u64 = 999_999_999_999_999;

/// Field lines, by field.
struct Input<'a> {
    cache_control: Vec<&'a [u8]>,
    cdn: Vec<&'a [u8]>,
    surrogate: Vec<&'a [u8]>,
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut input = Input {
            cache_control: Vec::new(),
            cdn: Vec::new(),
            surrogate: Vec::new(),
        };
        for line in data.split(|&b| b == b'\n') {
            if let Some(v) = line.strip_prefix(b"cdn-cache-control: ") {
                input.cdn.push(v);
            } else if let Some(v) = line.strip_prefix(b"surrogate-control: ") {
                input.surrogate.push(v);
            } else {
                input.cache_control.push(line);
            }
        }
        input
    }
}

#[derive(Debug, Arbitrary)]
struct Built {
    no_store: bool,
    no_cache: bool,
    private: bool,
    public: bool,
    must_revalidate: bool,
    proxy_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    /// A later duplicate `max-age` (the first counts in `Cache-Control`).
    duplicate_max_age: Option<u64>,
    /// Field names of a qualified `no-cache="..."`, quoted (they may look
    /// like directives; they must not be read as such).
    no_cache_fields: Vec<Token>,
    /// How the directives are ordered.
    rotate: u8,
    /// Spaces after the commas.
    spaced: bool,
}

#[derive(Debug, Arbitrary)]
enum Token {
    SetCookie,
    Private,
    MaxAge(u8),
    NoStore,
    Comma,
    Escaped,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::SetCookie => "set-cookie".into(),
            Token::Private => "private".into(),
            Token::MaxAge(n) => format!("max-age={n}"),
            Token::NoStore => "no-store".into(),
            Token::Comma => ",".into(),
            Token::Escaped => "a\\\"b, public".into(),
        }
    }
}

fn lines<'a>(name: &'a str, values: &'a [&'a [u8]]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    values.iter().map(move |v| (name, *v))
}

fn bounded(d: &Directives) -> bool {
    [d.s_maxage, d.max_age, d.min_fresh, d.stale_if_error]
        .into_iter()
        .flatten()
        .all(|s| s <= CAP)
        && d.max_stale.is_none_or(|s| s <= CAP || s == u64::MAX)
}

fn check_raw(input: &Input<'_>) {
    let headers = header_map(lines("cache-control", &input.cache_control));
    let cc = cache_control(&headers);
    assert!(bounded(&cc), "{cc:?}");

    // Directive names in any case.
    let upper: Vec<Vec<u8>> = input
        .cache_control
        .iter()
        .map(|l| l.to_ascii_uppercase())
        .collect();
    let upper_headers = header_map(upper.iter().map(|l| ("cache-control", &l[..])));
    assert_eq!(cache_control(&upper_headers), cc);

    // Lines that hold no quoted string read as one line.
    let plain = input.cache_control.iter().all(|l| {
        http::HeaderValue::from_bytes(l).is_ok() && !l.iter().any(|b| matches!(b, b'"' | b'\\'))
    });
    if plain {
        let joined = input.cache_control.join(&b", "[..]);
        let joined_headers = header_map([("cache-control", &joined[..])]);
        assert_eq!(
            cache_control(&joined_headers),
            cc,
            "{:?}",
            input.cache_control
        );
    }

    // Without a targeted field, a response's directives are its
    // Cache-Control.
    assert_eq!(response_directives(&headers), (cc.clone(), false));

    // With them, the targeted field wins when it is valid, else the next.
    let all = header_map(
        lines("cache-control", &input.cache_control)
            .chain(lines("cdn-cache-control", &input.cdn))
            .chain(lines("surrogate-control", &input.surrogate)),
    );
    let (d, targeted) = response_directives(&all);
    assert!(bounded(&d), "{d:?}");
    if !targeted {
        assert_eq!(d, cc);
    }
}

fn check_built(b: &Built) {
    let mut directives: Vec<String> = Vec::new();
    let flags = [
        (b.no_store, "no-store"),
        (b.no_cache && b.no_cache_fields.is_empty(), "no-cache"),
        (b.private, "private"),
        (b.public, "public"),
        (b.must_revalidate, "must-revalidate"),
        (b.proxy_revalidate, "proxy-revalidate"),
    ];
    for (on, name) in flags {
        if on {
            directives.push(name.to_owned());
        }
    }
    let max_age = b.max_age.map(|n| n.min(SF_MAX));
    let s_maxage = b.s_maxage.map(|n| n.min(SF_MAX));
    if let Some(n) = max_age {
        directives.push(format!("max-age={n}"));
    }
    if let Some(n) = s_maxage {
        directives.push(format!("s-maxage={n}"));
    }
    if !directives.is_empty() {
        let r = usize::from(b.rotate) % directives.len();
        directives.rotate_left(r);
    }
    let sep = if b.spaced { ", " } else { "," };
    let text = directives.join(sep);
    let expected = Directives {
        no_store: b.no_store,
        no_cache: b.no_cache && b.no_cache_fields.is_empty(),
        private: b.private,
        public: b.public,
        must_revalidate: b.must_revalidate,
        proxy_revalidate: b.proxy_revalidate,
        max_age: max_age.map(|n| n.min(CAP)),
        s_maxage: s_maxage.map(|n| n.min(CAP)),
        ..Directives::default()
    };

    // Cache-Control, with a later duplicate and a qualified no-cache.
    let mut cc_text = text.clone();
    let mut cc_expected = expected.clone();
    if let Some(n) = b.duplicate_max_age {
        cc_text = format!("{cc_text}{sep}max-age={n}");
        cc_expected.max_age = cc_expected.max_age.or(Some(n.min(CAP)));
    }
    if b.no_cache && !b.no_cache_fields.is_empty() {
        let fields: Vec<String> = b.no_cache_fields.iter().map(Token::text).collect();
        cc_text = format!("no-cache=\"{}\"{sep}{cc_text}", fields.join(", "));
        cc_expected.no_cache = true;
    }
    let headers = header_map([("cache-control", cc_text.as_bytes())]);
    assert_eq!(cache_control(&headers), cc_expected, "{cc_text:?}");
    // A quoted string may hold obs-text (RFC 9110 §5.6.4): it hides nothing.
    let mut obs_text = cc_text.clone().into_bytes();
    obs_text.extend_from_slice(b", ext=\"caf\xe9 \xff\"");
    let headers = header_map([("cache-control", &obs_text[..])]);
    assert_eq!(
        cache_control(&headers),
        cc_expected,
        "{cc_text:?} + obs-text"
    );

    if text.is_empty() {
        return;
    }
    // The same directives as CDN-Cache-Control (a structured dictionary)
    // and as Surrogate-Control replace a Cache-Control that says otherwise.
    for field in ["cdn-cache-control", "surrogate-control"] {
        let headers = header_map([
            ("cache-control", &b"no-store, private, max-age=1"[..]),
            (field, text.as_bytes()),
        ]);
        assert_eq!(
            response_directives(&headers),
            (expected.clone(), true),
            "{field}: {text:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_raw(&Input::new(data));
    if let Ok(built) = Built::arbitrary(&mut Unstructured::new(data)) {
        check_built(&built);
    }
});
