//! JSON helpers for call records (pretty text, fields, the attempts list) and [`Checks`],
//! which collects failed checks so one run reports every mismatch at once.

use serde_json::Value;

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

pub fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub fn int_field(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// The call's `attempts`, as (agent, outcome, ring_ms) in the order the API gives them.
pub fn attempts(call: &Value) -> Vec<(String, String, Option<i64>)> {
    call.get("attempts")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|a| {
                    (
                        str_field(a, "agent").unwrap_or("<none>").to_string(),
                        str_field(a, "outcome").unwrap_or("<none>").to_string(),
                        int_field(a, "ring_ms"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Collects failed checks; `finish` panics with all of them and the context.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    pub fn that(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// `call[key]` is the string `want`.
    pub fn str_eq(&mut self, call: &Value, key: &str, want: &str) {
        let got = call.get(key);
        if got.and_then(Value::as_str) != Some(want) {
            self.failures
                .push(format!("{key}: expected {want:?}, got {}", show_json(got)));
        }
    }

    /// `call[key]` is the boolean `want`.
    pub fn bool_eq(&mut self, call: &Value, key: &str, want: bool) {
        let got = call.get(key);
        if got.and_then(Value::as_bool) != Some(want) {
            self.failures
                .push(format!("{key}: expected {want}, got {}", show_json(got)));
        }
    }

    /// `call[key]` is the integer `want`.
    pub fn int_eq(&mut self, call: &Value, key: &str, want: i64) {
        let got = call.get(key);
        if got.and_then(Value::as_i64) != Some(want) {
            self.failures
                .push(format!("{key}: expected {want}, got {}", show_json(got)));
        }
    }

    /// `call[key]` is an integer in `lo..=hi`.
    pub fn int_in(&mut self, call: &Value, key: &str, lo: i64, hi: i64) {
        let got = call.get(key);
        match got.and_then(Value::as_i64) {
            Some(v) if (lo..=hi).contains(&v) => {}
            _ => self.failures.push(format!(
                "{key}: expected {lo}..={hi}, got {}",
                show_json(got)
            )),
        }
    }

    /// `call[key]` is present and not null.
    pub fn present(&mut self, call: &Value, key: &str) {
        let got = call.get(key);
        if got.is_none_or(Value::is_null) {
            self.failures
                .push(format!("{key}: expected a value, got {}", show_json(got)));
        }
    }

    /// `call[key]` is null (or absent).
    pub fn null(&mut self, call: &Value, key: &str) {
        let got = call.get(key);
        if got.is_some_and(|v| !v.is_null()) {
            self.failures
                .push(format!("{key}: expected null, got {}", show_json(got)));
        }
    }

    /// The failed checks so far, for a caller that gathers several records' checks.
    pub fn into_failures(self) -> Vec<String> {
        self.failures
    }

    /// Panics with every failed check, the call record and `context`.
    pub fn finish(self, call: &Value, context: &str) {
        if self.failures.is_empty() {
            return;
        }
        panic!(
            "{} check(s) failed:\n  {}\n--- call record:\n{}\n{}",
            self.failures.len(),
            self.failures.join("\n  "),
            pretty(call),
            context
        );
    }
}

fn show_json(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".into(),
        Some(v) => v.to_string(),
    }
}
