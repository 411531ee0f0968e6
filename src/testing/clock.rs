//! Time in tests: the crate's clock moves with tokio's.
//!
//! Freshness, `Age`, stored-at times and breaker cooldowns read one clock
//! that reads the wall clock once and then advances with
//! [`tokio::time::Instant`]. Pause tokio's clock and advance it, and a
//! cached response ages without a test sleeping (the `testing` feature
//! enables tokio's `test-util`, which these need):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{convert::Infallible, time::Duration};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceExt, service_fn};
//! use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer, testing::clock, tower_layer::Layer};
//!
//! clock::pause();
//! let layer = TaggedCacheLayer::new(MemoryStore::new())
//!     .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]).ttl(Duration::from_secs(60)))?;
//! let mut svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//! }));
//! let get = || Request::get("/users/1").body(Full::default()).unwrap();
//! svc.ready().await?.call(get()).await?.into_body().collect().await?;
//! # tokio::task::yield_now().await;
//! clock::advance(Duration::from_secs(30)).await;
//! let hit = svc.ready().await?.call(get()).await?;
//! assert_eq!(hit.headers()["cache-status"], "tower-tagged-cache; hit");
//! assert_eq!(hit.headers()["age"], "30");
//! # Ok(()) }
//! ```
//!
//! A store that keeps time of its own is not moved by a paused tokio clock:
//! Redis expires keys on the server's clock. The conformance suite waits
//! real time for that reason.

#[doc(inline)]
pub use tokio::time::{advance, pause, resume};
