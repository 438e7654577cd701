//! The HTML report: one self-contained file with a summary table and three inline SVG
//! charts rendered by `plotters` — events/s offered vs sent vs answered 2xx, responses by
//! status over time, and latency percentiles (corrected p50/p99, uncorrected p99) over time.

use crate::error::RunError;
use crate::report::Report;
use plotters::prelude::*;
use std::fmt::Write as _;

const W: u32 = 960;
const H: u32 = 320;

type Series = (String, RGBColor, Vec<(f64, f64)>);

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders a line chart to an SVG string.
fn line_chart(title: &str, y_desc: &str, x_max: f64, series: &[Series]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let y_max = series
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max.max(1.0), 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc(y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, color, points) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Renders `report` as a self-contained HTML page (inline SVG, inline CSS, no scripts).
///
/// # Errors
/// [`RunError::Render`] if a chart cannot be drawn.
pub fn render_html(report: &Report) -> Result<String, RunError> {
    let s = &report.series;
    // Points at the middle of each second.
    let x = |i: u64| i as f64 + 0.5;
    let x_max = (s.len() as f64).max(report.scenario.duration_ms as f64 / 1_000.0);
    let rates = line_chart(
        "Events/s: offered vs sent vs answered 2xx",
        "events/s",
        x_max,
        &[
            (
                "offered".into(),
                PALETTE[0],
                s.iter()
                    .map(|p| (x(p.t_s), p.offered_events as f64))
                    .collect(),
            ),
            (
                "sent".into(),
                PALETTE[1],
                s.iter().map(|p| (x(p.t_s), p.sent_events as f64)).collect(),
            ),
            (
                "2xx".into(),
                PALETTE[2],
                s.iter().map(|p| (x(p.t_s), p.ok_events as f64)).collect(),
            ),
            (
                "dropped".into(),
                PALETTE[3],
                s.iter()
                    .map(|p| (x(p.t_s), p.dropped_events as f64))
                    .collect(),
            ),
        ],
    )
    .map_err(RunError::Render)?;
    let mut statuses: Vec<String> = s.iter().flat_map(|p| p.responses.keys().cloned()).collect();
    statuses.sort();
    statuses.dedup();
    let mut status_series: Vec<Series> = statuses
        .iter()
        .enumerate()
        .map(|(i, code)| {
            let color = match code.as_str() {
                c if c.starts_with('2') => PALETTE[2],
                "429" => PALETTE[1],
                c if c.starts_with('5') => PALETTE[3],
                _ => PALETTE[(4 + i) % PALETTE.len()],
            };
            (
                format!("HTTP {code}"),
                color,
                s.iter()
                    .map(|p| (x(p.t_s), p.responses.get(code).copied().unwrap_or(0) as f64))
                    .collect(),
            )
        })
        .collect();
    status_series.push((
        "transport errors".into(),
        PALETTE[7],
        s.iter()
            .map(|p| (x(p.t_s), p.transport_errors as f64))
            .collect(),
    ));
    let status = line_chart(
        "Responses/s by status",
        "responses/s",
        x_max,
        &status_series,
    )
    .map_err(RunError::Render)?;
    let lat = |f: fn(&crate::report::SeriesPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        s.iter()
            .filter_map(|p| f(p).map(|v| (x(p.t_s), v)))
            .collect()
    };
    let latency = line_chart(
        "Request latency by intended second (ms)",
        "ms",
        x_max,
        &[
            (
                "p50 corrected".into(),
                PALETTE[0],
                lat(|p| p.latency_p50_ms),
            ),
            (
                "p99 corrected".into(),
                PALETTE[3],
                lat(|p| p.latency_p99_ms),
            ),
            (
                "p99 uncorrected".into(),
                PALETTE[7],
                lat(|p| p.latency_p99_uncorrected_ms),
            ),
        ],
    )
    .map_err(RunError::Render)?;

    let mut h = String::new();
    let verdict = if report.passed && !report.load.fails_run() {
        ("PASS", "pass")
    } else {
        ("FAIL", "fail")
    };
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>loadgen: {name}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222}}
h1{{font-size:22px;margin-bottom:4px}} .sub{{color:#666;margin-top:0}}
.badge{{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}}
.pass{{background:#2ca02c}} .fail{{background:#d62728}} .na{{background:#999}}
.cards{{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}}
.card{{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}}
.card b{{display:block;font-size:20px}} .card span{{color:#666;font-size:12px}}
table{{border-collapse:collapse;margin:12px 0}} td,th{{border-bottom:1px solid #eee;padding:4px 10px;text-align:right}}
th:first-child,td:first-child{{text-align:left}} figure{{margin:18px 0}}
.underload{{border:2px solid #d62728;background:#fdecea;border-radius:6px;padding:10px 14px;margin:12px 0}}
</style></head><body>
<h1>{name} <span class="badge {vclass}">{vtext}</span></h1>
<p class="sub">{part}seed {seed} · {endpoint} · {region} · target {target} · {dur:.1} s scheduled, {elapsed:.1} s elapsed · {tool}</p>
"#,
        name = escape(&report.scenario.name),
        vclass = verdict.1,
        vtext = verdict.0,
        part = match (report.segment, report.merged_segments) {
            (Some(seg), _) => format!("segment {seg} · "),
            (None, Some(n)) => format!("merged from {n} segments · "),
            (None, None) => String::new(),
        },
        seed = report.scenario.seed,
        endpoint = escape(&report.scenario.endpoint),
        region = escape(&report.scenario.region),
        target = escape(&report.target),
        dur = report.scenario.duration_ms as f64 / 1_000.0,
        elapsed = report.elapsed_ms / 1_000.0,
        tool = escape(&report.tool),
    );
    if !report.load.loaded_as_asked && !report.load.message.is_empty() {
        let _ = write!(
            h,
            "<div class=\"underload\" role=\"alert\"><b>Target not loaded as asked.</b> {}</div>",
            escape(
                report
                    .load
                    .message
                    .trim_start_matches("TARGET NOT LOADED AS ASKED: ")
            )
        );
    }
    if let Some(why) = report.accepted_nothing() {
        let _ = write!(
            h,
            "<div class=\"underload\" role=\"alert\"><b>The target accepted nothing.</b> {}</div>",
            escape(&why)
        );
    }
    let l = &report.latency_ms;
    let cards = [
        (
            format!("{}", report.offered.events),
            "events offered".to_owned(),
        ),
        (
            format!("{:.1}/s", report.achieved_rate_eps),
            format!(
                "achieved (offered {:.1}/s, error {:.2}%)",
                report.offered_rate_eps,
                report.achieved_rate_error * 100.0
            ),
        ),
        (
            format!("{}", report.dropped.events),
            "events dropped (could not start in time)".to_owned(),
        ),
        (
            format!("{}", report.events_2xx),
            "events answered 2xx".to_owned(),
        ),
        (
            format!("{:.1} ms", l.corrected.p99),
            format!("p99 latency (uncorrected {:.1} ms)", l.uncorrected.p99),
        ),
        (
            format!("{}", report.throttled.responses),
            "429 responses".to_owned(),
        ),
    ];
    h.push_str("<div class=\"cards\">");
    for (v, label) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            escape(&v),
            escape(&label)
        );
    }
    h.push_str("</div>\n");
    for svg in [&rates, &status, &latency] {
        let _ = writeln!(h, "<figure>{svg}</figure>");
    }
    h.push_str("<h2>Latency (ms)</h2><table><tr><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    for (name, v) in [
        ("corrected (from intended start)", &l.corrected),
        ("uncorrected (from actual send)", &l.uncorrected),
        ("event delivery (2xx)", &l.delivery),
        ("schedule lag", &l.schedule_lag),
    ] {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            v.count, v.p50, v.p90, v.p99, v.p999, v.max
        );
    }
    h.push_str("</table>\n<h2>Responses</h2><table><tr><th>status</th><th>requests</th></tr>");
    for (k, v) in &report.status_counts {
        let _ = write!(h, "<tr><td>HTTP {}</td><td>{v}</td></tr>", escape(k));
    }
    for (k, v) in &report.transport_errors {
        let _ = write!(h, "<tr><td>error: {}</td><td>{v}</td></tr>", escape(k));
    }
    h.push_str("</table>\n");
    if report.throttled.responses > 0 {
        let mut ids: Vec<(String, u64)> = report
            .throttled
            .devices
            .iter()
            .map(|(k, v)| (format!("device {k}"), *v))
            .chain(
                report
                    .throttled
                    .users
                    .iter()
                    .map(|(k, v)| (format!("user {k}"), *v)),
            )
            .collect();
        ids.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        h.push_str("<h2>Throttled identities (429 bodies)</h2><table><tr><th>identity</th><th>429 responses naming it</th></tr>");
        for (k, v) in ids.iter().take(20) {
            let _ = write!(h, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
        }
        h.push_str("</table>\n");
    }
    if !report.thresholds.is_empty() {
        h.push_str("<h2>Thresholds</h2><table><tr><th>metric</th><th>criterion</th><th>actual</th><th>verdict</th></tr>");
        for t in &report.thresholds {
            let (cls, txt) = match t.passed {
                Some(true) => ("pass", "PASS"),
                Some(false) => ("fail", "FAIL"),
                None => ("na", "not measured here"),
            };
            let actual = t
                .actual
                .map_or_else(|| "–".to_owned(), |a| format!("{a:.3}"));
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{actual}</td><td><span class=\"badge {cls}\">{txt}</span></td></tr>",
                escape(&t.metric),
                escape(&t.criterion)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Phases</h2><table><tr><th>phase</th><th>start s</th><th>end s</th></tr>");
    for p in &report.scenario.phases {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape(&p.name),
            p.start_ms as f64 / 1e3,
            p.end_ms as f64 / 1e3
        );
    }
    h.push_str("</table>\n</body></html>\n");
    Ok(h)
}
