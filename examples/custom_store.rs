//! A `Store` written outside the crate: a wrapper over `MemoryStore` that
//! counts every call, checked with the testing kit's conformance suite and
//! staleness checker.
//!
//! Run with
//!
//! ```text
//! cargo run --example custom_store --features testing
//! ```
//!
//! It prints one line per conformance check and a summary line, then what
//! the staleness check found, and exits non-zero when a check failed.
#![allow(dead_code)]

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, extract::State, routing::get};
use bytes::Bytes;
use http::Request;
use tower_tagged_cache::{
    CacheRule, ConfigError, Error, MemoryStore, Store, TaggedCacheLayer, WriteRule,
    key::{FragmentedKey, Tag, Version},
    store::{EntryKey, Lease, Lookup, StoreStats},
    testing::{
        StalenessCheck, StalenessReport,
        conformance::{self, Subject},
    },
};

/// Counts the calls of each [`Store`] method, then forwards them, lease
/// methods included, to the store it wraps.
#[derive(Clone, Debug)]
pub struct CountingStore<S> {
    inner: S,
    counts: Arc<Counts>,
}

/// Calls of each [`Store`] method so far.
#[derive(Debug, Default)]
pub struct Counts {
    lookups: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
    bumps: AtomicU64,
    epochs: AtomicU64,
    epoch_bumps: AtomicU64,
    versions: AtomicU64,
    new_leases: AtomicU64,
    acquires: AtomicU64,
    releases: AtomicU64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "lookup={} put={} delete={} bump={} epoch={} bump_epoch={} versions={} \
             new_lease={} acquire_lease={} release_lease={}",
            n(&self.lookups),
            n(&self.puts),
            n(&self.deletes),
            n(&self.bumps),
            n(&self.epochs),
            n(&self.epoch_bumps),
            n(&self.versions),
            n(&self.new_leases),
            n(&self.acquires),
            n(&self.releases),
        )
    }
}

impl<S> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// What was called so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

fn one(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl<S: Store> Store for CountingStore<S> {
    async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
        one(&self.counts.lookups);
        self.inner.lookup(key).await
    }

    async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
        one(&self.counts.puts);
        self.inner.put(key, value, ttl).await
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        one(&self.counts.deletes);
        self.inner.delete(key).await
    }

    async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
        one(&self.counts.bumps);
        self.inner.bump(tags).await
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        one(&self.counts.epochs);
        self.inner.epoch().await
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        one(&self.counts.epoch_bumps);
        self.inner.bump_epoch().await
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        one(&self.counts.versions);
        self.inner.versions(tags).await
    }

    // A wrapper must forward the three lease methods: the defaults grant
    // every lease, and fleet-wide single-flight would stop coordinating.
    fn new_lease(&self, key: &EntryKey) -> Lease {
        one(&self.counts.new_leases);
        self.inner.new_lease(key)
    }

    async fn acquire_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Result<bool, Error> {
        one(&self.counts.acquires);
        self.inner.acquire_lease(lease, ttl).await
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
        one(&self.counts.releases);
        self.inner.release_lease(lease).await
    }

    // What the store tells about itself (the admin service's `/stats`):
    // the inner store's figures.
    async fn stats(&self) -> Result<StoreStats, Error> {
        self.inner.stats().await
    }
}

/// The store conformance suite on a fresh `CountingStore` per check; the
/// memory store under it is the backdoor (it can evict versions).
pub async fn conformance_report() -> conformance::Report {
    conformance::run(|| async {
        let memory = MemoryStore::new();
        Subject::new(CountingStore::new(memory.clone())).with_backdoor(memory)
    })
    .await
}

/// An app with one cached resource, a counter: `GET /counter` shows it,
/// `PUT /counter` sets it and invalidates `Counter` once it succeeded.
pub fn app<St: Store>(store: St) -> Result<Router, ConfigError> {
    let cache = TaggedCacheLayer::new(store)
        .rule(CacheRule::get("/counter").tags(["Counter"]))?
        .rule(WriteRule::put("/counter").invalidates(["Counter"]))?;
    Ok(Router::new()
        .route("/counter", get(show).put(set))
        .with_state(Arc::new(AtomicU64::new(0)))
        .layer(cache))
}

async fn show(State(counter): State<Arc<AtomicU64>>) -> String {
    counter.load(Ordering::SeqCst).to_string()
}

async fn set(State(counter): State<Arc<AtomicU64>>, body: String) -> Result<String, String> {
    let n = body.trim().parse().map_err(|e| format!("{e}"))?;
    counter.store(n, Ordering::SeqCst);
    Ok(body)
}

/// The staleness check on [`app`] over `store`: concurrent reads while the
/// counter is set to 1, 2, 3, ...
pub async fn staleness_report<St: Store>(store: St) -> Result<StalenessReport, ConfigError> {
    let check = StalenessCheck::new(
        || Request::get("/counter").body(Body::empty()).unwrap(),
        |n| {
            Request::put("/counter")
                .body(Body::from(n.to_string()))
                .unwrap()
        },
        |body| std::str::from_utf8(body).ok()?.parse().ok(),
    )
    .readers(4)
    .writes(50);
    Ok(check.run(app(store)?).await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = conformance_report().await;
    println!("{report}");

    let store = CountingStore::new(MemoryStore::new());
    let staleness = staleness_report(store.clone()).await?;
    println!("{staleness}");
    println!("store calls during the staleness check: {}", store.counts());

    if !report.is_ok() {
        return Err(format!("{} conformance check(s) failed", report.failed()).into());
    }
    if !staleness.is_clean() || staleness.hits() == 0 {
        return Err("the staleness check found stale reads or no hits".into());
    }
    Ok(())
}
