//! The centre's working calendar: which local days are working days, which hours of
//! them are working hours, and how to add *working* time to an instant.
//!
//! Everything is reckoned in the centre's local time, given as a fixed UTC offset
//! (`utc_offset = "+08:00"`; China has no daylight saving time, so a fixed offset is
//! exact). Instants going in and out are UTC.
//!
//! A local date is a working day when
//!
//! 1. it is listed in `holidays` → **not** a working day (a holiday wins over its
//!    weekday);
//! 2. else it is listed in `extra_workdays` → a working day, whatever its weekday (the
//!    make-up days, 调休, that move a weekend day into a holiday week);
//! 3. else its weekday is one of `working_days`.
//!
//! A date may not be both a holiday and an extra workday: [`CalendarConfig::compile`]
//! rejects that, so the order of the first two rules never matters in practice.
//!
//! Working time is `[work_start, work_end)` on every working day; overnight shifts
//! (`work_end` before `work_start`) are not supported.
//!
//! [`Calendar::add_working`] counts only working time:
//!
//! * a zero (or negative) duration returns the starting instant unchanged, even
//!   outside working hours;
//! * from before `work_start` on a working day the clock starts at `work_start`; from
//!   `work_end` or later, or on a non-working day, it starts at the next working day's
//!   `work_start`;
//! * time that runs out exactly at `work_end` ends there, not at the next morning.
//!
//! So with 09:00–18:00 Monday to Friday, Friday 17:00 plus 2 h is Monday 10:00, and
//! Friday 20:00 plus one working day (9 h) is Monday 18:00.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// How many days in a row [`Calendar::add_working`] looks for a working day before it
/// gives up and falls back to wall-clock time (ten years and a bit).
const MAX_DAYS_WITHOUT_WORK: u32 = 3660;

/// Weekday names as `working_days` spells them, Monday first (the index is
/// `Weekday::num_days_from_monday`).
const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The working calendar as configured; [`CalendarConfig::compile`] checks it and turns
/// it into a [`Calendar`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// The centre's local time as a fixed UTC offset, `"+08:00"` (China has no DST).
    /// Written `+HH:MM` or `-HH:MM`.
    pub utc_offset: String,
    /// When the working day starts, local `"HH:MM"`.
    pub work_start: String,
    /// When the working day ends, local `"HH:MM"`; must be after `work_start`.
    pub work_end: String,
    /// The weekdays that work, `mon` … `sun` (case-insensitive); not empty.
    pub working_days: Vec<String>,
    /// Local dates, `"YYYY-MM-DD"`, that do not work even on a working weekday.
    pub holidays: Vec<String>,
    /// Local dates, `"YYYY-MM-DD"`, that work even if their weekday does not (Chinese
    /// make-up days, 调休).
    pub extra_workdays: Vec<String>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            utc_offset: "+08:00".to_owned(),
            work_start: "09:00".to_owned(),
            work_end: "18:00".to_owned(),
            working_days: WEEKDAY_NAMES[..5].iter().map(|d| (*d).to_owned()).collect(),
            holidays: Vec::new(),
            extra_workdays: Vec::new(),
        }
    }
}

impl CalendarConfig {
    /// Checks the configuration and compiles it into a [`Calendar`].
    ///
    /// Every problem is reported, each as `(key, message)` with the key relative to this
    /// section: `"utc_offset"`, `"work_end"`, `"working_days[3]"`, `"holidays[2]"`, …
    pub fn compile(&self) -> Result<Calendar, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| problems.push((key, message));

        let offset = parse_offset(&self.utc_offset);
        if offset.is_none() {
            problem(
                "utc_offset".to_owned(),
                format!(
                    "{:?} is not a UTC offset; write it as +HH:MM or -HH:MM, e.g. \"+08:00\"",
                    self.utc_offset
                ),
            );
        }

