//! The builder composes its settings whatever the call order (issue 20, B; ADR 008):
//! `.config(..)` is a base the setters override, lists add up, the benchmark profile
//! applies last.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use crate::common::{post, KEY, T0};
use crate::start::blocking_post;
use amplitude_mock::{Fault, LedgerConfig, Limits, MockConfig, MockServer, MockServerBuilder};
use serde_json::json;

type Step = fn(MockServerBuilder) -> MockServerBuilder;

fn base_config() -> MockConfig {
    let mut c = MockConfig::default();
    c.ledger.max_events = 1_234;
    c.limits.eps_threshold_http_v2 = 7;
    c.seed = 99;
    c
}

const STEPS: [(&str, Step); 4] = [
    ("api_key", |b| b.api_key(KEY)),
    ("config", |b| b.config(base_config())),
    ("fault", |b| b.fault(Fault::status(503).count(1))),
    ("seed", |b| b.seed(42)),
];

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[tokio::test]
async fn each_order_of_api_key_config_fault_seed_gives_the_same_mock() {
    let orders = permutations(STEPS.len());
    assert_eq!(orders.len(), 24);
    let mut first: Option<MockConfig> = None;
    for order in orders {
        let names: Vec<_> = order.iter().map(|&i| STEPS[i].0).collect();
        let b = order
            .iter()
            .fold(MockServer::builder().virtual_clock(T0), |b, &i| {
                (STEPS[i].1)(b)
            });
        let mock = b.start().await;
        let cfg = mock.state().config().clone();
        // The key stays (not wiped by .config), the fault and the seed too, and the
        // config's own settings are kept.
        assert_eq!(cfg.projects.len(), 1, "{names:?}");
        assert_eq!(cfg.projects[0].api_key, KEY, "{names:?}");
        assert_eq!(cfg.faults.len(), 1, "{names:?}");
        assert_eq!(cfg.seed, 42, "{names:?}: the setter overrides the config");
        assert_eq!(cfg.ledger.max_events, 1_234, "{names:?}");
        assert_eq!(cfg.limits.eps_threshold_http_v2, 7, "{names:?}");
        match &first {
            None => first = Some(cfg),
            Some(f) => assert_eq!(&cfg, f, "{names:?}"),
        }
        // The key is enforced: a wrong key is refused (after the scheduled 503).
        let wrong = json!({"api_key": "not-the-key-0123456789abcdef0123", "events": [{"device_id": "device-1", "event_type": "A"}]});
        let (s, _) = post(&mock, "/2/httpapi", &wrong).await;
        assert_eq!(s, 503, "{names:?}: the fault comes first");
        let (s, body) = post(&mock, "/2/httpapi", &wrong).await;
        assert_eq!(s, 400, "{names:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("Invalid API key: "),
            "{names:?}: {body}"
        );
    }
}

#[test]
fn setters_override_the_config_and_lists_add_up() {
    let mut c = base_config();
    c.projects.push(amplitude_mock::ProjectConfig {
        api_key: "config-key-0123456789abcdef012345".into(),
        region: amplitude_mock::Region::Us,
        limits: None,
    });
    c.faults.push(Fault::status(500).count(1));
    let limits = Limits {
        eps_threshold_http_v2: 3,
        ..Limits::default()
    };
    let a = MockServer::builder()
        .max_events_per_request(10)
        .journal_bodies(true)
        .config(c.clone())
        .limits(limits)
        .fault(Fault::status(503).count(1))
        .api_key(KEY)
        .resolved_config()
        .unwrap();
    let b = MockServer::builder()
        .api_key(KEY)
        .limits(limits)
        .fault(Fault::status(503).count(1))
        .config(c)
        .journal_bodies(true)
        .max_events_per_request(10)
        .resolved_config()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.limits.eps_threshold_http_v2, 3);
    assert_eq!(a.limits.max_events_per_request, 10);
    assert!(a.ledger.journal_bodies);
    assert_eq!(a.ledger.max_events, 1_234);
    let keys: Vec<_> = a.projects.iter().map(|p| p.api_key.as_str()).collect();
    assert_eq!(keys, ["config-key-0123456789abcdef012345", KEY]);
    let statuses: Vec<_> = a.faults.iter().map(|f| format!("{f:?}")).collect();
    assert!(
        statuses[0].contains("500") && statuses[1].contains("503"),
        "{statuses:?}"
    );
}

#[test]
fn the_same_project_given_twice_is_kept_once_and_config_twice_is_refused() {
    let mut c = MockConfig::default();
    c.projects.push(amplitude_mock::ProjectConfig {
        api_key: KEY.into(),
        region: amplitude_mock::Region::Us,
        limits: None,
    });
    let r = MockServer::builder()
        .api_key(KEY)
        .config(c.clone())
        .resolved_config()
        .unwrap();
    assert_eq!(r.projects.len(), 1);
    let e = MockServer::builder()
        .config(c.clone())
        .config(c)
        .try_start_blocking()
        .err()
        .unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("config: given 2 times"), "{e}");
}

#[test]
fn the_benchmark_profile_lifts_limits_and_caps_the_ledger_in_any_order() {
    let a = MockServer::builder()
        .profile_for_benchmarks()
        .config(base_config())
        .resolved_config()
        .unwrap();
    let b = MockServer::builder()
        .config(base_config())
        .unthrottled()
        .resolved_config()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.limits, Limits::default().unthrottled());
    assert_eq!(a.ledger.max_events, 1_234, "a smaller cap stays");
    let d = MockServer::builder()
        .profile_for_benchmarks()
        .resolved_config()
        .unwrap();
    assert_eq!(d.ledger.max_events, LedgerConfig::BENCHMARK_MAX_EVENTS);
    assert_eq!(
        d.ledger.journal_capacity,
        LedgerConfig::BENCHMARK_JOURNAL_CAPACITY
    );
    // An explicit ledger wins over the profile's cap, whatever the order.
    let big = LedgerConfig {
        max_events: 5_000_000,
        ..LedgerConfig::default()
    };
    for r in [
        MockServer::builder().ledger(big).unthrottled(),
        MockServer::builder().unthrottled().ledger(big),
    ] {
        assert_eq!(r.resolved_config().unwrap().ledger, big);
    }
}

#[test]
fn the_benchmark_profile_never_throttles() {
    let mock = MockServer::builder()
        .api_key(KEY)
        .virtual_clock(T0)
        .profile_for_benchmarks()
        .start_blocking();
    // 200 events of one device in one instant: 429 under the default 30 events/s.
    let events: Vec<_> = (0..200)
        .map(|i| json!({"device_id": "device-1", "event_type": "A", "insert_id": format!("i-{i}")}))
        .collect();
    let body = json!({"api_key": KEY, "events": events}).to_string();
    let (status, text) = blocking_post(&mock.uri(), "/2/httpapi", &body);
    assert_eq!(status, "HTTP/1.1 200 OK", "{text}");
    let s = mock.stats();
    assert_eq!((s.events_stored, s.events_throttled), (200, 0));
}
