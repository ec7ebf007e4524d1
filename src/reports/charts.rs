//! Charts drawn on the server as SVG strings (no JavaScript, no chart library): the
//! histogram of rings to answer with the target and limit marked, and three-ring
//! compliance per hour or per day. Each has a `<title>` and a `<desc>` that states every
//! number in words (for screen readers: `role="img"` with `aria-labelledby`), axis
//! labels in Chinese and English, and fits a laptop screen (720 × 360).
//!
//! Every bar is a `<g class="bar">` with `data-*` attributes carrying its numbers, so
//! tests and scripts can read a chart without parsing geometry.

use std::fmt::Write as _;

use super::esc;
use super::stats::{RingCounts, Stats};

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 62.0;
const BOTTOM: f64 = 64.0;

const OK_FILL: &str = "#2e7d32";
const LATE_FILL: &str = "#f9a825";
const OVER_FILL: &str = "#c62828";
const BAR_FILL: &str = "#1565c0";
const INK: &str = "#222";
const GRID: &str = "#ddd";

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// The opening tag, the title and description, the background and the heading lines.
fn open(out: &mut String, id: &str, title: &str, subtitle: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         font-family=\"'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif\" \
         font-size=\"12\" class=\"chart {id}\">",
        w = WIDTH,
        h = HEIGHT
    );
    let _ = write!(
        out,
        "<title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        esc(title),
        esc(desc)
    );
    let _ = write!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\"/>"
    );
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"16\" font-weight=\"bold\" fill=\"{INK}\">{}</text>",
        esc(title)
    );
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"42\" fill=\"#555\">{}</text>",
        esc(subtitle)
    );
}

/// Axis lines and the axis labels.
fn axes(out: &mut String, x_label: &str, y_label: &str) {
    let x0 = LEFT;
    let y0 = TOP + plot_height();
    let _ = write!(
        out,
        "<line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{y0}\" stroke=\"{INK}\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"{INK}\"/>",
        x1 = LEFT + plot_width()
    );
    let _ = write!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{}</text>",
        esc(x_label),
        x = LEFT + plot_width() / 2.0,
        y = HEIGHT - 12.0
    );
    let (x, y) = (16.0, TOP + plot_height() / 2.0);
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"{y:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {x} {y:.1})\" \
         fill=\"{INK}\">{}</text>",
        esc(y_label)
    );
}

/// Horizontal grid lines with their labels, for values `0..=max` in steps of `step`.
fn y_grid(out: &mut String, max: f64, step: f64, suffix: &str) {
    let mut value = 0.0;
    while value <= max + 1e-9 {
        let y = y_of(value, max);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{x2}\" y2=\"{y:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"end\" fill=\"{INK}\">{value}{suffix}</text>",
            x2 = LEFT + plot_width(),
            x = LEFT - 6.0,
            ty = y + 4.0
        );
        value += step;
    }
}

fn y_of(value: f64, max: f64) -> f64 {
    TOP + plot_height() - plot_height() * (value / max.max(1e-9))
}

/// A round axis maximum and step for counts up to `max`: steps of 1, 2, 5 × 10^k, at
/// most five of them.
pub fn nice_scale(max: u64) -> (u64, u64) {
    let max = max.max(1);
    let mut magnitude = 1;
    loop {
        for factor in [1, 2, 5] {
            let step = factor * magnitude;
            if max.div_ceil(step) <= 5 {
                return (max.div_ceil(step) * step, step);
            }
        }
        magnitude *= 10;
    }
}

/// The histogram of rings to answer: one bar per ring `1 ..= limit` and one for
/// `limit + 1` or more; green up to the target, amber up to the limit, red beyond; a
/// dashed line after the target ring and another after the limit.
pub fn rings_histogram(counts: &RingCounts, range_text: &str) -> String {
    let total = counts.total();
    let mut filters = String::new();
    if let Some(q) = &counts.queue {
        let _ = write!(filters, " · 队列 queue {q}");
    }
    if let Some(a) = &counts.agent {
        let _ = write!(filters, " · 坐席 agent {a}");
    }
    let title = "响铃次数分布 Rings to answer";
    let subtitle = format!("{range_text} · {total} 个接听 answered calls{filters}");
    let mut desc = format!(
        "Answered calls by the ring they were answered on ({range_text}{filters}); \
         target: within {} rings, limit: {} rings. ",
        counts.target, counts.limit
    );
    let parts: Vec<String> = (0..counts.counts.len())
        .map(|i| format!("ring {}: {} calls", counts.label(i), counts.counts[i]))
        .collect();
    desc.push_str(&parts.join("; "));
    desc.push('.');

    let mut out = String::new();
    open(&mut out, "rings", title, &subtitle, &desc);
    let peak = counts.counts.iter().copied().max().unwrap_or(0);
    let (max, step) = nice_scale(peak);
    y_grid(&mut out, max as f64, step as f64, "");
    let n = counts.counts.len() as f64;
    let slot = plot_width() / n;
    let bar = slot * 0.7;
    let base = TOP + plot_height();
    for (i, &count) in counts.counts.iter().enumerate() {
        let ring = i as i64 + 1;
        let fill = if ring <= counts.target {
            OK_FILL
        } else if ring <= counts.limit {
            LATE_FILL
        } else {
            OVER_FILL
        };
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let y = y_of(count as f64, max as f64);
        let label = counts.label(i);
        let _ = write!(
            out,
            "<g class=\"bar\" data-rings=\"{label}\" data-calls=\"{count}\">\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{fill}\">\
             <title>{label} 声 rings: {count}</title></rect>\
             <text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{count}</text>\
             <text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" fill=\"{INK}\">{label}</text></g>",
            h = base - y,
            cx = x + bar / 2.0,
            ty = y - 4.0,
            ly = base + 16.0
        );
    }
    // The rule's lines fall between the bars: after the target ring, after the limit.
    // Their labels go under the ring numbers, the target's to the left of its line and
    // the limit's to the right, so they never cover a bar or each other.
    for (after, text, color, anchor, dx) in [
        (
            counts.target,
            format!("目标 target ≤ {}", counts.target),
            OK_FILL,
            "end",
            -4.0,
        ),
        (
            counts.limit,
            format!("上限 limit {}", counts.limit),
            OVER_FILL,
            "start",
            4.0,
        ),
    ] {
        if after < 1 || after as f64 >= n {
            continue;
        }
        let x = LEFT + slot * after as f64;
        let _ = write!(
            out,
            "<g class=\"rule\"><line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{y2:.1}\" \
             stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"{anchor}\" fill=\"{color}\">{}</text></g>",
            esc(&text),
            y2 = base + 28.0,
            tx = x + dx,
            ty = base + 32.0
        );
    }
    axes(
        &mut out,
        "接听时的响铃声数 Rings heard before the answer",
        "通话数 Calls",
    );
    out.push_str("</svg>");
    out
}

