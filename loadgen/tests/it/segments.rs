//! Segments (`--segment K/N`) and the exact merge of their reports (docs/scale-out.md,
//! ADR 011): the N segments of a shipped scenario are exactly the unsharded stream; merged
//! histograms give the percentiles of all samples; two segment processes against one mock
//! store exactly the unsharded run's events and their merged report counts what the
//! unsharded run counts; mismatched reports are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use crate::common::load;
use amplitude_loadgen::{
    merge, run, GeneratedEvent, LatencyHistograms, MergeError, Report, RunOptions, Scenario,
    Segment,
};
use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output};

/// Shipped scenarios of every kind of arrival and identity: Poisson over uniform users,
/// a Zipf heavy hitter, dirty data with re-sends and events without insert_id, MMPP bursts
/// over two devices per user, a three-phase spike, a replayed trace.
const SCENARIOS: &[&str] = &[
    "steady-trickle.toml",
    "heavy-hitter.toml",
    "dirty-data.toml",
    "session-bursts.toml",
    "launch-spike.toml",
    "trace-replay.toml",
];

fn segment_events(sc: &Scenario, seg: Segment) -> Vec<GeneratedEvent> {
    sc.events(sc.seed).unwrap().segment(seg).collect()
}

#[test]
fn the_segments_of_shipped_scenarios_are_exactly_the_unsharded_stream() {
    for name in SCENARIOS {
        let sc = load(name);
        let whole: Vec<GeneratedEvent> = sc.events(sc.seed).unwrap().collect();
        assert!(whole.len() > 100, "{name}: {} events", whole.len());
        for n in [1u32, 2, 3, 7] {
            let mut union: Vec<GeneratedEvent> = Vec::with_capacity(whole.len());
            // user_id / device_id -> the segment that sent it.
            let mut owner: HashMap<String, u32> = HashMap::new();
            for k in 0..n {
                let seg = Segment::new(k, n).unwrap();
                let part = segment_events(&sc, seg);
                if n > 1 && !name.starts_with("trace") {
                    assert!(
                        part.len() < whole.len(),
                        "{name} {seg}: a segment holds everything"
                    );
                }
                // (The trace has only a few users: one of 7 segments may hold none.)
                if !name.starts_with("trace") {
                    assert!(!part.is_empty(), "{name} {seg}: empty segment");
                }
                // In stream order, intended times non-decreasing.
                assert!(part
                    .windows(2)
                    .all(|w| w[0].index < w[1].index && w[0].offset_us <= w[1].offset_us));
                for ev in &part {
                    // Identities stay in one segment. A defect may rewrite the ids of its
                    // own event, so only events without one are checked (a re-send
                    // repeats a clean original).
                    let clean = ev
                        .defect
                        .is_none_or(|d| matches!(d, amplitude_loadgen::Defect::Resend { .. }));
                    if clean {
                        for id in [&ev.event.user_id, &ev.event.device_id]
                            .into_iter()
                            .flatten()
                        {
                            let prev = owner.insert(id.clone(), k);
                            assert!(
                                prev.is_none_or(|p| p == k),
                                "{name} N={n}: {id} in segments {prev:?} and {k}"
                            );
                        }
                    }
                }
                union.extend(part);
            }
            union.sort_by_key(|e| e.index);
            // Same events, insert_ids, seqs, intended times and bytes; nothing twice.
            assert_eq!(union.len(), whole.len(), "{name} N={n}");
            assert!(union == whole, "{name} N={n}: the union differs");
        }
    }
}

#[test]
fn each_segment_offers_its_share_of_the_rate() {
    // 500 uniform users at 40 events/s: each of 4 segments gets about a quarter.
    let sc = load("steady-trickle.toml");
    let whole = sc.events(sc.seed).unwrap().count() as f64;
    let parts: Vec<usize> = (0..4)
        .map(|k| segment_events(&sc, Segment::new(k, 4).unwrap()).len())
        .collect();
    assert_eq!(parts.iter().sum::<usize>() as f64, whole);
    for p in &parts {
        let share = *p as f64 / whole;
        assert!((0.15..0.35).contains(&share), "{parts:?}");
    }
}

