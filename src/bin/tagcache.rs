//! `tagcache`: read and bump tag versions in a Redis store by hand, and ask
//! a layer's admin service what it does with a request.
//!
//! ```text
//! tagcache [--redis URL] [--prefix P] version TAG...
//! tagcache [--redis URL] [--prefix P] invalidate TAG...
//! tagcache [--redis URL] [--prefix P] epoch show|bump
//! tagcache explain --admin URL METHOD PATH [-H 'Name: value']...
//! tagcache stats --admin URL
//! ```
//!
//! `explain` and `stats` talk to the admin service of a running app
//! (`TaggedCacheLayer::admin`, mounted on a private listener; the quickstart
//! serves it when `ADMIN_PORT` is set), not to Redis, so they work on every
//! store. `explain` prints which rule matches `METHOD PATH` (a path with an
//! optional query, or an absolute URL), its tags and their current versions,
//! the fragmented key and whether an entry is stored; `stats` prints the
//! layer's hits, misses and other outcomes by rule, and what the store
//! tells. Both print the service's answer as it is: one `field: value` per
//! line, the fields listed in the `tower_tagged_cache::admin` docs.
//! `--admin` defaults to `$TAGCACHE_ADMIN`.
//!
//! Output is on stdout, errors on stderr prefixed `tagcache: error:`. Exit
//! codes: 0 done, 2 bad usage (a bad argument, or a request the admin
//! service refused as malformed), 3 invalid tag, 4 Redis unreachable or
//! failing, 5 admin service unreachable or failing.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tower_tagged_cache::{Invalidation, Invalidator, RedisStore, Tag, key::Version};

