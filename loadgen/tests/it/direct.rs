//! Direct mode against tiny in-test HTTP servers on 127.0.0.1:0: coordinated omission,
//! dropped arrivals, 429 bodies, the EU host, the report's schema and the HTML report, and
//! the binary's exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use amplitude_loadgen::{
    render_html, run, Bottleneck, Report, RunOptions, Scenario, REPORT_SCHEMA,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the test server answers: (status, body, delay before answering).
type Behaviour = Arc<dyn Fn(u64, &str) -> (u16, String, Duration) + Send + Sync>;

struct TestServer {
    url: String,
    requests: Arc<AtomicU64>,
    hosts: Arc<Mutex<Vec<String>>>,
    events: Arc<AtomicU64>,
}

async fn start_server(behaviour: Behaviour) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let (r, h, e) = (requests.clone(), hosts.clone(), events.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (b, r, h, e) = (behaviour.clone(), r.clone(), h.clone(), e.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (b, r, h, e) = (b.clone(), r.clone(), h.clone(), e.clone());
                    async move {
                        let n = r.fetch_add(1, Ordering::SeqCst);
                        if let Some(host) = req.headers().get(hyper::header::HOST) {
                            h.lock()
                                .unwrap()
                                .push(host.to_str().unwrap_or("").to_owned());
                        }
                        let body = req.into_body().collect().await?.to_bytes();
                        let text = String::from_utf8_lossy(&body).into_owned();
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        e.fetch_add(
                            v["events"].as_array().map_or(0, |a| a.len() as u64),
                            Ordering::SeqCst,
                        );
                        let (status, out, delay) = b(n, &text);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let resp = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(out)))
                            .unwrap();
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestServer {
        url: format!("http://{addr}"),
        requests,
        hosts,
        events,
    }
}

fn ok_body() -> String {
    r#"{"code":200,"events_ingested":1,"payload_size_bytes":10,"server_upload_time":1}"#.to_owned()
}

