//! When an app is due: a cron pattern (5 fields, or 6 with seconds first; `@daily`-style
//! aliases) in a time zone, and a jitter that spreads apps over a window.
//!
//! Daylight-saving changes follow croner's documented rules: a fixed time that does not
//! exist on the day clocks spring forward runs right after the gap; a fixed time that
//! happens twice on the day they fall back runs once, at the first.

use std::time::Duration;

use cairn_repo::{Error, Result};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// An app's schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
    jitter: Duration,
    pattern: String,
}

impl Schedule {
    /// Parses `pattern` in `time_zone` (an IANA name; none: the node's), with `jitter`.
    ///
    /// # Errors
    /// When the pattern or the time zone is not valid (the message names it).
    pub fn parse(pattern: &str, time_zone: Option<&str>, jitter: Duration) -> Result<Schedule> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| {
                Error::invalid(format!(
                    "schedule `{pattern}` is not a cron pattern (e.g. `30 2 * * *` or \
                     `@daily`): {e}"
                ))
            })?;
        let tz = match time_zone {
            Some(name) => TimeZone::get(name).map_err(|e| {
                Error::invalid(format!(
                    "time-zone `{name}` is not a known time zone (e.g. Europe/Berlin): {e}"
                ))
            })?,
            None => TimeZone::system(),
        };
        Ok(Schedule {
            cron,
            tz,
            jitter,
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let z = t.to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|n| n.timestamp())
    }

    /// The slots after `after` up to and including `until`: the newest of them and how
    /// many there were (0: none).
    pub fn slots_between(&self, after: Timestamp, until: Timestamp) -> (Option<Timestamp>, u64) {
        let mut newest = None;
        let mut count = 0u64;
        let mut t = after;
        while let Some(n) = self.next_after(t) {
            if n > until {
                break;
            }
            newest = Some(n);
            count += 1;
            t = n;
            // A pattern every second over a long downtime: count no further than needed.
            if count >= 1_000_000 {
                break;
            }
        }
        (newest, count)
    }

    /// When a run for `slot` starts: the slot plus this app's share of the jitter (the same
    /// for the same app, so restarts do not move it).
    pub fn start_of(&self, slot: Timestamp, app: &str) -> Timestamp {
        if self.jitter.is_zero() {
            return slot;
        }
        let h = blake3::hash(app.as_bytes());
        let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default());
        let ms = u64::try_from(self.jitter.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let offset = SignedDuration::from_millis(i64::try_from(n % ms).unwrap_or(0));
        slot.checked_add(offset).unwrap_or(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next_four(s: &Schedule, from: &str) -> Vec<String> {
        let mut t = at(from);
        (0..4)
            .map(|_| {
                t = s.next_after(t).unwrap();
                t.to_string()
            })
            .collect()
    }

    #[test]
    fn daily_in_berlin_across_both_daylight_saving_changes() {
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin"), Duration::ZERO).unwrap();
        // 2026-03-29: clocks go 02:00 → 03:00 CET→CEST; 02:30 does not exist and the run
        // comes right after the gap, at 03:00 CEST (01:00 UTC).
        assert_eq!(
            next_four(&s, "2026-03-27T12:00:00Z"),
            [
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
                "2026-03-31T00:30:00Z",
            ]
        );
        // 2026-10-25: clocks go 03:00 → 02:00 CEST→CET; 02:30 happens twice and the run
        // comes once, at the first (00:30 UTC).
        assert_eq!(
            next_four(&s, "2026-10-23T12:00:00Z"),
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
                "2026-10-27T01:30:00Z",
            ]
        );
    }

    #[test]
    fn aliases_seconds_and_bad_input() {
        let s = Schedule::parse("@daily", Some("UTC"), Duration::ZERO).unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:00:00Z")).unwrap(),
            at("2026-01-02T00:00:00Z")
        );
        let s = Schedule::parse("*/5 * * * * *", Some("UTC"), Duration::ZERO).unwrap();
        assert_eq!(
            s.slots_between(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:17Z")),
            (Some(at("2026-01-01T00:00:15Z")), 3)
        );
        let e = Schedule::parse("every day", None, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`every day` is not a cron pattern"), "{e}");
        let e = Schedule::parse("@daily", Some("Mars/Olympus"), Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`Mars/Olympus`"), "{e}");
    }

    #[test]
    fn jitter_is_within_the_window_and_stable_per_app() {
        let s = Schedule::parse("@hourly", Some("UTC"), Duration::from_secs(600)).unwrap();
        let slot = at("2026-01-01T01:00:00Z");
        let a = s.start_of(slot, "shop");
        assert_eq!(a, s.start_of(slot, "shop"));
        assert!(a >= slot && a < slot + SignedDuration::from_secs(600));
        let spread: std::collections::BTreeSet<_> = (0..20)
            .map(|i| s.start_of(slot, &format!("app-{i}")))
            .collect();
        assert!(spread.len() > 10, "apps are not spread: {spread:?}");
    }
}
