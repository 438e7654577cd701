//! Amplitude's data regions (spec §1.1): a project lives in the US or the EU, and each has
//! its own ingestion host.

use crate::limits::{EU_HOST, US_HOST};
use serde::{Deserialize, Serialize};

/// The region of a project (spec §1.1). Written `us` / `eu` in configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    /// US (`api2.amplitude.com`), the default.
    #[default]
    Us,
    /// EU (`api.eu.amplitude.com`).
    Eu,
}

impl Region {
    /// The region's ingestion host.
    pub fn host(self) -> &'static str {
        match self {
            Self::Us => US_HOST,
            Self::Eu => EU_HOST,
        }
    }

    /// Full HTTPS URL of `endpoint` in this region, e.g.
    /// `https://api2.amplitude.com/2/httpapi` (spec §1.1).
    pub fn url(self, endpoint: crate::Endpoint) -> String {
        format!("https://{}{}", self.host(), endpoint.path())
    }

    /// Name as written in configuration files: `us` or `eu`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
        }
    }

    /// The region a request is for: EU when its `Host` header (port stripped) is
    /// `api.eu.amplitude.com`, else US (spec §1.1).
    pub fn from_host(host: Option<&str>) -> Self {
        let host = host.map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
        match host {
            Some(h) if h.eq_ignore_ascii_case(EU_HOST) => Self::Eu,
            _ => Self::Us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_picks_the_region() {
        // spec §1.1
        assert_eq!(
            Region::from_host(Some("api.eu.amplitude.com:443")),
            Region::Eu
        );
        assert_eq!(Region::from_host(Some("API.EU.AMPLITUDE.COM")), Region::Eu);
        assert_eq!(Region::from_host(Some("127.0.0.1:8080")), Region::Us);
        assert_eq!(Region::from_host(None), Region::Us);
        assert_eq!(Region::Eu.host(), "api.eu.amplitude.com");
    }
}
