//! The HTML conformance report (`--report-html`): one self-contained XHTML-style file (inline
//! CSS and SVG, no script, no external asset) with the summary table and, per scenario, a
//! request timeline, the throttled identities' lanes, the event flow and every failed check
//! with its examples linked to their requests. The same report always renders to the same
//! bytes: no generation time, a fixed order, fixed float formatting.

use super::{ScenarioReport, SuiteReport, ThrottleLane, Timeline};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Above this many requests a scenario's timeline draws buckets, not one mark per request.
pub const MAX_REQUEST_MARKS: usize = 600;
/// Time slices per outcome row when the timeline is bucketed.
pub const TIMELINE_BUCKETS: usize = 120;
/// Throttle lanes drawn per scenario (the table lists them all).
pub const MAX_LANES: usize = 12;
/// Marks per throttle lane outside the pause (marks inside a pause are always drawn).
pub const MAX_LANE_MARKS: usize = 300;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const PLOT: f64 = WIDTH - LEFT - RIGHT;

/// Outcome rows of the timeline: (CSS class, label).
const ROWS: [(&str, &str); 6] = [
    ("ok", "2xx"),
    ("s400", "400 / 4xx"),
    ("s413", "413"),
    ("s429", "429"),
    ("s5xx", "5xx / 408"),
    ("cut", "cut (0)"),
];

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1080px}\
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-top:1px solid #d0d7de;padding-top:16px}h3{font-size:15px;margin:18px 0 6px}\
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:right}th{background:#f6f8fa}\
td.l,th.l{text-align:left}td:first-child{white-space:nowrap}.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}\
p.note,p.desc{font-size:13px;color:#57606a;margin:4px 0}svg{display:block;margin:4px 0}\
svg text{font-size:11px;fill:#57606a;font-family:system-ui,sans-serif}\
.ok{fill:#2da44e}.s400{fill:#e16f24}.s413{fill:#8250df}.s429{fill:#0969da}.s5xx{fill:#cf222e}.cut{fill:#24292f}\
.mark{fill-opacity:.75}.ref{stroke:#000;stroke-width:1.5}.fault{fill:#d4a72c;fill-opacity:.22}.restart{stroke:#8250df;stroke-width:2;stroke-dasharray:4 3}\
.pause{fill:#0969da;fill-opacity:.15}.tick429{stroke:#0969da;stroke-width:1}.elsewhere{fill:none;stroke:#cf222e;stroke-width:1.2}.later{fill:#6e7781}.inpause{fill:#cf222e;stroke:#fff;stroke-width:1}\
.grid{stroke:#eaeef2}.axis{stroke:#8c959f}.lproduced{stroke:#57606a;fill:none;stroke-width:1.5}\
.lstored{stroke:#2da44e;fill:none;stroke-width:1.5}.lbacklog{stroke:#cf222e;fill:none;stroke-width:1.5;stroke-dasharray:4 2}\
div.check{border-left:4px solid #cf222e;padding:2px 12px;margin:10px 0;background:#fff8f8}\
div.check ol{font-size:13px;padding-left:20px}div.check li{margin:4px 0;white-space:pre-wrap}\
.key{display:inline-block;width:10px;height:10px;border-radius:5px;margin:0 4px 0 12px;vertical-align:middle}\
.keybox{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}";

/// Escapes text for an XHTML text node or a quoted attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The scenario's anchor: its name with anything but letters, digits, `-` and `_` as `-`.
pub fn scenario_anchor(scenario: &str) -> String {
    let name: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("s{name}")
}

/// The id of request `id`'s mark on its scenario's timeline: `s{scenario}-r{id}`.
pub fn request_anchor(scenario: &str, id: u64) -> String {
    format!("{}-r{id}", scenario_anchor(scenario))
}

/// The timeline row of a status.
fn row(status: u16) -> usize {
    match status {
        0 => 5,
        200..=299 => 0,
        413 => 2,
        429 => 3,
        408 | 500..=599 => 4,
        _ => 1,
    }
}

/// Mark radius for a request (or bucket) carrying `events` events.
fn radius(events: usize) -> f64 {
    (2.0 + (events as f64).sqrt() * 0.6).min(8.0)
}

fn x_of(t: i64, end: i64) -> f64 {
    LEFT + (t.clamp(0, end) as f64) / (end.max(1) as f64) * PLOT
}

/// `", killed and restarted at 1.500 s and 4.000 s (purple dashed lines)"`, or nothing.
fn restarts_note(restarts: &[super::RestartReport]) -> String {
    if restarts.is_empty() {
        return String::new();
    }
    let at: Vec<String> = restarts
        .iter()
        .map(|r| secs(i64::try_from(r.at_ms).unwrap_or(i64::MAX)))
        .collect();
    format!(
        ", killed and restarted at {} (purple dashed lines)",
        at.join(", ")
    )
}

fn secs(ms: i64) -> String {
    format!("{:.3} s", ms as f64 / 1000.0)
}

/// Request ids named `#N` in a text.
fn named_requests(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('#') {
        let after = rest.get(i + 1..).unwrap_or_default();
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u64>() {
            out.push(n);
        }
        rest = after;
    }
    out
}

/// An example's text, escaped, with every `#N` naming a request of the timeline linked to
/// its mark.
fn linked(text: &str, scenario: &str, known: &BTreeSet<u64>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('#') {
        out.push_str(&esc(rest.get(..i).unwrap_or_default()));
        let after = rest.get(i + 1..).unwrap_or_default();
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse::<u64>() {
            Ok(n) if known.contains(&n) => {
                let _ = write!(out, "<a href=\"#{}\">#{n}</a>", request_anchor(scenario, n));
            }
            _ => out.push_str(&esc(&format!("#{digits}"))),
        }
        rest = after.get(digits.len()..).unwrap_or_default();
    }
    out.push_str(&esc(rest));
    out
}

/// Time axis ticks: a round step giving at most 10 ticks.
fn axis(out: &mut String, end: i64, top: f64, bottom: f64) {
    let steps = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 1_800_000, 3_600_000,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|s| end / s <= 10)
        .unwrap_or(3_600_000);
    let mut t = 0;
    while t <= end {
        let x = x_of(t, end);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 13.0,
            if step < 1_000 {
                format!("{:.1} s", t as f64 / 1000.0)
            } else {
                format!("{} s", t / 1000)
            }
        );
        t += step;
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT:.1}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\"/>",
        LEFT + PLOT
    );
}

/// The request timeline: fault windows shaded, one mark per request (or per bucket), in one
/// row per outcome.
fn timeline_svg(out: &mut String, s: &ScenarioReport, referenced: &BTreeSet<u64>) {
    let tl = &s.timeline;
    let end = tl.end_ms;
    let row_h = 20.0;
    let top = 8.0;
    let bottom = top + row_h * ROWS.len() as f64;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{:.0}\" viewBox=\"0 0 {WIDTH:.0} {:.0}\" role=\"img\" aria-label=\"request timeline\">",
        bottom + 22.0,
        bottom + 22.0
    );
    for f in &tl.faults {
        let windowed = f.from_ms.is_some() || f.until_ms.is_some();
        let (from, until) = match f.hits_ms {
            Some((a, b)) if !windowed => (a, b),
            _ => (f.from_ms.unwrap_or(0), f.until_ms.unwrap_or(end)),
        };
        let (x1, x2) = (x_of(from, end), x_of(until, end));
        let _ = write!(
            out,
            "<rect class=\"fault\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>fault {}{} from {} to {}</title></rect>",
            x1 - 2.0,
            (x2 - x1).max(0.0) + 4.0,
            bottom - top,
            esc(&f.kind),
            f.status.map(|s| format!(" {s}")).unwrap_or_default(),
            secs(from),
            secs(until)
        );
    }
    for r in &s.restarts {
        let at = i64::try_from(r.at_ms).unwrap_or(i64::MAX);
        let x = x_of(at, end);
        let _ = write!(
            out,
            "<line class=\"restart\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"><title>restart {} at {}: the sender's process group was SIGKILLed ({} events fed to it) and the sender started again</title></line>",
            r.number,
            secs(at),
            r.events_fed
        );
    }
    for (i, (class, label)) in ROWS.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><tspan class=\"{class}\">\u{25CF}</tspan> {label}</text>",
            LEFT + PLOT,
            LEFT - 8.0,
            y + 4.0
        );
    }
    axis(out, end, top, bottom);
    let y_of = |status: u16| top + row_h * (row(status) as f64 + 0.5);
    let mark = |out: &mut String, id: u64, at: i64, status: u16, events: usize, r: bool| {
        let (class, _) = ROWS[row(status)];
        let _ = write!(
            out,
            "<circle id=\"{}\" class=\"mark {class}{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{:.1}\"><title>request #{id} at {}: {}, {events} events</title></circle>",
            request_anchor(&s.scenario, id),
            if r { " ref" } else { "" },
            x_of(at, end),
            y_of(status),
            radius(events),
            secs(at),
            if status == 0 { "cut".to_owned() } else { status.to_string() }
        );
    };
    if tl.requests.len() <= MAX_REQUEST_MARKS {
        for r in &tl.requests {
            mark(out, r.id, r.at_ms, r.status, r.events, false);
        }
    } else {
        // (row, bucket) -> (requests, events, first id, last id)
        let mut buckets: BTreeMap<(usize, usize), (usize, usize, u64, u64)> = BTreeMap::new();
        for r in &tl.requests {
            let b =
                ((r.at_ms.max(0) as f64 / end.max(1) as f64) * TIMELINE_BUCKETS as f64) as usize;
            let e = buckets
                .entry((row(r.status), b.min(TIMELINE_BUCKETS - 1)))
                .or_insert((0, 0, r.id, r.id));
            e.0 += 1;
            e.1 += r.events;
            e.2 = e.2.min(r.id);
            e.3 = e.3.max(r.id);
        }
        for ((rw, b), (n, events, first, last)) in &buckets {
            let (class, label) = ROWS[*rw];
            let x = LEFT + (*b as f64 + 0.5) / TIMELINE_BUCKETS as f64 * PLOT;
            let _ = write!(
                out,
                "<circle class=\"mark {class}\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"{:.1}\"><title>{n} requests answered {label} (#{first} to #{last}), {events} events</title></circle>",
                top + row_h * (*rw as f64 + 0.5),
                radius(*events / (*n).max(1))
            );
        }
        for r in tl.requests.iter().filter(|r| referenced.contains(&r.id)) {
            mark(out, r.id, r.at_ms, r.status, r.events, true);
        }
    }
    out.push_str("</svg>");
}

/// The lanes of the throttled identities: pauses shaded, the 429 that started each, and
/// every later request carrying the identity; those the check counted are red.
fn lanes_svg(out: &mut String, s: &ScenarioReport, lanes: &[&ThrottleLane]) {
    let end = s.timeline.end_ms;
    let lane_h = 22.0;
    let top = 6.0;
    let bottom = top + lane_h * lanes.len() as f64;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{:.0}\" viewBox=\"0 0 {WIDTH:.0} {:.0}\" role=\"img\" aria-label=\"throttle lanes\">",
        bottom + 22.0,
        bottom + 22.0
    );
    axis(out, end, top, bottom);
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + lane_h * (i as f64 + 0.5);
        let name: String = lane.id.chars().take(18).collect();
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
            LEFT + PLOT,
            LEFT - 8.0,
            y + 4.0,
            if lane.device { "dev" } else { "user" },
            esc(&name)
        );
        // Overlapping pauses (a 429 restarts the pause) are drawn as one span.
        let mut spans: Vec<(i64, i64, usize)> = Vec::new();
        for p in &lane.pauses {
            match spans.last_mut() {
                Some(last) if p.from_ms <= last.1 => {
                    last.1 = last.1.max(p.until_ms);
                    last.2 += 1;
                }
                _ => spans.push((p.from_ms, p.until_ms, 1)),
            }
        }
        for (from, until, n) in spans {
            let (x1, x2) = (x_of(from, end), x_of(until, end));
            let _ = write!(
                out,
                "<rect class=\"pause\" x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>paused from {} to {} by {n} 429(s)</title></rect>",
                y - lane_h * 0.35,
                (x2 - x1).max(1.0),
                lane_h * 0.7,
                secs(from),
                secs(until)
            );
        }
        let mut ticks = String::new();
        for p in &lane.pauses {
            let _ = write!(
                ticks,
                "M{:.1} {:.1}v{:.1}",
                x_of(p.from_ms, end),
                y - lane_h * 0.45,
                lane_h * 0.9
            );
        }
        let _ = write!(out, "<path class=\"tick429\" d=\"{ticks}\"/>");
        let outside = lane.requests.iter().filter(|r| r.in_pause == 0).count();
        let every = outside.div_ceil(MAX_LANE_MARKS).max(1);
        for (k, r) in lane.requests.iter().filter(|r| r.in_pause == 0).enumerate() {
            if k % every == 0 {
                let (class, what) = if r.in_window {
                    (
                        "elsewhere",
                        "inside the pause, its events counted under their device",
                    )
                } else {
                    ("later", "outside the pause")
                };
                let _ = write!(
                    out,
                    "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3\"><title>request #{} at {}: {what}</title></circle>",
                    x_of(r.at_ms, end),
                    r.id,
                    secs(r.at_ms)
                );
            }
        }
        for r in lane.requests.iter().filter(|r| r.in_pause > 0) {
            let _ = write!(
                out,
                "<a href=\"#{}\"><circle class=\"inpause\" data-counted=\"{}\" cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\"><title>request #{} at {}: inside the pause, {} event(s) counted</title></circle></a>",
                request_anchor(&s.scenario, r.id),
                r.in_pause,
                x_of(r.at_ms, end),
                r.id,
                secs(r.at_ms),
                r.in_pause
            );
        }
    }
    out.push_str("</svg>");
}

