//! The quickstart over real HTTP with its Redis frozen (`SIGSTOP`) under
//! concurrent reads and writes, then thawed (`SIGCONT`): writes answer
//! within the store deadline and, once the breaker is open, without waiting
//! on the store; caching resumes on the first successful probe.

use super::{quickstart, support};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http::{Method, StatusCode};
use tokio::task::JoinSet;

/// The quickstart's breaker: 5 failures in a row open it for 2 s.
const COOLDOWN: Duration = Duration::from_secs(2);

/// Sends `SIGSTOP` or `SIGCONT` to the server's process.
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success(), "kill {sig} {pid}");
}

async fn redis_pid(redis: &support::Redis) -> u32 {
    let mut conn = redis.raw().await;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("INFO server names the process id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_do_not_wait_on_a_frozen_redis_and_caching_resumes_on_the_first_probe() {
    support::trace_init();
    let redis = support::Redis::start_private();
    let pid = redis_pid(&redis).await;
    let store = redis.store().await;
    let app = quickstart::app(store, quickstart::Db::seeded()).unwrap();
    let client = Arc::new(support::JsonClient::new(support::serve(app).await));

    let warm = client.send(Method::GET, "/users/1", None).await;
    assert_eq!(warm.cache_status, "tower-tagged-cache; fwd=miss; stored");

    signal(pid, "-STOP");
    // Concurrent writes and reads while Redis answers nothing: 8 clients,
    // each a write then a read, for 4 rounds.
    let frozen_at = Instant::now();
    let mut load = JoinSet::new();
    for c in 0..8u64 {
        let client = client.clone();
        load.spawn(async move {
            let mut seen = Vec::new();
            for round in 0..4u64 {
                let id = 1 + c * 10 + round;
                let started = Instant::now();
                let put = client
                    .send(
                        Method::PUT,
                        &format!("/users/{id}"),
                        Some(format!(r#"{{"name":"frozen {id}"}}"#)),
                    )
                    .await;
                seen.push((started, started.elapsed(), put.status, put.cache_status));
                let get = client
                    .send(Method::GET, &format!("/users/{id}"), None)
                    .await;
                assert_eq!(get.status, StatusCode::OK);
                assert_eq!(get.json["name"], format!("frozen {id}"));
            }
            seen
        });
    }
    let mut writes: Vec<_> = load.join_all().await.into_iter().flatten().collect();
    writes.sort_by_key(|w| w.0);
    let deadline = quickstart::STORE_TIMEOUT;
    // Every write succeeded within the deadline plus the handler's time
    // (and the noise of a shared machine), and said its bump was queued.
    for (_, took, status, cache) in &writes {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(
            cache, "tower-tagged-cache; fwd=bypass; detail=invalidation-queued",
            "a write whose bump could not land says so"
        );
        assert!(
            *took < deadline + Duration::from_millis(400),
            "took {took:?}"
        );
    }
    // Once the breaker is open (5 failures: lookups and bumps alike), writes
    // no longer wait on the store at all. The last half of the writes
    // started well after that.
    let late = &writes[writes.len() / 2..];
    for (started, took, _, _) in late {
        assert!(
            *took < deadline,
            "a write {:?} after freezing took {took:?}: it waited on the store",
            started.duration_since(frozen_at)
        );
    }

    signal(pid, "-CONT");
    let thawed = Instant::now();
    // Caching resumes on the first successful probe, at most one cooldown
    // (plus a deadline for the probe) after Redis is back; from then on a
    // GET is stored and the next is a hit.
    let mut resumed = None;
    let mut statuses = Vec::new();
    while thawed.elapsed() < COOLDOWN * 2 + deadline * 4 {
        let reply = client.send(Method::GET, "/users/99", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let bypass = reply.cache_status.contains("fwd=bypass");
        statuses.push(reply.cache_status);
        if !bypass {
            resumed = Some(thawed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = resumed.unwrap_or_else(|| panic!("caching did not resume: {statuses:?}"));
    assert!(
        resumed < COOLDOWN + deadline * 2,
        "resumed {resumed:?} after the thaw"
    );
    assert_eq!(
        statuses.last().unwrap(),
        "tower-tagged-cache; fwd=miss; stored"
    );
    // The entry is written after the last frame: the next request finds it
    // stored, or joins the write still in flight (`detail=coalesced`).
    let hit = client.send(Method::GET, "/users/99", None).await;
    assert!(
        hit.cache_status.starts_with("tower-tagged-cache; hit"),
        "{}",
        hit.cache_status
    );
    // And for every other page at once: no second cooldown. (Pages
    // written while frozen are fenced until their bumps are re-applied;
    // these were not written.)
    for id in 80..90 {
        let first = client
            .send(Method::GET, &format!("/users/{id}"), None)
            .await;
        assert_eq!(first.cache_status, "tower-tagged-cache; fwd=miss; stored");
    }
    // No page written while Redis was frozen shows its name from before,
    // now that Redis answers again (its queued bumps are fenced, then
    // applied).
    for (c, round) in (0..8u64).flat_map(|c| (0..4u64).map(move |r| (c, r))) {
        let id = 1 + c * 10 + round;
        for _ in 0..2 {
            let get = client
                .send(Method::GET, &format!("/users/{id}"), None)
                .await;
            assert_eq!(get.json["name"], format!("frozen {id}"), "{get:?}");
        }
    }
}
