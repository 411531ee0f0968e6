//! The fault proxy itself (`support::FaultProxy`), with a plain Redis client
//! through it: each fault does what it says, on connections opened before
//! and after it, and healing lets new connections through again.

use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, aio::MultiplexedConnection};

use super::support::{self, FaultProxy};

/// A client through the proxy whose commands give up after `timeout`.
async fn connect(
    proxy: &FaultProxy,
    timeout: Duration,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    redis::Client::open(proxy.url())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

async fn ping(conn: &mut MultiplexedConnection) -> redis::RedisResult<Duration> {
    let started = Instant::now();
    let pong: String = redis::cmd("PING").query_async(conn).await?;
    assert_eq!(pong, "PONG");
    Ok(started.elapsed())
}

async fn proxied_redis() -> (support::Redis, FaultProxy) {
    let redis = support::Redis::start();
    let proxy = FaultProxy::for_redis(redis.url()).await;
    (redis, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_way() {
    let (_redis, proxy) = proxied_redis().await;
    let mut conn = connect(&proxy, Duration::from_secs(5)).await.unwrap();
    let plain = ping(&mut conn).await.unwrap();
    let latency = Duration::from_millis(100);
    proxy.latency(latency);
    let slow = ping(&mut conn).await.unwrap();
    // The command and its reply are each held `latency`.
    assert!(
        slow >= latency * 2 && slow < latency * 2 + Duration::from_millis(300),
        "plain {plain:?}, with latency {slow:?}"
    );
    // A connection opened during the fault is delayed too.
    let mut late = connect(&proxy, Duration::from_secs(5)).await.unwrap();
    assert!(ping(&mut late).await.unwrap() >= latency * 2);
    proxy.heal();
    let healed = ping(&mut conn).await.unwrap();
    assert!(healed < latency, "healed {healed:?}");
    eprintln!("PING: {plain:?} plain, {slow:?} with {latency:?} each way, {healed:?} healed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_answers_nothing_until_healed() {
    let (_redis, proxy) = proxied_redis().await;
    let timeout = Duration::from_millis(200);
    let mut conn = connect(&proxy, timeout).await.unwrap();
    ping(&mut conn).await.unwrap();
    proxy.blackhole();
    let started = Instant::now();
    let err = ping(&mut conn).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    // A new connection is accepted and swallowed as well: whether the
    // client gives up connecting or on its first command, nothing answers.
    let fresh = match connect(&proxy, timeout).await {
        Ok(mut fresh) => ping(&mut fresh).await.map(drop),
        Err(err) => Err(err),
    };
    assert!(
        fresh.is_err(),
        "a connection opened in the blackhole answered"
    );
    // Healing resets the connection that lost bytes (its next command fails
    // at once instead of waiting), and new connections go through.
    proxy.heal();
    let started = Instant::now();
    let broken = ping(&mut conn).await;
    assert!(broken.is_err(), "a stream with a hole answered");
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    let mut again = connect(&proxy, timeout).await.unwrap();
    ping(&mut again).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_closes_open_and_new_connections() {
    let (_redis, proxy) = proxied_redis().await;
    let timeout = Duration::from_secs(2);
    let mut conn = connect(&proxy, timeout).await.unwrap();
    ping(&mut conn).await.unwrap();
    proxy.reset();
    let started = Instant::now();
    let err = ping(&mut conn).await.unwrap_err();
    // Not a timeout: the connection is gone.
    assert!(!err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < timeout / 2, "{:?}", started.elapsed());
    let fresh = match connect(&proxy, timeout).await {
        Ok(mut fresh) => ping(&mut fresh).await.map(drop),
        Err(err) => Err(err),
    };
    let err = fresh.expect_err("a connection opened during the reset answered");
    assert!(!err.is_timeout(), "{err:?}");
    proxy.heal();
    let mut again = connect(&proxy, timeout).await.unwrap();
    ping(&mut again).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_cap_slows_a_large_reply() {
    let (redis, proxy) = proxied_redis().await;
    let key = format!("{}:large", redis.prefix);
    let value = vec![b'x'; 256 * 1024];
    let mut raw = redis.raw().await;
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut conn = connect(&proxy, Duration::from_secs(10)).await.unwrap();
    let get = |mut conn: MultiplexedConnection, key: String| async move {
        let started = Instant::now();
        let got: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        (started.elapsed(), got.len())
    };
    let (plain, len) = get(conn.clone(), key.clone()).await;
    assert_eq!(len, value.len());
    // 256 KiB at 512 KiB/s: half a second.
    proxy.bandwidth(512 * 1024);
    let (capped, len) = get(conn.clone(), key.clone()).await;
    assert_eq!(len, value.len());
    assert!(
        capped >= Duration::from_millis(400) && capped < Duration::from_secs(3),
        "plain {plain:?}, capped {capped:?}"
    );
    proxy.heal();
    let (healed, _) = get(conn.clone(), key.clone()).await;
    assert!(healed < Duration::from_millis(200), "healed {healed:?}");
    ping(&mut conn).await.unwrap();
    eprintln!("GET of 256 KiB: {plain:?} plain, {capped:?} at 512 KiB/s, {healed:?} healed");
}
