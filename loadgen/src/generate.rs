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
use crate::random::{filler, skip_filler, stream_rng, unit, uuid_v4};
use crate::scenario::Scenario;
use crate::segment::{partition_key, Segment};
use crate::trace::load_trace;
use amplitude_wire::Event;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};

/// Key of the ground-truth sequence number in `event_properties` (an integer).
pub const SEQ_PROPERTY: &str = "conformance_seq";

/// How many recent events a `resend` may pick from.
const RESEND_WINDOW: usize = 1_000;

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
    /// Recent events that a re-send may repeat: (index, seq, event, partition key).
    recent: VecDeque<(u64, u64, Event, u64)>,
    /// The segment whose events this stream yields (`0/1`: all).
    segment: Segment,
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
            segment: Segment::WHOLE,
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

    /// One synthesized event, its defect and its partition key (from the population
    /// identity, before a defect rewrites the ids).
    fn synthesize(&mut self, offset_us: u64) -> (Event, Option<Defect>, u64) {
        let mix = &self.scenario.mix;
        let epoch_ms = self.scenario.start_time_ms + (offset_us / 1_000) as i64;
        let seq = self.next_seq;
        let id = self.sampler.sample(&mut self.rng_id);
        let key = partition_key(id.user_id.as_deref(), Some(&id.device_id), seq);
        // Always four draws from the mix stream, whatever the outcome.
        let (u_identify, u_type, u_props, u_insert) = (
            unit(&mut self.rng_mix),
            unit(&mut self.rng_mix),
            unit(&mut self.rng_mix),
            unit(&mut self.rng_mix),
        );
        let identify = u_identify < mix.identify_share;
        let event_type = if identify {
            "$identify"
        } else {
            self.picker.pick_u(u_type)
        };
        let mut ev = Event::new(event_type);
        ev.user_id = id.user_id;
        ev.device_id = Some(id.device_id);
        if mix.time {
            ev.time = Some(epoch_ms);
        }
        let mut props = Map::new();
        props.insert(SEQ_PROPERTY.into(), Value::from(seq));
        let size = mix.payload_bytes.sample(&mut self.rng_payload);
        if size > 0 {
            if self.segment.owns(key) {
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
        if identify || u_props < mix.user_properties_share {
            let plans = ["free", "starter", "growth", "enterprise"];
            let mut set = Map::new();
            set.insert(
                "plan".into(),
                Value::from(plans[(self.rng_payload.next_u32() % 4) as usize]),
            );
            set.insert(
                "visits".into(),
                Value::from(self.rng_payload.next_u32() % 1_000),
            );
            let mut up = Map::new();
            up.insert("$set".into(), Value::Object(set));
            ev.user_properties = Some(up);
        }
        if u_insert < mix.insert_id_share {
            ev.insert_id = Some(uuid_v4(&mut self.rng_uuid));
        }
        if let Some(p) = &mix.platform {
            ev.platform = Some(p.clone());
        }
        let defect = match self.scenario.dirty.draw(&mut self.rng_dirty) {
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
        loop {
            let phase_index = self.current;
            let phase = self.phases.get_mut(phase_index)?;
            let Some(off) = phase.gen.next_us(&mut phase.rng) else {
                self.current += 1;
                continue;
            };
            let offset_us = phase.start_us + off;
            let index = self.index;
            self.index += 1;
            if let Some(trace) = phase.trace.as_mut() {
                let mut ev = trace.pop_front()?;
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
                return Some((
                    GeneratedEvent {
                        index,
                        seq,
                        offset_us,
                        phase: phase_index,
                        event: ev,
                        defect: None,
                    },
                    key,
                ));
            }
            let (event, defect, key) = self.synthesize(offset_us);
            if let Some(Defect::Resend { .. }) = defect {
                if !self.recent.is_empty() {
                    let pick = (self.rng_dirty.next_u64() % self.recent.len() as u64) as usize;
                    if let Some((of_index, seq, original, key)) = self.recent.get(pick).cloned() {
                        return Some((
                            GeneratedEvent {
                                index,
                                seq,
                                offset_us,
                                phase: phase_index,
                                event: original,
                                defect: Some(Defect::Resend { of_index }),
                            },
                            key,
                        ));
                    }
                }
            }
            // A resend with nothing to re-send yet is sent as a clean event.
            let defect = defect.filter(|d| !matches!(d, Defect::Resend { .. }));
            let seq = self.next_seq;
            self.next_seq += 1;
            if event.insert_id.is_some() && !matches!(defect, Some(d) if d.is_invalid()) {
                if self.recent.len() == RESEND_WINDOW {
                    self.recent.pop_front();
                }
                self.recent.push_back((index, seq, event.clone(), key));
            }
            return Some((
                GeneratedEvent {
                    index,
                    seq,
                    offset_us,
                    phase: phase_index,
                    event,
                    defect,
                },
                key,
            ));
        }
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
