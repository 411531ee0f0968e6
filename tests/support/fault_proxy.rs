//! A TCP proxy on loopback between the app and Redis that injects network
//! faults, switched at run time: latency, a blackhole, connection resets and
//! a bandwidth cap. A fault applies at once to the connections already open
//! and to those accepted later; [`FaultProxy::heal`] goes back to plain
//! forwarding.
//!
//! Each accepted connection gets its own upstream connection and two copy
//! directions; each direction reads chunks into a small queue and writes them
//! out when due, so latency delays every chunk without serialising them.
//! Fault changes travel on a `watch` channel: a connection waiting for a due
//! time or a bandwidth slot wakes on a change instead of sleeping it out.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{ReadHalf, WriteHalf},
    },
    sync::{mpsc, watch},
    task::JoinSet,
    time::Instant,
};

/// What the proxy does to the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forwards each chunk `latency` after it was read, at most `bandwidth`
    /// bytes per second when set.
    Forward {
        latency: Duration,
        bandwidth: Option<u64>,
    },
    /// Reads and drops every byte; answers nothing, closes nothing.
    Blackhole,
    /// Resets every connection, open or new.
    Reset,
}

const TRANSPARENT: Mode = Mode::Forward {
    latency: Duration::ZERO,
    bandwidth: None,
};

#[derive(Clone, Copy, Debug)]
struct State {
    mode: Mode,
    /// How many times [`FaultProxy::reset`] was called: a connection opened
    /// before the latest reset is reset even if the proxy healed since.
    resets: u64,
}

/// A fault-injecting TCP proxy in front of one upstream address, listening
/// on `127.0.0.1` on a free port. Dropping it closes its listener and every
/// connection it carries.
pub struct FaultProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding, transparently, to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on loopback");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = watch::Sender::new(State {
            mode: TRANSPARENT,
            resets: 0,
        });
        let task = tokio::spawn(accept(listener, upstream, state.subscribe()));
        Self { addr, state, task }
    }

    /// Starts in front of the Redis at `url` (`redis://host:port/`).
    pub async fn for_redis(url: &str) -> Self {
        let upstream = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("no host:port in {url}: {e}"));
        Self::start(upstream).await
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A Redis URL that goes through the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Delays every chunk, both ways, by `latency` (replacing any fault).
    pub fn latency(&self, latency: Duration) {
        self.set(Mode::Forward {
            latency,
            bandwidth: None,
        });
    }

    /// Reads and drops every byte both ways, on open and new connections:
    /// nothing reaches the other side, nothing is answered, nothing is
    /// closed (replacing any fault).
    pub fn blackhole(&self) {
        self.set(Mode::Blackhole);
    }

    /// Closes every open connection with a TCP RST (`SO_LINGER` 0), and
    /// every new one as soon as it is accepted, until healed.
    pub fn reset(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Reset;
            s.resets += 1;
        });
    }

    /// Carries at most `bytes_per_sec` per direction and connection
    /// (replacing any fault).
    pub fn bandwidth(&self, bytes_per_sec: u64) {
        self.set(Mode::Forward {
            latency: Duration::ZERO,
            bandwidth: Some(bytes_per_sec.max(1)),
        });
    }

    /// Back to transparent forwarding. Delayed or throttled bytes still
    /// queued go out at once. A connection that lost bytes in a blackhole is
    /// reset (its stream has a hole: the client must reconnect), as one
    /// that was carrying traffic through a real partition would eventually
    /// be.
    pub fn heal(&self) {
        self.set(TRANSPARENT);
    }

    fn set(&self, mode: Mode) {
        self.state.send_modify(|s| s.mode = mode);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connections' JoinSet: aborting it drops
        // the set, which aborts every connection task and closes its sockets.
        self.task.abort();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, state: watch::Receiver<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, say: let the connections run first.
            tokio::task::yield_now().await;
            continue;
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
        let now = *state.borrow();
        if now.mode == Mode::Reset {
            rst(client);
            continue;
        }
        connections.spawn(connection(client, upstream, state.clone(), now.resets));
    }
}

