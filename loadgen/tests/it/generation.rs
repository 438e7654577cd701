//! Generation: determinism, the shipped scenarios, heavy hitters, dirty data, trace replay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use crate::common::{load, scenarios_dir};
use amplitude_loadgen::{Defect, GeneratedEvent, Scenario, ScenarioError, SEQ_PROPERTY};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

fn bytes_of(events: &[GeneratedEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        writeln!(out, "{} {}", e.offset_us, e.to_json().unwrap()).unwrap();
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn same_seed_same_bytes_different_seed_different_stream() {
    let sc = load("launch-spike.toml");
    let a: Vec<_> = sc.events(sc.seed).unwrap().collect();
    let b: Vec<_> = sc.events(sc.seed).unwrap().collect();
    assert!(a.len() > 1_000);
    assert_eq!(bytes_of(&a), bytes_of(&b));
    let c: Vec<_> = sc.events(sc.seed + 1).unwrap().collect();
    assert_ne!(bytes_of(&a), bytes_of(&c));
    // Different in content, not only in length: the first events differ.
    assert_ne!(a[0].event, c[0].event);
}

#[test]
fn stream_is_pinned_across_machines() {
    // A golden fingerprint of a short stream: catches any change of RNG, float path or
    // serialization that would make the same seed produce other bytes elsewhere.
    let sc = Scenario::from_toml_str(
        r#"
seed = 12345
duration = "2s"
arrival = { kind = "poisson", rate = 100.0 }
[population]
users = 50
popularity = "zipf"
zipf_s = 1.3
[mix]
payload_bytes = { kind = "lognormal", median = 50.0, sigma = 0.5, max = 500 }
identify_share = 0.1
insert_id_share = 0.8
[dirty]
short_id = 0.05
resend = 0.05
"#,
        "golden.toml",
    )
    .unwrap();
    let events: Vec<_> = sc.events(sc.seed).unwrap().collect();
    let bytes = bytes_of(&events);
    let first = events[0].to_json().unwrap();
    assert_eq!(events.len(), 191, "{first}");
    assert_eq!(
        format!("{:016x}", fnv1a(&bytes)),
        GOLDEN,
        "first event: {first}"
    );
}

const GOLDEN: &str = "57244d01f0c9c12b";

#[test]
fn offsets_are_ordered_and_seqs_dense() {
    for name in [
        "launch-spike.toml",
        "dirty-data.toml",
        "session-bursts.toml",
        "trace-replay.toml",
    ] {
        let sc = load(name);
        let events: Vec<_> = sc.events(sc.seed).unwrap().collect();
        assert!(
            events.windows(2).all(|w| w[0].offset_us <= w[1].offset_us),
            "{name}"
        );
        let mut next = 0;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.index, i as u64);
            let seq = e.event.event_properties.as_ref().unwrap()[SEQ_PROPERTY]
                .as_u64()
                .unwrap();
            assert_eq!(seq, e.seq, "{name}");
            if matches!(e.defect, Some(Defect::Resend { .. })) {
                assert!(e.seq < next);
            } else {
                assert_eq!(e.seq, next, "{name}");
                next += 1;
            }
        }
    }
}

#[test]
fn every_shipped_scenario_loads_and_is_short() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let sc = Scenario::from_path(&p).unwrap();
            let stream = sc.events(sc.seed).unwrap();
            let ms = stream.total_duration_ms();
            let n = stream.count();
            // Scenarios outside the conformance suite's default run may be longer (at most a
            // minute of traffic); small bug reproductions may be as short as 20 events.
            let default_run = sc
                .conformance
                .get("default_suite")
                .and_then(toml::Value::as_bool)
                .unwrap_or(true);
            let longest = if default_run { 15_000 } else { 60_000 };
            assert!(ms <= longest, "{}: {ms} ms is too long for CI", p.display());
            assert!((20..=10_000).contains(&n), "{}: {n} events", p.display());
            assert!(!sc.description.is_empty(), "{}", p.display());
            names.push(sc.name);
        }
    }
    names.sort();
    for required in [
        "steady-trickle",
        "launch-spike",
        "heavy-hitter",
        "nightly-backfill",
        "outage-recovery",
        "property-storm",
        "dirty-data",
        "eu-project",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "missing {required}: {names:?}"
        );
    }
}

