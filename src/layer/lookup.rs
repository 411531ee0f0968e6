//! The lookup stage: one store lookup, what it found, and coalescing of
//! misses (single-flight in this process, and a lease across app servers
//! for rules that ask for one).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    http::{
        Fwd, Reason, RequestVary, coalesced_status, hit_status, shareable_with_authorization,
        usable_without_origin, variant_flight, vary_matches,
    },
    layer::Shared,
    lease::LeaseGuard,
    plan::CacheRequest,
};
use crate::{
    clock::now_ms,
    flight::{self, Leader, Role},
    store::{
        EntryKey, Store,
        entry::CachedResponse,
        variants::{self, Prior, VariantSet},
    },
    telemetry,
};

/// What the first lookup found.
// A hit is the hot path: its entry is not boxed, to save an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Found {
    /// A stored response that answers this request as it is.
    Fresh(CachedResponse),
    /// Nothing that answers it without the origin.
    Miss {
        /// Where the response will be stored: derived from the versions the
        /// lookup read, never re-derived.
        entry_key: EntryKey,
        /// Why the origin is asked (`cache-status`'s `fwd`).
        fwd: Fwd,
        /// A stored response to revalidate or to stand in for a failing
        /// origin.
        stale: Option<Box<CachedResponse>>,
        /// The request headers a response stored for another variant varies
        /// on (empty when none is known): single-flight keeps variants apart.
        vary: Vec<HeaderName>,
        /// What was read under the key, for the response recorded now to be
        /// stored beside (other variants).
        prior: Prior,
    },
}

/// Looks the request's key up and sorts what is stored: fresh, stale, for
/// another variant, not shareable, unreadable.
///
/// # Errors
///
/// The reason to bypass the cache when a tag of the key has a bump waiting
/// in the outbox (read fencing), or the store failed, timed out or is
/// skipped by the breaker.
pub(crate) async fn lookup<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    req_headers: &HeaderMap,
) -> Result<Found, Reason> {
    if shared.store.outbox().fences(plan.key.tags()) {
        return Err(Reason::PendingInvalidation);
    }
    let lookup = shared
        .store
        .lookup(&plan.key)
        .await
        .map_err(|err| Reason::from_store_error(&err))?;
    Ok(sort(plan, req_headers, lookup.entry_key, lookup.entry))
}

/// Sorts what a lookup found under `entry_key` for this request (the admin
/// service's explain sorts with it too, so that it says what a request
/// would get).
///
/// One entry is decoded as it always was; in a set of variants, the
/// request gets the newest live variant whose `Vary` values it has, and only
/// that one is decoded ([`choose`]).
pub(crate) fn sort(
    plan: &CacheRequest,
    req_headers: &HeaderMap,
    entry_key: EntryKey,
    entry: Option<Bytes>,
) -> Found {
    let mut fwd = Fwd::Miss;
    let mut stale = None;
    let mut vary = Vec::new();
    let mut prior = Prior::Nothing;
    // The response stored for this request's Vary values, if any.
    let entry = match entry {
        None => None,
        // One entry: decoded as it always was (the hot path).
        Some(bytes) if !variants::is_set(&bytes) => match CachedResponse::decode(bytes) {
            None => {
                telemetry::unreadable_entry(entry_key.as_str());
                None
            }
            Some(entry) if !vary_matches(req_headers, &entry.vary) => {
                fwd = Fwd::VaryMiss;
                vary = entry.vary.iter().map(|(name, _)| name.clone()).collect();
                prior = Prior::One(Box::new(entry));
                None
            }
            Some(entry) => Some(entry),
        },
        Some(bytes) => match VariantSet::parse(bytes) {
            None => {
                telemetry::unreadable_entry(entry_key.as_str());
                None
            }
            Some(set) => {
                let chosen = choose(&set, req_headers, now_ms()).candidate;
                prior = Prior::Set(set);
                match chosen {
                    Candidate::Nothing => None,
                    Candidate::Unreadable => {
                        telemetry::unreadable_entry(entry_key.as_str());
                        None
                    }
                    Candidate::OtherVariant(names) => {
                        fwd = Fwd::VaryMiss;
                        vary = names;
                        None
                    }
                    Candidate::Entry(entry) => Some(entry),
                }
            }
        },
    };
    match entry {
        None => {}
        Some(entry)
            if plan.policy.authorized
                && !shareable_with_authorization(&entry.headers, &plan.rule) => {}
        Some(entry) => {
            if usable_without_origin(&entry, &plan.rule, now_ms(), &plan.policy) {
                return Found::Fresh(entry);
            }
            fwd = if plan.policy.no_cache {
                Fwd::Request
            } else {
                Fwd::Stale
            };
            stale = Some(Box::new(entry));
        }
    }
    Found::Miss {
        entry_key,
        fwd,
        stale,
        vary,
        prior,
    }
}

