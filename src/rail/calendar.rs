//! Maintenance windows of the payment rail (docs/protocol.md §3.1): the calendar the
//! dispatcher consults before sending an instruction.
//!
//! A window closes real-time payments to one payee bank (keyed by the first 3 digits of the
//! payee bank code, its CNAPS head-office code), to the gateway's own bank (`self`, used by
//! same-bank `7002` transfers) or to every bank (`all`). It has a start and an end to the
//! minute in business time, start included, end excluded; an end on a later date than its
//! start crosses midnight. The calendar is part of the configuration (`[[rail.maintenance]]`,
//! docs/configuration.md) and is reloaded on SIGHUP.

use std::sync::{Arc, RwLock};

use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::ledger::Instruction;

/// Key of same-bank (`7002`) transfers.
pub const SELF_BANK: &str = "self";
/// Key of a window closing the whole rail.
pub const ALL_BANKS: &str = "all";

/// One window as written in the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `NNN` (first 3 digits of the payee bank code), `self` or `all`.
    pub bank: String,
    /// First minute of the window, business time, `yyyy-MM-ddTHH:mm` (included).
    pub start: String,
    /// End of the window, business time, `yyyy-MM-ddTHH:mm` (excluded; after `start`).
    pub end: String,
}

/// A checked window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bank key: three digits, [`SELF_BANK`] or [`ALL_BANKS`].
    pub bank: String,
    /// Start, included.
    pub start: NaiveDateTime,
    /// End, excluded.
    pub end: NaiveDateTime,
}

/// Parses `yyyy-MM-ddTHH:mm`.
fn parse_minute(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 16 {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").ok()
}

/// Whether `bank` is a valid window key.
pub fn valid_bank_key(bank: &str) -> bool {
    bank == SELF_BANK
        || bank == ALL_BANKS
        || (bank.len() == 3 && bank.bytes().all(|b| b.is_ascii_digit()))
}

impl WindowConfig {
    /// Checks the window. Errors: a message naming what is wrong (bank key, time form,
    /// end not after start).
    pub fn check(&self) -> Result<Window, String> {
        if !valid_bank_key(&self.bank) {
            return Err(format!(
                "rail.maintenance bank {:?} must be 3 digits, \"self\" or \"all\"",
                self.bank
            ));
        }
        let start = parse_minute(&self.start).ok_or_else(|| {
            format!(
                "rail.maintenance start {:?} must be yyyy-MM-ddTHH:mm",
                self.start
            )
        })?;
        let end = parse_minute(&self.end).ok_or_else(|| {
            format!(
                "rail.maintenance end {:?} must be yyyy-MM-ddTHH:mm",
                self.end
            )
        })?;
        if end <= start {
            return Err(format!(
                "rail.maintenance window {} .. {} ends before it starts",
                self.start, self.end
            ));
        }
        Ok(Window {
            bank: self.bank.clone(),
            start,
            end,
        })
    }
}

/// The windows in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    windows: Vec<Window>,
}

/// A calendar shared by the dispatcher and the reloader (SIGHUP).
pub type SharedCalendar = Arc<RwLock<Calendar>>;

impl Calendar {
    /// A calendar of checked windows. Errors: the first window's message that does not check.
    pub fn from_config(windows: &[WindowConfig]) -> Result<Calendar, String> {
        Ok(Calendar {
            windows: windows
                .iter()
                .map(WindowConfig::check)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether there is no window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// When an instruction to `bank` may be sent if it is `now`: `None` when no window is
    /// open, else the end of the window (chained through windows that overlap or touch it,
    /// and through rail-wide windows).
    pub fn held_until(&self, bank: &str, now: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = now;
        // Each step moves t strictly later to a window end, so it ends after at most as many
        // steps as there are windows.
        for _ in 0..=self.windows.len() {
            let next = self
                .windows
                .iter()
                .filter(|w| w.bank == bank || w.bank == ALL_BANKS)
                .filter(|w| w.start <= t && t < w.end)
                .map(|w| w.end)
                .max();
            match next {
                Some(end) => t = end,
                None => break,
            }
        }
        (t > now).then_some(t)
    }
}

/// The window key of an instruction: [`SELF_BANK`] for `7002`, else the first 3 characters
/// of the payee bank code (the whole code when shorter).
pub fn bank_key(i: &Instruction) -> String {
    key_of(i.trade_code, &i.payee_bank)
}

/// The window key of a transfer with `trade_code` to `payee_bank` (see [`bank_key`]).
pub fn key_of(trade_code: &str, payee_bank: &str) -> String {
    if trade_code == "7002" {
        SELF_BANK.to_owned()
    } else {
        payee_bank.trim().chars().take(3).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(bank: &str, start: &str, end: &str) -> WindowConfig {
        WindowConfig {
            bank: bank.into(),
            start: start.into(),
            end: end.into(),
        }
    }

    fn t(s: &str) -> NaiveDateTime {
        parse_minute(s).unwrap()
    }

    #[test]
    fn start_included_end_excluded_across_midnight() {
        let c = Calendar::from_config(&[w("313", "2026-11-24T23:55", "2026-11-25T02:05")]).unwrap();
        assert_eq!(c.held_until("313", t("2026-11-24T23:54")), None);
        assert_eq!(
            c.held_until("313", t("2026-11-24T23:55")),
            Some(t("2026-11-25T02:05"))
        );
        assert_eq!(
            c.held_until("313", t("2026-11-25T00:30")),
            Some(t("2026-11-25T02:05"))
        );
        assert_eq!(c.held_until("313", t("2026-11-25T02:05")), None);
        assert_eq!(c.held_until("102", t("2026-11-25T00:30")), None);
    }

    #[test]
    fn chained_and_rail_wide_windows() {
        let c = Calendar::from_config(&[
            w("102", "2026-11-24T10:00", "2026-11-24T10:30"),
            w("all", "2026-11-24T10:30", "2026-11-24T11:00"),
        ])
        .unwrap();
        assert_eq!(
            c.held_until("102", t("2026-11-24T10:10")),
            Some(t("2026-11-24T11:00"))
        );
        assert_eq!(
            c.held_until("self", t("2026-11-24T10:40")),
            Some(t("2026-11-24T11:00"))
        );
        assert_eq!(c.held_until("self", t("2026-11-24T10:10")), None);
    }

    #[test]
    fn bad_windows_are_named() {
        assert!(
            Calendar::from_config(&[w("31", "2026-11-24T10:00", "2026-11-24T11:00")])
                .unwrap_err()
                .contains("bank")
        );
        assert!(
            Calendar::from_config(&[w("313", "2026-11-24 10:00", "2026-11-24T11:00")])
                .unwrap_err()
                .contains("start")
        );
        assert!(
            Calendar::from_config(&[w("313", "2026-11-24T10:00", "2026-11-24T10:00")])
                .unwrap_err()
                .contains("ends before")
        );
    }
}
