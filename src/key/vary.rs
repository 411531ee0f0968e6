use std::{borrow::Cow, fmt, sync::Arc};

use http::{HeaderName, request::Parts};

type VaryFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// One request value a cached response depends on, besides its tags.
///
/// Two requests that differ in any vary-on value never share an entry. A value
/// that is absent from the request and one that is present but empty are
/// different values.
///
/// ```
/// use tower_tagged_cache::VaryOn;
///
/// let rules = [
///     VaryOn::header("accept-language"),
///     VaryOn::query("page"),
///     VaryOn::path_param("id"),
///     VaryOn::from_fn("tenant", |parts| {
///         parts.headers.get("x-tenant")?.to_str().ok().map(str::to_owned)
///     }),
/// ];
/// assert_eq!(rules[0].name(), "header:accept-language");
/// ```
#[derive(Clone)]
pub struct VaryOn(Source);

#[derive(Clone)]
enum Source {
    Header(HeaderName),
    Query(String),
    PathParam(String),
    Fn(String, VaryFn),
}

impl VaryOn {
    /// Varies on every value of a request header (`Accept-Language`, ...).
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name; use a constant such as
    /// [`http::header::ACCEPT`] to avoid that.
    pub fn header<N>(name: N) -> Self
    where
        N: TryInto<HeaderName>,
        N::Error: fmt::Debug,
    {
        let name = name
            .try_into()
            .expect("VaryOn::header: invalid header name");
        Self(Source::Header(name))
    }

    /// Varies on a query parameter (every occurrence, in order).
    pub fn query(name: impl Into<String>) -> Self {
        Self(Source::Query(name.into()))
    }

    /// Varies on a path parameter of the rule's route (`id` in `/users/{id}`).
    /// The request path is always part of the key; this is for rules that
    /// ignore the path.
    pub fn path_param(name: impl Into<String>) -> Self {
        Self(Source::PathParam(name.into()))
    }

    /// Varies on anything a closure can read from the request head.
    pub fn from_fn<F>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self(Source::Fn(name.into(), Arc::new(f)))
    }

    /// The name this value is hashed under: `header:<name>`, `query:<name>`,
    /// `path:<name>` or `fn:<name>`.
    pub fn name(&self) -> String {
        match &self.0 {
            Source::Header(h) => format!("header:{h}"),
            Source::Query(q) => format!("query:{q}"),
            Source::PathParam(p) => format!("path:{p}"),
            Source::Fn(n, _) => format!("fn:{n}"),
        }
    }

    /// The header this value reads, if it reads one.
    pub fn header_name(&self) -> Option<&HeaderName> {
        match &self.0 {
            Source::Header(h) => Some(h),
            _ => None,
        }
    }

    pub(crate) fn path_param_name(&self) -> Option<&str> {
        match &self.0 {
            Source::PathParam(p) => Some(p),
            _ => None,
        }
    }

    /// Reads the value as text, for a tag placeholder: a header's values
    /// joined by `", "` (`None` if one is not visible ASCII), a query
    /// parameter's first occurrence, percent-decoded.
    pub(crate) fn extract_text(
        &self,
        parts: &Parts,
        path_param: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        match &self.0 {
            Source::Header(h) => {
                let mut out: Option<String> = None;
                for value in parts.headers.get_all(h) {
                    let value = value.to_str().ok()?;
                    match &mut out {
                        None => out = Some(value.to_owned()),
                        Some(out) => {
                            out.push_str(", ");
                            out.push_str(value);
                        }
                    }
                }
                out
            }
            Source::Query(name) => form_urlencoded::parse(parts.uri.query()?.as_bytes())
                .find(|(k, _)| k == name.as_str())
                .map(|(_, v)| v.into_owned()),
            Source::PathParam(name) => path_param(name),
            Source::Fn(_, f) => f(parts),
        }
    }

    /// Reads the value from a request.
    pub(crate) fn extract<'a>(
        &self,
        parts: &'a Parts,
        path_param: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<Cow<'a, [u8]>> {
        match &self.0 {
            Source::Header(h) => {
                let mut values = parts.headers.get_all(h).iter();
                let first = values.next()?;
                match values.next() {
                    None => Some(Cow::Borrowed(first.as_bytes())),
                    Some(second) => {
                        // A header value never holds NUL, so joining with it
                        // keeps distinct lists distinct.
                        let mut joined = first.as_bytes().to_vec();
                        for v in std::iter::once(second).chain(values) {
                            joined.push(0);
                            joined.extend_from_slice(v.as_bytes());
                        }
                        Some(Cow::Owned(joined))
                    }
                }
            }
            Source::Query(name) => {
                let query = parts.uri.query()?;
                let mut found: Option<Vec<u8>> = None;
                for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                    if k == name.as_str() {
                        let buf = found.get_or_insert_with(Vec::new);
                        // Length-prefix each occurrence so `a=1,2` and
                        // `a=1&a=2` differ.
                        buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
                        buf.extend_from_slice(v.as_bytes());
                    }
                }
                found.map(Cow::Owned)
            }
            Source::PathParam(name) => path_param(name).map(|v| Cow::Borrowed(v.as_bytes())),
            Source::Fn(_, f) => f(parts).map(|v| Cow::Owned(v.into_bytes())),
        }
    }
}

impl fmt::Debug for VaryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaryOn({})", self.name())
    }
}

impl From<HeaderName> for VaryOn {
    fn from(name: HeaderName) -> Self {
        Self(Source::Header(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn header_values_absent_empty_and_repeated() {
        let v = VaryOn::header("accept-language");
        let none = parts("/", &[]);
        assert_eq!(v.extract(&none, |_| None), None);
        let empty = parts("/", &[("accept-language", "")]);
        assert_eq!(v.extract(&empty, |_| None).as_deref(), Some(&b""[..]));
        let two = parts("/", &[("accept-language", "en"), ("accept-language", "fr")]);
        let one = parts("/", &[("accept-language", "en,fr")]);
        assert_ne!(v.extract(&two, |_| None), v.extract(&one, |_| None));
    }

    #[test]
    fn query_values_are_decoded_and_distinguished() {
        let v = VaryOn::query("page");
        let a = parts("/?page=2", &[]);
        let b = parts("/?page=%32", &[]);
        assert_eq!(v.extract(&a, |_| None), v.extract(&b, |_| None));
        let c = parts("/?page=1&page=2", &[]);
        let d = parts("/?page=1%262", &[]);
        assert_ne!(v.extract(&c, |_| None), v.extract(&d, |_| None));
        assert_eq!(v.extract(&parts("/?other=1", &[]), |_| None), None);
    }

    #[test]
    fn closures_and_path_params() {
        let f = VaryOn::from_fn("m", |p| Some(p.method.to_string()));
        assert_eq!(
            f.extract(&parts("/", &[]), |_| None).as_deref(),
            Some(&b"GET"[..])
        );
        let p = VaryOn::path_param("id");
        let req = parts("/", &[]);
        let got = p.extract(&req, |n| (n == "id").then_some("9"));
        assert_eq!(got.as_deref(), Some(&b"9"[..]));
    }
}
