//! Side-by-side load bench over real HTTP on loopback.
//!
//! ```text
//! cargo bench --bench load                     # 3 s per variant
//! cargo bench --bench load -- --seconds 2      # 2 s per variant
//! cargo bench --bench load -- --connections 32 --rounds 4
//! ```
//!
//! Every variant is an axum app on its own loopback port, served by one
//! server runtime; the load generator runs in a runtime of its own, with
//! `--connections` HTTP/1.1 keep-alive connections, each sending its next
//! request when the last answer has been read in full (a closed loop). The
//! time of each variant is cut into `--rounds` slices and the variants take
//! turns, in a rotated order each round, so that drift on a shared machine
//! falls on all of them alike.
//!
//! | variant        | what answers                                                     |
//! |----------------|------------------------------------------------------------------|
//! | `floor-redis`  | a plain handler doing one `GET` of a precomputed key             |
//! | `ours-redis`   | the layer on Redis (`ConnectionManager`), 100% hits              |
//! | `bb8`          | the layer on Redis through a `bb8-redis` pool, 100% hits         |
//! | `peer-redis`   | hitbox-tower with hitbox-redis, same route, key and TTL          |
//! | `floor-static` | a plain handler returning the same bytes from memory             |
//! | `ours-memory`  | the layer on the memory store, 100% hits                         |
//! | `peer-memory`  | hitbox-tower with hitbox-moka, same route, key and TTL           |
//! | `uncached`     | the origin handler with 5 ms of simulated work, no cache         |
//!
//! Cached variants serve `GET /items/{id}` (1 KiB bodies, `--ids` distinct
//! ids, all warmed before timing; the layer's rule has 3 tags). Every answer is
//! checked: status 200, the full body, and a cache hit where a cache is in
//! front. Redis runs as a private `redis-server` on a free loopback port.
//!
//! Commands per request come from `INFO commandstats` deltas over each timed
//! slice. That count would include the commands a script runs inside Redis
//! (the layer's lookup script, used when a key's versions are not the ones
//! last seen, runs one `MGET` and one `GET`), so a `MONITOR` sample afterwards
//! tells which commands arrive from clients: `redis_cmds_per_hit` is the
//! commandstats count of those commands per hit.
//!
//! The stampede check sends 500 concurrent requests for one cold key (the
//! origin takes 50 ms) and counts the origin's calls.
//!
//! The last line is the summary:
//! `summary: redis_hit/floor=.. memory_hit/floor=.. redis_cmds_per_hit=..
//! stampede_inner_calls=.. peer_redis/ours_redis=.. peer_memory/ours_memory=..`

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, runtime::Runtime, task::JoinSet};
use tower_tagged_cache::{CacheRule, MemoryStore, RedisStore, Store, TaggedCacheLayer};

use support::Redis;

/// The body size of every cached answer.
const BODY: usize = 1024;
/// How long cached answers live: longer than any run.
const TTL: Duration = Duration::from_secs(3600);
/// The simulated work of the uncached origin.
const WORK: Duration = Duration::from_millis(5);
/// Concurrent cold requests of the stampede check.
const STAMPEDE: usize = 500;
/// Requests of the `MONITOR` sample per Redis variant.
const MONITOR_SAMPLE: usize = 200;

