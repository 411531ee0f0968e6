//! Metrics, tracing and the layer's own counters: the one module that talks
//! to the `metrics` and `tracing` crates.
//!
//! The rest of the crate calls the plain functions below at the point where
//! a decision is made; each adds to the rule's in-process counters (read by
//! the [admin service](crate::admin)'s `/stats`), records its metric
//! (feature `metrics`) and its event (feature `tracing`); the last two
//! compile to nothing when the features are off. The metrics and events are
//! listed in the [`layer` module docs](crate::layer#metrics).
#![cfg_attr(
    not(all(feature = "metrics", feature = "tracing")),
    allow(unused_variables)
)]

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{error::Error, key::Tag, layer::Reason};

/// A rule as telemetry sees it: its name (the span field and the `rule`
/// label), its in-process counters and, with `metrics`, the keys of its
/// per-request metrics, built once, so that counting a hit allocates
/// nothing. Cheap to clone; clones share the counters.
#[derive(Clone, Debug)]
pub(crate) struct RuleTelemetry(Arc<RuleInner>);

#[derive(Debug)]
struct RuleInner {
    name: Arc<str>,
    counts: Counts,
    #[cfg(feature = "metrics")]
    keys: RuleKeys,
}

impl RuleTelemetry {
    /// The telemetry of a rule named `name`; the empty name stands for
    /// requests no rule matched (`rule=""`).
    pub(crate) fn new(name: &str) -> Self {
        let name: Arc<str> = Arc::from(name);
        Self(Arc::new(RuleInner {
            #[cfg(feature = "metrics")]
            keys: RuleKeys::new(&name),
            counts: Counts::default(),
            name,
        }))
    }

    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// What the rule's counters say now.
    pub(crate) fn counts(&self) -> CountsSnapshot {
        self.0.counts.snapshot()
    }
}

// ---- in-process counters ------------------------------------------------------

/// The outcome of one request through the layer (exactly one per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Hit,
    Coalesced,
    Stale,
    Revalidated,
    Miss,
    Bypass,
    Invalidated,
}

impl Outcome {
    /// How many outcomes there are (`Invalidated` is the last).
    const COUNT: usize = Outcome::Invalidated as usize + 1;
}

/// One rule's requests by outcome, and why they bypassed or were not
/// stored. Requests only ever add, with relaxed atomic adds (a hit pays one
/// add and no allocation); the admin service reads and sums them.
#[derive(Debug)]
struct Counts {
    outcomes: [AtomicU64; Outcome::COUNT],
    stored: AtomicU64,
    not_stored: AtomicU64,
    joins: AtomicU64,
    bypass_by: [AtomicU64; Reason::COUNT],
    not_stored_by: [AtomicU64; Reason::COUNT],
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            stored: AtomicU64::new(0),
            not_stored: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            bypass_by: std::array::from_fn(|_| AtomicU64::new(0)),
            not_stored_by: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[inline]
fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counts {
    #[inline]
    fn outcome(&self, outcome: Outcome) {
        add(&self.outcomes[outcome as usize]);
    }

    fn snapshot(&self) -> CountsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let by = |counters: &[AtomicU64; Reason::COUNT]| {
            let mut by = [0; Reason::COUNT];
            for (n, c) in by.iter_mut().zip(counters) {
                *n = load(c);
            }
            by
        };
        let o = |outcome: Outcome| load(&self.outcomes[outcome as usize]);
        CountsSnapshot {
            hits: o(Outcome::Hit),
            coalesced: o(Outcome::Coalesced),
            stale: o(Outcome::Stale),
            revalidated: o(Outcome::Revalidated),
            misses: o(Outcome::Miss),
            bypasses: o(Outcome::Bypass),
            invalidated: o(Outcome::Invalidated),
            stored: load(&self.stored),
            not_stored: load(&self.not_stored),
            joins: load(&self.joins),
            bypass_by: by(&self.bypass_by),
            not_stored_by: by(&self.not_stored_by),
        }
    }
}

