//! Route patterns and the rule table: any pattern, tag templates and path
//! never panic; a rule that compiles matches the paths its pattern
//! describes, with the parameters its templates were checked against and
//! every tag rendered; `unmatched` agrees with the router; a write rule
//! always joins a cache rule of the same pattern.
//!
//! The input is text, one field a line: a rule's pattern, a second rule's
//! pattern, a request path, then the first rule's tag templates. The path's
//! segments also fill the first pattern's parameters.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use tower_tagged_cache::{
    CacheRule, Rule, WriteRule,
    fuzzing::{RouteMatch, Routes},
};

/// A path that `pattern` matches, its parameters filled from `values`
/// (percent-encoded whole), with the values in order; `None` when the
/// pattern is not well formed.
fn fill(pattern: &str, values: &[&str]) -> Option<(String, Vec<String>)> {
    let mut path = String::new();
    let mut filled = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                path.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                path.push('}');
            }
            '{' => {
                // To the first `}` that is not `}}` (matchit's syntax).
                loop {
                    match chars.next()? {
                        c @ ('{' | '}') if chars.peek() == Some(&c) => {
                            chars.next();
                        }
                        '}' => break,
                        _ => {}
                    }
                }
                let value = match values.get(filled.len()).copied() {
                    Some("") | None => "x",
                    Some(v) => v,
                };
                for b in value.bytes() {
                    path.push_str(&format!("%{b:02X}"));
                }
                filled.push(value.to_owned());
            }
            c => path.push(c),
        }
    }
    Some((path, filled))
}

fn cache_rule(pattern: &str, templates: &[&str]) -> Rule {
    CacheRule::get(pattern)
        .tags(templates.iter().copied())
        .into()
}

fn write_rule(pattern: &str, templates: &[&str]) -> Rule {
    WriteRule::put(pattern)
        .invalidates(["Page"])
        .invalidates(templates.iter().copied())
        .into()
}

/// What holds of any match: the router's parameters are the ones the rule
/// read from its pattern, and every tag renders.
fn check_match(m: &RouteMatch, templates: &[&str]) {
    let names: Vec<&str> = m.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, m.path_params, "{}", m.pattern);
    let tags = m.tags.as_ref().expect("a matched rule renders its tags");
    let expected = templates.len() + usize::from(!m.is_cache);
    assert_eq!(tags.len(), expected, "{}", m.pattern);
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or("");
    let other = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let templates: &[&str] = &lines.collect::<Vec<_>>();
    let values: &[&str] = &path
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();

    if let Ok(one) = Routes::new([cache_rule(pattern, templates)]) {
        // The rule's own pattern, as a route, routes what the rule matches.
        assert_eq!(
            one.unmatched([pattern]),
            Vec::<String>::new(),
            "{pattern:?}"
        );

        let (filled, expected) = fill(pattern, values).expect("a compiled pattern is well formed");
        let found = one.find(&Method::GET, &filled);
        let m = found
            .as_ref()
            .unwrap_or_else(|e| panic!("{pattern:?} does not match {filled:?}: {e}"));
        check_match(m, templates);
        assert!(m.is_cache && m.pattern == pattern);
        if !pattern.contains('%') {
            let got: Vec<&str> = m.params.iter().map(|(_, v)| v.as_str()).collect();
            assert_eq!(got, expected, "{pattern:?} on {filled:?}");
        }
        assert_eq!(one.find(&Method::HEAD, &filled), found);
        assert!(one.caches(&filled));
        assert_eq!(one.find(&Method::PUT, &filled), Err("no rule"));

        match one.find(&Method::GET, path) {
            Ok(m) => {
                check_match(&m, templates);
                assert!(one.caches(path));
            }
            Err("bad path") => assert!(one.caches(path)),
            Err(_) => assert!(!one.caches(path)),
        }

        // A write rule on the same pattern joins it, also next to another
        // rule.
        let both = Routes::new([
            cache_rule(pattern, templates),
            write_rule(pattern, templates),
        ])
        .expect("a write rule joins the cache rule of its pattern");
        let m = both
            .find(&Method::PUT, &filled)
            .expect("the write rule matches");
        check_match(&m, templates);
        assert!(!m.is_cache);
        if Routes::new([cache_rule(other, &[]), cache_rule(pattern, templates)]).is_ok() {
            let three = Routes::new([
                cache_rule(other, &[]),
                cache_rule(pattern, templates),
                write_rule(pattern, templates),
            ]);
            if let Err(e) = three {
                panic!("{other:?} then {pattern:?}: the write rule is refused: {e}");
            }
        }
    }

    // Two rules in one table: conflicts are errors, never panics.
    if let Ok(two) = Routes::new([cache_rule(other, &[]), cache_rule(pattern, templates)]) {
        let _ = two.unmatched([other, pattern, path]);
        if let Ok(m) = two.find(&Method::GET, path) {
            check_match(&m, if m.pattern == pattern { templates } else { &[] });
        }
    }
});
