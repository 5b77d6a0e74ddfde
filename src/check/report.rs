//! The SVG timeline `kvstore check` writes next to the history: one lane per client showing
//! when its operations succeeded or had an unknown outcome, the faults as shaded bands, the
//! leader as seen once a second, and (when the check failed) the shrunk failing operations.
//!
//! Pure: builds a string from the run's data; the caller writes the file.

use std::fmt::Write;
use std::time::Duration;

use super::history::Op;
use super::nemesis::{FaultEvent, FaultKind};

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 70.0;
const LANE: f64 = 14.0;
const TOP: f64 = 50.0;

/// What one lane pixel column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Empty,
    Ok,
    Failed,
    Unknown,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fault_color(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Kill => "#f4a3a3",
        FaultKind::Pause => "#f7d08a",
        FaultKind::Partition => "#c9b3ef",
        FaultKind::Membership => "#a8d8c0",
        FaultKind::Clock => "#9fd3f0",
    }
}

/// The timeline of a run that lasted `span`. `leaders` are (time, leader's node number) samples;
/// `failing` are the operations of a shrunk non-linearizable history, if any.
pub fn timeline_svg(
    ops: &[Op],
    events: &[FaultEvent],
    leaders: &[(Duration, Option<usize>)],
    failing: &[Op],
    span: Duration,
) -> String {
    let clients = ops.iter().map(|o| o.client_id).max().map_or(0, |m| m + 1) as usize;
    let plot = WIDTH - LEFT - 10.0;
    let span_ns = span.as_nanos().max(1) as f64;
    let x = |ns: i64| LEFT + plot * (ns.max(0) as f64 / span_ns).min(1.0);
    let height = TOP + LANE * clients as f64 + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = write!(
        svg,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="14" font-size="12">kvstore check: {} ops, {} clients, {:.1} s; green: succeeded, pink: failed, grey: unknown outcome; bands: faults; top line: leader</text>"##,
        ops.len(),
        clients,
        span.as_secs_f64()
    );
    for e in events {
        let (x0, x1) = (x(e.from.as_nanos() as i64), x(e.to.as_nanos() as i64));
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{}" width="{:.1}" height="{:.1}" fill="{}" opacity="0.6"><title>{}</title></rect>"#,
            TOP - 8.0,
            (x1 - x0).max(1.0),
            LANE * clients as f64 + 8.0,
            fault_color(e.kind),
            escape(&e.what)
        );
    }
    // The leader once a second, as a labelled strip above the lanes.
    for (i, (t, leader)) in leaders.iter().enumerate() {
        let next = leaders.get(i + 1).map_or(span, |(t, _)| *t);
        let (x0, x1) = (x(t.as_nanos() as i64), x(next.as_nanos() as i64));
        let label = leader.map_or("?".to_owned(), |l| format!("n{l}"));
        let changed = i == 0 || leaders[i - 1].1 != *leader;
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="24" width="{:.1}" height="10" fill="{}" stroke="white"><title>leader {label}</title></rect>"##,
            (x1 - x0).max(1.0),
            if leader.is_some() {
                "#8fb8de"
            } else {
                "#dddddd"
            }
        );
        if changed {
            let _ = write!(svg, r#"<text x="{:.1}" y="44">{label}</text>"#, x0 + 1.0);
        }
    }
    // Each client's lane: pixel columns marked by the outcomes of operations called there.
    let columns = plot.ceil() as usize;
    for c in 0..clients {
        let y = TOP + LANE * c as f64;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}">client {c}</text>"#,
            y + LANE - 4.0
        );
        let mut cells = vec![Cell::Empty; columns];
        for o in ops.iter().filter(|o| o.client_id as usize == c) {
            let col = ((x(o.call) - LEFT) as usize).min(columns.saturating_sub(1));
            let cell = if o.output.unknown {
                Cell::Unknown
            } else if o.output.failed {
                Cell::Failed
            } else {
                Cell::Ok
            };
            if cells[col] != Cell::Unknown {
                cells[col] = cell;
            }
        }
        let mut start = 0;
        for i in 1..=columns {
            if i == columns || cells[i] != cells[start] {
                let color = match cells[start] {
                    Cell::Empty => None,
                    Cell::Ok => Some("#5cb85c"),
                    Cell::Failed => Some("#e8a0a0"),
                    Cell::Unknown => Some("#999999"),
                };
                if let Some(color) = color {
                    let _ = write!(
                        svg,
                        r#"<rect x="{:.1}" y="{:.1}" width="{}" height="{:.1}" fill="{color}"/>"#,
                        LEFT + start as f64,
                        y + 2.0,
                        i - start,
                        LANE - 4.0
                    );
                }
                start = i;
            }
        }
    }
    for o in failing {
        let y = TOP + LANE * o.client_id as f64;
        let end = if o.ret == i64::MAX { o.call } else { o.ret };
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="red" stroke-width="2"><title>{}</title></rect>"#,
            x(o.call),
            y + 1.0,
            (x(end) - x(o.call)).max(3.0),
            LANE - 2.0,
            escape(&format!(
                "{} -> {}",
                serde_json::to_string(&o.input).unwrap_or_default(),
                serde_json::to_string(&o.output).unwrap_or_default()
            ))
        );
    }
    let axis_y = TOP + LANE * clients as f64 + 14.0;
    let secs = span.as_secs();
    let step = (secs / 10).max(1);
    for s in (0..=secs).step_by(step as usize) {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{axis_y:.1}">{s}s</text>"#,
            x(Duration::from_secs(s).as_nanos() as i64)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::history::{OpInput, OpOutput};

    #[test]
    fn the_timeline_shows_lanes_faults_leaders_and_failing_ops() {
        let op = |client, call, unknown| Op {
            client_id: client,
            input: OpInput::Get { key: "k".into() },
            call,
            output: if unknown {
                OpOutput::unknown()
            } else {
                OpOutput::read(None)
            },
            ret: if unknown { i64::MAX } else { call + 1_000_000 },
        };
        let ops = vec![
            op(0, 0, false),
            op(1, 500_000_000, true),
            op(1, 900_000_000, false),
        ];
        let events = vec![FaultEvent {
            kind: FaultKind::Kill,
            from: Duration::from_millis(400),
            to: Duration::from_millis(700),
            what: "killed n1 <for> 300 ms".into(),
            recovered: Some(Duration::from_millis(20)),
        }];
        let leaders = vec![
            (Duration::ZERO, Some(1)),
            (Duration::from_millis(600), Some(2)),
        ];
        let svg = timeline_svg(&ops, &events, &leaders, &ops[1..2], Duration::from_secs(1));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("client 1"));
        assert!(
            svg.contains("killed n1 &lt;for&gt; 300 ms"),
            "escaped fault label"
        );
        assert!(svg.contains(">n2</text>"), "leader change labelled");
        assert!(svg.contains("#999999"), "unknown outcome drawn");
        assert!(svg.contains(r#"stroke="red""#), "failing op outlined");
    }
}