/// The counters of one rule (or the sum of several) at one moment. Each
/// counter is read on its own, so a snapshot taken under load may be off
/// by the requests in flight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CountsSnapshot {
    /// Served from a stored response.
    pub(crate) hits: u64,
    /// Served from the response of a concurrent miss (single-flight).
    pub(crate) coalesced: u64,
    /// A stale stored response served because the origin failed.
    pub(crate) stale: u64,
    /// A stale stored response the origin confirmed with `304`.
    pub(crate) revalidated: u64,
    /// Computed by the inner service after a lookup (stored or not).
    pub(crate) misses: u64,
    /// Did not use the cache (see `bypass_by`).
    pub(crate) bypasses: u64,
    /// Writes that bumped their tags.
    pub(crate) invalidated: u64,
    /// Responses written to the store.
    pub(crate) stored: u64,
    /// Responses computed on a miss and not stored (see `not_stored_by`).
    pub(crate) not_stored: u64,
    /// Misses that waited for a concurrent miss on the same key.
    pub(crate) joins: u64,
    /// Bypasses by [`Reason`], indexed by `reason as usize`.
    pub(crate) bypass_by: [u64; Reason::COUNT],
    /// Responses not stored by [`Reason`].
    pub(crate) not_stored_by: [u64; Reason::COUNT],
}

impl CountsSnapshot {
    /// Requests counted: one outcome each.
    pub(crate) fn requests(&self) -> u64 {
        self.lookups() + self.bypasses + self.invalidated
    }

    /// Requests a cache rule looked up: hits, coalesced, stale, revalidated
    /// and misses.
    pub(crate) fn lookups(&self) -> u64 {
        self.hits + self.coalesced + self.stale + self.revalidated + self.misses
    }

    /// The share of looked-up requests answered without calling the inner
    /// service (hits and coalesced); `None` before the first lookup.
    pub(crate) fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.lookups();
        (lookups > 0).then(|| (self.hits + self.coalesced) as f64 / lookups as f64)
    }

    /// Adds another snapshot to this one.
    pub(crate) fn add(&mut self, other: &CountsSnapshot) {
        self.hits += other.hits;
        self.coalesced += other.coalesced;
        self.stale += other.stale;
        self.revalidated += other.revalidated;
        self.misses += other.misses;
        self.bypasses += other.bypasses;
        self.invalidated += other.invalidated;
        self.stored += other.stored;
        self.not_stored += other.not_stored;
        self.joins += other.joins;
        for (a, b) in self.bypass_by.iter_mut().zip(&other.bypass_by) {
            *a += b;
        }
        for (a, b) in self.not_stored_by.iter_mut().zip(&other.not_stored_by) {
            *a += b;
        }
    }
}

/// A store operation: the `op` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Lookup,
    Put,
    Delete,
    /// A bump of this many tags.
    Bump(usize),
    BumpEpoch,
    Epoch,
    Versions,
    /// Taking a fleet-wide single-flight lease.
    AcquireLease,
    /// Giving one back.
    ReleaseLease,
    /// What the store tells about itself (the admin service's `/stats`).
    Stats,
}

// ---- metric names and keys (feature `metrics`) ------------------------------

#[cfg(feature = "metrics")]
mod names {
    pub(super) const REQUESTS: &str = "tower_tagged_cache_requests_total";
    pub(super) const BYPASS: &str = "tower_tagged_cache_bypass_total";
    pub(super) const NOT_STORED: &str = "tower_tagged_cache_not_stored_total";
    pub(super) const STORED: &str = "tower_tagged_cache_stored_total";
    pub(super) const JOINS: &str = "tower_tagged_cache_single_flight_joins_total";
    pub(super) const STORE_DURATION: &str = "tower_tagged_cache_store_duration_seconds";
    pub(super) const STORE_ERRORS: &str = "tower_tagged_cache_store_errors_total";
    pub(super) const BREAKER: &str = "tower_tagged_cache_circuit_breaker_opened_total";
    pub(super) const INVALIDATIONS: &str = "tower_tagged_cache_invalidations_total";
    pub(super) const INVALIDATED_TAGS: &str = "tower_tagged_cache_invalidated_tags_total";
    pub(super) const VALUES: &str = "tower_tagged_cache_value_lookups_total";
    pub(super) const OUTBOX: &str = "tower_tagged_cache_outbox_total";
}

