//! Tower middleware that caches whole HTTP responses under **fragmented
//! keys** and invalidates them precisely on writes.
//!
//! A **tag** names a thing that can change (`User:42`, `Dashboard`). Every
//! tag has a version in the store. A cached response's key is
//! `sha256(static parts) + the current version of each of its tags`, so
//! bumping `User:42` makes every response that depended on it a miss, without
//! deleting or tracking a single key. It is the tower take on Django's
//! `fragmented_keys_django` and `@cache_page`, for axum, tonic and any
//! `tower::Service` over `http` types.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{convert::Infallible, time::Duration};
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use tower::{Service, ServiceExt, service_fn};
//! use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer, tower_layer::Layer};
//!
//! let layer = TaggedCacheLayer::new(MemoryStore::new())
//!     .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]).ttl(Duration::from_secs(60)))?;
//! let invalidator = layer.invalidator();
//! let mut svc = layer.layer(service_fn(|req: Request<Full<Bytes>>| async move {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("user at {}", req.uri())))))
//! }));
//!
//! let get = || Request::get("/users/42").body(Full::default()).unwrap();
//! let first = svc.ready().await?.call(get()).await?;
//! assert_eq!(first.headers()["cache-status"], "tower-tagged-cache; fwd=miss; stored");
//! first.into_body().collect().await?; // the entry is stored after the last frame
//! # tokio::task::yield_now().await;
//!
//! let second = svc.ready().await?.call(get()).await?;
//! assert_eq!(second.headers()["cache-status"], "tower-tagged-cache; hit");
//!
//! invalidator.invalidate(["User:42"]).await?;
//! let third = svc.ready().await?.call(get()).await?;
//! assert_eq!(third.headers()["cache-status"], "tower-tagged-cache; fwd=miss; stored");
//! # Ok(()) }
//! ```
//!
//! With axum, add the layer to a `Router` and the invalidation rules beside
//! the cache rules:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer, WriteRule};
//!
//! let cache = TaggedCacheLayer::new(MemoryStore::new())
//!     .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]))?
//!     .rule(WriteRule::put("/users/{id}").invalidates(["User:{id}"]))?;
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "..." }).put(|| async { "saved" }))
//!     .layer(cache);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # What is cached
//!
//! `GET` (and `HEAD`, answered from the `GET` entry) on routes a rule names.
//! The [`layer` module](layer#what-is-stored) lists exactly what is stored,
//! when a stored response is used, and why not otherwise: RFC 9111 for a
//! shared cache, with every decision visible in the `cache-status` response
//! header (RFC 9211):
//!
//! | `cache-status` | meaning |
//! |---|---|
//! | `tower-tagged-cache; hit` | served from the cache, with `Age` |
//! | `tower-tagged-cache; fwd=miss; stored` | computed by the inner service and stored |
//! | `tower-tagged-cache; fwd=stale; fwd-status=304; stored` | revalidated with the origin |
//! | `tower-tagged-cache; fwd=miss; detail=set-cookie` | computed, not stored, and why |
//! | `tower-tagged-cache; fwd=bypass; detail=cookie` | the request did not use the cache, and why |
//!
//! The `Cache-Control` sent to clients is the inner service's, never the
//! server-side TTL: browsers and CDNs must not outlive an invalidation.
//!
//! # Beyond HTTP: values, models, functions
//!
//! The same tags and stores serve code that is not a route:
//!
//! - [`TagCache`] caches serde values under tags (`get_or_set_with_tags`
//!   loads once per key however many callers miss), see [`values`];
//! - its [`ModelRegistry`](invalidate::ModelRegistry) maps model types to
//!   tags and hooks, and [`Invalidator::after_commit`] bumps them once the
//!   write committed, see the [write paths guide](guide::write_paths);
//! - `#[tagged_cache(...)]` (feature `macros`) caches an async function;
//! - the `tagcache` binary (feature `cli`) reads and bumps versions in Redis,
//!   and asks a layer's [admin service](admin) which rule, tags, versions
//!   and key a request gets, and for its counters.
//!
//! Coming from Django? See [`guide::migrating_from_django`].
//!
//! # Failure policy
//!
//! The cache never takes the site down. When the store errors or misses its
//! deadline ([`TaggedCacheLayer::store_timeout`]), the request is served by
//! the inner service and nothing is stored; a rate-limited warning is logged
//! (feature `tracing`) and the failure counted (feature `metrics`, see
//! [the list of metrics](layer#metrics)). Every store call of the crate
//! (lookups, stores, leases, and bumps from write rules, the [`Invalidator`]
//! and the [`TagCache`]) goes through one guarded path: its deadline and a
//! circuit breaker. After repeated failures the store is skipped for a
//! cooldown ([`TaggedCacheLayer::circuit_breaker`]): requests are served
//! uncached and bumps fail at once, without waiting on the store. Then one
//! call at a time probes it; the first that succeeds closes the breaker.
//! Errors of [`Invalidator`] calls are returned: the caller must know the
//! bump did not happen.
//!
//! # Keys and store layout
//!
//! See the [`key`] module for how keys are derived and how they look in
//! Redis.
//!
//! # Feature flags
//!
//! | Name | Description | Default? |
//! |---|---|---|
//! | `memory` | [`MemoryStore`], the embedded in-process store | Yes |
//! | `redis` | [`RedisStore`], on a multiplexed Redis `ConnectionManager` | Yes |
//! | `bb8` | [`RedisStore`] through a `bb8-redis` pool instead (to compare; implies `redis`) | No |
//! | `macros` | `#[tagged_cache]` for async functions | No |
//! | `cli` | the `tagcache` command-line tool | No |
//! | `tracing` | spans and events through [`tracing`](https://docs.rs/tracing): a `debug` event for each cache decision, rate-limited warnings for store failures ([list](layer#tracing)) | Yes |
//! | `metrics` | counters and a store latency histogram through the [`metrics`](https://docs.rs/metrics) facade, for Prometheus and others ([list](layer#metrics)) | No |
//! | `testing` | the testing kit, module `testing`: the store conformance suite for your own [`Store`], pausable and faulty store wrappers, a staleness checker, tokio's paused clock (enables `tokio/test-util`); for tests only | No |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod clock;
mod error;
mod flight;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod invalidate;
pub mod key;
pub mod layer;
pub mod rules;
pub mod store;
mod telemetry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod values;

