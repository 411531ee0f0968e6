//! A small blog on SQLite (through sqlx) whose pages are cached under model
//! tags and invalidated only through the model registry of a [`TagCache`]:
//! the write handlers say what they changed (`Post`, `Author`, `Comment`),
//! the registered hooks decide which cached pages that reaches, and the
//! bumps go through the durable outbox ([`SqlOutbox`]): written in the
//! write's transaction, applied after the commit, and drained by any blog
//! process sharing the database when Redis was down or the writer died.
//!
//! | page                     | tag                | bumped by                                  |
//! |--------------------------|--------------------|--------------------------------------------|
//! | `GET /posts/{id}`        | `Post:{id}`        | post update or delete, rename of its author, new comment |
//! | `GET /authors/{id}/posts`| `AuthorPosts:{id}` | update or delete of one of their posts     |
//!
//! Run with
//!
//! ```text
//! cargo run --example blog                                          # memory store, temp SQLite file
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example blog        # Redis store
//! DATABASE_URL=sqlite:///tmp/blog.db cargo run --example blog       # your own SQLite file
//! PORT=8080 cargo run --example blog                                # another port
//! ```
//!
//! Then
//!
//! ```text
//! curl -i localhost:3001/posts/1            # cache-status: tower-tagged-cache; fwd=miss; stored
//! curl -i localhost:3001/posts/1            # cache-status: tower-tagged-cache; hit
//! curl -i localhost:3001/authors/1/posts    # miss, then hit
//! curl -X PUT -H 'content-type: application/json' -d '{"name":"Ada L."}' localhost:3001/authors/1
//! curl -i localhost:3001/posts/1            # a miss, with the new author_name
//! curl -i localhost:3001/authors/1/posts    # still a hit: titles did not change
//! curl -X POST -H 'content-type: application/json' -d '{"text":"Nice"}' localhost:3001/posts/1/comments
//! curl -X PUT -H 'content-type: application/json' -d '{"title":"New"}' localhost:3001/posts/1
//! curl -X DELETE localhost:3001/posts/1
//! ```
#![allow(dead_code)]

