//! The durable outbox: bumps written to a database table in the same
//! transaction as the data change, so that they survive the process that
//! made them (features `outbox-sqlite` and `outbox-postgres`, on sqlx).
//!
//! The in-process outbox keeps a bump the store did not take until it lands,
//! but it lives and dies with its process, and it fences reads only there.
//! [`SqlOutbox`] closes both gaps:
//!
//! 1. [`record`](SqlOutbox::record) inserts the tags into the outbox table
//!    inside the caller's transaction: the bump exists exactly when the data
//!    change does.
//! 2. After the commit, [`apply`](SqlOutbox::apply) bumps at once and deletes
//!    the row when the bump landed.
//! 3. Every app instance runs [`drain`](SqlOutbox::drain) (or calls
//!    [`drain_once`](SqlOutbox::drain_once)): it reads the rows left behind
//!    (a bump that failed, a process that crashed between commit and bump),
//!    bumps their tags through its own [`Invalidator`] and deletes them once
//!    applied. While the store is down, those tags wait in that instance's
//!    in-process outbox, which fences its reads of them: no instance serves
//!    an entry such a row invalidates once it has read the row.
//!
//! Applying a row twice (two instances draining at once, a delete that
//! failed) only draws another random version: rows are never locked.
//!
//! The window that remains: an instance that has not read the table since a
//! row was committed does not fence its tags. With the store down that
//! instance serves nothing cached anyway; a store that comes back within one
//! poll interval of the commit may let it serve a stale hit until its next
//! poll. Keep the poll interval well below the time a store takes to come
//! back.
//!
//! ```
//! # #[cfg(feature = "outbox-sqlite")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sqlx::sqlite::SqlitePoolOptions;
//! use tower_tagged_cache::{MemoryStore, TaggedCacheLayer, invalidate::durable::SqlOutbox};
//!
//! let layer = TaggedCacheLayer::new(MemoryStore::new());
//! let pool = SqlitePoolOptions::new()
//!     .max_connections(1) // one in-memory database
//!     .connect("sqlite::memory:")
//!     .await?;
//! SqlOutbox::<sqlx::Sqlite>::create_table(&pool).await?;
//! let outbox = SqlOutbox::new(pool.clone(), layer.invalidator());
//! let drain = outbox.drain(); // in every app instance
//!
//! let mut tx = pool.begin().await?;
//! // ... the data change, in `tx` ...
//! let recorded = outbox.record(&mut tx, ["User:42"]).await?;
//! tx.commit().await?;
//! assert!(outbox.apply(recorded).await.is_applied());
//! assert_eq!(outbox.rows().await?, 0, "applied rows are deleted");
//! drain.abort();
//! # Ok(()) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # #[cfg(feature = "outbox-sqlite")]
//! # demo().await.unwrap();
//! # }
//! ```
//!
//! The table (`tower_tagged_cache_outbox`, created by `create_table` when
//! missing) holds one row per recorded write: an id, the tags and when
//! it was written. Tags are stored length-prefixed (`7:User:42 5:Posts`) so
//! that any instance text survives; a row that does not parse is treated as
//! an epoch bump (logged), never skipped.

use std::{fmt, time::Duration};

use super::{Invalidation, Invalidator};
use crate::{
    error::{Error, ErrorKind},
    key::{IntoTag, Tag},
};

/// The outbox table.
pub const OUTBOX_TABLE: &str = "tower_tagged_cache_outbox";

/// Default pause between two reads of the table by [`SqlOutbox::drain`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Rows read by one [`SqlOutbox::drain_once`].
const DRAIN_ROWS: i64 = 256;

/// An outbox table in a SQL database, and the [`Invalidator`] that applies
/// its rows. Cheap to clone. See the [module docs](self).
pub struct SqlOutbox<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    invalidator: Invalidator,
    poll: Duration,
}

// Not derived: a derive would ask `DB: Clone`.
impl<DB: sqlx::Database> Clone for SqlOutbox<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            invalidator: self.invalidator.clone(),
            poll: self.poll,
        }
    }
}

impl<DB: sqlx::Database> fmt::Debug for SqlOutbox<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlOutbox")
            .field("database", &DB::NAME)
            .field("table", &OUTBOX_TABLE)
            .field("poll", &self.poll)
            .finish()
    }
}

/// A bump written by [`SqlOutbox::record`]: apply it after the commit with
/// [`SqlOutbox::apply`].
#[derive(Debug, Clone)]
#[must_use = "apply it after the commit; the drain would, but later"]
pub struct Recorded {
    id: i64,
    tags: Vec<Tag>,
}

impl Recorded {
    /// The row's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The tags it bumps.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }
}

