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
    /// Nanoseconds since the Unix epoch (a `u64` holds them until 2554).
    wall_ns: u64,
    at: std::time::Instant,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        wall_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        at: std::time::Instant::now(),
    })
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch, now, on tokio's clock. In whole
/// nanoseconds first, then floored, so that two readings an exact number of
/// milliseconds apart always differ by exactly that many.
pub(crate) fn now_ms() -> u64 {
    let anchor = anchor();
    let now = Instant::now().into_std();
    let ns = match now.checked_duration_since(anchor.at) {
        Some(ahead) => anchor.wall_ns.saturating_add(nanos(ahead)),
        // A paused runtime's clock may stand before the anchor was read.
        None => anchor.wall_ns.saturating_sub(nanos(anchor.at - now)),
    };
    ns / 1_000_000
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
