//! The durable queue: a writer thread owning the append-only log and the dead-letter file,
//! with group commit (every append waiting at the same moment shares one fsync) (ADR 002).

mod dead_letter;
mod lock;
mod log;

pub use dead_letter::{read_dead_letters, DEAD_LETTER_FILE};
pub use lock::{LockError, LOCK_FILE};
pub use log::LOG_FILE;
/// Reads a log's bytes as recovery does (for the crash tests; not part of the API).
#[doc(hidden)]
pub use log::{scan, Recovered};

use super::event::{EventKey, QueuedEvent};
use dead_letter::DeadLetters;
use lock::DirLock;
use log::Log;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Failure of the durable queue's storage.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Reading, writing or syncing a file of the state directory failed.
    #[error("state directory I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Another sender holds the state directory, or its lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The writer thread is gone (after a previous I/O error or shutdown).
    #[error("the durable queue is closed")]
    Closed,
}

type AppendReply = oneshot::Sender<Result<Vec<QueuedEvent>, String>>;

enum Cmd {
    Append(Vec<QueuedEvent>, AppendReply),
    Delivered(Vec<EventKey>),
    Rewrite(Vec<QueuedEvent>),
    DeadLetter(Vec<(Option<EventKey>, Vec<u8>, String)>),
    Sync(oneshot::Sender<Result<(), String>>),
}

/// Handle of the writer thread. Cheap to share behind `&`.
#[derive(Debug)]
pub(crate) struct DurableQueue {
    tx: mpsc::Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
    /// Held until the writer thread has finished (fields drop after `Drop::drop`).
    _lock: DirLock,
}

/// What [`DurableQueue::open`] returns: the queue, the pending `(key, event json)` in
/// acceptance order, and the next free key.
pub(crate) type Opened = (DurableQueue, Vec<(EventKey, Vec<u8>)>, EventKey);

/// Size limits of the queue's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogLimits {
    /// Compact the log when it grows past this many bytes (and twice its last compacted
    /// size).
    pub compact_bytes: u64,
    /// Refuse appends that would make the log longer than this (simulated disk full).
    pub max_bytes: Option<u64>,
}

impl DurableQueue {
    /// Opens the state directory: recovers the pending events (in acceptance order) and the
    /// next free key, and starts the writer thread.
    pub fn open(dir: &Path, limits: LogLimits) -> Result<Opened, QueueError> {
        std::fs::create_dir_all(dir)?;
        let lock = DirLock::acquire(dir)?;
        let (log, recovered) = Log::open(dir, limits.max_bytes)?;
        let dead = DeadLetters::open(dir)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sender-queue".into())
            .spawn(move || writer(log, dead, rx, limits.compact_bytes))?;
        Ok((
            Self {
                tx,
                thread: Some(thread),
                _lock: lock,
            },
            recovered.pending,
            recovered.next_key,
        ))
    }

    /// Persists `events` (one fsync for everything appended meanwhile) and hands them back;
    /// only then may they be acknowledged.
    pub async fn append(&self, events: Vec<QueuedEvent>) -> Result<Vec<QueuedEvent>, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Append(events, reply))
            .map_err(|_| QueueError::Closed)?;
        match rx.await {
            Ok(Ok(evs)) => Ok(evs),
            Ok(Err(e)) => Err(QueueError::Io(std::io::Error::other(e))),
            Err(_) => Err(QueueError::Closed),
        }
    }

    /// Marks events confirmed by a 200 (not fsync'd on its own: losing the mark only
    /// resends them with the same `insert_id`, which Amplitude deduplicates, spec §9).
    pub fn delivered(&self, keys: Vec<EventKey>) {
        if self.tx.send(Cmd::Delivered(keys)).is_err() {
            tracing::error!("durable queue closed; delivery marks not written");
        }
    }

    /// Writes a new `A` record for events whose JSON changed (a coalesced `$set`); on
    /// recovery the last record of a key wins. Must be sent before marking what it absorbed.
    pub fn rewrite(&self, events: Vec<QueuedEvent>) {
        if self.tx.send(Cmd::Rewrite(events)).is_err() {
            tracing::error!("durable queue closed; rewritten events not written");
        }
    }

    /// Writes dead letters `(key, event json, reason)` to the dead-letter file (fsync'd),
    /// then marks the keyed ones done in the log (an input line that never became an event
    /// has no key).
    pub fn dead_letter(&self, items: Vec<(Option<EventKey>, Vec<u8>, String)>) {
        if self.tx.send(Cmd::DeadLetter(items)).is_err() {
            tracing::error!("durable queue closed; dead letters not written");
        }
    }

    /// Waits until everything sent so far is on disk.
    pub async fn sync(&self) -> Result<(), QueueError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Sync(reply))
            .map_err(|_| QueueError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(QueueError::Io(std::io::Error::other(e))),
            Err(_) => Err(QueueError::Closed),
        }
    }
}

