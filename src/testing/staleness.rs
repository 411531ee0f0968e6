//! A checker that looks for stale reads through a layered service.

use std::{
    fmt,
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower_service::Service;

use crate::layer::CACHE_STATUS;

/// Drives a service (wrapped with the layer) with concurrent reads and
/// writes of one resource, and reports every read whose data is older than a
/// write that had already returned when the read started.
///
/// You say how to make a read request, how to make the write request that
/// stores data version `n`, and how to find the data version in a read's
/// body. The checker writes versions 1, 2, 3, ... one at a time, each after
/// the previous one returned; readers read all the while, and the writer
/// reads right before and right after each write. A read is stale when the
/// version it shows is below the last write acknowledged before it started:
/// the layer promises that a request starting after an invalidation
/// returned never sees what it invalidated.
///
/// A write counts as acknowledged when it answers 2xx and its
/// `cache-status` does not say the invalidation failed. A queued
/// invalidation (`detail=invalidation-queued`) counts: the layer promises
/// the same for it, by fencing what it hides until it lands.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::{convert::Infallible, sync::{Arc, atomic::{AtomicU64, Ordering}}};
/// use bytes::Bytes;
/// use http::{Method, Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use tower::service_fn;
/// use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer, WriteRule, testing::StalenessCheck, tower_layer::Layer};
///
/// // The resource: a number, read with GET and set with PUT.
/// let data = Arc::new(AtomicU64::new(0));
/// let app = service_fn(move |req: Request<Full<Bytes>>| {
///     let data = data.clone();
///     async move {
///         if req.method() == Method::PUT {
///             let body = req.into_body().collect().await?.to_bytes();
///             data.store(std::str::from_utf8(&body)?.parse()?, Ordering::SeqCst);
///         }
///         let now = data.load(Ordering::SeqCst).to_string();
///         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response::new(Full::new(Bytes::from(now))))
///     }
/// });
/// let layer = TaggedCacheLayer::new(MemoryStore::new())
///     .rule(CacheRule::get("/item").tags(["Item"]))?
///     .rule(WriteRule::put("/item").invalidates(["Item"]))?;
///
/// let report = StalenessCheck::new(
///     || Request::get("/item").body(Full::default()).unwrap(),
///     |n| Request::put("/item").body(Full::new(Bytes::from(n.to_string()))).unwrap(),
///     |body| std::str::from_utf8(body).ok()?.parse().ok(),
/// )
/// .writes(20)
/// .run(layer.layer(app))
/// .await;
/// println!("{report}");
/// report.assert_clean();
/// assert!(report.hits() > 0, "the check went through the cache");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StalenessCheck<R, W, V> {
    read: Arc<R>,
    write: Arc<W>,
    version: Arc<V>,
    readers: usize,
    writes: u64,
}

impl<R, W, V> StalenessCheck<R, W, V> {
    /// A check with 4 readers and 50 writes:
    ///
    /// - `read()` makes a read request;
    /// - `write(n)` makes the write request that stores data version `n`
    ///   (1, 2, 3, ...);
    /// - `version(body)` reads the data version from a read's body; `None`
    ///   stands for the data from before the first write (version 0).
    pub fn new<B>(read: R, write: W, version: V) -> Self
    where
        R: Fn() -> Request<B>,
        W: Fn(u64) -> Request<B>,
        V: Fn(&[u8]) -> Option<u64>,
    {
        Self {
            read: Arc::new(read),
            write: Arc::new(write),
            version: Arc::new(version),
            readers: 4,
            writes: 50,
        }
    }

    /// How many tasks read concurrently with the writes. Defaults to 4.
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// How many writes, one after another. Defaults to 50.
    pub fn writes(mut self, writes: u64) -> Self {
        self.writes = writes;
        self
    }

    /// Runs the check on `service` (clones of it serve the readers).
    pub async fn run<S, B, ResB>(&self, service: S) -> StalenessReport
    where
        R: Fn() -> Request<B> + Send + Sync + 'static,
        W: Fn(u64) -> Request<B> + Send + Sync + 'static,
        V: Fn(&[u8]) -> Option<u64> + Send + Sync + 'static,
        S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: fmt::Display,
        B: Send + 'static,
        ResB: http_body::Body + Send + 'static,
        ResB::Data: Send,
        ResB::Error: fmt::Display,
    {
        let shared = Arc::new(Shared::default());
        let done = Arc::new(AtomicBool::new(false));
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..self.readers {
            let (mut svc, shared, done) = (service.clone(), shared.clone(), done.clone());
            let (read, version) = (self.read.clone(), self.version.clone());
            readers.spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    check_read(&mut svc, &*read, &*version, &shared).await;
                    tokio::task::yield_now().await;
                }
            });
        }
        let mut svc = service;
        for n in 1..=self.writes {
            check_read(&mut svc, &*self.read, &*self.version, &shared).await;
            let answer = send(&mut svc, (self.write)(n)).await;
            shared.writes.fetch_add(1, Ordering::SeqCst);
            match answer {
                Ok(seen)
                    if seen.success
                        && !seen
                            .cache_status
                            .as_deref()
                            .is_some_and(|s| s.contains("invalidation-failed")) =>
                {
                    shared.acknowledged.store(n, Ordering::SeqCst);
                }
                Ok(_) | Err(_) => {
                    shared.failed_writes.fetch_add(1, Ordering::SeqCst);
                }
            }
            check_read(&mut svc, &*self.read, &*self.version, &shared).await;
        }
        done.store(true, Ordering::SeqCst);
        while let Some(joined) = readers.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        let stale = std::mem::take(&mut *shared.stale.lock().expect("stale lock"));
        StalenessReport {
            reads: shared.reads.load(Ordering::SeqCst),
            hits: shared.hits.load(Ordering::SeqCst),
            failed_reads: shared.failed_reads.load(Ordering::SeqCst),
            writes: shared.writes.load(Ordering::SeqCst),
            failed_writes: shared.failed_writes.load(Ordering::SeqCst),
            stale,
        }
    }
}

