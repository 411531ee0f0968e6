//! The blog example end to end, over real HTTP on loopback, on both stores,
//! each test on a fresh SQLite file: every write reaches exactly the cached
//! pages that show what it changed, through the model registry alone.
//!
//! Seed: author 1 has posts 1, 4, 7, 10; author 2 has posts 2, 5, 8; post `p`
//! has `p % 3` comments.

#[path = "../../../tests/support/mod.rs"]
mod support;

#[allow(unreachable_pub)]
#[path = "../blog.rs"]
mod blog;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::JsonReply;
use tower_tagged_cache::{
    Store,
    testing::{Call, PausableStore},
};

const MISS: &str = "tower-tagged-cache; fwd=miss; stored";
const HIT: &str = "tower-tagged-cache; hit";
const NOT_STORED: &str = "tower-tagged-cache; fwd=miss; detail=status";

/// The pages each test caches before its write, then checks after it.
const PAGES: [&str; 5] = [
    "/posts/1",
    "/posts/4",
    "/posts/2",
    "/authors/1/posts",
    "/authors/2/posts",
];

struct Blog<St> {
    client: support::JsonClient,
    store: PausableStore<St>,
    /// Store writes awaited so far.
    puts: usize,
    /// What each page showed when it was last stored.
    cached: HashMap<&'static str, Value>,
    _dir: tempfile::TempDir,
}

impl<St: Store> Blog<St> {
    async fn start(store: St) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("blog.db").display());
        let db = blog::open_db(&url).await.unwrap();
        let store = PausableStore::new(store);
        let app = blog::app(store.clone(), db).unwrap();
        Self {
            client: support::JsonClient::new(support::serve(app).await),
            store,
            puts: 0,
            cached: HashMap::new(),
            _dir: dir,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> JsonReply {
        self.client
            .send(method, path, body.map(|b| b.to_string()))
            .await
    }

    /// A write through the app, which must answer `expected`.
    async fn write(&self, method: Method, path: &str, body: Option<Value>, expected: StatusCode) {
        let reply = self.send(method, path, body).await;
        assert_eq!(reply.status, expected, "{path}: {}", reply.json);
    }

    /// `path` is recomputed and stored; returns what it shows.
    async fn miss(&mut self, path: &'static str) -> Value {
        let reply = self.send(Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.cache_status, MISS, "{path} should miss");
        if let Some(before) = self.cached.get(path)
            && before.get("computed_at").is_some()
        {
            assert_ne!(before["computed_at"], reply.json["computed_at"], "{path}");
        }
        self.puts += 1;
        self.store.until_completed(Call::Put, self.puts).await;
        self.cached.insert(path, reply.json.clone());
        reply.json
    }

    /// `path` is served from the cache, unchanged.
    async fn hit(&self, path: &'static str) {
        let reply = self.send(Method::GET, path, None).await;
        assert_eq!(reply.cache_status, HIT, "{path} should hit");
        assert_eq!(reply.json, self.cached[path], "{path}");
    }

    /// Caches every page of [`PAGES`] and checks that each now hits.
    async fn warm(&mut self) {
        for path in PAGES {
            self.miss(path).await;
        }
        for path in PAGES {
            self.hit(path).await;
        }
    }

    /// The pages of [`PAGES`] other than `changed` still hit.
    async fn others_hit(&self, changed: &[&str]) {
        for path in PAGES.iter().filter(|p| !changed.contains(p)) {
            self.hit(path).await;
        }
    }
}

/// `PUT /posts/{id}` reaches the post page and its author's list.
async fn update_post<St: Store>(store: St) {
    let mut app = Blog::start(store).await;
    app.warm().await;
    assert_eq!(app.cached["/posts/1"]["title"], "Post 1");

    app.write(
        Method::PUT,
        "/posts/1",
        Some(json!({ "title": "Hello again" })),
        StatusCode::OK,
    )
    .await;
    let post = app.miss("/posts/1").await;
    assert_eq!(post["title"], "Hello again");
    assert_eq!(post["body"], "The body of post 1.");
    let list = app.miss("/authors/1/posts").await;
    assert_eq!(list[0], json!({ "id": 1, "title": "Hello again" }));
    assert_eq!(list.as_array().unwrap().len(), 4);
    app.others_hit(&["/posts/1", "/authors/1/posts"]).await;

    // A body-only update: the page shows it.
    app.write(
        Method::PUT,
        "/posts/4",
        Some(json!({ "body": "Rewritten." })),
        StatusCode::OK,
    )
    .await;
    let post = app.miss("/posts/4").await;
    assert_eq!(post["body"], "Rewritten.");
    assert_eq!(post["title"], "Post 4");

    // Unknown posts: 404, nothing bumped, nothing stored.
    app.write(
        Method::PUT,
        "/posts/99",
        Some(json!({ "title": "x" })),
        StatusCode::NOT_FOUND,
    )
    .await;
    app.hit("/posts/1").await;
    assert_eq!(app.store.completed(Call::Put), app.puts);
}

