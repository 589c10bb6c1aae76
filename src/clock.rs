//! The business clock. Dates and times the gateway writes or files by are in its business
//! time zone, China Standard Time (UTC+8) unless configured otherwise (docs/protocol.md
//! preamble).
//! Tests and fixture replay use a [`FixedClock`] so that response bytes are reproducible.

use chrono::{FixedOffset, NaiveDateTime, Utc};

/// A source of the current local business date-time.
pub trait Clock: Send + Sync + 'static {
    /// The current local date-time in the business time zone.
    fn now(&self) -> NaiveDateTime;
}

/// Wall clock shifted to a fixed UTC offset (default UTC+8).
#[derive(Clone, Debug)]
pub struct SystemClock {
    offset: FixedOffset,
}

impl SystemClock {
    /// A wall clock at `offset_seconds` east of UTC (28,800 s for China Standard Time).
    /// Offsets outside ±24 h fall back to UTC+8.
    pub fn new(offset_seconds: i32) -> SystemClock {
        let offset = FixedOffset::east_opt(offset_seconds)
            .or_else(|| FixedOffset::east_opt(8 * 3600))
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC offset 0 is valid"));
        SystemClock { offset }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new(8 * 3600)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> NaiveDateTime {
        Utc::now().with_timezone(&self.offset).naive_local()
    }
}

/// A clock that always answers the same instant (tests, fixture replay: `serve --clock`).
#[derive(Clone, Debug)]
pub struct FixedClock(pub NaiveDateTime);

impl Clock for FixedClock {
    fn now(&self) -> NaiveDateTime {
        self.0
    }
}

/// A clock that starts at a given instant and runs `speed` times faster than real time
/// (tests and demonstrations: `serve --clock T --clock-speed N`, so that a maintenance
/// window of minutes passes in seconds). `speed` 0 is taken as 1.
#[derive(Clone, Debug)]
pub struct RunningClock {
    start: NaiveDateTime,
    origin: std::time::Instant,
    speed: u32,
}

impl RunningClock {
    /// A clock reading `start` now and advancing `speed` business seconds per real second.
    pub fn new(start: NaiveDateTime, speed: u32) -> RunningClock {
        RunningClock {
            start,
            origin: std::time::Instant::now(),
            speed: speed.max(1),
        }
    }

    /// Real time until business time `t`, or zero when it has passed.
    pub fn real_until(&self, t: NaiveDateTime) -> std::time::Duration {
        let ahead = (t - self.now()).to_std().unwrap_or_default();
        ahead / self.speed
    }
}

impl Clock for RunningClock {
    fn now(&self) -> NaiveDateTime {
        let real = self.origin.elapsed();
        let business = real.saturating_mul(self.speed);
        let step = chrono::Duration::from_std(business).unwrap_or(chrono::Duration::zero());
        self.start
            .checked_add_signed(step)
            .unwrap_or(NaiveDateTime::MAX)
    }
}

/// Parses `yyyy-MM-ddTHH:mm:ss` (the `--clock` flag); `None` for anything else. See
/// [`parse_fixed_checked`] for why a value was refused.
pub fn parse_fixed(s: &str) -> Option<NaiveDateTime> {
    parse_fixed_checked(s).ok()
}

/// Why a fixed clock value (`--clock`, `clock = ...`) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FixedClockError {
    /// Not of the shape `yyyy-MM-ddTHH:mm:ss` (19 characters, digits and separators).
    #[error("must be yyyy-MM-ddTHH:mm:ss, e.g. 2026-11-23T10:00:00")]
    Format,
    /// The shape is right but no such date or time exists (e.g. 2026-02-30, 24:00:00).
    #[error("has the form yyyy-MM-ddTHH:mm:ss but is not a real date and time")]
    NotADateTime,
}

/// Parses `yyyy-MM-ddTHH:mm:ss` (the `--clock` flag), telling a malformed value
/// ([`FixedClockError::Format`]) from a well-formed one that names no real date or time,
/// such as 30 February or hour 24 ([`FixedClockError::NotADateTime`]).
pub fn parse_fixed_checked(s: &str) -> Result<NaiveDateTime, FixedClockError> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(FixedClockError::Format);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").map_err(|_| FixedClockError::NotADateTime)
}

/// A date-time cut into the wire forms: `date` = yyyymmdd as a number, `date_str` = `yyyyMMdd`
/// (8 bytes), `time_str` = `HHmmss` (6 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// yyyymmdd as an integer, e.g. 20261123.
    pub date: u32,
    /// `yyyyMMdd`.
    pub date_str: String,
    /// `HHmmss`.
    pub time_str: String,
}

impl Stamp {
    /// Cuts `t` into wire forms (years outside 0..=9999 are clamped into it). Digits are
    /// written directly: a `strftime` pattern would be parsed again at every call, twice per
    /// request (issue 9, item 3).
    pub fn of(t: NaiveDateTime) -> Stamp {
        use chrono::{Datelike, Timelike};
        let year = u32::try_from(t.year().clamp(0, 9999)).unwrap_or(0);
        let date = year * 10_000 + t.month() * 100 + t.day();
        Stamp {
            date,
            date_str: format!("{date:08}"),
            time_str: format!("{:02}{:02}{:02}", t.hour(), t.minute(), t.second()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_stamps() {
        let t = parse_fixed("2026-11-23T10:00:05").expect("valid");
        let s = Stamp::of(FixedClock(t).now());
        assert_eq!(s.date, 20261123);
        assert_eq!(s.date_str, "20261123");
        assert_eq!(s.time_str, "100005");
        // The direct digits agree with strftime, padding included.
        for text in [
            "0999-01-02T03:04:05",
            "2026-12-31T23:59:59",
            "2027-01-01T00:00:00",
        ] {
            let t = parse_fixed(text).expect("valid");
            let s = Stamp::of(t);
            assert_eq!(s.date_str, t.format("%Y%m%d").to_string());
            assert_eq!(s.time_str, t.format("%H%M%S").to_string());
            assert_eq!(s.date.to_string(), s.date_str.trim_start_matches('0'));
        }
        assert!(parse_fixed("2026-13-01T00:00:00").is_none());
    }

    #[test]
    fn impossible_dates_are_told_from_malformed_values() {
        use FixedClockError::*;
        for bad in [
            "2026-02-30T10:00:00",
            "2026-13-01T00:00:00",
            "2026-11-23T24:00:00",
        ] {
            assert_eq!(parse_fixed_checked(bad), Err(NotADateTime), "{bad}");
        }
        for bad in [
            "",
            "2026-11-23 10:00:00",
            "2026-11-23T10:00",
            "26-11-23T10:00:00",
            "2026-11-23T10:00:00Z",
            "2026/11/23T10:00:00",
            "2026-11-2aT10:00:00",
        ] {
            assert_eq!(parse_fixed_checked(bad), Err(Format), "{bad}");
        }
        assert_eq!(
            parse_fixed_checked("2028-02-29T23:59:59").map(|t| t.to_string()),
            Ok("2028-02-29 23:59:59".to_string())
        );
    }
}
