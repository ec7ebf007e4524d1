//! The ticket rules with a fixed clock: creation, implied status moves, refusals, survey
//! results and what archiving finds missing.

use super::*;
use crate::config::{Config, DispatchRule};

/// Monday 2026-11-23 10:00 +08:00.
const MON_10: i64 = 1_795_399_200_000;
const HOUR: i64 = 3_600_000;

fn rules() -> Rules {
    let mut config = Config::embedded();
    config.tickets.dispatch = vec![DispatchRule {
        area: Some("华南".into()),
        inquiry_type: None,
        kind: None,
        content_contains: Some("深圳".into()),
        team: "south".into(),
    }];
    Rules::from_config(&config)
}

fn new_ticket(kind: &str) -> NewTicket {
    NewTicket {
        kind: Some(kind.into()),
        customer: Some("张伟".into()),
        phone: Some("13800138000".into()),
        area: Some("华东".into()),
        inquiry_type: Some("查单".into()),
        waybill: Some("SF1".into()),
        content: Some("where is it".into()),
        ..Default::default()
    }
}

fn created(kind: &str) -> Ticket {
    create(&rules(), &new_ticket(kind), "crm", MON_10)
        .unwrap()
        .0
}

#[test]
fn a_consultation_is_due_one_working_day_later_and_a_complaint_in_hours() {
    let t = created("consultation");
    assert_eq!(t.status, TicketStatus::Open);
    assert_eq!(t.due_at, MON_10 + 24 * HOUR, "Monday 10:00 → Tuesday 10:00");
    let mut complaint = new_ticket("complaint");
    complaint.complexity = Some("complex".into());
    let (t, _) = create(&rules(), &complaint, "crm", MON_10).unwrap();
    assert_eq!(t.due_at, MON_10 + 24 * HOUR);
    complaint.complexity = None;
    let (t, _) = create(&rules(), &complaint, "crm", MON_10).unwrap();
    assert_eq!(
        t.complexity,
        Some(Complexity::Simple),
        "unspecified counts as simple"
    );
    assert_eq!(t.due_at, MON_10 + 2 * HOUR);
}

#[test]
fn a_promised_callback_earlier_than_the_reply_due_time_is_the_due_time() {
    let mut input = new_ticket("consultation");
    input.promised_callback_at = Some(TimeInput::Text("2026-11-23T10:10:00+08:00".into()));
    let (t, _) = create(&rules(), &input, "crm", MON_10).unwrap();
    assert_eq!(t.promised_callback_at, Some(MON_10 + 10 * 60_000));
    assert_eq!(t.due_at, MON_10 + 10 * 60_000);
    assert!(is_overdue(&t, MON_10 + 11 * 60_000));
    assert!(!is_overdue(&t, MON_10 + 9 * 60_000));
}

#[test]
fn every_input_problem_is_reported_at_once() {
    let input = NewTicket {
        kind: Some("gossip".into()),
        area: Some("火星".into()),
        inquiry_type: Some("闲聊".into()),
        promised_callback_at: Some(TimeInput::Text("soon".into())),
        ..Default::default()
    };
    let Err(Refused::Invalid(problems)) = create(&rules(), &input, "crm", MON_10) else {
        panic!("refused expected");
    };
    let text = problems.join("\n");
    for key in ["kind", "area", "inquiry_type", "promised_callback_at"] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
    let Err(Refused::Invalid(problems)) = create(&rules(), &NewTicket::default(), "crm", MON_10)
    else {
        panic!("refused expected");
    };
    assert!(problems[0].contains("kind: required"));
}

#[test]
fn dispatch_rules_route_a_new_ticket_to_a_team() {
    let mut input = new_ticket("consultation");
    input.area = Some("华南".into());
    input.content = Some("寄往深圳的货".into());
    let (t, history) = create(&rules(), &input, "crm", MON_10).unwrap();
    assert_eq!(t.assigned_team.as_deref(), Some("south"));
    assert_eq!(t.status, TicketStatus::Dispatched);
    assert!(history.iter().any(|h| h.action == "dispatch"));
    // Not matching the content: stays open.
    input.content = Some("寄往上海的货".into());
    let (t, _) = create(&rules(), &input, "crm", MON_10).unwrap();
    assert_eq!(t.status, TicketStatus::Open);
}

