//! The tag-aware value cache: plain values (any serde type) cached under
//! fragmented keys, for code that is not an HTTP route — services, background
//! jobs, template fragments.
//!
//! Values share keys, tags and stores with the layer, so bumping `User:42`
//! reaches cached pages and cached values alike.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_tagged_cache::Error> {
//! use std::time::Duration;
//! use tower_tagged_cache::{MemoryStore, TagCache};
//!
//! let cache = TagCache::new(MemoryStore::new());
//! let ttl = Duration::from_secs(60);
//! let profile: String = cache
//!     .get_or_set_with_tags("profile:42", ["User:42"], ttl, || async { "Ada".to_owned() })
//!     .await?;
//! assert_eq!(profile, "Ada");
//! // Served from the cache now: the loader is not called.
//! let again: String = cache
//!     .get_or_set_with_tags("profile:42", ["User:42"], ttl, || async { unreachable!() })
//!     .await?;
//! assert_eq!(again, "Ada");
//! cache.invalidator().invalidate(["User:42"]).await?;
//! let gone: Option<String> = cache.get_with_tags("profile:42", ["User:42"]).await?;
//! assert_eq!(gone, None);
//! # Ok(()) }
//! ```
//!
//! # Encoding
//!
//! A value is stored as a format byte then its compact
//! [postcard](https://docs.rs/postcard) encoding, which must fill the entry
//! exactly. A value written by an older shape of the type (a field added or
//! removed between deploys) or that no longer decodes is a miss, never an
//! error. When a type changes meaning without changing shape, raise the
//! key's [`version`](ValueKey::version).

use std::{fmt, future::Future, sync::Arc, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    error::Error,
    error::ErrorKind,
    flight::{self, Flights, Role},
    invalidate::{DEFAULT_TIMEOUT, Invalidator, ModelRegistry},
    key::{FragmentedKey, IntoTag, Tag},
    store::{DefaultStore, Guarded, Store, checksum},
    telemetry::{self, ValueLookup},
};

/// 2: a CRC-32 of the rest at the end ([`checksum`](crate::store::checksum)).
const FORMAT: u8 = 2;

/// The cache handle for values, models and invalidation: cheap to clone,
/// `Send + Sync`, no lock needed by callers. See the [module docs](self).
pub struct TagCache<St = DefaultStore> {
    /// Every store call of this handle (values and writes alike) goes
    /// through this one deadline and circuit breaker.
    store: Guarded<St>,
    /// Its writes and model registry, on the same guarded store.
    invalidator: Invalidator,
    /// The values being loaded, by entry key, so concurrent misses load
    /// once: the loader's encoded value is handed to the others.
    flights: Arc<Flights<Bytes>>,
}