/// What one [`SqlOutbox::drain_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Rows whose bump landed (and which were deleted).
    pub applied: usize,
    /// Rows whose bump the store did not take: still in the table, their
    /// tags queued (and fenced) in this process.
    pub pending: usize,
}

/// Tags as one column value: `<len>:<tag>` each, space-separated.
fn encode_tags(tags: &[Tag]) -> String {
    let mut out = String::new();
    for tag in tags {
        let tag = tag.to_string();
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&tag.len().to_string());
        out.push(':');
        out.push_str(&tag);
    }
    out
}

/// The tags of a column value read back from the database, `None` when it
/// does not parse (untrusted: any bytes may be there).
fn decode_tags(mut text: &str) -> Option<Vec<Tag>> {
    let mut tags = Vec::new();
    while !text.is_empty() {
        let (len, rest) = text.split_once(':')?;
        if len.is_empty() || len.len() > 10 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: usize = len.parse().ok()?;
        let tag = rest.get(..len)?;
        tags.push(tag.parse().ok()?);
        text = &rest[len..];
        if let Some(more) = text.strip_prefix(' ') {
            if more.is_empty() {
                return None;
            }
            text = more;
        } else if !text.is_empty() {
            return None;
        }
    }
    Some(tags)
}

fn db_error(err: sqlx::Error) -> Error {
    Error::new(ErrorKind::Store, err)
}

fn now_ms() -> i64 {
    i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX)
}

impl<DB: sqlx::Database> SqlOutbox<DB> {
    /// An outbox on `pool` (whose table `create_table` made) whose rows
    /// `invalidator` applies. Beside a layer, pass the layer's
    /// [`invalidator`](crate::TaggedCacheLayer::invalidator): bumps
    /// the store does not take then fence the layer's reads.
    pub fn new(pool: sqlx::Pool<DB>, invalidator: Invalidator) -> Self {
        Self {
            pool,
            invalidator,
            poll: DEFAULT_POLL_INTERVAL,
        }
    }

    /// The pause between two reads of the table by
    /// [`drain`](Self::drain). Defaults to
    /// [`DEFAULT_POLL_INTERVAL`].
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The invalidator that applies the rows.
    pub fn invalidator(&self) -> &Invalidator {
        &self.invalidator
    }
}