struct Args {
    seconds: f64,
    rounds: u32,
    connections: usize,
    ids: u64,
    server_threads: usize,
    client_threads: usize,
    /// The variants to run (all when empty).
    only: Vec<Variant>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            seconds: 3.0,
            rounds: 3,
            connections: 16,
            ids: 64,
            server_threads: 1,
            client_threads: 1,
            only: Vec::new(),
        };
        fn number<T: std::str::FromStr>(name: &str, v: Option<String>) -> Result<T, String> {
            let v = v.ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: cannot read `{v}`"))
        }
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--seconds" => args.seconds = number(&arg, it.next())?,
                "--rounds" => args.rounds = number(&arg, it.next())?,
                "--connections" => args.connections = number(&arg, it.next())?,
                "--ids" => args.ids = number(&arg, it.next())?,
                "--server-threads" => args.server_threads = number(&arg, it.next())?,
                "--client-threads" => args.client_threads = number(&arg, it.next())?,
                "--only" => {
                    let v = it.next().ok_or("--only needs a value")?;
                    for name in v.split(',') {
                        let variant = Variant::ALL
                            .into_iter()
                            .find(|x| x.name() == name)
                            .ok_or_else(|| format!("--only: no variant `{name}`"))?;
                        args.only.push(variant);
                    }
                }
                // What `cargo bench` passes to every bench target.
                "--bench" => {}
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if !(args.seconds.is_finite() && args.seconds <= 3600.0)
            || args.rounds > 1000
            || args.connections > 4096
            || args.ids > 1_000_000
        {
            return Err(
                "at most --seconds 3600, --rounds 1000, --connections 4096, --ids 1000000".into(),
            );
        }
        if args.seconds.is_nan()
            || args.seconds <= 0.0
            || args.rounds == 0
            || args.connections == 0
            || args.ids == 0
        {
            return Err("--seconds, --rounds, --connections and --ids must be positive".into());
        }
        if args.server_threads == 0 || args.client_threads == 0 {
            return Err("--server-threads and --client-threads must be positive".into());
        }
        Ok(args)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Variant {
    FloorRedis,
    OursRedis,
    Bb8,
    PeerRedis,
    FloorStatic,
    OursMemory,
    PeerMemory,
    Uncached,
}

impl Variant {
    const ALL: [Variant; 8] = [
        Variant::FloorRedis,
        Variant::OursRedis,
        Variant::Bb8,
        Variant::PeerRedis,
        Variant::FloorStatic,
        Variant::OursMemory,
        Variant::PeerMemory,
        Variant::Uncached,
    ];

    /// The variants of this run.
    fn selected(args: &Args) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| args.only.is_empty() || args.only.contains(v))
            .collect()
    }

    fn name(self) -> &'static str {
        match self {
            Variant::FloorRedis => "floor-redis",
            Variant::OursRedis => "ours-redis",
            Variant::Bb8 => "bb8",
            Variant::PeerRedis => "peer-redis",
            Variant::FloorStatic => "floor-static",
            Variant::OursMemory => "ours-memory",
            Variant::PeerMemory => "peer-memory",
            Variant::Uncached => "uncached",
        }
    }

    /// The variant its throughput is compared with.
    fn floor(self) -> Variant {
        match self {
            Variant::FloorRedis | Variant::OursRedis | Variant::Bb8 | Variant::PeerRedis => {
                Variant::FloorRedis
            }
            _ => Variant::FloorStatic,
        }
    }

    fn uses_redis(self) -> bool {
        self.floor() == Variant::FloorRedis
    }

    /// The response header that must say "hit", if a cache is in front.
    fn hit_header(self) -> Option<(&'static str, &'static str)> {
        match self {
            Variant::OursRedis | Variant::Bb8 | Variant::OursMemory => {
                Some(("cache-status", "hit"))
            }
            Variant::PeerRedis | Variant::PeerMemory => Some(("x-cache-status", "HIT")),
            _ => None,
        }
    }
}

/// The origin's bytes: one 1 KiB body per id.
#[derive(Clone)]
struct Origin {
    bodies: Arc<Vec<Bytes>>,
    calls: Arc<AtomicU64>,
    work: Duration,
}

impl Origin {
    fn new(ids: u64, work: Duration) -> Self {
        let bodies = (0..ids).map(body_for).collect();
        Self {
            bodies: Arc::new(bodies),
            calls: Arc::new(AtomicU64::new(0)),
            work,
        }
    }
}

fn body_for(id: u64) -> Bytes {
    let mut b = format!("item {id}:").into_bytes();
    b.resize(BODY, b'x');
    Bytes::from(b)
}