/// Guides.
pub mod guide {
    #[doc = include_str!("docs/migrating.md")]
    pub mod migrating_from_django {}

    #[doc = include_str!("docs/write_paths.md")]
    pub mod write_paths {}
}

pub use tower_layer;

/// Alias for a type-erased error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[doc(inline)]
pub use self::{
    error::{ConfigError, Error, ErrorKind},
    invalidate::{Invalidation, Invalidator},
    key::{FragmentedKey, Tag, TagTemplate, VaryOn, Version},
    layer::{CACHE_STATUS, TaggedCache, TaggedCacheLayer},
    rules::{CacheRule, Rule, WriteRule},
    store::Store,
    values::TagCache,
};

#[cfg(feature = "memory")]
#[doc(inline)]
pub use self::store::MemoryStore;

#[cfg(feature = "redis")]
#[doc(inline)]
pub use self::store::RedisStore;

/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_tagged_cache::Error> {
/// use std::sync::{
///     LazyLock,
///     atomic::{AtomicUsize, Ordering},
/// };
/// use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};
///
/// static CACHE: LazyLock<TagCache<MemoryStore>> =
///     LazyLock::new(|| TagCache::new(MemoryStore::new()));
/// static CALLS: AtomicUsize = AtomicUsize::new(0);
///
/// #[tagged_cache(cache = CACHE, ttl = 60, tags = ["User:{user_id}"], vary_on = [lang])]
/// async fn greeting(user_id: u64, lang: String) -> String {
///     CALLS.fetch_add(1, Ordering::SeqCst);
///     format!("[{lang}] hello, user {user_id}")
/// }
///
/// assert_eq!(greeting(1, "en".into()).await, "[en] hello, user 1");
/// assert_eq!(greeting(1, "en".into()).await, "[en] hello, user 1"); // cached
/// assert_eq!(CALLS.load(Ordering::SeqCst), 1);
/// CACHE.invalidator().invalidate(["User:1"]).await?;
/// greeting(1, "en".into()).await;
/// assert_eq!(CALLS.load(Ordering::SeqCst), 2);
/// # Ok(()) }
/// ```
#[cfg(feature = "macros")]
#[doc(inline)]
pub use tower_tagged_cache_macros::tagged_cache;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