/// `PUT /authors/{id}` reaches every post page of theirs, and no list.
async fn rename_author<St: Store>(store: St) {
    let mut app = Blog::start(store).await;
    app.warm().await;
    assert_eq!(app.cached["/posts/1"]["author_name"], "Ada");

    app.write(
        Method::PUT,
        "/authors/1",
        Some(json!({ "name": "Ada L." })),
        StatusCode::OK,
    )
    .await;
    for path in ["/posts/1", "/posts/4"] {
        assert_eq!(app.miss(path).await["author_name"], "Ada L.");
    }
    // Author 2's posts and both lists (titles only) keep hitting.
    app.others_hit(&["/posts/1", "/posts/4"]).await;

    app.write(
        Method::PUT,
        "/authors/99",
        Some(json!({ "name": "x" })),
        StatusCode::NOT_FOUND,
    )
    .await;
    app.others_hit(&[]).await;
}

/// `POST /posts/{id}/comments` reaches the post page (its comment count) only.
async fn add_comment<St: Store>(store: St) {
    let mut app = Blog::start(store).await;
    app.warm().await;
    assert_eq!(app.cached["/posts/1"]["comment_count"], 1);

    app.write(
        Method::POST,
        "/posts/1/comments",
        Some(json!({ "text": "Nice post" })),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(app.miss("/posts/1").await["comment_count"], 2);
    app.others_hit(&["/posts/1"]).await;

    app.write(
        Method::POST,
        "/posts/99/comments",
        Some(json!({ "text": "x" })),
        StatusCode::NOT_FOUND,
    )
    .await;
    app.others_hit(&[]).await;
}

/// `DELETE /posts/{id}` reaches the post page (now a 404, never stored) and
/// its author's list.
async fn delete_post<St: Store>(store: St) {
    let mut app = Blog::start(store).await;
    app.warm().await;

    app.write(Method::DELETE, "/posts/1", None, StatusCode::NO_CONTENT)
        .await;
    for _ in 0..2 {
        let gone = app.send(Method::GET, "/posts/1", None).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert_eq!(gone.cache_status, NOT_STORED);
    }
    let list = app.miss("/authors/1/posts").await;
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 7, 10]);
    app.others_hit(&["/posts/1", "/authors/1/posts"]).await;

    app.write(Method::DELETE, "/posts/1", None, StatusCode::NOT_FOUND)
        .await;
    app.others_hit(&["/posts/1"]).await;
    assert_eq!(app.store.completed(Call::Put), app.puts);
}

support::every_store!(update_post, rename_author, add_comment, delete_post);

/// Two blog processes share the SQLite file and Redis. A renames an author
/// while Redis is down and dies before Redis returns (its runtime shuts
/// down, in-process outbox and all). B finds A's row in the outbox table,
/// fences the pages it reaches, applies it when Redis is back: no page
/// through B ever shows the old name, though Redis returns with the old
/// pages and versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_applies_what_a_dead_one_recorded() {
    support::trace_init();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("blog.db").display());
    let mut redis = support::Redis::start_private();
    // B: serves the pages (and drains the outbox table, as every instance).
    let b = blog::app(redis.store().await, blog::open_db(&url).await.unwrap()).unwrap();
    let b = support::JsonClient::new(support::serve(b).await);
    for _ in 0..2 {
        let page = b.send(Method::GET, "/posts/4", None).await;
        assert_eq!(page.json["author_name"], "Ada");
    }
    assert_eq!(
        b.send(Method::GET, "/posts/4", None).await.cache_status,
        HIT
    );

    redis.kill_keeping_data();
    // A, in a runtime of its own, on a store that connects lazily (Redis is
    // down): the rename commits, its bumps cannot land, A dies.
    let builder = redis.builder();
    let a_url = url.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let db = blog::open_db(&a_url).await.unwrap();
            let a = blog::app(builder.connect_lazy().unwrap(), db).unwrap();
            let a = support::JsonClient::new(support::serve(a).await);
            let renamed = a
                .send(
                    Method::PUT,
                    "/authors/1",
                    Some(json!({ "name": "Ada L." }).to_string()),
                )
                .await;
            assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.json);
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();

    // B reads the row and fences post 4 (Redis still down).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = b.send(Method::GET, "/posts/4", None).await;
        assert_eq!(page.json["author_name"], "Ada L.");
        if page.cache_status.ends_with("detail=pending-invalidation") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never fenced: {}",
            page.cache_status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Redis returns with the old page: B never serves it, and caches again.
    redis.restart();
    let back = Instant::now();
    let mut hits = 0;
    while back.elapsed() < Duration::from_millis(1500) {
        let page = b.send(Method::GET, "/posts/4", None).await;
        assert_eq!(
            page.json["author_name"],
            "Ada L.",
            "the old name {:?} after Redis returned ({})",
            back.elapsed(),
            page.cache_status
        );
        hits += usize::from(page.cache_status == HIT);
    }
    assert!(hits > 0, "caching came back once B applied the bump");
}
