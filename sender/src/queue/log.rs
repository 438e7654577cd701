//! The durable queue's file: an fsync'd append-only log of text records, one per line
//! (ADR 002). `A <key> <event json>` adds an event; `C <k1>,<k2>,..` marks events confirmed
//! by a 200; `D <k1>,..` marks events dead-lettered. serde_json never writes a raw newline,
//! so a line is a record. A crash can only tear the tail written after the last fsync; on
//! open, the log is read up to the first incomplete or unreadable line and rewritten with
//! only the events still pending.

use crate::event::{EventKey, QueuedEvent};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// File name of the log inside the state directory.
pub const LOG_FILE: &str = "queue.log";

/// What opening the log found: the events accepted and neither confirmed nor dead-lettered,
/// in acceptance order, and the first free key.
#[derive(Debug, Default)]
pub struct Recovered {
    /// `(key, event json)` of every pending event, by increasing key.
    pub pending: Vec<(EventKey, Vec<u8>)>,
    /// Key for the next accepted event (one more than any key ever written).
    pub next_key: EventKey,
    /// Bytes of torn tail that were discarded.
    pub discarded_bytes: usize,
}

/// The append side of the log. Writes are buffered; [`Log::sync`] makes them durable.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    out: BufWriter<File>,
    written: u64,
    /// File length after the last successful [`Log::sync`], bytes: what a failed write
    /// (disk full) is rolled back to.
    durable: u64,
    /// Most bytes the file may hold before an event record is refused (simulated disk full).
    cap: Option<u64>,
}

/// Parses log bytes: every record up to the first torn or unreadable line.
pub fn scan(bytes: &[u8]) -> Recovered {
    let mut pending: BTreeMap<EventKey, Vec<u8>> = BTreeMap::new();
    let mut next_key = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &bytes[pos..pos + nl];
        if !apply(line, &mut pending, &mut next_key) {
            break;
        }
        pos += nl + 1;
    }
    Recovered {
        pending: pending.into_iter().collect(),
        next_key,
        discarded_bytes: bytes.len() - pos,
    }
}

