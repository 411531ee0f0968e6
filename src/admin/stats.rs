//! `/stats`: the layer's own counters, by outcome and by rule, and what the
//! store can tell about itself.

use std::fmt::Write as _;

use super::report::{Report, known};
use crate::{
    layer::{Reason, Shared},
    store::Store,
    telemetry::CountsSnapshot,
};

/// The layer's counters, then the store's figures. Never fails: a store
/// that fails is reported.
pub(super) async fn stats<St: Store>(shared: &Shared<St>) -> String {
    let mut out = Report::default();
    let mut rules = Vec::with_capacity(shared.listed.len() + 1);
    let mut total = CountsSnapshot::default();
    let attached = shared.attached.routes();
    let attached = attached.iter().flat_map(|route| &route.listed);
    for rule in shared.listed.iter().chain(attached) {
        let counts = rule.telemetry.counts();
        total.add(&counts);
        rules.push((
            rule.kind,
            rule.route.as_str(),
            rule.telemetry.name(),
            counts,
        ));
    }
    let none = shared.no_rule.counts();
    total.add(&none);
    rules.push(("none", "-", "(no rule)", none));

    out.field("requests", total.requests());
    out.field("hits", total.hits);
    out.field("coalesced", total.coalesced);
    out.field("stale", total.stale);
    out.field("revalidated", total.revalidated);
    out.field("misses", total.misses);
    out.field("bypasses", total.bypasses);
    out.field("invalidated", total.invalidated);
    out.field("stored", total.stored);
    out.field("not-stored", total.not_stored);
    out.field("single-flight-joins", total.joins);
    out.field("hit-ratio", ratio(&total));
    out.field("bypass-reasons", by_reason(&total.bypass_by));
    out.field("not-stored-reasons", by_reason(&total.not_stored_by));
    for (kind, route, name, c) in &rules {
        out.field(
            "rule",
            format_args!(
                "hits={} coalesced={} stale={} revalidated={} misses={} bypasses={} \
                 invalidated={} stored={} not-stored={} hit-ratio={} kind={kind} route={route} name={name}",
                c.hits,
                c.coalesced,
                c.stale,
                c.revalidated,
                c.misses,
                c.bypasses,
                c.invalidated,
                c.stored,
                c.not_stored,
                ratio(c),
            ),
        );
    }

    out.field("store", short_type_name(std::any::type_name::<St>()));
    // The breaker as requests left it: read before the stats call, which
    // goes through it too (and counts as a success or a failure).
    let (open, failures) = shared.store.breaker_state();
    match shared.store.stats().await {
        Ok(s) => {
            out.field("store-entries", known(s.entries));
            out.field("store-versions", known(s.versions));
            out.field("store-keys", known(s.keys));
            out.field("store-used-bytes", known(s.used_bytes));
            out.field("store-max-bytes", known(s.max_bytes));
            out.field("store-hits", known(s.hits));
            out.field("store-misses", known(s.misses));
            out.field("store-evictions", known(s.evictions));
        }
        Err(err) => out.field("store-error", err),
    }
    out.field("store-breaker", if open { "open" } else { "closed" });
    out.field("store-failures-in-a-row", failures);
    out.finish()
}

/// `0.750`, or `-` before the first lookup.
fn ratio(c: &CountsSnapshot) -> String {
    c.hit_ratio()
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

/// `no-rule=3 authorization=1`, or `-` when every count is zero.
fn by_reason(counts: &[u64; Reason::COUNT]) -> String {
    let mut out = String::new();
    for (reason, n) in Reason::ALL.iter().zip(counts) {
        if *n > 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{}={n}", reason.as_str());
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// `a::b::Wrapper<c::Store>` as `Wrapper<Store>`.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment_start);
        } else {
            out.push(c);
            if !(c.is_alphanumeric() || c == '_') {
                segment_start = out.len();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(
            short_type_name("tower_tagged_cache::store::memory::MemoryStore"),
            "MemoryStore"
        );
        assert_eq!(
            short_type_name(
                "tower_tagged_cache::testing::pausable::PausableStore<tower_tagged_cache::store::redis::RedisStore>"
            ),
            "PausableStore<RedisStore>"
        );
        assert_eq!(short_type_name("(a::B, c::D)"), "(B, D)");
    }

    #[test]
    fn reasons_list_only_what_happened() {
        let mut counts = [0; Reason::COUNT];
        assert_eq!(by_reason(&counts), "-");
        counts[Reason::NoRule as usize] = 3;
        counts[Reason::Authorization as usize] = 1;
        assert_eq!(by_reason(&counts), "no-rule=3 authorization=1");
    }
}