fn octets(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

async fn origin(State(o): State<Origin>, Path(id): Path<u64>) -> Response {
    o.calls.fetch_add(1, Ordering::Relaxed);
    if !o.work.is_zero() {
        tokio::time::sleep(o.work).await;
    }
    match o.bodies.get(id as usize) {
        Some(b) => octets(b.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn origin_router(o: Origin) -> Router {
    Router::new()
        .route("/items/{id}", get(origin))
        .with_state(o)
}

/// The Redis floor: one `GET` of a precomputed key, through the same kind of
/// multiplexed connection the layer uses.
async fn floor_redis(
    State(conn): State<redis::aio::ConnectionManager>,
    Path(id): Path<u64>,
) -> Response {
    let mut conn = conn;
    let got: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
        .arg(floor_key(id))
        .query_async(&mut conn)
        .await;
    match got {
        Ok(Some(b)) => octets(Bytes::from(b)),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn floor_key(id: u64) -> String {
    format!("floor:item:{id}")
}

fn item_rule() -> CacheRule {
    CacheRule::get("/items/{id}")
        .name("item")
        .parse_param::<u64>("id")
        .tags(["Item:{id}", "Shop:1", "Catalog"])
        .ttl(TTL)
}

fn ours<St: Store>(store: St, o: Origin) -> Router {
    let layer = TaggedCacheLayer::new(store)
        .rule(item_rule())
        .expect("a valid rule");
    origin_router(o).layer(layer)
}

/// The body type every variant answers with.
type AxumBody = axum::body::Body;

/// hitbox on the same route: key from the method and the `id` parameter,
/// only GET, only 200, the same TTL; its answers mapped back to axum bodies.
fn peer<B>(
    backend: B,
    o: Origin,
) -> impl tower::Service<
    axum::extract::Request,
    Response = Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static
where
    B: hitbox::backend::CacheBackend + Clone + Send + Sync + 'static,
{
    use hitbox_http::{extractors, predicates};
    let config = hitbox::Config::builder()
        .request_predicate(
            predicates::request::Method::new(http::Method::GET).expect("GET is a method"),
        )
        .response_predicate(predicates::response::StatusCode::new(http::StatusCode::OK))
        .extractor(extractors::path::PathExtractor::path(
            extractors::Method::new(),
            "/items/{id}",
        ))
        .policy(hitbox::policy::PolicyConfig::builder().ttl(TTL).build())
        .build();
    let cache = hitbox_tower::Cache::builder()
        .backend(backend)
        .config(config)
        .build();
    tower::ServiceBuilder::new()
        .map_response(|r: http::Response<hitbox_http::BufferedBody<AxumBody>>| r.map(AxumBody::new))
        .layer(cache)
        .service(origin_router(o))
}

/// Serves `app` on a free loopback port of the current runtime.
async fn serve<S>(app: S) -> SocketAddr
where
    S: tower::Service<axum::extract::Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, tower::make::Shared::new(app))
            .await
            .expect("serve");
    });
    addr
}

/// The servers of one run, all on the server runtime.
struct Servers {
    addrs: BTreeMap<Variant, SocketAddr>,
    /// For the stampede check: the layer in front of a 50 ms origin, on
    /// Redis, on memory, and on two app servers sharing Redis with a lease
    /// (`CacheRule::lease`), each with the addresses to spread the requests
    /// over and the origin's call counter.
    stampede: Vec<(&'static str, Vec<SocketAddr>, Arc<AtomicU64>)>,
}

async fn start_servers(redis: &Redis, args: &Args) -> Servers {
    let url = redis.url().to_owned();
    let o = Origin::new(args.ids, Duration::ZERO);

    let ours_redis = RedisStore::builder(url.as_str())
        .prefix("ours")
        .connect()
        .await
        .expect("connect the Redis store");
    // The floor's GET goes through the store's own connection (same
    // client, same TCP settings), and its keys hold the bytes the origin
    // serves.
    let mut floor_conn = ours_redis
        .connection()
        .expect("a store without bb8_pool has a ConnectionManager");
    for id in 0..args.ids {
        let _: () = redis::cmd("SET")
            .arg(floor_key(id))
            .arg(body_for(id).as_ref())
            .query_async(&mut floor_conn)
            .await
            .expect("SET a floor key");
    }

    let bb8 = RedisStore::builder(url.as_str())
        .prefix("bb8")
        .bb8_pool(args.connections as u32)
        .connect()
        .await
        .expect("connect the bb8 Redis store");
    let peer_redis = hitbox_redis::RedisBackend::builder()
        .connection(hitbox_redis::ConnectionMode::single(url.clone()))
        .build()
        .expect("hitbox Redis backend");
    let peer_memory = hitbox_moka::MokaBackend::builder()
        .max_entries(10 * args.ids)
        .build();

    let mut addrs = BTreeMap::new();
    for v in Variant::ALL {
        let addr = match v {
            Variant::FloorRedis => {
                serve(
                    Router::new()
                        .route("/items/{id}", get(floor_redis))
                        .with_state(floor_conn.clone()),
                )
                .await
            }
            Variant::OursRedis => serve(ours(ours_redis.clone(), o.clone())).await,
            Variant::Bb8 => serve(ours(bb8.clone(), o.clone())).await,
            Variant::PeerRedis => serve(peer(peer_redis.clone(), o.clone())).await,
            Variant::FloorStatic => serve(origin_router(o.clone())).await,
            Variant::OursMemory => serve(ours(MemoryStore::new(), o.clone())).await,
            Variant::PeerMemory => serve(peer(peer_memory.clone(), o.clone())).await,
            Variant::Uncached => serve(origin_router(Origin::new(args.ids, WORK))).await,
        };
        addrs.insert(v, addr);
    }

    let slow = |ids| Origin::new(ids, Duration::from_millis(50));
    let store = |prefix: &'static str| {
        RedisStore::builder(url.as_str())
            .prefix(prefix)
            .connect_lazy()
            .expect("a Redis store")
    };
    let (cold_redis, cold_memory, cold_fleet) = (slow(1), slow(1), slow(1));
    let fleet = store("fleet");
    let leased = |o: Origin| {
        let layer = TaggedCacheLayer::new(fleet.clone())
            .rule(item_rule().lease(Duration::from_secs(5)))
            .expect("a valid rule");
        origin_router(o).layer(layer)
    };
    let stampede = vec![
        (
            "redis",
            vec![serve(ours(store("stampede"), cold_redis.clone())).await],
            cold_redis.calls.clone(),
        ),
        (
            "memory",
            vec![serve(ours(MemoryStore::new(), cold_memory.clone())).await],
            cold_memory.calls.clone(),
        ),
        (
            "redis-fleet-of-2",
            vec![
                serve(leased(cold_fleet.clone())).await,
                serve(leased(cold_fleet.clone())).await,
            ],
            cold_fleet.calls.clone(),
        ),
    ];
    Servers { addrs, stampede }
}

/// What one variant's slices measured.
#[derive(Default)]
struct Tally {
    requests: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    /// `INFO commandstats` deltas over the timed slices.
    commands: BTreeMap<String, u64>,
    /// Commands per request from clients, by name, from the `MONITOR` sample.
    client_commands: BTreeMap<String, f64>,
}

impl Tally {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[i])
    }

    fn commands_per_request(&self) -> f64 {
        self.commands.values().sum::<u64>() as f64 / self.requests as f64
    }

    /// Commandstats calls of the commands that arrive from clients.
    fn client_commands_per_request(&self) -> f64 {
        self.commands
            .iter()
            .filter(|(name, _)| self.client_commands.contains_key(*name))
            .map(|(_, n)| *n)
            .sum::<u64>() as f64
            / self.requests as f64
    }
}

