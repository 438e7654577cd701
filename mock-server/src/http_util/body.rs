//! Reading request bodies against the size limit while they stream in (never buffering more
//! than the limit), and `Content-Encoding: gzip` with the limit applied after decompression
//! too, so a gzip bomb gets 413 (spec §2, §3.4).

use bytes::Bytes;
use http_body_util::BodyExt;
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

/// Most bytes of an over-limit body read and thrown away so the client sees the 413 rather
/// than a broken pipe (what SDKs need to split the batch, spec §5.3), bytes.
pub const DRAIN_CAP: u64 = 64 << 20;

/// Reads `body`, keeping at most `limit` bytes in memory. Past the limit (declared by
/// `Content-Length` or found while streaming) the rest is read and discarded, up to
/// [`DRAIN_CAP`], then the body is refused with [`BodyError::TooLarge`]; a body declared larger
/// than the cap is refused without reading it.
pub async fn read_limited(
    mut body: Incoming,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared_over = content_length.is_some_and(|n| n > limit as u64);
    if content_length.is_some_and(|n| n > DRAIN_CAP) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::with_capacity(
        content_length.map_or(8 * 1024, |n| n.min(limit as u64) as usize),
    );
    let mut seen: u64 = 0;
    let mut over = declared_over;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Io(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > limit as u64 {
            over = true;
        }
        if over {
            if seen > DRAIN_CAP {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if over {
        return Err(BodyError::TooLarge);
    }
    Ok(buf.freeze())
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
        assert!(matches!(
            gunzip_limited(&z, 1_000_000),
            Err(BodyError::TooLarge)
        ));
        assert_eq!(gunzip_limited(&z, 5_000_000).unwrap().len(), 5_000_000);
        assert!(matches!(
            gunzip_limited(b"not gzip", 10),
            Err(BodyError::BadGzip(_))
        ));
    }
}
