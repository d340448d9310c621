//! The schedule grammar and due rules of the original (spec §5.3), all in UTC.
//!
//! `every <N>m`, `every <N>h` (N ≥ 0; `every 0m` is always due) and
//! `daily HH:MM[,HH:MM…]`. No extra whitespace is accepted anywhere.

use chrono::{DateTime, NaiveTime, Utc};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Due when at least this many minutes have passed since the last sync.
    Every { minutes: u64 },
    /// Due once after each of these UTC times of day.
    Daily { times: Vec<NaiveTime> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {0:?}: expected 'every <N>m', 'every <N>h' or 'daily HH:MM[,HH:MM...]' (UTC)")]
pub struct InvalidSchedule(pub String);

impl FromStr for Schedule {
    type Err = InvalidSchedule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidSchedule(s.to_string());
        if let Some(rest) = s.strip_prefix("every ") {
            if !rest.is_ascii() {
                return Err(bad());
            }
            let (digits, unit) = rest.split_at(rest.len().saturating_sub(1));
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u64 = digits.parse().map_err(|_| bad())?;
            let minutes = match unit {
                "m" => n,
                "h" => n.checked_mul(60).ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            return Ok(Schedule::Every { minutes });
        }
        if let Some(rest) = s.strip_prefix("daily ") {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b',') {
                return Err(bad());
            }
            let times = rest.split(',').map(|t| parse_hh_mm(t).ok_or_else(bad)).collect::<Result<Vec<_>, _>>()?;
            return Ok(Schedule::Daily { times });
        }
        Err(bad())
    }
}

