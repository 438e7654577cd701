//! The identity population: who sends the events.
//!
//! There are `users` known users, each with `devices_per_user` devices, plus
//! `anonymous_devices` devices that never log in. Each event picks an *actor* (a user or an
//! anonymous device) by popularity rank — uniform, or Zipf with exponent `zipf_s` so that
//! rank 0 is a heavy hitter — then, for a user, one of its devices uniformly.

use crate::random::unit;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Most actors (users + anonymous devices) a population may have.
pub(crate) const MAX_ACTORS: u64 = 5_000_000;

/// How popular each actor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Popularity {
    /// Every actor equally likely.
    #[default]
    Uniform,
    /// Actor of rank `r` (0-based) has weight `1 / (r + 1)^zipf_s`.
    Zipf,
}

/// The `[population]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Population {
    /// Number of users with a `user_id` (default 1,000).
    pub users: u64,
    /// Devices of each user, ≥ 1 (default 1).
    pub devices_per_user: u32,
    /// Devices without a user (events carry only `device_id`; default 0).
    pub anonymous_devices: u64,
    /// `uniform` (default) or `zipf`.
    pub popularity: Popularity,
    /// Zipf exponent `s` > 0 (default 1.0); larger means a hotter top actor.
    pub zipf_s: f64,
    /// Prepended to every generated id, e.g. to keep two runs' identities apart.
    pub id_prefix: String,
}

impl Default for Population {
    fn default() -> Self {
        Self {
            users: 1_000,
            devices_per_user: 1,
            anonymous_devices: 0,
            popularity: Popularity::Uniform,
            zipf_s: 1.0,
            id_prefix: String::new(),
        }
    }
}

impl Population {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let actors = self.users.saturating_add(self.anonymous_devices);
        if actors == 0 {
            return Err((
                "users".into(),
                "users + anonymous_devices must be > 0".into(),
            ));
        }
        if actors > MAX_ACTORS {
            return Err((
                "users".into(),
                format!("users + anonymous_devices must be ≤ {MAX_ACTORS}"),
            ));
        }
        if self.devices_per_user == 0 {
            return Err(("devices_per_user".into(), "must be ≥ 1".into()));
        }
        if !self.zipf_s.is_finite() || self.zipf_s <= 0.0 || self.zipf_s > 50.0 {
            return Err(("zipf_s".into(), "must be in (0, 50]".into()));
        }
        Ok(())
    }

    /// Number of actors: users + anonymous devices.
    pub fn actors(&self) -> u64 {
        self.users + self.anonymous_devices
    }

    /// Total devices: `users * devices_per_user + anonymous_devices`.
    pub fn devices(&self) -> u64 {
        self.users * u64::from(self.devices_per_user) + self.anonymous_devices
    }

    /// The probability that an event comes from the actor of popularity rank `rank`.
    pub fn share_of_rank(&self, rank: u64) -> f64 {
        let n = self.actors();
        if rank >= n {
            return 0.0;
        }
        match self.popularity {
            Popularity::Uniform => 1.0 / n as f64,
            Popularity::Zipf => {
                let h: f64 = (1..=n).map(|k| libm::pow(k as f64, -self.zipf_s)).sum();
                libm::pow((rank + 1) as f64, -self.zipf_s) / h
            }
        }
    }

    /// `user_id` of user `index`, e.g. `user-000042`.
    pub fn user_id(&self, index: u64) -> String {
        let mut s = String::with_capacity(self.id_prefix.len() + 12);
        self.push_user_id(&mut s, index);
        s
    }

    /// `device_id` of device `device` of user `index`, e.g. `device-000042-0`.
    pub fn user_device_id(&self, index: u64, device: u32) -> String {
        let mut s = String::with_capacity(self.id_prefix.len() + 18);
        self.push_user_device_id(&mut s, index, device);
        s
    }

    /// `device_id` of anonymous device `index`, e.g. `anon-000007`.
    pub fn anonymous_device_id(&self, index: u64) -> String {
        let mut s = String::with_capacity(self.id_prefix.len() + 12);
        self.push_anonymous_device_id(&mut s, index);
        s
    }

    /// Appends [`Population::user_id`] to `s` (ids are made for every generated event: no
    /// `format!` machinery, no allocation into a reused buffer).
    fn push_user_id(&self, s: &mut String, index: u64) {
        s.push_str(&self.id_prefix);
        s.push_str("user-");
        push_padded6(s, index);
    }

    /// Appends [`Population::user_device_id`] to `s`.
    fn push_user_device_id(&self, s: &mut String, index: u64, device: u32) {
        s.push_str(&self.id_prefix);
        s.push_str("device-");
        push_padded6(s, index);
        s.push('-');
        s.push_str(itoa::Buffer::new().format(device));
    }

    /// Appends [`Population::anonymous_device_id`] to `s`.
    fn push_anonymous_device_id(&self, s: &mut String, index: u64) {
        s.push_str(&self.id_prefix);
        s.push_str("anon-");
        push_padded6(s, index);
    }
}

/// Appends `n` in decimal, zero-padded to at least 6 digits (as `format!("{n:06}")`).
fn push_padded6(s: &mut String, n: u64) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..6 {
        s.push('0');
    }
    s.push_str(digits);
}

/// The identity of one event.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Popularity rank of the actor (0 = most popular).
    pub rank: u64,
    /// `user_id`, absent for anonymous devices.
    pub user_id: Option<String>,
    /// `device_id`, always present.
    pub device_id: String,
}

/// Samples identities from a [`Population`].
#[derive(Debug, Clone)]
pub(crate) struct IdentitySampler {
    pop: Population,
    /// Zipf cumulative distribution over ranks (empty for uniform).
    cdf: Vec<f64>,
}

