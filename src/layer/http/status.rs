//! The `Cache-Status` vocabulary (RFC 9211): one member per decision, `hit`
//! or `fwd=` with the `detail=` that says why.

use http::{HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind};

/// The `Cache-Status` response header.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Why a response was not served from, or stored into, the cache. Each shows
/// as `detail=<reason>` in `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    // The request was not eligible (`fwd=bypass`).
    NoRule,
    Method,
    Authorization,
    Cookie,
    BadPath,
    /// A value declared with `param(..)` is missing or not canonical.
    BadParam,
    /// A rule attached to an axum route does not fit the route (a
    /// placeholder names no parameter of it); logged when first seen.
    BadRule,
    /// The request names two hosts (a target's authority and a `Host` that
    /// differs, several `Host`s, or one that is not text): which one the
    /// service behind answers for is unknown, so nothing is served or
    /// stored for it.
    HostMismatch,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    /// A write succeeded and its tags were bumped.
    Invalidated,
    /// A write succeeded but bumping its tags failed.
    InvalidationFailed,
    /// A write succeeded; the store did not take the bump, so it waits in
    /// the outbox and is re-applied until it lands.
    InvalidationQueued,
    /// A tag of the entry has a bump waiting in this process's outbox: the
    /// stored entry may be what the bump hides, so it is not served.
    PendingInvalidation,
    // The response was not stored (`fwd=miss`).
    Head,
    Status,
    SetCookie,
    NoStore,
    Private,
    NoCache,
    MaxAge,
    NoFreshness,
    OnlyIfCached,
    Vary,
    TooLarge,
    /// The body failed, was cut short or was dropped by a client that went
    /// away. Only counted: the response is out by then, so no
    /// `Cache-Status` says it.
    Incomplete,
}

impl Reason {
    /// Why a request bypasses the cache after a failed store call.
    pub(crate) fn from_store_error(err: &Error) -> Self {
        match err.kind() {
            ErrorKind::Unavailable => Reason::StoreUnavailable,
            ErrorKind::Timeout => Reason::StoreTimeout,
            _ => Reason::StoreError,
        }
    }
}

macro_rules! status_values {
    ($($reason:ident => $fwd:literal, $detail:literal;)*) => {
        impl Reason {
            /// Every reason, in declaration order (`ALL[r as usize] == r`).
            pub(crate) const ALL: &[Reason] = &[$(Reason::$reason),*];

            /// How many reasons there are.
            pub(crate) const COUNT: usize = Self::ALL.len();

            /// The `detail=` token.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $(Reason::$reason => $detail,)* }
            }

            /// The whole `Cache-Status` member.
            pub(crate) fn header(self) -> HeaderValue {
                match self {
                    $(Reason::$reason => HeaderValue::from_static(concat!(
                        "tower-tagged-cache; fwd=", $fwd, "; detail=", $detail
                    )),)*
                }
            }
        }
    };
}

status_values! {
    NoRule => "bypass", "no-rule";
    Method => "bypass", "method";
    Authorization => "bypass", "authorization";
    Cookie => "bypass", "cookie";
    BadPath => "bypass", "bad-path";
    BadParam => "bypass", "bad-param";
    BadRule => "bypass", "bad-rule";
    HostMismatch => "bypass", "host-mismatch";
    StoreError => "bypass", "store-error";
    StoreTimeout => "bypass", "store-timeout";
    StoreUnavailable => "bypass", "store-unavailable";
    Invalidated => "bypass", "invalidated";
    InvalidationFailed => "bypass", "invalidation-failed";
    InvalidationQueued => "bypass", "invalidation-queued";
    PendingInvalidation => "bypass", "pending-invalidation";
    Head => "miss", "head";
    Status => "miss", "status";
    SetCookie => "miss", "set-cookie";
    NoStore => "miss", "no-store";
    Private => "miss", "private";
    NoCache => "miss", "no-cache";
    MaxAge => "miss", "max-age";
    NoFreshness => "miss", "no-freshness";
    OnlyIfCached => "miss", "only-if-cached";
    Vary => "miss", "vary";
    TooLarge => "miss", "too-large";
    Incomplete => "miss", "incomplete";
}

/// Why a stored response could not be used, so the inner service ran
/// (RFC 9211 `fwd=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fwd {
    /// Nothing was stored.
    Miss,
    /// A response was stored, for other values of its `Vary` headers.
    VaryMiss,
    /// The stored response was stale.
    Stale,
    /// The request asked not to be served from the cache (`no-cache`).
    Request,
}

impl Fwd {
    /// The `fwd=` token.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fwd::Miss => "miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Request => "request",
        }
    }

    /// `Cache-Status` when the inner response is stored.
    pub(crate) fn stored(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Fwd::Miss => "tower-tagged-cache; fwd=miss; stored",
            Fwd::VaryMiss => "tower-tagged-cache; fwd=vary-miss; stored",
            Fwd::Stale => "tower-tagged-cache; fwd=stale; stored",
            Fwd::Request => "tower-tagged-cache; fwd=request; stored",
        })
    }
}

pub(crate) fn hit_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; hit")
}

/// A hit on a response another request computed (single-flight).
pub(crate) fn coalesced_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; hit; detail=coalesced")
}

/// A stale entry revalidated by the origin with `304 Not Modified`.
pub(crate) fn revalidated_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; fwd=stale; fwd-status=304; stored")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_renders_a_valid_member() {
        assert_eq!(
            Reason::SetCookie.header(),
            "tower-tagged-cache; fwd=miss; detail=set-cookie"
        );
        assert_eq!(
            Reason::Authorization.header(),
            "tower-tagged-cache; fwd=bypass; detail=authorization"
        );
        assert_eq!(Reason::TooLarge.as_str(), "too-large");
        // Counters index by `as usize`: the table must list every reason in
        // declaration order.
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "{reason:?}");
        }
        assert_eq!(Reason::COUNT, Reason::Incomplete as usize + 1);
        assert_eq!(
            Fwd::VaryMiss.stored(),
            "tower-tagged-cache; fwd=vary-miss; stored"
        );
    }
}
