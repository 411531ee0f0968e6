//! Test support: a private `redis-server` per test, on a free loopback port.
//!
//! Tests never touch a Redis they did not start, except the one named by
//! `REDIS_URL` when the caller sets it (then every test uses its own key
//! prefix). A test that cannot start or reach Redis fails with a message that
//! says what to install.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tower_tagged_cache::{RedisStore, store::RedisStoreBuilder};

pub mod origin;

/// For each async fn `name(store)` of the calling test file, generates the
/// tests `memory::name` (a fresh `MemoryStore`) and `redis::name` (a store on
/// a private redis-server, or `REDIS_URL`).
#[allow(unused_macros)]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::support::trace_init();
                    super::$name(tower_tagged_cache::MemoryStore::new()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::support::trace_init();
                    let redis = super::support::Redis::start();
                    super::$name(redis.store().await).await
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;

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

/// Logs to the test output when `RUST_LOG` is set.
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A Redis for one test: a child `redis-server` this test owns, or the
/// server of `REDIS_URL`.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    url: String,
    /// A key prefix unique to this test.
    pub prefix: String,
}

impl Redis {
    /// `REDIS_URL` when set, else a private server.
    pub fn start() -> Self {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self {
                child: None,
                port: 0,
                url,
                prefix: unique_prefix(),
            },
            _ => Self::start_private(),
        }
    }

    /// Always a private server (for tests that stop and restart it).
    pub fn start_private() -> Self {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(port) {
                Ok(child) => {
                    return Self {
                        child: Some(child),
                        port,
                        url: format!("redis://127.0.0.1:{port}/"),
                        prefix: unique_prefix(),
                    };
                }
                Err(e) => last_err = e,
            }
        }
        panic!("could not start a private redis-server: {last_err}");
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store on this server with the test's own prefix.
    pub async fn store(&self) -> RedisStore {
        self.builder()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to Redis at {}: {e}", self.url))
    }

    /// The same store through a bb8 pool of at most `max_size` connections.
    #[cfg(feature = "bb8")]
    pub async fn bb8_store(&self, max_size: u32) -> RedisStore {
        self.builder()
            .bb8_pool(max_size)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect a bb8 pool to Redis at {}: {e}", self.url))
    }

    /// The settings of [`store`](Self::store), not yet connected.
    pub fn builder(&self) -> RedisStoreBuilder {
        RedisStore::builder(self.url())
            .prefix(self.prefix.clone())
            .command_timeout(Duration::from_millis(300))
    }

    /// A plain connection for checks behind the store's back.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to Redis at {}: {e}", self.url))
    }

    /// Kills the private server (as a crash would) and waits until it is gone.
    pub fn kill(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("kill() needs a private server (Redis::start_private)");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the private server again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() after kill()");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(self.port) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("could not restart redis-server: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unique_prefix() -> String {
    format!("ttc-test-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Spawns `redis-server` on `port` and waits until it answers `PING`.
fn spawn(port: u16) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run redis-server ({e}); install it (`apt-get install redis-server`) \
                 or set REDIS_URL to a server the tests may use"
            )
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if ping(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "redis-server on port {port} did not answer PING within 10 s"
    ))
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The port of a `redis://host:port/` URL.
pub fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// A `MONITOR` connection: every command the server runs, one line each.
/// Commands a script runs inside Redis are marked ` [0 lua] `; commands from
/// clients carry the client's address.
pub struct Monitor {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl Monitor {
    pub async fn start(redis: &Redis) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port_of(redis.url())))
            .await
            .expect("connect for MONITOR");
        tcp.write_all(b"MONITOR\r\n").await.expect("MONITOR");
        let mut lines = tokio::io::BufReader::new(tcp).lines();
        let ok = lines.next_line().await.expect("MONITOR reply");
        assert_eq!(ok.as_deref(), Some("+OK"));
        Self { lines }
    }

    /// Lines up to (not including) the command that carries `sentinel`.
    pub async fn until(&mut self, sentinel: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await
                .expect("MONITOR went quiet before the sentinel")
                .expect("MONITOR read")
                .expect("MONITOR closed");
            if line.contains(sentinel) {
                return out;
            }
            out.push(line);
        }
    }
}

