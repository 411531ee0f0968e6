//! Round trips on Redis, counted with `MONITOR` and `INFO commandstats` on a
//! private server: one client command per lookup (also through a bb8 pool),
//! one `MULTI`/`EXEC` per bump of N tags.
//!
//! Redis counts the commands a script runs in `INFO commandstats` *and* in
//! `total_commands_processed` (checked against Redis 7.0: one `EVAL` running
//! `GET` and `MGET` adds 3 to both). So "one client command per lookup" is
//! measured with `MONITOR`, where a script's inner calls are marked
//! `[0 lua]` and client commands carry the client's address.

use std::future::Future;

use tower_tagged_cache::{RedisStore, Store, Tag};

use tower_tagged_cache::testing::conformance::util::{key, lookup, payload, put, tag, versions_of};

use super::support::{Redis, monitor};

async fn client_addr(conn: &mut impl redis::aio::ConnectionLike) -> String {
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(conn)
        .await
        .expect("CLIENT INFO");
    info.split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr= in CLIENT INFO")
        .to_owned()
}

/// A warm lookup is one client command: an `MGET` of the versions and of
/// the entry under the versions the store last saw. Without that guess (a
/// fresh store handle) it is one `EVALSHA`, whose `MGET` and `GET` run
/// server-side; with a stale guess, the `MGET` and then the `EVALSHA`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lookup_is_one_round_trip() {
    let redis = Redis::start_private();
    let store = redis.store().await;
    let mut conn = store
        .connection()
        .expect("a store built without bb8_pool has a connection manager");
    let store_addr = client_addr(&mut conn).await;
    lookup_is_one_round_trip(&redis, &store, &store_addr, &redis.store().await).await;
}

/// Through a bb8 pool too: checking a connection out sends nothing (no
/// `PING`), so a warm lookup is still one command.
#[cfg(feature = "bb8")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_lookup_is_one_round_trip() {
    let redis = Redis::start_private();
    // One connection: the one asked for its address is the one the store uses.
    let store = redis.bb8_store(1).await;
    let pool = store.pool().expect("a bb8 store has a pool");
    let store_addr = client_addr(&mut *pool.get().await.expect("pooled connection")).await;
    lookup_is_one_round_trip(&redis, &store, &store_addr, &redis.bb8_store(1).await).await;
}

/// What one `call` sends to Redis, seen with `MONITOR`: the client commands
/// (whole lines) and the commands scripts ran (names).
async fn watch<T>(redis: &Redis, call: impl Future<Output = T>) -> (T, Vec<String>, Vec<String>) {
    let mut raw = redis.raw().await;
    let mut monitor = monitor::Monitor::start(redis).await;
    let out = call.await;
    redis::cmd("ECHO")
        .arg("conformance-sentinel")
        .query_async::<String>(&mut raw)
        .await
        .expect("ECHO");
    let seen = monitor.until("conformance-sentinel").await;
    let (script, client): (Vec<String>, Vec<String>) =
        seen.into_iter().partition(|l| l.contains(" [0 lua] "));
    let script = script
        .iter()
        .filter_map(|l| l.split(" [0 lua] ").nth(1))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_ascii_lowercase)
        .collect();
    (out, client, script)
}

/// The command name and the number of words of a `MONITOR` line.
fn command_of(line: &str) -> (String, usize) {
    let name = monitor::monitor_client_command(line).unwrap_or_default();
    (name, line.matches("\" \"").count() + 1)
}

/// Watches warm lookups of `store` (whose connection has `store_addr`) and
/// of `fresh`, a second handle on the same keys that has seen nothing yet.
async fn lookup_is_one_round_trip(
    redis: &Redis,
    store: &RedisStore,
    store_addr: &str,
    fresh: &RedisStore,
) {
    let (u, o) = (tag("User:42"), tag("Org:7"));
    let k = key("profile", [&u, &o]);
    // Warm: the script is loaded and the versions are seeded.
    let l = lookup(store, &k).await;
    put(store, &l, payload("warm")).await;

    let (hit, client, script) = watch(redis, lookup(store, &k)).await;
    assert_eq!(hit.entry, Some(payload("warm")));
    assert_eq!(hit.versions, l.versions);
    assert_eq!(hit.entry_key, l.entry_key);
    assert_eq!(client.len(), 1, "one lookup sent {client:#?}");
    // MGET, the epoch, 2 tags and the entry.
    assert_eq!(
        command_of(&client[0]),
        ("mget".to_owned(), 5),
        "{}",
        client[0]
    );
    assert!(
        client[0].contains(&format!("[0 {store_addr}]")),
        "the command came from another connection than the store's: {}",
        client[0]
    );
    assert!(script.is_empty(), "{script:?}");

    // No guess yet: the script, without version candidates.
    let (hit, client, script) = watch(redis, lookup(fresh, &k)).await;
    assert_eq!(hit.entry, Some(payload("warm")));
    assert_eq!(hit.versions, l.versions);
    assert_eq!(client.len(), 1, "one lookup sent {client:#?}");
    // EVALSHA, its SHA, the key count, 3 keys, the entry prefix, the TTL.
    assert_eq!(
        command_of(&client[0]),
        ("evalsha".to_owned(), 8),
        "{}",
        client[0]
    );
    assert!(
        script.iter().any(|c| c == "get"),
        "the entry read is not inside the script: {script:?}"
    );

    // A bump the store did not see: its guess is stale, so the MGET is
    // followed by the script, and the lookup finds the new versions.
    store.bump(std::slice::from_ref(&u)).await.unwrap();
    let (after, client, _) = watch(redis, lookup(fresh, &k)).await;
    assert_eq!(after.entry, None);
    assert_ne!(after.versions, l.versions);
    let names: Vec<String> = client.iter().map(|l| command_of(l).0).collect();
    assert_eq!(names, ["mget", "evalsha"], "{client:#?}");
}

/// A bump of N tags is one `MULTI`/`EXEC` transaction sent at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bump_of_many_tags_is_one_exec() {
    const N: usize = 25;
    let redis = Redis::start_private();
    let store = redis.store().await;
    let mut raw = redis.raw().await;
    let tags: Vec<Tag> = (0..N).map(|i| tag(&format!("Item:{i}"))).collect();
    let all = key("list", &tags);
    lookup(&store, &all).await;
    let before = versions_of(&store, &tags).await;

    let exec = monitor::command_calls(&mut raw, "exec").await;
    let multi = monitor::command_calls(&mut raw, "multi").await;
    let set = monitor::command_calls(&mut raw, "set").await;
    let evalsha = monitor::command_calls(&mut raw, "evalsha").await;

    store.bump(&tags).await.expect("bump");

    assert_eq!(monitor::command_calls(&mut raw, "exec").await, exec + 1);
    assert_eq!(monitor::command_calls(&mut raw, "multi").await, multi + 1);
    assert_eq!(
        monitor::command_calls(&mut raw, "set").await,
        set + N as u64,
        "one SET per tag"
    );
    assert_eq!(monitor::command_calls(&mut raw, "evalsha").await, evalsha);
    let after = versions_of(&store, &tags).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a.is_some() && a != b, "tag {i} not bumped");
    }
}