        let start =
            parse_hh_mm(&self.work_start).and_then(|(h, m)| NaiveTime::from_hms_opt(h, m, 0));
        if start.is_none() {
            problem(
                "work_start".to_owned(),
                format!(
                    "{:?} is not a time of day as HH:MM, e.g. \"09:00\"",
                    self.work_start
                ),
            );
        }
        let end = parse_hh_mm(&self.work_end).and_then(|(h, m)| NaiveTime::from_hms_opt(h, m, 0));
        if end.is_none() {
            problem(
                "work_end".to_owned(),
                format!(
                    "{:?} is not a time of day as HH:MM, e.g. \"18:00\"",
                    self.work_end
                ),
            );
        }
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                problem(
                    "work_end".to_owned(),
                    format!(
                        "{:?} must be after work_start {:?} (overnight shifts are not supported)",
                        self.work_end, self.work_start
                    ),
                );
            }
        }

        let mut weekdays = [false; 7];
        if self.working_days.is_empty() {
            problem(
                "working_days".to_owned(),
                "at least one weekday is needed, e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]"
                    .to_owned(),
            );
        }
        for (i, name) in self.working_days.iter().enumerate() {
            let lower = name.to_ascii_lowercase();
            match WEEKDAY_NAMES.iter().position(|d| *d == lower) {
                Some(index) => weekdays[index] = true,
                None => problem(
                    format!("working_days[{i}]"),
                    format!("{name:?} is not a weekday; use mon, tue, wed, thu, fri, sat or sun"),
                ),
            }
        }

        let holidays = parse_dates("holidays", &self.holidays, &mut problem);
        let extra_workdays = parse_dates("extra_workdays", &self.extra_workdays, &mut problem);
        for (i, text) in self.extra_workdays.iter().enumerate() {
            if parse_date(text).is_some_and(|date| holidays.contains(&date)) {
                problem(
                    format!("extra_workdays[{i}]"),
                    format!("{text:?} is also listed in holidays; a date is one or the other"),
                );
            }
        }

        match (offset, start, end) {
            (Some(offset), Some(start), Some(end)) if problems.is_empty() => Ok(Calendar {
                offset,
                start,
                end,
                weekdays,
                holidays,
                extra_workdays,
            }),
            _ => Err(problems),
        }
    }
}

/// A checked working calendar; see the module documentation for its rules.
#[derive(Debug, Clone)]
pub struct Calendar {
    offset: FixedOffset,
    start: NaiveTime,
    end: NaiveTime,
    /// Indexed by `Weekday::num_days_from_monday`.
    weekdays: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
    extra_workdays: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// The centre's local time offset from UTC.
    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    /// The local calendar date at instant `t`.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.local(t).date()
    }

    /// Whether the local `date` is a working day: not a holiday, and either an extra
    /// workday or on a working weekday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.holidays.contains(&date) {
            false
        } else if self.extra_workdays.contains(&date) {
            true
        } else {
            self.weekdays[date.weekday().num_days_from_monday() as usize]
        }
    }

    /// Whether `t` falls in working hours, `[work_start, work_end)`, on a working day.
    pub fn is_working_time(&self, t: DateTime<Utc>) -> bool {
        let local = self.local(t);
        self.is_working_day(local.date()) && self.start <= local.time() && local.time() < self.end
    }

    /// Length of one working day (`work_end - work_start`).
    pub fn day_length(&self) -> Duration {
        self.end - self.start
    }

    /// `from` plus `d` of working time: only time inside working hours on working days
    /// counts. A zero or negative `d` returns `from` unchanged.
    ///
    /// Should no working day turn up within 3660 days in a row (possible only with an
    /// absurd list of holidays), this falls back to wall-clock time, `from + d`.
    pub fn add_working(&self, from: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
        if d <= Duration::zero() {
            return from;
        }
        let mut remaining = d;
        let mut cursor = self.local(from);
        let mut idle_days = 0;
        while idle_days <= MAX_DAYS_WITHOUT_WORK {
            let date = cursor.date();
            if self.is_working_day(date) {
                let begin = cursor.max(date.and_time(self.start));
                let end = date.and_time(self.end);
                if begin < end {
                    idle_days = 0;
                    let available = end - begin;
                    if remaining <= available {
                        return self.to_utc(begin + remaining);
                    }
                    remaining -= available;
                } else {
                    idle_days += 1;
                }
            } else {
                idle_days += 1;
            }
            match date.succ_opt() {
                Some(next) => cursor = next.and_time(NaiveTime::MIN),
                None => break, // the end of chrono's calendar
            }
        }
        from.checked_add_signed(d)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `from` plus `n` working days, each [`day_length`](Calendar::day_length) of
    /// working time: `add_working(from, n * day_length)`.
    pub fn add_working_days(&self, from: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        let total = i32::try_from(n)
            .ok()
            .and_then(|n| self.day_length().checked_mul(n))
            .unwrap_or(Duration::MAX);
        self.add_working(from, total)
    }

    /// `t` on the local wall clock.
    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.offset).naive_local()
    }

    /// A local wall-clock time back to UTC; a fixed offset makes this exact. (Only at
    /// the very end of chrono's calendar can it overflow; that saturates.)
    fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        local
            .checked_sub_signed(Duration::seconds(i64::from(self.offset.local_minus_utc())))
            .map_or(DateTime::<Utc>::MAX_UTC, |utc| utc.and_utc())
    }
}