fn parse_hh_mm(t: &str) -> Option<NaiveTime> {
    let (h, m) = t.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

impl Schedule {
    /// Whether a table last synced at `last_sync` is due at `now`.
    pub fn is_due(&self, last_sync: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        let Some(last) = last_sync else { return true };
        match self {
            Schedule::Every { minutes } => {
                let elapsed = now.signed_duration_since(last);
                elapsed.num_seconds() >= (*minutes as i64).saturating_mul(60)
            }
            Schedule::Daily { times } => times.iter().any(|t| {
                let target = now.date_naive().and_time(*t).and_utc();
                now >= target && last < target
            }),
        }
    }

    /// When a table last synced at `last_sync` next becomes due, seen at `now`: `now` itself
    /// when it is due already.
    pub fn next_due(&self, last_sync: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_due(last_sync, now) {
            return now;
        }
        match self {
            Schedule::Every { minutes } => {
                let last = last_sync.unwrap_or(now);
                last + chrono::Duration::minutes(*minutes as i64)
            }
            // Not due: every time of today has passed with a sync after it, or is still
            // ahead. The next is the first time ahead today, else the first tomorrow.
            Schedule::Daily { times } => {
                let today = now.date_naive();
                let tomorrow = today.succ_opt().unwrap_or(today);
                let ahead = |day: chrono::NaiveDate| times.iter().map(move |t| day.and_time(*t).and_utc());
                ahead(today).filter(|t| *t > now).chain(ahead(tomorrow)).min().unwrap_or(now)
            }
        }
    }
}

/// The scheduler's filter: a missing, blank or malformed schedule lets the table through
/// (the original's `filter_due_tables`); a valid one decides by [`Schedule::is_due`].
pub fn filter_due(schedule: Option<&str>, last_sync: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match schedule.map(str::trim).filter(|s| !s.is_empty()) {
        None => true,
        Some(text) => match text.parse::<Schedule>() {
            Ok(s) => s.is_due(last_sync, now),
            Err(_) => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, h, m, 0).unwrap()
    }

    #[test]
    fn grammar() {
        assert_eq!("every 15m".parse(), Ok(Schedule::Every { minutes: 15 }));
        assert_eq!("every 6h".parse(), Ok(Schedule::Every { minutes: 360 }));
        assert_eq!("every 0m".parse(), Ok(Schedule::Every { minutes: 0 }));
        assert!(matches!("daily 03:00,15:30".parse(), Ok(Schedule::Daily { times }) if times.len() == 2));
        for bad in [
            "",
            "every",
            "every m",
            "every 5",
            "every 5s",
            "every -5m",
            "every  5m",
            "Every 5m",
            " every 5m",
            "every 5m ",
            "daily",
            "daily ",
            "daily 3:00",
            "daily 24:00",
            "daily 03:60",
            "daily 03:00,",
            "daily 03:00, 04:00",
            "hourly",
            "every 1.5h",
            "every 5ü",
            "daily 0ü:00",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn due_rules() {
        let every15: Schedule = "every 15m".parse().unwrap();
        assert!(every15.is_due(None, at(12, 0)));
        assert!(!every15.is_due(Some(at(11, 50)), at(12, 0)));
        assert!(every15.is_due(Some(at(11, 45)), at(12, 0)));
        let always: Schedule = "every 0m".parse().unwrap();
        assert!(always.is_due(Some(at(12, 0)), at(12, 0)));

        let daily: Schedule = "daily 03:00,15:00".parse().unwrap();
        assert!(daily.is_due(Some(at(2, 0)), at(3, 0)));
        assert!(!daily.is_due(Some(at(3, 1)), at(14, 59)));
        assert!(daily.is_due(Some(at(3, 1)), at(15, 0)));
        assert!(!daily.is_due(Some(at(2, 0)), at(2, 59)));
        // Synced yesterday after the last target: nothing due until 03:00 today.
        let yesterday = Utc.with_ymd_and_hms(2026, 3, 9, 23, 0, 0).unwrap();
        assert!(!daily.is_due(Some(yesterday), at(1, 0)));
        assert!(daily.is_due(Some(yesterday), at(3, 0)));
    }

    /// `schedule_cases.tsv`: schedule, last sync (`never`, or text that is not a time),
    /// now, what `Schedule::is_due` says (`due`, `not_due`, or `invalid` when it does not
    /// parse) and whether the scheduler's filter lets the table through. The expectations
    /// were worked out from the contract's regexes and rules, not from this code.
    #[test]
    fn the_contracts_cases() {
        let time = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|d| d.to_utc());
        let mut count = 0;
        for line in include_str!("schedule_cases.tsv").lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let [schedule, last, now, is_due, filter] = f[..] else { panic!("five fields: {line:?}") };
            let (last, now) = (time(last), time(now).expect("now is a time"));
            match (schedule.parse::<Schedule>(), is_due) {
                (Err(_), "invalid") => {}
                (Ok(s), "due" | "not_due") => assert_eq!(s.is_due(last, now), is_due == "due", "{line:?}"),
                (parsed, _) => panic!("{line:?}: parsed as {parsed:?}"),
            }
            assert_eq!(filter_due(Some(schedule), last, now), filter == "yes", "filter: {line:?}");
            count += 1;
        }
        assert!(count >= 86, "{count} cases");
    }

    #[test]
    fn next_due_times() {
        let s: Schedule = "every 15m".parse().unwrap();
        assert_eq!(s.next_due(Some(at(10, 0)), at(10, 5)), at(10, 15));
        assert_eq!(s.next_due(Some(at(10, 0)), at(10, 20)), at(10, 20), "overdue: now");
        assert_eq!(s.next_due(None, at(10, 5)), at(10, 5), "never synced: now");
        let d: Schedule = "daily 06:00,18:00".parse().unwrap();
        assert_eq!(d.next_due(Some(at(6, 30)), at(7, 0)), at(18, 0));
        assert_eq!(d.next_due(Some(at(18, 30)), at(19, 0)), at(6, 0) + chrono::Duration::days(1));
    }

    #[test]
    fn filter_lets_blank_and_malformed_through() {
        assert!(filter_due(None, Some(at(12, 0)), at(12, 0)));
        assert!(filter_due(Some("  "), Some(at(12, 0)), at(12, 0)));
        assert!(filter_due(Some("sometimes"), Some(at(12, 0)), at(12, 0)));
        assert!(!filter_due(Some("every 1h"), Some(at(12, 0)), at(12, 30)));
    }
}
