use tower_tagged_cache::tagged_cache;

#[tagged_cache(ttl = 60, tags = ["User:{user_id}"])]
async fn profile(user_id: u64) -> String {
    user_id.to_string()
}

fn main() {}
