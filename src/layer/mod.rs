#![doc = include_str!("caching.md")]

mod flight;
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
    flow::OriginUnreachable,
    layer::{DEFAULT_FLIGHT_WAIT, DEFAULT_MAX_BODY_SIZE, DEFAULT_STORE_TIMEOUT, TaggedCacheLayer},
    policy::{CACHE_STATUS, remove_hop_by_hop},
    service::TaggedCache,
};
