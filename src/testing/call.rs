//! Store calls by name, and sets of them, for the wrappers that count, hold
//! or fail them.

use std::{fmt, ops::BitOr};

/// One method of [`Store`](crate::Store) that reaches the store
/// (`new_lease` only names a lease and is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Call {
    /// [`Store::lookup`](crate::Store::lookup).
    Lookup,
    /// [`Store::put`](crate::Store::put).
    Put,
    /// [`Store::delete`](crate::Store::delete).
    Delete,
    /// [`Store::bump`](crate::Store::bump).
    Bump,
    /// [`Store::epoch`](crate::Store::epoch).
    Epoch,
    /// [`Store::bump_epoch`](crate::Store::bump_epoch).
    BumpEpoch,
    /// [`Store::versions`](crate::Store::versions).
    Versions,
    /// [`Store::acquire_lease`](crate::Store::acquire_lease).
    AcquireLease,
    /// [`Store::release_lease`](crate::Store::release_lease).
    ReleaseLease,
}

impl Call {
    /// Every call, in declaration order.
    pub const ALL: [Call; 9] = [
        Call::Lookup,
        Call::Put,
        Call::Delete,
        Call::Bump,
        Call::Epoch,
        Call::BumpEpoch,
        Call::Versions,
        Call::AcquireLease,
        Call::ReleaseLease,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A set of [`Call`]s: `Calls::ALL`, one call (`Call::Put.into()`), or
/// several (`Call::Lookup | Call::Put`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Calls(u16);

impl Calls {
    /// Every call.
    pub const ALL: Calls = Calls((1 << Call::ALL.len()) - 1);

    /// No call.
    pub const NONE: Calls = Calls(0);

    /// Whether `call` is in the set.
    pub fn contains(self, call: Call) -> bool {
        self.0 & (1 << call.index()) != 0
    }
}

impl From<Call> for Calls {
    fn from(call: Call) -> Self {
        Calls(1 << call.index())
    }
}

impl BitOr for Calls {
    type Output = Calls;

    fn bitor(self, rhs: Calls) -> Calls {
        Calls(self.0 | rhs.0)
    }
}

impl BitOr<Call> for Calls {
    type Output = Calls;

    fn bitor(self, rhs: Call) -> Calls {
        self | Calls::from(rhs)
    }
}

impl BitOr for Call {
    type Output = Calls;

    fn bitor(self, rhs: Call) -> Calls {
        Calls::from(self) | rhs
    }
}

impl fmt::Debug for Calls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(Call::ALL.iter().filter(|c| self.contains(**c)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_hold_what_was_put_in() {
        let set = Call::Lookup | Call::Put;
        assert!(set.contains(Call::Lookup) && set.contains(Call::Put));
        assert!(!set.contains(Call::Bump));
        assert!(Call::ALL.iter().all(|c| Calls::ALL.contains(*c)));
        assert!(Call::ALL.iter().all(|c| !Calls::NONE.contains(*c)));
        assert_eq!(format!("{:?}", Calls::from(Call::Bump)), "{Bump}");
    }
}