/// The command name (lower case) of a `MONITOR` line sent by a client;
/// `None` for a command a script ran inside Redis.
pub fn monitor_client_command(line: &str) -> Option<String> {
    if line.contains(" [0 lua] ") {
        return None;
    }
    let (_, rest) = line.split_once("] ")?;
    let name = rest.strip_prefix('"')?.split('"').next()?;
    Some(name.to_ascii_lowercase())
}

/// Calls of one Redis command so far (`INFO commandstats`).
pub async fn command_calls(conn: &mut redis::aio::MultiplexedConnection, cmd: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    let needle = format!("cmdstat_{cmd}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub mod scripted {
    //! A response body that plays back scripted frames (data, trailers,
    //! errors), for origins in tests.
    use std::{
        collections::VecDeque,
        pin::Pin,
        task::{Context, Poll},
    };

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::{Body, Frame, SizeHint};

    #[derive(Debug)]
    pub enum Step {
        Data(Bytes),
        Trailers(HeaderMap),
        Error(&'static str),
    }

    #[derive(Debug, Default)]
    pub struct Scripted {
        steps: VecDeque<Step>,
        exact_len: Option<u64>,
    }

    impl Scripted {
        /// One data frame, with an exact size hint.
        pub fn full(data: impl Into<Bytes>) -> Self {
            let data = data.into();
            Self {
                exact_len: Some(data.len() as u64),
                steps: VecDeque::from([Step::Data(data)]),
            }
        }

        /// Frames of unknown total length.
        pub fn steps(steps: impl IntoIterator<Item = Step>) -> Self {
            Self {
                steps: steps.into_iter().collect(),
                exact_len: None,
            }
        }
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.steps.pop_front().map(|step| match step {
                Step::Data(d) => Ok(Frame::data(d)),
                Step::Trailers(t) => Ok(Frame::trailers(t)),
                Step::Error(e) => Err(std::io::Error::other(e)),
            }))
        }

        /// A streamed body never knows it has ended before it is polled
        /// again (as `StreamBody`); a full one does.
        fn is_end_stream(&self) -> bool {
            self.exact_len.is_some() && self.steps.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            match self.exact_len {
                Some(n) if self.steps.len() == 1 => SizeHint::with_exact(n),
                _ => SizeHint::default(),
            }
        }
    }
}

pub mod observed {
    //! A store wrapper that reports completed writes, so tests can await the
    //! background store write instead of sleeping. It delegates every call to
    //! the real store; it fakes nothing.
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::watch;
    use tower_tagged_cache::{
        Error, FragmentedKey, Store, Tag, Version,
        store::{EntryKey, Lease, Lookup},
    };

    #[derive(Clone)]
    pub struct Observed<St> {
        pub inner: St,
        puts: watch::Sender<usize>,
        lookups: watch::Sender<usize>,
        /// Lease attempts answered, and how many were refused.
        leases: watch::Sender<(usize, usize)>,
        releases: watch::Sender<usize>,
    }

    impl<St> Observed<St> {
        pub fn new(inner: St) -> Self {
            Self {
                inner,
                puts: watch::Sender::new(0),
                lookups: watch::Sender::new(0),
                leases: watch::Sender::new((0, 0)),
                releases: watch::Sender::new(0),
            }
        }