fn opts(url: &str) -> RunOptions {
    RunOptions {
        target: url.to_owned(),
        api_key: "test-key".into(),
        seed: None,
        progress: None,
        max_in_flight: None,
        segment: None,
        start_at_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinated_omission_corrected_p99_sees_the_stall() {
    // One connection; request #50 (at ~1 s) stalls for 1 s. Every request scheduled during
    // the stall waits behind it: its latency from the intended start includes the wait, its
    // latency from the actual send does not (what a closed-loop tool would report).
    let server = start_server(Arc::new(|n, _| {
        let delay = if n == 50 {
            Duration::from_millis(1_000)
        } else {
            Duration::ZERO
        };
        (200, ok_body(), delay)
    }))
    .await;
    let sc = Scenario::from_toml_str(
        r#"
seed = 1
duration = "4s"
arrival = { kind = "constant", rate = 50.0 }
[run]
batch_size = 1
max_batch_wait = "0ms"
max_in_flight = 1
max_lag = "5s"
"#,
        "co.toml",
    )
    .unwrap();
    let report = run(&sc, &opts(&server.url)).await.unwrap();
    assert_eq!(report.offered.requests, 200);
    assert_eq!(report.sent.requests, 200);
    assert_eq!(report.dropped.requests, 0);
    assert_eq!(report.status_counts.get("200"), Some(&200));
    let c = &report.latency_ms.corrected;
    let u = &report.latency_ms.uncorrected;
    // ~50 requests were scheduled during the stall, waiting 0..1,000 ms: the top 1% of 200
    // (2 requests) waited ~1 s.
    assert!(
        c.p99 >= 800.0,
        "corrected {c:?} uncorrected {u:?} lag {:?}",
        report.latency_ms.schedule_lag
    );
    assert!(c.p90 >= 100.0, "corrected p90 {} ms", c.p90);
    // Only the stalled request itself was slow once sent.
    assert!(u.p99 < 200.0, "uncorrected p99 {} ms", u.p99);
    assert!(u.max >= 950.0 && c.max >= 950.0, "{} {}", u.max, c.max);
    // The per-second series shows the stall in the second it happened.
    let worst = report
        .series
        .iter()
        .filter_map(|p| p.latency_p99_ms)
        .fold(0.0, f64::max);
    assert!(worst >= 800.0);
    assert_eq!(server.requests.load(Ordering::SeqCst), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_that_cannot_start_in_time_are_dropped_not_delayed() {
    // Every response takes 1.5 s; two requests in flight; a request may start at most
    // 200 ms late. Open model: the rest are counted as dropped.
    let server = start_server(Arc::new(|_, _| {
        (200, ok_body(), Duration::from_millis(1_500))
    }))
    .await;
    let sc = Scenario::from_toml_str(
        r#"
duration = "1s"
arrival = { kind = "constant", rate = 20.0 }
[run]
batch_size = 1
max_batch_wait = "0ms"
max_in_flight = 2
max_lag = "200ms"
[thresholds]
dropped_events = 0
"#,
        "drop.toml",
    )
    .unwrap();
    let report = run(&sc, &opts(&server.url)).await.unwrap();
    assert_eq!(report.offered.events, 20);
    assert_eq!(report.sent.events + report.dropped.events, 20);
    assert_eq!(report.sent.events, server.events.load(Ordering::SeqCst));
    // In 1 s with 2 slots held 1.5 s each, only the first 2 (+ those within 200 ms of a free
    // slot, none before 1.5 s) can start.
    assert_eq!(report.sent.requests, 2, "{report:?}");
    assert_eq!(report.dropped.events, 18);
    assert!(!report.passed);
    let t = &report.thresholds[0];
    assert_eq!(
        (t.metric.as_str(), t.actual, t.passed),
        ("dropped_events", Some(18.0), Some(false))
    );
    // Not loaded as asked, the target's fault; the scenario's `dropped_events` threshold
    // decides the result (exit 99, not 98).
    let load = &report.load;
    assert!(!load.loaded_as_asked);
    assert!(load.thresholds_decide && !load.fails_run());
    assert_eq!(load.bottleneck, Some(Bottleneck::Target));
    assert_eq!(load.dropped_at_in_flight_limit.events, 18);
    assert_eq!(load.dropped_for_schedule_lag.events, 0);
}

/// Issue 16, item 5: a run that could not load the target as asked says so first, in words,
/// and fails on its own unless thresholds decide; both bottlenecks are told apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_did_not_load_the_target_says_so_first_and_fails() {
    // The target holds each answer 1.5 s and one connection is allowed: the target is the
    // bottleneck.
    let server = start_server(Arc::new(|_, _| {
        (200, ok_body(), Duration::from_millis(1_500))
    }))
    .await;
    let sc = Scenario::from_toml_str(
        r#"
duration = "1s"
arrival = { kind = "constant", rate = 20.0 }
[run]
batch_size = 1
max_batch_wait = "0ms"
max_in_flight = 1
max_lag = "100ms"
"#,
        "slow-target.toml",
    )
    .unwrap();
    let report = run(&sc, &opts(&server.url)).await.unwrap();
    assert!(report.passed, "no threshold failed");
    let load = &report.load;
    assert!(!load.loaded_as_asked && load.fails_run(), "{load:?}");
    assert_eq!(load.bottleneck, Some(Bottleneck::Target));
    assert_eq!(load.dropped_at_in_flight_limit.events, 19, "{load:?}");
    assert_eq!(report.sent.events, 1);
    let text = report.to_terminal();
    assert!(
        text.starts_with("TARGET NOT LOADED AS ASKED: offered 20.0 events/s"),
        "{text}"
    );
    assert!(
        text.contains("bottleneck: the target's in-flight limit"),
        "{text}"
    );
    assert!(
        text.contains("result    FAIL (target not loaded as asked; exit 98)"),
        "{text}"
    );
    let html = render_html(&report).unwrap();
    assert!(html.contains("Target not loaded as asked."));
    assert!(html.contains(r#"<span class="badge fail">FAIL</span>"#));
    let schema: serde_json::Value = serde_json::from_str(REPORT_SCHEMA).unwrap();
    let errors = validate(&schema, &serde_json::to_value(&report).unwrap());
    assert!(errors.is_empty(), "{errors:?}");

    // max_lag 0: every request is already late when its turn comes, with a connection free:
    // the generator's schedule lag is the bottleneck.
    let fast = start_server(Arc::new(|_, _| (200, ok_body(), Duration::ZERO))).await;
    let sc = Scenario::from_toml_str(
        r#"
duration = "500ms"
arrival = { kind = "constant", rate = 20.0 }
[run]
batch_size = 1
max_batch_wait = "0ms"
max_lag = "0ms"
"#,
        "late-generator.toml",
    )
    .unwrap();
    let report = run(&sc, &opts(&fast.url)).await.unwrap();
    let load = &report.load;
    assert!(load.dropped_for_schedule_lag.events > 0, "{load:?}");
    assert_eq!(load.dropped_at_in_flight_limit.events, 0, "{load:?}");
    assert_eq!(load.bottleneck, Some(Bottleneck::Generator));
    assert!(report
        .to_terminal()
        .contains("bottleneck: the generator's schedule lag"));
}

fn validate(schema: &serde_json::Value, instance: &serde_json::Value) -> Vec<String> {
    let v = jsonschema::validator_for(schema).unwrap();
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_counts_429_identities_uses_eu_host_and_matches_its_schema() {
    let server = start_server(Arc::new(|n, _| {
        if n % 5 == 4 {
            let body = r#"{"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,
                "throttled_devices":{"device-000000-0":31},"throttled_users":{"user-000000":31},
                "throttled_events":[0,1,2],"exceeded_daily_quota_users":{},"exceeded_daily_quota_devices":{}}"#;
            (429, body.to_owned(), Duration::ZERO)
        } else {
            (200, ok_body(), Duration::ZERO)
        }
    }))
    .await;
    let sc = Scenario::from_toml_str(
        r#"
seed = 3
region = "eu"
duration = "2s"
arrival = { kind = "constant", rate = 50.0 }
[run]
batch_size = 10
max_batch_wait = "1s"
[thresholds]
status_429 = 0
lost = 0
p99_latency_ms = "< 5000"
"#,
        "eu.toml",
    )
    .unwrap();
    let report = run(&sc, &opts(&server.url)).await.unwrap();
    assert_eq!(report.offered.events, 100);
    assert_eq!(report.sent.requests, 10);
    assert_eq!(report.status_counts.get("200"), Some(&8));
    assert_eq!(report.status_counts.get("429"), Some(&2));
    assert_eq!(report.events_2xx, 80);
    assert_eq!(report.throttled.responses, 2);
    assert_eq!(report.throttled.events, 6);
    assert_eq!(report.throttled.devices.get("device-000000-0"), Some(&2));
    assert_eq!(report.throttled.users.get("user-000000"), Some(&2));
    assert_eq!(report.latency_ms.delivery.count, 80);
    assert!(report.target.ends_with("/2/httpapi"));
    let hosts = server.hosts.lock().unwrap().clone();
    assert_eq!(hosts.len(), 10);
    assert!(
        hosts.iter().all(|h| h == "api.eu.amplitude.com"),
        "{hosts:?}"
    );
    // Achieved vs offered: both 100 events over the 2 s schedule.
    assert!(
        report.achieved_rate_error < 0.05,
        "{}",
        report.achieved_rate_error
    );
    // Thresholds: status_429 fails, lost is not loadgen's, p99 passes.
    assert!(!report.passed);
    let by: std::collections::HashMap<_, _> = report
        .thresholds
        .iter()
        .map(|t| (t.metric.as_str(), t.passed))
        .collect();
    assert_eq!(by["status_429"], Some(false));
    assert_eq!(by["lost"], None);
    assert_eq!(by["p99_latency_ms"], Some(true));
    let offered: u64 = report.series.iter().map(|p| p.offered_events).sum();
    assert_eq!(offered, 100);

    // The JSON report validates against the schema shipped in the repo...
    let schema: serde_json::Value = serde_json::from_str(REPORT_SCHEMA).unwrap();
    let on_disk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(schema, on_disk);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(validate(&schema, &json), Vec::<String>::new());
    // ...and the schema is not vacuous: a wrong report fails it.
    let mut broken = json.clone();
    broken.as_object_mut().unwrap().remove("latency_ms");
    broken["status_counts"]["abc"] = serde_json::json!(1);
    assert_eq!(validate(&schema, &broken).len(), 2);
    // Round trip through the public type.
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);

    // The HTML report: self-contained, three charts, the numbers a reviewer checks.
    let html = render_html(&report).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("Events/s: offered vs sent vs answered 2xx"));
    assert!(html.contains("HTTP 429"));
    assert!(html.contains("device-000000-0"));
    assert!(!html.contains("<script"));
    assert!(report.to_terminal().contains("result    FAIL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_are_counted() {
    // Nothing listens on this port: every request fails to connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let sc = Scenario::from_toml_str(
        "duration = \"500ms\"\narrival = { kind = \"constant\", rate = 20.0 }\n[run]\nbatch_size = 5\nmax_batch_wait = \"1s\"\n",
        "dead.toml",
    )
    .unwrap();
    let report = run(&sc, &opts(&url)).await.unwrap();
    assert_eq!(report.sent.requests, 2);
    assert_eq!(report.transport_errors.get("connect"), Some(&2));
    assert_eq!(report.metric("transport_errors"), Some(2.0));
    assert!(report.status_counts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exit_codes_distinguish_threshold_failure_from_error() {
    let server = start_server(Arc::new(|n, _| {
        if n == 0 {
            (
                503,
                r#"{"code":503,"error":"Service Unavailable"}"#.to_owned(),
                Duration::ZERO,
            )
        } else {
            (200, ok_body(), Duration::ZERO)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, thresholds: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("duration = \"500ms\"\narrival = {{ kind = \"constant\", rate = 20.0 }}\n[run]\nbatch_size = 5\n[thresholds]\n{thresholds}\n"),
        )
        .unwrap();
        p
    };
    let pass = write("pass.toml", "transport_errors = 0");
    // every request starts late (max_lag 0): not loaded as asked, no load threshold
    let under = dir.path().join("under.toml");
    std::fs::write(
        &under,
        "duration = \"500ms\"\narrival = { kind = \"constant\", rate = 20.0 }\n[run]\nbatch_size = 1\nmax_batch_wait = \"0ms\"\nmax_lag = \"0ms\"\n",
    )
    .unwrap();
    let fail = write("fail.toml", "status_5xx = 0");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "duration = \"1s\"\narrival = { kind = \"constant\", rat = 1 }\n",
    )
    .unwrap();
    let json_path = dir.path().join("r.json");
    let html_path = dir.path().join("r.html");
    let url = server.url.clone();
    let (jp, hp) = (json_path.clone(), html_path.clone());
    let codes = tokio::task::spawn_blocking(move || {
        let exe = env!("CARGO_BIN_EXE_amplitude-loadgen");
        let go = |p: &std::path::Path, extra: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new(exe)
                .arg("run")
                .arg(p)
                .args(["--target", &url, "--api-key", "k", "--progress", "lines"])
                .args(extra)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let fail_run = go(
            &fail,
            &[
                "--report-json".as_ref(),
                jp.as_os_str(),
                "--report-html".as_ref(),
                hp.as_os_str(),
            ],
        );
        let pass_run = go(&pass, &[]);
        let bad_run = go(&bad, &[]);
        let under_run = go(&under, &[]);
        let under_tolerated = go(&under, &["--rate-tolerance".as_ref(), "1".as_ref()]);
        (fail_run, pass_run, bad_run, under_run, under_tolerated)
    })
    .await
    .unwrap();
    let (fail_run, pass_run, bad_run, under_run, under_tolerated) = codes;
    assert_eq!(under_run.0, Some(98), "{under_run:?}");
    assert!(
        under_run.1.starts_with("TARGET NOT LOADED AS ASKED"),
        "{}",
        under_run.1
    );
    // a tolerance of 1 accepts any rate shortfall, but never a dropped arrival
    assert_eq!(under_tolerated.0, Some(98), "{under_tolerated:?}");
    assert_eq!(fail_run.0, Some(99), "{fail_run:?}");
    assert!(fail_run.1.contains("FAIL status_5xx"), "{}", fail_run.1);
    assert_eq!(pass_run.0, Some(0), "{pass_run:?}");
    assert_eq!(bad_run.0, Some(1), "{bad_run:?}");
    assert!(
        bad_run.2.contains("bad.toml:2:") && bad_run.2.contains("arrival.rat"),
        "{}",
        bad_run.2
    );
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report.status_counts.get("503"), Some(&1));
    assert!(std::fs::read_to_string(&html_path)
        .unwrap()
        .contains("<svg"));
}