/// What is stored for one request.
// As in `Found`: the entry is the hit path, not boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Candidate {
    /// Nothing (or, in a set, only variants past their TTL).
    Nothing,
    /// Bytes that do not decode, or a variant whose checksum fails.
    Unreadable,
    /// Only responses for other values of these request headers (the
    /// newest variant's `Vary`).
    OtherVariant(Vec<HeaderName>),
    /// The response stored for this request's `Vary` values.
    Entry(CachedResponse),
}

/// What [`choose`] found in a set.
pub(crate) struct Chosen {
    /// What the request gets.
    pub(crate) candidate: Candidate,
    /// The chosen variant's position in the set (0: the newest), when one
    /// matched.
    pub(crate) index: Option<usize>,
}

/// The variant of `set` for this request: the newest one, not past its
/// store TTL, whose stored `Vary` values the request has. Only the fronts of
/// the variants are read to compare (each request header is hashed once);
/// the chosen one is decoded, its checksum checked, and compared again.
pub(crate) fn choose(set: &VariantSet, req_headers: &HeaderMap, now_ms: u64) -> Chosen {
    let mut request = RequestVary::new(req_headers);
    let mut newest_live = None;
    for variant in set.variants() {
        if variant.head.expired(now_ms) {
            continue;
        }
        newest_live.get_or_insert(variant.head.vary);
        if !request.matches(variant.head.vary.iter()) {
            continue;
        }
        let candidate = match set.decode(&variant) {
            Some(entry) if request.matches_decoded(&entry.vary) => Candidate::Entry(entry),
            _ => Candidate::Unreadable,
        };
        return Chosen {
            candidate,
            index: Some(variant.index),
        };
    }
    let candidate = match newest_live {
        None => Candidate::Nothing,
        Some(vary) => Candidate::OtherVariant(
            vary.iter()
                .filter_map(|(name, _)| HeaderName::from_bytes(name).ok())
                .collect(),
        ),
    };
    Chosen {
        candidate,
        index: None,
    }
}

/// The stored response under `bytes` that may answer this request: the
/// entry (whatever its `Vary`: callers check), or a set's variant for it.
fn for_request(bytes: Bytes, req_headers: &HeaderMap) -> Option<CachedResponse> {
    if !variants::is_set(&bytes) {
        return CachedResponse::decode(bytes);
    }
    match choose(&VariantSet::parse(bytes)?, req_headers, now_ms()).candidate {
        Candidate::Entry(entry) => Some(entry),
        _ => None,
    }
}

/// What single-flight decided for a GET that missed.
pub(crate) enum Flight {
    /// Answer with this entry, computed by another request (or stored
    /// meanwhile), under this `cache-status`.
    Answered(Box<CachedResponse>, HeaderValue),
    /// Call the inner service, as the leader of this key's flight if any.
    Call(Option<Leader<Arc<CachedResponse>>>),
}

/// Joins the flight of `entry_key` in this process: follows its leader
/// (and, should that one give up, joins again, so that one follower leads)
/// until the layer's single-flight wait is over, or leads it. A leader on a
/// rule with a lease also coordinates with other app servers.
pub(crate) async fn single_flight<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    req_headers: &HeaderMap,
    entry_key: &EntryKey,
    vary: &[HeaderName],
) -> Flight {
    let coalesced = |entry| {
        telemetry::coalesced(&plan.rule.telemetry);
        Flight::Answered(entry, coalesced_status())
    };
    // Once a response is known to vary, each variant flies on its own.
    let mut flight_key = if vary.is_empty() {
        entry_key.as_str().to_owned()
    } else {
        variant_flight(entry_key.as_str(), req_headers, vary)
    };
    let until = tokio::time::Instant::now() + shared.flight_wait;
    let mut leader = loop {
        match shared.flights.join(&flight_key) {
            Role::Lead(l) => break Some(l),
            Role::Follow(rx) => {
                telemetry::single_flight_join(&plan.rule.telemetry);
                let wait = until.saturating_duration_since(tokio::time::Instant::now());
                match flight::follow(rx, wait).await {
                    Some(entry) if shareable(req_headers, plan, &entry) => {
                        return coalesced(Box::new((*entry).clone()));
                    }
                    // The leader's response is for another variant: this
                    // request joins (or leads) its own variant's flight, so
                    // requests for one variant still make one call, and
                    // none waits behind another variant's.
                    Some(entry) if !vary_matches(req_headers, &entry.vary) => {
                        let names = entry.vary.iter().map(|(name, _)| name);
                        flight_key = variant_flight(entry_key.as_str(), req_headers, names);
                        continue;
                    }
                    // Not shareable with this request's credentials: it
                    // calls the inner service now, rather than queue behind
                    // other followers in the same case.
                    Some(_) => break None,
                    None => {}
                }
                // The leader gave up (its client went away, its response was
                // not stored): one of its followers leads now, the others
                // follow that one, until the wait is over.
                if tokio::time::Instant::now() >= until {
                    break None;
                }
            }
        }
    };
    // A flight may have finished between our lookup and now (or the one we
    // followed gave up, its response stored all the same): look once more
    // before calling the inner service.
    if let Some(entry) = recheck(shared, plan, req_headers, entry_key).await
        && shareable(req_headers, plan, &entry)
    {
        if let Some(leader) = &leader {
            leader.publish(Arc::new(entry.clone()));
        }
        telemetry::hit(&plan.rule.telemetry);
        return Flight::Answered(Box::new(entry), hit_status());
    }
    // Fleet-wide, for rules that ask for it: the local leader takes the
    // store's lease, or waits for the entry another app server computes.
    // Requests whose response would rarely be shareable (Authorization)
    // take no lease.
    if let Some(local) = &mut leader
        && let Some(ttl) = plan.rule.lease
        && !plan.policy.authorized
    {
        match fleet(shared, plan, req_headers, entry_key, ttl).await {
            Fleet::Lead(lease) => local.hold(lease),
            Fleet::Served(entry) if shareable(req_headers, plan, &entry) => {
                local.publish(Arc::new((*entry).clone()));
                return coalesced(entry);
            }
            Fleet::Served(_) | Fleet::Alone => {}
        }
    }
    Flight::Call(leader)
}