#[cfg(feature = "metrics")]
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// A key with a constant name and constant labels, built at compile time.
#[cfg(feature = "metrics")]
macro_rules! static_key {
    ($name:expr $(, $k:literal => $v:literal)*) => {{
        static LABELS: &[metrics::Label] = &[$(metrics::Label::from_static_parts($k, $v)),*];
        static KEY: metrics::Key = metrics::Key::from_static_parts($name, LABELS);
        &KEY
    }};
}

/// Adds to a counter of the installed recorder (keys are not tied to a
/// recorder: one installed late, or per thread in tests, still gets them).
#[cfg(feature = "metrics")]
fn increment(key: &metrics::Key, by: u64) {
    metrics::with_recorder(|r| r.register_counter(key, &METADATA)).increment(by);
}

/// A rule's per-request metric keys.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct RuleKeys {
    /// The `rule` label value, shared by every key.
    label: metrics::SharedString,
    hit: metrics::Key,
    coalesced: metrics::Key,
    stale: metrics::Key,
    revalidated: metrics::Key,
    miss: metrics::Key,
    bypass: metrics::Key,
    invalidated: metrics::Key,
    joins: metrics::Key,
    stored: metrics::Key,
}

#[cfg(feature = "metrics")]
impl RuleKeys {
    fn new(name: &Arc<str>) -> Self {
        let label = metrics::SharedString::from_shared(name.clone());
        let rule = || metrics::Label::new("rule", label.clone());
        let request = |outcome: &'static str| {
            let labels = vec![
                rule(),
                metrics::Label::from_static_parts("outcome", outcome),
            ];
            metrics::Key::from_parts(names::REQUESTS, labels)
        };
        Self {
            hit: request("hit"),
            coalesced: request("coalesced"),
            stale: request("stale"),
            revalidated: request("revalidated"),
            miss: request("miss"),
            bypass: request("bypass"),
            invalidated: request("invalidated"),
            joins: metrics::Key::from_parts(names::JOINS, vec![rule()]),
            stored: metrics::Key::from_parts(names::STORED, vec![rule()]),
            label,
        }
    }

    /// `name{rule, reason}`: built per call, on paths that call the inner
    /// service anyway.
    fn with_reason(&self, name: &'static str, detail: &'static str) -> metrics::Key {
        let labels = vec![
            metrics::Label::new("rule", self.label.clone()),
            metrics::Label::from_static_parts("reason", detail),
        ];
        metrics::Key::from_parts(name, labels)
    }
}

#[cfg(feature = "metrics")]
impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::Bump(_) => "bump",
            Op::BumpEpoch => "bump_epoch",
            Op::Epoch => "epoch",
            Op::Versions => "versions",
            Op::AcquireLease => "acquire_lease",
            Op::ReleaseLease => "release_lease",
            Op::Stats => "stats",
        }
    }

    fn duration_key(self) -> &'static metrics::Key {
        use names::STORE_DURATION as D;
        match self {
            Op::Lookup => static_key!(D, "op" => "lookup"),
            Op::Put => static_key!(D, "op" => "put"),
            Op::Delete => static_key!(D, "op" => "delete"),
            Op::Bump(_) => static_key!(D, "op" => "bump"),
            Op::BumpEpoch => static_key!(D, "op" => "bump_epoch"),
            Op::Epoch => static_key!(D, "op" => "epoch"),
            Op::Versions => static_key!(D, "op" => "versions"),
            Op::AcquireLease => static_key!(D, "op" => "acquire_lease"),
            Op::ReleaseLease => static_key!(D, "op" => "release_lease"),
            Op::Stats => static_key!(D, "op" => "stats"),
        }
    }
}