/// Both copy directions, to the end of both.
async fn both(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    tokio::join!(a, b);
}

/// Closes `stream` with a RST rather than a FIN.
fn rst(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Carries one client connection to a connection of its own upstream until
/// either side closes, a reset is asked for, or the proxy heals after this
/// connection lost bytes in a blackhole.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<State>,
    resets_at_start: u64,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        rst(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let dropped = AtomicBool::new(false);
    let must_close = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let carry = both(
            direction(
                client_read,
                server_write,
                state.clone(),
                &dropped,
                resets_at_start,
            ),
            direction(
                server_read,
                client_write,
                state.clone(),
                &dropped,
                resets_at_start,
            ),
        );
        let closing = state.wait_for(|s| {
            s.resets > resets_at_start
                || (dropped.load(Ordering::SeqCst) && s.mode != Mode::Blackhole)
        });
        tokio::select! {
            _ = carry => false,
            changed = closing => changed.is_ok(),
        }
    };
    if must_close {
        rst(client);
        rst(server);
    }
}

/// Copies `from` to `to` under the current fault: a reader that queues
/// chunks with their due time, and a writer that sends them when due, at the
/// allowed rate. Ends when `from` ends (after the queue drained) or `to`
/// fails.
///
/// Once bytes were dropped, or a reset was asked for, nothing more goes
/// through, even if the proxy healed meanwhile: the connection is about to
/// be closed, and a command sent after a hole in the stream would have its
/// reply taken for the reply of a command lost in the hole.
async fn direction(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    state: watch::Receiver<State>,
    dropped: &AtomicBool,
    resets_at_start: u64,
) {
    let (queue, mut due) = mpsc::channel::<(Instant, Bytes)>(64);
    let read = {
        let state = state.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let now = *state.borrow();
                match now.mode {
                    Mode::Forward { latency, .. }
                        if now.resets == resets_at_start && !dropped.load(Ordering::SeqCst) =>
                    {
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        if queue.send((Instant::now() + latency, chunk)).await.is_err() {
                            return;
                        }
                    }
                    _ => dropped.store(true, Ordering::SeqCst),
                }
            }
            // Dropping `queue` lets the writer drain and shut down.
        }
    };
    let write = async move {
        let mut state = state;
        while let Some((at, chunk)) = due.recv().await {
            if !until_due(at, &mut state).await || dropped.load(Ordering::SeqCst) {
                dropped.store(true, Ordering::SeqCst);
                continue;
            }
            if throttled_write(&mut to, &chunk, &mut state).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// Waits until `at`, or less if the proxy stops delaying meanwhile. `false`
/// when the chunk must be dropped (a blackhole began while it was queued).
async fn until_due(at: Instant, state: &mut watch::Receiver<State>) -> bool {
    loop {
        match state.borrow_and_update().mode {
            Mode::Forward { latency, .. } if !latency.is_zero() && Instant::now() < at => {}
            Mode::Forward { .. } => return true,
            Mode::Blackhole | Mode::Reset => return false,
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            changed = state.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Writes `chunk`, in slices of at most 50 ms' worth while a bandwidth cap
/// is set, pausing after each slice for the time it costs at that rate.
async fn throttled_write(
    to: &mut WriteHalf<'_>,
    chunk: &[u8],
    state: &mut watch::Receiver<State>,
) -> std::io::Result<()> {
    let mut rest = chunk;
    while !rest.is_empty() {
        let bandwidth = match state.borrow_and_update().mode {
            Mode::Forward { bandwidth, .. } => bandwidth,
            _ => None,
        };
        let Some(rate) = bandwidth else {
            return to.write_all(rest).await;
        };
        let slice = usize::try_from(rate / 20)
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        to.write_all(&rest[..slice]).await?;
        rest = &rest[slice..];
        let cost = Duration::from_secs_f64(slice as f64 / rate as f64);
        tokio::select! {
            () = tokio::time::sleep(cost) => {}
            changed = state.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
