use std::sync::LazyLock;
use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};

static CACHE: LazyLock<TagCache<MemoryStore>> =
    LazyLock::new(|| TagCache::new(MemoryStore::new()));

#[tagged_cache(cache = CACHE, ttl = 60)]
async fn profile((a, b): (u64, u64)) -> u64 {
    a + b
}

fn main() {}
