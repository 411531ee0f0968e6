//! `/explain`: what the layer would do with one request, from the layer's
//! own planning code (rule match, request checks, key derivation) and one
//! store lookup.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, request::Parts};

use super::{
    query::Explain,
    report::{Report, secs_ms, word},
};
use crate::{
    clock::now_ms,
    key::{Tag, Version},
    layer::{
        Reason, Shared,
        admin_view::{
            CacheRequest, Candidate, Found, Plan, WriteRequest, choose, hit_status, plan,
            request_host, sort, uri_tag_of, vary_matches,
        },
    },
    store::{
        Store,
        entry::CachedResponse,
        variants::{self, VariantSet},
    },
    telemetry::RuleTelemetry,
};

/// Explains `req` to the layer of `shared`. Never fails: a store that
/// fails is reported.
pub(super) async fn explain<St: Store>(
    shared: &Shared<St>,
    req: &Explain,
    default_host: Option<&HeaderValue>,
) -> String {
    let parts = req.parts(default_host);
    let mut out = Report::default();
    out.field("request", format_args!("{} {}", req.method, req.uri));
    let host = request_host(&parts);
    out.field("host", if host.is_empty() { "-" } else { &host });
    let on_route = attached(shared, &parts);
    let shared = on_route.as_ref().unwrap_or(shared);
    match plan(shared, &parts) {
        Plan::Bypass(reason, rule) => {
            out.field("decision", "bypass");
            out.field("rule", rule_name(rule));
            out.field("cache-status", status_text(&reason.header()));
            if on_route.is_none() && shared.attached.may_have_unseen() {
                // Rules attached to an axum route are learnt from the route's
                // first request: this one may go to a route not seen yet.
                out.field(
                    "note",
                    "rules attached to axum routes are known once their route served a \
                     request; a route not seen yet may cache this request",
                );
            }
        }
        Plan::Invalidate(write) => explain_write(shared, &mut out, write).await,
        Plan::Cache(cache) => explain_cache(shared, &mut out, &parts, cache).await,
    }
    out.finish()
}

/// When none of the layer's own rules matches the request but it goes to an
/// axum route with rules attached (`route_rules`), found as axum routes it,
/// the layer's state with that route's rules, to plan with.
fn attached<St: Store>(shared: &Shared<St>, parts: &Parts) -> Option<Shared<St>> {
    let path = parts.uri.path();
    if shared.rules.find(&parts.method, path).is_ok() {
        return None;
    }
    let route = shared.attached.find(path)?;
    let mut on_route = shared.clone();
    on_route.rules = route.rules;
    Some(on_route)
}

fn rule_name(rule: &RuleTelemetry) -> &str {
    match rule.name() {
        "" => "none",
        name => name,
    }
}

fn status_text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// A write: the tags it bumps once it succeeded, with their versions now
/// (read without seeding: a tag nothing was cached under has none).
async fn explain_write<St: Store>(shared: &Shared<St>, out: &mut Report, write: WriteRequest) {
    out.field("decision", "invalidate");
    out.field("rule", rule_name(&write.rule));
    let uri = uri_tag_of(shared, &write.host, &write.path);
    let tags: Vec<Tag> = write.rule_tags.iter().cloned().chain(uri.clone()).collect();
    let versions = if tags.is_empty() {
        Ok(Vec::new())
    } else {
        shared.store.versions(&tags).await
    };
    let version = |i: usize| match &versions {
        Ok(v) => v.get(i).cloned().flatten().map_or("-".to_owned(), show),
        Err(_) => "unknown".to_owned(),
    };
    for (i, tag) in write.rule_tags.iter().enumerate() {
        out.field("invalidates", format_args!("{tag} {}", version(i)));
    }
    if let Some(tag) = &uri {
        out.field(
            "invalidates-uri",
            format_args!("{tag} {}", version(tags.len() - 1)),
        );
    }
    if tags.is_empty() {
        out.field("invalidates", "-");
    }
    if let Err(err) = &versions {
        out.field("store-error", err);
    }
    // What a successful write answers: `invalidated`, or `method` when it
    // bumps nothing.
    let reason = if tags.is_empty() {
        Reason::Method
    } else {
        Reason::Invalidated
    };
    out.field("cache-status", status_text(&reason.header()));
}