/// One closed-loop connection: requests until `until`, every answer checked.
async fn drive(
    addr: SocketAddr,
    variant: Variant,
    first: u64,
    ids: u64,
    until: Instant,
    max: u64,
    expect: Arc<Vec<Bytes>>,
) -> Result<(u64, Vec<u32>), String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let uris: Vec<http::Uri> = (0..ids)
        .map(|id| format!("/items/{id}").parse().expect("a path"))
        .collect();
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut n = 0u64;
    let mut id = first % ids;
    while n < max && Instant::now() < until {
        let req = http::Request::get(uris[id as usize].clone())
            .header(header::HOST, "bench.local")
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let started = Instant::now();
        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{}: request: {e}", variant.name()))?;
        let status = res.status();
        let hit = match variant.hit_header() {
            Some((name, value)) => res
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(';').any(|p| p.trim() == value)),
            None => true,
        };
        let cache_status = variant
            .hit_header()
            .and_then(|(h, _)| res.headers().get(h).cloned());
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let took = started.elapsed();
        if status != StatusCode::OK || body != expect[id as usize] {
            return Err(format!(
                "{}: /items/{id} answered {status} with {} bytes",
                variant.name(),
                body.len()
            ));
        }
        if !hit {
            return Err(format!(
                "{}: /items/{id} was not a hit ({cache_status:?})",
                variant.name()
            ));
        }
        latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        n += 1;
        id = (id + 1) % ids;
    }
    Ok((n, latencies))
}

