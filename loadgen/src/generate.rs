//! Deterministic generation: scenario + seed → a stream of `(intended time, event)`.
//!
//! Randomness comes from independent ChaCha8 streams of one seed, one per concern (each
//! phase's arrivals, identities, event mix, payloads, dirty data, UUIDs), so changing the mix
//! does not move the arrivals and vice versa. Every draw is portable (integer and IEEE-754
//! arithmetic, `libm` for transcendental functions), so the same scenario and seed give
//! byte-identical events in the same order on any machine.

use crate::arrival::{Arrival, ArrivalGen};
use crate::dirty::{apply, Defect, Draw};
use crate::error::ScenarioError;
use crate::mix::TypePicker;
use crate::population::IdentitySampler;
use crate::random::{
    filler, filler_into, skip_filler, skip_uuid_v4, stream_rng, unit, uuid_v4, uuid_v4_into,
};
use crate::scenario::Scenario;
use crate::segment::{partition_key, Segment};
use crate::trace::load_trace;
use amplitude_wire::Event;
use bytes::{Bytes, BytesMut};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};

/// Key of the ground-truth sequence number in `event_properties` (an integer).
pub const SEQ_PROPERTY: &str = "conformance_seq";

/// How many recent events a `resend` may pick from.
const RESEND_WINDOW: usize = 1_000;

/// Bytes the re-send window's arena allocates at a time in byte mode (one allocation per
/// this many bytes of remembered JSON, not one per event).
const RECENT_ARENA_CHUNK: usize = 64 * 1024;

/// The ground truth of one event whose JSON [`EventStream::next_into`] appended: a
/// [`GeneratedEvent`] without its `event` (same values as the iterator yields for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    /// Position in the stream, 0-based (re-sends get their own position).
    pub index: u64,
    /// Ground-truth logical sequence number (see [`GeneratedEvent::seq`]).
    pub seq: u64,
    /// Intended arrival time, µs after the start of the run (virtual time 0).
    pub offset_us: u64,
    /// Index of the phase that produced the event.
    pub phase: usize,
    /// The deliberate defect, if any (`None` for clean and trace events).
    pub defect: Option<Defect>,
}

impl EventMeta {
    /// Intended arrival time, ms after the start of the run (rounded down).
    pub fn offset_ms(&self) -> u64 {
        self.offset_us / 1_000
    }
}

/// One generated event and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedEvent {
    /// Position in the stream, 0-based (re-sends get their own position).
    pub index: u64,
    /// Ground-truth logical sequence number, also in `event_properties.conformance_seq`.
    /// 0-based and dense over logical events; a re-send repeats its original's `seq`.
    pub seq: u64,
    /// Intended arrival time, µs after the start of the run (virtual time 0).
    pub offset_us: u64,
    /// Index of the phase that produced the event.
    pub phase: usize,
    /// The event, as it is to be sent.
    pub event: Event,
    /// The deliberate defect, if any (`None` for clean and trace events).
    pub defect: Option<Defect>,
}

impl GeneratedEvent {
    /// Intended arrival time, ms after the start of the run (rounded down).
    pub fn offset_ms(&self) -> u64 {
        self.offset_us / 1_000
    }

    /// The event as one line of JSON (no trailing newline); keys in a fixed order.
    ///
    /// # Errors
    /// Only if serde_json fails to serialize (not expected for generated events).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.event)
    }

    /// The event's ground truth without the event (what [`EventStream::next_into`] returns).
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            index: self.index,
            seq: self.seq,
            offset_us: self.offset_us,
            phase: self.phase,
            defect: self.defect,
        }
    }
}

/// An event of the re-send window, as the mode that generated it kept it: an [`Event`]
/// (iterator) or its JSON (byte mode, [`EventStream::next_into`]).
enum Recorded {
    Event(Box<Event>),
    /// The exact bytes that were sent; empty for an event of another segment (never sent,
    /// nor its re-sends, which share its partition key).
    Json(Bytes),
}

/// One entry of the re-send window.
struct Recent {
    index: u64,
    seq: u64,
    /// Partition key of the original (a re-send belongs to the original's segment).
    key: u64,
    rec: Recorded,
}

