use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use super::{Invalidation, Invalidator, WriteError};
use crate::{
    error::ConfigError,
    error::Error,
    error::ErrorKind,
    key::{Tag, Version},
};

/// A type whose changes invalidate cached data: its instances are tagged
/// `TAG:pk` (`Post:7`).
///
/// ```
/// use tower_tagged_cache::invalidate::Model;
///
/// struct Post { id: u64, author_id: u64 }
///
/// impl Model for Post {
///     const TAG: &'static str = "Post";
///     fn pk(&self) -> String { self.id.to_string() }
/// }
/// ```
pub trait Model: Send + Sync + 'static {
    /// The tag name of this model (a valid tag name: letters, digits, `_`,
    /// `-`, `.`).
    const TAG: &'static str;

    /// The primary key, as the tag instance.
    fn pk(&self) -> String;
}

/// The tag of one instance: `Post:7`.
///
/// # Panics
///
/// When `M::TAG` is not a valid tag name (a programming error, caught by the
/// first test that uses the model).
pub fn model_tag<M: Model>(pk: impl fmt::Display) -> Tag {
    tag_of::<M>(M::TAG, pk)
}

/// A tag named after `M`; an invalid `M::TAG` is a programming error.
fn tag_of<M: Model>(name: impl AsRef<str>, instance: impl fmt::Display) -> Tag {
    Tag::new(name, instance)
        .unwrap_or_else(|e| panic!("Model::TAG of {}: {e}", std::any::type_name::<M>()))
}

/// The tag of "the list of all `M`": bumped by every lifecycle event of any
/// instance, for pages and values that list them (`Post.list`).
///
/// # Panics
///
/// As [`model_tag`].
pub fn list_tag<M: Model>() -> Tag {
    tag_of::<M>(format!("{}.list", M::TAG), "")
}

/// The tag of an aggregate over `M` (`Post.agg:count`): for counts, sums and
/// statistics that your hooks bump when they change.
///
/// # Panics
///
/// As [`model_tag`].
pub fn aggregate_tag<M: Model>(name: impl fmt::Display) -> Tag {
    tag_of::<M>(format!("{}.agg", M::TAG), name)
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// It was inserted.
    Created,
    /// It was changed.
    Updated,
    /// It was removed.
    Deleted,
}

type Hook = Arc<dyn Fn(&dyn Any) -> Vec<Tag> + Send + Sync>;

struct Registered {
    name: &'static str,
    hooks: Vec<(Event, Hook)>,
}

/// Maps model types to their tags and lifecycle hooks (the write paths of
/// `fragmented_keys_django`'s `ModelTagManager`). Reached through
/// [`Invalidator::models`] (or [`TagCache::models`](crate::TagCache::models));
/// shared by every clone of the handle. Events are reported through the
/// [`Invalidator`].
///
/// Every event bumps the instance's [`model_tag`], the model's
/// [`list_tag`], and the tags the model's hooks return for that event, all
/// in one store round trip.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_tagged_cache::{MemoryStore, TagCache, invalidate::{Event, Model, model_tag}};
///
/// struct Post { id: u64 }
/// impl Model for Post { const TAG: &'static str = "Post"; fn pk(&self) -> String { self.id.to_string() } }
/// struct Comment { id: u64, post_id: u64 }
/// impl Model for Comment { const TAG: &'static str = "Comment"; fn pk(&self) -> String { self.id.to_string() } }
///
/// let cache = TagCache::new(MemoryStore::new());
/// cache.models().register::<Post>()?;
/// // A new or deleted comment changes its post's page.
/// cache.models().register::<Comment>()?
///     .on([Event::Created, Event::Deleted], |c: &Comment| vec![model_tag::<Post>(c.post_id)]);
///
/// let writes = cache.invalidator();
/// let before = writes.tag_version("Post:1").await?;
/// writes.created(&Comment { id: 9, post_id: 1 }).await?;
/// assert_ne!(writes.tag_version("Post:1").await?, before);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct ModelRegistry {
    models: RwLock<HashMap<TypeId, Registered>>,
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.registered_models()).finish()
    }
}

/// Adds hooks to a registered model. See [`ModelRegistry::register`].
pub struct Registration<'a, M> {
    registry: &'a ModelRegistry,
    _model: std::marker::PhantomData<fn(&M)>,
}

impl<M> fmt::Debug for Registration<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("model", &std::any::type_name::<M>())
            .finish()
    }
}

impl<M: Model> Registration<'_, M> {
    /// Adds a hook for these events: the extra tags to bump (a `Comment`
    /// bumps its `Post`; an `Author` rename bumps every post of theirs).
    pub fn on<F>(self, events: impl IntoIterator<Item = Event>, hook: F) -> Self
    where
        F: Fn(&M) -> Vec<Tag> + Send + Sync + 'static,
    {
        let hook: Hook =
            Arc::new(move |any: &dyn Any| any.downcast_ref::<M>().map(&hook).unwrap_or_default());
        let mut models = self.registry.write();
        if let Some(reg) = models.get_mut(&TypeId::of::<M>()) {
            for event in events {
                reg.hooks.push((event, hook.clone()));
            }
        }
        drop(models);
        self
    }

    /// Adds a hook for [`Event::Created`] and [`Event::Updated`].
    pub fn on_saved<F>(self, hook: F) -> Self
    where
        F: Fn(&M) -> Vec<Tag> + Send + Sync + 'static,
    {
        self.on([Event::Created, Event::Updated], hook)
    }
}

