//! The query of `/explain`: which request to explain. Everything in it is
//! untrusted input, checked here; a bad query is a `400` that says why.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header, request::Parts};

use super::report::escape;

/// The longest query `/explain` reads.
const MAX_QUERY: usize = 64 * 1024;

/// The most headers one explained request may carry.
const MAX_HEADERS: usize = 100;

/// A request to explain, as the query described it.
#[derive(Debug)]
pub(super) struct Explain {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
}

/// Why a query is refused; the message goes back to the caller.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadQuery(String);

impl BadQuery {
    fn new(msg: impl fmt::Display) -> Self {
        Self(escape(&msg.to_string()))
    }
}

impl fmt::Display for BadQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads `method=GET&url=/users/5&header=Name:%20value` (`header`
/// repeatable, `method` defaulting to `GET`).
pub(super) fn parse(query: Option<&str>) -> Result<Explain, BadQuery> {
    const USAGE: &str = "(as in /explain?method=GET&url=/users/1&header=Accept:%20text/html)";
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(BadQuery::new(format!(
            "the query is longer than {MAX_QUERY} bytes"
        )));
    }
    let mut method = None;
    let mut uri = None;
    let mut headers = HeaderMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "method" if method.is_some() => return Err(BadQuery::new("`method` is given twice")),
            "method" => method = Some(parse_method(&value)?),
            "url" if uri.is_some() => return Err(BadQuery::new("`url` is given twice")),
            "url" => uri = Some(parse_url(&value)?),
            "header" if headers.len() >= MAX_HEADERS => {
                return Err(BadQuery::new(format!("more than {MAX_HEADERS} headers")));
            }
            "header" => {
                let (name, value) = parse_header(&value)?;
                headers.append(name, value);
            }
            other => {
                return Err(BadQuery::new(format!(
                    "unknown parameter `{other}`: expected `method`, `url` or `header` {USAGE}"
                )));
            }
        }
    }
    let Some(uri) = uri else {
        return Err(BadQuery::new(format!("missing parameter `url` {USAGE}")));
    };
    Ok(Explain {
        method: method.unwrap_or(Method::GET),
        uri,
        headers,
    })
}

fn parse_method(value: &str) -> Result<Method, BadQuery> {
    Method::from_bytes(value.as_bytes())
        .map_err(|_| BadQuery::new(format!("`{value}` is not an HTTP method")))
}

/// A path with an optional query (`/users/1?tab=posts`), or an absolute
/// `http` or `https` URL (its host is the request's host).
fn parse_url(value: &str) -> Result<Uri, BadQuery> {
    let neither = || {
        BadQuery::new(format!(
            "`{value}` is neither a path (`/users/1`) nor an absolute http(s) URL"
        ))
    };
    if !value.starts_with('/') && !value.contains("://") {
        return Err(neither());
    }
    let uri: Uri = value
        .parse()
        .map_err(|e| BadQuery::new(format!("`{value}` is not a URL: {e}")))?;
    let absolute = matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some();
    let origin_form = uri.scheme().is_none() && uri.authority().is_none();
    if !(absolute || origin_form && value.starts_with('/')) {
        return Err(neither());
    }
    Ok(uri)
}

/// `Name: value`, split at the first `:`, optional whitespace trimmed.
fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), BadQuery> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(BadQuery::new(format!(
            "header `{line}` is not `Name: value`"
        )));
    };
    let name = name.trim();
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| BadQuery::new(format!("`{name}` is not a header name")))?;
    // The value is not echoed: it may be a credential.
    let value = HeaderValue::from_str(value.trim_matches([' ', '\t']))
        .map_err(|_| BadQuery::new(format!("the value of header `{name}` is not valid")))?;
    Ok((header_name, value))
}

