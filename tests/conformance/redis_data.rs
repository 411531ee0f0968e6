//! What Redis holds and how the store reads it back: the script reloaded
//! after `SCRIPT FLUSH`, untrusted version bytes, TTLs on version keys and
//! entries, a connection without `TCP_NODELAY`.

use std::{collections::HashSet, time::Duration};

use tower_tagged_cache::{RedisStore, Store};

use tower_tagged_cache::testing::conformance::util::{key, lookup, payload, put, tag, version_of};

use super::support::{Redis, monitor};

/// After `SCRIPT FLUSH` a lookup reloads the script and still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_noscript_recovery() {
    // Private: SCRIPT FLUSH is server-wide, and the SCRIPT LOAD count must be
    // this store's alone.
    let redis = Redis::start_private();
    let store = redis.store().await;
    let mut raw = redis.raw().await;
    let k = key("profile", [&tag("User:42")]);
    let l = lookup(&store, &k).await;
    put(&store, &l, payload("kept")).await;
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut raw)
        .await
        .expect("SCRIPT FLUSH");
    let load = monitor::command_calls(&mut raw, "script|load").await;

    // A fresh handle has no guess of the versions: it needs the script.
    let store = redis.store().await;
    let after = lookup(&store, &k).await;
    assert_eq!(
        after.entry,
        Some(payload("kept")),
        "lookup after SCRIPT FLUSH"
    );
    assert_eq!(after.versions, l.versions);
    assert_eq!(
        monitor::command_calls(&mut raw, "script|load").await,
        load + 1,
        "the script was not reloaded (or the lookup did not go through it)"
    );
    // And it keeps working without reloading again.
    let again = lookup(&store, &k).await;
    assert_eq!(again.entry, Some(payload("kept")));
    assert_eq!(
        monitor::command_calls(&mut raw, "script|load").await,
        load + 1
    );
}

/// Versions are untrusted bytes: a version key holding binary garbage still
/// gives a working lookup, and put/lookup round-trips under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_binary_version_bytes_work() {
    let redis = Redis::start();
    let store = redis.store().await;
    let mut raw = redis.raw().await;
    let t = tag("User:42");
    let k = key("profile", [&t, &tag("Org:7")]);
    let pos = 1 + k.tags().iter().position(|x| *x == t).unwrap();
    let version_key = format!("{}:t:User:42", redis.prefix);
    let seeded = lookup(&store, &k).await;

    let odd: [&[u8]; 5] = [
        b"\xff\x00zz",
        b"",
        b"3:abc",
        b"\r\n$-1\r\n",
        &[0xc3, 0x28, 0xa0, 0xa1],
    ];
    let mut keys_seen = HashSet::new();
    keys_seen.insert(seeded.entry_key.clone());
    for bytes in odd {
        redis::cmd("SET")
            .arg(&version_key)
            .arg(bytes)
            .query_async::<()>(&mut raw)
            .await
            .expect("SET version");
        let l = store.lookup(&k).await.unwrap_or_else(|e| {
            panic!("lookup failed on version bytes {bytes:?}: {e}");
        });
        assert_eq!(l.versions[pos].as_bytes(), bytes, "version read back as is");
        assert_eq!(version_of(&store, &t).await.unwrap().as_bytes(), bytes);
        assert!(l.entry.is_none(), "a changed version must miss ({bytes:?})");
        assert!(keys_seen.insert(l.entry_key.clone()), "entry key reused");
        put(&store, &l, payload("odd version")).await;
        let hit = lookup(&store, &k).await;
        assert_eq!(
            hit.entry,
            Some(payload("odd version")),
            "Lua and Rust disagree on the entry key under version {bytes:?}"
        );
        assert_eq!(hit.entry_key, l.entry_key);
    }

    // Versions that concatenate alike under two tags: ("a", "bc") then
    // ("ab", "c") must give different entry keys, in Lua as in Rust.
    let other_key = format!("{}:t:Org:7", redis.prefix);
    let o_pos = 1 + k.tags().iter().position(|x| *x == tag("Org:7")).unwrap();
    let mut set_versions = async |vu: &[u8], vo: &[u8]| {
        redis::cmd("MSET")
            .arg(&version_key)
            .arg(vu)
            .arg(&other_key)
            .arg(vo)
            .query_async::<()>(&mut raw)
            .await
            .expect("MSET versions");
    };
    let (first, second) = if pos < o_pos {
        ((&b"a"[..], &b"bc"[..]), (&b"ab"[..], &b"c"[..]))
    } else {
        ((&b"bc"[..], &b"a"[..]), (&b"c"[..], &b"ab"[..]))
    };
    set_versions(first.0, first.1).await;
    let l = lookup(&store, &k).await;
    put(&store, &l, payload("a|bc")).await;
    assert_eq!(lookup(&store, &k).await.entry, Some(payload("a|bc")));
    set_versions(second.0, second.1).await;
    let l2 = lookup(&store, &k).await;
    assert!(
        l2.entry.is_none(),
        "versions (a, bc) and (ab, c) share an entry"
    );
    assert_ne!(l2.entry_key, l.entry_key);
}

