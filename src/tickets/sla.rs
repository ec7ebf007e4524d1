//! Service-level clocks: when the answer to a ticket is due.
//!
//! * A **complaint** is due `complaint_simple_hours` (2 h) or `complaint_complex_hours`
//!   (24 h) after it was accepted, by its complexity; a complaint whose complexity is
//!   not known yet counts as simple, so that its clock is the stricter one. The hours
//!   are wall-clock hours by default (`complaint_clock = "wall"`), so a simple complaint
//!   accepted at 23:00 is due at 01:00; `complaint_clock = "working"` counts them on the
//!   working calendar instead.
//! * Every other kind (consultation, query, problem, order) is due
//!   `reply_working_days` (1) working days after acceptance, on the working calendar
//!   ([`Calendar::add_working_days`]): accepted on Friday at 15:00, due on Monday at
//!   15:00.
//!
//! A ticket's due time ([`due_at`]) is the earlier of that reply due time and a
//! callback time promised to the customer, if any: a promise to call back sooner binds.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use super::{Complexity, TicketKind};

/// The largest `reply_working_days` accepted: a year of working days is already far
/// beyond any service level, so more is a typo.
pub const MAX_REPLY_WORKING_DAYS: u32 = 366;

/// The largest complaint hours accepted (a year of hours); more is a typo.
pub const MAX_COMPLAINT_HOURS: u32 = 366 * 24;

/// Which clock the complaint hours run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Wall-clock time: every hour counts, nights and weekends included.
    #[default]
    Wall,
    /// Working time on the calendar: only working hours on working days count.
    Working,
}

/// The service levels as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// Working days to reply to consultation, query, problem and order tickets
    /// (seeds: 1).
    pub reply_working_days: u32,
    /// Hours to answer a simple complaint (seeds: 2).
    pub complaint_simple_hours: u32,
    /// Hours to answer a complex complaint (seeds: 24).
    pub complaint_complex_hours: u32,
    /// Whether complaint hours are wall-clock hours (default) or working hours.
    pub complaint_clock: Clock,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig {
            reply_working_days: 1,
            complaint_simple_hours: 2,
            complaint_complex_hours: 24,
            complaint_clock: Clock::Wall,
        }
    }
}

impl SlaConfig {
    /// Every problem as `(key, message)`, the key relative to this section (e.g.
    /// `"complaint_simple_hours"`). Empty when the configuration is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let checks = [
            (
                "reply_working_days",
                self.reply_working_days,
                MAX_REPLY_WORKING_DAYS,
            ),
            (
                "complaint_simple_hours",
                self.complaint_simple_hours,
                MAX_COMPLAINT_HOURS,
            ),
            (
                "complaint_complex_hours",
                self.complaint_complex_hours,
                MAX_COMPLAINT_HOURS,
            ),
        ];
        for (key, value, max) in checks {
            if value == 0 {
                problems.push((key.to_owned(), "must be at least 1".to_owned()));
            } else if value > max {
                problems.push((key.to_owned(), format!("{value} is more than {max}")));
            }
        }
        problems
    }
}

/// When the answer to a ticket of `kind` accepted at `accepted` is due.
///
/// Complaints get `complaint_simple_hours` or `complaint_complex_hours` on the
/// `complaint_clock` (a complaint without complexity counts as simple); every other kind
/// gets `reply_working_days` on the calendar. `complexity` is ignored for other kinds.
pub fn reply_due(
    cal: &Calendar,
    sla: &SlaConfig,
    kind: TicketKind,
    complexity: Option<Complexity>,
    accepted: DateTime<Utc>,
) -> DateTime<Utc> {
    match kind {
        TicketKind::Complaint => {
            let hours = match complexity.unwrap_or(Complexity::Simple) {
                Complexity::Simple => sla.complaint_simple_hours,
                Complexity::Complex => sla.complaint_complex_hours,
            };
            let allowed = Duration::hours(i64::from(hours));
            match sla.complaint_clock {
                Clock::Wall => accepted
                    .checked_add_signed(allowed)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
                Clock::Working => cal.add_working(accepted, allowed),
            }
        }
        TicketKind::Consultation | TicketKind::Query | TicketKind::Problem | TicketKind::Order => {
            cal.add_working_days(accepted, sla.reply_working_days)
        }
    }
}