/// The draws of one synthesized event that come before its payload: identity, type and
/// the mix's four uniform draws.
struct Head {
    seq: u64,
    /// `time` of the event, ms since the epoch.
    epoch_ms: i64,
    /// Whether the identity has a `user_id` (the ids are in [`EventStream::id_user`] and
    /// [`EventStream::id_device`] until the next head is drawn).
    has_user: bool,
    /// Partition key of the population identity (before any defect).
    key: u64,
    identify: bool,
    u_type: f64,
    u_props: f64,
    u_insert: f64,
}

struct PhaseState {
    start_us: u64,
    duration_us: u64,
    gen: ArrivalGen,
    rng: ChaCha8Rng,
    /// For trace phases: the events, in offset order.
    trace: Option<VecDeque<Event>>,
}

/// The deterministic event stream of a scenario: an iterator of [`GeneratedEvent`] in
/// non-decreasing `offset_us` order. Build it with [`Scenario::events`].
pub struct EventStream {
    phases: Vec<PhaseState>,
    current: usize,
    sampler: IdentitySampler,
    picker: TypePicker,
    scenario: Scenario,
    rng_id: ChaCha8Rng,
    rng_mix: ChaCha8Rng,
    rng_payload: ChaCha8Rng,
    rng_dirty: ChaCha8Rng,
    rng_uuid: ChaCha8Rng,
    index: u64,
    next_seq: u64,
    /// Recent events that a re-send may repeat (kept only when the scenario has re-sends).
    recent: VecDeque<Recent>,
    /// Whether a re-send can happen at all (`dirty.resend > 0`): else no window is kept.
    keep_recent: bool,
    /// Where byte mode copies the window's JSON (shared chunks of [`RECENT_ARENA_CHUNK`]).
    recent_arena: BytesMut,
    /// The segment whose events this stream yields (`0/1`: all).
    segment: Segment,
    /// `user_id` of the event being synthesized (empty when it has none; reused buffer).
    id_user: String,
    /// `device_id` of the event being synthesized (reused buffer).
    id_device: String,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("scenario", &self.scenario.name)
            .field("phase", &self.current)
            .field("index", &self.index)
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

impl Scenario {
    /// The deterministic event stream of this scenario for `seed` (pass [`Scenario::seed`]
    /// for the scenario's own): an iterator of [`GeneratedEvent`] in intended-time order.
    /// Same scenario and seed give the same events, byte for byte, on any machine. No
    /// network, no clock.
    ///
    /// # Errors
    /// [`ScenarioError::Trace`] when a `trace` phase's file cannot be read or parsed (traces
    /// are loaded here, before the first event).
    pub fn events(&self, seed: u64) -> Result<EventStream, ScenarioError> {
        EventStream::new(self, seed)
    }
}

impl EventStream {
    /// See [`Scenario::events`].
    ///
    /// # Errors
    /// [`ScenarioError::Trace`] when a trace phase's file cannot be loaded.
    pub(crate) fn new(scenario: &Scenario, seed: u64) -> Result<Self, ScenarioError> {
        let mut phases = Vec::with_capacity(scenario.phases.len());
        let mut start_us = 0u64;
        let mut rng_uuid = stream_rng(seed, 6);
        for (i, p) in scenario.phases.iter().enumerate() {
            let mut rng = stream_rng(seed, 100 + i as u64);
            let (gen, trace, duration_us) = match &p.arrival {
                Arrival::Trace {
                    path,
                    format,
                    speedup,
                    remap_ids,
                } => {
                    let full = if path.is_absolute() {
                        path.clone()
                    } else {
                        scenario.base_dir.join(path)
                    };
                    let records = load_trace(&full, *format)?;
                    let t0 = records.first().map_or(0, |r| r.time_ms);
                    let mut offsets = Vec::with_capacity(records.len());
                    let mut events = VecDeque::with_capacity(records.len());
                    let mut remap = Remap::default();
                    for r in records {
                        let off = ((r.time_ms - t0) as f64 * 1_000.0 / speedup) as u64;
                        let mut ev = r.event;
                        if *remap_ids {
                            remap.apply(&mut ev, &mut rng_uuid);
                        }
                        offsets.push(off);
                        events.push_back(ev);
                    }
                    let natural = offsets.last().map_or(1_000, |l| l + 1_000);
                    let duration_us = p.duration.map_or(natural, |d| d.ms() * 1_000);
                    // Cut what falls outside a declared duration.
                    let keep = offsets.partition_point(|o| *o < duration_us);
                    offsets.truncate(keep);
                    events.truncate(keep);
                    (ArrivalGen::fixed(offsets), Some(events), duration_us)
                }
                other => {
                    let ms = p.duration.map_or(0, |d| d.ms());
                    (ArrivalGen::new(other, ms, &mut rng), None, ms * 1_000)
                }
            };
            phases.push(PhaseState {
                start_us,
                duration_us,
                gen,
                rng,
                trace,
            });
            start_us += duration_us;
        }
        Ok(Self {
            phases,
            current: 0,
            sampler: IdentitySampler::new(&scenario.population),
            picker: TypePicker::new(&scenario.mix),
            scenario: scenario.clone(),
            rng_id: stream_rng(seed, 2),
            rng_mix: stream_rng(seed, 3),
            rng_payload: stream_rng(seed, 4),
            rng_dirty: stream_rng(seed, 5),
            rng_uuid,
            index: 0,
            next_seq: 0,
            recent: VecDeque::new(),
            keep_recent: scenario.dirty.resend > 0.0,
            recent_arena: BytesMut::new(),
            segment: Segment::WHOLE,
            id_user: String::new(),
            id_device: String::new(),
        })
    }

