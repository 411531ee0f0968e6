//! The conformance suite can fail: stores with one defect each fail the
//! check that covers it, with its name and message; a store without a
//! backdoor is skipped where it needs one. The kit's wrappers pass it.

use std::time::Duration;

use bytes::Bytes;
use tower_tagged_cache::{
    Error, MemoryStore, Store,
    key::{FragmentedKey, Tag, Version},
    store::{EntryKey, Lease, Lookup},
    testing::{
        FaultyStore, PausableStore,
        conformance::{self, Check, Subject, Verdict},
    },
};

/// What a [`Broken`] store gets wrong.
#[derive(Clone, Copy, Debug)]
enum Defect {
    /// `bump` answers `Ok` and changes nothing.
    BumpIsANoOp,
    /// `put` keeps every entry for ten minutes, whatever its TTL.
    IgnoresTtl,
    /// `lookup` seeds fresh versions every time (a `SET` instead of `SET NX`).
    SeedsEveryLookup,
    /// `delete` removes nothing.
    DeleteIsANoOp,
}

/// A memory store with one defect.
#[derive(Clone, Debug)]
struct Broken {
    inner: MemoryStore,
    defect: Defect,
}

impl Store for Broken {
    async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
        if let Defect::SeedsEveryLookup = self.defect {
            self.inner.bump(key.tags()).await?;
        }
        self.inner.lookup(key).await
    }

    async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
        let ttl = match self.defect {
            Defect::IgnoresTtl => Duration::from_secs(600),
            _ => ttl,
        };
        self.inner.put(key, value, ttl).await
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        match self.defect {
            Defect::DeleteIsANoOp => Ok(()),
            _ => self.inner.delete(key).await,
        }
    }

    async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
        match self.defect {
            Defect::BumpIsANoOp => Ok(()),
            _ => self.inner.bump(tags).await,
        }
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        self.inner.epoch().await
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        self.inner.bump_epoch().await
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        self.inner.versions(tags).await
    }

    fn new_lease(&self, key: &EntryKey) -> Lease {
        self.inner.new_lease(key)
    }

    async fn acquire_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Result<bool, Error> {
        self.inner.acquire_lease(lease, ttl).await
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
        self.inner.release_lease(lease).await
    }
}

async fn report_on(defect: Defect, checks: &[Check]) -> conformance::Report {
    conformance::run_checks(checks.iter().copied(), || async {
        let inner = MemoryStore::new();
        Subject::new(Broken {
            inner: inner.clone(),
            defect,
        })
        .with_backdoor(inner)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_defect_fails_the_check_that_covers_it() {
    let cases = [
        (Defect::BumpIsANoOp, Check::BumpMissesOnlyItsTags),
        (Defect::BumpIsANoOp, Check::SlowWriterIsUnreachable),
        (Defect::IgnoresTtl, Check::PutTtlExpires),
        (Defect::SeedsEveryLookup, Check::ColdLookupSeedsOnce),
        (Defect::DeleteIsANoOp, Check::DeleteRemovesOneEntry),
    ];
    for (defect, check) in cases {
        // The failing check, and one the defect does not touch beside it
        // (memory leases are local).
        let report = report_on(defect, &[check, Check::LeasesExcludeOrAreLocal]).await;
        let Some(Verdict::Failed(msg)) = report.verdict(check) else {
            panic!("{defect:?} passed {}:\n{report}", check.name());
        };
        assert!(!msg.is_empty());
        assert_eq!(
            report.verdict(Check::LeasesExcludeOrAreLocal),
            Some(&Verdict::Passed),
            "{report}"
        );
        assert!(!report.is_ok());
        assert_eq!((report.passed(), report.failed()), (1, 1));
        let text = report.to_string();
        assert!(
            text.contains(&format!("FAILED  {}: ", check.name())),
            "{text}"
        );
        assert!(text.ends_with("conformance: 1 passed, 0 skipped, 1 failed"));
        let panic = std::panic::catch_unwind(|| report.assert_ok())
            .expect_err("assert_ok passes a failed report");
        let panic = panic.downcast_ref::<String>().expect("a message");
        assert!(panic.contains(check.name()), "{panic}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backdoor_the_eviction_check_is_skipped_and_said_so() {
    let report = conformance::run_checks([Check::EvictedVersionNeverResurrectsEntries], || async {
        Subject::new(MemoryStore::new())
    })
    .await;
    assert!(report.is_ok());
    assert_eq!(report.skipped(), 1);
    let Some(Verdict::Skipped(why)) = report.verdict(Check::EvictedVersionNeverResurrectsEntries)
    else {
        panic!("{report}");
    };
    assert!(why.contains("Backdoor"), "{why}");
    report.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kits_wrappers_pass_the_suite() {
    let (pausable, faulty) = tokio::join!(
        conformance::run(|| async {
            let inner = MemoryStore::new();
            Subject::new(PausableStore::new(inner.clone())).with_backdoor(inner)
        }),
        conformance::run(|| async {
            let inner = MemoryStore::new();
            Subject::new(FaultyStore::new(inner.clone())).with_backdoor(inner)
        }),
    );
    assert_eq!(pausable.passed(), Check::ALL.len(), "{pausable}");
    assert_eq!(faulty.passed(), Check::ALL.len(), "{faulty}");
}

/// On a current-thread runtime too (the race checks start their calls on
/// blocking threads while this thread drives the runtime).
#[tokio::test(flavor = "current_thread")]
async fn the_suite_runs_on_a_current_thread_runtime() {
    let report = conformance::run_checks(
        [
            Check::ConcurrentColdLookupsAgree,
            Check::LookupsRacingABumpNeverUndoIt,
            Check::ConcurrentBumpsAllLand,
        ],
        || async {
            let store = MemoryStore::new();
            Subject::new(store.clone()).with_backdoor(store)
        },
    )
    .await;
    assert_eq!(report.passed(), 3, "{report}");
}

/// The same on Redis, as a user's plain `#[tokio::test]` would run it: the
/// racing threads' Redis calls are driven by this thread's runtime.
#[tokio::test(flavor = "current_thread")]
async fn the_suite_runs_on_redis_on_a_current_thread_runtime() {
    use super::support::stores::{OnRedis, TestStore};
    let report = conformance::run_checks(
        [
            Check::ConcurrentColdLookupsAgree,
            Check::LookupsRacingABumpNeverUndoIt,
            Check::EvictedVersionNeverResurrectsEntries,
        ],
        || async { OnRedis::start().await.subject() },
    )
    .await;
    assert_eq!(report.passed(), 3, "{report}");
}
