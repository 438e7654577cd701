//! The dead-letter file: JSON Lines `{"event":{...},"reason":"..."}` in the state directory,
//! one line per event the sender will never send again (issue: "nothing is ever dropped
//! silently").

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// File name of the dead letters inside the state directory.
pub const DEAD_LETTER_FILE: &str = "dead_letters.jsonl";

/// Appends dead letters; [`DeadLetters::sync`] makes them durable.
#[derive(Debug)]
pub struct DeadLetters {
    out: BufWriter<File>,
}

impl DeadLetters {
    /// Opens (creating) `dir/dead_letters.jsonl` for appending.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(DEAD_LETTER_FILE))?;
        Ok(Self {
            out: BufWriter::new(file),
        })
    }

    /// Buffers one line. `event_json` must be one JSON value (an event, or a string holding
    /// an input line that was not JSON).
    pub fn write(&mut self, event_json: &[u8], reason: &str) -> io::Result<()> {
        let reason = serde_json::Value::String(reason.to_owned()).to_string();
        self.out.write_all(b"{\"event\":")?;
        self.out.write_all(event_json)?;
        self.out.write_all(b",\"reason\":")?;
        self.out.write_all(reason.as_bytes())?;
        self.out.write_all(b"}\n")
    }

    /// Flushes and fsyncs.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Reads `dir/dead_letters.jsonl` back as `(event, reason)` pairs (for tests and tooling).
pub fn read_dead_letters(dir: &Path) -> io::Result<Vec<(serde_json::Value, String)>> {
    let text = match std::fs::read_to_string(dir.join(DEAD_LETTER_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let reason = v
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        out.push((
            v.get_mut("event")
                .map(serde_json::Value::take)
                .unwrap_or_default(),
            reason,
        ));
    }
    Ok(out)
}
