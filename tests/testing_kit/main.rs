//! The public testing kit, tested from outside the crate as a user would
//! use it: the conformance suite fails broken stores and passes the kit's
//! own wrappers; the staleness checker finds no stale read on correct apps
//! and finds them on broken ones.

#[path = "../support/mod.rs"]
mod support;

#[allow(unreachable_pub)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

mod staleness;
mod suite;
