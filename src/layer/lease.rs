//! The fleet-wide lease a single-flight leader holds while it computes
//! (`CacheRule::lease`), given back when it is done.

use std::fmt;

use crate::store::{Guarded, Lease, Store};

/// A lease taken in the store, given back (in a task, through the guarded
/// store) when dropped. A lease that cannot be given back runs out.
pub(crate) struct LeaseGuard<St: Store> {
    store: Guarded<St>,
    lease: Option<Lease>,
}

impl<St: Store> LeaseGuard<St> {
    /// Guards `lease` from before it is asked for: dropped at any point
    /// (an acquire that timed out, a cancelled request, the entry stored),
    /// it gives the lease back, which is a no-op where its token does not
    /// hold it.
    pub(crate) fn new(store: Guarded<St>, lease: Lease) -> Self {
        Self {
            store,
            lease: Some(lease),
        }
    }

    pub(crate) fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Another holds the lease: nothing to give back.
    pub(crate) fn disarm(mut self) {
        self.lease = None;
    }
}

impl<St: Store> fmt::Debug for LeaseGuard<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<St: Store> Drop for LeaseGuard<St> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take().filter(|l| l.parts().is_some()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        rt.spawn(async move {
            let _ = store.release_lease(lease).await;
        });
    }
}