impl<St: Clone> Clone for TagCache<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            invalidator: self.invalidator.clone(),
            flights: self.flights.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for TagCache<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagCache")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<St: Store> TagCache<St> {
    /// A handle over `store`.
    pub fn new(store: St) -> Self {
        Self::with_timeout(store, DEFAULT_TIMEOUT)
    }

    /// A handle whose store calls have the deadline `timeout`.
    ///
    /// It has a circuit breaker and an invalidation outbox of its own: a
    /// bump queued here fences this handle's reads, not a layer's. Beside a
    /// [`TaggedCacheLayer`](crate::TaggedCacheLayer), make the handle with
    /// [`TaggedCacheLayer::tag_cache`](crate::TaggedCacheLayer::tag_cache)
    /// instead, so that both share one breaker, outbox and model registry.
    pub fn with_timeout(store: St, timeout: Duration) -> Self {
        telemetry::describe();
        Self::from_parts(Guarded::new(store, timeout), Arc::default())
    }

    /// A handle on a guarded store and model registry that others share
    /// (a layer's).
    pub(crate) fn from_parts(store: Guarded<St>, models: Arc<ModelRegistry>) -> Self {
        Self {
            invalidator: Invalidator::from_parts(store.clone(), models),
            store,
            flights: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &St {
        self.store.store()
    }

    /// Every store call of this handle goes through this guarded store (one
    /// deadline, one circuit breaker, shared with its invalidator).
    fn guarded(&self) -> &Guarded<St> {
        &self.store
    }

    /// The handle's write API: bumps tags and reports model events, on the
    /// same store, deadline, circuit breaker and model registry. Cheap: a
    /// clone of shared handles.
    pub fn invalidator(&self) -> Invalidator {
        self.invalidator.clone()
    }

    /// The model registry (the invalidator's): register model types, then
    /// report their lifecycle events through [`invalidator`](Self::invalidator).
    /// See [`ModelRegistry`].
    pub fn models(&self) -> &ModelRegistry {
        self.invalidator.models()
    }

    /// A key for one value, to set its version, group, vary values and tags
    /// before reading or writing it.
    pub fn key(&self, name: impl Into<String>) -> ValueKey<'_, St> {
        ValueKey {
            cache: self,
            name: name.into(),
            key_version: 1,
            group: String::new(),
            vary: Vec::new(),
            tags: Vec::new(),
            bad_tag: None,
        }
    }

    /// The value stored under `name` and `tags`, if any (and still decodable
    /// as a `T`).
    ///
    /// # Errors
    ///
    /// When a tag is invalid or the store failed.
    pub async fn get_with_tags<T, I>(&self, name: &str, tags: I) -> Result<Option<T>, Error>
    where
        T: DeserializeOwned,
        I: IntoIterator,
        I::Item: IntoTag,
    {
        self.key(name).tags(tags).get().await
    }

    /// Stores `value` under `name` and `tags` for `ttl`.
    ///
    /// # Errors
    ///
    /// When a tag is invalid, the value does not serialize, or the store
    /// failed.
    pub async fn set_with_tags<T, I>(
        &self,
        name: &str,
        value: &T,
        tags: I,
        ttl: Duration,
    ) -> Result<(), Error>
    where
        T: Serialize,
        I: IntoIterator,
        I::Item: IntoTag,
    {
        self.key(name).tags(tags).set(value, ttl).await
    }

    /// The value under `name` and `tags`, or what `loader` computes, stored
    /// for `ttl`. Concurrent callers that miss on the same key in this
    /// process run the loader once; the others wait and read what it stored.
    /// Store failures are not errors here: the loader's value is returned
    /// uncached (the cache never stands in the way), and so is it while a
    /// tag has a bump waiting in the outbox.
    ///
    /// # Errors
    ///
    /// Only when a tag is invalid.
    pub async fn get_or_set_with_tags<T, I, F, Fut>(
        &self,
        name: &str,
        tags: I,
        ttl: Duration,
        loader: F,
    ) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        I: IntoIterator,
        I::Item: IntoTag,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.key(name).tags(tags).get_or_set(ttl, loader).await
    }

    /// Removes the value under `name` and `tags` (as of the current tag
    /// versions).
    ///
    /// # Errors
    ///
    /// When a tag is invalid or the store failed.
    pub async fn delete_with_tags<I>(&self, name: &str, tags: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: IntoTag,
    {
        self.key(name).tags(tags).delete().await
    }
}

/// A tag whose version is fixed in code: see [`ValueKey::constant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstantTag {
    name: String,
    version: String,
}

/// A [`ConstantTag`] named `name` at `version`.
pub fn constant_tag(name: impl Into<String>, version: impl fmt::Display) -> ConstantTag {
    ConstantTag {
        name: name.into(),
        version: version.to_string(),
    }
}

/// One value's key: name, key version, group, vary values and tags. Made by
/// [`TagCache::key`].
pub struct ValueKey<'a, St> {
    cache: &'a TagCache<St>,
    name: String,
    key_version: u32,
    group: String,
    vary: Vec<(String, Vec<u8>)>,
    tags: Vec<Tag>,
    bad_tag: Option<crate::error::ConfigError>,
}

impl<St> fmt::Debug for ValueKey<'_, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueKey")
            .field("name", &self.name)
            .field("key_version", &self.key_version)
            .field("group", &self.group)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

