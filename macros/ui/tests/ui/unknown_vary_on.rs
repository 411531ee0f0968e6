use std::sync::LazyLock;
use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};

static CACHE: LazyLock<TagCache<MemoryStore>> =
    LazyLock::new(|| TagCache::new(MemoryStore::new()));

#[tagged_cache(cache = CACHE, ttl = 60, vary_on = [user_id, language])]
async fn profile(user_id: u64, lang: String) -> String {
    format!("{user_id} {lang}")
}

fn main() {}
