//! Serving an app on loopback, and a plain HTTP/1.1 JSON client for it.

/// Serves an axum app on a free loopback port, in the background; returns
/// its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

/// A JSON API's answer, as end-to-end tests check it.
#[derive(Debug)]
pub struct JsonReply {
    pub status: http::StatusCode,
    pub cache_status: String,
    /// `Null` for an empty body.
    pub json: serde_json::Value,
}

/// A plain HTTP/1.1 client for an app served by [`serve`].
pub struct JsonClient {
    base: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl JsonClient {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// Sends `body` as JSON (when given); every response must say
    /// `cache-status`.
    pub async fn send(&self, method: http::Method, path: &str, body: Option<String>) -> JsonReply {
        use http_body_util::BodyExt;
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .unwrap();
        let res = self.client.request(req).await.expect("request");
        let status = res.status();
        let cache_status = res
            .headers()
            .get("cache-status")
            .expect("every response says cache-status")
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        JsonReply {
            status,
            cache_status,
            json,
        }
    }
}
