//! The warm lookup: one `MGET` of the versions and of the entry under the
//! versions a static key was last seen with in this process.

use redis::Value;

use super::{
    RedisStore,
    conn::Request,
    reply::{entry_of, version_of},
};
use std::sync::Arc;

use crate::{
    clock,
    error::Error,
    key::{self, FragmentedKey, Version},
    store::{EntryKey, Lookup},
};

/// How many static keys the store remembers the last versions of (about
/// 100 bytes each, plus 16 per tag).
pub(super) const MAX_GUESSES: u64 = 50_000;

/// The versions a static key was last seen with, and when this process last
/// gave them a whole TTL again (crate clock, ms).
pub(super) struct Guess {
    pub(super) versions: Box<[Version]>,
    pub(super) refreshed_at_ms: u64,
}

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
        if guess.versions.len() != tags.len() + 1 {
            return Ok(None);
        }
        let entry_key = EntryKey::new(&self.inner.entry_prefix, key, &guess.versions);
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
        let mut versions = Vec::with_capacity(guess.versions.len());
        for expected in guess.versions.iter() {
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
        self.keep_alive(key, &guess);
        Ok(Some(Lookup {
            entry_key,
            versions,
            entry,
        }))
    }

    /// Versions that are read stay alive: once a quarter TTL per static key,
    /// this process gives the key's versions a whole TTL again, in the
    /// background (the hit stays one round trip). `EXPIRE` does nothing to a
    /// version gone meanwhile, and a failure only leaves the TTL as it was.
    fn keep_alive(&self, key: &FragmentedKey, guess: &Guess) {
        let now = clock::now_ms();
        let quarter_ms = self.inner.version_ttl_secs.saturating_mul(250);
        if now.saturating_sub(guess.refreshed_at_ms) < quarter_ms {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.inner.guesses.insert(
            *key.static_digest(),
            Arc::new(Guess {
                versions: guess.versions.clone(),
                refreshed_at_ms: now,
            }),
        );
        let mut pipe = redis::pipe();
        let mut buf = String::with_capacity(128);
        let mut expire = |k: &str| {
            pipe.cmd("EXPIRE").arg(k).arg(self.version_life()).ignore();
        };
        expire(&self.inner.epoch_key);
        for tag in key.tags() {
            buf.clear();
            key::write_version_key(&mut buf, &self.inner.prefix, tag);
            expire(&buf);
        }
        let store = self.clone();
        runtime.spawn(async move {
            let _ = store.conn.query::<()>(Request::Pipe(&pipe)).await;
        });
    }
}
