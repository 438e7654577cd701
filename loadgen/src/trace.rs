//! Trace files: recorded event logs replayed with their original inter-arrival times.
//!
//! Two formats:
//! - **JSON Lines**: one event object per line, in the ingestion schema (spec §3.2, time
//!   from integer `time` ms) or the export schema (below).
//! - **Export API archive** (spec §13): a zip of per-hour files, each gzipped NDJSON (a
//!   member not ending in `.gz` is read as plain NDJSON). Members are read in name order.
//!
//! Export-schema records (recognized by `$insert_id`, `event_time` or `client_event_time`)
//! are converted to ingestion events: `$insert_id` → `insert_id`, `device_carrier` →
//! `carrier`, `ip_address` → `ip`, `version_name` → `app_version`; read-only keys
//! (`amplitude_id`, `uuid`, `server_*_time`, ...) and nulls are dropped. The timestamp is
//! `client_event_time`, else `event_time` (UTC ISO-8601), else integer `time`.

use crate::arrival::TraceFormat;
use crate::error::ScenarioError;
use crate::units::parse_iso8601_ms;
use amplitude_wire::Event;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One recorded event and its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRecord {
    /// When the event happened, epoch ms.
    pub time_ms: i64,
    /// The event in the ingestion schema.
    pub event: Event,
}

/// Keys of the export schema that a sender never sends (spec §13).
const EXPORT_ONLY_KEYS: &[&str] = &[
    "server_received_time",
    "app",
    "uuid",
    "event_time",
    "client_event_time",
    "amplitude_id",
    "processed_time",
    "paying",
    "client_upload_time",
    "server_upload_time",
    "amplitude_attribution_ids",
    "device_type",
    "start_version",
    "data",
    "device_family",
    "sample_rate",
    "$schema",
    "amplitude_event_type",
    "user_creation_time",
    "is_attribution_event",
    "source_id",
    "data_type",
];

/// Loads and time-sorts (stable) the records of a trace file.
///
/// # Errors
/// [`ScenarioError::Trace`] naming the file (and line) when the file cannot be read, a line
/// is not a JSON object, or a record has no usable timestamp.
pub fn load_trace(path: &Path, format: TraceFormat) -> Result<Vec<TraceRecord>, ScenarioError> {
    let err = |p: &Path, line: Option<usize>, message: String| ScenarioError::Trace {
        path: p.to_path_buf(),
        line,
        message,
    };
    let format = match format {
        TraceFormat::Auto => {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
            {
                TraceFormat::ExportZip
            } else {
                TraceFormat::Jsonl
            }
        }
        f => f,
    };
    let file =
        std::fs::File::open(path).map_err(|e| err(path, None, format!("cannot open: {e}")))?;
    let mut out = Vec::new();
    match format {
        TraceFormat::ExportZip => {
            let mut zip = zip::ZipArchive::new(file)
                .map_err(|e| err(path, None, format!("not a zip archive: {e}")))?;
            let mut names: Vec<String> = zip.file_names().map(str::to_owned).collect();
            names.sort();
            for name in names {
                if name.ends_with('/') {
                    continue;
                }
                let member_path = path.join(&name);
                let member = zip
                    .by_name(&name)
                    .map_err(|e| err(&member_path, None, format!("cannot read member: {e}")))?;
                if name.ends_with(".gz") {
                    read_lines(flate2::read::GzDecoder::new(member), &member_path, &mut out)?;
                } else {
                    read_lines(member, &member_path, &mut out)?;
                }
            }
        }
        TraceFormat::Jsonl | TraceFormat::Auto => {
            if path.extension().is_some_and(|e| e == "gz") {
                read_lines(flate2::read::GzDecoder::new(file), path, &mut out)?;
            } else {
                read_lines(file, path, &mut out)?;
            }
        }
    }
    out.sort_by_key(|r| r.time_ms);
    Ok(out)
}

fn read_lines(r: impl Read, path: &Path, out: &mut Vec<TraceRecord>) -> Result<(), ScenarioError> {
    let reader = BufReader::new(r);
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let line = line.map_err(|e| ScenarioError::Trace {
            path: PathBuf::from(path),
            line: Some(lineno),
            message: format!("cannot read: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = parse_record(&line).map_err(|message| ScenarioError::Trace {
            path: PathBuf::from(path),
            line: Some(lineno),
            message,
        })?;
        out.push(rec);
    }
    Ok(())
}

/// Parses one JSON line (ingestion or export schema) into a [`TraceRecord`].
///
/// # Errors
/// A message when the line is not a JSON object or has no usable timestamp.
pub(crate) fn parse_record(line: &str) -> Result<TraceRecord, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut map) = v else {
        return Err("expected a JSON object".into());
    };
    let ts = |m: &Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).and_then(parse_iso8601_ms)
    };
    let time_ms = ts(&map, "client_event_time")
        .or_else(|| ts(&map, "event_time"))
        .or_else(|| map.get("time").and_then(Value::as_i64))
        .ok_or("no timestamp: need integer `time` or ISO-8601 `client_event_time`/`event_time`")?;
    let is_export = [
        "$insert_id",
        "event_time",
        "client_event_time",
        "amplitude_id",
    ]
    .iter()
    .any(|k| map.contains_key(*k));
    if is_export {
        map = export_to_ingestion(map);
    }
    let event: Event =
        serde_json::from_value(Value::Object(map)).map_err(|e| format!("not an event: {e}"))?;
    Ok(TraceRecord { time_ms, event })
}

/// Converts an export-schema record (spec §13) into an ingestion event object (spec §3.2).
pub(crate) fn export_to_ingestion(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in map {
        if v.is_null() || EXPORT_ONLY_KEYS.contains(&k.as_str()) {
            continue;
        }
        // Empty objects in the export mean "none".
        if v.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        let key = match k.as_str() {
            "$insert_id" => "insert_id".to_owned(),
            "device_carrier" => "carrier".to_owned(),
            "ip_address" => "ip".to_owned(),
            "version_name" => "app_version".to_owned(),
            _ => k,
        };
        out.insert(key, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_record_converts() {
        let line = r#"{"$insert_id":"abc-1","event_time":"2026-01-01 00:00:01.500000","client_event_time":"2026-01-01 00:00:01.250000","event_type":"Play","user_id":"user-1","device_id":"dev-1","amplitude_id":123,"city":null,"device_carrier":"Verizon","ip_address":"1.2.3.4","event_properties":{"a":1},"user_properties":{},"uuid":"u"}"#;
        let r = parse_record(line).unwrap();
        assert_eq!(r.time_ms, 1_767_225_601_250);
        assert_eq!(r.event.insert_id.as_deref(), Some("abc-1"));
        assert_eq!(r.event.carrier.as_deref(), Some("Verizon"));
        assert_eq!(r.event.ip.as_deref(), Some("1.2.3.4"));
        assert!(r.event.user_properties.is_none());
        assert!(r.event.extra.is_empty(), "{:?}", r.event.extra);
    }

    #[test]
    fn ingestion_record_uses_time_and_errors_name_the_line() {
        let r = parse_record(r#"{"event_type":"A","user_id":"user-1","time":1000}"#).unwrap();
        assert_eq!(r.time_ms, 1_000);
        assert!(parse_record(r#"{"event_type":"A"}"#)
            .unwrap_err()
            .contains("timestamp"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, "{\"event_type\":\"A\",\"time\":5}\n\nnot json\n").unwrap();
        let e = load_trace(&p, TraceFormat::Auto).unwrap_err();
        assert!(e.to_string().contains("t.jsonl:3"), "{e}");
    }
}
