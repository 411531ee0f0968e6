//! Tag templates and tags: parsing any text never panics, a template that
//! parses renders exactly its literal text and values, templates written
//! from their pieces parse back to them, and tags' display and storage ids
//! round-trip and stay bounded and injective.
//!
//! The input is text, one field a line: a template (also parsed as a tag),
//! then values for its placeholders (the first two are also two instances
//! of the template's tag name). The same bytes, read as structured choices,
//! give the pieces of a template written under that name.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tower_tagged_cache::{Tag, TagTemplate, key::MAX_TAG_NAME_LEN};

#[derive(Debug, Arbitrary)]
enum Piece<'a> {
    Lit(&'a str),
    Param(&'a str),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TAG_NAME_LEN
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn valid_placeholder(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The value `values` gives placeholder `p` (the same for every use of a
/// name, so that rendering is a function of the name).
fn value_of<'a>(values: &[&'a str], p: &str) -> &'a str {
    if values.is_empty() {
        return "";
    }
    let h = p
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31) ^ usize::from(b));
    values[h % values.len()]
}

fn check_raw_template(raw: &str, values: &[&str]) {
    let Ok(t) = TagTemplate::parse(raw) else {
        return;
    };
    assert_eq!(t.as_str(), raw);
    let (name, rest) = raw.split_once(':').unwrap_or((raw, ""));
    assert!(valid_name(name), "{raw:?}: name {name:?} accepted");
    let placeholders: Vec<&str> = t.placeholders().collect();
    for p in &placeholders {
        assert!(valid_placeholder(p), "{raw:?}: placeholder {p:?}");
        assert!(rest.contains(&format!("{{{p}}}")), "{raw:?}: {p:?}");
    }
    // Rendering with every placeholder known gives the tag of that name.
    let tag = t
        .render(|p| Some(value_of(values, p)))
        .expect("every placeholder has a value");
    assert_eq!(tag.name(), name);
    // A template without placeholders renders its unescaped literal text.
    if placeholders.is_empty() {
        assert_eq!(tag.instance(), rest.replace("{{", "{").replace("}}", "}"));
    } else {
        assert!(t.render(|_| None).is_none());
    }
}

fn check_built_template(name: &str, pieces: &[Piece<'_>], values: &[&str]) {
    if name.contains(':') {
        return;
    }
    let mut text = name.to_owned();
    let mut expected = String::new();
    let mut params = Vec::new();
    if !pieces.is_empty() {
        text.push(':');
    }
    for piece in pieces {
        match piece {
            Piece::Lit(l) => {
                text.push_str(&l.replace('{', "{{").replace('}', "}}"));
                expected.push_str(l);
            }
            Piece::Param(p) => {
                text.push('{');
                text.push_str(p);
                text.push('}');
                expected.push_str(value_of(values, p));
                params.push(*p);
            }
        }
    }
    let parsed = TagTemplate::parse(&text);
    if params.iter().any(|p| p.contains(['{', '}'])) {
        // Not the template of these pieces.
        return;
    }
    let ok = valid_name(name) && params.iter().all(|p| valid_placeholder(p));
    match parsed {
        Ok(t) => {
            assert!(ok, "{text:?} accepted");
            assert_eq!(t.placeholders().collect::<Vec<_>>(), params, "{text:?}");
            let tag = t.render(|p| Some(value_of(values, p))).unwrap();
            assert_eq!((tag.name(), tag.instance()), (name, &*expected), "{text:?}");
        }
        Err(e) => {
            assert!(!ok, "{text:?} refused: {e}");
            // The error names the template.
            assert!(e.to_string().contains(&text), "{text:?}: {e}");
        }
    }
}

fn check_tag(raw: &str) {
    let Ok(tag) = raw.parse::<Tag>() else {
        return;
    };
    let (name, instance) = raw.split_once(':').unwrap_or((raw, ""));
    assert_eq!((tag.name(), tag.instance()), (name, instance));
    assert!(valid_name(name));
    let shown = tag.to_string();
    assert_eq!(shown.parse::<Tag>().as_ref(), Ok(&tag), "{raw:?}");
    assert_eq!(Tag::new(name, instance).as_ref(), Ok(&tag));
}

fn check_storage_ids(name: &str, (a, b): (&str, &str)) {
    let (Ok(ta), Ok(tb)) = (Tag::new(name, a), Tag::new(name, b)) else {
        return;
    };
    let (ia, ib) = (ta.storage_id(), tb.storage_id());
    // `Name:` then the instance, or `#` and 64 hex digits.
    assert!(ia.len() <= name.len() + 1 + 65, "{ia:?}");
    assert!(ia.starts_with(name) && ia[name.len()..].starts_with(':'));
    assert_eq!(ia == ib, a == b, "{a:?} and {b:?}: {ia:?} and {ib:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let raw = lines.next().unwrap_or("");
    let values: Vec<&str> = lines.collect();
    check_raw_template(raw, &values);
    check_tag(raw);
    let name = raw.split_once(':').map_or(raw, |(name, _)| name);
    if let Ok(pieces) = Vec::<Piece<'_>>::arbitrary(&mut Unstructured::new(data)) {
        check_built_template(name, &pieces, &values);
    }
    let instances = match values[..] {
        [a, b, ..] => (a, b),
        [a] => (a, ""),
        [] => ("", raw),
    };
    check_storage_ids(name, instances);
});