/// Describes the metrics (help text, units) to the installed recorder.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_histogram};
        describe_counter!(
            names::REQUESTS,
            Unit::Count,
            "Requests through the cache layer, by rule and outcome (hit, coalesced, stale, revalidated, miss, bypass, invalidated)"
        );
        describe_counter!(
            names::BYPASS,
            Unit::Count,
            "Requests that bypassed the cache, by rule and reason (the cache-status detail)"
        );
        describe_counter!(
            names::NOT_STORED,
            Unit::Count,
            "Responses computed on a miss and not stored, by rule and reason"
        );
        describe_counter!(
            names::STORED,
            Unit::Count,
            "Responses written to the store, by rule"
        );
        describe_counter!(
            names::JOINS,
            Unit::Count,
            "Misses that waited for a concurrent miss on the same key, by rule"
        );
        describe_histogram!(
            names::STORE_DURATION,
            Unit::Seconds,
            "Duration of store calls, failed ones included, by operation"
        );
        describe_counter!(
            names::STORE_ERRORS,
            Unit::Count,
            "Failed store calls, by operation and kind (error, timeout)"
        );
        describe_counter!(
            names::BREAKER,
            Unit::Count,
            "Times the store circuit breaker opened"
        );
        describe_counter!(
            names::INVALIDATIONS,
            Unit::Count,
            "Successful invalidations (one store round trip each), by scope (tags, epoch)"
        );
        describe_counter!(
            names::INVALIDATED_TAGS,
            Unit::Count,
            "Tags bumped by successful invalidations"
        );
        describe_counter!(
            names::OUTBOX,
            Unit::Count,
            "Invalidation outbox events: queued (a bump the store did not take), applied (re-applied by the drain), overflow (pending tags replaced by one epoch bump)"
        );
        describe_counter!(
            names::VALUES,
            Unit::Count,
            "Value cache reads, by outcome (hit, coalesced, miss, bypass)"
        );
    }
}

// ---- requests through the layer --------------------------------------------

/// Served from a stored response.
#[inline]
pub(crate) fn hit(rule: &RuleTelemetry) {
    rule.0.counts.outcome(Outcome::Hit);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.hit, 1);
    #[cfg(feature = "tracing")]
    tracing::trace!("cache hit");
}

/// Served from the response of a concurrent miss (single-flight).
pub(crate) fn coalesced(rule: &RuleTelemetry) {
    rule.0.counts.outcome(Outcome::Coalesced);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.coalesced, 1);
    #[cfg(feature = "tracing")]
    tracing::debug!(detail = "coalesced", "served from a concurrent miss");
}

/// A miss joined a concurrent miss on the same key, to wait for it.
pub(crate) fn single_flight_join(rule: &RuleTelemetry) {
    add(&rule.0.counts.joins);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.joins, 1);
}

/// A stale stored response served because the origin failed.
pub(crate) fn served_stale(rule: &RuleTelemetry) {
    rule.0.counts.outcome(Outcome::Stale);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.stale, 1);
    #[cfg(feature = "tracing")]
    tracing::debug!(detail = "served-stale", "stale response served");
}

/// A stale stored response the origin confirmed with `304`.
pub(crate) fn revalidated(rule: &RuleTelemetry) {
    rule.0.counts.outcome(Outcome::Revalidated);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.revalidated, 1);
}

/// The inner service computed the response (stored or not).
pub(crate) fn miss(rule: &RuleTelemetry) {
    rule.0.counts.outcome(Outcome::Miss);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.miss, 1);
}

/// A write succeeded and its tags were bumped.
pub(crate) fn invalidated(rule: &RuleTelemetry) {
    rule.0.counts.outcome(Outcome::Invalidated);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.invalidated, 1);
    #[cfg(feature = "tracing")]
    tracing::debug!(detail = "invalidated", "write invalidated its tags");
}

/// The request did not use the cache, for `reason` (the `cache-status`
/// detail).
pub(crate) fn bypass(rule: &RuleTelemetry, reason: Reason) {
    rule.0.counts.outcome(Outcome::Bypass);
    add(&rule.0.counts.bypass_by[reason as usize]);
    let detail = reason.as_str();
    #[cfg(feature = "metrics")]
    {
        increment(&rule.0.keys.bypass, 1);
        increment(&rule.0.keys.with_reason(names::BYPASS, detail), 1);
    }
    #[cfg(feature = "tracing")]
    tracing::debug!(detail, "cache bypass");
}

/// A response computed on a miss is not stored, for `reason` (the
/// `cache-status` detail, or `incomplete` for a body that failed, was cut
/// short or was dropped).
pub(crate) fn not_stored(rule: &RuleTelemetry, reason: Reason) {
    add(&rule.0.counts.not_stored);
    add(&rule.0.counts.not_stored_by[reason as usize]);
    let detail = reason.as_str();
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.with_reason(names::NOT_STORED, detail), 1);
    #[cfg(feature = "tracing")]
    tracing::debug!(detail, "response not stored");
}

