//! Keys, payloads and store calls that must succeed, for the checks that
//! reach behind Redis.

use std::time::Duration;

use bytes::Bytes;
use tower_tagged_cache::{FragmentedKey, Store, Tag, Version, store::Lookup};

/// A TTL that outlives every test.
pub(crate) const LONG: Duration = Duration::from_secs(600);

pub(crate) fn tag(s: &str) -> Tag {
    s.parse().expect("valid tag")
}

pub(crate) fn key<'a>(base: &str, tags: impl IntoIterator<Item = &'a Tag>) -> FragmentedKey {
    let mut b = FragmentedKey::builder(base, 1, "");
    for t in tags {
        b.push_tag(t.clone());
    }
    b.finish()
}

/// Entry bytes that are not text: NUL, 0xff, CR/LF, and a label.
pub(crate) fn payload(label: &str) -> Bytes {
    let mut v = vec![0u8, 0xff, b'\r', b'\n', 0x80];
    v.extend_from_slice(label.as_bytes());
    v.push(0);
    Bytes::from(v)
}

pub(crate) async fn lookup<S: Store>(store: &S, key: &FragmentedKey) -> Lookup {
    store.lookup(key).await.expect("lookup")
}

pub(crate) async fn put<S: Store>(store: &S, l: &Lookup, bytes: Bytes) {
    store
        .put(l.entry_key.clone(), bytes, LONG)
        .await
        .expect("put");
}

pub(crate) async fn version_of<S: Store>(store: &S, t: &Tag) -> Option<Version> {
    let mut v = store
        .versions(std::slice::from_ref(t))
        .await
        .expect("versions");
    assert_eq!(v.len(), 1);
    v.pop().unwrap()
}

pub(crate) async fn versions_of<S: Store>(store: &S, tags: &[Tag]) -> Vec<Option<Version>> {
    let v = store.versions(tags).await.expect("versions");
    assert_eq!(v.len(), tags.len(), "one answer per tag");
    v
}
