//! `form.html`: the ticket as a readable, self-contained page (no scripts, no external
//! resources), for whoever opens a bundle years later without our tools.
//!
//! Known fields get their Chinese labels and come first, in [`LABELS`] order; other
//! fields follow under their own names. Nested arrays and objects become nested lists
//! and tables. Every piece of text from the form is HTML-escaped.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Chinese labels of the ticket's known fields, in display order.
pub(crate) const LABELS: &[(&str, &str)] = &[
    ("id", "编号"),
    ("kind", "类型"),
    ("status", "状态"),
    ("customer", "客户"),
    ("company", "公司"),
    ("phone", "电话"),
    ("area", "业务区域"),
    ("inquiry_type", "咨询类型"),
    ("waybill", "运单号"),
    ("content", "内容"),
    ("reply", "答复"),
    ("assigned_team", "处理组"),
    ("assigned_agent", "处理人"),
    ("created_at", "受理时间"),
    ("due_at", "应答复时间"),
    ("survey_score", "满意度"),
];

/// Nesting deeper than this is shown as escaped compact JSON instead of tables.
const MAX_DEPTH: usize = 32;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:0.2em 0}\
th,td{border:1px solid #999;padding:0.3em 0.6em;text-align:left;vertical-align:top}\
th{background:#eee;white-space:nowrap}\
.empty{color:#999}.text{white-space:pre-wrap}";

pub(crate) use crate::html::esc as escape;

fn label(key: &str) -> Option<&'static str> {
    LABELS.iter().find(|(k, _)| *k == key).map(|(_, l)| *l)
}

/// Keys in display order: known ones in [`LABELS`] order, then the rest.
fn ordered_keys<'a>(keys: impl Iterator<Item = &'a String> + Clone) -> Vec<&'a str> {
    let mut out: Vec<&str> = LABELS
        .iter()
        .filter(|(k, _)| keys.clone().any(|key| key == k))
        .map(|(k, _)| *k)
        .collect();
    out.extend(keys.map(String::as_str).filter(|key| label(key).is_none()));
    out
}

/// A table header cell for `key`: its label, with the raw key as a tooltip.
fn key_cell(out: &mut String, key: &str) {
    match label(key) {
        Some(l) => {
            let _ = write!(out, "<th title=\"{}\">{}</th>", escape(key), l);
        }
        None => {
            let _ = write!(out, "<th>{}</th>", escape(key));
        }
    }
}

fn render_object(out: &mut String, map: &Map<String, Value>, depth: usize) {
    out.push_str("<table>\n");
    for key in ordered_keys(map.keys()) {
        out.push_str("<tr>");
        key_cell(out, key);
        out.push_str("<td>");
        render_value(out, &map[key], depth + 1);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>");
}

/// An array of objects as one table: a column per key (union, in display order).
fn render_rows(out: &mut String, rows: &[&Map<String, Value>], depth: usize) {
    let mut seen: Vec<String> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !seen.contains(key) {
                seen.push(key.clone());
            }
        }
    }
    let columns = ordered_keys(seen.iter());
    out.push_str("<table>\n<tr><th>#</th>");
    for key in &columns {
        key_cell(out, key);
    }
    out.push_str("</tr>\n");
    for (i, row) in rows.iter().enumerate() {
        let _ = write!(out, "<tr><td>{}</td>", i + 1);
        for key in &columns {
            out.push_str("<td>");
            if let Some(value) = row.get(*key) {
                render_value(out, value, depth + 1);
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>");
}

fn render_value(out: &mut String, value: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        let _ = write!(out, "<code>{}</code>", escape(&value.to_string()));
        return;
    }
    match value {
        Value::Null => out.push_str("<span class=\"empty\">—</span>"),
        Value::Bool(true) => out.push('是'),
        Value::Bool(false) => out.push('否'),
        Value::Number(n) => out.push_str(&escape(&n.to_string())),
        Value::String(s) if s.contains('\n') => {
            let _ = write!(out, "<span class=\"text\">{}</span>", escape(s));
        }
        Value::String(s) => out.push_str(&escape(s)),
        Value::Array(items) if items.is_empty() => {
            out.push_str("<span class=\"empty\">（无）</span>")
        }
        Value::Array(items) => {
            let rows: Vec<&Map<String, Value>> =
                items.iter().filter_map(Value::as_object).collect();
            if rows.len() == items.len() {
                render_rows(out, &rows, depth);
            } else {
                out.push_str("<ol>\n");
                for item in items {
                    out.push_str("<li>");
                    render_value(out, item, depth + 1);
                    out.push_str("</li>\n");
                }
                out.push_str("</ol>");
            }
        }
        Value::Object(map) if map.is_empty() => out.push_str("<span class=\"empty\">（无）</span>"),
        Value::Object(map) => render_object(out, map, depth),
    }
}

/// The whole page for ticket `ticket_id` with form `form`.
pub(crate) fn render_form(ticket_id: &str, form: &Value) -> String {
    let title = format!("业务咨询单 {}", escape(ticket_id));
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    render_value(&mut out, form, 0);
    out.push_str("\n</body>\n</html>\n");
    out
}