fn loadgen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amplitude-loadgen"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn generate_segments_concatenate_to_the_whole_stream() {
    let dir = tempfile::tempdir().unwrap();
    let source = crate::common::scenarios_dir().join("dirty-data.toml");
    let source = source.to_str().unwrap();
    let whole = loadgen(&["generate", source, "--with-timing"], dir.path());
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    let mut lines: Vec<(u64, String)> = Vec::new();
    for k in 0..3 {
        let seg = format!("{k}/3");
        let out = loadgen(
            &["generate", source, "--with-timing", "--segment", &seg],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        for line in text(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            lines.push((v["index"].as_u64().unwrap(), line.to_owned()));
        }
    }
    lines.sort();
    let joined: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    let whole: Vec<String> = text(&whole.stdout).lines().map(str::to_owned).collect();
    assert_eq!(joined.len(), whole.len());
    assert!(
        joined == whole,
        "the three segments differ from the whole stream"
    );

    // K must be below N: a usage error naming the form.
    let bad = loadgen(&["generate", source, "--segment", "3/3"], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("expected K/N"),
        "{}",
        text(&bad.stderr)
    );
}

// ---------------------------------------------------------------- merge, exactness

fn b64(h: &Histogram<u64>) -> String {
    let mut v = Vec::new();
    V2Serializer::new().serialize(h, &mut v).unwrap();
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// A segment report whose corrected latency holds `samples` (µs), as a run would write it.
fn synthetic(seg: &str, seed: u64, samples: &[u64]) -> Report {
    let mut h = Histogram::<u64>::new(3).unwrap();
    for s in samples {
        h.record(*s).unwrap();
    }
    let empty = b64(&Histogram::<u64>::new(3).unwrap());
    let mut r = Report {
        schema_version: 1,
        tool: "amplitude-loadgen test".into(),
        segment: Some(seg.parse().unwrap()),
        target: "http://127.0.0.1:1/batch".into(),
        latency_histograms: Some(LatencyHistograms {
            corrected: b64(&h),
            uncorrected: empty.clone(),
            delivery: empty.clone(),
            schedule_lag: empty,
        }),
        passed: true,
        ..Report::default()
    };
    r.scenario.name = "synthetic".into();
    r.scenario.seed = seed;
    r.scenario.duration_ms = 1_000;
    r.sent.requests = samples.len() as u64;
    r.sent.events = samples.len() as u64;
    r.offered = r.sent;
    r.status_counts.insert("200".into(), samples.len() as u64);
    r.thresholds = vec![amplitude_loadgen::ThresholdResult {
        metric: "p99_latency_ms".into(),
        criterion: "< 50".into(),
        actual: None,
        passed: None,
    }];
    r
}

#[test]
fn merged_percentiles_are_those_of_all_samples_not_an_average_of_percentiles() {
    // Segment 0: 990 fast requests (1 ms). Segment 1: 10 slow ones (100 ms). Over all
    // 1,000 requests the 990th is fast, so p99 = 1 ms and p99.9 = 100 ms; averaging the
    // segments' p99s would say (1 + 100) / 2 = 50.5 ms and fail the `< 50` threshold.
    let fast: Vec<u64> = vec![1_000; 990];
    let slow: Vec<u64> = vec![100_000; 10];
    let inputs = vec![
        ("r1.json".to_owned(), synthetic("1/2", 5, &slow)),
        ("r0.json".to_owned(), synthetic("0/2", 5, &fast)),
    ];
    let merged = merge(&inputs).unwrap();
    let mut all = Histogram::<u64>::new(3).unwrap();
    for s in fast.iter().chain(&slow) {
        all.record(*s).unwrap();
    }
    let c = &merged.latency_ms.corrected;
    assert_eq!(c.count, 1_000);
    assert_eq!(c.p99, all.value_at_quantile(0.99) as f64 / 1e3);
    assert_eq!(c.p999, all.value_at_quantile(0.999) as f64 / 1e3);
    assert_eq!(c.max, all.max() as f64 / 1e3);
    assert!((c.p99 - 1.0).abs() < 0.01, "{c:?}");
    assert!((c.p999 - 100.0).abs() < 0.1, "{c:?}");
    // Counts summed, the segment gone, N recorded, thresholds evaluated on the merge.
    assert_eq!(merged.sent.requests, 1_000);
    assert_eq!(merged.status_counts["200"], 1_000);
    assert_eq!(merged.segment, None);
    assert_eq!(merged.merged_segments, Some(2));
    assert_eq!(merged.thresholds[0].passed, Some(true));
    assert!(merged.passed);
    // The merged report carries the merged histogram itself (its header's trackable range
    // may differ from `all`'s; the recorded values do not).
    let h = unb64(&merged.latency_histograms.as_ref().unwrap().corrected);
    assert_eq!(h.len(), all.len());
    for q in [0.0, 0.5, 0.9, 0.99, 0.995, 0.999, 1.0] {
        assert_eq!(h.value_at_quantile(q), all.value_at_quantile(q), "q {q}");
    }
}

fn unb64(text: &str) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap()
}