fn parse_key(s: &[u8]) -> Option<EventKey> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn apply(line: &[u8], pending: &mut BTreeMap<EventKey, Vec<u8>>, next_key: &mut EventKey) -> bool {
    if line.len() < 3 || line[1] != b' ' {
        return false;
    }
    let rest = &line[2..];
    match line[0] {
        b'A' => {
            let Some(sp) = rest.iter().position(|&b| b == b' ') else {
                return false;
            };
            let Some(key) = parse_key(&rest[..sp]) else {
                return false;
            };
            let json = &rest[sp + 1..];
            if serde_json::from_slice::<serde::de::IgnoredAny>(json).is_err() {
                return false;
            }
            pending.insert(key, json.to_vec());
            *next_key = (*next_key).max(key + 1);
            true
        }
        b'C' | b'D' => {
            for k in rest.split(|&b| b == b',') {
                match parse_key(k) {
                    Some(k) => {
                        pending.remove(&k);
                    }
                    None => return false,
                }
            }
            true
        }
        _ => false,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Log {
    /// Opens (creating) the log in `dir`, recovers the pending events, and compacts the file
    /// to hold only them (written to a temporary file, fsync'd, renamed, directory fsync'd).
    /// With `cap`, an append of event records that would make the file longer than `cap`
    /// bytes fails with [`io::ErrorKind::StorageFull`] (as a full disk would).
    pub fn open(dir: &Path, cap: Option<u64>) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let recovered = scan(&bytes);
        if recovered.discarded_bytes > 0 {
            // Only the tail written after the last fsync can be torn (ADR 002), and this
            // rewrite drops it before anything new is appended: one torn region per open.
            tracing::warn!(
                file = %path.display(),
                offset = bytes.len() - recovered.discarded_bytes,
                discarded_bytes = recovered.discarded_bytes,
                "torn or unreadable tail of the queue log discarded (events it held were never acknowledged)"
            );
        }
        let written = rewrite(dir, &recovered.pending, "compact")?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            Self {
                dir: dir.to_owned(),
                out: BufWriter::with_capacity(1 << 20, file),
                written,
                durable: written,
                cap,
            },
            recovered,
        ))
    }

    /// Bytes the `A` records of `events` take.
    pub fn record_bytes(events: &[QueuedEvent]) -> u64 {
        events
            .iter()
            .map(|e| (format!("A {} ", e.key).len() + e.json.len() + 1) as u64)
            .sum()
    }

    /// Whether appending `bytes` more would pass the size cap.
    pub fn over_cap(&self, bytes: u64) -> bool {
        self.cap
            .is_some_and(|cap| self.written.saturating_add(bytes) > cap)
    }

    /// Buffers `A` records for `events` (durable after [`Log::sync`]). Fails with
    /// [`io::ErrorKind::StorageFull`], writing nothing, when they would pass the size cap.
    pub fn append(&mut self, events: &[QueuedEvent]) -> io::Result<()> {
        let bytes = Self::record_bytes(events);
        if self.over_cap(bytes) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "no space left for the queue log: {bytes} more bytes would pass max_log_bytes ({} bytes, {} used)",
                    self.cap.unwrap_or_default(),
                    self.written
                ),
            ));
        }
        for e in events {
            let head = format!("A {} ", e.key);
            self.out.write_all(head.as_bytes())?;
            self.out.write_all(&e.json)?;
            self.out.write_all(b"\n")?;
            self.written += (head.len() + e.json.len() + 1) as u64;
        }
        Ok(())
    }

    /// Buffers a `C` (confirmed) or `D` (dead-lettered) record for `keys`.
    pub fn mark(&mut self, dead: bool, keys: &[EventKey]) -> io::Result<()> {
        for chunk in keys.chunks(4_096) {
            let mut line = String::with_capacity(chunk.len() * 8 + 3);
            line.push(if dead { 'D' } else { 'C' });
            line.push(' ');
            for (i, k) in chunk.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&k.to_string());
            }
            line.push('\n');
            self.out.write_all(line.as_bytes())?;
            self.written += line.len() as u64;
        }
        Ok(())
    }

    /// Flushes the buffer and fsyncs the file (`fdatasync`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        self.durable = self.written;
        Ok(())
    }

    /// After a failed write or sync (disk full, `EFBIG`): drops the unwritten buffer and cuts
    /// the file back to its last durable length, so a half-written record never sits in the
    /// middle of the log and no record of a refused append reaches the disk later. Marks
    /// written since the last sync are lost too (their events are only resent, with the same
    /// `insert_id`).
    pub fn rollback(&mut self) -> io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let fresh = OpenOptions::new().append(true).open(&path)?;
        let old = std::mem::replace(&mut self.out, BufWriter::with_capacity(1 << 20, fresh));
        let (file, _unwritten) = old.into_parts();
        file.set_len(self.durable)?;
        file.sync_data()?;
        self.written = self.durable;
        Ok(())
    }

    /// Bytes in the log file (since the last compaction, plus what it kept).
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Rewrites the file with only the pending events; returns how many remain.
    pub fn compact(&mut self) -> io::Result<usize> {
        self.sync()?;
        let bytes = fs::read(self.dir.join(LOG_FILE))?;
        let recovered = scan(&bytes);
        self.written = rewrite(&self.dir, &recovered.pending, "compact_runtime")?;
        crate::crash::point("compacted_runtime");
        self.durable = self.written;
        let file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.out = BufWriter::with_capacity(1 << 20, file);
        Ok(recovered.pending.len())
    }
}

/// Writes `pending` to a temporary file, fsyncs it, passes crash point `point`, renames it
/// over the log and fsyncs the directory.
fn rewrite(dir: &Path, pending: &[(EventKey, Vec<u8>)], point: &str) -> io::Result<u64> {
    let tmp = dir.join("queue.log.tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    let mut written = 0u64;
    for (k, json) in pending {
        let head = format!("A {k} ");
        out.write_all(head.as_bytes())?;
        out.write_all(json)?;
        out.write_all(b"\n")?;
        written += (head.len() + json.len() + 1) as u64;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    crate::crash::point(point);
    fs::rename(&tmp, dir.join(LOG_FILE))?;
    sync_dir(dir)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_stops_at_a_torn_tail() {
        // ADR 002: only the tail after the last fsync can be torn
        let log = b"A 0 {\"a\":1}\nA 1 {\"b\":2}\nA 2 {\"c\":3}\nC 0,2\nA 3 {\"d\":4}\nA 4 {\"e\"";
        let r = scan(log);
        let keys: Vec<u64> = r.pending.iter().map(|p| p.0).collect();
        assert_eq!(keys, vec![1, 3]);
        assert_eq!(r.next_key, 4);
        assert_eq!(r.discarded_bytes, 8);
        // garbage (zero-filled block) after a valid prefix
        let mut z = b"A 7 {}\n".to_vec();
        z.extend_from_slice(&[0u8; 16]);
        z.extend_from_slice(b"\nA 8 {}\n");
        let r = scan(&z);
        assert_eq!(r.pending.len(), 1);
        assert_eq!(r.next_key, 8);
        // a rewritten event (coalesced $set): the last A record of a key wins
        let r = scan(b"A 1 {\"v\":1}\nA 2 {\"w\":1}\nA 1 {\"v\":2}\nC 2\n");
        assert_eq!(r.pending, vec![(1, b"{\"v\":2}".to_vec())]);
    }
}
