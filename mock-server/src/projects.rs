//! Projects and regions: each API key belongs to one project in the US or the EU region
//! (spec §1.1). A key used in the wrong region is answered exactly as an unknown key.

use crate::profile::Limits;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

pub use amplitude_wire::Region;

/// One project as configured: its key, region and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project's API key.
    pub api_key: String,
    /// Its region (default `us`).
    #[serde(default)]
    pub region: Region,
    /// Limits for this project; absent means the config's `[limits]`.
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// A project the mock knows.
#[derive(Debug)]
pub struct Project {
    /// Small integer id, assigned in configuration order from 1.
    pub id: u32,
    /// The API key.
    pub api_key: Arc<str>,
    /// The region whose host accepts the key.
    pub region: Region,
    /// The project's limits.
    pub limits: Limits,
}

/// Lookup of projects by API key. With no key configured, any key is accepted and gets a US
/// project on first use (the wiremock-style zero-config default).
#[derive(Debug)]
pub struct Projects {
    by_key: RwLock<HashMap<Arc<str>, Arc<Project>>>,
    accept_any: bool,
    default_limits: Limits,
}

impl Projects {
    /// Registers `configs` in order; `default_limits` apply where a project has none.
    pub fn new(configs: &[ProjectConfig], default_limits: Limits) -> Self {
        let mut by_key = HashMap::new();
        for c in configs {
            let key: Arc<str> = Arc::from(c.api_key.as_str());
            let id = u32::try_from(by_key.len() + 1).unwrap_or(u32::MAX);
            by_key.entry(key.clone()).or_insert_with(|| {
                Arc::new(Project {
                    id,
                    api_key: key,
                    region: c.region,
                    limits: c.limits.unwrap_or(default_limits),
                })
            });
        }
        Self {
            accept_any: by_key.is_empty(),
            by_key: RwLock::new(by_key),
            default_limits,
        }
    }

    /// The project of `api_key` in `region`, or `None` when the key is unknown or belongs to
    /// the other region (both answered `Invalid API key: <key>`, spec §5.1).
    pub fn lookup(&self, api_key: &str, region: Region) -> Option<Arc<Project>> {
        if let Some(p) = self.by_key.read().get(api_key) {
            return (p.region == region).then(|| p.clone());
        }
        if !self.accept_any {
            return None;
        }
        let mut map = self.by_key.write();
        let id = u32::try_from(map.len() + 1).unwrap_or(u32::MAX);
        let key: Arc<str> = Arc::from(api_key);
        let p = map
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Project {
                    id,
                    api_key: key,
                    region,
                    limits: self.default_limits,
                })
            })
            .clone();
        (p.region == region).then_some(p)
    }

    /// The project of `api_key` in whichever region it belongs to (inspection routes).
    pub fn lookup_any_region(&self, api_key: &str) -> Option<Arc<Project>> {
        self.by_key.read().get(api_key).cloned()
    }
}

/// Redacts an API key for logs and the journal: the first 4 characters then `…`.
pub fn redact_key(key: &str) -> String {
    // Short keys show nothing: four characters of a five-character key would give it away.
    // One allocation, and no full character count of a long key (the hot path, per request).
    let head = match key.char_indices().nth(11) {
        Some(_) => key.char_indices().nth(4).map_or(key, |(i, _)| &key[..i]),
        None => "",
    };
    let mut out = String::with_capacity(head.len() + '…'.len_utf8());
    out.push_str(head);
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_keys_show_four_characters_of_twelve_or_more() {
        assert_eq!(redact_key("bench0123456789abcdef0123456789ab"), "benc…");
        assert_eq!(redact_key("abcdefghijkl"), "abcd…");
        assert_eq!(redact_key("abcdefghijk"), "…");
        assert_eq!(redact_key(""), "…");
        assert_eq!(redact_key("ééééééééééééé"), "éééé…");
        assert_eq!(redact_key("éééééééééé"), "…");
    }

    #[test]
    fn wrong_region_is_unknown() {
        // spec §1.1: a key used in the wrong region gets the invalid-key 400
        let p = Projects::new(
            &[ProjectConfig {
                api_key: "eu-key".into(),
                region: Region::Eu,
                limits: None,
            }],
            Limits::default(),
        );
        assert!(p.lookup("eu-key", Region::Eu).is_some());
        assert!(p.lookup("eu-key", Region::Us).is_none());
        assert!(p.lookup("other", Region::Us).is_none());
        assert_eq!(
            Region::from_host(Some("api.eu.amplitude.com:443")),
            Region::Eu
        );
        assert_eq!(Region::from_host(Some("127.0.0.1:8080")), Region::Us);
    }

    #[test]
    fn zero_config_accepts_any_key() {
        let p = Projects::new(&[], Limits::default());
        let a = p.lookup("k1", Region::Us).unwrap();
        assert_eq!(p.lookup("k1", Region::Us).unwrap().id, a.id);
        assert_ne!(p.lookup("k2", Region::Us).unwrap().id, a.id);
    }
}
