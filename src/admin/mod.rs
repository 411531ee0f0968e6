//! See into the cache: an admin service that says, for a method, URL and
//! headers, which rule matches, the tags and their current versions, the
//! fragmented key and whether an entry is stored; and the layer's and the
//! store's counters.
//!
//! [`TaggedCacheLayer::admin`](crate::TaggedCacheLayer::admin) makes one.
//! It shares the layer's rules, namespace and guarded store, and answers
//! with the layer's own planning code (rule match, request checks, key
//! derivation) and one store lookup, so what it prints is what a real
//! request would get. The `tagcache` command (feature `cli`) prints its
//! answers: `tagcache explain --admin URL METHOD PATH [-H 'Name: value']...`
//! and `tagcache stats --admin URL`.
//!
//! Nothing serves it unless you mount it. **Mount it on a private listener
//! only** (loopback, an admin port behind the firewall), never on the app's
//! public router: it reveals keys, tags and versions, and every `/explain`
//! makes a store lookup that may seed versions. It never prints a stored
//! body or header values, only metadata.
//!
//! # Routes
//!
//! Every answer is `text/plain`, one `field: value` per line (control
//! characters escaped, so a value never spans two lines), with
//! `cache-control: no-store`. Only `GET` and `HEAD` are answered (any other
//! method is `405`, whatever the path); other paths are `404`, a bad query
//! `400`; error bodies read `error: <why>`.
//!
//! | route | answers |
//! |---|---|
//! | `GET /explain?method=GET&url=/users/5&header=Name:%20value` | what the layer would do with that request |
//! | `GET /stats` | the layer's counters, by outcome and by rule, and the store's figures |
//! | `GET /` | the list of routes |
//!
//! `/explain` takes `url` (a path with an optional query, or an absolute
//! `http(s)` URL whose host is the request's host), `method` (default `GET`,
//! case-sensitive as in HTTP) and `header` (repeatable, `Name: value`). The
//! host is part of every key: a path without a `Host` header gets the
//! admin's [`default_host`](Admin::default_host). Pass the headers a rule
//! varies on, and `Authorization` or `Cookie` if the request you explain
//! carries them.
//!
//! # `/explain` fields
//!
//! Always: `request` (method and URL), `host` (as hashed into the key, `-`
//! when none), `decision` (`bypass`, `cache` or `invalidate`), `rule` (its
//! name, `none` when no rule matched) and `cache-status`.
//!
//! | field | decision | value |
//! |---|---|---|
//! | `cache-status` | `bypass` | the header a real request gets (`tower-tagged-cache; fwd=bypass; detail=no-rule`) |
//! | `route`, `rule-ttl` | `cache` | the rule's route pattern and TTL (`60.000s`) |
//! | `static-digest` | `cache` | SHA-256 of the key's static parts, hex |
//! | `epoch` | `cache` | the epoch version |
//! | `tag` | `cache` | one line per tag of the key: `Tag:instance version` (the version is the last word) |
//! | `entry-key` | `cache` | the store key of the entry under the current versions |
//! | `entry` | `cache` | `stored`, `none` or `unreadable` |
//! | `entry-variants` | `cache`, when stored | how many variants of a response that varies are stored under the key (`1` for a response stored alone) |
//! | `entry-variant` | `cache`, when stored | the one this request gets, from `1` (the most recently stored), or `none` when none has the request's `Vary` values |
//! | `entry-status`, `entry-stored-at`, `entry-age`, `entry-fresh-left`, `entry-ttl-left`, `entry-vary` | `cache`, when stored | of that variant (the most recently stored one when none matches): the stored status, when it was stored (HTTP date), its age, how long it stays fresh (`0.000s` when stale) and stored, the request headers its `Vary` names (`-` for none) |
//! | `cache-status` | `cache` | `tower-tagged-cache; hit`, or the `fwd=` a request would get (`miss`, `stale`, `vary-miss`, `request`); the real header of a miss adds `stored` or a `detail` once the response is known |
//! | `invalidates` | `invalidate` | one line per tag the write rule bumps after a 2xx: `Tag:instance version` (`-`: no version yet) |
//! | `invalidates-uri` | `invalidate` | the per-URI tag bumped after a 2xx or 3xx (also for a same-host `Location` / `Content-Location`) |
//! | `store-error` | `cache`, `invalidate` | why the store could not answer (then versions read `unknown`, and `cache-status` is the bypass a request would get) |
//!
//! Versions are read as a request reads them: `cache` decisions make the
//! layer's own lookup ([`Store::lookup`](crate::Store::lookup)), which seeds
//! a missing version with a fresh random one. That is harmless: the next
//! real request would seed it the same way, and then derives the same key.
//! `invalidate` decisions read versions without seeding
//! ([`Store::versions`](crate::Store::versions)).
//!
//! # `/stats` fields
//!
//! The layer's counters are kept in process, per rule, with relaxed atomic
//! adds (nothing to install, no allocation on a hit), since the layer was
//! built; layers cloned from one share them. Totals: `requests`, `hits`,
//! `coalesced` (answered by a concurrent miss), `stale` (a stale copy
//! served for a failing origin), `revalidated` (`304` from the origin),
//! `misses`, `bypasses`, `invalidated` (writes that bumped tags) — one
//! outcome per request — then `stored`, `not-stored`,
//! `single-flight-joins`, `hit-ratio` (`hits + coalesced` over the requests
//! a cache rule looked up: hits, coalesced, stale, revalidated and misses;
//! `-` before the first), `bypass-reasons` and `not-stored-reasons`
//! (`detail=count` pairs, `-` for none). Then one `rule` line per rule, in
//! the order they were added, and one for requests no rule matched:
//! `hits=.. coalesced=.. stale=.. revalidated=.. misses=.. bypasses=..
//! invalidated=.. stored=.. not-stored=.. hit-ratio=.. kind=cache|write|none
//! route=<pattern> name=<the rest of the line>`.
//!
//! Then the store: `store` (its type), `store-entries`, `store-versions`,
//! `store-keys`, `store-used-bytes`, `store-max-bytes`, `store-hits`,
//! `store-misses`, `store-evictions` (`unknown` where the store does not
//! tell; see [`StoreStats`](crate::store::StoreStats) for what each store
//! puts there) or `store-error`, and `store-breaker` (`open` or `closed`)
//! with `store-failures-in-a-row`, as requests left them (the stats call
//! has the same deadline but leaves the breaker alone: a store that refuses
//! `INFO` does not switch the cache off, and one that answers it does not
//! close a breaker that lookups opened).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{convert::Infallible, time::Duration};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceExt, service_fn};
//! use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer, tower_layer::Layer};
//!
//! let layer = TaggedCacheLayer::new(MemoryStore::new()).rule(
//!     CacheRule::get("/users/{id}").name("user").tags(["User:{id}"]).ttl(Duration::from_secs(60)),
//! )?;
//! let admin = layer.admin();
//! let app = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("Ada"))))
//! }));
//! let res = app.oneshot(Request::get("/users/42").body(Full::default())?).await?;
//! res.into_body().collect().await?; // the entry is stored after the last frame
//! # tokio::task::yield_now().await;
//!
//! let explain = admin.clone().oneshot(Request::get("/explain?url=/users/42").body(())?).await?;
//! let text = explain.into_body();
//! assert!(text.contains("rule: user\n"));
//! assert!(text.contains("\ntag: User:42 "));
//! assert!(text.contains("\nentry: stored\n"));
//! assert!(text.contains("\ncache-status: tower-tagged-cache; hit\n"));
//!
//! let stats = admin.oneshot(Request::get("/stats").body(())?).await?.into_body();
//! assert!(stats.contains("\nmisses: 1\n"));
//! assert!(stats.contains("\nstore-entries: 1\n"));
//! # Ok(()) }
//! ```
//!
//! With axum, on its own loopback listener beside the app:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use http::HeaderValue;
//! use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer};
//!
//! let cache = TaggedCacheLayer::new(MemoryStore::new())
//!     .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]))?;
//! let admin = cache.admin().default_host(HeaderValue::from_static("127.0.0.1:3000"));
//! let app = Router::new().route("/users/{id}", get(|| async { "..." })).layer(cache);
//!
//! let private = tokio::net::TcpListener::bind("127.0.0.1:3100").await?;
//! tokio::spawn(axum::serve(private, Router::new().fallback_service(admin)).into_future());
//! let public = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(public, app).await?;
//! # Ok(()) }
//! ```

mod explain;
pub mod future;
mod query;
mod report;
mod service;
mod stats;

#[doc(inline)]
pub use self::service::Admin;