#[derive(Parser, Debug)]
#[command(
    name = "tagcache",
    version,
    about = "Read and bump tower-tagged-cache tag versions in Redis; explain requests and read counters from an app's admin service"
)]
struct Cli {
    /// The Redis URL (version, invalidate, epoch).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    redis: String,
    /// The key prefix of the store (version, invalidate, epoch).
    #[arg(long, default_value = "ttc")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print `TAG<TAB>VERSION` per tag (`-` for a tag with no version yet).
    Version {
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Bump the tags, all in one round trip: everything cached under them
    /// misses from now on.
    Invalidate {
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// The global epoch: `show` prints it, `bump` makes every entry
    /// unreachable.
    Epoch {
        #[arg(value_enum)]
        action: EpochAction,
    },
    /// Ask the admin service what the layer does with a request: its rule,
    /// tags and their versions, key, and whether an entry is stored.
    Explain {
        /// The admin service's base URL (`http://127.0.0.1:3100`).
        #[arg(long, env = "TAGCACHE_ADMIN")]
        admin: String,
        /// The request's method, as sent (`GET`, `HEAD`, `PUT`...).
        method: String,
        /// The request's path and query (`/users/1?tab=posts`), or an
        /// absolute URL (its host is the request's host).
        path: String,
        /// A request header, `Name: value`; repeatable. Give the headers the
        /// rule varies on, and `Host` when clients use another name than the
        /// app's address.
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
    },
    /// Print the layer's counters (hits, misses, bypasses... by rule) and
    /// what the store tells (entries, memory, hits and misses).
    Stats {
        /// The admin service's base URL (`http://127.0.0.1:3100`).
        #[arg(long, env = "TAGCACHE_ADMIN")]
        admin: String,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum EpochAction {
    Show,
    Bump,
}

const BAD_USAGE: u8 = 2;
const INVALID_TAG: u8 = 3;
const STORE_FAILED: u8 = 4;
const ADMIN_FAILED: u8 = 5;

/// The whole exchange with the admin service, connection included.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest answer read from the admin service.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("tagcache: error: {msg}");
    ExitCode::from(code)
}

fn show(v: Option<Version>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain {
            admin,
            method,
            path,
            headers,
        } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("method", &method)
                .append_pair("url", &path);
            for header in &headers {
                query.append_pair("header", header);
            }
            ask_admin(&admin, "/explain", Some(&query.finish())).await
        }
        Command::Stats { admin } => ask_admin(&admin, "/stats", None).await,
        command => redis(&cli.redis, &cli.prefix, command).await,
    }
}

/// `GET {admin}{route}?{query}`, and its answer printed as it is.
async fn ask_admin(admin: &str, route: &str, query: Option<&str>) -> ExitCode {
    let url = match admin_url(admin, route, query) {
        Ok(url) => url,
        Err(msg) => return fail(BAD_USAGE, msg),
    };
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let exchange = async {
        let res = client.get(url).await.map_err(|e| chain(&e))?;
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = match tokio::time::timeout(ADMIN_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            return fail(
                ADMIN_FAILED,
                format!("cannot reach the admin service at {admin}: {e}"),
            );
        }
        Err(_) => {
            return fail(
                ADMIN_FAILED,
                format!(
                    "the admin service at {admin} did not answer within {}s",
                    ADMIN_TIMEOUT.as_secs()
                ),
            );
        }
    };
    let text = String::from_utf8_lossy(&body);
    if status.is_success() {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let why = text.trim_end();
    let why = why.strip_prefix("error: ").unwrap_or(why);
    if status == hyper::StatusCode::BAD_REQUEST {
        return fail(BAD_USAGE, why);
    }
    let hint = if status == hyper::StatusCode::NOT_FOUND {
        " (is --admin the address of the admin service, not of the app?)"
    } else {
        ""
    };
    fail(
        ADMIN_FAILED,
        format!("the admin service at {admin} answered {status}{hint}: {why}"),
    )
}

/// `{admin}{route}?{query}`, for an `http://` admin base URL (a bare
/// `host:port` is taken as `http://host:port`).
fn admin_url(admin: &str, route: &str, query: Option<&str>) -> Result<hyper::Uri, String> {
    let base = if admin.contains("://") {
        admin.to_owned()
    } else {
        format!("http://{admin}")
    };
    let uri: hyper::Uri = base
        .parse()
        .map_err(|e| format!("--admin `{admin}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "--admin `{admin}` must be an http:// URL (the admin service listens on a private address, without TLS)"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("--admin `{admin}` must not carry a query"));
    }
    let mut url = format!(
        "http://{}{}{route}",
        uri.authority().map_or("", |a| a.as_str()),
        uri.path().trim_end_matches('/')
    );
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url.parse().map_err(|e| format!("--admin `{admin}`: {e}"))
}

/// An error and its sources, `outer: inner: root`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// `version`, `invalidate` and `epoch`, on Redis.
/// Waits for a bump the store did not take at once: this process exits
/// right after, and its outbox with it, so the bump must land before that
/// or the command fails (it is safe to run again).
async fn landed(bump: Invalidation) -> Result<(), tower_tagged_cache::Error> {
    tokio::time::timeout(Duration::from_secs(5), bump.applied())
        .await
        .map_err(|_| {
            tower_tagged_cache::Error::store(
                "Redis did not take the bump within 5 s (it may have been applied: run the command again)",
            )
        })
}

async fn redis(url: &str, prefix: &str, command: Command) -> ExitCode {
    // Check every tag before touching Redis.
    let tags = match &command {
        Command::Version { tags } | Command::Invalidate { tags } => {
            match tags
                .iter()
                .map(|t| t.parse::<Tag>())
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(tags) => tags,
                Err(e) => return fail(INVALID_TAG, e),
            }
        }
        _ => Vec::new(),
    };
    let store = match RedisStore::builder(url)
        .prefix(prefix)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .connect()
        .await
    {
        Ok(store) => store,
        Err(e) => {
            return fail(STORE_FAILED, format!("cannot reach Redis at {url}: {e}"));
        }
    };
    let invalidator = Invalidator::new(store).timeout(Duration::from_secs(5));
    let outcome = match command {
        Command::Version { .. } => {
            let mut lines = Vec::new();
            for tag in &tags {
                match invalidator.tag_version(tag).await {
                    Ok(v) => lines.push(format!("{tag}\t{}", show(v))),
                    Err(e) => return fail(STORE_FAILED, e),
                }
            }
            Ok(lines.join("\n"))
        }
        Command::Invalidate { .. } => match invalidator.invalidate(&tags).await {
            Ok(bump) => landed(bump)
                .await
                .map(|()| format!("invalidated {} tag(s)", tags.len())),
            Err(e) => Err(e),
        },
        Command::Epoch {
            action: EpochAction::Show,
        } => invalidator.epoch().await.map(show),
        Command::Epoch {
            action: EpochAction::Bump,
        } => match landed(invalidator.bump_epoch().await).await {
            Ok(()) => invalidator
                .epoch()
                .await
                .map(|v| format!("epoch bumped to {}", show(v))),
            Err(e) => Err(e),
        },
        Command::Explain { .. } | Command::Stats { .. } => unreachable!("handled by ask_admin"),
    };
    match outcome {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(STORE_FAILED, e),
    }
}