/// Records [`not_stored`] when dropped armed: a recorded body that failed,
/// outgrew the limit, was cut short, or was dropped by a client that went
/// away (`incomplete` unless told otherwise).
pub(crate) struct Unstored {
    rule: RuleTelemetry,
    reason: Option<Reason>,
}

impl Unstored {
    pub(crate) fn new(rule: RuleTelemetry) -> Self {
        Self {
            rule,
            reason: Some(Reason::Incomplete),
        }
    }

    pub(crate) fn because(&mut self, reason: Reason) {
        self.reason = Some(reason);
    }

    /// The response completed: nothing to record.
    pub(crate) fn disarm(mut self) {
        self.reason = None;
    }
}

impl Drop for Unstored {
    fn drop(&mut self) {
        if let Some(reason) = self.reason {
            not_stored(&self.rule, reason);
        }
    }
}

/// A recorded body did not match its `Content-Length`.
pub(crate) fn length_mismatch(expected: Option<u64>, got: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        expected,
        got,
        "body length differs from content-length; not stored"
    );
}

/// A response was written to the store.
pub(crate) fn stored(rule: &RuleTelemetry) {
    add(&rule.0.counts.stored);
    #[cfg(feature = "metrics")]
    increment(&rule.0.keys.stored, 1);
    #[cfg(feature = "tracing")]
    tracing::trace!("response stored");
}

/// A stored entry did not decode.
pub(crate) fn unreadable_entry(key: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(key, "unreadable cache entry; recomputing");
}

/// A rule of the layer matches none of the routes the app declared.
pub(crate) fn unmatched_rule(rule: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        rule,
        "cache rule matches no route of the app; requests will never use it"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = rule;
}

/// Rules attached to an axum route do not fit its pattern.
#[cfg(feature = "axum")]
pub(crate) fn rules_do_not_fit(route: &str, err: &crate::ConfigError) {
    #[cfg(feature = "tracing")]
    tracing::error!(route, error = %err, "cache rules attached to this route do not fit it; its requests pass through uncached (detail=bad-rule)");
    #[cfg(not(feature = "tracing"))]
    let _ = (route, err);
}

/// Bumping the tags of a successful write failed.
pub(crate) fn invalidation_failed(err: &Error, tags: &[Tag]) {
    #[cfg(feature = "tracing")]
    tracing::error!(error = %err, tags = ?tags, "invalidation after a successful write failed; entries stay until their TTL");
}

/// A bump the store did not take went into the outbox.
pub(crate) fn invalidation_queued(err: &Error, tags: &[Tag], epoch: bool) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, tags = ?tags, epoch, "invalidation queued in the outbox; it is re-applied until it lands, and entries that depend on it are not served meanwhile");
}

/// Counts a bump entering the outbox.
pub(crate) fn outbox_queued() {
    #[cfg(feature = "metrics")]
    increment(static_key!(names::OUTBOX, "event" => "queued"), 1);
}

/// The drain re-applied pending bumps.
pub(crate) fn outbox_applied(tags: usize, epoch: bool) {
    #[cfg(feature = "metrics")]
    increment(static_key!(names::OUTBOX, "event" => "applied"), 1);
    #[cfg(feature = "tracing")]
    tracing::info!(tags, epoch, "queued invalidations applied");
}

/// The outbox overflowed: its tags were replaced by one epoch bump.
pub(crate) fn outbox_overflowed(tags: usize, capacity: usize) {
    #[cfg(feature = "metrics")]
    increment(static_key!(names::OUTBOX, "event" => "overflow"), 1);
    #[cfg(feature = "tracing")]
    tracing::error!(
        tags,
        capacity,
        "invalidation outbox overflowed; the epoch is bumped when the store returns, so every entry misses once"
    );
}

/// A durable outbox row was applied but could not be deleted: a drain
/// applies it again later.
#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
pub(crate) fn outbox_row_kept(err: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, "outbox row applied but not deleted; a drain applies it again");
}

