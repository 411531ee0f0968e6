//! The `custom_store` example's store, written outside the crate as a user
//! would, passes the exported conformance suite, and its app the staleness
//! check: a change that breaks the example's store fails here.

use super::example::{self as custom_store, CountingStore};
use tower_tagged_cache::{MemoryStore, testing::conformance::Check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_store_passes_every_conformance_check() {
    let report = custom_store::conformance_report().await;
    report.assert_ok();
    assert_eq!(report.skipped(), 0, "{report}");
    assert_eq!(report.passed(), Check::ALL.len(), "{report}");
    // One line per check, then the summary.
    let text = report.to_string();
    assert_eq!(text.lines().count(), Check::ALL.len() + 1, "{text}");
    assert!(text.ends_with(&format!(
        "conformance: {} passed, 0 skipped, 0 failed",
        Check::ALL.len()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_serves_no_stale_read() {
    let store = CountingStore::new(MemoryStore::new());
    let report = custom_store::staleness_report(store.clone()).await.unwrap();
    report.assert_clean();
    assert!(report.hits() > 0, "{report}");
    assert_eq!(report.writes(), 50);
    assert_eq!((report.failed_reads(), report.failed_writes()), (0, 0));
    // Every write went through the example's store: one bump each.
    assert!(
        store.counts().to_string().contains("bump=50 "),
        "{}",
        store.counts()
    );
}
