use std::sync::LazyLock;
use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};

static CACHE: LazyLock<TagCache<MemoryStore>> =
    LazyLock::new(|| TagCache::new(MemoryStore::new()));

#[tagged_cache(cache = CACHE, ttl = 60, colour = "red")]
async fn unknown_arg(a: u64) -> u64 {
    a
}

fn main() {}