/// Runs `connections` closed loops against `variant` for `duration`.
fn slice(
    rt: &Runtime,
    addr: SocketAddr,
    variant: Variant,
    duration: Duration,
    args: &Args,
    expect: &Arc<Vec<Bytes>>,
) -> (u64, f64, Vec<u32>) {
    rt.block_on(async {
        let started = Instant::now();
        let until = started + duration;
        let mut set = JoinSet::new();
        for c in 0..args.connections {
            set.spawn(drive(
                addr,
                variant,
                c as u64 * 7,
                args.ids,
                until,
                u64::MAX,
                expect.clone(),
            ));
        }
        let mut requests = 0;
        let mut latencies = Vec::new();
        while let Some(done) = set.join_next().await {
            match done.expect("a load task") {
                Ok((n, l)) => {
                    requests += n;
                    latencies.extend(l);
                }
                Err(e) => panic!("load: {e}"),
            }
        }
        (requests, started.elapsed().as_secs_f64(), latencies)
    })
}

/// `INFO commandstats` as calls per command, without the bench's own.
async fn commandstats(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| !is_bench_command(name))
        .collect()
}

/// What the bench itself sends to Redis, kept out of every count.
fn is_bench_command(name: &str) -> bool {
    name == "info" || name == "echo" || name == "monitor" || name.starts_with("config")
}

/// Which commands `variant` sends from its clients, and how many per request:
/// a `MONITOR` sample of `MONITOR_SAMPLE` sequential requests, where the
/// commands a script runs inside Redis are marked `lua`.
fn monitor_sample(
    rt: &Runtime,
    redis: &Redis,
    addr: SocketAddr,
    variant: Variant,
    args: &Args,
    expect: &Arc<Vec<Bytes>>,
) -> BTreeMap<String, f64> {
    rt.block_on(async {
        let mut monitor = support::monitor::Monitor::start(redis).await;
        let far = Instant::now() + Duration::from_secs(3600);
        let (done, _) = drive(
            addr,
            variant,
            0,
            args.ids,
            far,
            MONITOR_SAMPLE as u64,
            expect.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("load: {e}"));
        let sentinel = format!("load-bench-sentinel-{}", variant.name());
        let mut conn = redis.raw().await;
        let _: String = redis::cmd("ECHO")
            .arg(&sentinel)
            .query_async(&mut conn)
            .await
            .expect("ECHO");
        let lines = monitor.until(&sentinel).await;
        let mut per: BTreeMap<String, f64> = BTreeMap::new();
        for line in lines {
            if let Some(name) = support::monitor::monitor_client_command(&line)
                && !is_bench_command(&name)
            {
                *per.entry(name).or_default() += 1.0 / done as f64;
            }
        }
        per
    })
}

fn main() {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            eprintln!(
                "usage: cargo bench --bench load -- [--seconds S] [--rounds R] \
                 [--connections C] [--ids N] [--server-threads T] [--client-threads T] \
                 [--only VARIANT,...]"
            );
            std::process::exit(2);
        }
    };
    run(&args);
}

