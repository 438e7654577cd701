//! Byte mode (`EventStream::next_into`) against the iterator: for every built-in scenario,
//! a few seeds and segments, the bytes `next_into` appends are exactly
//! `serde_json::to_string(&generated.event)` of the iterator's event, with the same
//! metadata, event by event (issue 16, item 3: the byte-identity contract).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use crate::common::load;
use amplitude_loadgen::{builtin, Defect, EventStream, Scenario, Segment};
use proptest::prelude::*;

/// What the compared streams contained, to check the scenarios exercise every path.
#[derive(Debug, Default)]
struct Seen {
    events: usize,
    resends: usize,
    mutated: usize,
    user_properties: usize,
    payload: usize,
    insert_id: usize,
    platform: usize,
    anonymous: usize,
    no_time: usize,
    trace: usize,
}

/// Compares `next_into` with the iterator on two fresh streams of `sc`, `seed`, `segment`.
/// Writes every event into one growing buffer (after a marker byte), so appending is
/// checked too.
fn assert_same(sc: &Scenario, seed: u64, segment: Segment, seen: &mut Seen) {
    let stream = |s: &Scenario| -> EventStream { s.events(seed).unwrap().segment(segment) };
    let mut bytes = stream(sc);
    let mut out = vec![b'#'];
    for g in stream(sc) {
        let start = out.len();
        let meta = bytes
            .next_into(&mut out)
            .unwrap()
            .unwrap_or_else(|| panic!("{} seed {seed} {segment}: ends early", sc.name));
        let want = g.to_json().unwrap();
        let got = std::str::from_utf8(&out[start..]).unwrap();
        assert_eq!(
            got, want,
            "{} seed {seed} {segment}: bytes of event {}",
            sc.name, g.index
        );
        assert_eq!(meta, g.meta(), "{} seed {seed} {segment}", sc.name);
        seen.events += 1;
        match g.defect {
            Some(Defect::Resend { .. }) => seen.resends += 1,
            Some(_) => seen.mutated += 1,
            None => {}
        }
        let e = &g.event;
        seen.user_properties += usize::from(e.user_properties.is_some());
        seen.payload += usize::from(
            e.event_properties
                .as_ref()
                .is_some_and(|p| p.contains_key("payload")),
        );
        seen.insert_id += usize::from(e.insert_id.is_some());
        seen.platform += usize::from(e.platform.is_some());
        seen.anonymous += usize::from(e.user_id.is_none());
        seen.no_time += usize::from(e.time.is_none());
        seen.trace += usize::from(
            e.user_id
                .as_deref()
                .is_some_and(|u| u.starts_with("trace-"))
                || e.library.is_some(),
        );
    }
    let len = out.len();
    assert_eq!(bytes.next_into(&mut out).unwrap(), None, "{}", sc.name);
    assert_eq!(out.len(), len, "the end appends nothing");
    assert_eq!(out[0], b'#');
}

#[test]
fn next_into_writes_the_iterators_bytes_for_every_builtin_scenario() {
    let mut seen = Seen::default();
    let segments = [
        Segment::WHOLE,
        Segment::new(0, 2).unwrap(),
        Segment::new(2, 3).unwrap(),
    ];
    for name in builtin::names() {
        let sc = load(&format!("{name}.toml"));
        for seed in [sc.seed, 1, 0xDEAD_BEEF] {
            for segment in segments {
                assert_same(&sc, seed, segment, &mut seen);
            }
        }
    }
    // The built-in set exercises every path of byte mode.
    assert!(seen.events > 10_000, "{seen:?}");
    for (what, n) in [
        ("resends", seen.resends),
        ("mutated", seen.mutated),
        ("user_properties", seen.user_properties),
        ("payload", seen.payload),
        ("insert_id", seen.insert_id),
        ("platform", seen.platform),
        ("anonymous", seen.anonymous),
        ("trace", seen.trace),
    ] {
        assert!(n > 0, "no {what} events: {seen:?}");
    }
}

