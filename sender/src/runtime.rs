//! The async I/O shell around [`Core`]: persists accepted events, posts the core's requests
//! over a keep-alive HTTP client with several in flight, feeds responses back, writes
//! confirmations and dead letters, and drains on shutdown.

use super::config::SenderConfig;
use super::core::{Core, CoreStats, Effect};
use super::event::{EventKey, QueuedEvent};
use super::outcome::{Outcome, OutcomeKind};
use super::pacing::RequestId;
use super::queue::{DurableQueue, LogLimits, QueueError};
use super::response::HttpResult;
use amplitude_wire::Event;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Errors of the sender library.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The state directory could not be read or written.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// An event could not be serialized.
    #[error("event serialization: {0}")]
    Serialize(#[from] serde_json::Error),
    /// [`crate::SenderBuilder::build`] was called without a state directory.
    #[error("no state directory: call SenderBuilder::state_dir (it holds the durable queue)")]
    NoStateDir,
    /// The sender's engine task is gone (it was shut down or panicked).
    #[error("the sender has stopped")]
    Stopped,
}

/// What a sender did, returned by [`Sender::shutdown`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderReport {
    /// Events found pending in the state directory at start (resent with their `insert_id`).
    pub recovered: usize,
    /// Events still pending at exit: persisted, resent by the next start on the same state
    /// directory (never lost).
    pub left_in_queue: usize,
    /// Why the project stopped (invalid API key, `missing_field`), if it did (spec §5.1).
    pub stopped: Option<String>,
    /// The core's counters (delivered, dead-lettered, 429s, splits, retries, ...).
    pub stats: CoreStats,
}

enum Cmd {
    Enqueue(Vec<QueuedEvent>),
    Reject(Vec<u8>, Option<i64>, String),
    Flush(oneshot::Sender<()>),
    Close(Duration),
    Exit,
}

/// Most of a drain deadline kept back to exit before it: a tenth, at most 250 ms.
fn exit_margin(d: Duration) -> Duration {
    (d / 10).min(Duration::from_millis(250))
}

/// A running reference sender for one project. Create with [`Sender::start`], feed with
/// [`Sender::send`], finish with [`Sender::shutdown`].
#[derive(Debug)]
pub struct Sender {
    cmd: mpsc::UnboundedSender<Cmd>,
    queue: Arc<DurableQueue>,
    next_key: Mutex<EventKey>,
    engine: JoinHandle<SenderReport>,
    recovered: usize,
}

impl Sender {
    /// A builder of a sender for the project of `api_key`: US region, HTTP V2, HTTPS,
    /// defaults from [`crate::defaults`]; a state directory is required.
    pub fn builder(api_key: impl Into<String>) -> crate::SenderBuilder {
        crate::SenderBuilder::new(api_key.into())
    }

    /// Accepts one event: gives it an `insert_id` if it has none (spec §9) and persists it
    /// (fsync, shared with concurrent calls: group commit). Returns once it is durable: from
    /// then on it is delivered or dead-lettered, across crashes and restarts. An error (disk
    /// full, state directory unwritable) means it was not accepted.
    pub async fn track(&self, event: Event) -> Result<(), SenderError> {
        self.send(vec![event]).await
    }

    /// Opens `config.state_dir`, re-enqueues every event pending there (same `insert_id`,
    /// original order), and starts sending. The receiver yields one [`Outcome`] per event,
    /// when it is delivered or dead-lettered, or `held` when the sender exits with the event
    /// still in its durable queue.
    pub async fn start(
        config: SenderConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Outcome>), SenderError> {
        let (queue, pending, next_key) = DurableQueue::open(
            &config.state_dir,
            LogLimits {
                compact_bytes: config.compact_log_bytes,
                max_bytes: config.max_log_bytes,
            },
        )?;
        let queue = Arc::new(queue);
        let client = http_client(&config)?;
        let mut core = Core::new(config.core.clone());
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let recovered = pending.len();
        let mut unreadable = Vec::new();
        for (key, json) in pending {
            match QueuedEvent::from_json(key, json.clone()) {
                Ok(ev) => core.enqueue(ev, 0),
                Err(e) => {
                    unreadable.push((Some(key), json, format!("unreadable after restart: {e}")))
                }
            }
        }
        if !unreadable.is_empty() {
            queue.dead_letter(unreadable);
        }
        if recovered > 0 {
            tracing::info!(recovered, "resending events pending in the state directory");
        }
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let engine = Engine {
            core,
            queue: queue.clone(),
            client,
            url: config.url.clone(),
            outcomes: out_tx,
            start,
            recovered,
            rejected: 0,
        };
        let engine = tokio::spawn(engine.run(cmd_rx));
        Ok((
            Self {
                cmd: cmd_tx,
                queue,
                next_key: Mutex::new(next_key),
                engine,
                recovered,
            },
            out_rx,
        ))
    }

