use std::sync::LazyLock;
use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};

static CACHE: LazyLock<TagCache<MemoryStore>> =
    LazyLock::new(|| TagCache::new(MemoryStore::new()));

#[tagged_cache(cache = CACHE, ttl = 60, tags = ["Dashboard", "User:{uid}"])]
async fn profile(user_id: u64) -> String {
    user_id.to_string()
}

fn main() {}
