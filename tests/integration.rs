//! Every integration test of the library, in one test binary: one module per
//! concern, as the files and directories beside this one. One binary links
//! and monomorphises the layer once, where fifteen did it fifteen times (the
//! first `cargo test` spent most of its build there).

#[path = "support/mod.rs"]
mod support;

// The examples the tests drive, each compiled once.
#[allow(unreachable_pub)]
#[path = "../examples/reverse_proxy.rs"]
mod proxy_app;
#[allow(unreachable_pub)]
#[path = "../examples/quickstart/quickstart.rs"]
mod quickstart_app;

#[path = "admin.rs"]
mod admin;
#[path = "cli.rs"]
mod cli;
#[path = "conformance/mod.rs"]
mod conformance;
#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
#[path = "durable_outbox.rs"]
mod durable_outbox;
#[path = "failures/mod.rs"]
mod failures;
#[path = "http.rs"]
mod http_only;
#[path = "layer/mod.rs"]
mod layer;
#[path = "macros.rs"]
mod macros;
#[path = "metrics.rs"]
mod metrics;
#[path = "privacy.rs"]
mod privacy;
#[path = "quickstart.rs"]
mod quickstart;
#[path = "request_tags.rs"]
mod request_tags;
#[path = "reverse_proxy/mod.rs"]
mod reverse_proxy;
#[path = "route_rules.rs"]
mod route_rules;
#[path = "testing_kit/mod.rs"]
mod testing_kit;
#[path = "values.rs"]
mod values;
