//! A scriptable HTTP origin for proxy tests, on a free loopback port.
//!
//! The query string says what to answer, as the cache-tests suite does:
//!
//! - `h=name:value` (repeatable): a response header;
//! - `status=404`: the status;
//! - `etag=v1`: answer `304` when `If-None-Match` names `"v1"` (weakly);
//! - `lm=1`: answer `304` when `If-Modified-Since` is present;
//! - `fail_after=N`: answer `503` from call N+1 on;
//! - `personal=1`: the body names the caller (from `Authorization`, `Cookie`
//!   or `X-User`), as a page for a logged-in user would.
//!
//! The body is `<path> #<n>` where n counts the calls for that path; the
//! origin keeps those counts and the last request headers per path.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Body, extract::Request, response::Response};
use http::{HeaderName, HeaderValue, StatusCode, header};

#[derive(Clone, Default)]
pub struct Origin {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    last: Arc<Mutex<HashMap<String, http::HeaderMap>>>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Asks the server to close its connections and stop.
    shutdown: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    addr: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

impl Origin {
    /// Starts the origin; returns it and its base URL.
    pub async fn start() -> (Self, String) {
        let origin = Self::default();
        let app = Router::new().fallback({
            let origin = origin.clone();
            move |req: Request| {
                let origin = origin.clone();
                async move { origin.answer(req) }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap()
        });
        *origin.server.lock().unwrap() = Some(server);
        *origin.shutdown.lock().unwrap() = Some(tx);
        *origin.addr.lock().unwrap() = Some(addr);
        (origin, format!("http://{addr}"))
    }

    /// Stops (closing the connections a client keeps alive, and waiting
    /// until they are closed): the origin is unreachable from then on. Its
    /// port stays taken by a listener that drops every connection at once,
    /// so that no other test's server answers in its place.
    pub async fn stop(&self) {
        let shutdown = self.shutdown.lock().unwrap().take();
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            let _ = server.await;
        }
        let addr = *self.addr.lock().unwrap();
        if let Some(addr) = addr
            && let Ok(refuser) = tokio::net::TcpListener::bind(addr).await
        {
            tokio::spawn(async move {
                while let Ok((conn, _)) = refuser.accept().await {
                    drop(conn);
                }
            });
        }
    }

    /// How many requests reached the origin for `path`.
    pub fn calls(&self, path: &str) -> usize {
        self.calls.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The headers of the last request for `path`.
    pub fn last_headers(&self, path: &str) -> http::HeaderMap {
        self.last
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    fn answer(&self, req: Request) -> Response {
        let path = req.uri().path().to_owned();
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        self.last
            .lock()
            .unwrap()
            .insert(path.clone(), req.headers().clone());
        let query = req.uri().query().unwrap_or("").to_owned();
        let mut status = StatusCode::OK;
        let mut headers = Vec::new();
        let mut etag = None;
        let mut honour_ims = false;
        let mut personal = false;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "h" => {
                    let (name, value) = v.split_once(':').expect("h=name:value");
                    headers.push((
                        HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                        HeaderValue::from_str(value.trim()).unwrap(),
                    ));
                }
                "status" => status = StatusCode::from_u16(v.parse().unwrap()).unwrap(),
                "etag" => etag = Some(format!("\"{v}\"")),
                "lm" => honour_ims = true,
                "personal" => personal = true,
                "fail_after" if n > v.parse::<usize>().unwrap() => {
                    status = StatusCode::SERVICE_UNAVAILABLE;
                }
                _ => {}
            }
        }
        let req_h = req.headers();
        let matches_etag = etag.as_ref().is_some_and(|tag| {
            req_h
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|inm| {
                    inm.split(',')
                        .any(|t| t.trim().trim_start_matches("W/") == tag)
                })
        });
        let not_modified =
            matches_etag || (honour_ims && req_h.contains_key(header::IF_MODIFIED_SINCE));
        let body = if personal {
            let who = [
                header::AUTHORIZATION,
                header::COOKIE,
                HeaderName::from_static("x-user"),
            ]
            .iter()
            .find_map(|h| req_h.get(h))
            .map_or("anonymous".to_owned(), |v| v.to_str().unwrap().to_owned());
            format!("for {who}")
        } else {
            format!("{path} #{n}")
        };
        let mut res = if not_modified {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            res
        } else {
            let mut res = Response::new(Body::from(body));
            *res.status_mut() = status;
            res
        };
        if let Some(tag) = etag {
            res.headers_mut()
                .insert(header::ETAG, HeaderValue::from_str(&tag).unwrap());
        }
        for (name, value) in headers {
            res.headers_mut().append(name, value);
        }
        res
    }
}