impl<R, W, V> fmt::Debug for StalenessCheck<R, W, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StalenessCheck")
            .field("readers", &self.readers)
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    /// The highest version whose write returned and was acknowledged.
    acknowledged: AtomicU64,
    reads: AtomicUsize,
    hits: AtomicUsize,
    failed_reads: AtomicUsize,
    writes: AtomicUsize,
    failed_writes: AtomicUsize,
    stale: Mutex<Vec<StaleRead>>,
}

/// What one request returned, as far as the check cares.
struct Answer {
    success: bool,
    cache_status: Option<String>,
    body: Bytes,
}

async fn send<S, B, ResB>(svc: &mut S, req: Request<B>) -> Result<Answer, String>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: http_body::Body,
    ResB::Error: fmt::Display,
{
    poll_fn(|cx| svc.poll_ready(cx))
        .await
        .map_err(|e| e.to_string())?;
    let res = svc.call(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer {
        success: parts.status.is_success(),
        cache_status: parts
            .headers
            .get(CACHE_STATUS)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    })
}

/// One read, checked against the writes acknowledged before it started.
async fn check_read<S, B, ResB>(
    svc: &mut S,
    read: &(dyn Fn() -> Request<B> + Send + Sync),
    version: &(dyn Fn(&[u8]) -> Option<u64> + Send + Sync),
    shared: &Shared,
) where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: http_body::Body,
    ResB::Error: fmt::Display,
{
    let floor = shared.acknowledged.load(Ordering::SeqCst);
    let answer = send(svc, read()).await;
    shared.reads.fetch_add(1, Ordering::SeqCst);
    let answer = match answer {
        Ok(a) if a.success => a,
        _ => {
            shared.failed_reads.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    if answer
        .cache_status
        .as_deref()
        .is_some_and(|s| s.split(';').nth(1).map(str::trim) == Some("hit"))
    {
        shared.hits.fetch_add(1, Ordering::SeqCst);
    }
    let saw = version(&answer.body).unwrap_or(0);
    if saw < floor {
        shared.stale.lock().expect("stale lock").push(StaleRead {
            saw,
            acknowledged: floor,
            cache_status: answer.cache_status,
        });
    }
}

/// A read that returned data older than a write acknowledged before it
/// started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleRead {
    /// The data version the read returned.
    pub saw: u64,
    /// The last write acknowledged before the read started.
    pub acknowledged: u64,
    /// The read's `cache-status`, if it had one.
    pub cache_status: Option<String>,
}

impl fmt::Display for StaleRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read version {} after write {} returned ({})",
            self.saw,
            self.acknowledged,
            self.cache_status.as_deref().unwrap_or("no cache-status")
        )
    }
}

/// What a [`StalenessCheck`] found.
#[derive(Debug, Clone)]
pub struct StalenessReport {
    reads: usize,
    hits: usize,
    failed_reads: usize,
    writes: usize,
    failed_writes: usize,
    stale: Vec<StaleRead>,
}

impl StalenessReport {
    /// Reads sent (by the readers and by the writer around each write).
    pub fn reads(&self) -> usize {
        self.reads
    }

    /// Reads answered from the cache (`cache-status: ...; hit`): a check
    /// with none did not exercise the cache.
    pub fn hits(&self) -> usize {
        self.hits
    }

    /// Reads that failed or did not answer 2xx (not checked for staleness).
    pub fn failed_reads(&self) -> usize {
        self.failed_reads
    }

    /// Writes sent.
    pub fn writes(&self) -> usize {
        self.writes
    }

    /// Writes not acknowledged: not 2xx, failed, or whose invalidation
    /// failed.
    pub fn failed_writes(&self) -> usize {
        self.failed_writes
    }

    /// Every stale read, in the order they were seen.
    pub fn stale_reads(&self) -> &[StaleRead] {
        &self.stale
    }

    /// `true` when no read was stale.
    pub fn is_clean(&self) -> bool {
        self.stale.is_empty()
    }

    /// Panics when a read was stale, listing the first ones.
    ///
    /// # Panics
    ///
    /// When [`is_clean`](Self::is_clean) is `false`.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "{self}");
    }
}

impl fmt::Display for StalenessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "staleness: {} reads ({} hits, {} failed), {} writes ({} failed), {} stale reads",
            self.reads,
            self.hits,
            self.failed_reads,
            self.writes,
            self.failed_writes,
            self.stale.len()
        )?;
        for stale in self.stale.iter().take(5) {
            write!(f, "\n  stale: {stale}")?;
        }
        if self.stale.len() > 5 {
            write!(f, "\n  ... and {} more", self.stale.len() - 5)?;
        }
        Ok(())
    }
}
