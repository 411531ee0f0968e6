//! The warm lookup: one `MGET` of the versions and of the entry under the
//! versions a static key was last seen with in this process.

use redis::Value;

use super::{
    RedisStore,
    conn::Request,
    reply::{entry_of, version_of},
};
use crate::{
    error::Error,
    key::FragmentedKey,
    store::{EntryKey, Lookup},
};

/// How many static keys the store remembers the last versions of (about
/// 100 bytes each, plus 16 per tag).
pub(super) const MAX_GUESSES: u64 = 50_000;

impl RedisStore {
    /// The warm lookup: one `MGET` of the versions and of the entry under
    /// the versions this key was last seen with. `MGET` reads all its keys
    /// at one instant, so when the versions read equal the guess the entry
    /// read is the one under the current versions, as the script would have
    /// found. `None` (the script decides) when there is no guess, a version
    /// is missing, or one has changed.
    pub(super) async fn guessed_lookup(
        &self,
        key: &FragmentedKey,
    ) -> Result<Option<Lookup>, Error> {
        let tags = key.tags();
        let Some(guess) = self.inner.guesses.get(key.static_digest()) else {
            return Ok(None);
        };
        if guess.len() != tags.len() + 1 {
            return Ok(None);
        }
        let entry_key = EntryKey::new(&self.inner.entry_prefix, key, &guess);
        let mut cmd = redis::Cmd::with_capacity(tags.len() + 3, 64 * (tags.len() + 2) + 128);
        cmd.arg("MGET");
        self.push_version_keys(&mut cmd, tags);
        cmd.arg(entry_key.as_str());
        let reply: Vec<Value> = self.conn.query(Request::Cmd(&cmd)).await?;
        if reply.len() != tags.len() + 2 {
            return Err(Error::protocol(format!(
                "MGET returned {} values, expected {}",
                reply.len(),
                tags.len() + 2
            )));
        }
        let mut reply = reply.into_iter();
        let mut versions = Vec::with_capacity(guess.len());
        for expected in guess.iter() {
            match reply.next() {
                Some(Value::Nil) | None => return Ok(None),
                Some(v) => {
                    let v = version_of(v)?;
                    if v != *expected {
                        return Ok(None);
                    }
                    versions.push(v);
                }
            }
        }
        let entry = entry_of(reply.next())?;
        Ok(Some(Lookup {
            entry_key,
            versions,
            entry,
        }))
    }
}