/// One bar of the compliance chart.
#[derive(Debug, Clone, PartialEq)]
pub struct CompliancePoint {
    /// `"09"` or `"2025-03-01"`.
    pub label: String,
    pub pct_within_target: Option<f64>,
    pub answered: u64,
}

impl CompliancePoint {
    pub fn from_stats(stats: &Stats) -> CompliancePoint {
        CompliancePoint {
            label: stats.key.clone().unwrap_or_default(),
            pct_within_target: stats.pct_within_target,
            answered: stats.answered,
        }
    }
}

/// Three-ring compliance (answered within the target, % of answered) per hour of day or
/// per day, as bars on a 0–100 % scale; a bucket without answered calls shows `–`.
pub fn compliance_chart(points: &[CompliancePoint], by_day: bool, range_text: &str) -> String {
    let title = if by_day {
        "三声内接听率(按日) Three-ring compliance per day"
    } else {
        "三声内接听率(按小时) Three-ring compliance per hour"
    };
    let answered: u64 = points.iter().map(|p| p.answered).sum();
    let subtitle = format!("{range_text} · {answered} 个接听 answered calls");
    let parts: Vec<String> = points
        .iter()
        .map(|p| match p.pct_within_target {
            Some(v) => format!("{}: {v}% of {} answered", p.label, p.answered),
            None => format!("{}: no answered calls", p.label),
        })
        .collect();
    let desc =
        format!(
        "Percentage of answered calls answered within the ring target, per {} ({range_text}). {}.",
        if by_day { "local day" } else { "local hour of day" },
        parts.join("; ")
    );
    let mut out = String::new();
    open(&mut out, "compliance", title, &subtitle, &desc);
    y_grid(&mut out, 100.0, 25.0, "%");
    let n = points.len().max(1) as f64;
    let slot = plot_width() / n;
    let bar = (slot * 0.7).max(1.0);
    let base = TOP + plot_height();
    // Every label while they fit, else every k-th.
    let every = (points.len() as f64 / 24.0).ceil().max(1.0) as usize;
    let values_fit = points.len() <= 31;
    for (i, p) in points.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let cx = x + bar / 2.0;
        let label = if by_day && p.label.len() == 10 {
            p.label[5..].to_owned()
        } else {
            p.label.clone()
        };
        let _ = write!(
            out,
            "<g class=\"bar\" data-key=\"{}\" data-pct=\"{}\" data-answered=\"{}\">",
            esc(&p.label),
            p.pct_within_target
                .map(|v| v.to_string())
                .unwrap_or_default(),
            p.answered
        );
        match p.pct_within_target {
            Some(v) => {
                let y = y_of(v, 100.0);
                let _ = write!(
                    out,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" \
                     fill=\"{BAR_FILL}\"><title>{}: {v}% ({} answered)</title></rect>",
                    esc(&p.label),
                    p.answered,
                    h = base - y
                );
                if values_fit {
                    let _ = write!(
                        out,
                        "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" \
                         font-size=\"10\" fill=\"{INK}\">{}</text>",
                        v.round(),
                        ty = y - 3.0
                    );
                }
            }
            None => {
                let _ = write!(
                    out,
                    "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" fill=\"#999\">–</text>",
                    ty = base - 4.0
                );
            }
        }
        if i % every == 0 {
            let _ = write!(
                out,
                "<text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\" font-size=\"10\" \
                 fill=\"{INK}\">{}</text>",
                esc(&label),
                ly = base + 14.0
            );
        }
        out.push_str("</g>");
    }
    let x_label = if by_day {
        "日期 Local date"
    } else {
        "小时 Local hour of day"
    };
    axes(&mut out, x_label, "三声内接听 % within target");
    out.push_str("</svg>");
    out
}
