//! A private `redis-server` per test, on a free loopback port.
//!
//! Tests never touch a Redis they did not start, except the one named by
//! `REDIS_URL` when the caller sets it (then every test uses its own key
//! prefix). A test that cannot start or reach Redis fails with a message that
//! says what to install.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tower_tagged_cache::{RedisStore, store::RedisStoreBuilder};

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
            match spawn(port, true) {
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

    /// Snapshots the private server's data to disk (`SAVE`), then kills it
    /// as a crash would: [`restart`](Self::restart) loads the snapshot, as
    /// a Redis with persistence comes back with its data.
    pub fn kill_keeping_data(&mut self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to save");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"SAVE\r\n").unwrap();
        let mut ok = [0u8; 5];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n", "SAVE");
        self.kill();
    }

    /// Starts the private server again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() after kill()");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(self.port, false) {
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
        if self.port != 0 {
            let _ = std::fs::remove_dir_all(data_dir(self.port));
        }
    }
}

/// Where the server on `port` keeps its snapshot.
fn data_dir(port: u16) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ttc-redis-{port}"))
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

/// Spawns `redis-server` on `port` and waits until it answers `PING` as the
/// process just spawned: when two tests pick the same free port at once, the
/// one whose server lost the bind must not take the other's server for its
/// own (and see its connections reset when that test ends).
fn spawn(port: u16, fresh: bool) -> Result<Child, String> {
    // Snapshots (`SAVE`) go to a directory of this port's own, where a
    // restart on the same port finds them.
    let dir = data_dir(port);
    if fresh {
        // Another test's server may have used this port before.
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--dir",
            dir.to_str().expect("a UTF-8 temp dir"),
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
            return match server_pid(port) {
                Some(pid) if pid == child.id() => Ok(child),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(format!("port {port} is another redis-server's"))
                }
            };
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

/// The `process_id` that `INFO server` reports on `port`.
fn server_pid(port: u16) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    // A bulk string: `$<len>\r\n<len bytes>\r\n`.
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n") {
            let len: usize = head.strip_prefix('$')?.parse().ok()?;
            if body.len() >= len {
                return body[..len]
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .and_then(|pid| pid.trim().parse().ok());
            }
        }
    }
}

/// The port of a `redis://host:port/` URL.
pub fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}
