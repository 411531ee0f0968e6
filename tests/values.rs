//! The tag-aware value cache and the model registry, on both stores.

use crate::support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tower_tagged_cache::{
    ErrorKind, Store, TagCache,
    invalidate::WriteError,
    invalidate::{Event, Model, aggregate_tag, list_tag, model_tag},
    testing::{Call, PausableStore},
    values::constant_tag,
};

const TTL: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Profile {
    id: u64,
    name: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ProfileV2 {
    id: u64,
    name: String,
    email: String,
}

fn ada() -> Profile {
    Profile {
        id: 42,
        name: "Ada".into(),
    }
}

async fn get_set_delete_and_tags<St: Store>(store: St) {
    let cache = TagCache::new(store);
    let got: Option<Profile> = cache.get_with_tags("profile", ["User:42"]).await.unwrap();
    assert_eq!(got, None);
    cache
        .set_with_tags("profile", &ada(), ["User:42", "Org:7"], TTL)
        .await
        .unwrap();
    // Tags are a set: order does not matter.
    let got: Option<Profile> = cache
        .get_with_tags("profile", ["Org:7", "User:42"])
        .await
        .unwrap();
    assert_eq!(got, Some(ada()));
    // Another tag set is another key.
    let other: Option<Profile> = cache.get_with_tags("profile", ["User:42"]).await.unwrap();
    assert_eq!(other, None);
    // The type changed: a miss, not an error.
    let v2: Option<ProfileV2> = cache
        .get_with_tags("profile", ["User:42", "Org:7"])
        .await
        .unwrap();
    assert_eq!(v2, None);
    // Invalidation.
    cache.invalidator().invalidate(["Org:7"]).await.unwrap();
    let gone: Option<Profile> = cache
        .get_with_tags("profile", ["User:42", "Org:7"])
        .await
        .unwrap();
    assert_eq!(gone, None);
    // Delete.
    cache
        .set_with_tags("profile", &ada(), ["User:42"], TTL)
        .await
        .unwrap();
    cache
        .delete_with_tags("profile", ["User:42"])
        .await
        .unwrap();
    let deleted: Option<Profile> = cache.get_with_tags("profile", ["User:42"]).await.unwrap();
    assert_eq!(deleted, None);
    // Bad tags are errors.
    let err = cache
        .get_with_tags::<Profile, _>("profile", ["bad tag"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTag);
}

async fn groups_versions_vary_and_constants_namespace<St: Store>(store: St) {
    let cache = TagCache::new(store);
    let base = || cache.key("stats").tags(["Org:1"]);
    base().set(&1u32, TTL).await.unwrap();
    base().group("eu").set(&2u32, TTL).await.unwrap();
    base().version(2).set(&3u32, TTL).await.unwrap();
    base().vary("day", &"mon").set(&4u32, TTL).await.unwrap();
    base()
        .constant(constant_tag("Schema", 1))
        .set(&5u32, TTL)
        .await
        .unwrap();
    assert_eq!(base().get::<u32>().await.unwrap(), Some(1));
    assert_eq!(base().group("eu").get::<u32>().await.unwrap(), Some(2));
    assert_eq!(base().version(2).get::<u32>().await.unwrap(), Some(3));
    assert_eq!(
        base().vary("day", &"mon").get::<u32>().await.unwrap(),
        Some(4)
    );
    assert_eq!(base().vary("day", &"tue").get::<u32>().await.unwrap(), None);
    assert_eq!(
        base()
            .constant(constant_tag("Schema", 1))
            .get::<u32>()
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        base()
            .constant(constant_tag("Schema", 2))
            .get::<u32>()
            .await
            .unwrap(),
        None
    );
    // A constant tag is never read from the store.
    assert_eq!(
        cache.invalidator().tag_version("Schema").await.unwrap(),
        None
    );
    // The epoch reaches everything.
    assert!(cache.invalidator().bump_epoch().await.is_applied());
    assert_eq!(base().get::<u32>().await.unwrap(), None);
    assert_eq!(base().group("eu").get::<u32>().await.unwrap(), None);
}

/// Many tasks miss on one key at once: the loader runs once.
async fn get_or_set_loads_once<St: Store>(store: St) {
    const TASKS: usize = 40;
    let cache = TagCache::new(store);
    let loads = Arc::new(AtomicUsize::new(0));
    let (entered, started) = watch::channel(0usize);
    let entered = Arc::new(entered);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (cache, loads, entered, mut started) = (
            cache.clone(),
            loads.clone(),
            entered.clone(),
            started.clone(),
        );
        tasks.spawn(async move {
            entered.send_modify(|n| *n += 1);
            cache
                .get_or_set_with_tags("slow", ["User:1"], TTL, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Hold the load until every task has made its call.
                    started.wait_for(|n| *n == TASKS).await.unwrap();
                    for _ in 0..20 {
                        tokio::task::yield_now().await;
                    }
                    ada()
                })
                .await
                .unwrap()
        });
    }
    let results = tasks.join_all().await;
    assert!(results.iter().all(|p| *p == ada()));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // And later calls are hits.
    let again: Profile = cache
        .get_or_set_with_tags("slow", ["User:1"], TTL, || async { unreachable!("cached") })
        .await
        .unwrap();
    assert_eq!(again, ada());
}

