//! The layer's metrics in Prometheus text format, served by the app it
//! caches: `GET /metrics` beside `GET /users/{id}` (cached under `User:{id}`)
//! and `PUT /users/{id}` (invalidates it).
//!
//! Run with
//!
//! ```text
//! cargo run --example metrics --features metrics
//! PORT=8080 cargo run --example metrics --features metrics    # another port
//! ```
//!
//! Then
//!
//! ```text
//! curl -i localhost:3002/users/1      # cache-status: tower-tagged-cache; fwd=miss; stored
//! curl -i localhost:3002/users/1      # cache-status: tower-tagged-cache; hit
//! curl -X PUT localhost:3002/users/1  # bumps User:1
//! curl localhost:3002/metrics         # tower_tagged_cache_requests_total{rule="user_detail",outcome="hit"} 1, ...
//! ```
#![allow(dead_code)]

use std::time::Duration;

use axum::{Router, extract::Path, routing::get};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tower_tagged_cache::{CacheRule, ConfigError, MemoryStore, TaggedCacheLayer, WriteRule};

/// Upper bounds of the store latency histogram's buckets, in seconds: a
/// memory lookup takes microseconds, a Redis round trip about a
/// millisecond, the default deadline is 500 ms.
const STORE_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Installs a Prometheus recorder as the process's global `metrics`
/// recorder and returns the handle that renders it. Call it before the
/// layer is built, so the layer's metric descriptions reach it.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        // A real histogram (buckets) rather than a summary for store latency.
        .set_buckets_for_metric(
            Matcher::Full("tower_tagged_cache_store_duration_seconds".to_owned()),
            STORE_BUCKETS,
        )?
        .install_recorder()?;
    // The recorder needs regular upkeep (histogram buckets drain into it).
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The app: the cached routes behind the layer, and `GET /metrics` outside
/// it (added after `.layer(..)`, so scrapes are not counted as requests).
pub fn app(metrics: PrometheusHandle) -> Result<Router, ConfigError> {
    let cache = TaggedCacheLayer::new(MemoryStore::new())
        .rule(
            CacheRule::get("/users/{id}")
                .name("user_detail") // the `rule` label
                .tags(["User:{id}"])
                .ttl(Duration::from_secs(60)),
        )?
        .rule(
            WriteRule::put("/users/{id}")
                .name("user_update")
                .invalidates(["User:{id}"]),
        )?;
    Ok(Router::new()
        .route("/users/{id}", get(show_user).put(update_user))
        .layer(cache)
        .route("/metrics", get(move || async move { metrics.render() })))
}

async fn show_user(Path(id): Path<u64>) -> String {
    // Simulated work: the reason to cache.
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("user {id}\n")
}

async fn update_user(Path(id): Path<u64>) -> String {
    // The layer bumps `User:{id}` after this 2xx response.
    format!("user {id} saved\n")
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
    let handle = install_recorder()?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {p:?}"))?,
        Err(_) => 3002,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    println!(
        "metrics example listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app(handle)?).await?;
    Ok(())
}
