//! The Lua scripts of the store, and the one place that builds a call of the
//! lookup script: its `KEYS` (also the first keys of the warm `MGET`) and its
//! `ARGV`.

use redis::Value;

use super::{RedisStore, conn::Request};
use crate::{
    error::Error,
    key::{self, FragmentedKey, Tag, Version},
};

/// Reads the versions, seeds missing ones with the client's candidates, builds
/// the entry key exactly as `FragmentedKey::entry_id` does and reads the entry:
/// one round trip.
///
/// KEYS: the epoch key, then one version key per tag.
/// ARGV[1]: `{prefix}:e:{static hex}:`; ARGV[2]: version TTL in seconds;
/// ARGV[3..]: one fresh candidate per key, or none: then a missing version
/// makes the script answer `[nil]` without writing anything.
///
/// A version lives its TTL plus up to an eighth more, taken from its own
/// (random) first hex digits, so versions seeded together expire apart; one
/// read in the second half of its life lives a whole TTL again, so versions
/// that are read never expire (the warm path refreshes them too, see
/// `guess.rs`).
///
/// `16:` is spelt out for the usual 16-byte versions, because turning a Lua
/// number into a string goes through `printf` and costs more than the rest
/// of the loop (measured with `redis-benchmark -P 4`: 15% more lookups/s).
pub(super) const LOOKUP_LUA: &str = r"
local ttl = tonumber(ARGV[2])
local span = math.max(1, math.floor(ttl / 8))
local function life(v)
  return ttl + (tonumber(string.sub(v, 1, 6), 16) or 0) % span
end
local vs = redis.call('MGET', unpack(KEYS))
local parts = {}
for i = 1, #KEYS do
  local v = vs[i]
  if not v then
    v = ARGV[i + 2]
    if not v then
      return {false}
    end
    redis.call('SET', KEYS[i], v, 'EX', life(v))
    vs[i] = v
  else
    local left = redis.call('TTL', KEYS[i])
    if left >= 0 and left < ttl / 2 then
      redis.call('EXPIRE', KEYS[i], life(v))
    end
  end
  local n = #v
  if n == 16 then
    parts[2 * i - 1] = '16:'
  else
    parts[2 * i - 1] = n .. ':'
  end
  parts[2 * i] = v
end
local entry = redis.call('GET', ARGV[1] .. redis.sha1hex(table.concat(parts)))
return {entry, unpack(vs)}
";

/// Deletes a lease only while it still holds the caller's token.
pub(super) const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

impl RedisStore {
    /// Appends the epoch key and the version key of each tag to `cmd`,
    /// through one buffer (`arg` copies it).
    pub(super) fn push_version_keys(&self, cmd: &mut redis::Cmd, tags: &[Tag]) {
        cmd.arg(self.inner.epoch_key.as_str());
        let mut buf = String::with_capacity(128);
        for tag in tags {
            buf.clear();
            key::write_version_key(&mut buf, &self.inner.prefix, tag);
            cmd.arg(buf.as_str());
        }
    }

    /// Runs the lookup script once, with fresh version candidates or
    /// without (then a missing version answers `[nil]`).
    pub(super) async fn invoke_lookup(
        &self,
        key: &FragmentedKey,
        with_candidates: bool,
    ) -> Result<Vec<Value>, Error> {
        let tags = key.tags();
        let with = if with_candidates { tags.len() + 1 } else { 0 };
        let mut cmd = redis::Cmd::with_capacity(6 + tags.len() + with, 128 * (tags.len() + 2));
        cmd.arg("EVALSHA")
            .arg(self.inner.lookup.get_hash())
            .arg(tags.len() + 1);
        self.push_version_keys(&mut cmd, tags);
        let mut buf = String::with_capacity(self.inner.entry_prefix.len() + 65);
        buf.push_str(&self.inner.entry_prefix);
        key::push_hex(&mut buf, key.static_digest());
        buf.push(':');
        cmd.arg(buf.as_str()).arg(self.inner.version_ttl_secs);
        for _ in 0..with {
            cmd.arg(Version::random().as_bytes());
        }
        self.conn
            .query(Request::EvalSha(&cmd, &self.inner.lookup))
            .await
    }
}
