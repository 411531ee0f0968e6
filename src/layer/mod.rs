//! The tower layer: [`TaggedCacheLayer`] and the [`TaggedCache`] service.
//!
//! For each request the service finds the rule for its method and path:
//!
//! - **no rule**: the request passes through; the response says
//!   `cache-status: tower-tagged-cache; fwd=bypass; detail=no-rule` (or
//!   `detail=method` for other methods);
//! - **a cache rule** (`GET`, `HEAD`): the key is derived, the store looked
//!   up (one round trip on Redis). A hit is answered from the store with
//!   `Age` and `cache-status: tower-tagged-cache; hit`; a miss calls the inner
//!   service and, when the response may be stored, streams it to the client
//!   while copying it, then stores it after the last frame, off the response
//!   path (`cache-status: tower-tagged-cache; fwd=miss; stored`);
//! - **an invalidation rule** (`PUT`, `POST`, `PATCH`, `DELETE`): the inner
//!   service runs; on a 2xx response the rule's tags are bumped before the
//!   response is returned.
//!
//! Handlers behind the layer find an [`Invalidator`](crate::Invalidator) in
//! the request extensions (`axum::Extension<Invalidator<St>>`).

mod flow;
#[allow(clippy::module_inception)]
mod layer;
mod policy;
mod service;

pub mod body;
pub mod future;

#[doc(inline)]
pub use self::{
    body::ResponseBody,
    layer::{DEFAULT_MAX_BODY_SIZE, DEFAULT_STORE_TIMEOUT, TaggedCacheLayer},
    policy::{CACHE_STATUS, remove_hop_by_hop},
    service::TaggedCache,
};
