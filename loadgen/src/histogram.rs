//! Lossless latency histograms in the JSON report: HdrHistogram's V2 serialization
//! (uncompressed, the format every HdrHistogram implementation reads), base64-encoded with
//! the standard alphabet and padding. Values are µs. Merging segment reports adds the
//! decoded histograms, so merged percentiles are exact to the histogram's precision (3
//! significant figures for the run's distributions, 2 for the per-second ones).

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

/// `h` as base64 of its V2 serialization.
///
/// # Errors
/// A message when the histogram cannot be serialized (not expected: V2 handles any
/// `u64` histogram).
pub(crate) fn encode(h: &Histogram<u64>) -> Result<String, String> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("cannot serialize histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The histogram of a base64 V2 (or V2 + DEFLATE) serialization, auto-resizing so others
/// can be added to it.
///
/// # Errors
/// A message naming what is wrong: not base64, or not a V2 histogram.
pub(crate) fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 serialization: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_losslessly() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [1u64, 250, 999, 1_000, 12_345, 3_000_000, 3_000_000] {
            h.record(v).unwrap();
        }
        let text = encode(&h).unwrap();
        let back = decode(&text).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 7);
        assert_eq!(back.max(), h.max());
        assert!(decode("not base64!").unwrap_err().contains("base64"));
        assert!(decode("AAAA").unwrap_err().contains("V2"));
    }
}
