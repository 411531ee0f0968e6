//! The `tagcache` command-line tool against a private redis-server, as a shell
//! script would use it: stdout, stderr and exit codes.
#![cfg(feature = "cli")]

use crate::support;

use std::process::{Command, Output};

use support::Redis;
use tower_tagged_cache::Invalidator;

fn tagcache(redis: &Redis, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["--redis", redis.url(), "--prefix", &redis.prefix])
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("run tagcache")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_invalidate_and_epoch() {
    let redis = Redis::start();
    let store = redis.store().await;
    let invalidator = Invalidator::new(store);

    let out = tagcache(&redis, &["version", "User:42", "Dashboard"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "User:42\t-\nDashboard\t-");

    let out = tagcache(&redis, &["invalidate", "User:42", "Dashboard"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "invalidated 2 tag(s)");
    let v = invalidator
        .tag_version("User:42")
        .await
        .unwrap()
        .expect("bumped");
    let out = tagcache(&redis, &["version", "User:42"]);
    assert_eq!(stdout(&out), format!("User:42\t{v}"));

    // The library sees what the tool did, and the other way round.
    invalidator.invalidate(["User:42"]).await.unwrap();
    let v2 = invalidator.tag_version("User:42").await.unwrap().unwrap();
    assert_ne!(v, v2);
    assert_eq!(
        stdout(&tagcache(&redis, &["version", "User:42"])),
        format!("User:42\t{v2}")
    );

    assert_eq!(stdout(&tagcache(&redis, &["epoch", "show"])), "-");
    let out = tagcache(&redis, &["epoch", "bump"]);
    assert!(out.status.success(), "{out:?}");
    let epoch = invalidator.epoch().await.unwrap().expect("epoch set");
    assert_eq!(stdout(&out), format!("epoch bumped to {epoch}"));
    assert_eq!(
        stdout(&tagcache(&redis, &["epoch", "show"])),
        epoch.to_string()
    );
}

#[test]
fn exit_codes_scripts_can_rely_on() {
    let redis = Redis::start();
    let bad_tag = tagcache(&redis, &["invalidate", "not a tag"]);
    assert_eq!(bad_tag.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&bad_tag.stderr).starts_with("tagcache: error: tag `not a tag`")
    );

    let usage = tagcache(&redis, &["invalidate"]);
    assert_eq!(usage.status.code(), Some(2));
    let usage = tagcache(&redis, &["epoch", "sideways"]);
    assert_eq!(usage.status.code(), Some(2));

    let mut dead = Redis::start_private();
    dead.kill();
    let unreachable = tagcache(&dead, &["version", "User:1"]);
    assert_eq!(unreachable.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach Redis"));
}
