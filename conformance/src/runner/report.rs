//! Reports of a conformance run: the terminal verdict table, JSON (shape in
//! `conformance/report.schema.json`), JUnit XML for CI systems, and a Markdown conformance
//! table for `docs/conformance/`.

use crate::check::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The JSON Schema of [`SuiteReport`], kept in the repo and checked in tests.
pub const REPORT_SCHEMA: &str = include_str!("../../report.schema.json");

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// What it models.
    pub description: String,
    /// The scenario file.
    pub file: String,
    /// The sender's label.
    pub sender: String,
    /// Seed used.
    pub seed: u64,
    /// Endpoint path.
    pub endpoint: String,
    /// Every check passed.
    pub passed: bool,
    /// The sender exited by itself.
    pub sender_exited: bool,
    /// Its exit code.
    pub sender_exit_code: Option<i32>,
    /// Events written to its stdin.
    pub events_fed: usize,
    /// Wall time of the sender, ms.
    pub duration_ms: u64,
    /// Requests the mock received.
    pub requests: usize,
    /// Requests by HTTP status.
    pub requests_by_status: BTreeMap<String, u64>,
    /// Event classes and checks.
    pub verdict: Verdict,
    /// The end of the sender's stderr.
    pub stderr_tail: String,
    /// The first line of the sender's stderr (the adapters print their settings there).
    pub stderr_head: String,
    /// Lines on the sender's stdout that were not outcome lines (not JSON, no numeric
    /// `seq`, an `outcome` other than `delivered` / `dropped` / `held`): ignored, counted.
    pub stdout_not_outcome_lines: usize,
    /// The first of them (at most [`super::NOT_OUTCOME_EXAMPLES`]), each with why.
    pub stdout_not_outcome_examples: Vec<String>,
    /// Environment the scenario's `[conformance] sender_env` gave the sender.
    pub sender_env: BTreeMap<String, String>,
    /// What the sender did over time: requests, fault windows, throttle lanes, event flow
    /// (drawn by [`SuiteReport::to_html`]).
    pub timeline: super::Timeline,
    /// The sender's crash-restarts (`[conformance] restarts`, contract version 3), in order.
    pub restarts: Vec<RestartReport>,
}

impl ScenarioReport {
    /// "N stdout lines were not outcome lines (ignored), first: ..." when there were any.
    pub fn stdout_note(&self) -> Option<String> {
        let n = self.stdout_not_outcome_lines;
        (n > 0).then(|| {
            format!(
                "{n} stdout line{} not outcome lines (ignored: an event's fate is read only from {{\"seq\":N,\"outcome\":\"delivered\"|\"dropped\"|\"held\"}}), first: {}",
                if n == 1 { " was" } else { "s were" },
                self.stdout_not_outcome_examples.join("; ")
            )
        })
    }
}

/// One crash-restart of the sender, as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestartReport {
    /// 1-based (the new process got `AMPLITUDE_SENDER_RESTART=number`).
    pub number: u32,
    /// When the old process group was SIGKILLed, ms since the start of the run.
    pub at_ms: u64,
    /// Events written to the killed process's stdin.
    pub events_fed: usize,
    /// Outcome lines read from the killed process (they count).
    pub outcome_lines: usize,
    /// The killed process had already exited by itself.
    pub had_exited: bool,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// Version of the report's shape.
    pub schema_version: u32,
    /// The sender's label.
    pub sender: String,
    /// Every scenario passed.
    pub passed: bool,
    /// Per scenario.
    pub scenarios: Vec<ScenarioReport>,
    /// Scenarios that could not be run: (file, error).
    pub errors: Vec<(String, String)>,
}

impl SuiteReport {
    /// Builds the suite report.
    pub fn new(
        sender: String,
        scenarios: Vec<ScenarioReport>,
        errors: Vec<(String, String)>,
    ) -> Self {
        Self {
            schema_version: 3,
            passed: errors.is_empty() && scenarios.iter().all(|s| s.passed),
            sender,
            scenarios,
            errors,
        }
    }