    /// Accepts `events` in order: gives each an `insert_id` (kept if present, spec §9),
    /// persists them with one fsync, then queues them for sending. Returns once they are
    /// durable: from then on they are delivered or dead-lettered, across crashes.
    pub async fn send(&self, events: Vec<Event>) -> Result<(), SenderError> {
        let mut next = self.next_key.lock().await;
        let mut prepared = Vec::with_capacity(events.len());
        for e in events {
            prepared.push(QueuedEvent::prepare(*next, e)?);
            *next += 1;
        }
        let persisted = self.queue.append(prepared).await?;
        self.cmd
            .send(Cmd::Enqueue(persisted))
            .map_err(|_| SenderError::Stopped)
    }

    /// Like [`Sender::send`] for raw JSON lines (one event object each), kept byte-for-byte
    /// ([`QueuedEvent::from_line`]): the fast path of the command. Lines that are not JSON
    /// objects are returned with their error (not accepted); the rest are durable on return.
    pub async fn send_lines(
        &self,
        lines: Vec<String>,
    ) -> Result<Vec<(String, serde_json::Error)>, SenderError> {
        let mut next = self.next_key.lock().await;
        let mut prepared = Vec::with_capacity(lines.len());
        let mut rejected = Vec::new();
        for line in lines {
            match QueuedEvent::from_line(*next, &line) {
                Ok(q) => {
                    prepared.push(q);
                    *next += 1;
                }
                Err(e) => rejected.push((line, e)),
            }
        }
        if !prepared.is_empty() {
            let persisted = self.queue.append(prepared).await?;
            self.cmd
                .send(Cmd::Enqueue(persisted))
                .map_err(|_| SenderError::Stopped)?;
        }
        Ok(rejected)
    }

    /// Dead-letters an input that is not a usable event (`raw`: its JSON, or a JSON string of
    /// the raw line) with `reason`, reporting `seq` if known. Nothing is dropped silently.
    pub fn reject(
        &self,
        raw: Vec<u8>,
        seq: Option<i64>,
        reason: String,
    ) -> Result<(), SenderError> {
        self.cmd
            .send(Cmd::Reject(raw, seq, reason))
            .map_err(|_| SenderError::Stopped)
    }

    /// The application's `flush()`: resolves once every event accepted so far (and every
    /// event recovered at start) has its final outcome, delivered or dead-lettered. Sends
    /// without waiting for the flush interval until then (pauses, pacing and backoff hold).
    pub async fn flush(&self) -> Result<(), SenderError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Flush(tx))
            .map_err(|_| SenderError::Stopped)?;
        rx.await.map_err(|_| SenderError::Stopped)
    }

    /// The application exits now: no further sending or draining. Events not yet confirmed
    /// stay in the state directory and are reported `held` (their outcome is unknown, a
    /// restart sends them).
    pub async fn exit(self) -> Result<SenderReport, SenderError> {
        let _ = self.cmd.send(Cmd::Exit);
        let report = self.engine.await.map_err(|_| SenderError::Stopped)?;
        self.queue.sync().await?;
        Ok(report)
    }

    /// Events found pending in the state directory at start.
    pub fn recovered(&self) -> usize {
        self.recovered
    }

    /// Drains: sends everything still queued (pauses and pacing still hold) until all is
    /// delivered or dead-lettered, or until shortly before `deadline` passes (a tenth of it,
    /// at most 250 ms, is kept to exit in time); what is left stays in the state directory
    /// for the next start and is reported `held`. Never loses an accepted event.
    pub async fn shutdown(self, deadline: Duration) -> Result<SenderReport, SenderError> {
        let _ = self.cmd.send(Cmd::Close(deadline));
        let report = self.engine.await.map_err(|_| SenderError::Stopped)?;
        self.queue.sync().await?;
        Ok(report)
    }
}

struct Engine {
    core: Core,
    queue: Arc<DurableQueue>,
    client: reqwest::Client,
    url: String,
    outcomes: mpsc::UnboundedSender<Outcome>,
    start: Instant,
    recovered: usize,
    /// Inputs dead-lettered because they were not events ([`Sender::reject`]).
    rejected: u64,
}

