//! The admin service of the quickstart app, read with the real `tagcache`
//! binary (`explain`, `stats`) over HTTP on loopback, on every store.
#![cfg(feature = "cli")]

use crate::support;

use crate::quickstart_app as quickstart;

use std::{net::SocketAddr, process::Output};

use http::{Method, StatusCode};
use support::JsonClient;
use tower_tagged_cache::{
    Store,
    testing::{Call, PausableStore},
};

const MISS: &str = "tower-tagged-cache; fwd=miss; stored";
const HIT: &str = "tower-tagged-cache; hit";

/// The quickstart app and its admin service, each on its own loopback
/// port, as `ADMIN_PORT` serves them.
struct Quickstart {
    app: JsonClient,
    app_addr: SocketAddr,
    admin: String,
}

impl Quickstart {
    async fn start<St: Store>(store: St) -> Self {
        let cache = quickstart::cache(store).unwrap();
        let base =
            support::serve(quickstart::router(cache.clone(), quickstart::Db::seeded())).await;
        let app_addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
        let admin = support::serve(quickstart::admin_app(&cache, app_addr)).await;
        Self {
            app: JsonClient::new(base),
            app_addr,
            admin,
        }
    }

    /// `tagcache explain --admin <admin> <args>`, which must succeed.
    async fn explain(&self, args: &[&str]) -> String {
        let mut all = vec!["explain", "--admin", &self.admin];
        all.extend_from_slice(args);
        succeeded(tagcache(&all).await)
    }

    /// `tagcache stats --admin <admin>`, which must succeed.
    async fn stats(&self) -> String {
        succeeded(tagcache(&["stats", "--admin", &self.admin]).await)
    }
}

/// Runs the real binary, without the caller's `TAGCACHE_ADMIN`.
async fn tagcache(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(args)
        .env_remove("TAGCACHE_ADMIN")
        .output()
        .await
        .expect("run tagcache")
}

fn succeeded(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every value of field `name` (`name: value` lines).
fn all<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .collect()
}

/// The one value of field `name`.
fn one<'a>(text: &'a str, name: &str) -> &'a str {
    match all(text, name)[..] {
        [value] => value,
        ref other => panic!("{name}: {other:?} in\n{text}"),
    }
}

/// The version on the `tag:` line of `tag` (the last word).
fn version<'a>(text: &'a str, tag: &str) -> &'a str {
    all(text, "tag")
        .into_iter()
        .find_map(|v| v.strip_prefix(tag)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no tag {tag} in\n{text}"))
}

/// The seconds of `12.345s`.
fn seconds(value: &str) -> f64 {
    value.strip_suffix('s').unwrap().parse().unwrap()
}