impl ModelRegistry {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TypeId, Registered>> {
        self.models.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TypeId, Registered>> {
        self.models.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `M` (again: its hooks start over).
    ///
    /// # Errors
    ///
    /// When `M::TAG` is not a valid tag name.
    pub fn register<M: Model>(&self) -> Result<Registration<'_, M>, ConfigError> {
        Tag::new(M::TAG, "")?;
        Tag::new(format!("{}.list", M::TAG), "")?;
        self.write().insert(
            TypeId::of::<M>(),
            Registered {
                name: M::TAG,
                hooks: Vec::new(),
            },
        );
        Ok(Registration {
            registry: self,
            _model: std::marker::PhantomData,
        })
    }

    /// Forgets `M`; its events are errors from now on.
    pub fn unregister<M: Model>(&self) {
        self.write().remove(&TypeId::of::<M>());
    }

    /// Whether `M` is registered.
    pub fn is_registered<M: Model>(&self) -> bool {
        self.read().contains_key(&TypeId::of::<M>())
    }

    /// The tag names of the registered models, sorted.
    pub fn registered_models(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.read().values().map(|r| r.name).collect();
        names.sort_unstable();
        names
    }

    /// The tags an event on `m` bumps: its model tag, the list tag, and what
    /// its hooks return.
    ///
    /// # Errors
    ///
    /// When `M` is not registered.
    pub fn tags_for<M: Model>(&self, m: &M, event: Event) -> Result<Vec<Tag>, Error> {
        let models = self.read();
        let reg = models
            .get(&TypeId::of::<M>())
            .ok_or_else(|| not_registered::<M>())?;
        let mut tags = vec![model_tag::<M>(m.pk()), list_tag::<M>()];
        for (e, hook) in &reg.hooks {
            if *e == event {
                tags.extend(hook(m));
            }
        }
        tags.sort_unstable();
        tags.dedup();
        Ok(tags)
    }
}

fn not_registered<M>() -> Error {
    Error::new(
        ErrorKind::InvalidTag,
        format!("model {} is not registered", std::any::type_name::<M>()),
    )
}

impl Invalidator {
    async fn event<M: Model>(&self, m: &M, event: Event) -> Result<Invalidation, Error> {
        let tags = self.models().tags_for(m, event)?;
        Ok(self.store.invalidate(&tags).await)
    }
}

/// Lifecycle events, reported after the write committed.
impl Invalidator {
    /// Reports that `m` was inserted (after the commit).
    ///
    /// # Errors
    ///
    /// When `M` is not registered. A store failure is not an error: the
    /// bump is queued (see [`Invalidation`]).
    pub async fn created<M: Model>(&self, m: &M) -> Result<Invalidation, Error> {
        self.event(m, Event::Created).await
    }

    /// Runs `write` (the commit), then reports `event` on `m` only if the
    /// write succeeded: the safe order. A bump before the commit would let a
    /// reader cache the old row under the new version.
    ///
    /// # Errors
    ///
    /// [`WriteError::Write`] when the write failed (nothing bumped),
    /// [`WriteError::Invalidate`] when `M` is not registered. A bump the
    /// store does not take is queued, not an error.
    pub async fn after_commit<M, T, E, W>(
        &self,
        write: W,
        event: Event,
        m: &M,
    ) -> Result<T, WriteError<E>>
    where
        M: Model,
        W: std::future::Future<Output = Result<T, E>>,
    {
        let value = write.await.map_err(WriteError::Write)?;
        self.event(m, event).await.map_err(WriteError::Invalidate)?;
        Ok(value)
    }

    /// Reports that `m` was changed (after the commit).
    ///
    /// # Errors
    ///
    /// When `M` is not registered. A store failure is not an error: the
    /// bump is queued (see [`Invalidation`]).
    pub async fn saved<M: Model>(&self, m: &M) -> Result<Invalidation, Error> {
        self.event(m, Event::Updated).await
    }

    /// Reports that `m` was removed (after the commit).
    ///
    /// # Errors
    ///
    /// When `M` is not registered. A store failure is not an error: the
    /// bump is queued (see [`Invalidation`]).
    pub async fn deleted<M: Model>(&self, m: &M) -> Result<Invalidation, Error> {
        self.event(m, Event::Deleted).await
    }

    /// Bumps the model tags of many instances of `M` (and its list tag) in
    /// one round trip, for bulk updates that never load the instances.
    ///
    /// # Errors
    ///
    /// When `M` is not registered. A store failure is not an error: the
    /// bump is queued (see [`Invalidation`]).
    pub async fn bulk<M: Model, I>(&self, pks: I) -> Result<Invalidation, Error>
    where
        I: IntoIterator,
        I::Item: fmt::Display,
    {
        if !self.models().is_registered::<M>() {
            return Err(not_registered::<M>());
        }
        let mut tags: Vec<Tag> = pks.into_iter().map(model_tag::<M>).collect();
        tags.push(list_tag::<M>());
        Ok(self.store.invalidate(&tags).await)
    }

    /// Bumps a scope of `M`: the tag `M::TAG:scope` (`Review:org:42`), for
    /// values tagged with everything of `M` under one owner.
    ///
    /// # Errors
    ///
    /// When `M` is not registered. A store failure is not an error: the
    /// bump is queued (see [`Invalidation`]).
    pub async fn scope<M: Model>(&self, scope: impl fmt::Display) -> Result<Invalidation, Error> {
        if !self.models().is_registered::<M>() {
            return Err(not_registered::<M>());
        }
        Ok(self.store.invalidate(&[model_tag::<M>(scope)]).await)
    }

    /// The current version of `m`'s model tag.
    ///
    /// # Errors
    ///
    /// When the store failed.
    pub async fn model_version<M: Model>(&self, m: &M) -> Result<Option<Version>, Error> {
        self.tag_version(model_tag::<M>(m.pk())).await
    }
}
