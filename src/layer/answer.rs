//! The answer stage: responses the cache makes itself from a stored entry
//! (a hit, a `304` to a conditional request, a `206` for a byte range, a
//! stale copy), and the `cache-status` every response carries.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use super::{
    ResponseBody,
    http::{CACHE_STATUS, Reason, byte_range, hit_status, not_modified, not_modified_headers},
};
use crate::{clock::now_ms, store::entry::CachedResponse};

/// What the layer's futures resolve to.
pub(crate) type Result<B, E> = std::result::Result<Response<ResponseBody<B>>, E>;

/// Adds `cache-status` to a response.
pub(crate) fn with_status<B>(mut res: Response<B>, status: HeaderValue) -> Response<B> {
    res.headers_mut().append(CACHE_STATUS, status);
    res
}

/// RFC 9111 §5.2.1.7: `only-if-cached` and no stored response to use, so
/// `504`.
pub(crate) fn only_if_cached<B>() -> Response<ResponseBody<B>> {
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_STATUS, Reason::OnlyIfCached.header());
    from_store(StatusCode::GATEWAY_TIMEOUT, headers, Bytes::new(), None)
}

/// The `cache-status` of a stale copy served because the origin failed
/// with `origin_status`.
pub(crate) fn served_stale_status(origin_status: StatusCode) -> HeaderValue {
    let status = format!(
        "tower-tagged-cache; fwd=stale; fwd-status={}; detail=served-stale",
        origin_status.as_u16()
    );
    HeaderValue::from_str(&status).unwrap_or_else(|_| hit_status())
}

/// Answers from a stored response: `304` when the request's conditionals
/// match it, else the stored status, headers, body and trailers (no body for
/// `HEAD`), with `Age`.
pub(crate) fn answer<B>(
    entry: CachedResponse,
    req_headers: &HeaderMap,
    method: &Method,
    status: HeaderValue,
) -> Response<ResponseBody<B>> {
    let age = HeaderValue::from(entry.age_secs(now_ms()));
    let head = method == Method::HEAD;
    if entry.status.is_success() && not_modified(req_headers, &entry.headers) {
        let mut headers = not_modified_headers(&entry.headers);
        headers.insert(header::AGE, age);
        headers.append(CACHE_STATUS, status);
        return from_store(StatusCode::NOT_MODIFIED, headers, Bytes::new(), None);
    }
    let CachedResponse {
        status: code,
        mut headers,
        body,
        trailers,
        ..
    } = entry;
    headers.insert(header::AGE, age);
    headers.append(CACHE_STATUS, status);
    if code == StatusCode::OK
        && let Some(range) = byte_range(req_headers, &headers, body.len() as u64)
    {
        // A single range of a stored complete response (RFC 9110 §15.3.7).
        let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, body.len());
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            headers.insert(header::CONTENT_RANGE, value);
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(range.end - range.start),
            );
            let part = body.slice(range.start as usize..range.end as usize);
            let part = if head { Bytes::new() } else { part };
            return from_store(StatusCode::PARTIAL_CONTENT, headers, part, None);
        }
    }
    if trailers.is_none() && !headers.contains_key(header::CONTENT_LENGTH) {
        // A HEAD answer carries the length of the GET body it stands for.
        // (With trailers the body goes chunked, so no length.)
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if head {
        from_store(code, headers, Bytes::new(), None)
    } else {
        from_store(code, headers, body, trailers)
    }
}

/// A response made by the cache itself, from stored parts.
fn from_store<B>(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::cached(body, trailers));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}
