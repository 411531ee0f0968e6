//! Builders shared by the unit tests of this module.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use http_body_util::Full;

use super::{
    request::RequestPolicy,
    status::Reason,
    storable::{Timing, check_response},
};
use crate::{rules::CacheRule, rules::CompiledRule};

pub(super) fn rule(r: CacheRule) -> CompiledRule {
    r.compile().unwrap()
}

pub(super) fn res(headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut b = Response::builder();
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from_static(b"hello"))).unwrap()
}

pub(super) const NOW: Timing = Timing {
    request_ms: 1_800_000_000_000,
    response_ms: 1_800_000_000_000,
};

pub(super) fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

pub(super) fn fresh_for(r: &CompiledRule, h: &[(&str, &str)]) -> Result<Duration, Reason> {
    check_response(
        &Method::GET,
        &RequestPolicy::default(),
        &res(h),
        r,
        1024,
        NOW,
    )
    .map(|s| s.freshness)
}

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}
