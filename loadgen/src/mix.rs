//! The event mix: which event types, how big their properties are, how many carry user
//! properties, how many are `$identify`, how many carry an `insert_id`.

use crate::random::unit;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// One event type and its relative weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeWeight {
    /// `event_type` value.
    pub name: String,
    /// Relative weight, > 0.
    pub weight: f64,
}

/// Distribution of the size of an event's filler payload (`event_properties.payload`),
/// bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SizeDist {
    /// Always `bytes`.
    Fixed {
        /// bytes
        bytes: u32,
    },
    /// Uniform in `min..=max` bytes.
    Uniform {
        /// bytes
        min: u32,
        /// bytes
        max: u32,
    },
    /// Log-normal with the given median (bytes) and `sigma` (of the log), capped at `max`.
    Lognormal {
        /// bytes
        median: f64,
        /// standard deviation of ln(size)
        sigma: f64,
        /// bytes
        max: u32,
    },
}

impl Default for SizeDist {
    fn default() -> Self {
        SizeDist::Fixed { bytes: 32 }
    }
}

impl SizeDist {
    /// Draws a size, bytes.
    pub fn sample(&self, rng: &mut impl RngCore) -> usize {
        match self {
            SizeDist::Fixed { bytes } => *bytes as usize,
            SizeDist::Uniform { min, max } => {
                let span = f64::from(max - min) + 1.0;
                (*min as usize + (unit(rng) * span) as usize).min(*max as usize)
            }
            SizeDist::Lognormal { median, sigma, max } => {
                // Box-Muller with libm: portable.
                let u1 = 1.0 - unit(rng);
                let u2 = unit(rng);
                let z =
                    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2);
                let v = median * libm::exp(sigma * z);
                (v.max(0.0) as usize).min(*max as usize)
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            SizeDist::Fixed { bytes } if *bytes > 1_000_000 => {
                Err("bytes must be ≤ 1000000".into())
            }
            SizeDist::Uniform { min, max } if min > max || *max > 1_000_000 => {
                Err("need min ≤ max ≤ 1000000".into())
            }
            SizeDist::Lognormal { median, sigma, max }
                if !(median.is_finite()
                    && *median >= 0.0
                    && sigma.is_finite()
                    && *sigma >= 0.0)
                    || *max > 1_000_000 =>
            {
                Err("need median ≥ 0, sigma ≥ 0, max ≤ 1000000".into())
            }
            _ => Ok(()),
        }
    }
}

/// The `[mix]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// Event types and weights (default: Page Viewed 6, Button Clicked 3, Purchase 1).
    pub event_types: Vec<EventTypeWeight>,
    /// Size of `event_properties.payload`, bytes.
    pub payload_bytes: SizeDist,
    /// Share (0..=1) of non-identify events that also carry `user_properties` (`$set`).
    pub user_properties_share: f64,
    /// Share (0..=1) of events that are `$identify` with a `$set` of user properties.
    pub identify_share: f64,
    /// Share (0..=1) of events that carry an `insert_id` (default 1: all).
    pub insert_id_share: f64,
    /// Whether events carry `time` (`start_time_ms` + intended offset; default true).
    pub time: bool,
    /// `platform` of every event (default none).
    pub platform: Option<String>,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            event_types: vec![
                EventTypeWeight {
                    name: "Page Viewed".into(),
                    weight: 6.0,
                },
                EventTypeWeight {
                    name: "Button Clicked".into(),
                    weight: 3.0,
                },
                EventTypeWeight {
                    name: "Purchase".into(),
                    weight: 1.0,
                },
            ],
            payload_bytes: SizeDist::default(),
            user_properties_share: 0.0,
            identify_share: 0.0,
            insert_id_share: 1.0,
            time: true,
            platform: None,
        }
    }
}

fn share(name: &str, v: f64) -> Result<(), (String, String)> {
    if !(0.0..=1.0).contains(&v) {
        return Err((
            name.to_owned(),
            format!("must be a share between 0 and 1, got {v}"),
        ));
    }
    Ok(())
}

impl Mix {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.event_types.is_empty() {
            return Err(("event_types".into(), "needs at least one event type".into()));
        }
        for (i, t) in self.event_types.iter().enumerate() {
            if !t.weight.is_finite() || t.weight <= 0.0 {
                return Err((format!("event_types[{i}].weight"), "must be > 0".into()));
            }
            if t.name.is_empty() {
                return Err((format!("event_types[{i}].name"), "must not be empty".into()));
            }
        }
        self.payload_bytes
            .validate()
            .map_err(|m| ("payload_bytes".to_owned(), m))?;
        share("user_properties_share", self.user_properties_share)?;
        share("identify_share", self.identify_share)?;
        share("insert_id_share", self.insert_id_share)
    }
}

/// Weighted choice of event types.
#[derive(Debug, Clone)]
pub(crate) struct TypePicker {
    names: Vec<String>,
    cdf: Vec<f64>,
}

impl TypePicker {
    pub(crate) fn new(mix: &Mix) -> Self {
        let total: f64 = mix.event_types.iter().map(|t| t.weight).sum();
        let mut acc = 0.0;
        let cdf = mix
            .event_types
            .iter()
            .map(|t| {
                acc += t.weight / total;
                acc
            })
            .collect();
        Self {
            names: mix.event_types.iter().map(|t| t.name.clone()).collect(),
            cdf,
        }
    }

    #[cfg(test)]
    pub(crate) fn pick(&self, rng: &mut impl RngCore) -> &str {
        self.pick_u(unit(rng))
    }

    /// The type for a uniform draw `u` in [0, 1).
    pub(crate) fn pick_u(&self, u: f64) -> &str {
        let i = self
            .cdf
            .partition_point(|c| *c <= u)
            .min(self.names.len().saturating_sub(1));
        self.names.get(i).map_or("event", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::filler;
    use rand::SeedableRng;

    #[test]
    fn sizes_follow_their_distribution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let d = SizeDist::Uniform { min: 10, max: 20 };
        let v: Vec<usize> = (0..10_000).map(|_| d.sample(&mut rng)).collect();
        assert!(v.iter().all(|x| (10..=20).contains(x)));
        let mean = v.iter().sum::<usize>() as f64 / v.len() as f64;
        assert!((mean - 15.0).abs() < 0.2, "{mean}");

        let d = SizeDist::Lognormal {
            median: 200.0,
            sigma: 0.5,
            max: 5_000,
        };
        let mut v: Vec<usize> = (0..10_001).map(|_| d.sample(&mut rng)).collect();
        v.sort_unstable();
        assert!((185..=215).contains(&v[5_000]), "median {}", v[5_000]);
        assert_eq!(filler(&mut rng, 37).len(), 37);
    }

    #[test]
    fn type_weights_are_respected() {
        let mix = Mix::default();
        let p = TypePicker::new(&mix);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let n = 50_000;
        let purchases = (0..n).filter(|_| p.pick(&mut rng) == "Purchase").count() as f64 / n as f64;
        assert!((purchases - 0.1).abs() < 0.01, "{purchases}");
    }
}
