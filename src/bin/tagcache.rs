//! `tagcache`: read and bump tag versions in a Redis store by hand.
//!
//! ```text
//! tagcache [--redis URL] [--prefix P] version TAG...
//! tagcache [--redis URL] [--prefix P] invalidate TAG...
//! tagcache [--redis URL] [--prefix P] epoch show|bump
//! ```
//!
//! Output is one line per answer on stdout, errors on stderr prefixed
//! `tagcache: error:`. Exit codes: 0 done, 2 bad usage, 3 invalid tag,
//! 4 Redis unreachable or failing.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use tower_tagged_cache::{Invalidator, RedisStore, Tag, key::Version};

#[derive(Parser, Debug)]
#[command(
    name = "tagcache",
    version,
    about = "Read and bump tower-tagged-cache tag versions in Redis"
)]
struct Cli {
    /// The Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    redis: String,
    /// The key prefix of the store.
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
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum EpochAction {
    Show,
    Bump,
}

const INVALID_TAG: u8 = 3;
const STORE_FAILED: u8 = 4;

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
    // Check every tag before touching Redis.
    let tags = match &cli.command {
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
        Command::Epoch { .. } => Vec::new(),
    };
    let store = match RedisStore::builder(cli.redis.as_str())
        .prefix(cli.prefix.clone())
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
        .connect()
        .await
    {
        Ok(store) => store,
        Err(e) => {
            return fail(
                STORE_FAILED,
                format!("cannot reach Redis at {}: {e}", cli.redis),
            );
        }
    };
    let invalidator = Invalidator::new(store).timeout(Duration::from_secs(5));
    let outcome = match cli.command {
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
        Command::Invalidate { .. } => invalidator
            .invalidate(&tags)
            .await
            .map(|()| format!("invalidated {} tag(s)", tags.len())),
        Command::Epoch {
            action: EpochAction::Show,
        } => invalidator.epoch().await.map(show),
        Command::Epoch {
            action: EpochAction::Bump,
        } => match invalidator.bump_epoch().await {
            Ok(()) => invalidator
                .epoch()
                .await
                .map(|v| format!("epoch bumped to {}", show(v))),
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(STORE_FAILED, e),
    }
}
