//! Portable random helpers shared by the generation modules: seeded ChaCha8 streams and
//! draws that give the same values on every machine (integer and IEEE-754 arithmetic,
//! `libm` for transcendental functions). Depends on nothing else in the crate.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Stream `stream` of the ChaCha8 generator seeded with `seed` (one stream per concern).
pub(crate) fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A uniform draw in [0, 1) with 53 random bits (portable).
pub(crate) fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A unit-mean exponential draw, `-ln(1 - u)` with `libm` (portable).
pub(crate) fn exp1(rng: &mut impl RngCore) -> f64 {
    -libm::log1p(-unit(rng))
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `len` random alphanumeric characters: ten base-62 digits from each 64-bit draw (the same
/// characters as ever, so a seed gives the same payloads in every version). See
/// [`filler_into`], which this wraps.
pub(crate) fn filler(rng: &mut impl RngCore, len: usize) -> String {
    let mut bytes = Vec::with_capacity(len);
    filler_into(rng, len, &mut bytes);
    // Every byte comes from ALPHABET (ASCII); the check cannot fail and is one fast pass.
    String::from_utf8(bytes).unwrap_or_default()
}

/// 64-bit words drawn from the generator per bulk fill of [`filler_into`] (2 KiB of bytes,
/// 2,560 characters).
const FILLER_WORDS_PER_FILL: usize = 256;

/// Appends `len` random alphanumeric ASCII characters to `out`: ten base-62 digits from
/// each 64-bit word, the words drawn in bulk (`fill_bytes`, up to
/// [`FILLER_WORDS_PER_FILL`] at a time) and read little-endian, which is exactly the
/// sequence of `next_u64` draws (two 32-bit words each, low word first). So the characters,
/// and where the stream ends (`2 * ceil(len / 10)` 32-bit words), are those of one
/// `next_u64` per ten characters.
pub(crate) fn filler_into(rng: &mut impl RngCore, len: usize, out: &mut Vec<u8>) {
    out.reserve(len);
    let mut words_left = len.div_ceil(10);
    let mut chars_left = len;
    let mut buf = [0u8; 8 * FILLER_WORDS_PER_FILL];
    while words_left > 0 {
        let n = words_left.min(FILLER_WORDS_PER_FILL);
        let drawn = &mut buf[..8 * n];
        rng.fill_bytes(drawn);
        for w in drawn.chunks_exact(8) {
            let mut le = [0u8; 8];
            le.copy_from_slice(w);
            let mut word = u64::from_le_bytes(le);
            let mut chars = [0u8; 10];
            for c in &mut chars {
                *c = ALPHABET[(word % 62) as usize];
                word /= 62;
            }
            let take = chars_left.min(10);
            out.extend_from_slice(&chars[..take]);
            chars_left -= take;
        }
        words_left -= n;
    }
}

/// Moves `rng` past the draws of `filler(rng, len)` without making the string: the stream
/// ends where it would have (one `u64`, two 32-bit words, per 10 characters).
pub(crate) fn skip_filler(rng: &mut ChaCha8Rng, len: usize) {
    let words = 2 * len.div_ceil(10) as u128;
    rng.set_word_pos(rng.get_word_pos() + words);
}

/// A version-4 UUID from 16 random bytes of `rng`, hyphenated.
pub(crate) fn uuid_v4(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// Appends a version-4 UUID from 16 random bytes of `rng`, hyphenated and lower-case (36
/// ASCII bytes, the same text and draws as [`uuid_v4`]), without making a `String`.
pub(crate) fn uuid_v4_into(rng: &mut impl RngCore, out: &mut Vec<u8>) {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text);
    out.extend_from_slice(s.as_bytes());
}

/// Moves `rng` past the draws of [`uuid_v4`] (16 bytes, four 32-bit words).
pub(crate) fn skip_uuid_v4(rng: &mut impl RngCore) {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filler as first written (one `char` at a time): the payloads must not change.
    fn filler_reference(rng: &mut impl RngCore, len: usize) -> String {
        let mut s = String::with_capacity(len);
        let mut word = 0u64;
        for i in 0..len {
            if i % 10 == 0 {
                word = rng.next_u64();
            }
            s.push(char::from(ALPHABET[(word % 62) as usize]));
            word /= 62;
        }
        s
    }

    #[test]
    fn filler_gives_the_same_characters_as_before() {
        for len in [0, 1, 9, 10, 11, 37, 200, 4_096] {
            let (mut a, mut b) = (stream_rng(7, 4), stream_rng(7, 4));
            assert_eq!(
                filler(&mut a, len),
                filler_reference(&mut b, len),
                "len {len}"
            );
            // and leaves the stream at the same place
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn filler_into_appends_the_same_characters_across_bulk_fills() {
        // Lengths around the bulk size, after an odd 32-bit word (unaligned start).
        for len in [0, 1, 10, 2_559, 2_560, 2_561, 6_000] {
            let (mut a, mut b) = (stream_rng(9, 4), stream_rng(9, 4));
            a.next_u32();
            b.next_u32();
            let mut out = b"x".to_vec();
            filler_into(&mut a, len, &mut out);
            assert_eq!(
                out[1..],
                *filler_reference(&mut b, len).as_bytes(),
                "len {len}"
            );
            assert_eq!(out[0], b'x');
            assert_eq!(a.next_u64(), b.next_u64(), "len {len}");
        }
    }

    #[test]
    fn uuid_into_writes_what_uuid_v4_returns() {
        let (mut a, mut b, mut c) = (stream_rng(3, 6), stream_rng(3, 6), stream_rng(3, 6));
        for _ in 0..5 {
            let mut out = Vec::new();
            uuid_v4_into(&mut a, &mut out);
            assert_eq!(out, uuid_v4(&mut b).into_bytes());
            skip_uuid_v4(&mut c);
        }
        let next = b.next_u64();
        assert_eq!(a.next_u64(), next);
        assert_eq!(c.next_u64(), next);
    }

    #[test]
    fn skipping_a_filler_leaves_the_stream_where_drawing_it_does() {
        for len in [1usize, 9, 10, 11, 37, 1_000] {
            for offset in 0..3 {
                let mut a = stream_rng(7, 4);
                let mut b = stream_rng(7, 4);
                for _ in 0..offset {
                    a.next_u32();
                    b.next_u32();
                }
                let _ = filler(&mut a, len);
                skip_filler(&mut b, len);
                assert_eq!(a.next_u64(), b.next_u64(), "len {len} offset {offset}");
            }
        }
    }
}
