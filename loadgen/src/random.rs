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

/// `len` random alphanumeric characters: ten base-62 digits from each 64-bit draw, written
/// as bytes ten at a time (no per-character `char` push; the same characters as ever, so a
/// seed gives the same payloads in every version).
pub(crate) fn filler(rng: &mut impl RngCore, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    for chunk in bytes.chunks_mut(10) {
        let mut word = rng.next_u64();
        for b in chunk {
            *b = ALPHABET[(word % 62) as usize];
            word /= 62;
        }
    }
    // Every byte comes from ALPHABET (ASCII); the check cannot fail and is one fast pass.
    String::from_utf8(bytes).unwrap_or_default()
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
