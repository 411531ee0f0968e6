//! The HTTP caching rules of a shared cache, one RFC concern per file: what
//! may be stored and for how long (RFC 9111 §3, §4.2), when a stored response
//! may answer (§4.1, §4.2, §4.3) and the `Cache-Status` that says so (RFC
//! 9211).

mod cache_control;
mod conditional;
mod date;
mod headers;
mod request;
mod reuse;
mod status;
mod storable;
#[cfg(test)]
mod test_support;
mod vary;

pub use self::{headers::remove_hop_by_hop, status::CACHE_STATUS};

pub(crate) use self::{
    conditional::{byte_range, merge_not_modified, not_modified, not_modified_headers},
    headers::{content_length, storable_headers},
    request::{RequestPolicy, check_request},
    reuse::{may_serve_stale, shareable_with_authorization, usable_without_origin},
    status::{Fwd, Reason, coalesced_status, hit_status, revalidated_status},
    storable::{Timing, check_headers, check_response},
    vary::{RequestVary, variant_flight, vary_matches, vary_values},
};

// What the fuzz targets drive (`crate::fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::{cache_control::CacheControl, date::date_from};
