//! The state directory's lock: one sender at a time per directory (ADR 009).
//!
//! `<dir>/lock` is held with an exclusive, non-blocking `flock(2)` for the sender's life and
//! carries the holder's pid (decimal, for the error message only). The kernel releases the
//! lock when the holder exits, however it exits, so a lock file left by a killed process
//! never blocks a restart.

use std::fs::File;
use std::path::{Path, PathBuf};

/// File name of the lock inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live sender holds the directory.
    #[error("state directory {dir} is in use by another sender (pid {holder})")]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid as written in the lock file (`unknown` if unreadable).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("state directory {dir}: lock file: {source}")]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A held lock on a state directory; released on drop (and by the kernel on exit).
#[derive(Debug)]
pub(crate) struct DirLock {
    #[cfg(unix)]
    _flock: nix::fcntl::Flock<File>,
    #[cfg(not(unix))]
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist) and writes this process's pid into it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        #[cfg(unix)]
        {
            use nix::fcntl::{Flock, FlockArg};
            use std::io::{Seek, Write};
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut flock) => {
                    flock.set_len(0).map_err(io)?;
                    flock.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
                    writeln!(flock, "{}", std::process::id()).map_err(io)?;
                    flock.flush().map_err(io)?;
                    Ok(Self { _flock: flock })
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "unknown".to_owned());
                    Err(LockError::Held {
                        dir: dir.to_owned(),
                        holder,
                    })
                }
                Err((_, errno)) => Err(io(std::io::Error::from(errno))),
            }
        }
        #[cfg(not(unix))]
        {
            Ok(Self { _file: file })
        }
    }
}
