//! An axum app with its user pages cached under `User:{id}` and invalidated
//! when a user is updated.
//!
//! Run with
//!
//! ```text
//! cargo run --example quickstart                                        # memory store
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example quickstart      # Redis store
//! PORT=8080 cargo run --example quickstart                              # another port
//! ADMIN_PORT=3100 cargo run --example quickstart                        # and the admin service
//! ```
//!
//! Then
//!
//! ```text
//! curl -i localhost:3000/users/1          # cache-status: tower-tagged-cache; fwd=miss; stored
//! curl -i localhost:3000/users/1          # cache-status: tower-tagged-cache; hit
//! curl -X PUT -H 'content-type: application/json' -d '{"name":"Ada"}' localhost:3000/users/1
//! curl -i localhost:3000/users/1          # a miss, with the new name
//! ```
//!
//! With `ADMIN_PORT` set, the cache's admin service listens on
//! `127.0.0.1:ADMIN_PORT` (loopback only: it is not for the public), and
//! the `tagcache` tool reads it:
//!
//! ```text
//! cargo run --features cli --bin tagcache -- explain --admin http://127.0.0.1:3100 GET /users/1
//! cargo run --features cli --bin tagcache -- stats --admin http://127.0.0.1:3100
//! ```
#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;
use tower_tagged_cache::{
    CacheRule, ConfigError, MemoryStore, RedisStore, Store, TaggedCacheLayer, WriteRule,
};

/// Deadline of every store call: past it, requests are served uncached.
pub const STORE_TIMEOUT: Duration = Duration::from_millis(200);

/// Stands in for a database: user id to name, seeded with users 1 to 100.
#[derive(Clone, Debug)]
pub struct Db(Arc<RwLock<HashMap<u64, String>>>);

impl Db {
    /// Users 1 to 100, named `User 1` to `User 100`.
    pub fn seeded() -> Self {
        let users = (1..=100).map(|id| (id, format!("User {id}"))).collect();
        Self(Arc::new(RwLock::new(users)))
    }
}

/// The app: `GET /users/{id}` cached under `User:{id}` for 60 s, and
/// `PUT /users/{id}` invalidating that tag once the update succeeded.
pub fn app<St: Store>(store: St, db: Db) -> Result<Router, ConfigError> {
    Ok(router(cache(store)?, db))
}

/// The cache layer of the app, with its rules: keep a clone to make its
/// admin service ([`admin_app`]).
pub fn cache<St: Store>(store: St) -> Result<TaggedCacheLayer<St>, ConfigError> {
    TaggedCacheLayer::new(store)
        .store_timeout(STORE_TIMEOUT)
        .rule(
            CacheRule::get("/users/{id}")
                .name("user_detail")
                .parse_param::<u64>("id") // `/users/01` is user 1, as `Path<u64>` sees it
                .tags(["User:{id}"])
                .ttl(Duration::from_secs(60)),
        )?
        .rule(
            WriteRule::put("/users/{id}")
                .parse_param::<u64>("id")
                .invalidates(["User:{id}"]),
        )
}

/// The app's routes behind `cache`.
pub fn router<St: Store>(cache: TaggedCacheLayer<St>, db: Db) -> Router {
    Router::new()
        .route("/users/{id}", get(show_user).put(update_user))
        .with_state(db)
        .layer(cache)
}

/// The cache's admin service (`/explain`, `/stats`) as an app of its own,
/// for a private listener. A path it explains is taken as a request to the
/// app at `app_addr` (the host is part of every key).
pub fn admin_app<St: Store>(cache: &TaggedCacheLayer<St>, app_addr: SocketAddr) -> Router {
    let host = HeaderValue::try_from(app_addr.to_string()).expect("an address is a valid Host");
    Router::new().fallback_service(cache.admin().default_host(host))
}

async fn show_user(State(db): State<Db>, Path(id): Path<u64>) -> Response {
    // Simulated work: the reason to cache.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let name = db.0.read().unwrap().get(&id).cloned();
    match name {
        Some(name) => Json(json!({ "id": id, "name": name, "computed_at": now() })).into_response(),
        None => not_found(id),
    }
}

#[derive(Deserialize)]
struct UpdateUser {
    name: String,
}

async fn update_user(
    State(db): State<Db>,
    Path(id): Path<u64>,
    Json(update): Json<UpdateUser>,
) -> Response {
    let mut users = db.0.write().unwrap();
    match users.get_mut(&id) {
        Some(name) => {
            name.clone_from(&update.name);
            // The layer bumps `User:{id}` after this 2xx response.
            Json(json!({ "id": id, "name": update.name })).into_response()
        }
        None => not_found(id),
    }
}

fn not_found(id: u64) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no user {id}") })),
    )
        .into_response()
}

/// Seconds since the Unix epoch, with nanoseconds: differs on every call.
fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// The port in `var`, if set (and not empty).
fn port(var: &str) -> Result<Option<u16>, String> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => p
            .parse()
            .map(Some)
            .map_err(|_| format!("{var} must be a port number, got {p:?}")),
        _ => Ok(None),
    }
}

async fn bind(port: u16) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))
}

async fn serve<St: Store>(store: St, label: String) -> Result<(), Box<dyn std::error::Error>> {
    let listener = bind(port("PORT")?.unwrap_or(3000)).await?;
    let admin = match port("ADMIN_PORT")? {
        Some(port) => Some(bind(port).await?),
        None => None,
    };
    let addr = listener.local_addr()?;
    // This first line is what scripts wait for: keep it first and as it is.
    println!("quickstart listening on http://{addr} (store: {label})");
    let cache = cache(store)?;
    if let Some(admin) = admin {
        println!("admin listening on http://{}", admin.local_addr()?);
        let app = admin_app(&cache, addr);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(admin, app).await {
                eprintln!("admin service stopped: {e}");
            }
        });
    }
    axum::serve(listener, router(cache, Db::seeded())).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_tagged_cache=warn".into()),
        )
        // Colours only on a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let store = RedisStore::builder(url.as_str())
                .command_timeout(STORE_TIMEOUT)
                .connect()
                .await
                .map_err(|e| format!("cannot connect to Redis at {url}: {e}"))?;
            serve(store, format!("redis at {url}")).await
        }
        _ => serve(MemoryStore::new(), "memory".to_owned()).await,
    }
}
