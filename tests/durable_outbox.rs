//! The durable outbox (`SqlOutbox`) on a real database and a real Redis:
//! SQLite always, PostgreSQL when `DATABASE_URL` names one (`.ci/run` sets
//! it to the machine's server; without it those tests say so and pass).
//!
//! Two app instances share the database and Redis. Instance A writes while
//! Redis is down and dies before Redis returns (its runtime is shut down,
//! in-process outbox and all); instance B reads A's row, fences the tag and
//! applies the bump when Redis is back: no read through B ever shows the
//! value from before A's write.

use crate::support;
use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{ServiceExt, service_fn, util::BoxCloneService};
use tower_tagged_cache::{
    CacheRule, Invalidator, RedisStore, TaggedCacheLayer, layer::ResponseBody, tower_layer::Layer,
};

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

/// Sends a GET and returns `(cache-status, body)`.
async fn get(svc: Svc, uri: &str) -> (String, String) {
    let req = Request::get(uri).body(Full::default()).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let cache = res.headers()["cache-status"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (cache, String::from_utf8(body.to_vec()).unwrap())
}

/// Waits for `check` to hold, polling; panics with `what` after 10 s.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The layer of one instance, on `store`: `/items/{id}` cached under
/// `Item:{id}`.
fn layer(store: RedisStore) -> TaggedCacheLayer<RedisStore> {
    TaggedCacheLayer::new(store)
        .store_timeout(Duration::from_millis(300))
        .circuit_breaker(3, Duration::from_millis(200))
        .rule(CacheRule::get("/items/{id}").tags(["Item:{id}"]))
        .unwrap()
}

/// The same tests on each database; `$pool` makes a fresh, isolated pool
/// (or `None`: the database is not available here).
macro_rules! durable_tests {
    ($db:ty, $pool:path) => {
        use super::*;
        use tower_tagged_cache::invalidate::durable::SqlOutbox;

        type Pool = sqlx::Pool<$db>;

        /// The app's data: one row per item, its value read by every GET.
        async fn data(pool: &Pool) {
            SqlOutbox::<$db>::create_table(pool).await.unwrap();
            sqlx::query("CREATE TABLE items (id BIGINT PRIMARY KEY, value BIGINT NOT NULL)")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO items (id, value) VALUES (1, 0), (2, 0)")
                .execute(pool)
                .await
                .unwrap();
        }

        /// An instance's app: reads the item's value from the database.
        fn app(layer: &TaggedCacheLayer<RedisStore>, pool: Pool) -> Svc {
            BoxCloneService::new(layer.clone().layer(service_fn(
                move |req: Request<Full<Bytes>>| {
                    let pool = pool.clone();
                    async move {
                        let id: i64 = req
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        let value: i64 =
                            sqlx::query_scalar(&format!("SELECT value FROM items WHERE id = {id}"))
                                .fetch_one(&pool)
                                .await
                                .unwrap();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                            value.to_string(),
                        ))))
                    }
                },
            )))
        }

        /// The write: the new value and its bump, in one transaction.
        async fn write(
            outbox: &SqlOutbox<$db>,
            pool: &Pool,
            id: i64,
            value: i64,
        ) -> tower_tagged_cache::Invalidation {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!("UPDATE items SET value = {value} WHERE id = {id}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            let recorded = outbox
                .record(&mut tx, [format!("Item:{id}")])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            outbox.apply(recorded).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_bump_outlives_the_process_that_made_it() {
            let Some(pool) = $pool().await else { return };
            data(&pool).await;
            let mut redis = support::Redis::start_private();
            // Instance B: serves reads and drains the table.
            let b = layer(redis.store().await);
            let b_outbox = SqlOutbox::new(pool.clone(), b.invalidator())
                .poll_interval(Duration::from_millis(20));
            let drain = b_outbox.drain();
            let svc = app(&b, pool.clone());
            assert_eq!(
                get(svc.clone(), "/items/1").await.0,
                "tower-tagged-cache; fwd=miss; stored"
            );
            // Stored after the last frame: found stored, or joined in flight.
            let (cache, body) = get(svc.clone(), "/items/1").await;
            assert!(cache.starts_with("tower-tagged-cache; hit"), "{cache}");
            assert_eq!(body, "0");
            // The entry is in Redis before Redis is killed with it.
            let b_inv = b.invalidator();
            let key_stored =
                || async { get(svc.clone(), "/items/1").await.0 == "tower-tagged-cache; hit" };
            until("the entry is stored", key_stored).await;

            // Redis goes away, with B's entry and version on disk.
            redis.kill_keeping_data();
            // Instance A, in a runtime of its own: writes, sees its bump
            // queued, and dies with it queued (the runtime shuts down,
            // taking its in-process outbox along).
            let builder = redis.builder();
            let a_pool = pool.clone();
            let queued = std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let queued = rt.block_on(async move {
                    let a = layer(builder.connect_lazy().unwrap());
                    let outbox = SqlOutbox::new(a_pool.clone(), a.invalidator());
                    write(&outbox, &a_pool, 1, 1).await.is_queued()
                });
                rt.shutdown_background();
                queued
            })
            .join()
            .unwrap();
            assert!(queued, "Redis is down: A's bump cannot have landed");

            // B reads A's row and fences the tag, before Redis is back.
            until("B queues A's bump", || {
                let b_inv = b_inv.clone();
                async move { b_inv.pending() > 0 }
            })
            .await;
            assert_eq!(
                get(svc.clone(), "/items/1").await,
                (
                    "tower-tagged-cache; fwd=bypass; detail=pending-invalidation".to_owned(),
                    "1".to_owned()
                )
            );

            // Redis returns with the old entry: B never serves it.
            redis.restart();
            let back = Instant::now();
            let mut readers = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let svc = svc.clone();
                readers.spawn(async move {
                    let mut hits = 0;
                    while back.elapsed() < Duration::from_millis(1500) {
                        let (cache, body) = get(svc.clone(), "/items/1").await;
                        assert_eq!(
                            body,
                            "1",
                            "stale read {:?} after Redis returned ({cache})",
                            back.elapsed()
                        );
                        hits += usize::from(cache.contains("; hit"));
                    }
                    hits
                });
            }
            let hits: usize = readers.join_all().await.into_iter().sum();
            assert!(hits > 0, "caching came back once the bump landed");
            let rows = b_outbox.clone();
            until("the applied row is deleted", || {
                let rows = rows.clone();
                async move { rows.rows().await.unwrap() == 0 }
            })
            .await;
            drain.abort();
        }

        #[tokio::test]
        async fn a_rolled_back_write_bumps_nothing_and_a_committed_one_is_applied_at_once() {
            let Some(pool) = $pool().await else { return };
            data(&pool).await;
            let redis = support::Redis::start();
            let inv: Invalidator = layer(redis.store().await).invalidator();
            let outbox = SqlOutbox::new(pool.clone(), inv.clone());
            inv.invalidate(["Item:1"]).await.unwrap();
            let v0 = inv.tag_version("Item:1").await.unwrap();

            let mut tx = pool.begin().await.unwrap();
            let recorded = outbox.record(&mut tx, ["Item:1"]).await.unwrap();
            assert_eq!(recorded.tags(), &["Item:1".parse().unwrap()][..]);
            tx.rollback().await.unwrap();
            assert_eq!(
                outbox.rows().await.unwrap(),
                0,
                "the row went with the rollback"
            );
            assert_eq!(outbox.drain_once().await.unwrap(), Default::default());
            assert_eq!(inv.tag_version("Item:1").await.unwrap(), v0);

            assert!(write(&outbox, &pool, 1, 5).await.is_applied());
            assert_eq!(outbox.rows().await.unwrap(), 0, "an applied row is deleted");
            assert_ne!(inv.tag_version("Item:1").await.unwrap(), v0);
        }

        #[tokio::test]
        async fn rows_left_behind_are_drained_and_unreadable_ones_bump_the_epoch() {
            let Some(pool) = $pool().await else { return };
            data(&pool).await;
            let redis = support::Redis::start();
            let inv = layer(redis.store().await).invalidator();
            let outbox = SqlOutbox::new(pool.clone(), inv.clone());
            inv.invalidate(["Item:1", "Item:2"]).await.unwrap();
            inv.bump_epoch().await.applied().await;
            let (v1, v2) = (
                inv.tag_version("Item:1").await.unwrap(),
                inv.tag_version("Item:2").await.unwrap(),
            );
            let epoch = inv.epoch().await.unwrap();
            // A process that committed and died before applying.
            let mut tx = pool.begin().await.unwrap();
            let _left = outbox.record(&mut tx, ["Item:1"]).await.unwrap();
            tx.commit().await.unwrap();
            let drained = outbox.drain_once().await.unwrap();
            assert_eq!((drained.applied, drained.pending), (1, 0));
            assert_ne!(inv.tag_version("Item:1").await.unwrap(), v1);
            assert_eq!(inv.tag_version("Item:2").await.unwrap(), v2);
            assert_eq!(inv.epoch().await.unwrap(), epoch);
            // Bytes nobody can read: the invalidation they meant is unknown,
            // so everything is invalidated.
            sqlx::query(
                "INSERT INTO tower_tagged_cache_outbox (tags, created_ms) VALUES ('9:garbage', 0)",
            )
            .execute(&pool)
            .await
            .unwrap();
            assert_eq!(outbox.drain_once().await.unwrap().applied, 1);
            assert_ne!(inv.epoch().await.unwrap(), epoch);
            assert_eq!(outbox.rows().await.unwrap(), 0);
        }
    };
}