async fn explain_and_stats_through_the_cli<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let q = Quickstart::start(store.clone()).await;
    let uri_tag = format!("_uri:{}/users/1", q.app_addr);

    // Before any request: the rule and its tags, nothing stored yet.
    let before = q.explain(&["GET", "/users/1"]).await;
    assert_eq!(one(&before, "request"), "GET /users/1");
    assert_eq!(one(&before, "host"), q.app_addr.to_string());
    assert_eq!(one(&before, "decision"), "cache");
    assert_eq!(one(&before, "rule"), "user_detail");
    assert_eq!(one(&before, "route"), "/users/{id}");
    assert_eq!(one(&before, "rule-ttl"), "60.000s");
    let tags: Vec<_> = all(&before, "tag")
        .into_iter()
        .map(|t| t.rsplit_once(' ').unwrap().0)
        .collect();
    assert_eq!(tags, ["User:1", uri_tag.as_str()]);
    let v1 = version(&before, "User:1").to_owned();
    assert_eq!(v1.len(), 16, "a fresh version is 16 hex digits: {v1}");
    let key = one(&before, "entry-key").to_owned();
    assert_eq!(one(&before, "entry"), "none");
    assert_eq!(one(&before, "cache-status"), "tower-tagged-cache; fwd=miss");

    // A miss stores the page under the key explain showed.
    let first = q.app.send(Method::GET, "/users/1", None).await;
    assert_eq!(first.cache_status, MISS);
    store.until_completed(Call::Put, 1).await;
    let stored = q.explain(&["GET", "/users/1"]).await;
    assert_eq!(version(&stored, "User:1"), v1);
    assert_eq!(one(&stored, "entry-key"), key);
    assert_eq!(one(&stored, "entry"), "stored");
    assert_eq!(one(&stored, "entry-status"), "200");
    let ttl_left = seconds(one(&stored, "entry-ttl-left"));
    assert!(ttl_left > 0.0 && ttl_left <= 60.0, "{stored}");
    let fresh_left = seconds(one(&stored, "entry-fresh-left"));
    assert!(fresh_left > 0.0 && fresh_left <= 60.0, "{stored}");
    assert_eq!(one(&stored, "entry-vary"), "-");
    assert_eq!(one(&stored, "cache-status"), HIT);
    assert!(!stored.contains("User 1"), "never the body:\n{stored}");

    let second = q.app.send(Method::GET, "/users/1", None).await;
    assert_eq!(second.cache_status, HIT);

    let stats = q.stats().await;
    assert_eq!(one(&stats, "requests"), "2");
    assert_eq!(one(&stats, "hits"), "1");
    assert_eq!(one(&stats, "misses"), "1");
    assert_eq!(one(&stats, "stored"), "1");
    assert_eq!(one(&stats, "hit-ratio"), "0.500");
    let rule = all(&stats, "rule")
        .into_iter()
        .find(|r| r.ends_with(" name=user_detail"))
        .unwrap_or_else(|| panic!("no user_detail line in\n{stats}"));
    assert!(
        rule.starts_with("hits=1 coalesced=0 stale=0 revalidated=0 misses=1 "),
        "{rule}"
    );
    assert_eq!(one(&stats, "store-breaker"), "closed");
    let used: u64 = one(&stats, "store-used-bytes")
        .parse()
        .expect("the store knows");
    assert!(used > 0, "{stats}");
    if one(&stats, "store").contains("MemoryStore") {
        assert_eq!(one(&stats, "store-entries"), "1");
        // The layer counts hits; the memory store does not.
        assert_eq!(one(&stats, "store-hits"), "unknown");
    } else {
        assert_eq!(one(&stats, "store"), "PausableStore<RedisStore>");
        assert_eq!(one(&stats, "store-entries"), "unknown");
        // Versions of the two tags and the epoch, and the entry, at least.
        let keys: u64 = one(&stats, "store-keys").parse().unwrap();
        assert!(keys >= 4, "{stats}");
        assert!(one(&stats, "store-hits").parse::<u64>().unwrap() > 0);
    }

    // What the PUT will bump, with the versions it replaces.
    let write = q.explain(&["PUT", "/users/1"]).await;
    assert_eq!(one(&write, "decision"), "invalidate");
    assert_eq!(one(&write, "invalidates"), format!("User:1 {v1}"));
    let uri_version = version(&before, &uri_tag);
    assert_eq!(
        one(&write, "invalidates-uri"),
        format!("{uri_tag} {uri_version}")
    );

    let put = q
        .app
        .send(Method::PUT, "/users/1", Some(r#"{"name":"Ada"}"#.into()))
        .await;
    assert_eq!(put.status, StatusCode::OK);

    // New versions, a new key, and nothing under it.
    let after = q.explain(&["GET", "/users/1"]).await;
    assert_ne!(version(&after, "User:1"), v1);
    assert_ne!(version(&after, &uri_tag), uri_version);
    assert_ne!(one(&after, "entry-key"), key);
    assert_eq!(one(&after, "entry"), "none");
    assert_eq!(one(&after, "cache-status"), "tower-tagged-cache; fwd=miss");
    let stats = q.stats().await;
    assert_eq!(one(&stats, "invalidated"), "1");
    assert_eq!(one(&stats, "requests"), "3");

    // Headers reach the explained request: a cookie bypasses the cache.
    let cookie = q
        .explain(&["GET", "/users/1", "-H", "Cookie: session=abc"])
        .await;
    assert_eq!(one(&cookie, "decision"), "bypass");
    assert_eq!(
        one(&cookie, "cache-status"),
        "tower-tagged-cache; fwd=bypass; detail=cookie"
    );
    // A host given explicitly is another key.
    let other = q
        .explain(&["GET", "/users/1", "-H", "Host: localhost:1"])
        .await;
    assert_eq!(one(&other, "host"), "localhost:1");
    assert_ne!(one(&other, "entry-key"), one(&after, "entry-key"));
    let unknown = q.explain(&["GET", "/nothing/here"]).await;
    assert_eq!(one(&unknown, "rule"), "none");
    assert_eq!(
        one(&unknown, "cache-status"),
        "tower-tagged-cache; fwd=bypass; detail=no-rule"
    );
}

support::every_store!(explain_and_stats_through_the_cli);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_errors_scripts_can_rely_on() {
    let q = Quickstart::start(tower_tagged_cache::MemoryStore::new()).await;

    // A request the admin service refuses is bad usage.
    let bad_path = tagcache(&["explain", "--admin", &q.admin, "GET", "users/1"]).await;
    assert_eq!(bad_path.status.code(), Some(2), "{bad_path:?}");
    assert_eq!(
        stderr(&bad_path),
        "tagcache: error: `users/1` is neither a path (`/users/1`) nor an absolute http(s) URL\n"
    );
    let bad_header = tagcache(&[
        "explain", "--admin", &q.admin, "GET", "/users/1", "-H", "Accept",
    ])
    .await;
    assert_eq!(bad_header.status.code(), Some(2), "{bad_header:?}");
    assert!(
        stderr(&bad_header).starts_with("tagcache: error: header `Accept` is not `Name: value`")
    );
    let https = tagcache(&["stats", "--admin", "https://127.0.0.1:1"]).await;
    assert_eq!(https.status.code(), Some(2), "{https:?}");
    assert!(stderr(&https).contains("must be an http:// URL"));
    let missing = tagcache(&["stats"]).await;
    assert_eq!(
        missing.status.code(),
        Some(2),
        "clap's usage error: {missing:?}"
    );

    // The app is not the admin service.
    let app = format!("http://{}", q.app_addr);
    let not_admin = tagcache(&["stats", "--admin", &app]).await;
    assert_eq!(not_admin.status.code(), Some(5), "{not_admin:?}");
    let msg = stderr(&not_admin);
    assert!(
        msg.starts_with(&format!(
            "tagcache: error: the admin service at {app} answered 404"
        )),
        "{msg}"
    );

    // Nothing listens: unreachable.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dead = format!("http://{closed}");
    let unreachable = tagcache(&["stats", "--admin", &dead]).await;
    assert_eq!(unreachable.status.code(), Some(5), "{unreachable:?}");
    assert!(
        stderr(&unreachable).starts_with(&format!(
            "tagcache: error: cannot reach the admin service at {dead}: "
        )),
        "{unreachable:?}"
    );

    // `TAGCACHE_ADMIN` stands for `--admin`; a bare host:port is http.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["stats"])
        .env("TAGCACHE_ADMIN", q.admin.trim_start_matches("http://"))
        .output()
        .await
        .unwrap();
    let stats = succeeded(out);
    // The one request the app saw: `/stats` sent to it, which no rule names.
    assert_eq!(one(&stats, "requests"), "1");
    assert_eq!(one(&stats, "bypass-reasons"), "no-rule=1");
}