fn runtime(threads: usize, name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn run(args: &Args) {
    let redis = Redis::start_private();
    let server_rt = runtime(args.server_threads, "load-server");
    let client_rt = runtime(args.client_threads, "load-client");
    let servers = server_rt.block_on(start_servers(&redis, args));
    let expect: Arc<Vec<Bytes>> = Arc::new((0..args.ids).map(body_for).collect());

    println!(
        "load: {} s per variant in {} rounds, {} connections, {} ids, 1 KiB bodies; \
         server runtime {} thread(s), load generator {} thread(s); {} CPUs; {}",
        args.seconds,
        args.rounds,
        args.connections,
        args.ids,
        args.server_threads,
        args.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        redis_version(),
    );

    let selected = Variant::selected(args);
    // Warm every cache: each id until it is a hit, then a short untimed run.
    for &v in &selected {
        let addr = servers.addrs[&v];
        client_rt
            .block_on(warm(addr, v, args.ids, &expect))
            .unwrap_or_else(|e| panic!("load: warming {}: {e}", v.name()));
        slice(
            &client_rt,
            addr,
            v,
            Duration::from_millis(200),
            args,
            &expect,
        );
    }

    let mut stats_conn = client_rt.block_on(redis.raw());
    let mut tallies: BTreeMap<Variant, Tally> = BTreeMap::new();
    let per_slice = Duration::from_secs_f64(args.seconds / f64::from(args.rounds));
    for round in 0..args.rounds as usize {
        let mut order = selected.clone();
        order.rotate_left(round % selected.len());
        for v in order {
            let before = client_rt.block_on(commandstats(&mut stats_conn));
            let (n, secs, lat) = slice(&client_rt, servers.addrs[&v], v, per_slice, args, &expect);
            let after = client_rt.block_on(commandstats(&mut stats_conn));
            let t = tallies.entry(v).or_default();
            t.requests += n;
            t.seconds += secs;
            t.latencies_us.extend(lat);
            for (name, calls) in after {
                let delta = calls.saturating_sub(before.get(&name).copied().unwrap_or(0));
                if delta > 0 {
                    *t.commands.entry(name).or_default() += delta;
                }
            }
        }
    }
    for &v in selected.iter().filter(|v| v.uses_redis()) {
        let per = monitor_sample(&client_rt, &redis, servers.addrs[&v], v, args, &expect);
        tallies.get_mut(&v).expect("a tally").client_commands = per;
    }
    for t in tallies.values_mut() {
        t.latencies_us.sort_unstable();
    }

    let stampede: Vec<(&str, u64)> = servers
        .stampede
        .iter()
        .map(|(name, addrs, calls)| (*name, client_rt.block_on(stampede(addrs, calls))))
        .collect();

    print!("{}", report(&tallies, &stampede));
    client_rt.shutdown_background();
    server_rt.shutdown_background();
}

fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.split_whitespace()
                .find_map(|w| w.strip_prefix("v="))
                .map(|v| format!("redis-server {v}"))
        })
        .unwrap_or_else(|| "redis-server (version unknown)".into())
}

