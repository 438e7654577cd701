//! The mock's configuration: projects, fidelity profile, limits, ledger bounds, silenced
//! devices. Loaded from TOML (`--config mock.toml`); every table is optional and unknown keys
//! are an error naming the key. Example in `docs/fidelity.md`.

use crate::faults::Fault;
use crate::ledger::LedgerConfig;
use crate::profile::{FidelityProfile, Limits};
use crate::projects::ProjectConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Projects (`[[projects]]`); none means any API key is accepted as a US project.
    pub projects: Vec<ProjectConfig>,
    /// UNCERTAIN behaviours (`[profile]`), see `docs/fidelity.md`.
    pub profile: FidelityProfile,
    /// Default limits (`[limits]`) for projects without their own.
    pub limits: Limits,
    /// Memory bounds of the ledger (`[ledger]`).
    pub ledger: LedgerConfig,
    /// Device ids answered with the silenced 400 (spec §5.1).
    pub silenced_devices: Vec<String>,
    /// Seed of every random choice the mock makes (probabilistic faults).
    pub seed: u64,
    /// Token the `/__mock/` routes require from non-loopback clients (header
    /// `x-mock-admin-token`); without it they refuse non-loopback clients.
    pub admin_token: Option<String>,
    /// Faults scheduled at start (`[[faults]]`, same fields as `POST /__mock/faults`; see
    /// `docs/faults.md`).
    pub faults: Vec<Fault>,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the I/O error is the `source()`, not repeated in the
    /// message).
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is invalid or has an unknown or mistyped key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message, with line, column and key.
        message: String,
    },
}

/// One problem of a configuration: where (`faults[1].kind`, `limits.eps_window_ms`,
/// `projects[0].api_key`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigIssue {
    /// Path of the offending field, TOML-style (`faults[2].committed`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every problem [`MockConfig::validate`] found, in config order (never empty). Displays
/// as the issues joined with `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mock configuration: {}", join(.0))]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

fn join(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every problem of `faults`, each with its path `<prefix>[i].<field>` (e.g.
/// `faults[2].committed`), in order.
pub(crate) fn faults_problems(faults: &[Fault], prefix: &str) -> Vec<ConfigIssue> {
    faults
        .iter()
        .enumerate()
        .flat_map(|(i, f)| {
            f.problems().into_iter().map(move |e| ConfigIssue {
                path: format!("{prefix}[{i}].{}", e.field),
                message: format!("{} fault: {}", e.kind, e.message),
            })
        })
        .collect()
}

/// Problems of one set of limits, paths under `prefix` (`limits`, `projects[1].limits`).
fn limits_problems(l: &Limits, prefix: &str, out: &mut Vec<ConfigIssue>) {
    let mut bad = |field: &str, message: &str| {
        out.push(ConfigIssue {
            path: format!("{prefix}.{field}"),
            message: message.to_owned(),
        });
    };
    if l.eps_window_ms == 0 {
        bad(
            "eps_window_ms",
            "must be at least 1 ms (the EPS averaging window)",
        );
    }
    if l.max_events_per_request == 0 {
        bad(
            "max_events_per_request",
            "must be at least 1 (0 would answer 413 to every request with events)",
        );
    }
}

impl MockConfig {
    /// Checks the whole configuration without running anything: every fault
    /// ([`Fault::problems`], paths `faults[i].<field>`), the limits (`limits.<field>`,
    /// `projects[i].limits.<field>`), the projects (`projects[i].api_key`: empty, or the
    /// same key twice in one region). Returns all problems at once, with their paths.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut out = faults_problems(&self.faults, "faults");
        limits_problems(&self.limits, "limits", &mut out);
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            if p.api_key.is_empty() {
                out.push(ConfigIssue {
                    path: format!("projects[{i}].api_key"),
                    message: "is empty".to_owned(),
                });
            } else if !seen.insert((p.api_key.as_str(), p.region)) {
                out.push(ConfigIssue {
                    path: format!("projects[{i}].api_key"),
                    message: "the same key is already a project of this region".to_owned(),
                });
            }
            if let Some(l) = &p.limits {
                limits_problems(l, &format!("projects[{i}].limits"), &mut out);
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(out))
        }
    }

    /// Parses TOML text and validates it ([`MockConfig::validate`]); `origin` names it in
    /// errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: join(&e.0),
        })?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ShortIdPolicy;
    use crate::projects::Region;

    #[test]
    fn parses_every_table() {
        let c = MockConfig::from_toml_str(
            r#"
            seed = 7
            silenced_devices = ["dev-silenced"]
            [profile]
            short_id_policy = "strip"
            [limits]
            eps_threshold_http_v2 = 2
            [[projects]]
            api_key = "eu-key"
            region = "eu"
            "#,
            "test",
        )
        .unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.profile.short_id_policy, ShortIdPolicy::Strip);
        assert_eq!(c.limits.eps_threshold_http_v2, 2);
        assert_eq!(c.limits.eps_threshold_batch, 1_000);
        assert_eq!(c.projects[0].region, Region::Eu);
    }

    #[test]
    fn a_negative_seed_is_refused_not_wrapped() {
        // A TOML integer is signed; the seed is a u64: -1 must not become 2^64 - 1.
        let e = MockConfig::from_toml_str("seed = -1\n", "mock.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("mock.toml") && msg.contains("seed"), "{msg}");
        assert_eq!(
            MockConfig::from_toml_str("seed = 9223372036854775807\n", "mock.toml")
                .unwrap()
                .seed,
            i64::MAX as u64
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = MockConfig::from_toml_str("[profile]\nshort_ids = \"strip\"\n", "mock.toml")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("mock.toml") && msg.contains("short_ids"),
            "{msg}"
        );
    }
}