struct Post {
    id: u64,
    author_id: u64,
}
impl Model for Post {
    const TAG: &'static str = "Post";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

struct Comment {
    id: u64,
    post_id: u64,
}
impl Model for Comment {
    const TAG: &'static str = "Comment";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

struct Author {
    id: u64,
    post_ids: Vec<u64>,
}
impl Model for Author {
    const TAG: &'static str = "Author";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

async fn model_events_bump_their_tags<St: Store>(store: St) {
    let cache = TagCache::new(store);
    let models = cache.models();
    models.register::<Post>().unwrap();
    models
        .register::<Comment>()
        .unwrap()
        .on([Event::Created, Event::Deleted], |c: &Comment| {
            vec![
                model_tag::<Post>(c.post_id),
                aggregate_tag::<Post>("comment_count"),
            ]
        });
    models
        .register::<Author>()
        .unwrap()
        .on([Event::Updated], |a: &Author| {
            a.post_ids.iter().map(model_tag::<Post>).collect()
        });
    assert!(models.is_registered::<Post>());
    assert_eq!(models.registered_models(), ["Author", "Comment", "Post"]);

    let version = |t: tower_tagged_cache::Tag| {
        let cache = cache.clone();
        async move { cache.invalidator().tag_version(t).await.unwrap() }
    };
    // A value that depends on post 1, and one on post 2.
    cache
        .set_with_tags("post-page", &"p1", [model_tag::<Post>(1)], TTL)
        .await
        .unwrap();
    cache
        .set_with_tags("post-page", &"p2", [model_tag::<Post>(2)], TTL)
        .await
        .unwrap();

    // A new comment on post 1 reaches post 1's page and nothing else.
    cache
        .invalidator()
        .created(&Comment { id: 9, post_id: 1 })
        .await
        .unwrap();
    let p1: Option<String> = cache
        .get_with_tags("post-page", [model_tag::<Post>(1)])
        .await
        .unwrap();
    let p2: Option<String> = cache
        .get_with_tags("post-page", [model_tag::<Post>(2)])
        .await
        .unwrap();
    assert_eq!((p1, p2.as_deref()), (None, Some("p2")));
    assert!(version(model_tag::<Comment>(9)).await.is_some());
    assert!(version(list_tag::<Comment>()).await.is_some());
    assert!(
        version(aggregate_tag::<Post>("comment_count"))
            .await
            .is_some()
    );

    // Updating a comment has no hook: post 2's page stays.
    let before = version(model_tag::<Post>(2)).await;
    cache
        .invalidator()
        .saved(&Comment { id: 10, post_id: 2 })
        .await
        .unwrap();
    assert_eq!(version(model_tag::<Post>(2)).await, before);

    // An author rename bumps every post of theirs.
    let before = version(model_tag::<Post>(2)).await;
    cache
        .invalidator()
        .saved(&Author {
            id: 3,
            post_ids: vec![2, 5],
        })
        .await
        .unwrap();
    assert_ne!(version(model_tag::<Post>(2)).await, before);
    assert!(version(model_tag::<Post>(5)).await.is_some());

    // Bulk and scope.
    let before = (
        version(model_tag::<Post>(7)).await,
        version(list_tag::<Post>()).await,
    );
    cache.invalidator().bulk::<Post, _>([7, 8]).await.unwrap();
    assert_ne!(version(model_tag::<Post>(7)).await, before.0);
    assert_ne!(version(list_tag::<Post>()).await, before.1);
    assert!(version(model_tag::<Post>(8)).await.is_some());
    cache.invalidator().scope::<Post>("author:3").await.unwrap();
    assert!(version("Post:author:3".parse().unwrap()).await.is_some());

    // Unregistered models are errors.
    models.unregister::<Author>();
    assert!(!models.is_registered::<Author>());
    let err = cache
        .invalidator()
        .saved(&Author {
            id: 3,
            post_ids: vec![],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");
    let post = Post {
        id: 1,
        author_id: 3,
    };
    assert_eq!(post.author_id, 3);
}

async fn bumps_only_after_the_write_succeeds<St: Store>(store: St) {
    let cache = TagCache::new(store);
    cache.models().register::<Post>().unwrap();
    let post = Post {
        id: 4,
        author_id: 1,
    };
    let before = cache.invalidator().model_version(&post).await.unwrap();
    let failed = cache
        .invalidator()
        .after_commit(
            async { Err::<(), _>("constraint violated") },
            Event::Updated,
            &post,
        )
        .await;
    assert!(matches!(
        failed,
        Err(WriteError::Write("constraint violated"))
    ));
    assert_eq!(
        cache.invalidator().model_version(&post).await.unwrap(),
        before,
        "no bump after a failed write"
    );
    let ok = cache
        .invalidator()
        .after_commit(async { Ok::<_, &str>(7) }, Event::Updated, &post)
        .await
        .unwrap();
    assert_eq!(ok, 7);
    assert_ne!(
        cache.invalidator().model_version(&post).await.unwrap(),
        before
    );
    let before = cache.invalidator().tag_version("Org:1").await.unwrap();
    let failed = cache
        .invalidator()
        .write_then_invalidate(async { Err::<(), _>("rollback") }, ["Org:1"])
        .await;
    assert!(matches!(failed, Err(WriteError::Write("rollback"))));
    assert_eq!(
        cache.invalidator().tag_version("Org:1").await.unwrap(),
        before
    );
}

/// A type whose encoding does not decode again (postcard is not
/// self-describing: a skipped field shifts what follows).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Lossy {
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<u8>,
    id: u8,
}

/// A caller that joins a load whose value does not decode loads the value
/// itself instead of waiting on that load again (and again): here the first
/// load's store write is held, and the second caller still gets to its own.
async fn an_undecodable_value_is_loaded_again_not_waited_on<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let gate = store.hold(Call::Put);
    // A deadline longer than the test: the held write stays held.
    let cache = TagCache::with_timeout(store.clone(), Duration::from_secs(60));
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |cache: TagCache<PausableStore<St>>, loads: Arc<AtomicUsize>| async move {
        cache
            .get_or_set_with_tags("lossy", ["Lossy:1"], TTL, || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Lossy { note: None, id: 7 }
            })
            .await
            .unwrap()
    };
    let first = tokio::spawn(load(cache.clone(), loads.clone()));
    gate.until_arrived(1).await;
    let second = tokio::spawn(load(cache.clone(), loads.clone()));
    gate.until_arrived(2).await;
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    gate.open();
    for task in [first, second] {
        assert_eq!(task.await.unwrap(), Lossy { note: None, id: 7 });
    }
}

support::every_store!(
    an_undecodable_value_is_loaded_again_not_waited_on,
    get_set_delete_and_tags,
    groups_versions_vary_and_constants_namespace,
    get_or_set_loads_once,
    model_events_bump_their_tags,
    bumps_only_after_the_write_succeeds,
);