#[cfg(feature = "outbox-sqlite")]
mod sqlite {
    /// A fresh in-memory database shared by the pool's connections.
    pub(super) async fn pool() -> Option<sqlx::SqlitePool> {
        let name = format!("ttc{:x}", rand::random::<u64>());
        let url = format!("sqlite:file:{name}?mode=memory&cache=shared");
        Some(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                // The database lives while one connection does.
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect(&url)
                .await
                .expect("an in-memory SQLite database"),
        )
    }

    durable_tests!(sqlx::Sqlite, pool);
}

#[cfg(feature = "outbox-postgres")]
mod postgres {
    /// A pool on `DATABASE_URL` confined to a fresh schema of its own (so
    /// that tests running at once never drain each other's rows), or
    /// `None` when `DATABASE_URL` names no PostgreSQL server.
    pub(super) async fn pool() -> Option<sqlx::PgPool> {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => url,
            _ => {
                eprintln!(
                    "DATABASE_URL names no PostgreSQL server: PostgreSQL outbox test skipped"
                );
                return None;
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("ttc_{now}_{:x}", rand::random::<u64>());
        let admin = sqlx::PgPool::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("DATABASE_URL={url}: {e}"));
        // Schemas of runs that ended over 10 minutes ago go (a test's own
        // schema outlives it: nothing async runs at its end).
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'ttc\\_%'",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        for name in old {
            let made: Option<u64> = name.split('_').nth(1).and_then(|t| t.parse().ok());
            if made.is_some_and(|t| t + 600 < now) {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .execute(&admin)
                    .await;
            }
        }
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect_with(options.options([("search_path", schema.as_str())]))
                .await
                .unwrap(),
        )
    }

    durable_tests!(sqlx::Postgres, pool);
}
