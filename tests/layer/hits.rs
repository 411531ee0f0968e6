//! Misses, hits and invalidation by tag; `HEAD` served from the `GET`
//! entry; trailers stored and replayed.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower_tagged_cache::{Store, testing::Call};

use super::{
    counting, fixture, get, origin, send, stack,
    support::{
        self,
        scripted::{Scripted, Step},
    },
};

async fn miss_hit_invalidate<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let invalidator = layer.invalidator();
    let mut svc = stack(layer, counting(&calls));

    let first = send(&mut svc, get("/users/42")).await;
    assert_eq!(first.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(first.body, "call #1 for /users/42");
    store.until_completed(Call::Put, 1).await;

    let second = send(&mut svc, get("/users/42")).await;
    assert_eq!(second.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(second.body, first.body);
    assert_eq!(second.status, StatusCode::OK);
    let age: u64 = second.headers["age"].to_str().unwrap().parse().unwrap();
    assert!(age <= 5, "age {age}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another user is another entry.
    let other = send(&mut svc, get("/users/7")).await;
    assert_eq!(other.body, "call #2 for /users/7");
    store.until_completed(Call::Put, 2).await;

    invalidator.invalidate(["User:42"]).await.unwrap();
    let third = send(&mut svc, get("/users/42")).await;
    assert_eq!(third.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(third.body, "call #3 for /users/42");
    // User:7 was not touched.
    let other_again = send(&mut svc, get("/users/7")).await;
    assert_eq!(other_again.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(other_again.body, "call #2 for /users/7");
}

async fn head_uses_the_get_entry<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let mut svc = stack(layer, counting(&calls));
    let head = || Request::head("/users/1").body(Full::default()).unwrap();

    // A HEAD miss goes to the origin and stores nothing.
    let cold = send(&mut svc, head()).await;
    assert_eq!(
        cold.cache_status(),
        "tower-tagged-cache; fwd=miss; detail=head"
    );
    let first = send(&mut svc, get("/users/1")).await;
    assert_eq!(first.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    store.until_completed(Call::Put, 1).await;
    assert_eq!(
        store.completed(Call::Put),
        1,
        "the HEAD miss stored nothing"
    );

    let warm = send(&mut svc, head()).await;
    assert_eq!(warm.cache_status(), "tower-tagged-cache; hit");
    assert!(warm.body.is_empty());
    assert_eq!(warm.headers["content-length"], first.body.len().to_string());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

async fn trailers_are_stored_and_replayed<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let inner = origin(calls.clone(), |_, _| {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        Response::new(Scripted::steps([
            Step::Data(Bytes::from_static(b"part one, ")),
            Step::Data(Bytes::from_static(b"part two")),
            Step::Trailers(trailers),
        ]))
    });
    let mut svc = stack(layer, inner);
    let miss = send(&mut svc, get("/users/1")).await;
    assert_eq!(miss.body, "part one, part two");
    assert_eq!(miss.trailers.as_ref().unwrap()["grpc-status"], "0");
    store.until_completed(Call::Put, 1).await;
    let hit = send(&mut svc, get("/users/1")).await;
    assert_eq!(hit.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(hit.body, "part one, part two");
    assert_eq!(hit.trailers.as_ref().unwrap()["grpc-status"], "0");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A store whose entries come back with one bit flipped in the body once
/// `damage` is set (a disk, a network or a writer gone wrong). A fault
/// injector: lookups and writes are the wrapped store's.
#[derive(Clone)]
struct Damaging<St> {
    inner: St,
    damage: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<St: Store> Store for Damaging<St> {
    async fn lookup<'a>(
        &'a self,
        key: &'a tower_tagged_cache::key::FragmentedKey,
    ) -> Result<tower_tagged_cache::store::Lookup, tower_tagged_cache::Error> {
        let mut lookup = self.inner.lookup(key).await?;
        if self.damage.load(Ordering::SeqCst) {
            lookup.entry = lookup.entry.map(|bytes| {
                let mut damaged = bytes.to_vec();
                // The body ("call #1 for /users/42") sits before the
                // trailer flag and the checksum.
                let at = damaged.len() - 4 - 1 - 2;
                damaged[at] ^= 0x01;
                Bytes::from(damaged)
            });
        }
        Ok(lookup)
    }

    async fn put(
        &self,
        key: tower_tagged_cache::store::EntryKey,
        value: Bytes,
        ttl: std::time::Duration,
    ) -> Result<(), tower_tagged_cache::Error> {
        self.inner.put(key, value, ttl).await
    }

    async fn delete(
        &self,
        key: tower_tagged_cache::store::EntryKey,
    ) -> Result<(), tower_tagged_cache::Error> {
        self.inner.delete(key).await
    }

    async fn bump<'a>(
        &'a self,
        tags: &'a [tower_tagged_cache::Tag],
    ) -> Result<(), tower_tagged_cache::Error> {
        self.inner.bump(tags).await
    }

    async fn epoch(
        &self,
    ) -> Result<Option<tower_tagged_cache::key::Version>, tower_tagged_cache::Error> {
        self.inner.epoch().await
    }

    async fn bump_epoch(&self) -> Result<(), tower_tagged_cache::Error> {
        self.inner.bump_epoch().await
    }

    async fn versions<'a>(
        &'a self,
        tags: &'a [tower_tagged_cache::Tag],
    ) -> Result<Vec<Option<tower_tagged_cache::key::Version>>, tower_tagged_cache::Error> {
        self.inner.versions(tags).await
    }
}

async fn a_damaged_entry_is_a_miss_never_a_wrong_body<St: Store>(store: St) {
    let damage = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (store, calls, layer) = fixture(Damaging {
        inner: store,
        damage: damage.clone(),
    });
    let mut svc = stack(layer, counting(&calls));
    let first = send(&mut svc, get("/users/42")).await;
    assert_eq!(first.body, "call #1 for /users/42");
    store.until_completed(Call::Put, 1).await;
    assert_eq!(send(&mut svc, get("/users/42")).await.body, first.body);

    damage.store(true, Ordering::SeqCst);
    // Without the checksum the damaged entry decodes: "call #1 for
    // /users/52" would be served. It is a miss, recomputed.
    // (The first miss's flight may still be open, and hand over what it
    // computed: the right body too.)
    let after = send(&mut svc, get("/users/42")).await;
    let status = after.cache_status().to_owned();
    match status.as_str() {
        "tower-tagged-cache; fwd=miss; stored" => {
            assert_eq!(after.body, "call #2 for /users/42");
            assert_eq!(calls.load(Ordering::SeqCst), 2);
        }
        "tower-tagged-cache; hit; detail=coalesced" => assert_eq!(after.body, first.body),
        other => panic!("a damaged entry answered {other}: {:?}", after.body),
    }
}

support::every_store!(
    a_damaged_entry_is_a_miss_never_a_wrong_body,
    miss_hit_invalidate,
    head_uses_the_get_entry,
    trailers_are_stored_and_replayed,
);
