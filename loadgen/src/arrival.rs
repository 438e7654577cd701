//! Arrival processes: when events arrive within a phase, in events/s.
//!
//! Shaped processes (`constant`, `ramp`, `step`, `spike`, `diurnal`) are a rate function
//! λ(t). Arrivals are placed where the cumulative rate Λ(t) crosses `k - 0.5`
//! (deterministic, evenly spread) or, with `randomize = true`, at Λ⁻¹ of the partial sums of
//! unit exponentials — an inhomogeneous Poisson process by time rescaling. `poisson` is a
//! randomized constant. `on_off` is a two-state Markov-modulated Poisson process. All
//! arithmetic is IEEE-754 with `libm` transcendental functions, so arrival times are the
//! same on every machine.

use crate::random::exp1;
use crate::units::DurationMs;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One step of a `step` process: from `at` (offset into the phase) on, the rate is `rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Offset into the phase where this rate starts.
    pub at: DurationMs,
    /// Rate from `at` on, events/s.
    pub rate: f64,
}

/// Format of a trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// From the file name: `.zip` is an export archive, anything else JSON Lines.
    #[default]
    Auto,
    /// One Amplitude event (ingestion or export schema) per line.
    Jsonl,
    /// An Export API archive: a zip of per-hour gzipped NDJSON files (spec §13).
    ExportZip,
}

/// An arrival process (TOML: an inline table with `kind = "..."`). Rates are events/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrival {
    /// Evenly spaced arrivals at `rate` (randomize: Poisson at `rate`).
    Constant {
        /// events/s, ≥ 0.
        rate: f64,
        /// Poisson instead of evenly spaced.
        #[serde(default)]
        randomize: bool,
    },
    /// Poisson arrivals (exponential inter-arrival times, mean `1/rate` s).
    Poisson {
        /// events/s, ≥ 0.
        rate: f64,
    },
    /// Rate rising (or falling) linearly from `from` to `to` over the phase.
    Ramp {
        /// events/s at the phase start.
        from: f64,
        /// events/s at the phase end.
        to: f64,
        /// Poisson instead of evenly spaced.
        #[serde(default)]
        randomize: bool,
    },
    /// Piecewise-constant rate; the first step must be `at = 0`.
    Step {
        /// The steps, in increasing `at`.
        steps: Vec<Step>,
        /// Poisson instead of evenly spaced.
        #[serde(default)]
        randomize: bool,
    },
    /// Heaviside spike: `base`, then `peak` from `at` for `length`, then `base` again.
    Spike {
        /// events/s outside the spike.
        base: f64,
        /// events/s during the spike.
        peak: f64,
        /// Offset into the phase where the spike starts.
        at: DurationMs,
        /// How long the spike lasts.
        length: DurationMs,
        /// Poisson instead of evenly spaced.
        #[serde(default)]
        randomize: bool,
    },
    /// Two-state Markov-modulated Poisson process: exponential sojourns of mean `mean_on` /
    /// `mean_off`, Poisson arrivals at `on_rate` / `off_rate` within them. Starts "on".
    OnOff {
        /// events/s while on.
        on_rate: f64,
        /// events/s while off (default 0).
        #[serde(default)]
        off_rate: f64,
        /// Mean length of an on period.
        mean_on: DurationMs,
        /// Mean length of an off period.
        mean_off: DurationMs,
    },
    /// Sine: `mean * (1 + amplitude * sin(2π (t / period + phase)))`.
    Diurnal {
        /// Mean events/s.
        mean: f64,
        /// Relative swing, 0..=1.
        amplitude: f64,
        /// Length of one cycle.
        period: DurationMs,
        /// Phase offset as a fraction of the period (default 0; 0.75 starts at the trough).
        #[serde(default)]
        phase: f64,
        /// Poisson instead of evenly spaced.
        #[serde(default)]
        randomize: bool,
    },
    /// Replay a recorded event log with its original inter-arrival times.
    Trace {
        /// JSON Lines or Export API zip; relative to the scenario file.
        path: PathBuf,
        /// File format (default: from the extension).
        #[serde(default)]
        format: TraceFormat,
        /// Inter-arrival times are divided by this (default 1).
        #[serde(default = "one")]
        speedup: f64,
        /// Replace `user_id`/`device_id` with synthetic ids (`trace-user-000001`, ...) and
        /// `insert_id` with seeded UUIDs, consistently (default false).
        #[serde(default)]
        remap_ids: bool,
    },
}

fn one() -> f64 {
    1.0
}

const MAX_RATE: f64 = 10_000_000.0;

fn check_rate(name: &str, r: f64) -> Result<(), (String, String)> {
    if !r.is_finite() || !(0.0..=MAX_RATE).contains(&r) {
        return Err((
            name.to_owned(),
            format!("must be a rate between 0 and {MAX_RATE} events/s, got {r}"),
        ));
    }
    Ok(())
}

impl Arrival {
    /// Checks ranges; on error returns `(field, message)` relative to the arrival table.
    pub(crate) fn validate(&self, duration: Option<DurationMs>) -> Result<(), (String, String)> {
        let e = |f: &str, m: &str| Err((f.to_owned(), m.to_owned()));
        match self {
            Self::Constant { rate, .. } | Self::Poisson { rate } => check_rate("rate", *rate),
            Self::Ramp { from, to, .. } => {
                check_rate("from", *from)?;
                check_rate("to", *to)
            }
            Self::Step { steps, .. } => {
                if steps.first().map(|s| s.at.ms()) != Some(0) {
                    return e(
                        "steps",
                        "needs at least one step and the first must have at = 0",
                    );
                }
                for (i, s) in steps.iter().enumerate() {
                    check_rate(&format!("steps[{i}].rate"), s.rate)?;
                    if i > 0 && s.at <= steps[i - 1].at {
                        return e(
                            &format!("steps[{i}].at"),
                            "steps must be in increasing `at`",
                        );
                    }
                }
                Ok(())
            }
            Self::Spike {
                base, peak, length, ..
            } => {
                check_rate("base", *base)?;
                check_rate("peak", *peak)?;
                if length.ms() == 0 {
                    return e("length", "must be > 0");
                }
                Ok(())
            }
            Self::OnOff {
                on_rate,
                off_rate,
                mean_on,
                mean_off,
            } => {
                check_rate("on_rate", *on_rate)?;
                check_rate("off_rate", *off_rate)?;
                if mean_on.ms() == 0 {
                    return e("mean_on", "must be > 0");
                }
                if mean_off.ms() == 0 {
                    return e("mean_off", "must be > 0");
                }
                Ok(())
            }
            Self::Diurnal {
                mean,
                amplitude,
                period,
                phase,
                ..
            } => {
                check_rate("mean", *mean)?;
                if !(0.0..=1.0).contains(amplitude) {
                    return e("amplitude", "must be between 0 and 1");
                }
                if period.ms() == 0 {
                    return e("period", "must be > 0");
                }
                if !phase.is_finite() {
                    return e("phase", "must be a finite fraction of the period");
                }
                Ok(())
            }
            Self::Trace { speedup, .. } => {
                if !speedup.is_finite() || *speedup <= 0.0 {
                    return e("speedup", "must be > 0");
                }
                let _ = duration;
                Ok(())
            }
        }
    }

    /// The expected number of arrivals over a phase of `duration_ms` (Λ of the phase end).
    /// `None` for `on_off` (random) and `trace` (depends on the file).
    pub fn expected_count(&self, duration_ms: u64) -> Option<f64> {
        let d = duration_ms as f64 / 1_000.0;
        Shape::of(self, d).map(|s| s.cumulative(d))
    }
}

/// A rate function with closed-form cumulative Λ(t), t in seconds from the phase start.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    Constant(f64),
    Ramp {
        from: f64,
        to: f64,
        d: f64,
    },
    /// (start s, rate) pieces, increasing start, first at 0.
    Pieces(Vec<(f64, f64)>),
    Diurnal {
        mean: f64,
        amp: f64,
        period: f64,
        phase: f64,
    },
}

impl Shape {
    fn of(a: &Arrival, d: f64) -> Option<Shape> {
        Some(match a {
            Arrival::Constant { rate, .. } | Arrival::Poisson { rate } => Shape::Constant(*rate),
            Arrival::Ramp { from, to, .. } => Shape::Ramp {
                from: *from,
                to: *to,
                d,
            },
            Arrival::Step { steps, .. } => {
                Shape::Pieces(steps.iter().map(|s| (s.at.secs_f64(), s.rate)).collect())
            }
            Arrival::Spike {
                base,
                peak,
                at,
                length,
                ..
            } => {
                let start = at.secs_f64();
                let end = start + length.secs_f64();
                let mut v = vec![(0.0, *base)];
                if start > 0.0 {
                    v.push((start, *peak));
                } else {
                    v[0].1 = *peak;
                }
                v.push((end, *base));
                Shape::Pieces(v)
            }
            Arrival::Diurnal {
                mean,
                amplitude,
                period,
                phase,
                ..
            } => Shape::Diurnal {
                mean: *mean,
                amp: *amplitude,
                period: period.secs_f64(),
                phase: *phase,
            },
            Arrival::OnOff { .. } | Arrival::Trace { .. } => return None,
        })
    }

    /// Λ(t) = ∫₀ᵗ λ(u) du, events.
    fn cumulative(&self, t: f64) -> f64 {
        match self {
            Shape::Constant(r) => r * t,
            Shape::Ramp { from, to, d } => {
                if *d <= 0.0 {
                    return 0.0;
                }
                let slope = (to - from) / d;
                from * t + 0.5 * slope * t * t
            }
            Shape::Pieces(p) => {
                let mut acc = 0.0;
                for (i, (start, rate)) in p.iter().enumerate() {
                    if t <= *start {
                        break;
                    }
                    let end = p.get(i + 1).map_or(t, |n| n.0.min(t));
                    acc += rate * (end - start);
                }
                acc
            }
            Shape::Diurnal {
                mean,
                amp,
                period,
                phase,
            } => {
                let w = 2.0 * std::f64::consts::PI / period;
                let p0 = 2.0 * std::f64::consts::PI * phase;
                mean * (t + amp / w * (libm::cos(p0) - libm::cos(w * t + p0)))
            }
        }
    }

    /// Smallest t in [lo, hi] with Λ(t) ≥ y, by bisection (Λ is non-decreasing).
    fn inverse(&self, y: f64, lo: f64, hi: f64) -> f64 {
        let (mut lo, mut hi) = (lo, hi);
        if self.cumulative(lo) >= y {
            return lo;
        }
        for _ in 0..64 {
            if hi - lo <= 1e-9 {
                break;
            }
            let mid = 0.5 * (lo + hi);
            if self.cumulative(mid) >= y {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

/// Lazily yields arrival offsets (µs from the phase start, non-decreasing, `< duration`).
#[derive(Debug, Clone)]
pub(crate) enum ArrivalGen {
    Shaped {
        shape: Shape,
        d: f64,
        total: f64,
        randomize: bool,
        /// Next target value of Λ.
        next_y: f64,
        last_t: f64,
    },
    OnOff {
        on: bool,
        rates: (f64, f64),
        means: (f64, f64),
        d: f64,
        t: f64,
        state_end: f64,
    },
    /// Pre-computed offsets (trace replay).
    Fixed { offsets: Vec<u64>, next: usize },
}

impl ArrivalGen {
    /// A generator for `arrival` over `duration_ms`. `rng` is consumed only by random kinds.
    /// Trace arrivals must be built with [`ArrivalGen::fixed`].
    pub(crate) fn new(arrival: &Arrival, duration_ms: u64, rng: &mut impl RngCore) -> Self {
        let d = duration_ms as f64 / 1_000.0;
        if let Arrival::OnOff {
            on_rate,
            off_rate,
            mean_on,
            mean_off,
        } = arrival
        {
            let means = (mean_on.secs_f64(), mean_off.secs_f64());
            return ArrivalGen::OnOff {
                on: true,
                rates: (*on_rate, *off_rate),
                means,
                d,
                t: 0.0,
                state_end: exp1(rng) * means.0,
            };
        }
        let randomize = match arrival {
            Arrival::Poisson { .. } => true,
            Arrival::Constant { randomize, .. }
            | Arrival::Ramp { randomize, .. }
            | Arrival::Step { randomize, .. }
            | Arrival::Spike { randomize, .. }
            | Arrival::Diurnal { randomize, .. } => *randomize,
            Arrival::OnOff { .. } | Arrival::Trace { .. } => false,
        };
        match Shape::of(arrival, d) {
            Some(shape) => {
                let total = shape.cumulative(d);
                let next_y = if randomize { exp1(rng) } else { 0.5 };
                ArrivalGen::Shaped {
                    shape,
                    d,
                    total,
                    randomize,
                    next_y,
                    last_t: 0.0,
                }
            }
            None => ArrivalGen::Fixed {
                offsets: Vec::new(),
                next: 0,
            },
        }
    }

    /// A generator replaying pre-computed offsets (µs).
    pub(crate) fn fixed(offsets: Vec<u64>) -> Self {
        ArrivalGen::Fixed { offsets, next: 0 }
    }

    /// The next arrival offset, µs from the phase start, or `None` when the phase is over.
    pub(crate) fn next_us(&mut self, rng: &mut impl RngCore) -> Option<u64> {
        match self {
            ArrivalGen::Shaped {
                shape,
                d,
                total,
                randomize,
                next_y,
                last_t,
            } => {
                if *next_y >= *total {
                    return None;
                }
                let t = shape.inverse(*next_y, *last_t, *d);
                *last_t = t;
                *next_y += if *randomize { exp1(rng) } else { 1.0 };
                to_us(t, *d)
            }
            ArrivalGen::OnOff {
                on,
                rates,
                means,
                d,
                t,
                state_end,
            } => loop {
                if *t >= *d {
                    return None;
                }
                let rate = if *on { rates.0 } else { rates.1 };
                let candidate = if rate > 0.0 {
                    *t + exp1(rng) / rate
                } else {
                    f64::INFINITY
                };
                if candidate < *state_end {
                    *t = candidate;
                    if *t >= *d {
                        return None;
                    }
                    return to_us(*t, *d);
                }
                // Memorylessness: restart the clock at the state change.
                *t = *state_end;
                *on = !*on;
                let mean = if *on { means.0 } else { means.1 };
                *state_end = *t + exp1(rng) * mean;
            },
            ArrivalGen::Fixed { offsets, next } => {
                let v = offsets.get(*next).copied();
                *next += 1;
                v
            }
        }
    }
}

fn to_us(t: f64, d: f64) -> Option<u64> {
    if t >= d || !t.is_finite() {
        return None;
    }
    Some((t * 1_000_000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws the arrival offsets (µs) of `arrival` over `duration_ms` at once (generation
    /// uses the lazy form).
    fn sample_offsets_us(arrival: &Arrival, duration_ms: u64, seed: u64) -> Vec<u64> {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut g = ArrivalGen::new(arrival, duration_ms, &mut rng);
        let mut out = Vec::new();
        while let Some(t) = g.next_us(&mut rng) {
            out.push(t);
        }
        out
    }

    const HOUR: u64 = 3_600_000;

    fn count(a: &Arrival, ms: u64, seed: u64) -> usize {
        sample_offsets_us(a, ms, seed).len()
    }

    fn rel_err(actual: f64, expected: f64) -> f64 {
        (actual - expected).abs() / expected
    }

    #[test]
    fn constant_is_exact_and_evenly_spaced() {
        let a = Arrival::Constant {
            rate: 10.0,
            randomize: false,
        };
        let v = sample_offsets_us(&a, 1_000, 1);
        assert_eq!(v.len(), 10);
        assert_eq!(v[0], 50_000);
        assert!(v.windows(2).all(|w| (w[1] - w[0]).abs_diff(100_000) <= 1));
        assert_eq!(count(&a, HOUR, 1), 36_000);
    }

    #[test]
    fn poisson_rate_within_2_percent_over_an_hour() {
        // Tolerance: 100 events/s for 3,600 s -> 360,000 expected, sd 600 (0.17%); 2% is >10 sd.
        let a = Arrival::Poisson { rate: 100.0 };
        let n = count(&a, HOUR, 42) as f64;
        assert!(rel_err(n, 360_000.0) < 0.02, "{n}");
    }

    #[test]
    fn poisson_inter_arrivals_pass_kolmogorov_smirnov() {
        // KS test of inter-arrival times against Exp(rate) at alpha = 0.01.
        let rate = 50.0;
        let v = sample_offsets_us(&Arrival::Poisson { rate }, 200_000, 9);
        let mut gaps: Vec<f64> = v.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6).collect();
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len() as f64;
        assert!(n > 9_000.0, "{n}");
        let mut d: f64 = 0.0;
        for (i, g) in gaps.iter().enumerate() {
            let cdf = 1.0 - (-rate * g).exp();
            d = d
                .max((cdf - i as f64 / n).abs())
                .max(((i + 1) as f64 / n - cdf).abs());
        }
        let critical = 1.63 / n.sqrt();
        assert!(d < critical, "KS D = {d}, critical {critical}");
        // And the mean gap is 1/rate within 3%.
        let mean = gaps.iter().sum::<f64>() / n;
        assert!(rel_err(mean, 1.0 / rate) < 0.03, "{mean}");
        // Not evenly spaced: coefficient of variation of an exponential is 1.
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        assert!(rel_err(var.sqrt() / mean, 1.0) < 0.05);
    }

    #[test]
    fn ramp_integrates_to_the_trapezoid() {
        // 0 -> 100 events/s over an hour: 180,000 events; and rate grows (2nd half has 3x).
        for randomize in [false, true] {
            let a = Arrival::Ramp {
                from: 0.0,
                to: 100.0,
                randomize,
            };
            let v = sample_offsets_us(&a, HOUR, 3);
            assert!(
                rel_err(v.len() as f64, 180_000.0) < 0.01,
                "{randomize} {}",
                v.len()
            );
            let half = v.iter().filter(|t| **t < HOUR * 500).count() as f64;
            assert!(rel_err((v.len() as f64 - half) / half, 3.0) < 0.03);
        }
    }

    #[test]
    fn step_spike_and_diurnal_match_their_integrals() {
        let step = Arrival::Step {
            steps: vec![
                Step {
                    at: DurationMs(0),
                    rate: 10.0,
                },
                Step {
                    at: DurationMs(HOUR / 2),
                    rate: 50.0,
                },
            ],
            randomize: true,
        };
        let n = count(&step, HOUR, 5) as f64;
        assert!(rel_err(n, 1_800.0 * 10.0 + 1_800.0 * 50.0) < 0.02, "{n}");

        let spike = Arrival::Spike {
            base: 5.0,
            peak: 500.0,
            at: DurationMs(600_000),
            length: DurationMs(60_000),
            randomize: false,
        };
        let v = sample_offsets_us(&spike, HOUR, 5);
        assert_eq!(v.len(), 3_540 * 5 + 60 * 500);
        let in_spike = v
            .iter()
            .filter(|t| (600_000_000..660_000_000).contains(*t))
            .count();
        assert_eq!(in_spike, 30_000);

        let diurnal = Arrival::Diurnal {
            mean: 20.0,
            amplitude: 0.8,
            period: DurationMs(HOUR),
            phase: 0.0,
            randomize: true,
        };
        let v = sample_offsets_us(&diurnal, HOUR, 5);
        assert!(rel_err(v.len() as f64, 72_000.0) < 0.02, "{}", v.len());
        // First quarter (around the peak of the sine) is busier than the third (trough).
        let q = |k: u64| {
            v.iter()
                .filter(|t| (k * HOUR * 250..(k + 1) * HOUR * 250).contains(*t))
                .count() as f64
        };
        // Λ over [0, T/4] = mean*(T/4 + amp*T/2π), over [T/2, 3T/4] = mean*(T/4 - amp*T/2π).
        let expected_ratio = (0.25 + 0.8 / (2.0 * std::f64::consts::PI))
            / (0.25 - 0.8 / (2.0 * std::f64::consts::PI));
        assert!(
            rel_err(q(0) / q(2), expected_ratio) < 0.1,
            "{} {}",
            q(0) / q(2),
            expected_ratio
        );
    }

    #[test]
    fn on_off_long_run_rate_is_the_time_weighted_mean() {
        // on 200/s for mean 2 s, off 0/s for mean 8 s: long-run rate 200 * 2/10 = 40/s.
        let a = Arrival::OnOff {
            on_rate: 200.0,
            off_rate: 0.0,
            mean_on: DurationMs(2_000),
            mean_off: DurationMs(8_000),
        };
        let v = sample_offsets_us(&a, 4 * HOUR, 11);
        // 1,440 cycles; sd of the on-time share ~ 2.6% -> 10% tolerance is ~4 sd.
        assert!(
            rel_err(v.len() as f64, 40.0 * 4.0 * 3_600.0) < 0.10,
            "{}",
            v.len()
        );
        // Bursty: many 1-second windows are empty, some carry far more than 40.
        let mut per_s = vec![0u32; 4 * 3_600];
        for t in &v {
            per_s[(*t / 1_000_000) as usize] += 1;
        }
        let empty = per_s.iter().filter(|c| **c == 0).count();
        let busy = per_s.iter().filter(|c| **c > 150).count();
        assert!(empty > 5_000 && busy > 500, "{empty} {busy}");
    }

    #[test]
    fn expected_count_matches() {
        let a = Arrival::Ramp {
            from: 10.0,
            to: 30.0,
            randomize: false,
        };
        assert_eq!(a.expected_count(10_000), Some(200.0));
        assert_eq!(count(&a, 10_000, 0), 200);
    }
}