        /// Waits until `n` lease attempts were refused in total (5 s at most).
        pub async fn refused_leases_reached(&self, n: usize) {
            let mut rx = self.leases.subscribe();
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&(_, r)| r >= n))
                .await
                .unwrap_or_else(|_| panic!("refused lease #{n} never came"))
                .expect("sender alive");
        }

        /// Waits until `n` leases were given back in total (5 s at most).
        pub async fn releases_reached(&self, n: usize) {
            let mut rx = self.releases.subscribe();
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&r| r >= n))
                .await
                .unwrap_or_else(|_| panic!("lease release #{n} never came"))
                .expect("sender alive");
        }

        /// Lease attempts so far, and how many were refused.
        pub fn leases(&self) -> (usize, usize) {
            *self.leases.borrow()
        }

        /// Waits until `n` writes have completed in total (5 s at most).
        pub async fn puts_reached(&self, n: usize) {
            let mut rx = self.puts.subscribe();
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&p| p >= n))
                .await
                .unwrap_or_else(|_| panic!("store write #{n} never completed"))
                .expect("sender alive");
        }

        /// Waits until `n` lookups have completed in total (5 s at most).
        pub async fn lookups_reached(&self, n: usize) {
            let mut rx = self.lookups.subscribe();
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&l| l >= n))
                .await
                .unwrap_or_else(|_| panic!("lookup #{n} never completed"))
                .expect("sender alive");
        }

        /// Writes completed so far.
        pub fn puts(&self) -> usize {
            *self.puts.borrow()
        }

        /// Lookups completed so far.
        pub fn lookups(&self) -> usize {
            *self.lookups.borrow()
        }
    }

    impl<St: Store> Store for Observed<St> {
        async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
            let result = self.inner.lookup(key).await;
            self.lookups.send_modify(|l| *l += 1);
            result
        }

        async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
            let result = self.inner.put(key, value, ttl).await;
            self.puts.send_modify(|p| *p += 1);
            result
        }

        async fn delete(&self, key: EntryKey) -> Result<(), Error> {
            self.inner.delete(key).await
        }

        async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
            self.inner.bump(tags).await
        }

        async fn epoch(&self) -> Result<Option<Version>, Error> {
            self.inner.epoch().await
        }

        async fn bump_epoch(&self) -> Result<(), Error> {
            self.inner.bump_epoch().await
        }

        async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
            self.inner.versions(tags).await
        }

        fn new_lease(&self, key: &EntryKey) -> Lease {
            self.inner.new_lease(key)
        }

        async fn acquire_lease<'a>(
            &'a self,
            lease: &'a Lease,
            ttl: Duration,
        ) -> Result<bool, Error> {
            let result = self.inner.acquire_lease(lease, ttl).await;
            let refused = matches!(result, Ok(false));
            self.leases.send_modify(|(n, r)| {
                *n += 1;
                *r += usize::from(refused);
            });
            result
        }

        async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
            let result = self.inner.release_lease(lease).await;
            self.releases.send_modify(|r| *r += 1);
            result
        }
    }
}

pub mod faulty {
    //! A mock store that only fails, to inject faults; it counts the calls
    //! that reach it.
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use bytes::Bytes;
    use tower_tagged_cache::{
        Error, FragmentedKey, Store, Tag, Version,
        store::{EntryKey, Lookup},
    };

    /// How a [`Faulty`] store misbehaves.
    #[derive(Clone, Copy, Debug)]
    pub enum Fault {
        /// Every call fails at once (connection refused).
        Error,
        /// Every call hangs forever (the caller's deadline ends it).
        Hang,
    }

    #[derive(Clone)]
    pub struct Faulty {
        pub fault: Fault,
        /// Calls that reached the store.
        pub calls: Arc<AtomicUsize>,
    }

    impl Faulty {
        pub fn new(fault: Fault) -> Self {
            Self {
                fault,
                calls: Arc::default(),
            }
        }

        async fn fail<T>(&self) -> Result<T, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.fault {
                Fault::Error => {
                    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                    Err(Error::from(redis::RedisError::from(refused)))
                }
                Fault::Hang => std::future::pending().await,
            }
        }
    }

    impl Store for Faulty {
        async fn lookup<'a>(&'a self, _: &'a FragmentedKey) -> Result<Lookup, Error> {
            self.fail().await
        }
        async fn put(&self, _: EntryKey, _: Bytes, _: Duration) -> Result<(), Error> {
            self.fail().await
        }
        async fn delete(&self, _: EntryKey) -> Result<(), Error> {
            self.fail().await
        }
        async fn bump<'a>(&'a self, _: &'a [Tag]) -> Result<(), Error> {
            self.fail().await
        }
        async fn epoch(&self) -> Result<Option<Version>, Error> {
            self.fail().await
        }
        async fn bump_epoch(&self) -> Result<(), Error> {
            self.fail().await
        }
        async fn versions<'a>(&'a self, _: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
            self.fail().await
        }
    }
}
