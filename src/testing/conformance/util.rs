//! What the checks share, and what a check of your own can use: keys,
//! payloads, store calls that must succeed, and a way to start calls at the
//! same instant.

use std::{future::Future, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{
    key::{FragmentedKey, Tag, Version},
    store::Lookup,
    store::Store,
};

/// A TTL that outlives every check.
pub const LONG: Duration = Duration::from_secs(600);

/// A tag from `Name:instance`.
///
/// # Panics
///
/// When `s` is not a valid tag.
pub fn tag(s: &str) -> Tag {
    s.parse().expect("valid tag")
}

/// A key on `base` with these tags.
pub fn key<'a>(base: &str, tags: impl IntoIterator<Item = &'a Tag>) -> FragmentedKey {
    let mut b = FragmentedKey::builder(base, 1, "");
    for t in tags {
        b.push_tag(t.clone());
    }
    b.finish()
}

/// Entry bytes that are not text: NUL, 0xff, CR/LF, and a label.
pub fn payload(label: &str) -> Bytes {
    let mut v = vec![0u8, 0xff, b'\r', b'\n', 0x80];
    v.extend_from_slice(label.as_bytes());
    v.push(0);
    Bytes::from(v)
}

/// [`Store::lookup`], which must succeed.
///
/// # Panics
///
/// When the store fails.
pub async fn lookup<S: Store>(store: &S, key: &FragmentedKey) -> Lookup {
    store.lookup(key).await.expect("lookup")
}

/// Stores `bytes` under the entry key of `l` for [`LONG`], which must
/// succeed.
///
/// # Panics
///
/// When the store fails.
pub async fn put<S: Store>(store: &S, l: &Lookup, bytes: Bytes) {
    store
        .put(l.entry_key.clone(), bytes, LONG)
        .await
        .expect("put");
}

/// The version of one tag (`None`: never seeded).
///
/// # Panics
///
/// When the store fails or answers for more or fewer tags.
pub async fn version_of<S: Store>(store: &S, t: &Tag) -> Option<Version> {
    let mut v = store
        .versions(std::slice::from_ref(t))
        .await
        .expect("versions");
    assert_eq!(v.len(), 1);
    v.pop().unwrap()
}

/// The versions of `tags`, one answer per tag.
///
/// # Panics
///
/// When the store fails or answers for more or fewer tags.
pub async fn versions_of<S: Store>(store: &S, tags: &[Tag]) -> Vec<Option<Version>> {
    let v = store.versions(tags).await.expect("versions");
    assert_eq!(v.len(), tags.len(), "one answer per tag");
    v
}

/// Runs `f(0)`, ..., `f(n - 1)` on `n` OS threads released together, each
/// driving its future on the caller's runtime, so the calls truly overlap (a
/// runtime of two workers alone rarely interleaves an in-process store's
/// short critical sections). Works on both runtime flavors: the threads are
/// tokio's blocking threads, and the caller's task keeps the runtime's
/// drivers turning while it waits for them.
pub(super) async fn all_at_once<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let start = Arc::new(std::sync::Barrier::new(n));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (f, start, handle) = (f.clone(), start.clone(), handle.clone());
            tokio::task::spawn_blocking(move || {
                start.wait();
                handle.block_on(f(i))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for thread in threads {
        match thread.await {
            Ok(t) => out.push(t),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a racing thread did not finish: {e}"),
        }
    }
    out
}

/// Waits `d` of real time, whatever tokio's clock does: a store's TTLs run
/// on its own clock (Redis's, moka's), which a paused tokio clock does not
/// move.
pub(super) async fn real_sleep(d: Duration) {
    tokio::task::spawn_blocking(move || std::thread::sleep(d))
        .await
        .expect("a sleeping thread");
}
