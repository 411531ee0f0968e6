//! The crate's one clock: milliseconds since the Unix epoch that advance with
//! tokio's clock.
//!
//! The wall clock is read once, the first time the clock is asked; from then
//! on time moves with [`tokio::time::Instant`]. Freshness, `Age`, stored-at
//! times, TTLs checked on read and breaker cooldowns all read this clock, so
//! a test that pauses tokio's clock (`tokio::time::pause`, `advance`) moves
//! them all without sleeping, and a step of the system clock (NTP) does not
//! make a stored response jump in age.

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;

/// The wall clock and tokio's clock, read together once.
struct Anchor {
    wall_ns: i128,
    at: std::time::Instant,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        wall_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128),
        at: std::time::Instant::now(),
    })
}

/// Milliseconds since the Unix epoch, now, on tokio's clock.
pub(crate) fn now_ms() -> u64 {
    let anchor = anchor();
    let now = Instant::now().into_std();
    // A paused runtime's clock may stand before the anchor was read.
    let since_anchor = match now.checked_duration_since(anchor.at) {
        Some(ahead) => ahead.as_nanos() as i128,
        None => -((anchor.at - now).as_nanos() as i128),
    };
    let ms = (anchor.wall_ns + since_anchor).div_euclid(1_000_000);
    u64::try_from(ms).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn close_to_the_wall_clock() {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now_ms().abs_diff(wall) < 5_000);
    }

    #[tokio::test(start_paused = true)]
    async fn advances_with_a_paused_tokio_clock() {
        let before = now_ms();
        tokio::time::advance(Duration::from_secs(90)).await;
        let after = now_ms();
        assert!(
            (90_000..91_000).contains(&(after - before)),
            "{before} -> {after}"
        );
    }
}
