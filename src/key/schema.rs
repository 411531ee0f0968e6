//! What of an HTTP request goes into its key: the layer's key schema and the
//! per-URI tag.

use std::{borrow::Cow, sync::Arc};

use super::{FragmentedKey, Tag};

/// The name of the per-URI tag every cached response carries, so that a
/// write to a URI invalidates what is stored for it (RFC 9111 §4.4). Names
/// starting with `_` are reserved for the crate.
pub(crate) const URI_TAG: &str = "_uri";

/// The per-URI tag of `host` + `path`. The query is left out: a write to
/// `/feed` invalidates `/feed?page=2` too.
pub(crate) fn uri_tag(host: &str, path: &str) -> Tag {
    Tag::from_parts(Arc::from(URI_TAG), format!("{host}{path}"))
}

/// The static parts of a cached request's key, in the order they are
/// hashed (each length-prefixed by the key builder).
pub(crate) struct HttpKey<'a> {
    pub(crate) rule: &'a str,
    pub(crate) key_version: u32,
    pub(crate) group: &'a str,
    /// The layer's namespace (empty by default).
    pub(crate) namespace: &'a str,
    /// Lowercased (see [`request_host`](crate::layer)).
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    /// `None` for rules that ignore the query.
    pub(crate) query: Option<Option<&'a str>>,
    /// Whether the key carries the per-URI tag of `host` + `path`.
    pub(crate) uri_tag: bool,
}

impl HttpKey<'_> {
    /// The key: these parts, then the rule's vary-on values in declared
    /// order, then its tags (sorted and de-duplicated by the builder).
    /// GET and HEAD share entries: the method class is constant.
    pub(crate) fn derive<'v, V, T>(&self, vary: V, tags: T) -> FragmentedKey
    where
        V: IntoIterator<Item = (&'v str, Option<Cow<'v, [u8]>>)>,
        T: IntoIterator<Item = Tag>,
    {
        let mut b = FragmentedKey::builder(self.rule, self.key_version, self.group);
        b.push_vary(":namespace", Some(self.namespace.as_bytes()));
        b.push_vary(":method", Some(b"GET"));
        b.push_vary(":authority", Some(self.host.as_bytes()));
        b.push_vary(":path", Some(self.path.as_bytes()));
        if let Some(query) = self.query {
            b.push_vary(":query", query.map(str::as_bytes));
        }
        for (name, value) in vary {
            b.push_vary(name, value.as_deref());
        }
        if self.uri_tag {
            b.push_tag(uri_tag(self.host, self.path));
        }
        for tag in tags {
            b.push_tag(tag);
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(path: &'a str, query: Option<Option<&'a str>>) -> HttpKey<'a> {
        HttpKey {
            rule: "r",
            key_version: 1,
            group: "",
            namespace: "",
            host: "example.com",
            path,
            query,
            uri_tag: true,
        }
    }

    fn id(k: &HttpKey<'_>) -> String {
        k.derive([], []).entry_id(&[])
    }

    #[test]
    fn every_static_part_counts_and_the_query_only_when_kept() {
        let base = id(&key("/a", Some(None)));
        assert_ne!(base, id(&key("/b", Some(None))));
        assert_ne!(base, id(&key("/a", Some(Some("x=1")))));
        // `?` with nothing after it is not the same as no query.
        assert_ne!(base, id(&key("/a", Some(Some("")))));
        // A rule that ignores the query: every query shares one key.
        assert_eq!(id(&key("/a", None)), id(&key("/a", None)));
        assert_ne!(base, id(&key("/a", None)));
        let mut other = key("/a", Some(None));
        other.namespace = "admin";
        assert_ne!(base, id(&other));
    }

    #[test]
    fn the_uri_tag_is_host_and_path_only() {
        let k = key("/users/1", Some(Some("page=2"))).derive([], []);
        assert_eq!(k.tags(), &[uri_tag("example.com", "/users/1")]);
        assert_eq!(uri_tag("h", "/p").instance(), "h/p");
        assert_eq!(uri_tag("h", "/p").name(), URI_TAG);
    }
}