/// Inputs that are not events logged one warning each; past them, one line says the rest
/// are only counted, and the end of the run gives the total.
const REJECT_WARNINGS: u64 = 5;

/// Longest part of a rejected input a warning quotes, in characters.
const REJECT_QUOTE_CHARS: usize = 200;

impl Engine {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) -> SenderReport {
        let (resp_tx, mut resp_rx) = mpsc::unbounded_channel::<(RequestId, HttpResult)>();
        let mut tasks: HashMap<RequestId, JoinHandle<()>> = HashMap::new();
        let mut deadline: Option<Instant> = None;
        let mut cause = String::from("drain deadline reached");
        let mut input_open = true;
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let now = self.now_ms();
            while let Some(req) = self.core.poll_send(now) {
                let (client, url, tx) = (self.client.clone(), self.url.clone(), resp_tx.clone());
                let id = req.id;
                tasks.insert(
                    id,
                    tokio::spawn(async move {
                        let result = post(&client, &url, req.body).await;
                        let _ = tx.send((id, result));
                    }),
                );
            }
            self.apply_effects();
            let closing = deadline.is_some() || !input_open;
            if !flushes.is_empty() && self.core.is_idle() {
                for f in flushes.drain(..) {
                    let _ = f.send(());
                }
                if !closing {
                    self.core.stop_flushing();
                }
            }
            if closing && self.core.is_idle() {
                break;
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    break;
                }
            }
            let wake = self
                .core
                .next_wakeup()
                .map(|t| self.start + Duration::from_millis(t));
            tokio::select! {
                cmd = cmds.recv(), if input_open => match cmd {
                    Some(Cmd::Enqueue(evs)) => {
                        let now = self.now_ms();
                        for e in evs {
                            self.core.enqueue(e, now);
                        }
                    }
                    Some(Cmd::Reject(raw, seq, reason)) => {
                        self.warn_rejected(&raw, &reason);
                        let _ = self.outcomes.send(Outcome { key: None, seq, insert_id: String::new(), kind: OutcomeKind::DeadLettered(reason.clone()) });
                        self.queue.dead_letter(vec![(None, raw, reason)]);
                    }
                    Some(Cmd::Flush(done)) => {
                        flushes.push(done);
                        self.core.set_flushing();
                    }
                    Some(Cmd::Close(d)) => {
                        deadline = Some(Instant::now() + d.saturating_sub(exit_margin(d)));
                        cause = format!("drain deadline of {} ms reached", d.as_millis());
                        self.core.set_flushing();
                    }
                    Some(Cmd::Exit) => {
                        cause = "the application exited (exit control line)".into();
                        break;
                    }
                    None => {
                        input_open = false;
                        if deadline.is_none() {
                            deadline = Some(Instant::now() + Duration::from_secs(30));
                            cause = "drain deadline of 30000 ms reached (sender dropped)".into();
                        }
                        self.core.set_flushing();
                    }
                },
                Some((id, result)) = resp_rx.recv() => {
                    tasks.remove(&id);
                    let now = self.now_ms();
                    self.core.on_response(id, &result, now);
                }
                _ = sleep_until_opt(wake) => {}
                _ = sleep_until_opt(deadline) => {}
            }
        }
        for (_, t) in tasks.drain() {
            t.abort();
        }
        // answers that arrived meanwhile still count
        while let Ok((id, result)) = resp_rx.try_recv() {
            let now = self.now_ms();
            self.core.on_response(id, &result, now);
        }
        self.apply_effects();
        let mut stats = self.core.stats().clone();
        stats.dead_lettered += self.rejected;
        if self.rejected > REJECT_WARNINGS {
            tracing::warn!(
                "{} input lines were not Amplitude events and were dead-lettered",
                self.rejected
            );
        }
        let left = self.core.pending();
        if left > 0 {
            tracing::warn!(
                left,
                "{cause}; pending events stay in the state directory for the next start"
            );
            for (e, state) in self.core.pending_events() {
                let _ = self.outcomes.send(Outcome {
                    key: Some(e.key),
                    seq: e.seq,
                    insert_id: e.insert_id.clone(),
                    kind: OutcomeKind::Held(format!(
                        "in the durable queue at exit ({cause}; {state})"
                    )),
                });
            }
        }
        SenderReport {
            recovered: self.recovered,
            left_in_queue: left,
            stopped: self.core.stopped().map(str::to_owned),
            stats,
        }
    }

    /// Counts an input dead-lettered because it is not an event, with a warning for the
    /// first [`REJECT_WARNINGS`].
    fn warn_rejected(&mut self, raw: &[u8], reason: &str) {
        self.rejected += 1;
        if self.rejected <= REJECT_WARNINGS {
            let text = String::from_utf8_lossy(raw);
            let mut line: String = text.chars().take(REJECT_QUOTE_CHARS).collect();
            if line.len() < text.len() {
                line.push_str(" …");
            }
            tracing::warn!(%reason, input = %line, "dead-lettered an input line");
        }
        if self.rejected == REJECT_WARNINGS + 1 {
            tracing::warn!(
                "further input lines that are not events are dead-lettered without a warning each; the total follows at exit"
            );
        }
    }

    fn apply_effects(&mut self) {
        for effect in self.core.drain_effects() {
            match effect {
                Effect::Delivered(evs) => {
                    crate::crash::point("delivered");
                    let keys = evs.iter().map(|e| e.key).collect();
                    self.queue.delivered(keys);
                    for e in evs {
                        let _ = self.outcomes.send(Outcome {
                            key: Some(e.key),
                            seq: e.seq,
                            insert_id: e.insert_id,
                            kind: OutcomeKind::Delivered,
                        });
                    }
                }
                Effect::DeadLettered(list) => {
                    let mut items = Vec::with_capacity(list.len());
                    for (e, reason) in list {
                        tracing::warn!(insert_id = %e.insert_id, %reason, "dead-lettered");
                        let _ = self.outcomes.send(Outcome {
                            key: Some(e.key),
                            seq: e.seq,
                            insert_id: e.insert_id,
                            kind: OutcomeKind::DeadLettered(reason.clone()),
                        });
                        items.push((Some(e.key), e.json, reason));
                    }
                    self.queue.dead_letter(items);
                }
                Effect::ProjectStopped(reason) => {
                    tracing::error!(%reason, "STOPPED SENDING FOR THIS PROJECT; every pending and new event is dead-lettered");
                }
                Effect::Warning(w) => tracing::warn!("{w}"),
                Effect::Coalesced { into, absorbed } => {
                    let reason = format!(
                        "coalesced into the $identify with insert_id {} (seq {:?})",
                        into.insert_id, into.seq
                    );
                    self.queue.rewrite(vec![*into]);
                    self.queue.delivered(vec![absorbed.key]);
                    let _ = self.outcomes.send(Outcome {
                        key: Some(absorbed.key),
                        seq: absorbed.seq,
                        insert_id: absorbed.insert_id,
                        kind: OutcomeKind::Dropped(reason),
                    });
                }
            }
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The keep-alive HTTP client: rustls (ring) with the webpki roots compiled in, so
/// `https://api2.amplitude.com` and `https://api.eu.amplitude.com` work without a system CA
/// store.
fn http_client(config: &SenderConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_millis(config.request_timeout_ms))
        .pool_max_idle_per_host(config.core.max_in_flight.max(1) * 2)
        .tcp_nodelay(true)
        .build()
}

/// Posts one body; any failure to get a complete response is a transport error (spec §5.6).
async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> HttpResult {
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            crate::crash::point("response");
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(b) => HttpResult::Response {
                    status,
                    body: b.to_vec(),
                },
                Err(e) => HttpResult::Transport(format!("HTTP {status}, body cut short: {e}")),
            }
        }
        Err(e) if e.is_timeout() => HttpResult::Transport(format!("timeout: {e}")),
        Err(e) => HttpResult::Transport(format!("transport: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{Endpoint, Region};
    use tokio::io::AsyncReadExt;

    /// The client speaks TLS to an `https://` URL: a local TCP listener receives a TLS
    /// ClientHello (record type 0x16, version 3.x) rather than a refusal of the scheme. No
    /// real network.
    #[tokio::test]
    async fn https_urls_get_a_tls_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = SenderConfig::new(
            "k",
            Endpoint::HttpV2,
            format!("https://127.0.0.1:{port}/2/httpapi"),
            "/nonexistent",
        );
        let client = http_client(&cfg).unwrap();
        let url = cfg.url.clone();
        let req = tokio::spawn(async move { post(&client, &url, b"{}".to_vec()).await });
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 3];
        sock.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x16, "a TLS handshake record");
        assert_eq!(head[1], 3, "TLS major version 3");
        drop(sock);
        assert!(matches!(req.await.unwrap(), HttpResult::Transport(_)));
        assert_eq!(
            Region::Us.url(Endpoint::HttpV2),
            "https://api2.amplitude.com/2/httpapi"
        );
        assert_eq!(
            Region::Eu.url(Endpoint::Batch),
            "https://api.eu.amplitude.com/batch"
        );
    }
}
