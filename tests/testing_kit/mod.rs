//! The public testing kit, tested from outside the crate as a user would
//! use it: the conformance suite fails broken stores and passes the kit's
//! own wrappers and the `custom_store` example's store; the staleness
//! checker finds no stale read on correct apps and finds them on broken
//! ones.

use crate::support;

use crate::quickstart_app as quickstart;

#[allow(unreachable_pub)]
#[path = "../../examples/custom_store.rs"]
mod example;

mod custom_store;
mod staleness;
mod suite;
