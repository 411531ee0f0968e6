//! The host the proxy keys on is the host the origin answers for: a `Host`
//! header cannot make the origin answer for one host what is then stored
//! under another (cache poisoning).

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower_tagged_cache::{Store, testing::Call};

use super::{HIT, Proxy, STORED, support};

/// The origin's answer is fresh for a minute, so the proxy stores it.
const TARGET: &str = "/page?h=cache-control:max-age%3D60";

/// `GET http://{authority}{TARGET}` (absolute form) with `Host: host`, over a
/// connection of its own; the whole response as text.
async fn absolute_form(proxy: &str, authority: &str, host: &str) -> String {
    let mut conn = TcpStream::connect(proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    let req = format!(
        "GET http://{authority}{TARGET} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut res = String::new();
    conn.read_to_string(&mut res).await.unwrap();
    res
}

async fn the_forwarded_host_is_the_keyed_host<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let first = absolute_form(&p.base, "real.example", "evil.example").await;
    assert!(
        first.contains(&format!("cache-status: {STORED}")),
        "{first}"
    );
    // The origin answered for the host the entry is keyed on.
    assert_eq!(p.origin.last_headers("/page")["host"], "real.example");
    p.stored += 1;
    p.store.until_completed(Call::Put, p.stored).await;

    // Served to real.example, as the origin made it for real.example.
    let real = p.send("GET", TARGET, &[("host", "real.example")], "").await;
    assert_eq!(real.cache, HIT);
    assert!(first.ends_with(std::str::from_utf8(&real.body).unwrap()));
    assert_eq!(p.origin.calls("/page"), 1);
    // evil.example has an entry of its own, made for it.
    let evil = p.send("GET", TARGET, &[("host", "evil.example")], "").await;
    assert_eq!(evil.cache, STORED);
    assert_eq!(p.origin.last_headers("/page")["host"], "evil.example");
    assert_eq!(p.origin.calls("/page"), 2);
}

support::every_store!(the_forwarded_host_is_the_keyed_host);