/// Requests every id until it is a hit (the layer stores in the background).
async fn warm(
    addr: SocketAddr,
    variant: Variant,
    ids: u64,
    expect: &Arc<Vec<Bytes>>,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in 0..ids {
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            match drive(addr, variant, id, ids, far, 1, expect.clone()).await {
                Ok(_) => break,
                Err(e) if e.contains("was not a hit") && Instant::now() < deadline => {
                    tokio::task::yield_now().await
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// `STAMPEDE` concurrent requests for one cold key; the origin's calls.
async fn stampede(addrs: &[SocketAddr], calls: &AtomicU64) -> u64 {
    let before = calls.load(Ordering::SeqCst);
    let barrier = Arc::new(tokio::sync::Barrier::new(STAMPEDE));
    let mut set = JoinSet::new();
    for i in 0..STAMPEDE {
        let barrier = barrier.clone();
        let addr = addrs[i % addrs.len()];
        set.spawn(async move {
            let tcp = TcpStream::connect(addr).await.map_err(|e| {
                format!(
                    "{e} ({STAMPEDE} connections, both ends in this process, need about \
                     {} open files: see `ulimit -n`)",
                    2 * STAMPEDE + 100
                )
            })?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req = http::Request::get("/items/0")
                .header(header::HOST, "bench.local")
                .body(Empty::<Bytes>::new())
                .expect("a request");
            // All connections are open before any request leaves.
            barrier.wait().await;
            let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = res.status();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status != StatusCode::OK || body != body_for(0) {
                return Err(format!("answered {status} with {} bytes", body.len()));
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = done.expect("a stampede task") {
            panic!("load: stampede: {e}");
        }
    }
    calls.load(Ordering::SeqCst) - before
}

fn report(tallies: &BTreeMap<Variant, Tally>, stampede: &[(&str, u64)]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let rps = |v: Variant| tallies.get(&v).map_or(f64::NAN, Tally::rps);
    let _ = writeln!(
        out,
        "{:<13} {:>9} {:>8} {:>8} {:>16} {:>10} {:>11}",
        "variant", "req/s", "p50 µs", "p99 µs", "ratio to floor", "redis cmds", "client cmds"
    );
    for v in Variant::ALL {
        let Some(t) = tallies.get(&v) else { continue };
        let ratio = t.rps() / rps(v.floor());
        let (cmds, client) = if v.uses_redis() {
            (
                format!("{:.2}", t.commands_per_request()),
                format!("{:.2}", t.client_commands_per_request()),
            )
        } else {
            ("-".into(), "-".into())
        };
        let _ = writeln!(
            out,
            "{:<13} {:>9.0} {:>8.0} {:>8.0} {:>5.2} ({:<8}) {:>10} {:>11}",
            v.name(),
            t.rps(),
            t.percentile(0.50),
            t.percentile(0.99),
            ratio,
            v.floor().name().trim_start_matches("floor-"),
            cmds,
            client,
        );
    }
    for v in Variant::ALL.into_iter().filter(|v| v.uses_redis()) {
        if let Some(t) = tallies.get(&v) {
            let per: Vec<String> = t
                .commands
                .iter()
                .map(|(name, n)| format!("{name}={:.2}", *n as f64 / t.requests as f64))
                .collect();
            let from: Vec<String> = t
                .client_commands
                .iter()
                .map(|(name, n)| format!("{name}={n:.2}"))
                .collect();
            let _ = writeln!(
                out,
                "per request, {}: commandstats {}; from clients (MONITOR) {}",
                v.name(),
                per.join(" "),
                from.join(" ")
            );
        }
    }
    let each: Vec<String> = stampede
        .iter()
        .map(|(name, k)| format!("{name}={k}"))
        .collect();
    let _ = writeln!(
        out,
        "stampede: {STAMPEDE} concurrent requests for one cold key, origin calls: {}",
        each.join(" ")
    );
    let k = stampede.iter().map(|(_, k)| *k).max().unwrap_or(0);
    let cmds = tallies
        .get(&Variant::OursRedis)
        .map_or(f64::NAN, Tally::client_commands_per_request);
    let _ = writeln!(
        out,
        "summary: redis_hit/floor={:.2} memory_hit/floor={:.2} redis_cmds_per_hit={} \
         stampede_inner_calls={k} peer_redis/ours_redis={:.2} peer_memory/ours_memory={:.2}",
        rps(Variant::OursRedis) / rps(Variant::FloorRedis),
        rps(Variant::OursMemory) / rps(Variant::FloorStatic),
        whole_or_two_places(cmds),
        rps(Variant::PeerRedis) / rps(Variant::OursRedis),
        rps(Variant::PeerMemory) / rps(Variant::OursMemory),
    );
    out
}

/// `1` for a whole number, else two decimals.
fn whole_or_two_places(x: f64) -> String {
    if (x - x.round()).abs() < 0.005 {
        format!("{}", x.round())
    } else {
        format!("{x:.2}")
    }
}