    /// The verdict table for a terminal: one row per scenario, then the failed checks with
    /// examples.
    pub fn to_terminal(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "sender: {}", self.sender);
        let h = [
            "scenario",
            "events",
            "stored",
            "lost(sil)",
            "dupSt",
            "dedup",
            "reject(sil)",
            "held",
            "unexp",
            "reord",
            "propDr",
            "fDrop",
            "req/ev",
            "secs",
        ];
        let _ = writeln!(
            out,
            "{:<28} {:>6} {:>6} {:>10} {:>6} {:>6} {:>11} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}  verdict",
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]
        );
        for s in &self.scenarios {
            let e = &s.verdict.events;
            let failed: Vec<&str> = s
                .verdict
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect();
            let verdict = if s.passed {
                "PASS".to_owned()
            } else {
                format!("FAIL {}", failed.join(","))
            };
            let _ = writeln!(
                out,
                "{:<28} {:>6} {:>6} {:>10} {:>6} {:>6} {:>11} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6.2} {:>7.1}  {}",
                s.scenario,
                e.attempted,
                e.stored,
                format!("{}({})", e.lost, e.lost_silently),
                e.duplicate_stored,
                e.duplicate_deduplicated,
                format!("{}({})", e.expected_rejection, e.refused_silently),
                e.held_at_exit,
                e.unexpected,
                e.reordered,
                e.property_update_dropped,
                e.false_drop_reports,
                s.verdict.efficiency.requests_per_event,
                s.duration_ms as f64 / 1000.0,
                verdict
            );
        }
        for (file, err) in &self.errors {
            let _ = writeln!(out, "{file}: ERROR {err}");
        }
        for s in &self.scenarios {
            if let Some(note) = s.stdout_note() {
                let _ = writeln!(out, "{}: {note}", s.scenario);
            }
        }
        for s in self.scenarios.iter().filter(|s| !s.passed) {
            let _ = writeln!(out, "\n{} ({}):", s.scenario, s.sender);
            for c in s.verdict.checks.iter().filter(|c| !c.passed) {
                let _ = writeln!(out, "  {} — {} ({} found)", c.name, c.description, c.count);
                for ex in &c.examples {
                    let _ = writeln!(out, "    - {ex}");
                }
            }
        }
        let _ = writeln!(
            out,
            "\nevents: logical events (a deliberate re-send counts once); stored: exactly once; \
             lost(sil): valid but never stored (of which nobody reported); dupSt: stored twice or \
             more; dedup: copies dropped by insert_id dedup (allowed); reject(sil): events Amplitude \
             refused for good (invalid, named in a 400, over the daily quota, alone over the \
             size limit, invalid key), of which the sender never reported; held: reported as \
             still held in the sender's durable queue at exit; unexp: stored but never \
             produced; reord: stored out of per-device order (HTTP V2); propDr: user-property \
             updates silently dropped (reported, not failed, unless the scenario says so); \
             fDrop: false drop reports (the sender said dropped, the mock stored it); req/ev: \
             requests per event"
        );
        let _ = writeln!(
            out,
            "\n{} of {} scenarios passed",
            self.scenarios.iter().filter(|s| s.passed).count(),
            self.scenarios.len() + self.errors.len()
        );
        out
    }

    /// JUnit XML: one test suite, one test case per scenario; failed checks as failures.
    pub fn to_junit(&self) -> Result<String, quick_junit::SerializeError> {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut report = Report::new("amplitude-conformance");
        let mut suite = TestSuite::new(format!("conformance ({})", self.sender));
        for s in &self.scenarios {
            let status = if s.passed {
                TestCaseStatus::success()
            } else {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let failed: Vec<String> = s
                    .verdict
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| format!("{}: {} found; {}", c.name, c.count, c.examples.join("; ")))
                    .collect();
                st.set_message(failed.join("\n"));
                st
            };
            let mut case = TestCase::new(s.scenario.clone(), status);
            case.set_classname(format!("conformance.{}", s.sender));
            case.set_time(std::time::Duration::from_millis(s.duration_ms));
            suite.add_test_case(case);
        }
        for (file, err) in &self.errors {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(err.clone());
            suite.add_test_case(TestCase::new(file.clone(), st));
        }
        report.add_test_suite(suite);
        report.to_string()
    }

    /// The sender's name and version as its first stderr line gives it (the SDK adapters
    /// print e.g. `[python-sdk-adapter] amplitude-analytics 1.3.0; server_url=...`).
    pub fn sender_version(&self) -> Option<String> {
        let head = self
            .scenarios
            .iter()
            .map(|s| s.stderr_head.as_str())
            .find(|h| !h.is_empty())?;
        let rest = head.split_once("] ").map_or(head, |(_, r)| r);
        let v = rest.split(';').next()?.trim();
        (!v.is_empty() && v.len() <= 80).then(|| v.to_owned())
    }

    /// A Markdown conformance table: scenario × check with the verdicts observed, counts,
    /// each failure's first explanation, and the sender settings used.
    pub fn to_markdown(&self, title: &str) -> String {
        self.to_markdown_with_html(title, None)
    }

    /// [`SuiteReport::to_markdown`], linking the HTML report of the same run (`html`: the
    /// link target, e.g. its file name beside the Markdown file) under the title.
    pub fn to_markdown_with_html(&self, title: &str, html: Option<&str>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {title}\n");
        let _ = writeln!(
            out,
            "Generated by `amplitude-conformance --report-md` (sender `{}`) from one run; do not edit by \
             hand. Counts come from the mock's ledger and journal, not from the sender's claims; timing-\
             dependent counts vary a little from run to run, the verdicts do not.\n",
            self.sender
        );
        if let Some(link) = html {
            let _ = writeln!(
                out,
                "The same run as an HTML report, with a request timeline, throttle lanes and the \
                 event flow per scenario: [{link}]({link}).\n"
            );
        }
        let _ = writeln!(out, "## Events per scenario\n");
        let _ = writeln!(
            out,
            "| scenario | events | stored once | lost (reported / silent) | stored twice or more | deduplicated copies | refused for good (silent) | held at exit | false drop reports | reordered | requests by status | requests per event | wall time | verdict |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
        );
        for s in &self.scenarios {
            let e = &s.verdict.events;
            let statuses: Vec<String> = s
                .requests_by_status
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} ({} / {}{}) | {} | {} | {} ({}) | {} | {} | {} | {} | {:.2} | {:.1} s{}{} | {} |",
                s.scenario,
                e.attempted,
                e.stored,
                e.lost,
                e.lost - e.lost_silently,
                e.lost_silently,
                if s.restarts.is_empty() {
                    String::new()
                } else {
                    format!("; {} at a restart", e.lost_at_restart)
                },
                e.duplicate_stored,
                e.duplicate_deduplicated,
                e.expected_rejection,
                e.refused_silently,
                e.held_at_exit,
                e.false_drop_reports,
                e.reordered,
                statuses.join(", "),
                s.verdict.efficiency.requests_per_event,
                s.duration_ms as f64 / 1000.0,
                match s.restarts.len() {
                    0 => String::new(),
                    n => format!(", {n} restart(s)"),
                },
                if s.sender_exited { "" } else { " (killed)" },
                if s.passed { "pass" } else { "**fail**" }
            );
        }
        let names: Vec<&str> = self
            .scenarios
            .first()
            .map(|s| s.verdict.checks.iter().map(|c| c.name).collect())
            .unwrap_or_default();
        let _ = writeln!(out, "\n## Checks\n");
        let _ = writeln!(out, "`ok`: passed; `ok (N noted)`: reported only; `FAIL (N)`: N offending events or requests.\n");
        let _ = writeln!(
            out,
            "| check | {} |",
            self.scenarios
                .iter()
                .map(|s| s.scenario.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---|".repeat(self.scenarios.len()));
        for name in names {
            let cells: Vec<String> = self
                .scenarios
                .iter()
                .map(|s| match s.verdict.check(name) {
                    Some(c) if c.passed && c.count == 0 => "ok".to_owned(),
                    Some(c) if c.passed => format!("ok ({} noted)", c.count),
                    Some(c) => format!("**FAIL** ({})", c.count),
                    None => "-".to_owned(),
                })
                .collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        }
        let _ = writeln!(out, "\n## Failures, explained\n");
        let _ = writeln!(out, "The checker's first example for each failed check.\n");
        for s in self.scenarios.iter().filter(|s| !s.passed) {
            for c in s.verdict.checks.iter().filter(|c| !c.passed) {
                let ex = c
                    .examples
                    .first()
                    .map_or(String::new(), |e| one_line(e, 400));
                let _ = writeln!(
                    out,
                    "- **{} / {}** ({} found): {}",
                    s.scenario, c.name, c.count, ex
                );
            }
        }
        for (file, err) in &self.errors {
            let _ = writeln!(out, "- **{file}**: could not run: {err}");
        }
        let _ = writeln!(out, "\n## Scenarios and sender settings\n");
        let _ = writeln!(
            out,
            "| scenario | file | seed | what it models | sender env from the scenario |"
        );
        let _ = writeln!(out, "|---|---|---:|---|---|");
        for s in &self.scenarios {
            let env: Vec<String> = s
                .sender_env
                .iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} |",
                s.scenario,
                relative_file(&s.file),
                s.seed,
                one_line(&s.description, 300),
                if env.is_empty() {
                    "-".to_owned()
                } else {
                    env.join(" ")
                }
            );
        }
        let mut heads: Vec<(String, Vec<&str>)> = Vec::new();
        for s in self.scenarios.iter().filter(|s| !s.stderr_head.is_empty()) {
            let h = mask_ports(&one_line(&s.stderr_head, 1_000));
            match heads.iter_mut().find(|(x, _)| *x == h) {
                Some((_, names)) => names.push(&s.scenario),
                None => heads.push((h, vec![&s.scenario])),
            }
        }
        if !heads.is_empty() {
            let _ = writeln!(
                out,
                "\nSettings the sender reported (its first line on stderr):\n"
            );
            for (h, names) in heads {
                let _ = writeln!(out, "- {}: `{h}`", names.join(", "));
            }
        }
        out
    }
}