impl IdentitySampler {
    /// Precomputes the sampler (for Zipf, a table of one `f64` per actor).
    pub(crate) fn new(pop: &Population) -> Self {
        let cdf = match pop.popularity {
            Popularity::Uniform => Vec::new(),
            Popularity::Zipf => {
                let mut acc = 0.0;
                let mut v: Vec<f64> = (1..=pop.actors())
                    .map(|k| {
                        acc += libm::pow(k as f64, -pop.zipf_s);
                        acc
                    })
                    .collect();
                let total = acc;
                for x in &mut v {
                    *x /= total;
                }
                v
            }
        };
        Self {
            pop: pop.clone(),
            cdf,
        }
    }

    /// Draws a popularity rank in `0..actors`.
    pub(crate) fn sample_rank(&self, rng: &mut impl RngCore) -> u64 {
        let n = self.pop.actors();
        let u = unit(rng);
        if self.cdf.is_empty() {
            return ((u * n as f64) as u64).min(n - 1);
        }
        let i = self.cdf.partition_point(|c| *c <= u);
        (i as u64).min(n - 1)
    }

    /// Draws the identity of one event.
    #[cfg(test)]
    pub(crate) fn sample(&self, rng: &mut impl RngCore) -> Identity {
        let (mut user, mut device) = (String::new(), String::new());
        let (rank, has_user) = self.sample_into(rng, &mut user, &mut device);
        Identity {
            rank,
            user_id: has_user.then_some(user),
            device_id: device,
        }
    }

    /// Draws the identity of one event into reused buffers: `user` and `device` are
    /// cleared, then hold the `user_id` (empty for an anonymous device) and `device_id`.
    /// Returns the rank and whether there is a user. Same draws and ids as
    /// [`IdentitySampler::sample`].
    pub(crate) fn sample_into(
        &self,
        rng: &mut impl RngCore,
        user: &mut String,
        device: &mut String,
    ) -> (u64, bool) {
        user.clear();
        device.clear();
        let rank = self.sample_rank(rng);
        // Ranks are interleaved so that users and anonymous devices both reach the top:
        // rank r maps to user r when r < users, else to anonymous device r - users.
        if rank < self.pop.users {
            let dev = if self.pop.devices_per_user > 1 {
                ((unit(rng) * f64::from(self.pop.devices_per_user)) as u32)
                    .min(self.pop.devices_per_user - 1)
            } else {
                0
            };
            self.pop.push_user_id(user, rank);
            self.pop.push_user_device_id(device, rank, dev);
            (rank, true)
        } else {
            self.pop
                .push_anonymous_device_id(device, rank - self.pop.users);
            (rank, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_gives_the_top_actor_its_expected_share() {
        // s = 1.2 over 1,000 actors: share(0) = 1 / H(1000, 1.2).
        let pop = Population {
            users: 1_000,
            popularity: Popularity::Zipf,
            zipf_s: 1.2,
            ..Population::default()
        };
        let expected = pop.share_of_rank(0);
        let h: f64 = (1..=1000).map(|k| (k as f64).powf(-1.2)).sum();
        assert!((expected - 1.0 / h).abs() < 1e-12);
        assert!(expected > 0.22 && expected < 0.24, "{expected}");
        let s = IdentitySampler::new(&pop);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 200_000;
        let top = (0..n).filter(|_| s.sample_rank(&mut rng) == 0).count() as f64 / n as f64;
        // sd = sqrt(p(1-p)/n) ~ 0.001; tolerance 0.005.
        assert!((top - expected).abs() < 0.005, "{top} vs {expected}");
        // Rank 1 gets 2^-1.2 of rank 0.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut c = [0u32; 2];
        for _ in 0..n {
            let r = s.sample_rank(&mut rng);
            if r < 2 {
                c[r as usize] += 1;
            }
        }
        let ratio = f64::from(c[1]) / f64::from(c[0]);
        assert!((ratio - 2f64.powf(-1.2)).abs() < 0.02, "{ratio}");
    }

    #[test]
    fn uniform_spreads_evenly_and_ids_are_valid() {
        let pop = Population {
            users: 10,
            devices_per_user: 3,
            anonymous_devices: 10,
            ..Population::default()
        };
        let s = IdentitySampler::new(&pop);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut anon = 0;
        for _ in 0..10_000 {
            let id = s.sample(&mut rng);
            assert!(id.device_id.len() >= amplitude_wire::limits::DEFAULT_MIN_ID_LENGTH);
            match &id.user_id {
                Some(u) => {
                    assert!(u.len() >= 5);
                    assert!(id.device_id.starts_with(&format!("device-{:06}-", id.rank)));
                }
                None => anon += 1,
            }
        }
        assert!((4_700..5_300).contains(&anon), "{anon}");
        assert_eq!(pop.devices(), 40);
    }

    #[test]
    fn ids_are_written_as_format_would() {
        let mut pop = Population::default();
        for prefix in ["", "seg-"] {
            pop.id_prefix = prefix.to_owned();
            for n in [0u64, 7, 42, 99_999, 999_999, 1_000_000, 123_456_789] {
                assert_eq!(pop.user_id(n), format!("{prefix}user-{n:06}"));
                assert_eq!(pop.anonymous_device_id(n), format!("{prefix}anon-{n:06}"));
                for d in [0u32, 3, 12] {
                    assert_eq!(
                        pop.user_device_id(n, d),
                        format!("{prefix}device-{n:06}-{d}")
                    );
                }
            }
        }
    }
}