    /// Restricts the stream to the events of `segment` (see [`Segment`]): the same events,
    /// with the same `index`, `seq`, `offset_us` and bytes, as the whole stream yields for
    /// the identities the segment owns; the N segments' streams together are the whole
    /// stream. The whole stream is still generated (ADR 011), only this segment's share is
    /// returned.
    pub fn segment(mut self, segment: Segment) -> Self {
        self.segment = segment;
        self
    }

    /// The segment this stream yields (`0/1` unless [`EventStream::segment`] was called).
    pub fn current_segment(&self) -> Segment {
        self.segment
    }

    /// `(start, end)` of each phase, ms after the start of the run.
    pub fn phase_bounds_ms(&self) -> Vec<(u64, u64)> {
        self.phases
            .iter()
            .map(|p| (p.start_us / 1_000, (p.start_us + p.duration_us) / 1_000))
            .collect()
    }

    /// Length of the whole run, ms (sum of the phases, traces resolved).
    pub fn total_duration_ms(&self) -> u64 {
        self.phases
            .last()
            .map_or(0, |p| (p.start_us + p.duration_us) / 1_000)
    }

    /// The draws of the next synthesized event up to its payload (identity stream, mix
    /// stream); `seq` is the next logical sequence number, not yet taken.
    fn head(&mut self, offset_us: u64) -> Head {
        let epoch_ms = self.scenario.start_time_ms + (offset_us / 1_000) as i64;
        let seq = self.next_seq;
        let (_, has_user) =
            self.sampler
                .sample_into(&mut self.rng_id, &mut self.id_user, &mut self.id_device);
        let user = has_user.then_some(self.id_user.as_str());
        let key = partition_key(user, Some(&self.id_device), seq);
        // Always four draws from the mix stream, whatever the outcome.
        let (u_identify, u_type, u_props, u_insert) = (
            unit(&mut self.rng_mix),
            unit(&mut self.rng_mix),
            unit(&mut self.rng_mix),
            unit(&mut self.rng_mix),
        );
        Head {
            seq,
            epoch_ms,
            has_user,
            key,
            identify: u_identify < self.scenario.mix.identify_share,
            u_type,
            u_props,
            u_insert,
        }
    }

    /// Whether the event of `h` carries `user_properties` (a `$set`).
    fn has_user_properties(&self, h: &Head) -> bool {
        h.identify || h.u_props < self.scenario.mix.user_properties_share
    }

    /// Whether the event of `h` carries an `insert_id`.
    fn has_insert_id(&self, h: &Head) -> bool {
        h.u_insert < self.scenario.mix.insert_id_share
    }