/// Collapses whitespace (multi-line SDK messages) and cuts at `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let mut out = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|");
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + " …";
    }
    out
}

/// `127.0.0.1:41221` → `127.0.0.1:PORT`: the embedded mock's port changes every run.
fn mask_ports(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (before, after) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(before);
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("PORT");
        }
        rest = after.get(digits..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The scenario path from `scenarios/` on, when it has one.
fn relative_file(file: &str) -> &str {
    file.rfind("scenarios/")
        .map_or(file, |i| file.get(i..).unwrap_or(file))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Lines on a sender's stdout that were not outcome lines are named in the terminal
    /// report and the JSON report (a diagnostic: the verdict is untouched).
    #[test]
    fn stdout_lines_that_were_not_outcome_lines_are_reported() {
        let mut s = super::super::html::tests::scenario("typo", 10);
        let passed = s.passed;
        s.stdout_not_outcome_lines = 3;
        s.stdout_not_outcome_examples = vec![
            "`hello` (expected value at line 1 column 1)".to_owned(),
            r#"`{"seq":0,"outcome":"deliverd"}` (outcome "deliverd" is not "delivered", "dropped" or "held")"#.to_owned(),
        ];
        let report = SuiteReport::new("x".into(), vec![s], vec![]);
        assert_eq!(report.scenarios[0].passed, passed);
        let text = report.to_terminal();
        assert!(
            text.contains("typo: 3 stdout lines were not outcome lines (ignored: "),
            "{text}"
        );
        assert!(
            text.contains(r#"first: `hello` (expected value at line 1 column 1); `{"seq":0,"outcome":"deliverd"}` (outcome "deliverd""#),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["scenarios"][0]["stdout_not_outcome_lines"], 3);
        assert_eq!(
            json["scenarios"][0]["stdout_not_outcome_examples"][0],
            "`hello` (expected value at line 1 column 1)"
        );
        let schema: serde_json::Value = serde_json::from_str(REPORT_SCHEMA).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        // None: no note.
        let mut quiet = report.clone();
        quiet.scenarios[0].stdout_not_outcome_lines = 0;
        assert!(!quiet.to_terminal().contains("not outcome lines"));
    }
}
