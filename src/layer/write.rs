//! The write stage: a successful unsafe request bumps the tags of its write
//! rule (after a 2xx, i.e. after the handler committed) and the per-URI tag
//! of its target and of a same-host `Location` / `Content-Location` (after a
//! 2xx or 3xx, RFC 9111 §4.4), in one store round trip.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, header};
use tower_service::Service;

use super::{
    ResponseBody,
    answer::{Result, with_status},
    http::Reason,
    layer::Shared,
    plan::{WriteRequest, same_host},
};
use crate::{
    invalidate::Invalidator,
    key::{Tag, uri_tag},
    store::Store,
    telemetry,
};

/// Makes the [`Invalidator`] reachable from handlers as a request extension.
pub(crate) fn add_invalidator<St: Store, B>(
    shared: &Shared<St>,
    req: &mut Request<B>,
) -> Invalidator {
    let invalidator = shared.invalidator();
    req.extensions_mut().insert(invalidator.clone());
    invalidator
}

pub(crate) async fn invalidating<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    plan: WriteRequest,
) -> Result<ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
{
    let invalidator = add_invalidator(&shared, &mut req);
    let res = inner.call(req).await?;
    // Bump only after the handler answered, i.e. after it committed: a bump
    // before the commit would let a reader cache old data under the new
    // version.
    let mut tags = Vec::new();
    if res.status().is_success() {
        tags.extend(plan.rule_tags);
    }
    if res.status().is_success() || res.status().is_redirection() {
        if let Some(other) = &plan.other_host {
            tags.extend(uri_tag_of(&shared, other, &plan.path));
        }
        let mut uri = |path: &str| tags.extend(uri_tag_of(&shared, &plan.host, path));
        uri(&plan.path);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(path) = res
                .headers()
                .get(&name)
                .and_then(|v| same_host_path(v, &plan.host, &plan.path))
            {
                uri(&path);
            }
        }
    }
    if tags.is_empty() {
        telemetry::bypass(&plan.rule, Reason::Method);
        return Ok(with_status(
            res.map(ResponseBody::inner),
            Reason::Method.header(),
        ));
    }
    let status = match invalidator.invalidate(&tags).await {
        Ok(bump) if bump.is_applied() => {
            telemetry::invalidated(&plan.rule);
            Reason::Invalidated
        }
        Ok(_) => {
            // Re-applied until it lands; this process serves nothing that
            // depends on these tags meanwhile.
            telemetry::bypass(&plan.rule, Reason::InvalidationQueued);
            Reason::InvalidationQueued
        }
        Err(err) => {
            telemetry::invalidation_failed(&err, &tags);
            telemetry::bypass(&plan.rule, Reason::InvalidationFailed);
            Reason::InvalidationFailed
        }
    };
    Ok(with_status(res.map(ResponseBody::inner), status.header()))
}

/// The per-URI tag a successful (2xx or 3xx) write to `path` on `host`
/// bumps, if any: when unsafe requests invalidate at all, and only for URIs
/// something may be stored under unless every URI is bumped (the default).
pub(crate) fn uri_tag_of<St>(shared: &Shared<St>, host: &str, path: &str) -> Option<Tag> {
    let cached =
        || shared.invalidate_unnamed || shared.rules.caches(path) || shared.attached.caches(path);
    (shared.invalidate_unsafe && cached()).then(|| uri_tag(host, path))
}

/// The path a `Location` or `Content-Location` value points to, when it is
/// on the request's host (RFC 9111 §4.4 invalidates only those).
fn same_host_path(value: &HeaderValue, host: &str, request_path: &str) -> Option<String> {
    let value = value.to_str().ok()?.trim();
    let strip = |s: &str| s.split(['?', '#']).next().unwrap_or("").to_owned();
    let absolute = match value.strip_prefix("http://") {
        Some(rest) => Some((rest, "http")),
        None => value.strip_prefix("https://").map(|rest| (rest, "https")),
    };
    if let Some((rest, scheme)) = absolute {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let authority = authority.split(['?', '#']).next().unwrap_or("");
        // The request's host is normalised; so is this one.
        if !same_host(authority, host, Some(scheme)) {
            return None;
        }
        let path = strip(path);
        return Some(if path.is_empty() {
            "/".to_owned()
        } else {
            path
        });
    }
    if value.starts_with("//") || value.contains("://") {
        return None;
    }
    if value.starts_with('/') {
        return Some(strip(value));
    }
    // Relative to the request's directory.
    let dir = &request_path[..request_path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{dir}{}", strip(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_on_the_same_host() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        let host = "example.com:8020";
        assert_eq!(
            same_host_path(&h("/a/b?x=1"), host, "/p/q"),
            Some("/a/b".into())
        );
        assert_eq!(
            same_host_path(&h("http://Example.com:8020/a#f"), host, "/p"),
            Some("/a".into())
        );
        assert_eq!(
            same_host_path(&h("https://example.com:8020"), host, "/p"),
            Some("/".into())
        );
        assert_eq!(same_host_path(&h("http://other.com/a"), host, "/p"), None);
        assert_eq!(same_host_path(&h("//example.com:8020/a"), host, "/p"), None);
        assert_eq!(same_host_path(&h("c"), host, "/p/q"), Some("/p/c".into()));
        // Spellings of one host: the default port, userinfo, case, a
        // trailing dot (the request's host is normalised the same way).
        for location in [
            "http://Example.org:80/a",
            "http://u@example.org/a",
            "https://example.org:443/a",
            "http://example.org./a",
        ] {
            assert_eq!(
                same_host_path(&h(location), "example.org", "/p"),
                Some("/a".into()),
                "{location}"
            );
        }
    }
}