    /// The event of `h`, clean (payload and UUID streams drawn).
    fn build(&mut self, h: Head) -> Event {
        let user_properties = self.has_user_properties(&h);
        let insert_id = self.has_insert_id(&h);
        let mix = &self.scenario.mix;
        let event_type = if h.identify {
            "$identify"
        } else {
            self.picker.pick_u(h.u_type)
        };
        let mut ev = Event::new(event_type);
        ev.user_id = h.has_user.then(|| self.id_user.clone());
        ev.device_id = Some(self.id_device.clone());
        if mix.time {
            ev.time = Some(h.epoch_ms);
        }
        let mut props = Map::new();
        props.insert(SEQ_PROPERTY.into(), Value::from(h.seq));
        let size = mix.payload_bytes.sample(&mut self.rng_payload);
        if size > 0 {
            if self.segment.owns(h.key) {
                props.insert(
                    "payload".into(),
                    Value::String(filler(&mut self.rng_payload, size)),
                );
            } else {
                // Another segment's event, never yielded (nor its re-sends, which share
                // its key): keep the stream in step without building the payload.
                skip_filler(&mut self.rng_payload, size);
            }
        }
        ev.event_properties = Some(props);
        if user_properties {
            let mut set = Map::new();
            set.insert(
                "plan".into(),
                Value::from(PLANS[(self.rng_payload.next_u32() % 4) as usize]),
            );
            set.insert(
                "visits".into(),
                Value::from(self.rng_payload.next_u32() % 1_000),
            );
            let mut up = Map::new();
            up.insert("$set".into(), Value::Object(set));
            ev.user_properties = Some(up);
        }
        if insert_id {
            ev.insert_id = Some(uuid_v4(&mut self.rng_uuid));
        }
        if let Some(p) = &mix.platform {
            ev.platform = Some(p.clone());
        }
        ev
    }

