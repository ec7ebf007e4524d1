//! `config/grafana/threering.json`, the Grafana dashboard for the Prometheus metrics: it
//! parses, its datasource is the `${DS_PROMETHEUS}` import input, panel titles and ids
//! are unique, and every PromQL query (panels and template variables) names only metrics
//! that `src/metrics.rs` defines (a histogram's `_bucket`, `_sum` and `_count` series
//! included), so renaming a metric without the dashboard fails here.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde_json::Value;

const DASHBOARD: &str = "config/grafana/threering.json";
const DATASOURCE: &str = "${DS_PROMETHEUS}";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// The metric names `src/metrics.rs` defines (`const X: &str = "threering_...";`), with
/// each histogram's series (`_bucket`, `_sum`, `_count`).
fn defined_metrics() -> BTreeSet<String> {
    let source = read("src/metrics.rs");
    let mut names = BTreeSet::new();
    for line in source.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("const ") else {
            continue;
        };
        let Some((constant, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        let Some(name) = value.strip_suffix("\";") else {
            continue;
        };
        if !name.starts_with("threering_") {
            continue;
        }
        names.insert(name.to_owned());
        if source.contains(&format!("histogram!({constant}")) {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    assert!(
        names.len() >= 8,
        "src/metrics.rs: expected the metric name constants, found {names:?}"
    );
    names
}

/// PromQL words that are not metric names when not followed by `(`: operators, and the
/// aggregations (`sum by (queue) (...)`).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
];

/// Keywords whose `( label, ... )` list follows.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers
/// (`{...}`), ranges (`[...]`), strings and label lists, that are not functions (followed
/// by `(`), keywords or numbers. Grafana variables (`$x`, `${x}`) are skipped.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Skips from an opening bracket to its closing one (strings inside respected).
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    let quote = chars[i];
                    i += 1;
                    while i < chars.len() && chars[i] != quote {
                        if chars[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        panic!("unbalanced {open}{close} in {expr:?}");
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            i += 1;
            while i < chars.len() && chars[i] != quote {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(i, '{', '}');
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = skip_group(next, '(', ')');
                }
            } else if chars.get(next) == Some(&'(') || KEYWORDS.contains(&lower.as_str()) {
                // A function call or an operator keyword.
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// Every PromQL query: (where, expression).
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            out.push((
                format!("panel {title:?} {}", target["refId"]),
                expr.to_owned(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or("?");
        let query = match &variable["query"] {
            Value::String(q) => q.clone(),
            q => q["query"].as_str().unwrap_or_default().to_owned(),
        };
        // label_values(METRIC, label): the metric part is PromQL.
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map_or(query.clone(), |(metric, _)| metric.to_owned());
        out.push((format!("variable ${name}"), inner));
    }
    out
}

#[test]
fn the_promql_reader_finds_metric_names_only() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.9, sum by (queue, le) (rate(threering_ring_to_answer_seconds_bucket{queue=~"$queue"}[$__rate_interval])))"#
        ),
        ["threering_ring_to_answer_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            r#"sum without(instance) (a_total{x="b{c}"} offset 5m) / on (q) group_left b * 60"#
        ),
        ["a_total", "b"]
    );
    assert_eq!(
        metric_names("sort_desc(sum by (agent) (increase(m[$__range])))"),
        ["m"]
    );
    assert_eq!(metric_names("1e3 + .5 + ${var} + x"), ["x"]);
}

#[test]
fn the_dashboard_parses_and_imports_with_a_prometheus_input() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_i64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["uid"].as_str().is_some_and(|t| !t.is_empty()));
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "__inputs needs DS_PROMETHEUS: {inputs:?}"
    );
    for panel in all_panels(&d) {
        if panel["type"] == "row" {
            continue;
        }
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], DATASOURCE, "panel {title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], DATASOURCE, "panel {title}");
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "panel {title}: empty expr"
            );
        }
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_i64(), grid["w"].as_i64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if x >= 0 && w > 0 && x + w <= 24),
            "panel {title}: gridPos {grid}"
        );
    }
}

#[test]
fn panel_titles_and_ids_are_unique() {
    let d = dashboard();
    let mut titles = HashSet::new();
    let mut ids = HashSet::new();
    for panel in all_panels(&d) {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(!title.trim().is_empty(), "an empty title");
        assert!(titles.insert(title.to_owned()), "title {title:?} twice");
        let id = panel["id"].as_i64().expect("every panel has an id");
        assert!(ids.insert(id), "id {id} twice");
    }
}

#[test]
fn every_query_names_only_metrics_that_src_metrics_defines() {
    let d = dashboard();
    let defined = defined_metrics();
    let mut used = BTreeSet::new();
    let queries = queries(&d);
    assert!(queries.len() >= 8, "{queries:?}");
    for (place, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr:?}");
        for name in names {
            assert!(
                defined.contains(&name),
                "{place}: {name} is not a metric src/metrics.rs defines ({defined:?}); query {expr:?}"
            );
            used.insert(name);
        }
    }
    // What the dashboard is for: each of these has a panel.
    for wanted in [
        "threering_ring_to_answer_seconds_bucket",
        "threering_calls_total",
        "threering_three_ring_violations_total",
        "threering_active_calls",
        "threering_tickets_overdue",
        "threering_recording_failures_total",
        "threering_sip_parse_errors_total",
        "threering_agents",
    ] {
        assert!(used.contains(wanted), "no panel queries {wanted}");
    }
}