/// Produced, stored and backlog over time.
fn flow_svg(out: &mut String, tl: &Timeline) {
    let end = tl.end_ms;
    let (top, bottom) = (8.0, 128.0);
    let max = tl.flow.iter().map(|p| p.produced).max().unwrap_or(0).max(1);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{:.0}\" viewBox=\"0 0 {WIDTH:.0} {:.0}\" role=\"img\" aria-label=\"event flow\">",
        bottom + 22.0,
        bottom + 22.0
    );
    axis(out, end, top, bottom);
    let y = |v: u64| bottom - (v as f64 / max as f64) * (bottom - top);
    for (v, label) in [(max, max.to_string()), (0, "0".to_owned())] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label} events</text>",
            LEFT - 8.0,
            y(v) + 4.0
        );
    }
    for (class, get) in [
        (
            "lproduced",
            (|p: &super::FlowPoint| p.produced) as fn(&super::FlowPoint) -> u64,
        ),
        ("lstored", |p| p.stored),
        ("lbacklog", |p| p.backlog),
    ] {
        let pts: Vec<String> = tl
            .flow
            .iter()
            .map(|p| format!("{:.1},{:.1}", x_of(p.at_ms, end), y(get(p))))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"{class}\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    out.push_str("</svg>");
}

fn scenario_section(out: &mut String, s: &ScenarioReport) {
    let tl = &s.timeline;
    let anchor = scenario_anchor(&s.scenario);
    let failed: Vec<_> = s.verdict.checks.iter().filter(|c| !c.passed).collect();
    let known: BTreeSet<u64> = tl.requests.iter().map(|r| r.id).collect();
    let referenced: BTreeSet<u64> = failed
        .iter()
        .flat_map(|c| c.examples.iter())
        .flat_map(|e| named_requests(e))
        .chain(
            tl.throttle_lanes
                .iter()
                .flat_map(|l| l.requests.iter().filter(|r| r.in_pause > 0).map(|r| r.id)),
        )
        .filter(|id| known.contains(id))
        .collect();
    let _ = write!(
        out,
        "<h2 id=\"{anchor}\">{} <span class=\"{}\">{}</span></h2><p class=\"desc\">{}</p><p class=\"note\">{} events, {} requests ({}), sender {} after {}{}; seed {}; endpoint {}.</p>",
        esc(&s.scenario),
        if s.passed { "pass" } else { "fail" },
        if s.passed { "pass" } else { "FAIL" },
        esc(&s.description),
        s.verdict.events.attempted,
        s.requests,
        esc(&statuses(s)),
        if s.sender_exited { "exited" } else { "was killed" },
        secs(i64::try_from(s.duration_ms).unwrap_or(i64::MAX)),
        restarts_note(&s.restarts),
        s.seed,
        esc(&s.endpoint)
    );
    out.push_str("<h3>Requests</h3>");
    if tl.requests.len() > MAX_REQUEST_MARKS {
        let _ = write!(
            out,
            "<p class=\"note\">{} requests: thinned to one mark per outcome and {}th of the run (size: mean events per request of the bucket); the requests the failed checks name, and those sent inside a throttle pause, are drawn one by one, outlined.</p>",
            tl.requests.len(),
            TIMELINE_BUCKETS
        );
    }
    timeline_svg(out, s, &referenced);
    if !tl.faults.is_empty() {
        let list: Vec<String> = tl
            .faults
            .iter()
            .map(|f| {
                let limit = match (f.count, f.probability) {
                    (Some(n), Some(p)) => format!(" at most {n} requests with probability {p}"),
                    (Some(n), None) => format!(" the next {n} requests"),
                    (None, Some(p)) => format!(" each request with probability {p}"),
                    (None, None) => String::new(),
                };
                let window = match (f.from_ms, f.until_ms) {
                    (None, None) if f.count.is_some() => String::new(),
                    (None, None) => " over the whole run".to_owned(),
                    (a, b) => format!(
                        " from {} to {}",
                        secs(a.unwrap_or(0)),
                        b.map_or("the end".to_owned(), secs)
                    ),
                };
                let hits = match f.hits_ms {
                    Some((a, b)) => format!(" (struck from {} to {})", secs(a), secs(b)),
                    None => " (never struck)".to_owned(),
                };
                format!(
                    "{}{}{window}{limit}{hits}",
                    f.kind,
                    f.status.map(|s| format!(" {s}")).unwrap_or_default(),
                )
            })
            .collect();
        let _ = write!(
            out,
            "<p class=\"note\">Shaded: the scenario's faults (a fault without a time window is shaded where the journal shows it struck): {}.</p>",
            esc(&list.join("; "))
        );
    }
    if !tl.throttle_lanes.is_empty() {
        let total: u64 = tl.throttle_lanes.iter().map(|l| l.counted).sum();
        let check = s
            .verdict
            .check("throttle_pause_respected")
            .map_or(0, |c| c.count);
        let _ = write!(
            out,
            "<h3>Throttled identities</h3><p class=\"note\">One lane per device or user a 429 named: its pauses (shaded blue; a blue tick at each 429 that started or restarted one) and every later request carrying the identity: grey, outside the pause; red, sent inside it, its events counted by <code>throttle_pause_respected</code> ({total} in all; the check counted {check}); red ring, inside the pause but its events already counted under their device (the check counts an event once).</p>"
        );
        let mut drawn: Vec<&ThrottleLane> = tl.throttle_lanes.iter().collect();
        drawn.sort_by_key(|l| l.counted == 0);
        drawn.truncate(MAX_LANES);
        lanes_svg(out, s, &drawn);
        if tl.throttle_lanes.len() > MAX_LANES {
            let _ = write!(
                out,
                "<p class=\"note\">{} lanes drawn of {} (those with counted requests first); the table lists all.</p>",
                MAX_LANES,
                tl.throttle_lanes.len()
            );
        }
        out.push_str("<table><tr><th class=\"l\">identity</th><th>429s</th><th>later requests</th><th>counted in pause</th></tr>");
        for l in &tl.throttle_lanes {
            let kind = if l.device { "device" } else { "user" };
            let _ = write!(
                out,
                "<tr class=\"lane\" data-identity=\"{kind}:{}\" data-counted=\"{}\"><td class=\"l\">{kind} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&l.id),
                l.counted,
                esc(&l.id),
                l.pauses.len(),
                l.requests.len(),
                l.counted
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h3>Event flow</h3><p class=\"note\"><span class=\"keybox\" style=\"background:#57606a\"></span>produced <span class=\"keybox\" style=\"background:#2da44e\"></span>stored <span class=\"keybox\" style=\"background:#cf222e\"></span>backlog: produced minus stored, refused for good or reported dropped (at the last request that carried them)</p>");
    flow_svg(out, tl);
    if !failed.is_empty() {
        out.push_str("<h3>Failed checks</h3>");
    }
    for c in failed {
        let _ = write!(
            out,
            "<div class=\"check\" data-check=\"{}\" data-count=\"{}\"><p><b>{}</b>: {} found. Rule: {}.</p><ol>",
            c.name,
            c.count,
            c.name,
            c.count,
            esc(c.description)
        );
        for e in &c.examples {
            let _ = write!(out, "<li>{}</li>", linked(e, &s.scenario, &known));
        }
        out.push_str("</ol></div>");
    }
}

fn statuses(s: &ScenarioReport) -> String {
    s.requests_by_status
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SuiteReport {
    /// The HTML report: a self-contained XHTML-style page (inline CSS and SVG, no script).
    /// Deterministic: the same report gives the same bytes.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let title = format!("Conformance of {}", self.sender);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/><title>{}</title><style>{CSS}</style></head><body><h1>{} <span class=\"{}\">{}</span></h1>",
            esc(&title),
            esc(&title),
            if self.passed { "pass" } else { "fail" },
            if self.passed { "pass" } else { "FAIL" }
        );
        let _ = write!(
            out,
            "<p class=\"note\">Generated by <code>amplitude-conformance --report-html</code> from one run. Counts come from the mock's ledger and journal. {} of {} scenarios passed.</p>",
            self.scenarios.iter().filter(|s| s.passed).count(),
            self.scenarios.len() + self.errors.len()
        );
        out.push_str("<table><tr><th class=\"l\">scenario</th><th>events</th><th>stored</th><th>lost (silent)</th><th>refused (silent)</th><th>dup. stored</th><th>requests</th><th class=\"l\">by status</th><th>secs</th><th class=\"l\">verdict</th></tr>");
        for s in &self.scenarios {
            let e = &s.verdict.events;
            let _ = write!(
                out,
                "<tr><td class=\"l\"><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{:.1}</td><td class=\"l\"><span class=\"{}\">{}</span></td></tr>",
                scenario_anchor(&s.scenario),
                esc(&s.scenario),
                e.attempted,
                e.stored,
                e.lost,
                e.lost_silently,
                e.expected_rejection,
                e.refused_silently,
                e.duplicate_stored,
                s.requests,
                esc(&statuses(s)),
                s.duration_ms as f64 / 1000.0,
                if s.passed { "pass" } else { "fail" },
                if s.passed {
                    "pass".to_owned()
                } else {
                    format!("FAIL {}", s.verdict.failed().join(", "))
                }
            );
        }
        for (file, err) in &self.errors {
            let _ = write!(
                out,
                "<tr><td class=\"l\">{}</td><td colspan=\"9\" class=\"l\"><span class=\"fail\">ERROR</span> {}</td></tr>",
                esc(file),
                esc(err)
            );
        }
        out.push_str("</table>");
        out.push_str("<p class=\"note\">Timelines: one mark per request at the time the mock received it (seconds since the run's start), in the row of its outcome:");
        for (class, label) in ROWS {
            let _ = write!(
                out,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"12\" height=\"12\" style=\"display:inline;vertical-align:middle;margin-left:8px\"><circle class=\"{class}\" cx=\"6\" cy=\"6\" r=\"5\"/></svg> {label}"
            );
        }
        let _ = write!(
            out,
            "; area grows with the events it carried; shaded amber: the scenario's fault windows. Above {MAX_REQUEST_MARKS} requests a timeline is thinned to one mark per outcome and time slice; a throttle lane draws at most {MAX_LANE_MARKS} marks outside the pause, every mark inside it. An example's <code>#N</code> links to request N's mark.</p>"
        );
        for s in &self.scenarios {
            scenario_section(&mut out, s);
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// Checks that `html` is well-formed XHTML-style markup: after an optional `<!DOCTYPE>`,
/// every tag is closed in order or self-closed, attribute values are quoted, and every `&`
/// starts an entity. A small std-only check of the report's shape (not a validator).
///
/// # Errors
/// The first problem, with its byte offset.
pub fn check_well_formed(html: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = html;
    let mut pos = 0usize;
    if let Some(r) = rest.strip_prefix("<!DOCTYPE html>") {
        pos += html.len() - r.len();
        rest = r;
    }
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            check_text(rest, pos)?;
            break;
        };
        check_text(rest.get(..lt).unwrap_or_default(), pos)?;
        let tag_start = pos + lt;
        let tail = rest.get(lt..).unwrap_or_default();
        let Some(gt) = tag_end(tail) else {
            return Err(format!("unterminated tag at byte {tag_start}"));
        };
        let tag = tail.get(1..gt).unwrap_or_default();
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("</{name}> at byte {tag_start} closes <{open}>")),
                None => return Err(format!("</{name}> at byte {tag_start} closes nothing")),
            }
        } else if !tag.starts_with("!--") {
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_whitespace().next().unwrap_or_default();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == ':') {
                return Err(format!("bad tag name {name:?} at byte {tag_start}"));
            }
            check_attributes(body.get(name.len()..).unwrap_or_default(), tag_start)?;
            if !self_closing {
                stack.push(name);
            }
        }
        pos = tag_start + gt + 1;
        rest = tail.get(gt + 1..).unwrap_or_default();
    }
    match stack.last() {
        Some(open) => Err(format!("<{open}> is never closed")),
        None => Ok(()),
    }
}