/// One implementation per database: only the table's DDL differs.
macro_rules! sql_outbox {
    ($db:ty, $feature:literal, create: $create:expr, insert: $insert:expr, select: $select:expr) => {
        #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
        impl SqlOutbox<$db> {
            /// Creates the outbox table when it is missing: call it once at
            /// start-up (or put the same DDL in your migrations).
            ///
            /// # Errors
            ///
            /// When the table cannot be created.
            pub async fn create_table(pool: &sqlx::Pool<$db>) -> Result<(), Error> {
                sqlx::query($create).execute(pool).await.map_err(db_error)?;
                Ok(())
            }

            /// Writes a bump of `tags` in `tx`, the transaction of the data
            /// change: it is committed, or rolled back, with it. Apply it
            /// after the commit with [`apply`](Self::apply).
            ///
            /// # Errors
            ///
            /// When a tag is invalid or the insert failed (then fail the
            /// transaction too: the change would go without its bump).
            pub async fn record<I>(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                tags: I,
            ) -> Result<Recorded, Error>
            where
                I: IntoIterator,
                I::Item: IntoTag,
            {
                let tags = crate::key::into_tags(tags)?;
                let id: i64 = sqlx::query_scalar($insert)
                    .bind(encode_tags(&tags))
                    .bind(now_ms())
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db_error)?;
                Ok(Recorded { id, tags })
            }

            /// Bumps what `recorded` holds, after its transaction committed,
            /// and deletes its row once the bump landed. When the store does
            /// not take it, the bump is queued in this process (and fenced
            /// here) and the row stays for any instance's drain.
            pub async fn apply(&self, recorded: Recorded) -> Invalidation {
                let bump = self.invalidator.store.invalidate(&recorded.tags).await;
                if bump.is_applied() {
                    // A row that stays is only bumped again by a drain.
                    if let Err(err) = self.delete(&[recorded.id]).await {
                        crate::telemetry::outbox_row_kept(&err);
                    }
                }
                bump
            }

            /// Reads up to 256 rows, oldest first, bumps their tags (one
            /// store call) and deletes them if the bump landed. Rows that do
            /// not parse bump the epoch.
            ///
            /// # Errors
            ///
            /// When the database could not be read or the applied rows could
            /// not be deleted (they are applied again later: harmless).
            pub async fn drain_once(&self) -> Result<Drained, Error> {
                let rows: Vec<(i64, String)> = sqlx::query_as($select)
                    .bind(DRAIN_ROWS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                if rows.is_empty() {
                    return Ok(Drained::default());
                }
                let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                let mut tags = Vec::new();
                let mut unreadable = false;
                for (id, text) in &rows {
                    match decode_tags(text) {
                        Some(t) => tags.extend(t),
                        None => {
                            crate::telemetry::outbox_row_unreadable(*id);
                            unreadable = true;
                        }
                    }
                }
                tags.sort_unstable();
                tags.dedup();
                let mut bump = self.invalidator.store.invalidate(&tags).await;
                if unreadable && bump.is_applied() {
                    bump = self.invalidator.store.invalidate_epoch().await;
                }
                if !bump.is_applied() {
                    return Ok(Drained {
                        applied: 0,
                        pending: rows.len(),
                    });
                }
                self.delete(&ids).await?;
                Ok(Drained {
                    applied: rows.len(),
                    pending: 0,
                })
            }

            /// Drains the table every poll interval, until the returned
            /// task is aborted (or the runtime ends). Run one per app
            /// instance.
            pub fn drain(&self) -> tokio::task::JoinHandle<()> {
                let outbox = self.clone();
                tokio::spawn(async move {
                    loop {
                        match outbox.drain_once().await {
                            // A full batch: more may be waiting.
                            Ok(d) if d.applied as i64 == DRAIN_ROWS => continue,
                            Ok(_) => {}
                            Err(err) => crate::telemetry::outbox_drain_failed(&err),
                        }
                        tokio::time::sleep(outbox.poll).await;
                    }
                })
            }

            /// Rows in the table now.
            ///
            /// # Errors
            ///
            /// When the database could not be read.
            pub async fn rows(&self) -> Result<i64, Error> {
                sqlx::query_scalar(concat!(
                    "SELECT COUNT(*) FROM ",
                    "tower_tagged_cache_outbox"
                ))
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)
            }

            async fn delete(&self, ids: &[i64]) -> Result<(), Error> {
                // Ids read back as integers: formatting them is not
                // injection.
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                let sql = format!(
                    "DELETE FROM {OUTBOX_TABLE} WHERE id IN ({})",
                    list.join(", ")
                );
                sqlx::query(&sql)
                    .execute(&self.pool)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }
        }
    };
}

#[cfg(feature = "outbox-sqlite")]
sql_outbox!(
    sqlx::Sqlite,
    "outbox-sqlite",
    create: "CREATE TABLE IF NOT EXISTS tower_tagged_cache_outbox (\
     id INTEGER PRIMARY KEY AUTOINCREMENT, tags TEXT NOT NULL, created_ms INTEGER NOT NULL)",
    insert: "INSERT INTO tower_tagged_cache_outbox (tags, created_ms) VALUES (?, ?) RETURNING id",
    select: "SELECT id, tags FROM tower_tagged_cache_outbox ORDER BY id LIMIT ?"
);

#[cfg(feature = "outbox-postgres")]
sql_outbox!(
    sqlx::Postgres,
    "outbox-postgres",
    create: "CREATE TABLE IF NOT EXISTS tower_tagged_cache_outbox (\
     id BIGSERIAL PRIMARY KEY, tags TEXT NOT NULL, created_ms BIGINT NOT NULL)",
    insert: "INSERT INTO tower_tagged_cache_outbox (tags, created_ms) VALUES ($1, $2) RETURNING id",
    select: "SELECT id, tags FROM tower_tagged_cache_outbox ORDER BY id LIMIT $1"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<Tag> {
        list.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn tags_round_trip_whatever_their_text() {
        for list in [
            &[][..],
            &["User:42"],
            &["User:42", "Posts", "Org:1:2"],
            &["Note:a b", "Note:line\nbreak", "Note:7:x", "Note:é ü"],
        ] {
            let t = tags(list);
            assert_eq!(decode_tags(&encode_tags(&t)), Some(t), "{list:?}");
        }
        assert_eq!(
            encode_tags(&tags(&["User:42", "Posts"])),
            "7:User:42 5:Posts"
        );
    }

    #[test]
    fn unreadable_columns_are_refused() {
        for text in [
            "7:User:4",
            "x:User:42",
            "7User:42",
            "7:User:42 ",
            "7:User:425:Posts",
            "99999999999:a",
            "3:{x}",
            "2:é",
            "-1:a",
        ] {
            assert_eq!(decode_tags(text), None, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_any_text_never_panics(text in ".{0,64}") {
            let _ = decode_tags(&text);
        }
    }
}
