//! Reading request bodies against the size limit while they stream in (never buffering more
//! than the limit), and `Content-Encoding: gzip` with the limit applied after decompression
//! too, so a gzip bomb gets 413 (spec §2, §3.4).

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::io::Read;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Raw or decompressed body over the limit: answered 413 (spec §5.3).
    #[error("payload too large")]
    TooLarge,
    /// The gzip stream is corrupt: answered 400 `Invalid JSON request body`.
    #[error("bad gzip body: {0}")]
    BadGzip(std::io::Error),
    /// The client went away or the connection failed.
    #[error("reading body: {0}")]
    Io(String),
}

/// Reads at most `limit` bytes of `body`; a `Content-Length` over the limit is refused before
/// reading anything.
pub async fn read_limited(
    body: Incoming,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Io(e.to_string())),
    }
}

/// Decompresses a gzip body, refusing output past `limit` bytes.
pub fn gunzip_limited(raw: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let mut dec = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
    dec.read_to_end(&mut out).map_err(BodyError::BadGzip)?;
    if out.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_bomb_is_too_large() {
        // spec §3.4: limits apply after decompression
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 5_000_000]).unwrap();
        let z = enc.finish().unwrap();
        assert!(z.len() < 50_000);
        assert!(matches!(gunzip_limited(&z, 1_000_000), Err(BodyError::TooLarge)));
        assert_eq!(gunzip_limited(&z, 5_000_000).unwrap().len(), 5_000_000);
        assert!(matches!(gunzip_limited(b"not gzip", 10), Err(BodyError::BadGzip(_))));
    }
}
