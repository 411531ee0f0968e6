//! The store conformance suite (DESIGN.md §3-§4) on every store of the
//! crate, and the checks that reach behind Redis.
//!
//! The store-generic checks (the `Store` contract and the hazards every tag
//! cache has met) are the crate's public testing kit,
//! `tower_tagged_cache::testing::conformance`, so that users run them on
//! their own stores. Here each check `foo` becomes the tests `memory::foo`,
//! `redis::foo` and, with the `bb8` feature, `bb8::foo` (the same Redis
//! store through a `bb8-redis` pool), each store with its backdoor.
//!
//! The Redis-only checks reach behind Redis: round trips counted with
//! `MONITOR` (`redis_round_trips`), the script, version bytes and TTLs as
//! Redis holds them (`redis_data`), and leases as `SET NX PX` keys
//! (`leases`).

use crate::support;

mod leases;
mod redis_data;
mod redis_round_trips;

use tower_tagged_cache::{
    Store,
    testing::conformance::{Check, Outcome, Subject},
};

/// For each check of the kit: a function that runs it and wants it passed
/// (not skipped: every store here has a backdoor), run on every store.
macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        $(
            async fn $check<St: Store>(subject: Subject<St>) {
                let check = Check::from_name(stringify!($check))
                    .expect("a check of the testing kit");
                assert_eq!(check.run(subject).await, Outcome::Passed);
            }
        )*

        /// A check added to the kit runs here too.
        #[test]
        fn every_check_of_the_kit_runs_on_every_store() {
            let here = [$(stringify!($check)),*];
            for check in Check::ALL {
                assert!(
                    here.contains(&check.name()),
                    "{} is not run on the crate's stores",
                    check.name()
                );
            }
            assert_eq!(here.len(), Check::ALL.len());
        }

        support::every_store!(subject: $($check),*);
    };
}

suite!(
    cold_lookup_seeds_once,
    put_then_lookup_round_trips,
    delete_removes_one_entry,
    put_ttl_expires,
    bump_misses_only_its_tags,
    bump_of_many_tags_changes_all,
    bump_epoch_misses_everything,
    versions_of_unseen_tag_is_none,
    odd_and_long_instances_stay_distinct,
    evicted_version_never_resurrects_entries,
    concurrent_bumps_all_land,
    concurrent_cold_lookups_agree,
    lookups_racing_a_bump_never_undo_it,
    vary_and_lookalikes_never_share,
    slow_writer_is_unreachable,
    leases_exclude_or_are_local,
);