/// A scenario whose user-supplied strings need JSON escaping (quotes, backslashes,
/// control characters, non-ASCII), with every mix knob and defect on.
fn escaping_scenario(seed: u64) -> Scenario {
    Scenario::from_toml_str(
        &format!(
            r#"
seed = {seed}
duration = "2s"
arrival = {{ kind = "poisson", rate = 300.0 }}
[population]
users = 40
anonymous_devices = 10
devices_per_user = 3
id_prefix = "p\"\\\u0001é/"
[mix]
event_types = [
  {{ name = "Quote \" and \\ back", weight = 2.0 }},
  {{ name = "tab\there\nnewline\u001f", weight = 1.0 }},
  {{ name = "naïve ☃ 🎉", weight = 1.0 }},
  {{ name = "plain", weight = 1.0 }},
]
payload_bytes = {{ kind = "uniform", min = 0, max = 40 }}
user_properties_share = 0.3
identify_share = 0.1
insert_id_share = 0.7
platform = "Web \"beta\"\r"
[dirty]
short_id = 0.03
reserved_id = 0.03
iso_time = 0.03
missing_event_type = 0.03
oversized_string = 0.03
resend = 0.1
"#
        ),
        "escaping.toml",
    )
    .unwrap()
}

#[test]
fn next_into_escapes_user_supplied_strings_as_serde_json_does() {
    let mut seen = Seen::default();
    for seed in [1, 2, 3] {
        let sc = escaping_scenario(seed);
        for segment in [Segment::WHOLE, Segment::new(1, 4).unwrap()] {
            assert_same(&sc, seed, segment, &mut seen);
        }
    }
    assert!(
        seen.resends > 0 && seen.mutated > 0 && seen.platform > 0,
        "{seen:?}"
    );
}

#[test]
fn mixing_the_two_modes_on_one_stream_gives_the_same_events() {
    // Alternating iterator and byte mode on one stream: re-sends of events the other mode
    // kept are converted, and the sequence is that of either mode alone.
    let sc = escaping_scenario(5);
    let all: Vec<_> = sc.events(5).unwrap().collect();
    let mut mixed = sc.events(5).unwrap();
    let mut out = Vec::new();
    for (i, g) in all.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(mixed.next().as_ref(), Some(g));
        } else {
            out.clear();
            let meta = mixed.next_into(&mut out).unwrap().unwrap();
            assert_eq!(meta, g.meta());
            assert_eq!(std::str::from_utf8(&out).unwrap(), g.to_json().unwrap());
        }
    }
    assert!(all
        .iter()
        .any(|g| matches!(g.defect, Some(Defect::Resend { .. }))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any seed and any mix of the knobs: the same bytes and metadata.
    #[test]
    fn next_into_matches_the_iterator_for_any_seed_and_mix(
        seed in any::<u64>(),
        users in 0u64..30,
        anonymous in 0u64..10,
        identify in 0.0f64..0.5,
        user_props in 0.0f64..1.0,
        insert_id in 0.0f64..=1.0,
        time in any::<bool>(),
        platform in proptest::option::of("[a-zA-Z\"\\\\\n é]{0,6}"),
        payload_max in 0u32..80,
        resend in 0.0f64..0.3,
        dirty in 0.0f64..0.1,
        segments in 1u32..4,
    ) {
        let platform = platform
            .map(|p| format!("platform = {}\n", toml_str(&p)))
            .unwrap_or_default();
        let text = format!(
            r#"
duration = "1s"
arrival = {{ kind = "poisson", rate = 150.0 }}
[population]
users = {users}
anonymous_devices = {anon}
[mix]
identify_share = {identify}
user_properties_share = {user_props}
insert_id_share = {insert_id}
time = {time}
{platform}payload_bytes = {{ kind = "uniform", min = 0, max = {payload_max} }}
[dirty]
short_id = {dirty}
iso_time = {dirty}
oversized_string = {dirty}
resend = {resend}
"#,
            anon = anonymous + u64::from(users == 0),
        );
        let sc = Scenario::from_toml_str(&text, "prop.toml").unwrap();
        let mut seen = Seen::default();
        for k in 0..segments {
            assert_same(&sc, seed, Segment::new(k, segments).unwrap(), &mut seen);
        }
    }
}

/// `s` as a TOML basic string.
fn toml_str(s: &str) -> String {
    let mut t = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => t.push_str("\\\""),
            '\\' => t.push_str("\\\\"),
            '\n' => t.push_str("\\n"),
            c => t.push(c),
        }
    }
    t.push('"');
    t
}