/// `"HH:MM"` with two digits each, hours 00–23 and minutes 00–59.
fn parse_hh_mm(text: &str) -> Option<(u32, u32)> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |s: &str| -> Option<u32> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    (hours < 24 && minutes < 60).then_some((hours, minutes))
}

/// `"+HH:MM"` or `"-HH:MM"`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = parse_hh_mm(rest)?;
    let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    FixedOffset::east_opt(sign * seconds)
}

/// `"YYYY-MM-DD"`, strictly: four, two and two digits.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let shape_ok = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if shape_ok {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
    } else {
        None
    }
}

/// Parses a list of dates, reporting each bad one as `key[i]`.
fn parse_dates(
    key: &str,
    texts: &[String],
    problem: &mut impl FnMut(String, String),
) -> BTreeSet<NaiveDate> {
    let mut dates = BTreeSet::new();
    for (i, text) in texts.iter().enumerate() {
        match parse_date(text) {
            Some(date) => {
                dates.insert(date);
            }
            None => problem(
                format!("{key}[{i}]"),
                format!("{text:?} is not a date as YYYY-MM-DD, e.g. \"2026-10-01\""),
            ),
        }
    }
    dates
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// The default calendar: 09:00–18:00 Monday to Friday at +08:00.
    fn default_calendar() -> Calendar {
        CalendarConfig::default()
            .compile()
            .expect("the default calendar is valid")
    }

    fn calendar_with(holidays: &[&str], extra_workdays: &[&str]) -> Calendar {
        CalendarConfig {
            holidays: holidays.iter().map(|d| (*d).to_owned()).collect(),
            extra_workdays: extra_workdays.iter().map(|d| (*d).to_owned()).collect(),
            ..CalendarConfig::default()
        }
        .compile()
        .expect("valid calendar")
    }

    /// A local (+08:00) wall-clock time as UTC.
    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600)
            .expect("valid offset")
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid local time")
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn keys(problems: &[(String, String)]) -> Vec<&str> {
        problems.iter().map(|(key, _)| key.as_str()).collect()
    }

    // 2026-11-20 is a Friday, 2026-11-21/22 the weekend, 2026-11-23 a Monday.

    #[test]
    fn default_is_nine_to_six_weekdays_at_plus_eight() {
        let cal = default_calendar();
        assert_eq!(cal.offset(), FixedOffset::east_opt(8 * 3600).unwrap());
        assert_eq!(cal.day_length(), Duration::hours(9));
        assert!(cal.is_working_day(date(2026, 11, 20)));
        assert!(!cal.is_working_day(date(2026, 11, 21)));
        assert!(!cal.is_working_day(date(2026, 11, 22)));
        assert!(cal.is_working_day(date(2026, 11, 23)));
    }

    #[test]
    fn local_date_follows_the_offset() {
        let cal = default_calendar();
        // 2026-11-22 17:30 UTC is 2026-11-23 01:30 in Beijing.
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 17, 30, 0).unwrap();
        assert_eq!(cal.local_date(t), date(2026, 11, 23));
    }

    #[test]
    fn working_time_is_half_open() {
        let cal = default_calendar();
        assert!(!cal.is_working_time(local(2026, 11, 23, 8, 59)));
        assert!(cal.is_working_time(local(2026, 11, 23, 9, 0)));
        assert!(cal.is_working_time(local(2026, 11, 23, 17, 59)));
        assert!(!cal.is_working_time(local(2026, 11, 23, 18, 0)));
        assert!(!cal.is_working_time(local(2026, 11, 21, 10, 0)));
    }

    #[test]
    fn friday_afternoon_plus_one_day_is_monday_afternoon() {
        let cal = default_calendar();
        assert_eq!(
            cal.add_working_days(local(2026, 11, 20, 15, 0), 1),
            local(2026, 11, 23, 15, 0)
        );
    }

    #[test]
    fn after_closing_plus_one_day_ends_at_the_next_closing() {
        let cal = default_calendar();
        assert_eq!(
            cal.add_working_days(local(2026, 11, 20, 20, 0), 1),
            local(2026, 11, 23, 18, 0)
        );
    }

    #[test]
    fn exactly_at_closing_counts_from_the_next_working_day() {
        let cal = default_calendar();
        assert_eq!(
            cal.add_working_days(local(2026, 11, 20, 18, 0), 1),
            local(2026, 11, 23, 18, 0)
        );
        assert_eq!(
            cal.add_working(local(2026, 11, 23, 18, 0), Duration::minutes(1)),
            local(2026, 11, 24, 9, 1)
        );
    }

    #[test]
    fn time_running_out_at_closing_ends_at_closing() {
        let cal = default_calendar();
        assert_eq!(
            cal.add_working(local(2026, 11, 23, 16, 0), Duration::hours(2)),
            local(2026, 11, 23, 18, 0)
        );
        assert_eq!(
            cal.add_working_days(local(2026, 11, 23, 9, 0), 1),
            local(2026, 11, 23, 18, 0)
        );
    }

    #[test]
    fn weekend_plus_one_day_is_monday_closing() {
        let cal = default_calendar();
        for t in [
            local(2026, 11, 21, 0, 0),
            local(2026, 11, 21, 12, 0),
            local(2026, 11, 22, 23, 59),
        ] {
            assert_eq!(cal.add_working_days(t, 1), local(2026, 11, 23, 18, 0));
        }
    }

    #[test]
    fn before_opening_starts_at_opening() {
        let cal = default_calendar();
        assert_eq!(
            cal.add_working(local(2026, 11, 23, 8, 0), Duration::hours(2)),
            local(2026, 11, 23, 11, 0)
        );
        assert_eq!(
            cal.add_working_days(local(2026, 11, 23, 0, 0), 1),
            local(2026, 11, 23, 18, 0)
        );
    }

    #[test]
    fn hours_carry_over_the_weekend() {
        let cal = default_calendar();
        assert_eq!(
            cal.add_working(local(2026, 11, 20, 17, 0), Duration::hours(2)),
            local(2026, 11, 23, 10, 0)
        );
    }

    #[test]
    fn zero_returns_from_unchanged() {
        let cal = default_calendar();
        let saturday = local(2026, 11, 21, 3, 4);
        assert_eq!(cal.add_working(saturday, Duration::zero()), saturday);
        assert_eq!(cal.add_working_days(saturday, 0), saturday);
        assert_eq!(cal.add_working(saturday, Duration::hours(-3)), saturday);
    }

    #[test]
    fn several_days_skip_weekends() {
        let cal = default_calendar();
        // Wednesday 10:00 + 5 working days → next Wednesday 10:00.
        assert_eq!(
            cal.add_working_days(local(2026, 11, 18, 10, 0), 5),
            local(2026, 11, 25, 10, 0)
        );
    }

    #[test]
    fn a_holiday_on_monday_moves_to_tuesday() {
        let cal = calendar_with(&["2026-11-23"], &[]);
        assert!(!cal.is_working_day(date(2026, 11, 23)));
        assert_eq!(
            cal.add_working_days(local(2026, 11, 20, 15, 0), 1),
            local(2026, 11, 24, 15, 0)
        );
        assert_eq!(
            cal.add_working(local(2026, 11, 20, 17, 0), Duration::hours(2)),
            local(2026, 11, 24, 10, 0)
        );
    }

    #[test]
    fn national_day_week_is_skipped() {
        let holidays = [
            "2026-10-01",
            "2026-10-02",
            "2026-10-03",
            "2026-10-04",
            "2026-10-05",
            "2026-10-06",
            "2026-10-07",
        ];
        let cal = calendar_with(&holidays, &[]);
        // Wednesday 2026-09-30 16:00 → Thursday 2026-10-08 16:00.
        assert_eq!(
            cal.add_working_days(local(2026, 9, 30, 16, 0), 1),
            local(2026, 10, 8, 16, 0)
        );
        // Accepted during the holiday: the clock starts on 10-08.
        assert_eq!(
            cal.add_working_days(local(2026, 10, 3, 11, 0), 1),
            local(2026, 10, 8, 18, 0)
        );
    }

    #[test]
    fn an_extra_workday_on_saturday_counts() {
        let cal = calendar_with(&[], &["2026-11-21"]);
        assert!(cal.is_working_day(date(2026, 11, 21)));
        assert!(cal.is_working_time(local(2026, 11, 21, 10, 0)));
        assert!(!cal.is_working_day(date(2026, 11, 22)));
        assert_eq!(
            cal.add_working_days(local(2026, 11, 20, 15, 0), 1),
            local(2026, 11, 21, 15, 0)
        );
        assert_eq!(
            cal.add_working(local(2026, 11, 20, 17, 0), Duration::hours(2)),
            local(2026, 11, 21, 10, 0)
        );
    }

    #[test]
    fn weekday_names_are_case_insensitive() {
        let cal = CalendarConfig {
            working_days: vec!["MON".into(), "Sat".into()],
            ..CalendarConfig::default()
        }
        .compile()
        .expect("valid");
        assert!(cal.is_working_day(date(2026, 11, 23)));
        assert!(!cal.is_working_day(date(2026, 11, 24)));
        assert!(cal.is_working_day(date(2026, 11, 21)));
    }

    #[test]
    fn negative_offsets_work() {
        let cal = CalendarConfig {
            utc_offset: "-05:30".into(),
            ..CalendarConfig::default()
        }
        .compile()
        .expect("valid");
        assert_eq!(
            cal.offset(),
            FixedOffset::west_opt(5 * 3600 + 1800).unwrap()
        );
        // Monday 09:00 at -05:30 is 14:30 UTC.
        let monday_nine = Utc.with_ymd_and_hms(2026, 11, 23, 14, 30, 0).unwrap();
        assert!(cal.is_working_time(monday_nine));
        assert_eq!(
            cal.add_working(monday_nine, Duration::hours(9)),
            Utc.with_ymd_and_hms(2026, 11, 23, 23, 30, 0).unwrap()
        );
    }

    #[test]
    fn no_working_day_for_ten_years_falls_back_to_wall_clock() {
        // Only possible with an absurd holiday list: every Monday for 11 years.
        let mut holidays = Vec::new();
        let mut day = date(2026, 11, 23);
        while day < date(2037, 12, 31) {
            holidays.push(day.format("%Y-%m-%d").to_string());
            day += Duration::days(7);
        }
        let cal = CalendarConfig {
            working_days: vec!["mon".into()],
            holidays,
            ..CalendarConfig::default()
        }
        .compile()
        .expect("valid");
        let from = local(2026, 11, 20, 15, 0);
        assert_eq!(cal.add_working_days(from, 1), from + Duration::hours(9));
    }

    #[test]
    fn huge_durations_terminate() {
        let cal = default_calendar();
        let from = local(2026, 11, 20, 15, 0);
        // Far in the future, but it returns.
        assert!(cal.add_working_days(from, 100_000) > from + Duration::days(100_000));
    }

    #[test]
    fn default_config_round_trips_and_fills_missing_keys() {
        let config: CalendarConfig =
            serde_json::from_str(r#"{"holidays": ["2026-10-01"]}"#).expect("parses");
        assert_eq!(config.work_start, "09:00");
        assert_eq!(config.holidays, vec!["2026-10-01".to_owned()]);
        assert!(serde_json::from_str::<CalendarConfig>(r#"{"holidayz": []}"#).is_err());
        let json = serde_json::to_string(&CalendarConfig::default()).expect("serializes");
        let back: CalendarConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, CalendarConfig::default());
    }

    #[test]
    fn bad_offset_is_reported() {
        for bad in [
            "08:00", "+8:00", "+08", "+24:00", "+08:60", "UTC+8", "", "+08:00 ",
        ] {
            let problems = CalendarConfig {
                utc_offset: bad.into(),
                ..CalendarConfig::default()
            }
            .compile()
            .expect_err(bad);
            assert_eq!(keys(&problems), ["utc_offset"], "{bad:?}");
        }
    }

    #[test]
    fn bad_times_are_reported() {
        for bad in ["9:00", "09:00:00", "24:00", "09:60", "nine", "", "09.00"] {
            let problems = CalendarConfig {
                work_start: bad.into(),
                ..CalendarConfig::default()
            }
            .compile()
            .expect_err(bad);
            assert_eq!(keys(&problems), ["work_start"], "{bad:?}");
        }
        let problems = CalendarConfig {
            work_end: "6pm".into(),
            ..CalendarConfig::default()
        }
        .compile()
        .expect_err("bad end");
        assert_eq!(keys(&problems), ["work_end"]);
    }

    #[test]
    fn end_must_be_after_start() {
        for (start, end) in [("18:00", "09:00"), ("09:00", "09:00")] {
            let problems = CalendarConfig {
                work_start: start.into(),
                work_end: end.into(),
                ..CalendarConfig::default()
            }
            .compile()
            .expect_err("end <= start");
            assert_eq!(keys(&problems), ["work_end"]);
            assert!(problems[0].1.contains("after work_start"), "{problems:?}");
        }
    }

    #[test]
    fn unknown_weekday_is_reported_with_its_index() {
        let problems = CalendarConfig {
            working_days: vec!["mon".into(), "monday".into(), "tue".into(), "xyz".into()],
            ..CalendarConfig::default()
        }
        .compile()
        .expect_err("unknown weekdays");
        assert_eq!(keys(&problems), ["working_days[1]", "working_days[3]"]);
        assert!(problems[0].1.contains("\"monday\""), "{problems:?}");
    }

    #[test]
    fn empty_working_days_is_rejected() {
        let problems = CalendarConfig {
            working_days: Vec::new(),
            ..CalendarConfig::default()
        }
        .compile()
        .expect_err("no working days");
        assert_eq!(keys(&problems), ["working_days"]);
    }

    #[test]
    fn bad_dates_are_reported_with_their_index() {
        let problems = CalendarConfig {
            holidays: vec![
                "2026-10-01".into(),
                "2026-02-30".into(),
                "2026-1-5".into(),
                "2026/10/02".into(),
            ],
            extra_workdays: vec!["yesterday".into()],
            ..CalendarConfig::default()
        }
        .compile()
        .expect_err("bad dates");
        assert_eq!(
            keys(&problems),
            [
                "holidays[1]",
                "holidays[2]",
                "holidays[3]",
                "extra_workdays[0]"
            ]
        );
    }

    #[test]
    fn a_date_cannot_be_both_holiday_and_extra_workday() {
        let problems = CalendarConfig {
            holidays: vec!["2026-10-01".into()],
            extra_workdays: vec!["2026-09-27".into(), "2026-10-01".into()],
            ..CalendarConfig::default()
        }
        .compile()
        .expect_err("conflict");
        assert_eq!(keys(&problems), ["extra_workdays[1]"]);
    }

    #[test]
    fn several_problems_are_reported_together() {
        let problems = CalendarConfig {
            utc_offset: "+8".into(),
            work_start: "25:00".into(),
            work_end: "17:00".into(),
            working_days: vec!["funday".into()],
            holidays: vec!["2026-13-01".into()],
            extra_workdays: vec!["2026-10-10".into()],
        }
        .compile()
        .expect_err("many problems");
        assert_eq!(
            keys(&problems),
            ["utc_offset", "work_start", "working_days[0]", "holidays[0]"]
        );
        let problems = CalendarConfig {
            work_start: "12:00".into(),
            work_end: "11:00".into(),
            working_days: Vec::new(),
            ..CalendarConfig::default()
        }
        .compile()
        .expect_err("many problems");
        assert_eq!(keys(&problems), ["work_end", "working_days"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// `add_working` agrees with counting working minutes one by one.
        #[test]
        fn add_working_matches_minute_count(
            start_minute in 0i64..(14 * 24 * 60),
            minutes in 1i64..(3 * 9 * 60),
        ) {
            let cal = calendar_with(&["2026-11-25"], &["2026-11-28"]);
            let from = local(2026, 11, 19, 0, 0) + Duration::minutes(start_minute);
            let mut t = from;
            let mut left = minutes;
            while left > 0 {
                if cal.is_working_time(t) {
                    left -= 1;
                }
                t += Duration::minutes(1);
            }
            prop_assert_eq!(cal.add_working(from, Duration::minutes(minutes)), t);
        }

        /// Adding `a` then `b` is adding `a + b`.
        #[test]
        fn add_working_is_additive(
            start_minute in 0i64..(14 * 24 * 60),
            a in 0i64..(3 * 9 * 60),
            b in 0i64..(3 * 9 * 60),
        ) {
            let cal = calendar_with(&["2026-11-25"], &["2026-11-28"]);
            let from = local(2026, 11, 19, 0, 0) + Duration::minutes(start_minute);
            let (a, b) = (Duration::minutes(a), Duration::minutes(b));
            prop_assert_eq!(
                cal.add_working(cal.add_working(from, a), b),
                cal.add_working(from, a + b)
            );
        }
    }
}