impl<St: Store> ValueKey<'_, St> {
    /// The key version: raise it when the value's type or meaning changes.
    /// Defaults to 1.
    pub fn version(mut self, version: u32) -> Self {
        self.key_version = version;
        self
    }

    /// A group id that namespaces values sharing a name and tags. Defaults
    /// to empty.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// A value the cached value depends on besides its tags (an argument of
    /// the function that computes it), in declared order.
    pub fn vary(mut self, name: impl Into<String>, value: &impl fmt::Display) -> Self {
        self.vary
            .push((name.into(), value.to_string().into_bytes()));
        self
    }

    /// Adds a constant tag: a tag with a fixed version, hashed into the key
    /// and never read from the store. Change its version in code to make
    /// every value that uses it unreachable on the next deploy.
    pub fn constant(mut self, tag: ConstantTag) -> Self {
        self.vary
            .push((format!(":const:{}", tag.name), tag.version.into_bytes()));
        self
    }

    /// Adds tags.
    pub fn tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: IntoTag,
    {
        for t in tags {
            match t.into_tag() {
                Ok(tag) => self.tags.push(tag),
                Err(e) => self.bad_tag = Some(e),
            }
        }
        self
    }

    fn fragmented(&self) -> Result<FragmentedKey, Error> {
        if let Some(e) = &self.bad_tag {
            return Err(e.clone().into());
        }
        let mut b = FragmentedKey::builder(&self.name, self.key_version, &self.group);
        // Values and pages never share keys.
        b.push_vary(":kind", Some(b"value"));
        for (name, value) in &self.vary {
            b.push_vary(name, Some(value));
        }
        for tag in &self.tags {
            b.push_tag(tag.clone());
        }
        Ok(b.finish())
    }

    /// Reads the value. `None` also while a tag of the value has a bump
    /// waiting in the outbox (read fencing: the stored value may be what
    /// the bump hides).
    ///
    /// # Errors
    ///
    /// When a tag is invalid or the store failed.
    pub async fn get<T: DeserializeOwned>(self) -> Result<Option<T>, Error> {
        let key = self.fragmented()?;
        if self.cache.guarded().outbox().fences(key.tags()) {
            telemetry::value_lookup(ValueLookup::Bypass);
            return Ok(None);
        }
        let lookup = self.cache.guarded().lookup(&key).await?;
        let value = lookup.entry.and_then(|bytes| decode(&bytes));
        telemetry::value_lookup(if value.is_some() {
            ValueLookup::Hit
        } else {
            ValueLookup::Miss
        });
        Ok(value)
    }

    /// Stores the value for `ttl`.
    ///
    /// # Errors
    ///
    /// When a tag is invalid, the value does not serialize, or the store
    /// failed.
    pub async fn set<T: Serialize>(self, value: &T, ttl: Duration) -> Result<(), Error> {
        let key = self.fragmented()?;
        let bytes = encode(value)?;
        let lookup = self.cache.guarded().lookup(&key).await?;
        self.cache.guarded().put(lookup.entry_key, bytes, ttl).await
    }

    /// Removes the value.
    ///
    /// # Errors
    ///
    /// When a tag is invalid or the store failed.
    pub async fn delete(self) -> Result<(), Error> {
        let key = self.fragmented()?;
        let lookup = self.cache.guarded().lookup(&key).await?;
        self.cache.guarded().delete(lookup.entry_key).await
    }

    /// Reads the value, or computes it with `loader` (once per key in this
    /// process, however many callers miss at once) and stores it for `ttl`.
    /// See [`TagCache::get_or_set_with_tags`].
    ///
    /// # Errors
    ///
    /// Only when a tag is invalid.
    pub async fn get_or_set<T, F, Fut>(self, ttl: Duration, loader: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let key = self.fragmented()?;
        let cache = self.cache;
        if cache.guarded().outbox().fences(key.tags()) {
            // A bump of one of its tags is waiting in the outbox: what is
            // stored may be what it hides.
            telemetry::value_lookup(ValueLookup::Bypass);
            return Ok(loader().await);
        }
        let lookup = match cache.guarded().lookup(&key).await {
            Ok(lookup) => lookup,
            Err(err) => {
                telemetry::value_uncached(&err);
                telemetry::value_lookup(ValueLookup::Bypass);
                return Ok(loader().await);
            }
        };
        if let Some(value) = lookup.entry.as_ref().and_then(decode) {
            telemetry::value_lookup(ValueLookup::Hit);
            return Ok(value);
        }
        // One loader per entry key: the others wait for its encoded value.
        // A loader that goes away without a value lets the next one lead; a
        // value that does not decode (a type that does not round-trip) is
        // loaded again here, uncoordinated, rather than waited on again.
        let leader = loop {
            match cache.flights.join(lookup.entry_key.as_str()) {
                Role::Lead(leader) => break Some(leader),
                Role::Follow(rx) => {
                    if let Some(bytes) = flight::follow(rx, Duration::MAX).await {
                        let Some(value) = decode(&bytes) else {
                            break None;
                        };
                        telemetry::value_lookup(ValueLookup::Coalesced);
                        return Ok(value);
                    }
                }
            }
        };
        // The last leader may have stored the value between our lookup and
        // our join.
        if let Ok(again) = cache.guarded().lookup(&key).await
            && again.entry_key == lookup.entry_key
            && let Some(value) = again.entry.as_ref().and_then(decode)
        {
            telemetry::value_lookup(ValueLookup::Coalesced);
            return Ok(value);
        }
        telemetry::value_lookup(ValueLookup::Miss);
        let value = loader().await;
        match encode(&value) {
            Ok(bytes) => {
                if let Some(leader) = &leader {
                    leader.publish(bytes.clone());
                }
                if let Err(err) = cache.guarded().put(lookup.entry_key, bytes, ttl).await {
                    telemetry::value_not_stored(&err);
                }
            }
            Err(err) => telemetry::value_unserializable(&err),
        }
        // Only now may a new miss lead: the value is in the store.
        drop(leader);
        Ok(value)
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes, Error> {
    let body = postcard::to_allocvec(value).map_err(|e| Error::new(ErrorKind::Encode, e))?;
    let mut buf = BytesMut::with_capacity(1 + body.len() + 4);
    buf.put_u8(FORMAT);
    buf.put_slice(&body);
    checksum::seal(&mut buf);
    Ok(buf.freeze())
}

/// Decodes a value that fills `bytes` exactly: a value written by a type
/// with more or fewer fields fails, and is a miss; so is a damaged one (its
/// checksum does not match).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &Bytes) -> Option<T> {
    let sealed = checksum::open(bytes)?;
    let (&format, body) = sealed.split_first()?;
    if format != FORMAT {
        return None;
    }
    match postcard::take_from_bytes(body) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct V1 {
        id: u32,
        name: String,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct V2 {
        id: u32,
        name: String,
        email: String,
    }

    #[test]
    fn round_trips_and_other_types_miss() {
        let v = V1 {
            id: 7,
            name: "Ada".into(),
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<V1>(&bytes), Some(v));
        assert_eq!(decode::<V2>(&bytes), None, "a field more is a miss");
        let v2 = encode(&V2 {
            id: 7,
            name: "Ada".into(),
            email: "a@b".into(),
        })
        .unwrap();
        assert_eq!(decode::<V1>(&v2), None, "a field less is a miss");
        assert_eq!(
            decode::<String>(&encode(&"str").unwrap()),
            Some("str".to_owned())
        );
        assert_eq!(
            decode::<V1>(&bytes.slice(..bytes.len() - 1)),
            None,
            "truncated"
        );
        assert_eq!(decode::<V1>(&Bytes::new()), None);
        let mut other = BytesMut::from(&bytes[..bytes.len() - 4]);
        other[0] = 9;
        checksum::seal(&mut other);
        assert_eq!(decode::<V1>(&other.freeze()), None, "other format");
        // A flipped bit in the name: without the checksum, another name.
        let mut damaged = bytes.to_vec();
        damaged[bytes.len() - 5] ^= 1;
        assert_eq!(decode::<V1>(&Bytes::from(damaged)), None, "damaged");
    }
}
