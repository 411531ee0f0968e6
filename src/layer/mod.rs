#![doc = include_str!("caching.md")]

// The layer and its service, as in tower-http; a request then goes through
// the stages below in this order.
#[allow(clippy::module_inception)]
mod layer;
mod service;
// 1. which rule, which key (before anything is awaited)
mod plan;
// 2. the cached request top to bottom, stage by stage:
mod cached;
//    lookup, single-flight and the fleet lease
mod lease;
mod lookup;
//    responses made from stored entries
mod answer;
//    recording and storing what the origin sent
mod persist;
// 3. writes: invalidation after a successful unsafe request
mod write;
// rules attached where axum routes are declared; rules checked against routes
mod routes;
// The HTTP caching rules, one RFC concern per file.
mod http;

pub mod body;
pub mod future;

// What the admin service (`crate::admin`) explains requests with: the
// stages themselves, not a copy of them.
pub(crate) use self::{http::Reason, layer::Shared};
pub(crate) mod admin_view {
    pub(crate) use super::{
        http::{hit_status, vary_matches},
        lookup::{Candidate, Found, choose, sort},
        plan::{CacheRequest, Plan, WriteRequest, plan, request_host},
        write::uri_tag_of,
    };
}

// What the fuzz targets drive (`crate::fuzzing`).
#[cfg(fuzzing)]
pub(crate) mod fuzz_view {
    pub(crate) use super::http::{CacheControl, date_from};
}

#[cfg(feature = "axum")]
#[doc(inline)]
pub use self::routes::{RouteCache, RouteRulesLayer};
#[doc(inline)]
pub use self::{
    body::ResponseBody,
    cached::OriginUnreachable,
    http::{CACHE_STATUS, remove_hop_by_hop},
    layer::{
        DEFAULT_FLIGHT_WAIT, DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_VARIANTS, DEFAULT_STORE_TIMEOUT,
        TaggedCacheLayer,
    },
    service::TaggedCache,
};