#[test]
fn assigning_dispatches_a_reply_replies_and_moves_back_are_refused() {
    let rules = rules();
    let mut t = created("query");
    let change = TicketUpdate {
        assigned_agent: Some(Some("1001".into())),
        ..Default::default()
    };
    update(&rules, &mut t, &change, "lead", MON_10 + HOUR).unwrap();
    assert_eq!(t.status, TicketStatus::Dispatched);
    let change = TicketUpdate {
        reply: Some("到了".into()),
        ..Default::default()
    };
    let history = update(&rules, &mut t, &change, "1001", MON_10 + 2 * HOUR).unwrap();
    assert_eq!(t.status, TicketStatus::Replied);
    assert_eq!(t.replied_at, Some(MON_10 + 2 * HOUR));
    assert!(history.iter().any(|h| h.action == "reply"));
    let change = TicketUpdate {
        status: Some("open".into()),
        ..Default::default()
    };
    assert!(matches!(
        update(&rules, &mut t, &change, "1001", MON_10 + 3 * HOUR),
        Err(Refused::Conflict(_))
    ));
    let change = TicketUpdate {
        status: Some("closed".into()),
        ..Default::default()
    };
    update(&rules, &mut t, &change, "lead", MON_10 + 3 * HOUR).unwrap();
    assert_eq!(t.closed_at, Some(MON_10 + 3 * HOUR));
}

#[test]
fn a_low_score_reopens_a_replied_ticket_with_a_new_due_time_unless_the_customer_caused_it() {
    let rules = rules();
    let mut t = created("consultation");
    t.status = TicketStatus::Replied;
    let history = record_survey(
        &rules,
        &mut t,
        2,
        Some(SurveyCause::Customer),
        None,
        "qa",
        MON_10,
    )
    .unwrap();
    assert_eq!(t.status, TicketStatus::Replied, "the customer's own doing");
    assert_eq!(history.len(), 1);
    let later = MON_10 + 5 * HOUR; // Monday 15:00
    let history = record_survey(&rules, &mut t, 1, None, Some("call-1"), "survey", later).unwrap();
    assert_eq!(t.status, TicketStatus::Reopened);
    assert_eq!(t.survey_score, Some(1));
    assert_eq!(t.survey_call_id.as_deref(), Some("call-1"));
    assert_eq!(
        t.due_at,
        later + 24 * HOUR,
        "a new working day from the reopening"
    );
    assert!(history.iter().any(|h| h.note.contains("→ reopened")));
    // The same result again changes nothing.
    assert!(
        record_survey(&rules, &mut t, 1, None, Some("call-1"), "survey", later)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        record_survey(&rules, &mut t, 6, None, None, "qa", later),
        Err(Refused::Invalid(_))
    ));
    // A ticket still waiting for its reply is reopened too, and keeps its due time.
    let mut t = created("consultation");
    let due = t.due_at;
    record_survey(
        &rules,
        &mut t,
        1,
        Some(SurveyCause::Company),
        None,
        "qa",
        later,
    )
    .unwrap();
    assert_eq!(t.status, TicketStatus::Reopened);
    assert_eq!(t.due_at, due);
    // A good score leaves it as it is.
    let mut t = created("consultation");
    t.status = TicketStatus::Replied;
    record_survey(&rules, &mut t, 5, None, None, "qa", later).unwrap();
    assert_eq!(t.status, TicketStatus::Replied);
}

#[test]
fn an_archived_ticket_cannot_change() {
    let rules = rules();
    let mut t = created("consultation");
    t.archived_at = Some(MON_10);
    let change = TicketUpdate {
        note: Some("late".into()),
        ..Default::default()
    };
    assert!(matches!(
        update(&rules, &mut t, &change, "x", MON_10),
        Err(Refused::Conflict(_))
    ));
    assert!(reply_call_answered(&rules, &mut t, "c", MON_10).is_empty());
}

#[test]
fn missing_fields_are_each_named() {
    let (t, _) = create(
        &rules(),
        &NewTicket {
            kind: Some("problem".into()),
            ..Default::default()
        },
        "crm",
        MON_10,
    )
    .unwrap();
    let missing = missing_fields(&t).join("\n");
    for field in [
        "customer",
        "phone",
        "area",
        "inquiry_type",
        "content",
        "waybill",
    ] {
        assert!(missing.contains(field), "{field} not in {missing}");
    }
    assert!(missing_fields(&created("consultation")).is_empty());
}

#[test]
fn null_clears_a_field_and_withdraws_a_promise() {
    let rules = rules();
    let mut input = new_ticket("consultation");
    input.promised_callback_at = Some(TimeInput::Millis(MON_10 + 600_000));
    let (mut t, _) = create(&rules, &input, "crm", MON_10).unwrap();
    assert_eq!(t.due_at, MON_10 + 600_000);
    let change: TicketUpdate =
        serde_json::from_str(r#"{"waybill": null, "promised_callback_at": null}"#).unwrap();
    update(&rules, &mut t, &change, "crm", MON_10 + HOUR).unwrap();
    assert_eq!(t.waybill, None);
    assert_eq!(t.promised_callback_at, None);
    assert_eq!(t.due_at, t.reply_due_at, "back to the reply due time");
    // Absent keys change nothing.
    let change: TicketUpdate = serde_json::from_str(r#"{"note": "called"}"#).unwrap();
    update(&rules, &mut t, &change, "crm", MON_10 + HOUR).unwrap();
    assert_eq!(t.customer.as_deref(), Some("张伟"));
}
