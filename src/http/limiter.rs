//! Wrong receipt-verification attempts per client address (docs/protocol.md §6): after
//! [`WRONG_MAX`] wrong attempts within a [`WINDOW`] that began with the first of them, every
//! query from that address is answered `429` until the window is over. Other addresses are
//! not affected. The client address is the TCP peer's (no forwarding header is trusted).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong attempts allowed per address and window.
pub const WRONG_MAX: u32 = 10;
/// The window, from an address's first wrong attempt.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked before expired windows are swept out.
const SWEEP_AT: usize = 10_000;

/// The per-address windows.
#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    /// `true` when `ip` used up its wrong attempts and its window is still open at `now`.
    pub fn limited(&self, ip: IpAddr, now: Instant) -> bool {
        let m = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ip)
            .is_some_and(|(start, n)| *n >= WRONG_MAX && now.duration_since(*start) < WINDOW)
    }

    /// Seconds until `ip`'s window is over (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self, ip: IpAddr, now: Instant) -> u64 {
        let m = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ip).map_or(1, |(start, _)| {
            WINDOW
                .saturating_sub(now.duration_since(*start))
                .as_secs()
                .max(1)
        })
    }

    /// Records a wrong attempt of `ip` at `now`.
    pub fn wrong(&self, ip: IpAddr, now: Instant) {
        let mut m = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= SWEEP_AT {
            m.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let e = m.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_wrong_attempts_then_429_until_the_minute_is_over() {
        let l = Limiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..WRONG_MAX {
            assert!(!l.limited(a, t0), "attempt {i}");
            l.wrong(a, t0 + Duration::from_secs(u64::from(i)));
        }
        assert!(l.limited(a, t0 + Duration::from_secs(30)));
        assert_eq!(l.retry_after_secs(a, t0 + Duration::from_secs(30)), 30);
        assert!(!l.limited(b, t0 + Duration::from_secs(30)), "other address");
        assert!(l.limited(a, t0 + Duration::from_millis(59_999)));
        assert!(!l.limited(a, t0 + WINDOW), "window over");
        l.wrong(a, t0 + WINDOW);
        assert!(!l.limited(a, t0 + WINDOW), "a new window starts at 1");
    }
}