    /// Appends the JSON of the clean event of `h` to `out`: the bytes
    /// `serde_json::to_writer` writes for [`EventStream::build`]'s event (keys in `Event`'s
    /// field order, property keys sorted), with the same draws, without building it.
    fn write_clean(&mut self, h: &Head, out: &mut Vec<u8>) {
        let user_properties = self.has_user_properties(h);
        let insert_id = self.has_insert_id(h);
        let mix = &self.scenario.mix;
        let mut num = itoa::Buffer::new();
        out.push(b'{');
        if h.has_user {
            out.extend_from_slice(b"\"user_id\":");
            write_json_str(out, &self.id_user);
            out.push(b',');
        }
        out.extend_from_slice(b"\"device_id\":");
        write_json_str(out, &self.id_device);
        out.extend_from_slice(b",\"event_type\":");
        if h.identify {
            out.extend_from_slice(b"\"$identify\"");
        } else {
            write_json_str(out, self.picker.pick_u(h.u_type));
        }
        if mix.time {
            out.extend_from_slice(b",\"time\":");
            out.extend_from_slice(num.format(h.epoch_ms).as_bytes());
        }
        // Sorted keys: "conformance_seq" < "payload".
        out.extend_from_slice(b",\"event_properties\":{\"");
        out.extend_from_slice(SEQ_PROPERTY.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(num.format(h.seq).as_bytes());
        let size = mix.payload_bytes.sample(&mut self.rng_payload);
        if size > 0 {
            out.extend_from_slice(b",\"payload\":\"");
            // Alphanumeric ASCII: nothing to escape.
            filler_into(&mut self.rng_payload, size, out);
            out.push(b'"');
        }
        out.push(b'}');
        if user_properties {
            let plan = PLANS[(self.rng_payload.next_u32() % 4) as usize];
            let visits = self.rng_payload.next_u32() % 1_000;
            out.extend_from_slice(b",\"user_properties\":{\"$set\":{\"plan\":\"");
            out.extend_from_slice(plan.as_bytes());
            out.extend_from_slice(b"\",\"visits\":");
            out.extend_from_slice(num.format(visits).as_bytes());
            out.extend_from_slice(b"}}");
        }
        if let Some(p) = &mix.platform {
            out.extend_from_slice(b",\"platform\":");
            write_json_str(out, p);
        }
        if insert_id {
            out.extend_from_slice(b",\"insert_id\":\"");
            uuid_v4_into(&mut self.rng_uuid, out);
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// Makes the payload and UUID draws of the event of `h` without writing anything (an
    /// event of another segment, or one replaced by a re-send).
    fn skip_clean(&mut self, h: &Head) {
        let size = self
            .scenario
            .mix
            .payload_bytes
            .sample(&mut self.rng_payload);
        if size > 0 {
            skip_filler(&mut self.rng_payload, size);
        }
        if self.has_user_properties(h) {
            self.rng_payload.next_u32();
            self.rng_payload.next_u32();
        }
        if self.has_insert_id(h) {
            skip_uuid_v4(&mut self.rng_uuid);
        }
    }

    /// One synthesized event, its defect and its partition key (from the population
    /// identity, before a defect rewrites the ids).
    fn synthesize(&mut self, offset_us: u64) -> (Event, Option<Defect>, u64) {
        let h = self.head(offset_us);
        let (epoch_ms, key) = (h.epoch_ms, h.key);
        // The dirty stream is independent of the payload and UUID streams: drawing it first
        // changes no value.
        let draw = self.scenario.dirty.draw(&mut self.rng_dirty);
        let mut ev = self.build(h);
        let defect = match draw {
            Draw::Mutate(d) => {
                apply(&mut ev, d, epoch_ms, &mut self.rng_dirty);
                Some(d)
            }
            // Resolved by the caller (needs the recent window).
            Draw::Resend => Some(Defect::Resend { of_index: u64::MAX }),
            Draw::Clean => None,
        };
        canonical(&mut ev);
        (ev, defect, key)
    }

    /// Remembers an event a later re-send may repeat (nothing when the scenario has no
    /// re-sends).
    fn remember(
        &mut self,
        index: u64,
        seq: u64,
        key: u64,
        rec: impl FnOnce(&mut Self) -> Recorded,
    ) {
        if !self.keep_recent {
            return;
        }
        if self.recent.len() == RESEND_WINDOW {
            self.recent.pop_front();
        }
        let rec = rec(self);
        self.recent.push_back(Recent {
            index,
            seq,
            key,
            rec,
        });
    }

    /// `json` as shared bytes, copied into the window's arena (no allocation per event).
    fn arena_copy(&mut self, json: &[u8]) -> Bytes {
        if json.is_empty() {
            return Bytes::new();
        }
        if self.recent_arena.capacity() < json.len() {
            self.recent_arena
                .reserve(json.len().max(RECENT_ARENA_CHUNK));
        }
        self.recent_arena.extend_from_slice(json);
        self.recent_arena.split().freeze()
    }

    /// The next trace event of phase `phase_index` with its `seq` and `time` set: the event,
    /// its `seq` and its partition key. `None` when the trace ran out.
    fn trace_event(&mut self, phase_index: usize, offset_us: u64) -> Option<(Event, u64, u64)> {
        let mut ev = self
            .phases
            .get_mut(phase_index)?
            .trace
            .as_mut()?
            .pop_front()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        ev.event_properties
            .get_or_insert_with(Map::new)
            .insert(SEQ_PROPERTY.into(), Value::from(seq));
        if self.scenario.mix.time {
            ev.time = Some(self.scenario.start_time_ms + (offset_us / 1_000) as i64);
        }
        canonical(&mut ev);
        let key = partition_key(ev.user_id.as_deref(), ev.device_id.as_deref(), seq);
        Some((ev, seq, key))
    }

    /// The next arrival of the whole stream: `(phase index, offset µs, index, is a trace
    /// phase)`, the stream position taken. `None` at the end of the last phase.
    fn next_arrival(&mut self) -> Option<(usize, u64, u64, bool)> {
        loop {
            let phase_index = self.current;
            let phase = self.phases.get_mut(phase_index)?;
            let Some(off) = phase.gen.next_us(&mut phase.rng) else {
                self.current += 1;
                continue;
            };
            let index = self.index;
            self.index += 1;
            return Some((
                phase_index,
                phase.start_us + off,
                index,
                phase.trace.is_some(),
            ));
        }
    }

    /// Appends the JSON of the next event of this stream's segment to `out` (one object, no
    /// separator or newline) and returns its ground truth; `Ok(None)` at the end of the
    /// stream, `out` untouched.
    ///
    /// The bytes and metadata are exactly those of the next [`GeneratedEvent`] the iterator
    /// would yield (`serde_json::to_string(&generated.event)` and
    /// [`GeneratedEvent::meta`]), but a clean synthesized event is written straight into
    /// `out`, without building an [`Event`] or any `serde_json::Value`; re-sends copy the
    /// original's bytes. Events with a dirty-data defect and trace events are built and
    /// serialized. Use one mode per stream for speed (mixing is correct, only slower: a
    /// re-send of an event kept by the other mode is converted).
    ///
    /// # Errors
    /// Only if serde_json fails to serialize a built event (not expected for generated
    /// events); `out` may then hold part of it.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Result<Option<EventMeta>, serde_json::Error> {
        loop {
            let Some((phase, offset_us, index, is_trace)) = self.next_arrival() else {
                return Ok(None);
            };
            if is_trace {
                let Some((ev, seq, key)) = self.trace_event(phase, offset_us) else {
                    return Ok(None);
                };
                if !self.segment.owns(key) {
                    continue;
                }
                serde_json::to_writer(&mut *out, &ev)?;
                return Ok(Some(EventMeta {
                    index,
                    seq,
                    offset_us,
                    phase,
                    defect: None,
                }));
            }
            let h = self.head(offset_us);
            let owned = self.segment.owns(h.key);
            match self.scenario.dirty.draw(&mut self.rng_dirty) {
                Draw::Mutate(d) => {
                    let (epoch_ms, key) = (h.epoch_ms, h.key);
                    let mut ev = self.build(h);
                    apply(&mut ev, d, epoch_ms, &mut self.rng_dirty);
                    canonical(&mut ev);
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let start = out.len();
                    if owned {
                        serde_json::to_writer(&mut *out, &ev)?;
                    }
                    if ev.insert_id.is_some() && !d.is_invalid() {
                        self.remember(index, seq, key, |s| {
                            Recorded::Json(s.arena_copy(out.get(start..).unwrap_or_default()))
                        });
                    }
                    if owned {
                        return Ok(Some(EventMeta {
                            index,
                            seq,
                            offset_us,
                            phase,
                            defect: Some(d),
                        }));
                    }
                    continue;
                }
                Draw::Resend if !self.recent.is_empty() => {
                    // The replaced event's draws are made all the same.
                    self.skip_clean(&h);
                    let pick = (self.rng_dirty.next_u64() % self.recent.len() as u64) as usize;
                    if let Some(r) = self.recent.get(pick) {
                        if !self.segment.owns(r.key) {
                            continue;
                        }
                        match &r.rec {
                            Recorded::Json(b) => out.extend_from_slice(b),
                            Recorded::Event(e) => serde_json::to_writer(&mut *out, e)?,
                        }
                        return Ok(Some(EventMeta {
                            index,
                            seq: r.seq,
                            offset_us,
                            phase,
                            defect: Some(Defect::Resend { of_index: r.index }),
                        }));
                    }
                    // Unreachable (pick < len); the iterator sends a clean event here, but
                    // its draws are made: nothing left to send.
                    continue;
                }
                // A resend with nothing to re-send yet is sent as a clean event.
                Draw::Resend | Draw::Clean => {}
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let key = h.key;
            let remembered = self.has_insert_id(&h);
            if !owned {
                self.skip_clean(&h);
                if remembered {
                    self.remember(index, seq, key, |_| Recorded::Json(Bytes::new()));
                }
                continue;
            }
            let start = out.len();
            self.write_clean(&h, out);
            if remembered {
                self.remember(index, seq, key, |s| {
                    Recorded::Json(s.arena_copy(out.get(start..).unwrap_or_default()))
                });
            }
            return Ok(Some(EventMeta {
                index,
                seq,
                offset_us,
                phase,
                defect: None,
            }));
        }
    }
}

/// The plans of `user_properties.$set.plan`, one drawn uniformly.
const PLANS: [&str; 4] = ["free", "starter", "growth", "enterprise"];

/// Appends `s` as a JSON string: quoted as is when no byte needs escaping (the common case:
/// ids, type names), else escaped by serde_json (the same bytes it writes for a `String`).
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing a &str into a Vec cannot fail; keep the output valid JSON regardless.
        out.extend_from_slice(b"null");
    }
}

/// Puts property keys in sorted order, so the bytes do not depend on whether serde_json's
/// `preserve_order` feature is on in the build that links this crate.
fn canonical(ev: &mut Event) {
    for m in [&mut ev.event_properties, &mut ev.user_properties]
        .into_iter()
        .flatten()
    {
        // Already in order (serde_json without `preserve_order` keeps maps sorted): nothing
        // to rebuild, the common case on the generation hot path.
        if m.keys().is_sorted() {
            continue;
        }
        let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        *m = entries.into_iter().collect();
    }
}

impl Iterator for EventStream {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        loop {
            let (ev, key) = self.next_any()?;
            if self.segment.owns(key) {
                return Some(ev);
            }
        }
    }
}

impl EventStream {
    /// The next event of the whole stream, whatever its segment, and its partition key.
    fn next_any(&mut self) -> Option<(GeneratedEvent, u64)> {
        let (phase, offset_us, index, is_trace) = self.next_arrival()?;
        if is_trace {
            let (event, seq, key) = self.trace_event(phase, offset_us)?;
            return Some((
                GeneratedEvent {
                    index,
                    seq,
                    offset_us,
                    phase,
                    event,
                    defect: None,
                },
                key,
            ));
        }
        let (event, defect, key) = self.synthesize(offset_us);
        if let Some(Defect::Resend { .. }) = defect {
            if !self.recent.is_empty() {
                let pick = (self.rng_dirty.next_u64() % self.recent.len() as u64) as usize;
                if let Some(r) = self.recent.get(pick) {
                    let original = match &r.rec {
                        Recorded::Event(e) => (**e).clone(),
                        // Kept by byte mode; empty (another segment's, never yielded):
                        // any event will do.
                        Recorded::Json(b) => serde_json::from_slice(b).unwrap_or_default(),
                    };
                    return Some((
                        GeneratedEvent {
                            index,
                            seq: r.seq,
                            offset_us,
                            phase,
                            event: original,
                            defect: Some(Defect::Resend { of_index: r.index }),
                        },
                        r.key,
                    ));
                }
            }
        }
        // A resend with nothing to re-send yet is sent as a clean event.
        let defect = defect.filter(|d| !matches!(d, Defect::Resend { .. }));
        let seq = self.next_seq;
        self.next_seq += 1;
        if event.insert_id.is_some() && !matches!(defect, Some(d) if d.is_invalid()) {
            self.remember(index, seq, key, |_| {
                Recorded::Event(Box::new(event.clone()))
            });
        }
        Some((
            GeneratedEvent {
                index,
                seq,
                offset_us,
                phase,
                event,
                defect,
            },
            key,
        ))
    }
}

/// Consistent replacement of identities and insert ids in a replayed trace.
#[derive(Default)]
struct Remap {
    users: HashMap<String, String>,
    devices: HashMap<String, String>,
    inserts: HashMap<String, String>,
}

impl Remap {
    fn apply(&mut self, ev: &mut Event, rng: &mut ChaCha8Rng) {
        if let Some(u) = ev.user_id.take() {
            let n = self.users.len() + 1;
            ev.user_id = Some(
                self.users
                    .entry(u)
                    .or_insert_with(|| format!("trace-user-{n:06}"))
                    .clone(),
            );
        }
        if let Some(d) = ev.device_id.take() {
            let n = self.devices.len() + 1;
            ev.device_id = Some(
                self.devices
                    .entry(d)
                    .or_insert_with(|| format!("trace-device-{n:06}"))
                    .clone(),
            );
        }
        if let Some(i) = ev.insert_id.take() {
            ev.insert_id = Some(
                self.inserts
                    .entry(i)
                    .or_insert_with(|| uuid_v4(rng))
                    .clone(),
            );
        }
    }
}
