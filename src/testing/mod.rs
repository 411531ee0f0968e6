//! A testing kit for stores and for services behind the layer (feature
//! `testing`).
//!
//! - [`conformance`]: the store conformance suite this crate's stores pass,
//!   to run on your own [`Store`](crate::Store).
//! - [`PausableStore`]: wraps a real store, counts every call and can hold
//!   calls of a kind at a [`Gate`] until the test lets them through, to
//!   await a background write instead of sleeping, or to pause a race at a
//!   chosen point.
//! - [`FaultyStore`]: wraps a real store and fails calls on a schedule
//!   (errors, timeouts, hangs), to test the failure policy.
//! - [`StalenessCheck`]: drives a layered service with concurrent reads and
//!   writes and reports every read that returned data older than a write
//!   that had already returned.
//! - [`clock`]: the crate's clock moves with tokio's, so a paused tokio
//!   clock moves freshness, `Age` and breaker cooldowns.
//!
//! The two store wrappers are fakes for injecting faults and pausing races:
//! every call they let through reaches the real store they wrap.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_tagged_cache::Error> {
//! use tower_tagged_cache::{
//!     MemoryStore, Store, Tag,
//!     testing::{Call, Fault, FaultyStore},
//! };
//!
//! let store = FaultyStore::new(MemoryStore::new());
//! store.fail_next(Call::Bump, 1, Fault::Error);
//! let tags = [Tag::new("User", 1)?];
//! assert!(store.bump(&tags).await.is_err());
//! assert!(store.bump(&tags).await.is_ok());
//! # Ok(()) }
//! ```

mod call;
pub mod clock;
pub mod conformance;
mod faulty;
mod pausable;
mod staleness;

#[doc(inline)]
pub use self::{
    call::{Call, Calls},
    faulty::{Fault, FaultyStore},
    pausable::{Gate, PausableStore},
    staleness::{StaleRead, StalenessCheck, StalenessReport},
};