/// The ticket's due time: the earlier of the reply due time and a promised callback
/// time.
pub fn due_at(reply_due: DateTime<Utc>, promised_callback: Option<DateTime<Utc>>) -> DateTime<Utc> {
    promised_callback.map_or(reply_due, |promised| promised.min(reply_due))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::calendar::CalendarConfig;
    use chrono::{FixedOffset, TimeZone};

    fn calendar() -> Calendar {
        CalendarConfig::default()
            .compile()
            .expect("the default calendar is valid")
    }

    fn national_day_calendar() -> Calendar {
        CalendarConfig {
            holidays: (1..=7).map(|d| format!("2026-10-{d:02}")).collect(),
            // 2026-10-10 is a Saturday made a working day.
            extra_workdays: vec!["2026-10-10".to_owned()],
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

    fn due(
        cal: &Calendar,
        sla: &SlaConfig,
        kind: TicketKind,
        complexity: Option<Complexity>,
        accepted: DateTime<Utc>,
    ) -> DateTime<Utc> {
        reply_due(cal, sla, kind, complexity, accepted)
    }

    // 2026-11-20 is a Friday, 2026-11-23 a Monday.

    #[test]
    fn other_kinds_get_one_working_day() {
        let (cal, sla) = (calendar(), SlaConfig::default());
        for kind in [
            TicketKind::Consultation,
            TicketKind::Query,
            TicketKind::Problem,
            TicketKind::Order,
        ] {
            assert_eq!(
                due(&cal, &sla, kind, None, local(2026, 11, 20, 15, 0)),
                local(2026, 11, 23, 15, 0),
                "{kind:?}"
            );
            // Complexity only matters for complaints.
            assert_eq!(
                due(
                    &cal,
                    &sla,
                    kind,
                    Some(Complexity::Simple),
                    local(2026, 11, 20, 15, 0)
                ),
                local(2026, 11, 23, 15, 0),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn acceptance_outside_hours() {
        let (cal, sla) = (calendar(), SlaConfig::default());
        let consultation = |t| due(&cal, &sla, TicketKind::Consultation, None, t);
        // Before opening: the day starts at 09:00.
        assert_eq!(
            consultation(local(2026, 11, 23, 7, 30)),
            local(2026, 11, 23, 18, 0)
        );
        // After closing: the next working day, whole.
        assert_eq!(
            consultation(local(2026, 11, 23, 19, 0)),
            local(2026, 11, 24, 18, 0)
        );
        // Exactly at closing: likewise.
        assert_eq!(
            consultation(local(2026, 11, 23, 18, 0)),
            local(2026, 11, 24, 18, 0)
        );
        // On the weekend.
        assert_eq!(
            consultation(local(2026, 11, 21, 12, 0)),
            local(2026, 11, 23, 18, 0)
        );
        // Friday evening.
        assert_eq!(
            consultation(local(2026, 11, 20, 20, 0)),
            local(2026, 11, 23, 18, 0)
        );
    }

    #[test]
    fn several_reply_days() {
        let cal = calendar();
        let sla = SlaConfig {
            reply_working_days: 3,
            ..SlaConfig::default()
        };
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Query,
                None,
                local(2026, 11, 20, 15, 0)
            ),
            local(2026, 11, 25, 15, 0)
        );
    }

    #[test]
    fn national_day_week_is_skipped() {
        let (cal, sla) = (national_day_calendar(), SlaConfig::default());
        // Wednesday 2026-09-30 16:00 → Thursday 2026-10-08 16:00.
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Consultation,
                None,
                local(2026, 9, 30, 16, 0)
            ),
            local(2026, 10, 8, 16, 0)
        );
    }

    #[test]
    fn extra_workday_on_a_weekend_counts() {
        let (cal, sla) = (national_day_calendar(), SlaConfig::default());
        // Friday 2026-10-09 15:00 → the make-up Saturday 2026-10-10 15:00.
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Order,
                None,
                local(2026, 10, 9, 15, 0)
            ),
            local(2026, 10, 10, 15, 0)
        );
        // Accepted on the make-up Saturday itself.
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Problem,
                None,
                local(2026, 10, 10, 17, 0)
            ),
            local(2026, 10, 12, 17, 0)
        );
    }

    #[test]
    fn simple_complaint_is_two_wall_hours_across_midnight() {
        let (cal, sla) = (calendar(), SlaConfig::default());
        // Friday 23:00 → Saturday 01:00: the wall clock ignores the calendar.
        let accepted = local(2026, 11, 20, 23, 0);
        let expected = local(2026, 11, 21, 1, 0);
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Complaint,
                Some(Complexity::Simple),
                accepted
            ),
            expected
        );
        // A complaint of unknown complexity counts as simple.
        assert_eq!(
            due(&cal, &sla, TicketKind::Complaint, None, accepted),
            expected
        );
    }

    #[test]
    fn complex_complaint_is_twenty_four_wall_hours() {
        let (cal, sla) = (calendar(), SlaConfig::default());
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Complaint,
                Some(Complexity::Complex),
                local(2026, 11, 20, 15, 0)
            ),
            local(2026, 11, 21, 15, 0)
        );
    }

    #[test]
    fn complaint_on_the_working_clock() {
        let cal = calendar();
        let sla = SlaConfig {
            complaint_clock: Clock::Working,
            ..SlaConfig::default()
        };
        // Friday 17:00 + 2 working hours → Monday 10:00.
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Complaint,
                Some(Complexity::Simple),
                local(2026, 11, 20, 17, 0)
            ),
            local(2026, 11, 23, 10, 0)
        );
        // Friday 15:00 + 24 working hours (2 days and 6 h) → Wednesday 12:00.
        assert_eq!(
            due(
                &cal,
                &sla,
                TicketKind::Complaint,
                Some(Complexity::Complex),
                local(2026, 11, 20, 15, 0)
            ),
            local(2026, 11, 25, 12, 0)
        );
    }

    #[test]
    fn earlier_promised_callback_wins() {
        let reply = local(2026, 11, 23, 15, 0);
        let promised = local(2026, 11, 20, 17, 0);
        assert_eq!(due_at(reply, Some(promised)), promised);
    }

    #[test]
    fn later_promised_callback_does_not() {
        let reply = local(2026, 11, 23, 15, 0);
        assert_eq!(due_at(reply, Some(local(2026, 11, 24, 10, 0))), reply);
        assert_eq!(due_at(reply, Some(reply)), reply);
        assert_eq!(due_at(reply, None), reply);
    }

    #[test]
    fn defaults_are_valid_and_match_the_seeds() {
        let sla = SlaConfig::default();
        assert!(sla.validate().is_empty());
        assert_eq!(sla.reply_working_days, 1);
        assert_eq!(sla.complaint_simple_hours, 2);
        assert_eq!(sla.complaint_complex_hours, 24);
        assert_eq!(sla.complaint_clock, Clock::Wall);
    }

    #[test]
    fn zeros_and_huge_values_are_rejected() {
        let sla = SlaConfig {
            reply_working_days: 0,
            complaint_simple_hours: 0,
            complaint_complex_hours: MAX_COMPLAINT_HOURS + 1,
            complaint_clock: Clock::Working,
        };
        let keys: Vec<_> = sla.validate().into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            [
                "reply_working_days",
                "complaint_simple_hours",
                "complaint_complex_hours"
            ]
        );
        let sla = SlaConfig {
            reply_working_days: MAX_REPLY_WORKING_DAYS + 1,
            ..SlaConfig::default()
        };
        assert_eq!(sla.validate().len(), 1);
    }

    #[test]
    fn config_parses_with_defaults_and_lowercase_clock() {
        let sla: SlaConfig =
            serde_json::from_str(r#"{"complaint_clock": "working"}"#).expect("parses");
        assert_eq!(
            sla,
            SlaConfig {
                complaint_clock: Clock::Working,
                ..SlaConfig::default()
            }
        );
        assert!(serde_json::from_str::<SlaConfig>(r#"{"complaint_clock": "Working"}"#).is_err());
        assert!(serde_json::from_str::<SlaConfig>(r#"{"reply_days": 2}"#).is_err());
    }
}
