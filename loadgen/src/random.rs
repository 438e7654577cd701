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

/// `len` random alphanumeric characters.
pub(crate) fn filler(rng: &mut impl RngCore, len: usize) -> String {
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

/// A version-4 UUID from 16 random bytes of `rng`, hyphenated.
pub(crate) fn uuid_v4(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}
