//! Resident memory of the memory store under a flood of distinct URLs, each
//! a miss that stores its response (issue 11: "resident memory stays within
//! 1.25 times the configured cap").
//!
//! ```text
//! cargo bench --bench memory_flood                  # 500,000 URLs, 64 MiB cap, 512-byte bodies
//! cargo bench --bench memory_flood -- 200000 32 1024
//! ```
//!
//! Prints the process's resident memory (`VmRSS`) before the flood and as it
//! goes, and at the end the growth over the cap. Linux only (reads
//! `/proc/self/status`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt, service_fn};
use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer, tower_layer::Layer};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let args: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let urls = args.first().copied().unwrap_or(500_000);
    let cap = args.get(1).copied().unwrap_or(64) * 1024 * 1024;
    let body_len = args.get(2).copied().unwrap_or(512) as usize;
    // As a server runs: the layer stores a response in a task of its own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = MemoryStore::builder().max_bytes(cap).build();
        let layer = TaggedCacheLayer::new(store.clone())
            .rule(CacheRule::get("/items/{id}").tags(["Item:{id}"]))
            .unwrap();
        let body = Bytes::from(vec![b'x'; body_len]);
        let mut svc = layer.layer(service_fn(move |_req: Request<Full<Bytes>>| {
            let body = body.clone();
            async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
        }));
        let before = rss_bytes();
        println!(
            "flood: {urls} distinct URLs, cap {:.0} MiB, {body_len}-byte bodies; RSS before {:.1} MiB",
            mib(cap),
            mib(before)
        );
        let mut peak = before;
        for i in 0..urls {
            let req = Request::get(format!("http://shop.example/items/{i}"))
                .body(Full::default())
                .unwrap();
            let res = svc.ready().await.unwrap().call(req).await.unwrap();
            res.into_body().collect().await.unwrap();
            if (i + 1) % 100_000 == 0 {
                let rss = rss_bytes();
                peak = peak.max(rss);
                println!(
                    "  after {:>7}: RSS {:7.1} MiB, the store weighs {:6.1} MiB",
                    i + 1,
                    mib(rss),
                    mib(store.weighted_size())
                );
            }
        }
        let rss = rss_bytes();
        peak = peak.max(rss);
        println!(
            "summary: growth {:.1} MiB at the end, {:.1} MiB at peak, for a {:.0} MiB cap: {:.2}x (peak {:.2}x)",
            mib(rss.saturating_sub(before)),
            mib(peak.saturating_sub(before)),
            mib(cap),
            rss.saturating_sub(before) as f64 / cap as f64,
            peak.saturating_sub(before) as f64 / cap as f64
        );
    });
}