#[test]
fn heavy_hitter_device_exceeds_the_30_second_budget() {
    // spec §8.1: 30 events/s per device averaged over 30 s = 900 events.
    let sc = load("heavy-hitter.toml");
    let events: Vec<_> = sc.events(sc.seed).unwrap().collect();
    let mut per_device: HashMap<String, Vec<u64>> = HashMap::new();
    for e in &events {
        per_device
            .entry(e.event.device_id.clone().unwrap())
            .or_default()
            .push(e.offset_us);
    }
    let (top, offsets) = per_device.iter().max_by_key(|(_, v)| v.len()).unwrap();
    // Most events of the top device inside any 30 s window.
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..offsets.len() {
        while offsets[hi] - offsets[lo] >= 30_000_000 {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    assert_eq!(top, "device-000000-0");
    assert!(best > 900, "top device sent only {best} events in 30 s");
    // And the rest of the population is under its budget.
    let second = per_device
        .values()
        .map(Vec::len)
        .filter(|n| *n != offsets.len())
        .max()
        .unwrap();
    assert!(second < 900, "{second}");
}

#[test]
fn property_storm_exceeds_the_hourly_property_cap() {
    // spec §8.1: 1,800 user-property updates per user per hour.
    let sc = load("property-storm.toml");
    let mut per_user: BTreeMap<String, u32> = BTreeMap::new();
    for e in sc.events(sc.seed).unwrap() {
        if e.event.user_properties.is_some() {
            *per_user
                .entry(e.event.user_id.clone().unwrap())
                .or_default() += 1;
        }
    }
    assert_eq!(per_user.len(), 2);
    assert!(per_user.values().all(|n| *n > 1_800), "{per_user:?}");
}

#[test]
fn dirty_data_shares_and_shapes() {
    let sc = load("dirty-data.toml");
    let events: Vec<_> = sc.events(sc.seed).unwrap().collect();
    let n = events.len() as f64;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let by_index: HashMap<u64, &GeneratedEvent> = events.iter().map(|e| (e.index, e)).collect();
    for e in &events {
        let Some(d) = e.defect else { continue };
        *counts.entry(d.name()).or_default() += 1;
        let ev = &e.event;
        match d {
            Defect::ShortId => {
                let id = ev.user_id.as_deref().or(ev.device_id.as_deref()).unwrap();
                assert!(
                    id.len() < amplitude_wire::limits::DEFAULT_MIN_ID_LENGTH,
                    "{id}"
                );
            }
            Defect::ReservedId => {
                let id = ev.user_id.as_deref().or(ev.device_id.as_deref()).unwrap();
                assert!(amplitude_wire::limits::is_invalid_id_value(id), "{id}");
            }
            Defect::IsoTime => {
                assert!(ev.time.is_none());
                let t = ev.extra["time"].as_str().unwrap();
                assert!(
                    amplitude_loadgen::__internal::parse_iso8601_ms(t).is_some(),
                    "{t}"
                );
            }
            Defect::MissingEventType => assert!(ev.event_type.is_none()),
            Defect::OversizedString => {
                let s = ev.event_properties.as_ref().unwrap()["oversized"]
                    .as_str()
                    .unwrap();
                assert!(s.len() > amplitude_wire::limits::MAX_STRING_LENGTH);
            }
            Defect::Resend { of_index } => {
                let orig = by_index[&of_index];
                assert!(of_index < e.index);
                assert_eq!(orig.event, e.event, "a re-send is byte-identical");
                assert!(e.event.insert_id.is_some());
                assert_eq!(orig.seq, e.seq);
            }
        }
        if !matches!(d, Defect::Resend { .. }) {
            assert_eq!(
                ev.event_properties.as_ref().unwrap()["conformance_defect"],
                d.name()
            );
        }
    }
    // Each 2% share within ±1.5 points over ~1,000 events; re-sends 5% ± 2.
    for name in [
        "short_id",
        "reserved_id",
        "iso_time",
        "missing_event_type",
        "oversized_string",
    ] {
        let share = *counts.get(name).unwrap_or(&0) as f64 / n;
        assert!((0.005..0.035).contains(&share), "{name}: {share}");
    }
    let resend = counts["resend"] as f64 / n;
    assert!((0.03..0.07).contains(&resend), "{resend}");
    // 10% without insert_id (clean events only; re-sends always have one).
    let without = events
        .iter()
        .filter(|e| e.event.insert_id.is_none())
        .count() as f64
        / n;
    assert!((0.06..0.14).contains(&without), "{without}");
}

#[test]
fn insert_ids_are_unique_uuids_and_identities_valid() {
    let sc = load("launch-spike.toml");
    let mut seen = HashSet::new();
    for e in sc.events(sc.seed).unwrap() {
        let id = e.event.insert_id.clone().unwrap();
        let u = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert!(seen.insert(id));
        assert!(e.event.device_id.as_ref().unwrap().len() >= 5);
        assert!(e.event.event_type.is_some());
        assert_eq!(e.event.time, Some(sc.start_time_ms + e.offset_ms() as i64));
    }
}

#[test]
fn launch_spike_is_bursty() {
    let sc = load("launch-spike.toml");
    let mut per_s = [0u32; 8];
    for e in sc.events(sc.seed).unwrap() {
        per_s[(e.offset_us / 1_000_000) as usize] += 1;
    }
    // Baseline ~50/s; the spike holds 800/s from 2.5 s to 5 s; the ramp decays to 50/s.
    assert!(per_s[0] < 100 && per_s[1] < 100, "{per_s:?}");
    assert!(per_s[3] > 650 && per_s[4] > 650, "{per_s:?}");
    assert!(per_s[5] > per_s[6] && per_s[6] < 500, "{per_s:?}");
}

#[test]
fn trace_replay_keeps_inter_arrival_times_and_remaps_ids() {
    let sc = load("trace-replay.toml");
    let events: Vec<_> = sc.events(sc.seed).unwrap().collect();
    let records = amplitude_loadgen::__internal::load_trace(
        &scenarios_dir().join("traces/sample-export.jsonl"),
        amplitude_loadgen::parts::TraceFormat::Auto,
    )
    .unwrap();
    assert_eq!(events.len(), records.len());
    let t0 = records[0].time_ms;
    for (e, r) in events.iter().zip(&records) {
        // speedup 600: offset_us = (t - t0) ms * 1000 / 600.
        let expected = ((r.time_ms - t0) as f64 * 1_000.0 / 600.0) as u64;
        assert_eq!(e.offset_us, expected);
        assert!(e.event.user_id.as_ref().unwrap().starts_with("trace-user-"));
        assert_ne!(e.event.insert_id, r.event.insert_id);
        assert_eq!(e.event.event_type, r.event.event_type);
    }
    // Remapping is consistent: same original user -> same synthetic user.
    let mut map: HashMap<&str, &str> = HashMap::new();
    for (e, r) in events.iter().zip(&records) {
        let prev = map.insert(
            r.event.user_id.as_deref().unwrap(),
            e.event.user_id.as_deref().unwrap(),
        );
        if let Some(p) = prev {
            assert_eq!(p, e.event.user_id.as_deref().unwrap());
        }
    }
}

#[test]
fn trace_replay_from_an_export_zip() {
    // Build an Export API archive: zip of per-hour gzipped NDJSON (spec §13).
    let dir = tempfile::tempdir().unwrap();
    let zpath = dir.path().join("export.zip");
    {
        let file = std::fs::File::create(&zpath).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (hour, name) in [
            (1, "100_2026-01-01_1#0.json.gz"),
            (0, "100_2026-01-01_0#0.json.gz"),
        ] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            for i in 0..3 {
                writeln!(
                    gz,
                    r#"{{"$insert_id":"h{hour}-{i}","event_type":"E{hour}","user_id":"someone-{i}","device_id":"dev-{i}-xyz","client_event_time":"2026-01-01 0{hour}:00:0{i}.000000","amplitude_id":1,"city":null}}"#
                )
                .unwrap();
            }
            zip.start_file(name, opts).unwrap();
            zip.write_all(&gz.finish().unwrap()).unwrap();
        }
        zip.finish().unwrap();
    }
    let toml = format!(
        "seed = 1\n[[phases]]\narrival = {{ kind = \"trace\", path = \"{}\", speedup = 3600.0 }}\n",
        zpath.file_name().unwrap().to_string_lossy()
    );
    let sc_path = dir.path().join("replay.toml");
    std::fs::write(&sc_path, toml).unwrap();
    let sc = Scenario::from_path(&sc_path).unwrap();
    let events: Vec<_> = sc.events(1).unwrap().collect();
    assert_eq!(events.len(), 6);
    // Sorted by time across members: hour 0 first, then hour 1 (3,600 s / 3,600 = 1 s later).
    assert_eq!(events[0].event.event_type.as_deref(), Some("E0"));
    assert_eq!(events[3].event.event_type.as_deref(), Some("E1"));
    assert_eq!(events[3].offset_us, 1_000_000);
    assert_eq!(events[1].offset_us, 277); // 1,000 ms / 3,600 = 277.7 µs
    assert_eq!(events[0].event.insert_id.as_deref(), Some("h0-0"));
    assert!(events.iter().all(|e| e.event.extra.is_empty()));
}

#[test]
fn bad_scenario_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "seed = 1\nduration = \"1s\"\narrival = { kind = \"constant\", rate = 5.0 }\n\n[mix]\nidentify_shar = 0.5\n").unwrap();
    let err = Scenario::from_path(&p).unwrap_err();
    let ScenarioError::Parse {
        path, line, field, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(path, &p);
    assert_eq!(*line, 6);
    assert_eq!(field, "mix.identify_shar");
    let shown = err.to_string();
    assert!(
        shown.contains("bad.toml:6:") && shown.contains("identify_shar"),
        "{shown}"
    );

    let missing = Scenario::from_path(dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(missing, ScenarioError::Io { .. }));
}
