//! Alarms: conditions an operator must see while the daemon keeps working around them
//! (a recordings volume that is full, a database that cannot be reached). Each alarm is
//! raised with a human-readable detail and cleared when the condition goes away.
//!
//! While any alarm is active `/healthz` still answers 200 (the node keeps taking calls,
//! so a load balancer must not take it out) but says `"status": "degraded"` and lists the
//! alarms; the gauge `threering_alarm{name}` is 1 while an alarm is up. Raising an alarm
//! that is already up only updates its detail, so a failure repeated on every call logs
//! one error per outage, not one per call.
//!
//! Process-wide, like the metrics registry: call control, the store writer and the HTTP
//! layer do not share any other state.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// The alarms the daemon raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Alarm {
    /// A recording could not be started or written (volume full, permissions, I/O error):
    /// calls go on unrecorded until a recording succeeds again.
    RecordingsFailing,
}

impl Alarm {
    pub const ALL: [Alarm; 1] = [Alarm::RecordingsFailing];

    pub fn as_str(self) -> &'static str {
        match self {
            Alarm::RecordingsFailing => "recordings_failing",
        }
    }
}

/// One active alarm, as `/healthz` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveAlarm {
    pub name: &'static str,
    pub detail: String,
    /// When it was first raised in this outage, epoch ms.
    pub since_ms: i64,
}

static ACTIVE: Mutex<BTreeMap<Alarm, ActiveAlarm>> = Mutex::new(BTreeMap::new());

/// Raises `alarm` (or updates its detail if it is already up). Logs an error the first
/// time only.
pub fn raise(alarm: Alarm, detail: impl Into<String>) {
    let detail = detail.into();
    let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    match active.get_mut(&alarm) {
        Some(existing) => existing.detail = detail,
        None => {
            tracing::error!(alarm = alarm.as_str(), %detail, "alarm raised");
            active.insert(
                alarm,
                ActiveAlarm {
                    name: alarm.as_str(),
                    detail,
                    since_ms: chrono::Utc::now().timestamp_millis(),
                },
            );
            crate::metrics::alarm(alarm.as_str(), true);
        }
    }
}

/// Clears `alarm` if it is up, logging the recovery.
pub fn clear(alarm: Alarm) {
    let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(was) = active.remove(&alarm) {
        tracing::info!(alarm = was.name, "alarm cleared");
        crate::metrics::alarm(alarm.as_str(), false);
    }
}

/// The alarms up now, in a fixed order.
pub fn active() -> Vec<ActiveAlarm> {
    ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_update_and_clear() {
        clear(Alarm::RecordingsFailing);
        raise(Alarm::RecordingsFailing, "disk full");
        let first = active();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].name, "recordings_failing");
        raise(Alarm::RecordingsFailing, "still full");
        let second = active();
        assert_eq!(second[0].detail, "still full");
        assert_eq!(second[0].since_ms, first[0].since_ms, "kept its start");
        clear(Alarm::RecordingsFailing);
        assert!(active().is_empty());
    }
}