/// The index of the `>` ending the tag at the start of `s`, outside quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') if i > 0 => return None,
            _ => {}
        }
    }
    None
}

fn check_text(text: &str, pos: usize) -> Result<(), String> {
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        let after = rest.get(i + 1..).unwrap_or_default();
        let semi = after.find(';').filter(|&n| n > 0 && n <= 10);
        let ok = semi.is_some_and(|n| {
            after
                .get(..n)
                .is_some_and(|e| e.chars().all(|c| c.is_ascii_alphanumeric() || c == '#'))
        });
        if !ok {
            return Err(format!("bare & near byte {pos}"));
        }
        rest = after;
    }
    if text.contains('>') {
        return Err(format!("bare > near byte {pos}"));
    }
    Ok(())
}

fn check_attributes(attrs: &str, pos: usize) -> Result<(), String> {
    let mut rest = attrs.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            return Err(format!("attribute without a value at byte {pos}: {rest:?}"));
        };
        let name = rest.get(..eq).unwrap_or_default().trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad attribute {name:?} at byte {pos}"));
        }
        let value = rest.get(eq + 1..).unwrap_or_default();
        let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            return Err(format!("unquoted value of {name} at byte {pos}"));
        };
        let inner = value.get(1..).unwrap_or_default();
        let Some(close) = inner.find(q) else {
            return Err(format!("unterminated value of {name} at byte {pos}"));
        };
        check_text(inner.get(..close).unwrap_or_default(), pos)?;
        rest = inner.get(close + 1..).unwrap_or_default().trim_start();
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::{CheckResult, EventCounts, Verdict};
    use crate::runner::{
        FaultWindow, FlowPoint, LanePause, LaneRequest, ThrottleLane, TimelineRequest,
    };

    /// A scenario with `n` requests over 60 s, a 429 throttling `dev-1`, a fault window and
    /// one failed check naming request #7.
    pub(crate) fn scenario(name: &str, n: u64) -> ScenarioReport {
        let requests: Vec<TimelineRequest> = (0..n)
            .map(|i| TimelineRequest {
                id: i + 1,
                at_ms: i64::try_from(i * 60_000 / n.max(1)).unwrap(),
                status: [200, 200, 429, 503, 0, 413, 400][usize::try_from(i % 7).unwrap()],
                events: usize::try_from(i % 50).unwrap() + 1,
            })
            .collect();
        let lane = ThrottleLane {
            device: true,
            id: "dev-1".into(),
            pauses: vec![LanePause {
                request_id: 3,
                from_ms: 1_000,
                until_ms: 31_000,
            }],
            requests: vec![
                LaneRequest {
                    id: 7,
                    at_ms: 2_000,
                    in_pause: 2,
                    in_window: true,
                },
                LaneRequest {
                    id: 9,
                    at_ms: 3_000,
                    in_pause: 1,
                    in_window: true,
                },
                LaneRequest {
                    id: 90,
                    at_ms: 40_000,
                    in_pause: 0,
                    in_window: false,
                },
            ],
            counted: 3,
        };
        ScenarioReport {
            scenario: name.into(),
            description: "a <test> & more".into(),
            file: format!("scenarios/{name}.toml"),
            sender: "ref".into(),
            seed: 1,
            endpoint: "/2/httpapi".into(),
            passed: false,
            sender_exited: true,
            sender_exit_code: Some(0),
            events_fed: 100,
            duration_ms: 60_000,
            requests: usize::try_from(n).unwrap(),
            requests_by_status: [("200".to_owned(), n)].into_iter().collect(),
            verdict: Verdict {
                events: EventCounts { attempted: 100, stored: 90, ..Default::default() },
                checks: vec![
                    CheckResult {
                        name: "throttle_pause_respected",
                        description: "no throttled device/user was sent again before its 30 s pause ended",
                        passed: false,
                        count: 3,
                        examples: vec!["request #7 sent device dev-1 29000 ms before its pause after request #3's 429 ended".into()],
                    },
                    CheckResult {
                        name: "no_lost_events",
                        description: "every valid event was stored",
                        passed: true,
                        count: 0,
                        examples: vec![],
                    },
                ],
                efficiency: Default::default(),
            },
            stderr_tail: String::new(),
            stderr_head: String::new(),
            stdout_not_outcome_lines: 0,
            stdout_not_outcome_examples: Vec::new(),
            sender_env: Default::default(),
            timeline: Timeline {
                end_ms: 60_000,
                requests,
                faults: vec![FaultWindow {
                    kind: "status".into(),
                    status: Some(503),
                    from_ms: Some(5_000),
                    until_ms: Some(15_000),
                    count: None,
                    probability: None,
                    hits_ms: Some((5_000, 14_000)),
                }],
                throttle_lanes: vec![lane],
                flow: (0..=200)
                    .map(|k| FlowPoint {
                        at_ms: k * 300,
                        produced: u64::try_from(k).unwrap(),
                        stored: u64::try_from(k).unwrap() / 2,
                        backlog: u64::try_from(k).unwrap() / 2,
                    })
                    .collect(),
            },
            restarts: vec![super::super::RestartReport {
                number: 1,
                at_ms: 20_000,
                events_fed: 40,
                outcome_lines: 10,
                had_exited: false,
            }],
        }
    }

    #[test]
    fn the_page_is_well_formed_and_links_examples_to_marks() {
        let r = SuiteReport::new("ref".into(), vec![scenario("heavy hitter", 100)], vec![]);
        let html = r.to_html();
        check_well_formed(&html).unwrap();
        assert!(html.contains("id=\"sheavy-hitter-r7\""));
        assert!(html.contains("<a href=\"#sheavy-hitter-r7\">#7</a>"));
        assert!(html.contains("data-check=\"throttle_pause_respected\" data-count=\"3\""));
        assert!(!html.contains("data-check=\"no_lost_events\""));
        assert!(html.contains("a &lt;test&gt; &amp; more"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
        let counted: u64 = html
            .split("class=\"inpause\" data-counted=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(counted, 3);
    }

    #[test]
    fn sixteen_big_scenarios_stay_under_two_mb_and_render_identically() {
        let scenarios: Vec<_> = (0..16)
            .map(|i| scenario(&format!("s{i}"), 20_000))
            .collect();
        let r = SuiteReport::new("ref".into(), scenarios, vec![]);
        let (a, b) = (r.to_html(), r.clone().to_html());
        assert_eq!(a, b);
        check_well_formed(&a).unwrap();
        assert!(a.len() < 2_000_000, "{} bytes", a.len());
        assert!(a.contains("thinned"));
        // The named request keeps its own mark when the timeline is thinned.
        assert!(a.contains("id=\"ss3-r7\""));
    }

    #[test]
    fn a_markdown_table_written_with_it_links_the_html_report() {
        let r = SuiteReport::new("ref".into(), vec![scenario("a", 10)], vec![]);
        let md = r.to_markdown_with_html("T", Some("ref.html"));
        assert!(md.contains("[ref.html](ref.html)"), "{md}");
        assert!(!r.to_markdown("T").contains("ref.html"));
    }

    #[test]
    fn the_well_formedness_check_catches_broken_markup() {
        assert!(check_well_formed("<a><b></a></b>").is_err());
        assert!(check_well_formed("<a>x & y</a>").is_err());
        assert!(check_well_formed("<a x=1></a>").is_err());
        assert!(check_well_formed("<a>").is_err());
        assert!(check_well_formed("<!DOCTYPE html>\n<a x=\"1\"><br/>&amp;</a>").is_ok());
    }
}
