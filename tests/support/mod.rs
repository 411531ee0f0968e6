//! Test support, one concern per file:
//!
//! - [`stores`]: `every_store!`, the harness that runs a test on every store;
//! - [`redis`]: a private `redis-server` per test (or `REDIS_URL`);
//! - [`fault_proxy`]: a TCP proxy that injects network faults between the
//!   app and Redis (latency, blackhole, resets, a bandwidth cap);
//! - [`monitor`]: what Redis ran (`MONITOR`, `INFO commandstats`);
//! - [`http`]: serving an app on loopback, and a JSON client;
//! - [`origin`]: a scriptable HTTP origin for proxy tests;
//! - [`scripted`]: a response body that plays back scripted frames.
//!
//! Store fakes (pausing, counting, failing) are the crate's public testing
//! kit, `tower_tagged_cache::testing`.
#![allow(dead_code, unreachable_pub)]

pub mod fault_proxy;
pub mod http;
pub mod monitor;
pub mod origin;
pub mod redis;
pub mod scripted;
pub mod stores;

#[allow(unused_imports)]
pub(crate) use self::stores::every_store;
#[allow(unused_imports)]
pub use self::{
    fault_proxy::FaultProxy,
    http::{JsonClient, JsonReply, serve},
    redis::Redis,
};

/// Logs to the test output when `RUST_LOG` is set.
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
