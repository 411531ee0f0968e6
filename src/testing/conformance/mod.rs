//! The store conformance suite, for any [`Store`].
//!
//! The checks every store of this crate passes (DESIGN §3-§4): the
//! [`Store`] contract (seeding, entries, bumps, the epoch, `versions`,
//! leases) and the hazards every tag cache has met (evicted versions,
//! concurrent bumps, concurrent seeding, lookups racing a bump, keys that
//! concatenate alike, slow writers). Run them on your own store:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use tower_tagged_cache::{MemoryStore, testing::conformance::{self, Check, Subject}};
//!
//! // `conformance::run(make)` runs every check; this example leaves out the
//! // one that waits for a TTL in real time.
//! let checks = Check::ALL.iter().copied().filter(|c| *c != Check::PutTtlExpires);
//! let report = conformance::run_checks(checks, || async {
//!     // A fresh store for every check; a clone of it is the backdoor.
//!     let store = MemoryStore::new();
//!     Subject::new(store.clone()).with_backdoor(store)
//! })
//! .await;
//! println!("{report}"); // one line per check, then a summary line
//! report.assert_ok();
//! assert_eq!(report.skipped(), 0);
//! # }
//! ```
//!
//! Each check gets its own store from the closure, so that no check sees
//! another's data; for a shared server, give each store its own key prefix.
//! The checks run concurrently, each in a task of its own (the suite takes
//! about as long as its slowest check); the report lists them in order. A
//! check that fails is reported with its assertion message, and the others
//! run on. [`Check::run`] runs one check and panics where it fails, for a
//! test per check.
//!
//! # Reaching behind the store
//!
//! One check needs to do what no [`Store`] method does: drop a version as
//! an eviction would. It takes a [`Backdoor`]; without one it is skipped and
//! the report says so.
//!
//! # Time
//!
//! The checks run on real time: `put_ttl_expires` waits 1.3 s of wall time
//! for a 1 s TTL, whatever tokio's clock says. They work on both runtime
//! flavors; the race checks start their calls on several OS threads at
//! once.

mod bumps;
mod entries;
mod eviction;
mod keys;
mod leases;
mod report;
mod seeding;
mod subject;
pub mod util;

use std::{any::Any, future::Future};

use crate::store::Store;

#[doc(inline)]
pub use self::{
    report::{Report, Verdict},
    subject::{Backdoor, Subject},
};

/// How a check that did not fail ended (a failure is a panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// The check did not run, and why.
    Skipped(&'static str),
}

macro_rules! checks {
    ($( $(#[doc = $doc:literal])* $variant:ident => $module:ident::$func:ident, )*) => {
        /// One check of the suite. See the [module docs](self).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Check {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Check {
            /// Every check, in the order [`run`] runs them.
            pub const ALL: &'static [Check] = &[$(Check::$variant),*];

            /// The check's name (`cold_lookup_seeds_once`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Check::$variant => stringify!($func),)*
                }
            }

            /// Runs this check on `subject`, a fresh store.
            ///
            /// # Panics
            ///
            /// Where the store breaks the contract, with the assertion's
            /// message.
            pub async fn run<S: Store>(self, subject: Subject<S>) -> Outcome {
                match self {
                    $(Check::$variant => $module::$func(subject).await,)*
                }
            }
        }
    };
}

checks! {
    /// A cold lookup seeds the epoch and one version per tag, once.
    ColdLookupSeedsOnce => seeding::cold_lookup_seeds_once,
    /// What is put under a lookup's entry key comes back byte for byte.
    PutThenLookupRoundTrips => entries::put_then_lookup_round_trips,
    /// `delete` removes exactly the entry named.
    DeleteRemovesOneEntry => entries::delete_removes_one_entry,
    /// An entry lives for its own TTL (waits 1.3 s of real time).
    PutTtlExpires => entries::put_ttl_expires,
    /// `bump` replaces the versions of its tags, and only theirs.
    BumpMissesOnlyItsTags => bumps::bump_misses_only_its_tags,
    /// One `bump` of N tags replaces all N versions.
    BumpOfManyTagsChangesAll => bumps::bump_of_many_tags_changes_all,
    /// `bump_epoch` makes every entry miss, tag versions untouched.
    BumpEpochMissesEverything => bumps::bump_epoch_misses_everything,
    /// `versions` answers `None` for an unseen tag and never seeds.
    VersionsOfUnseenTagIsNone => seeding::versions_of_unseen_tag_is_none,
    /// Long and odd instances each keep their own version and entry.
    OddAndLongInstancesStayDistinct => keys::odd_and_long_instances_stay_distinct,
    /// An evicted, re-seeded version never brings an old entry back (needs
    /// a [`Backdoor`]).
    EvictedVersionNeverResurrectsEntries => eviction::evicted_version_never_resurrects_entries,
    /// 500 concurrent bumps all land; the old version never comes back.
    ConcurrentBumpsAllLand => bumps::concurrent_bumps_all_land,
    /// Concurrent cold lookups agree on one seeded version per tag.
    ConcurrentColdLookupsAgree => seeding::concurrent_cold_lookups_agree,
    /// Lookups racing a bump never write an old version back.
    LookupsRacingABumpNeverUndoIt => bumps::lookups_racing_a_bump_never_undo_it,
    /// Vary values and inputs that concatenate alike never share an entry.
    VaryAndLookalikesNeverShare => keys::vary_and_lookalikes_never_share,
    /// A response stored under versions a bump replaced is never reached.
    SlowWriterIsUnreachable => entries::slow_writer_is_unreachable,
    /// Leases are either local (always granted) or held by one at a time.
    LeasesExcludeOrAreLocal => leases::leases_exclude_or_are_local,
}

impl Check {
    /// The check named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Check> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// Runs every check, each on a fresh store from `make`, and reports what
/// each found. See the [module docs](self) for an example.
pub async fn run<S, F, Fut>(make: F) -> Report
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = Subject<S>>,
{
    run_checks(Check::ALL.iter().copied(), make).await
}

/// Runs the given checks, each on a fresh store from `make`, concurrently;
/// the report lists them in the order given.
pub async fn run_checks<S, F, Fut>(checks: impl IntoIterator<Item = Check>, mut make: F) -> Report
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = Subject<S>>,
{
    // Each check in a task of its own, so that a failed assertion is that
    // check's verdict and the others still run.
    let mut running = Vec::new();
    for check in checks {
        let subject = make().await;
        running.push((check, tokio::spawn(check.run(subject))));
    }
    let mut report = Report::default();
    for (check, task) in running {
        let verdict = match task.await {
            Ok(Outcome::Passed) => Verdict::Passed,
            Ok(Outcome::Skipped(why)) => Verdict::Skipped(why.to_owned()),
            Err(e) if e.is_panic() => Verdict::Failed(panic_message(e.into_panic())),
            Err(e) => Verdict::Failed(e.to_string()),
        };
        report.push(check, verdict);
    }
    report
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "panicked".to_owned(),
        },
    }
}