/// Whether a response stored by another request may answer this one (its
/// learned Vary and the Authorization rule).
fn shareable(req_headers: &HeaderMap, plan: &CacheRequest, entry: &CachedResponse) -> bool {
    vary_matches(req_headers, &entry.vary)
        && (!plan.policy.authorized || shareable_with_authorization(&entry.headers, &plan.rule))
}

/// Looks the key up again: a fresh entry under the same versions, if one
/// was stored since the first lookup.
async fn recheck<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    req_headers: &HeaderMap,
    entry_key: &EntryKey,
) -> Option<CachedResponse> {
    match look_again(shared, plan, req_headers, entry_key).await {
        Again::Usable(entry) => Some(*entry),
        Again::Moved | Again::Nothing => None,
    }
}

/// What a local leader does on a rule with a fleet-wide lease.
enum Fleet<St: Store> {
    /// It holds the lease: it calls the inner service.
    Lead(LeaseGuard<St>),
    /// Another app server stored the entry meanwhile.
    Served(Box<CachedResponse>),
    /// The store could not say, or the wait ran out: it calls the inner
    /// service without the lease.
    Alone,
}

/// Takes the lease on `key`, or, while another app server holds it, waits
/// for its entry (checking the store with a backoff from 2 to 50 ms), for at
/// most the lease TTL and half the layer's single-flight wait (the other
/// half is for this process's followers to be served).
async fn fleet<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    req_headers: &HeaderMap,
    key: &EntryKey,
    ttl: std::time::Duration,
) -> Fleet<St> {
    let until = tokio::time::Instant::now() + ttl.min(shared.flight_wait / 2);
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        // Guarded before it is asked for: if the acquire times out after
        // reaching the store, or this request goes away, it is given back.
        let guard = LeaseGuard::new(shared.store.clone(), shared.store.store().new_lease(key));
        let Some(lease) = guard.lease() else {
            return Fleet::Alone;
        };
        match shared.store.acquire_lease(lease, ttl).await {
            Ok(true) => {
                // The last holder may have stored the entry and let go
                // between our last look and now.
                return match look_again(shared, plan, req_headers, key).await {
                    Again::Usable(entry) => Fleet::Served(entry),
                    _ => Fleet::Lead(guard),
                };
            }
            Ok(false) => guard.disarm(),
            Err(_) => return Fleet::Alone,
        }
        if tokio::time::Instant::now() + pause > until {
            return Fleet::Alone;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
        match look_again(shared, plan, req_headers, key).await {
            Again::Usable(entry) => return Fleet::Served(entry),
            // A tag was bumped meanwhile: what the holder computes is for a
            // key no one reads any more.
            Again::Moved => return Fleet::Alone,
            Again::Nothing => {}
        }
    }
}

/// What a second look at an entry key found.
enum Again {
    Usable(Box<CachedResponse>),
    /// The versions changed: the key is not the current one any more.
    Moved,
    Nothing,
}

async fn look_again<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    req_headers: &HeaderMap,
    key: &EntryKey,
) -> Again {
    let Ok(again) = shared.store.lookup(&plan.key).await else {
        return Again::Nothing;
    };
    if again.entry_key != *key {
        return Again::Moved;
    }
    match again
        .entry
        .and_then(|bytes| for_request(bytes, req_headers))
    {
        Some(entry) if usable_without_origin(&entry, &plan.rule, now_ms(), &plan.policy) => {
            Again::Usable(Box::new(entry))
        }
        _ => Again::Nothing,
    }
}