use std::{
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use sqlx::{
    Row, Sqlite, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
};
use tower_tagged_cache::{
    CacheRule, ConfigError, MemoryStore, RedisStore, Store, Tag, TagCache, TaggedCacheLayer,
    invalidate::durable::SqlOutbox,
    invalidate::{Event, Model, model_tag},
};

/// Deadline of every store call: past it, requests are served uncached.
pub const STORE_TIMEOUT: Duration = Duration::from_millis(200);

/// How long a cached page lives at most (invalidation usually comes first).
pub const TTL: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------
// Models: what the registry knows about, and which pages each one reaches.

/// A post: its page is `Post:{id}`; it shows in `AuthorPosts:{author_id}`.
#[derive(Debug, Clone)]
pub struct Post {
    /// Primary key.
    pub id: i64,
    /// Whose list it shows in.
    pub author_id: i64,
}

impl Model for Post {
    const TAG: &'static str = "Post";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

/// An author, with the ids of their posts (every post page shows the
/// author's name, so a rename reaches all of them).
#[derive(Debug, Clone)]
pub struct Author {
    /// Primary key.
    pub id: i64,
    /// The (new) name.
    pub name: String,
    /// Their posts, loaded by the write that changes the author.
    pub post_ids: Vec<i64>,
}

impl Model for Author {
    const TAG: &'static str = "Author";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

/// A comment on a post (the post page shows the comment count).
#[derive(Debug, Clone)]
pub struct Comment {
    /// Primary key.
    pub id: i64,
    /// The post it is on.
    pub post_id: i64,
}

impl Model for Comment {
    const TAG: &'static str = "Comment";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

/// The tag of an author's post list: `AuthorPosts:{id}`.
pub fn author_posts_tag(author_id: i64) -> Tag {
    Tag::new("AuthorPosts", author_id).expect("AuthorPosts is a valid tag name")
}

/// Registers the three models and their hooks. Every event also bumps the
/// instance's own model tag (`Post:{id}`, ...) and the model's list tag.
pub fn register_models<St: Store>(cache: &TagCache<St>) -> Result<(), ConfigError> {
    let models = cache.models();
    // A post's title shows in its author's list.
    models.register::<Post>()?.on(
        [Event::Created, Event::Updated, Event::Deleted],
        |p: &Post| vec![author_posts_tag(p.author_id)],
    );
    // The author's name shows on each of their post pages, not in the lists.
    models
        .register::<Author>()?
        .on([Event::Updated, Event::Deleted], |a: &Author| {
            a.post_ids.iter().map(model_tag::<Post>).collect()
        });
    // The comment count shows on the post page.
    models.register::<Comment>()?.on(
        [Event::Created, Event::Updated, Event::Deleted],
        |c: &Comment| vec![model_tag::<Post>(c.post_id)],
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Database.

/// Opens (creating it when missing) the SQLite database at `url`, creates the
/// schema, and seeds it when empty: 3 authors, 10 posts, some comments.
pub async fn open_db(url: &str) -> Result<SqlitePool, Box<dyn std::error::Error + Send + Sync>> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS authors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS posts (
            id INTEGER PRIMARY KEY,
            author_id INTEGER NOT NULL REFERENCES authors(id),
            title TEXT NOT NULL,
            body TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS comments (
            id INTEGER PRIMARY KEY,
            post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
            body TEXT NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    let authors: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM authors")
        .fetch_one(&pool)
        .await?;
    if authors == 0 {
        seed(&pool).await?;
    }
    SqlOutbox::<Sqlite>::create_table(&pool).await?;
    Ok(pool)
}

/// Authors 1 to 3; posts 1 to 10, post `p` by author `(p - 1) % 3 + 1`
/// (author 1 has posts 1, 4, 7, 10); post `p` has `p % 3` comments.
async fn seed(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (id, name) in [(1, "Ada"), (2, "Grace"), (3, "Barbara")] {
        sqlx::query("INSERT INTO authors (id, name) VALUES (?, ?)")
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    for id in 1..=10_i64 {
        sqlx::query("INSERT INTO posts (id, author_id, title, body) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind((id - 1) % 3 + 1)
            .bind(format!("Post {id}"))
            .bind(format!("The body of post {id}."))
            .execute(&mut *tx)
            .await?;
        for n in 1..=id % 3 {
            sqlx::query("INSERT INTO comments (post_id, body) VALUES (?, ?)")
                .bind(id)
                .bind(format!("Comment {n} on post {id}"))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

// ---------------------------------------------------------------------------
// The app.

#[derive(Clone)]
struct AppState<St> {
    db: SqlitePool,
    /// The layer's value cache: its model registry says what each write
    /// bumps.
    cache: TagCache<St>,
    /// Where the writes record their bumps, on the layer's invalidator.
    outbox: SqlOutbox<Sqlite>,
}

/// The app: the two pages cached under their tags for [`TTL`], the four
/// writes invalidating through the model registry only (the layer's own
/// invalidation of unsafe requests is off), their bumps written to the
/// durable outbox in each write's transaction. Starts the outbox's drain on
/// the current runtime: every instance of the app drains what others left.
pub fn app<St: Store>(store: St, db: SqlitePool) -> Result<Router, ConfigError> {
    let layer = TaggedCacheLayer::new(store)
        .store_timeout(STORE_TIMEOUT)
        .invalidate_unsafe_requests(false)
        .rule(
            CacheRule::get("/posts/{id}")
                .name("post")
                .parse_param::<u64>("id")
                .tags(["Post:{id}"])
                .ttl(TTL),
        )?
        .rule(
            CacheRule::get("/authors/{id}/posts")
                .name("author_posts")
                .parse_param::<u64>("id")
                .tags(["AuthorPosts:{id}"])
                .ttl(TTL),
        )?;
    // One breaker, outbox and model registry for the pages and the writes.
    let cache = layer.tag_cache();
    register_models(&cache)?;
    let outbox = SqlOutbox::new(db.clone(), layer.invalidator());
    // Runs as long as the runtime does.
    drop(outbox.drain());
    Ok(Router::new()
        .route(
            "/posts/{id}",
            get(show_post::<St>)
                .put(update_post::<St>)
                .delete(delete_post::<St>),
        )
        .route("/posts/{id}/comments", post(add_comment::<St>))
        .route("/authors/{id}", axum::routing::put(rename_author::<St>))
        .route("/authors/{id}/posts", get(author_posts::<St>))
        .with_state(AppState { db, cache, outbox })
        .layer(layer))
}

async fn show_post<St: Store>(State(s): State<AppState<St>>, Path(id): Path<i64>) -> Response {
    let row = sqlx::query(
        "SELECT p.title, p.body, p.author_id, a.name AS author_name,
                (SELECT COUNT(*) FROM comments c WHERE c.post_id = p.id) AS comment_count
         FROM posts p JOIN authors a ON a.id = p.author_id
         WHERE p.id = ?",
    )
    .bind(id)
    .fetch_optional(&s.db)
    .await;
    match row {
        Ok(Some(row)) => Json(json!({
            "id": id,
            "title": row.get::<String, _>("title"),
            "body": row.get::<String, _>("body"),
            "author_id": row.get::<i64, _>("author_id"),
            "author_name": row.get::<String, _>("author_name"),
            "comment_count": row.get::<i64, _>("comment_count"),
            "computed_at": now(),
        }))
        .into_response(),
        Ok(None) => not_found(format!("no post {id}")),
        Err(e) => internal(e),
    }
}

async fn author_posts<St: Store>(State(s): State<AppState<St>>, Path(id): Path<i64>) -> Response {
    let exists = sqlx::query("SELECT 1 FROM authors WHERE id = ?")
        .bind(id)
        .fetch_optional(&s.db)
        .await;
    match exists {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(format!("no author {id}")),
        Err(e) => return internal(e),
    }
    let posts: Result<Vec<(i64, String)>, _> =
        sqlx::query_as("SELECT id, title FROM posts WHERE author_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&s.db)
            .await;
    match posts {
        Ok(posts) => Json(
            posts
                .into_iter()
                .map(|(id, title)| json!({ "id": id, "title": title }))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct UpdatePost {
    title: Option<String>,
    body: Option<String>,
}

async fn update_post<St: Store>(
    State(s): State<AppState<St>>,
    Path(id): Path<i64>,
    Json(update): Json<UpdatePost>,
) -> Response {
    if update.title.is_none() && update.body.is_none() {
        return bad_request("give a title and/or a body");
    }
    let result = async {
        let mut tx = s.db.begin().await?;
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "UPDATE posts SET title = COALESCE(?, title), body = COALESCE(?, body)
             WHERE id = ? RETURNING author_id, title, body",
        )
        .bind(&update.title)
        .bind(&update.body)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        Ok::<_, sqlx::Error>((tx, row))
    }
    .await;
    let (tx, (author_id, title, body)) = match result {
        Ok((tx, Some(row))) => (tx, row),
        Ok((_, None)) => return not_found(format!("no post {id}")),
        Err(e) => return internal(e),
    };
    // Bumps Post:{id} and, by the hook, AuthorPosts:{author_id}, after the commit.
    let post = Post { id, author_id };
    if let Err(res) = commit(&s, tx, Event::Updated, &post).await {
        return res;
    }
    Json(json!({ "id": id, "title": title, "body": body, "author_id": author_id })).into_response()
}

async fn delete_post<St: Store>(State(s): State<AppState<St>>, Path(id): Path<i64>) -> Response {
    let result = async {
        let mut tx = s.db.begin().await?;
        // Its comments go with it (ON DELETE CASCADE); the post page is
        // bumped anyway.
        let author_id: Option<i64> =
            sqlx::query_scalar("DELETE FROM posts WHERE id = ? RETURNING author_id")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        Ok::<_, sqlx::Error>((tx, author_id))
    }
    .await;
    let (tx, author_id) = match result {
        Ok((tx, Some(author_id))) => (tx, author_id),
        Ok((_, None)) => return not_found(format!("no post {id}")),
        Err(e) => return internal(e),
    };
    let post = Post { id, author_id };
    if let Err(res) = commit(&s, tx, Event::Deleted, &post).await {
        return res;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct NewComment {
    text: String,
}

async fn add_comment<St: Store>(
    State(s): State<AppState<St>>,
    Path(post_id): Path<i64>,
    Json(new): Json<NewComment>,
) -> Response {
    let result = async {
        let mut tx = s.db.begin().await?;
        // Inserts nothing when the post does not exist.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO comments (post_id, body) SELECT id, ? FROM posts WHERE id = ?
             RETURNING id",
        )
        .bind(&new.text)
        .bind(post_id)
        .fetch_optional(&mut *tx)
        .await?;
        Ok::<_, sqlx::Error>((tx, id))
    }
    .await;
    let (tx, id) = match result {
        Ok((tx, Some(id))) => (tx, id),
        Ok((_, None)) => return not_found(format!("no post {post_id}")),
        Err(e) => return internal(e),
    };
    // Bumps Comment:{id} and, by the hook, Post:{post_id}.
    let comment = Comment { id, post_id };
    if let Err(res) = commit(&s, tx, Event::Created, &comment).await {
        return res;
    }
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "post_id": post_id, "text": new.text })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct RenameAuthor {
    name: String,
}

async fn rename_author<St: Store>(
    State(s): State<AppState<St>>,
    Path(id): Path<i64>,
    Json(rename): Json<RenameAuthor>,
) -> Response {
    let result = async {
        let mut tx = s.db.begin().await?;
        let updated = sqlx::query("UPDATE authors SET name = ? WHERE id = ?")
            .bind(&rename.name)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The hook needs the pages showing the name: every post of theirs.
        let post_ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM posts WHERE author_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        Ok::<_, sqlx::Error>((tx, updated, post_ids))
    }
    .await;
    let (tx, post_ids) = match result {
        Ok((tx, 1.., post_ids)) => (tx, post_ids),
        Ok((_, 0, _)) => return not_found(format!("no author {id}")),
        Err(e) => return internal(e),
    };
    // Bumps Author:{id} and, by the hook, Post:{p} for each of their posts.
    let author = Author {
        id,
        name: rename.name,
        post_ids,
    };
    if let Err(res) = commit(&s, tx, Event::Updated, &author).await {
        return res;
    }
    Json(json!({ "id": id, "name": author.name, "post_ids": author.post_ids })).into_response()
}

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("database error: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "database error" })),
    )
        .into_response()
}

/// Writes the bumps that `event` on `m` calls for (the model registry's
/// tags) into the outbox table, in `tx`, commits, then applies them. The
/// bumps exist exactly when the change does: if this process dies before
/// they land, or Redis is down, any instance's drain applies them later,
/// and meanwhile no instance that read the row serves what they hide.
async fn commit<St: Store, M: Model>(
    s: &AppState<St>,
    mut tx: Transaction<'_, Sqlite>,
    event: Event,
    m: &M,
) -> Result<(), Response> {
    let tags = s.cache.models().tags_for(m, event).map_err(internal)?;
    let recorded = s.outbox.record(&mut tx, tags).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    if s.outbox.apply(recorded).await.is_queued() {
        tracing::warn!("the store did not take the bumps; they are applied when it returns");
    }
    Ok(())
}

/// Seconds since the Unix epoch, with nanoseconds: differs on every call.
fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

async fn serve<St: Store>(
    store: St,
    label: String,
    db: SqlitePool,
    db_label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {p:?}"))?,
        Err(_) => 3001,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    println!(
        "blog listening on http://{} (store: {label}, database: {db_label})",
        listener.local_addr()?
    );
    axum::serve(listener, app(store, db)?).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_tagged_cache=warn,blog=info".into()),
        )
        // Colours only on a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    // The temp dir lives (and the database file with it) until `main` ends.
    let dir = tempfile::tempdir()?;
    let db_url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("sqlite://{}", dir.path().join("blog.db").display()),
    };
    let db = open_db(&db_url)
        .await
        .map_err(|e| format!("cannot open the database at {db_url}: {e}"))?;
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let store = RedisStore::builder(url.as_str())
                .command_timeout(STORE_TIMEOUT)
                .connect()
                .await
                .map_err(|e| format!("cannot connect to Redis at {url}: {e}"))?;
            serve(store, format!("redis at {url}"), db, &db_url).await
        }
        _ => serve(MemoryStore::new(), "memory".to_owned(), db, &db_url).await,
    }
}