/// A durable outbox row does not parse: the epoch is bumped in its place.
#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
pub(crate) fn outbox_row_unreadable(id: i64) {
    #[cfg(feature = "tracing")]
    tracing::error!(id, "unreadable outbox row; bumping the epoch in its place");
}

/// A durable outbox drain failed (the database did not answer).
#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
pub(crate) fn outbox_drain_failed(err: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, "outbox drain failed; trying again at the next poll");
}

// ---- the store ---------------------------------------------------------------

/// Times one store call; [`finish`](Self::finish) records it.
pub(crate) struct StoreTimer {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl StoreTimer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// Records the call's duration, its failure, and for bumps the
    /// invalidation.
    #[inline]
    pub(crate) fn finish<T>(self, op: Op, result: &Result<T, Error>) {
        #[cfg(feature = "metrics")]
        {
            let secs = self.started.elapsed().as_secs_f64();
            metrics::with_recorder(|r| r.register_histogram(op.duration_key(), &METADATA))
                .record(secs);
            match result {
                Err(err) => {
                    let kind = if err.is_timeout() { "timeout" } else { "error" };
                    metrics::counter!(names::STORE_ERRORS, "op" => op.as_str(), "kind" => kind)
                        .increment(1);
                }
                Ok(_) => match op {
                    Op::Bump(tags) => {
                        increment(static_key!(names::INVALIDATIONS, "scope" => "tags"), 1);
                        increment(static_key!(names::INVALIDATED_TAGS), tags as u64);
                    }
                    Op::BumpEpoch => {
                        increment(static_key!(names::INVALIDATIONS, "scope" => "epoch"), 1);
                    }
                    _ => {}
                },
            }
        }
    }
}

/// A store call failed on the request path (rate-limited by the caller).
pub(crate) fn store_failed(err: &Error, consecutive_failures: u32) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, consecutive_failures, "cache store failed; serving uncached");
}

/// The circuit breaker opened: the store is skipped for its cooldown.
pub(crate) fn breaker_opened() {
    #[cfg(feature = "metrics")]
    increment(static_key!(names::BREAKER), 1);
}

// ---- values --------------------------------------------------------------------

/// A value cache read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValueLookup {
    Hit,
    /// Found after waiting for a concurrent load of the same key.
    Coalesced,
    Miss,
    /// The store failed: computed uncached.
    Bypass,
}

pub(crate) fn value_lookup(outcome: ValueLookup) {
    #[cfg(feature = "metrics")]
    {
        use names::VALUES as V;
        increment(
            match outcome {
                ValueLookup::Hit => static_key!(V, "outcome" => "hit"),
                ValueLookup::Coalesced => static_key!(V, "outcome" => "coalesced"),
                ValueLookup::Miss => static_key!(V, "outcome" => "miss"),
                ValueLookup::Bypass => static_key!(V, "outcome" => "bypass"),
            },
            1,
        );
    }
}

/// The value cache failed; the value is computed uncached.
pub(crate) fn value_uncached(err: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, "value cache unavailable; computing uncached");
}

/// A computed value could not be stored.
pub(crate) fn value_not_stored(err: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, "value not stored");
}

/// A computed value does not serialize.
pub(crate) fn value_unserializable(err: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(error = %err, "value does not serialize; not stored");
}

// ---- spans -----------------------------------------------------------------------

/// A span to run a request's work in (nothing without the `tracing`
/// feature).
#[derive(Clone, Debug)]
pub(crate) struct Span {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl Span {
    /// The span of one request through the layer: `tagged_cache`, level
    /// `debug`, with the rule's name.
    #[inline]
    pub(crate) fn request(rule: &RuleTelemetry) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!("tagged_cache", rule = rule.name()),
        }
    }

    /// The current span, to carry into work spawned for a request.
    #[inline]
    pub(crate) fn current() -> Self {
        Self {
            #[cfg(feature = "tracing")]
            span: tracing::Span::current(),
        }
    }

    /// Runs `fut` in the span.
    #[inline]
    pub(crate) fn instrument<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        #[cfg(feature = "tracing")]
        {
            use tracing::Instrument;
            fut.instrument(self.span)
        }
        #[cfg(not(feature = "tracing"))]
        fut
    }
}
