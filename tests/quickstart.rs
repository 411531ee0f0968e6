//! The quickstart flow end to end, over real HTTP on loopback, on both stores.

use crate::support;

use crate::quickstart_app as quickstart;

use http::{Method, StatusCode};
use support::JsonReply;
use tower_tagged_cache::{
    Store,
    testing::{Call, PausableStore},
};

struct App {
    client: support::JsonClient,
}

impl App {
    async fn start<St: Store>(store: St) -> Self {
        let app = quickstart::app(store, quickstart::Db::seeded()).unwrap();
        Self {
            client: support::JsonClient::new(support::serve(app).await),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> JsonReply {
        self.client
            .send(method, path, body.map(str::to_owned))
            .await
    }

    async fn get(&self, path: &str) -> JsonReply {
        self.send(Method::GET, path, None).await
    }
}

const MISS: &str = "tower-tagged-cache; fwd=miss; stored";
const HIT: &str = "tower-tagged-cache; hit";

async fn quickstart_flow<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let app = App::start(store.clone()).await;

    let first = app.get("/users/1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.cache_status, MISS);
    assert_eq!(first.json["id"], 1);
    assert_eq!(first.json["name"], "User 1");
    store.until_completed(Call::Put, 1).await;
    let second = app.get("/users/1").await;
    assert_eq!(second.cache_status, HIT);
    assert_eq!(second.json, first.json);

    let put = app
        .send(Method::PUT, "/users/1", Some(r#"{"name":"Ada"}"#))
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let third = app.get("/users/1").await;
    assert_eq!(third.cache_status, MISS);
    assert_eq!(third.json["name"], "Ada");
    assert_ne!(third.json["computed_at"], first.json["computed_at"]);
    store.until_completed(Call::Put, 2).await;
    let fourth = app.get("/users/1").await;
    assert_eq!(fourth.cache_status, HIT);
    assert_eq!(fourth.json, third.json);

    // Another spelling of the same user id reaches the same tag.
    app.send(Method::PUT, "/users/01", Some(r#"{"name":"Lin"}"#))
        .await;
    let fifth = app.get("/users/1").await;
    assert_eq!(fifth.cache_status, MISS);
    assert_eq!(fifth.json["name"], "Lin");
    store.until_completed(Call::Put, 3).await;

    // Other users keep their entries.
    let two = app.get("/users/2").await;
    store.until_completed(Call::Put, 4).await;
    app.send(Method::PUT, "/users/1", Some(r#"{"name":"Grace"}"#))
        .await;
    assert_eq!(app.get("/users/2").await.json, two.json);

    // Unknown users are 404 and never stored.
    for _ in 0..2 {
        let missing = app.get("/users/1000").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(
            missing.cache_status,
            "tower-tagged-cache; fwd=miss; detail=status"
        );
    }
    let put_missing = app
        .send(Method::PUT, "/users/1000", Some(r#"{"name":"x"}"#))
        .await;
    assert_eq!(put_missing.status, StatusCode::NOT_FOUND);
    assert_eq!(store.completed(Call::Put), 4);
}

support::every_store!(quickstart_flow);
