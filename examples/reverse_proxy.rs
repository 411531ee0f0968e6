//! A caching reverse proxy: any HTTP origin behind `TaggedCacheLayer` in the
//! response-driven mode, where freshness comes only from the origin's
//! `Cache-Control` (`s-maxage`, `max-age`) or `Expires`.
//!
//! Run with
//!
//! ```text
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8020 --upstream http://127.0.0.1:8000
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8020 --upstream http://127.0.0.1:8000 --redis redis://127.0.0.1:6379/
//! ```
//!
//! It forwards every method, path, query, header (less hop-by-hop ones) and
//! body to the upstream unchanged, adds `Via`, and caches what RFC 9111 lets a
//! shared cache store. The `Host` it forwards is the host it keys on: for an
//! absolute-form target (`GET http://a.example/p`), the target's authority
//! replaces the client's `Host` (RFC 9112 §3.2.2), so a `Host` header cannot
//! make the origin answer for one host what is stored under another. Every response says what the cache did in
//! `cache-status`. Writes (`POST`, `PUT`, `PATCH`, `DELETE`) that succeed
//! invalidate what is stored for their URI.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body};
use clap::Parser;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tower_tagged_cache::{
    CacheRule, ConfigError, Invalidator, MemoryStore, RedisStore, Store, TaggedCacheLayer,
    layer::{OriginUnreachable, remove_hop_by_hop},
};

/// The `Via` member this proxy adds, both ways (RFC 9110 §7.6.3).
const VIA: &str = "1.1 tower-tagged-cache";

#[derive(Parser, Debug)]
#[command(about = "A caching reverse proxy in front of any HTTP origin")]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8020")]
    listen: SocketAddr,
    /// The origin, as `http://host:port`.
    #[arg(long)]
    upstream: Uri,
    /// Use the Redis store at this URL instead of the memory store.
    #[arg(long)]
    redis: Option<String>,
    /// The longest any response is kept, in seconds.
    #[arg(long, default_value_t = 86_400)]
    max_ttl: u64,
    /// Store responses that state no freshness (no `s-maxage`, `max-age`
    /// or `Expires`) for this many seconds. Off by default: RFC 9111
    /// heuristics are not used, and such responses are not stored.
    #[arg(long)]
    default_ttl: Option<u64>,
}

/// Forwards requests to the upstream with hyper's client.
#[derive(Clone, Debug)]
pub struct Forward {
    client: Client<HttpConnector, Body>,
    upstream: Uri,
}

impl Forward {
    /// A forwarder to `upstream` (`http://host:port`).
    pub fn new(upstream: Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            upstream,
        }
    }
}

impl tower::Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let client = self.client.clone();
        let upstream = self.upstream.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut uri = upstream.into_parts();
            uri.path_and_query = path.parse().ok();
            parts.uri = match Uri::from_parts(uri) {
                Ok(uri) => uri,
                Err(e) => return Ok(bad_gateway(format!("bad upstream URI: {e}"))),
            };
            remove_hop_by_hop(&mut parts.headers);
            parts
                .headers
                .append(header::VIA, HeaderValue::from_static(VIA));
            match client.request(Request::from_parts(parts, body)).await {
                Ok(res) => {
                    let (mut parts, body) = res.into_parts();
                    remove_hop_by_hop(&mut parts.headers);
                    parts
                        .headers
                        .append(header::VIA, HeaderValue::from_static(VIA));
                    Ok(Response::from_parts(parts, Body::new(body)))
                }
                Err(e) => {
                    // Lets the cache serve a stale copy instead (RFC 9111 §4.2.4).
                    let mut res = bad_gateway(format!("upstream unreachable: {e}"));
                    res.extensions_mut().insert(OriginUnreachable);
                    Ok(res)
                }
            }
        })
    }
}

fn bad_gateway(msg: String) -> Response<Body> {
    let mut res = Response::new(Body::from(msg));
    *res.status_mut() = StatusCode::BAD_GATEWAY;
    res
}

/// The proxy: every path cached in the response-driven mode, kept at most
/// `max_ttl`. With `default_ttl`, responses that state no freshness are
/// fresh that long.
pub fn proxy<St: Store>(
    store: St,
    upstream: Uri,
    max_ttl: Duration,
    default_ttl: Option<Duration>,
) -> Result<Router, ConfigError> {
    let rule = |pattern: &str| {
        let rule = CacheRule::get(pattern).response_driven().ttl(max_ttl);
        match default_ttl {
            Some(ttl) => rule.default_freshness(ttl),
            None => rule,
        }
    };
    let cache = TaggedCacheLayer::new(store)
        .rule(rule("/"))?
        .rule(rule("/{*path}"))?;
    Ok(Router::new()
        .fallback_service(Forward::new(upstream))
        .layer(cache)
        .layer(tower::util::MapRequestLayer::new(target_host)))
}

/// For an absolute-form target, the `Host` the request carries on is the
/// target's authority (RFC 9112 §3.2.2: the received `Host` is ignored), so
/// the cache keys on, and the origin answers for, the same host.
fn target_host(mut req: Request<Body>) -> Request<Body> {
    // `host[:port]`: the authority without userinfo.
    let target = req.uri().authority().map(|a| a.as_str().rsplit('@').next());
    if let Some(Some(target)) = target
        && let Ok(host) = HeaderValue::from_str(target)
    {
        req.headers_mut().insert(header::HOST, host);
    }
    req
}

/// How the proxy decides freshness, said once at start-up: an origin that
/// sends no freshness is otherwise cached not at all, and silently.
pub fn freshness_policy(max_ttl: u64, default_ttl: Option<u64>) -> String {
    let without = match default_ttl {
        Some(s) => format!("responses without them are fresh for {s} s (--default-ttl)"),
        None => "responses without them are not stored (cache-status detail=no-freshness; \
                 --default-ttl SECONDS stores them)"
            .to_owned(),
    };
    format!(
        "freshness: from the origin's Cache-Control s-maxage or max-age, then Expires; \
         {without}; nothing is kept longer than {max_ttl} s (--max-ttl)"
    )
}

async fn serve<St: Store>(
    store: St,
    args: Args,
    label: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!(
        "reverse_proxy listening on http://{} for {} (store: {label})",
        listener.local_addr()?,
        args.upstream
    );
    let default_ttl = args.default_ttl.map(Duration::from_secs);
    println!("{}", freshness_policy(args.max_ttl, args.default_ttl));
    let app = proxy(
        store,
        args.upstream,
        Duration::from_secs(args.max_ttl),
        default_ttl,
    )?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_tagged_cache=warn".into()),
        )
        // Colours only on a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    if args.upstream.scheme_str() != Some("http") || args.upstream.authority().is_none() {
        return Err(format!(
            "--upstream must look like http://host:port, got {}",
            args.upstream
        )
        .into());
    }
    match args.redis.clone() {
        Some(url) => {
            let store = RedisStore::builder(url.as_str())
                .connect_lazy()
                .map_err(|e| format!("bad Redis URL {url}: {e}"))?;
            // The proxy starts with Redis down (and caches once it is back),
            // but says so now rather than at the first request.
            if let Err(e) = Invalidator::new(store.clone()).epoch().await {
                eprintln!(
                    "warning: Redis at {url} is not reachable ({e}); proxying uncached until it is"
                );
            }
            serve(store, args, format!("redis at {url}")).await
        }
        None => serve(MemoryStore::new(), args, "memory".to_owned()).await,
    }
}
