//! Seeded, open-model Amplitude traffic generation (work in progress).