/// A cached route: the key, one lookup, and what a request would get.
async fn explain_cache<St: Store>(
    shared: &Shared<St>,
    out: &mut Report,
    parts: &Parts,
    plan: CacheRequest,
) {
    out.field("decision", "cache");
    out.field("rule", &plan.rule.name);
    out.field("route", &plan.rule.pattern);
    out.field("rule-ttl", secs_ms(millis(plan.rule.ttl)));
    out.field("static-digest", plan.key.static_hex());
    // The lookup a request would make: it seeds missing versions, as the
    // next request would, and reads the entry under the current ones.
    let lookup = match shared.store.lookup(&plan.key).await {
        Ok(lookup) => lookup,
        Err(err) => {
            for tag in plan.key.tags() {
                out.field("tag", format_args!("{tag} unknown"));
            }
            out.field("store-error", &err);
            let reason = Reason::from_store_error(&err);
            out.field("cache-status", status_text(&reason.header()));
            return;
        }
    };
    let mut versions = lookup.versions.iter().cloned().map(show);
    out.field("epoch", versions.next().unwrap_or_default());
    for tag in plan.key.tags() {
        out.field(
            "tag",
            format_args!("{tag} {}", versions.next().unwrap_or_default()),
        );
    }
    out.field("entry-key", lookup.entry_key.as_str());
    entry_fields(out, &parts.headers, lookup.entry.clone());
    let status = match sort(&plan, &parts.headers, lookup.entry_key, lookup.entry) {
        Found::Fresh(_) => status_text(&hit_status()),
        Found::Miss { fwd, .. } => format!("tower-tagged-cache; fwd={}", fwd.as_str()),
    };
    out.field("cache-status", status);
}

/// What is stored under the key: `entry` (`none`, `unreadable` or
/// `stored`), `entry-variants` (how many: 1 for a response stored alone),
/// `entry-variant` (which one this request gets, from 1 for the newest, or
/// `none`) and the metadata of that variant (of the newest when none
/// matches).
fn entry_fields(out: &mut Report, req_headers: &HeaderMap, entry: Option<Bytes>) {
    let Some(bytes) = entry else {
        return out.field("entry", "none");
    };
    if !variants::is_set(&bytes) {
        let Some(entry) = CachedResponse::decode(bytes) else {
            return out.field("entry", "unreadable");
        };
        out.field("entry", "stored");
        out.field("entry-variants", 1);
        if vary_matches(req_headers, &entry.vary) {
            out.field("entry-variant", 1);
        } else {
            out.field("entry-variant", "none");
        }
        return response_fields(out, &entry);
    }
    let Some(set) = VariantSet::parse(bytes) else {
        return out.field("entry", "unreadable");
    };
    let chosen = choose(&set, req_headers, now_ms());
    let shown = match (chosen.index, chosen.candidate) {
        (Some(_), Candidate::Entry(entry)) => Some(entry),
        (Some(_), _) => None,
        (None, _) => set.variants().next().and_then(|newest| set.decode(&newest)),
    };
    let Some(entry) = shown else {
        return out.field("entry", "unreadable");
    };
    out.field("entry", "stored");
    out.field("entry-variants", set.len());
    match chosen.index {
        Some(index) => out.field("entry-variant", index + 1),
        None => out.field("entry-variant", "none"),
    }
    response_fields(out, &entry);
}

/// What a stored response says about itself: metadata only, never its body
/// or header values (they may be one user's data).
fn response_fields(out: &mut Report, entry: &CachedResponse) {
    let now = now_ms();
    let age = entry.age_ms(now);
    let expires = entry.stored_at_ms.saturating_add(millis(entry.ttl));
    out.field("entry-status", entry.status.as_u16());
    out.field("entry-stored-at", http_date(entry.stored_at_ms));
    out.field("entry-age", secs_ms(age));
    out.field(
        "entry-fresh-left",
        secs_ms(millis(entry.freshness).saturating_sub(age)),
    );
    out.field("entry-ttl-left", secs_ms(expires.saturating_sub(now)));
    let vary: Vec<&str> = entry.vary.iter().map(|(name, _)| name.as_str()).collect();
    out.field(
        "entry-vary",
        if vary.is_empty() {
            "-".to_owned()
        } else {
            vary.join(", ")
        },
    );
}

/// `ms` since the Unix epoch as an HTTP date; `-` for a time an HTTP date
/// cannot carry (the stored bytes are untrusted: it may be anything).
fn http_date(ms: u64) -> String {
    /// 9999-12-31T23:59:59Z, the last second an HTTP date can name.
    const LAST_MS: u64 = 253_402_300_799_999;
    match UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
        Some(at) if ms <= LAST_MS => httpdate::fmt_http_date(at),
        _ => "-".to_owned(),
    }
}

fn show(version: Version) -> String {
    word(&version.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_an_http_date_cannot_carry_are_shown_as_unknown() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(253_402_300_799_999),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        // From untrusted bytes: year 9999 and past, and the far end of u64.
        for ms in [253_402_300_800_000, 300_000_000_000_000, u64::MAX] {
            assert_eq!(http_date(ms), "-", "{ms}");
        }
    }
}