impl Drop for DurableQueue {
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("durable queue writer thread panicked");
            }
        }
    }
}

fn writer(mut log: Log, mut dead: DeadLetters, rx: mpsc::Receiver<Cmd>, compact_bytes: u64) {
    let mut compact_at = compact_bytes.max(log.len() * 2);
    while let Ok(first) = rx.recv() {
        let mut cmds = vec![first];
        while cmds.len() < 4_096 {
            match rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        let appending: u64 = cmds
            .iter()
            .map(|c| match c {
                Cmd::Append(evs, _) | Cmd::Rewrite(evs) => Log::record_bytes(evs),
                _ => 0,
            })
            .sum();
        if appending > 0 && log.over_cap(appending) {
            // Size cap reached: what confirmed events took is freed before refusing anything.
            match log.compact() {
                Ok(_) => compact_at = compact_bytes.max(log.len() * 2),
                Err(e) => tracing::error!("durable queue compaction failed: {e}"),
            }
        }
        let result = write_group(&mut log, &mut dead, &mut cmds);
        let err = result.as_ref().err().map(ToString::to_string);
        if let Some(e) = &err {
            tracing::error!("durable queue write failed: {e}");
            if let Err(e) = log.rollback() {
                tracing::error!("durable queue rollback after a failed write failed: {e}");
            }
        }
        for cmd in cmds {
            match cmd {
                Cmd::Append(evs, reply) => {
                    let _ = reply.send(match &err {
                        None => Ok(evs),
                        Some(e) => Err(e.clone()),
                    });
                }
                Cmd::Sync(reply) => {
                    let _ = reply.send(match &err {
                        None => Ok(()),
                        Some(e) => Err(e.clone()),
                    });
                }
                Cmd::Delivered(_) | Cmd::DeadLetter(_) | Cmd::Rewrite(_) => {}
            }
        }
        if log.len() > compact_at {
            match log.compact() {
                Ok(_) => compact_at = compact_bytes.max(log.len() * 2),
                Err(e) => tracing::error!("durable queue compaction failed: {e}"),
            }
        }
    }
    if let Err(e) = log.sync() {
        tracing::error!("durable queue final sync failed: {e}");
    }
}

fn write_group(log: &mut Log, dead: &mut DeadLetters, cmds: &mut [Cmd]) -> std::io::Result<()> {
    let mut any_dead = false;
    for c in cmds.iter() {
        if let Cmd::DeadLetter(items) = c {
            for (_, json, reason) in items {
                dead.write(json, reason)?;
                any_dead = true;
            }
        }
    }
    if any_dead {
        dead.sync()?;
        crate::crash::point("dead_letter");
    }
    let mut need_sync = any_dead;
    for c in cmds.iter() {
        match c {
            Cmd::Append(evs, _) => {
                log.append(evs)?;
                crate::crash::point("append");
                need_sync = true;
            }
            Cmd::Delivered(keys) => {
                log.mark(false, keys)?;
                crate::crash::point("mark");
            }
            Cmd::Rewrite(evs) => {
                log.append(evs)?;
                need_sync = true;
            }
            Cmd::DeadLetter(items) => {
                let keys: Vec<EventKey> = items.iter().filter_map(|i| i.0).collect();
                if !keys.is_empty() {
                    log.mark(true, &keys)?;
                }
            }
            Cmd::Sync(_) => need_sync = true,
        }
    }
    if need_sync {
        log.sync()?;
        if cmds.iter().any(|c| matches!(c, Cmd::Append(..))) {
            crate::crash::point("appended");
        }
    }
    Ok(())
}