#[test]
fn mismatched_reports_are_refused_with_the_reason() {
    let r = |seg: &str, seed: u64| synthetic(seg, seed, &[1_000, 2_000]);
    let named = |v: Vec<(&str, Report)>| -> Vec<(String, Report)> {
        v.into_iter().map(|(n, r)| (n.to_owned(), r)).collect()
    };
    let err = |v| merge(&named(v)).unwrap_err();

    let e = err(vec![("a", r("0/2", 1)), ("b", r("1/2", 2))]);
    assert!(
        matches!(&e, MergeError::Mismatch { what, .. } if what == "seed"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "b: seed is 2, but a has 1: these reports are not segments of one run"
    );
    let e = err(vec![("a", r("0/2", 1)), ("b", r("1/3", 1))]);
    assert!(e.to_string().contains("segment count N is 3"), "{e}");
    let mut other = r("1/2", 1);
    other.scenario.name = "another".into();
    let e = err(vec![("a", r("0/2", 1)), ("b", other)]);
    assert!(e.to_string().contains("scenario name is another"), "{e}");
    let e = err(vec![
        ("a", r("0/3", 1)),
        ("b", r("0/3", 1)),
        ("c", r("2/3", 1)),
    ]);
    assert_eq!(e.to_string(), "segment 0/3 is given twice: a and b");
    let e = err(vec![("a", r("0/4", 1)), ("c", r("2/4", 1))]);
    assert_eq!(
        e.to_string(),
        "segment(s) 1, 3 of 4 missing: give one report for each of 0..4"
    );
    let mut whole = r("0/1", 1);
    whole.segment = None;
    let e = err(vec![("w", whole)]);
    assert!(matches!(e, MergeError::NotASegment { .. }), "{e}");
    let mut newer = r("1/2", 1);
    newer.tool = "amplitude-loadgen 9.9.9".into();
    let e = err(vec![("a", r("0/2", 1)), ("b", newer)]);
    assert!(
        e.to_string()
            .contains("loadgen version is amplitude-loadgen 9.9.9"),
        "{e}"
    );
    let mut old = r("1/2", 1);
    old.latency_histograms = None;
    let e = err(vec![("a", r("0/2", 1)), ("old", old)]);
    assert!(matches!(e, MergeError::NoHistograms { .. }), "{e}");
    let mut broken = r("1/2", 1);
    broken.latency_histograms.as_mut().unwrap().corrected = "HISTnope".into();
    let e = err(vec![("a", r("0/2", 1)), ("bad", broken)]);
    assert!(matches!(e, MergeError::Invalid { .. }), "{e}");
    assert!(matches!(merge(&[]), Err(MergeError::Empty)));
    // The good case of the same helpers merges.
    let ok = merge(&named(vec![("a", r("0/2", 1)), ("b", r("1/2", 1))])).unwrap();
    assert_eq!(ok.latency_ms.corrected.count, 4);
}

// ------------------------------------------------- local proof: two processes, one mock

/// 200 events over 2 s from 60 users, one event per request (so requests and latency
/// samples count events), and thresholds a single segment fails (it answers fewer than
/// 150 events) but the whole run passes.
const LOCAL: &str = r#"
name = "segment-proof"
seed = 11
duration = "2s"
arrival = { kind = "constant", rate = 100.0 }
[population]
users = 60
[run]
batch_size = 1
max_batch_wait = "0ms"
max_lag = "10s"
[thresholds]
status_2xx = "> 150"
transport_errors = 0
"#;

/// Stored events as comparable JSON, ordered by `conformance_seq`.
fn stored(mock: &amplitude_mock::MockServer) -> Vec<serde_json::Value> {
    let mut v: Vec<serde_json::Value> = mock.events().iter().map(|e| e.json()).collect();
    v.sort_by_key(|e| e["event_properties"]["conformance_seq"].as_u64());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_segment_processes_store_exactly_the_unsharded_events_and_merge_to_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("segment-proof.toml");
    std::fs::write(&scenario, LOCAL).unwrap();
    let sc = Scenario::from_path(&scenario).unwrap();
    let generated: Vec<GeneratedEvent> = sc.events(sc.seed).unwrap().collect();
    assert_eq!(generated.len(), 200);

    // The unsharded run, in process, against a mock of its own.
    let whole_mock = amplitude_mock::MockServer::start().await;
    let whole = run(
        &sc,
        &RunOptions {
            target: whole_mock.uri(),
            api_key: "KEY".into(),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(whole.events_2xx, 200, "{}", whole.to_terminal());

    // Two segment processes at once against one mock, then `merge`.
    let mock = amplitude_mock::MockServer::start().await;
    let (target, cwd, file) = (
        mock.uri(),
        dir.path().to_owned(),
        scenario.to_str().unwrap().to_owned(),
    );
    // Both wait for one wall-clock start (`--start-at`), as pods started apart would.
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1_500;
    let outs = tokio::task::spawn_blocking(move || {
        let children: Vec<_> = (0..2)
            .map(|k| {
                Command::new(env!("CARGO_BIN_EXE_amplitude-loadgen"))
                    .args(["run", &file, "--target", &target, "--api-key", "KEY"])
                    .args(["--progress", "off", "--threads", "1"])
                    .args(["--segment", &format!("{k}/2")])
                    .args(["--start-at", &start_at.to_string()])
                    .args(["--report-json", &format!("r{k}.json")])
                    .current_dir(&cwd)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let segments: Vec<Report> = (0..2)
        .map(|k| {
            serde_json::from_str(
                &std::fs::read_to_string(dir.path().join(format!("r{k}.json"))).unwrap(),
            )
            .unwrap()
        })
        .collect();
    for (k, (out, r)) in outs.iter().zip(&segments).enumerate() {
        // Each segment alone fails `status_2xx > 150`: it sent only its share. That is
        // not the run's verdict, so the process exits 0 and leaves it to `merge`.
        assert_eq!(
            out.status.code(),
            Some(0),
            "segment {k}: {}",
            text(&out.stderr)
        );
        assert!(!r.passed);
        assert!(text(&out.stdout).contains("decided by `amplitude-loadgen merge`"));
        assert_eq!(r.segment, Some(Segment::new(k as u32, 2).unwrap()));
        assert!(r.started_at_ms >= start_at, "segment {k} started early");
        assert!(
            r.sent.events > 40 && r.sent.events < 150,
            "{}",
            r.sent.events
        );
    }

    // The mock holds exactly the unsharded run's events (same bytes, insert_ids, seqs).
    let (sharded, unsharded) = (stored(&mock), stored(&whole_mock));
    assert_eq!(sharded.len(), 200);
    assert!(sharded == unsharded, "the stored events differ");
    let ids: BTreeSet<String> = sharded
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = generated
        .iter()
        .map(|e| e.event.insert_id.clone().unwrap())
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(mock.duplicates().len(), 0);

    // Merged: the unsharded run's counts, its verdict (pass: exit 0) and exact histograms.
    let cwd = dir.path().to_owned();
    let merged_out = tokio::task::spawn_blocking(move || {
        loadgen(
            &[
                "merge",
                "r1.json",
                "r0.json",
                "--report-json",
                "all.json",
                "--report-html",
                "all.html",
            ],
            &cwd,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        merged_out.status.code(),
        Some(0),
        "{}{}",
        text(&merged_out.stdout),
        text(&merged_out.stderr)
    );
    assert!(text(&merged_out.stdout).contains("merged    2 segment reports"));
    let merged: Report =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("all.json")).unwrap())
            .unwrap();
    assert_eq!(merged.offered, whole.offered);
    assert_eq!(merged.sent, whole.sent);
    assert_eq!(merged.dropped, whole.dropped);
    assert_eq!(merged.status_counts, whole.status_counts);
    assert_eq!(merged.events_2xx, whole.events_2xx);
    assert_eq!(merged.offered_rate_eps, whole.offered_rate_eps);
    assert_eq!(
        merged.latency_ms.corrected.count,
        whole.latency_ms.corrected.count
    );
    assert_eq!(merged.latency_ms.delivery.count, 200);
    let offered = |r: &Report| -> BTreeMap<u64, u64> {
        r.series
            .iter()
            .filter(|p| p.offered_events > 0)
            .map(|p| (p.t_s, p.offered_events))
            .collect()
    };
    assert_eq!(offered(&merged), offered(&whole));
    let by = |r: &Report| -> BTreeMap<String, Option<bool>> {
        r.thresholds
            .iter()
            .map(|t| (t.metric.clone(), t.passed))
            .collect()
    };
    assert_eq!(by(&merged), by(&whole));
    assert_eq!(by(&merged)["status_2xx"], Some(true));
    // Merged p99 is the p99 of the segments' samples together.
    let mut all = Histogram::<u64>::new(3).unwrap();
    for r in &segments {
        all.add(unb64(&r.latency_histograms.as_ref().unwrap().corrected))
            .unwrap();
    }
    assert_eq!(all.len(), 200);
    assert_eq!(
        merged.latency_ms.corrected.p99,
        all.value_at_quantile(0.99) as f64 / 1e3
    );
    let html = std::fs::read_to_string(dir.path().join("all.html")).unwrap();
    assert!(html.contains("merged from 2 segments"));
    // The merged report matches the schema.
    let schema: serde_json::Value = serde_json::from_str(amplitude_loadgen::REPORT_SCHEMA).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let json = serde_json::to_value(&merged).unwrap();
    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
    assert_eq!(errors, Vec::<String>::new());
    let seg_json = serde_json::to_value(&segments[0]).unwrap();
    assert!(v.is_valid(&seg_json));

    // The CLI refuses what is not one run's N segments (exit 1), and a merged threshold
    // failure is exit 99.
    let cwd = dir.path().to_owned();
    let mut reseeded = segments[1].clone();
    reseeded.scenario.seed = 12;
    std::fs::write(
        dir.path().join("reseeded.json"),
        serde_json::to_vec(&reseeded).unwrap(),
    )
    .unwrap();
    let mut strict = segments.clone();
    for r in &mut strict {
        r.thresholds[0].criterion = "> 1000".into();
    }
    for (k, r) in strict.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("s{k}.json")),
            serde_json::to_vec(r).unwrap(),
        )
        .unwrap();
    }
    let outs = tokio::task::spawn_blocking(move || {
        [
            vec!["merge", "r0.json", "reseeded.json"],
            vec!["merge", "r0.json", "r0.json"],
            vec!["merge", "r1.json"],
            vec!["merge", "all.json", "r1.json"],
            vec!["merge", "s0.json", "s1.json"],
        ]
        .map(|args| loadgen(&args, &cwd))
    })
    .await
    .unwrap();
    let expect = [
        (1, "reseeded.json: seed is 12, but r0.json has 11"),
        (1, "segment 0/2 is given twice: r0.json and r0.json"),
        (1, "segment(s) 0 of 2 missing"),
        (1, "all.json: not a segment report"),
        (99, ""),
    ];
    for (out, (code, message)) in outs.iter().zip(expect) {
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
    }
    assert!(text(&outs[4].stdout).contains("FAIL status_2xx > 1000"));
}