impl Explain {
    /// The request head the layer would see: with `default_host` as its
    /// `Host` when the URL is a path and no `Host` header was given (an
    /// HTTP/1.1 request always carries one, and the host is part of the
    /// key).
    pub(super) fn parts(&self, default_host: Option<&HeaderValue>) -> Parts {
        let mut req = Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        if let Some(host) = default_host
            && self.uri.authority().is_none()
            && !self.headers.contains_key(header::HOST)
        {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        req.into_parts().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(query: &str) -> String {
        parse(Some(query)).unwrap_err().to_string()
    }

    #[test]
    fn a_full_query() {
        let q = parse(Some(
            "method=HEAD&url=%2Fusers%2F5%3Ftab%3Dposts&header=Accept:%20text/html&header=accept:+a/b&header=X-Empty:",
        ))
        .unwrap();
        assert_eq!(q.method, Method::HEAD);
        assert_eq!(q.uri.path(), "/users/5");
        assert_eq!(q.uri.query(), Some("tab=posts"));
        let accept: Vec<_> = q.headers.get_all("accept").iter().collect();
        assert_eq!(accept, ["text/html", "a/b"]);
        assert_eq!(q.headers["x-empty"], "");
    }

    #[test]
    fn method_defaults_to_get_and_urls_may_be_absolute() {
        let q = parse(Some("url=http://Example.com:8080/a")).unwrap();
        assert_eq!(q.method, Method::GET);
        assert_eq!(q.uri.authority().unwrap(), "Example.com:8080");
        // Extension methods are methods; case matters, as in HTTP.
        assert_eq!(parse(Some("method=PURGE&url=/")).unwrap().method, "PURGE");
        assert_eq!(parse(Some("method=get&url=/")).unwrap().method, "get");
    }

    #[test]
    fn bad_queries_say_why() {
        assert!(err("").starts_with("missing parameter `url`"));
        assert!(err("method=GET").starts_with("missing parameter `url`"));
        assert!(err("url=/a&url=/b").contains("given twice"));
        assert!(err("method=GET&method=PUT&url=/").contains("given twice"));
        assert!(err("url=/a&path=/b").starts_with("unknown parameter `path`"));
        assert_eq!(err("method=G%20T&url=/"), "`G T` is not an HTTP method");
        assert!(err("url=users/1").contains("neither a path"));
        assert!(err("url=example.com").contains("neither a path"));
        assert!(err("url=*").contains("neither a path"));
        assert!(err("url=ftp://example.com/a").contains("neither a path"));
        assert!(err("url=/a%20b").contains("is not a URL"));
        assert!(err("url=/&header=Accept").contains("is not `Name: value`"));
        assert!(err("url=/&header=Bad%20Name:%20x").contains("`Bad Name` is not a header name"));
        let secret = err("url=/&header=Authorization:%20secret%0A");
        assert_eq!(secret, "the value of header `Authorization` is not valid");
        let long = format!("url=/{}", "a".repeat(MAX_QUERY));
        assert!(err(&long).contains("longer than"));
        let many = format!("url=/{}", "&header=a:b".repeat(MAX_HEADERS + 1));
        assert!(err(&many).contains("more than"));
    }

    #[test]
    fn messages_escape_control_characters() {
        // A newline in the echoed input must not start a line of its own.
        assert_eq!(
            err("method=GET&url=/&x%0Ay=1"),
            "unknown parameter `x\\ny`: expected `method`, `url` or `header` (as in /explain?method=GET&url=/users/1&header=Accept:%20text/html)"
        );
    }

    #[test]
    fn the_default_host_applies_only_where_a_client_would_send_it() {
        let host = HeaderValue::from_static("app.example:3000");
        let path = parse(Some("url=/a")).unwrap();
        assert_eq!(path.parts(Some(&host)).headers["host"], "app.example:3000");
        assert!(path.parts(None).headers.get("host").is_none());
        let given = parse(Some("url=/a&header=Host:%20other")).unwrap();
        assert_eq!(given.parts(Some(&host)).headers["host"], "other");
        let absolute = parse(Some("url=http://abs.example/a")).unwrap();
        assert!(absolute.parts(Some(&host)).headers.get("host").is_none());
    }
}
