//! Units shared by the scenario format: durations written as `"250ms"`, `"10s"`, `"2m"`,
//! `"1h"` (or a bare integer of milliseconds), and UTC ISO-8601 timestamps <-> epoch ms.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A duration in whole milliseconds.
///
/// In TOML it is a string with a unit suffix — `"500ms"`, `"10s"`, `"1.5s"`, `"2m"`, `"1h"`,
/// `"1d"` — or a non-negative integer meaning milliseconds. It serializes back as integer ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationMs(pub u64);

impl DurationMs {
    /// The duration in milliseconds.
    pub fn ms(self) -> u64 {
        self.0
    }

    /// The duration in seconds, as a float.
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1_000.0
    }

    /// Parses `"250ms"`, `"10s"`, `"1.5s"`, `"2m"`, `"1h"`, `"1d"` or `"1200"` (ms).
    ///
    /// # Errors
    /// A message naming the accepted forms when `text` is none of them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().map_err(|_| {
            format!("invalid duration {text:?}: expected e.g. \"500ms\", \"10s\", \"2m\", \"1h\"")
        })?;
        let factor = match unit.trim() {
            "" | "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            other => {
                return Err(format!(
                    "invalid duration unit {other:?} in {text:?}: use ms, s, m, h or d"
                ))
            }
        };
        let ms = value * factor;
        if !ms.is_finite() || !(0.0..=1e15).contains(&ms) {
            return Err(format!("duration {text:?} is out of range"));
        }
        Ok(Self(ms.round() as u64))
    }
}

impl fmt::Display for DurationMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms % 3_600_000 == 0 && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1_000 == 0 && ms > 0 {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for DurationMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationMs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"10s\", \"2m\" or integer milliseconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationMs, E> {
                DurationMs::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationMs, E> {
                u64::try_from(v)
                    .map(DurationMs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationMs, E> {
                Ok(DurationMs(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats epoch milliseconds as UTC ISO-8601 with milliseconds, e.g.
/// `2026-01-01T00:00:05.123Z`.
pub(crate) fn format_iso8601_ms(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let rem = epoch_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, ms) = (
        rem / 3_600_000,
        (rem / 60_000) % 60,
        (rem / 1_000) % 60,
        rem % 1_000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Parses an ISO-8601 timestamp into epoch milliseconds (UTC).
///
/// Accepts `YYYY-MM-DD[T| ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]` — the Export API writes
/// `2021-03-01 00:00:00.123000` (spec §13), SDKs write `2021-03-01T00:00:00.123Z`. A
/// timestamp without an offset is taken as UTC. Returns `None` when `text` is not of that
/// form.
pub fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, s) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if i < b.len() && b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let digits = &b[start..end.min(start + 3)];
        let mut v = num(digits)?;
        for _ in digits.len()..3 {
            v *= 10;
        }
        frac_ms = v;
        i = end;
    }
    let mut offset_min = 0i64;
    if i < b.len() {
        match b[i] {
            b'Z' | b'z' if i + 1 == b.len() => {}
            sign @ (b'+' | b'-') => {
                let rest: Vec<u8> = b[i + 1..].iter().copied().filter(|c| *c != b':').collect();
                if rest.len() != 4 {
                    return None;
                }
                let v = num(&rest[0..2])? * 60 + num(&rest[2..4])?;
                offset_min = if sign == b'+' { v } else { -v };
            }
            _ => return None,
        }
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + s * 1_000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(DurationMs::parse("250ms"), Ok(DurationMs(250)));
        assert_eq!(DurationMs::parse("1.5s"), Ok(DurationMs(1_500)));
        assert_eq!(DurationMs::parse("2m"), Ok(DurationMs(120_000)));
        assert_eq!(DurationMs::parse("1h"), Ok(DurationMs(3_600_000)));
        assert_eq!(DurationMs::parse("42"), Ok(DurationMs(42)));
        assert!(DurationMs::parse("ten seconds").is_err());
        assert!(DurationMs::parse("5y").is_err());
        assert_eq!(DurationMs(90_000).to_string(), "90s");
    }

    #[test]
    fn iso8601_round_trips_and_accepts_export_form() {
        let t = 1_767_225_605_123; // 2026-01-01T00:00:05.123Z
        assert_eq!(format_iso8601_ms(t), "2026-01-01T00:00:05.123Z");
        assert_eq!(parse_iso8601_ms("2026-01-01T00:00:05.123Z"), Some(t));
        assert_eq!(parse_iso8601_ms("2026-01-01 00:00:05.123000"), Some(t));
        assert_eq!(parse_iso8601_ms("2026-01-01T01:00:05.123+01:00"), Some(t));
        assert_eq!(parse_iso8601_ms("2026-01-01T00:00:05Z"), Some(t - 123));
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_iso8601_ms("2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_iso8601_ms("yesterday"), None);
        assert_eq!(parse_iso8601_ms("2026-13-01T00:00:00Z"), None);
    }
}