/// Version keys carry a TTL when seeded (the version TTL plus up to an
/// eighth of it, so that versions made together expire apart), refreshed by
/// a bump; entries carry the TTL they were put with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_version_keys_carry_a_ttl() {
    let redis = Redis::start();
    let version_ttl = Duration::from_secs(3600);
    let store = RedisStore::builder(redis.url())
        .prefix(redis.prefix.clone())
        .version_ttl(version_ttl)
        .connect()
        .await
        .expect("connect");
    let mut raw = redis.raw().await;
    let version_key = format!("{}:t:User:42", redis.prefix);
    let epoch_key = format!("{}:epoch", redis.prefix);
    let ttl_conn = raw.clone();
    let ttl_of = move |k: String| {
        let mut raw = ttl_conn.clone();
        async move {
            redis::cmd("TTL")
                .arg(k)
                .query_async::<i64>(&mut raw)
                .await
                .expect("TTL")
        }
    };

    let t = tag("User:42");
    let k = key("profile", [&t]);
    let l = lookup(&store, &k).await;
    // The TTL, plus the jitter of up to an eighth.
    let max = (version_ttl.as_secs() + version_ttl.as_secs() / 8) as i64;
    let seeded = ttl_of(version_key.clone()).await;
    assert!(
        seeded > 0 && seeded <= max,
        "a seeded version key has TTL {seeded} (want 1..={max})"
    );
    let epoch = ttl_of(epoch_key).await;
    assert!(epoch > 0 && epoch <= max, "epoch TTL {epoch}");

    // Shorten it behind the store's back; a bump must set it afresh.
    redis::cmd("EXPIRE")
        .arg(&version_key)
        .arg(5)
        .query_async::<()>(&mut raw)
        .await
        .expect("EXPIRE");
    assert!(ttl_of(version_key.clone()).await <= 5);
    store.bump(std::slice::from_ref(&t)).await.expect("bump");
    let bumped = ttl_of(version_key.clone()).await;
    assert!(
        bumped > 5 && bumped <= max,
        "a bump did not refresh the TTL: {bumped}"
    );

    // A version key made persistent gets its TTL back on the next bump too.
    redis::cmd("PERSIST")
        .arg(&version_key)
        .query_async::<()>(&mut raw)
        .await
        .expect("PERSIST");
    store.bump(std::slice::from_ref(&t)).await.expect("bump");
    let again = ttl_of(version_key.clone()).await;
    assert!(again > 0 && again <= max, "TTL after bump: {again}");

    // Entries: PTTL within the put TTL.
    let l2 = lookup(&store, &k).await;
    assert_ne!(l2.entry_key, l.entry_key);
    store
        .put(l2.entry_key.clone(), payload("x"), Duration::from_secs(30))
        .await
        .expect("put");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(l2.entry_key.as_str())
        .query_async(&mut raw)
        .await
        .expect("PTTL");
    assert!(pttl > 0 && pttl <= 30_000, "entry PTTL {pttl}");
}

/// A store with Nagle's algorithm on (`tcp_nodelay(false)`) behaves the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_without_nodelay_round_trips() {
    let redis = Redis::start();
    let store = redis
        .builder()
        .tcp_nodelay(false)
        .connect()
        .await
        .expect("connect");
    assert!(format!("{store:?}").contains("RedisStore"));
    let k = key("nagle", [&tag("User:5")]);
    let l = lookup(&store, &k).await;
    put(&store, &l, payload("with nagle")).await;
    let again = lookup(&store, &k).await;
    assert_eq!(again.entry, Some(payload("with nagle")));
    assert_eq!(again.versions, l.versions);
}

/// Versions that are read stay alive: a lookup through the script gives a
/// version in the second half of its life a whole TTL again, and the warm
/// path (one `MGET`) does so in the background once a quarter TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_versions_that_are_read_stay_alive() {
    let redis = Redis::start();
    let connect = |ttl: u64| {
        RedisStore::builder(redis.url())
            .prefix(redis.prefix.clone())
            .version_ttl(Duration::from_secs(ttl))
            .connect()
    };
    let raw = redis.raw().await;
    let version_key = format!("{}:t:User:42", redis.prefix);
    let ttl_of = |mut raw: redis::aio::MultiplexedConnection, k: String| async move {
        redis::cmd("TTL")
            .arg(k)
            .query_async::<i64>(&mut raw)
            .await
            .expect("TTL")
    };
    let shorten = |mut raw: redis::aio::MultiplexedConnection, k: String, secs: u64| async move {
        redis::cmd("EXPIRE")
            .arg(k)
            .arg(secs)
            .query_async::<()>(&mut raw)
            .await
            .expect("EXPIRE");
    };
    let k = key("profile", [&tag("User:42")]);

    // The script's path: a store that has not seen the key yet.
    let store = connect(3600).await.expect("connect");
    let seeded = lookup(&store, &k).await;
    shorten(raw.clone(), version_key.clone(), 100).await;
    let cold = connect(3600).await.expect("connect");
    assert_eq!(lookup(&cold, &k).await.versions, seeded.versions);
    let kept = ttl_of(raw.clone(), version_key.clone()).await;
    assert!(
        kept >= 3600,
        "read in the second half of its life, TTL {kept}"
    );

    // The warm path, 8 s TTL: after a quarter of it, a warm hit refreshes.
    let warm = connect(8).await.expect("connect");
    lookup(&warm, &k).await; // remembered: the next lookups are one MGET
    shorten(raw.clone(), version_key.clone(), 3).await;
    // The passage of time under test (a quarter TTL), not a wait for a signal.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(lookup(&warm, &k).await.versions, seeded.versions);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ttl = ttl_of(raw.clone(), version_key.clone()).await;
        if ttl >= 7 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed: TTL {ttl}"
        );
        tokio::task::yield_now().await;
    }
}
